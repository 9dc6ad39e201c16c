//! Heap allocations per frame through two sessions over the memory transport: the session
//! adds none of its own per frame (headers are cut from one buffer per stream, payloads are
//! passed through), so the end-to-end count per frame stays small and flat.

// Shared with the integration binary; this one uses a few of its helpers.
#[allow(dead_code)]
#[path = "integration/support/mod.rs"]
mod support;

use std::alloc::System;

use bytes::Bytes;
use moq_model::Track;
use moq_session::transport::memory::Config;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use support::*;

// A binary of its own: the counter is process-wide; tests running beside it would disturb it.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations to send one group of `frames` frames and read it back.
async fn allocations_for(frames: usize) -> usize {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (mut track, consumer) = Track::new(["alloc"]).produce();
    client.publish(consumer).unwrap();
    let mut sub = server.subscribe(Track::new(["alloc"]));
    until(|| client.stats().serving == 1).await;
    // Warm up: one group through the same path.
    track.append_group().write_frame("warm").unwrap();
    let mut group = soon(sub.next_group()).await.unwrap().unwrap();
    soon(group.read_frame()).await.unwrap();
    settle().await;

    let payload = Bytes::from(vec![1u8; 100]);
    let region = Region::new(GLOBAL);
    let mut group = track.append_group();
    for _ in 0..frames {
        group.write_frame(payload.clone()).unwrap();
    }
    drop(group);
    let mut received = soon(sub.next_group()).await.unwrap().unwrap();
    for _ in 0..frames {
        soon(received.read_frame()).await.unwrap().unwrap();
    }
    region.change().allocations
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn allocations_per_frame_are_bounded() {
    let small = allocations_for(10).await;
    let large = allocations_for(1010).await;
    let per_frame = (large.saturating_sub(small)) as f64 / 1000.0;
    eprintln!("allocations: 10 frames {small}, 1010 frames {large}, {per_frame:.2} per frame");
    assert!(per_frame < 0.25, "{per_frame} allocations per frame");
}
