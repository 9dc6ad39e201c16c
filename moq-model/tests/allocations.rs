//! Writing costs the same allocations however many consumers wait: O(1), not O(N).
//!
//! One test in this binary, on one thread (consumers are polled by hand), so the global
//! allocation counter sees only the work under test.

// Shared with the integration binary; this one uses only its Probe.
#[allow(dead_code)]
#[path = "integration/support/mod.rs"]
mod support;

use std::alloc::System;

use bytes::Bytes;
use moq_model::{Error, Track, TrackConsumer};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use support::Probe;

// A binary of its own: the counter is process-wide; tests running beside it would disturb it.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const FRAMES: usize = 30;
const GROUPS: usize = 20;

/// A consumer that reads every frame of every group, as far as it can without waiting.
fn reader(mut track: TrackConsumer) -> Probe<'static, Result<(), Error>> {
    Probe::new(async move {
        while let Some(mut group) = track.next_group().await? {
            while group.read_frame().await?.is_some() {}
        }
        Ok(())
    })
}

/// Allocations per group of `FRAMES` frames, with `consumers` consumers reading along.
fn allocations_per_group(consumers: usize) -> (usize, usize) {
    let (mut track, consumer) = Track::new(["allocations"]).produce();
    let mut readers: Vec<_> = (0..consumers).map(|_| reader(consumer.clone())).collect();
    drop(consumer);
    let payloads: Vec<Bytes> = (0..FRAMES)
        .map(|i| Bytes::from(vec![i as u8; 100]))
        .collect();
    // Promote the payloads to shared buffers once (their first clone allocates).
    drop(payloads.clone());

    let mut produce_and_read = |readers: &mut Vec<Probe<'static, Result<(), Error>>>| {
        for reader in readers.iter_mut() {
            assert!(reader.poll().is_pending());
        }
        let mut group = track.append_group();
        for payload in &payloads {
            group.write_frame(payload.clone()).unwrap();
            for reader in readers.iter_mut() {
                assert!(reader.poll().is_pending());
            }
        }
        group.finish();
    };
    // Warm up: waiter lists and wake buffers reach their size.
    for _ in 0..3 {
        produce_and_read(&mut readers);
    }
    let region = Region::new(GLOBAL);
    for _ in 0..GROUPS {
        produce_and_read(&mut readers);
    }
    let all = region.change().allocations;

    // The producer's side alone: the same writes with the consumers waiting, not polled.
    let region = Region::new(GLOBAL);
    let mut group = track.append_group();
    for payload in &payloads {
        group.write_frame(payload.clone()).unwrap();
    }
    group.finish();
    let writes = region.change().allocations;
    (all / GROUPS, writes)
}

#[test]
fn allocations_do_not_depend_on_the_number_of_consumers() {
    let (one, one_writes) = allocations_per_group(1);
    // A group costs a few allocations (its state, its waiter list, the producer's wake
    // buffer); its frames, their wake-ups and the reads cost none.
    assert!(one <= 4, "{one} allocations per group");
    for consumers in [10, 100, 1000] {
        let (many, many_writes) = allocations_per_group(consumers);
        assert_eq!(many, one, "per group and its reads, {consumers} consumers");
        assert_eq!(
            many_writes, one_writes,
            "per group written, {consumers} consumers"
        );
    }
}
