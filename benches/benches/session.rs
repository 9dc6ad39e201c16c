//! `session/*`: one publisher fanning a track out to 1, 10 and 100 subscribing sessions over
//! the in-memory transport (unshaped link), measured in frames delivered per second.
//!
//! Each subscriber is its own connection pair: a publishing session (all of them publish
//! the same track, as a relay does) and a subscribing session. One iteration writes 8 groups
//! of 10 frames of 1,000 bytes and waits until every subscriber has read every frame, so the
//! throughput counts frames (and, times 1,000, bytes) delivered to applications.
//!
//! Run: `cargo bench -p moq-benches --bench session`
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use moq_model::{Track, TrackProducer};
use moq_session::Session;
use moq_session::transport::memory;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

const GROUPS: u64 = 8;
const FRAMES: u64 = 10;
const FRAME_SIZE: usize = 1_000;
const EXPIRES: Duration = Duration::from_secs(3600);

struct Fanout {
    track: TrackProducer,
    /// Frames read by all subscribers so far.
    frames: Arc<AtomicU64>,
    progress: Arc<Notify>,
    // Kept alive for the bench.
    _sessions: Vec<Session>,
}

async fn setup(subscribers: usize) -> Fanout {
    let (track, consumer) = Track::build(["bench", "track"])
        .group_expires(EXPIRES)
        .produce();
    let frames = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());
    let mut sessions = Vec::new();
    for _ in 0..subscribers {
        let (client, server) = memory::pair(memory::Config::default());
        let (connected, accepted) = tokio::join!(Session::connect(client), Session::accept(server));
        let (publisher, driver) = connected.expect("connect");
        tokio::spawn(driver);
        let (subscriber, driver) = accepted.expect("accept");
        tokio::spawn(driver);
        publisher.publish(consumer.clone()).expect("publish");
        let mut sub = subscriber.subscribe(
            Track::build(["bench", "track"])
                .group_expires(EXPIRES)
                .into_track(),
        );
        let (frames, progress) = (frames.clone(), progress.clone());
        tokio::spawn(async move {
            while let Ok(Some(mut group)) = sub.next_group().await {
                let mut count = 0;
                while let Ok(Some(_frame)) = group.read_frame().await {
                    count += 1;
                }
                frames.fetch_add(count, Ordering::Relaxed);
                progress.notify_one();
            }
        });
        // Wait until the publisher serves the subscription.
        while publisher.stats().serving == 0 {
            tokio::task::yield_now().await;
        }
        sessions.push(publisher);
        sessions.push(subscriber);
    }
    Fanout {
        track,
        frames,
        progress,
        _sessions: sessions,
    }
}

impl Fanout {
    /// Writes one batch and waits until every subscriber has read it.
    async fn round(&mut self, subscribers: usize, payload: &Bytes) {
        let target = self.frames.load(Ordering::Relaxed) + GROUPS * FRAMES * subscribers as u64;
        for _ in 0..GROUPS {
            let mut group = self.track.append_group();
            for _ in 0..FRAMES {
                group.write_frame(payload.clone()).expect("write");
            }
        }
        while self.frames.load(Ordering::Relaxed) < target {
            self.progress.notified().await;
        }
    }
}

fn fanout(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let payload = Bytes::from(vec![7u8; FRAME_SIZE]);
    let mut group = c.benchmark_group("session/fanout");
    for subscribers in [1usize, 10, 100] {
        group.throughput(Throughput::Elements(GROUPS * FRAMES * subscribers as u64));
        let mut fanout = runtime.block_on(setup(subscribers));
        group.bench_with_input(
            BenchmarkId::new("frames", subscribers),
            &subscribers,
            |b, &subscribers| {
                b.iter_custom(|iterations| {
                    run(&runtime, &mut fanout, subscribers, &payload, iterations)
                })
            },
        );
    }
    group.finish();
}

fn run(
    runtime: &Runtime,
    fanout: &mut Fanout,
    subscribers: usize,
    payload: &Bytes,
    iterations: u64,
) -> Duration {
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..iterations {
            fanout.round(subscribers, payload).await;
        }
        start.elapsed()
    })
}

criterion_group!(benches, fanout);
criterion_main!(benches);
