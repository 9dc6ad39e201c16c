//! The `moq-model` cache against the published `moq-transfork` 0.5.0 model, same workloads,
//! same run.
//!
//! - `model/write_read`: one producer and one consumer on one thread, 100-byte frames,
//!   interleaved (write a frame, read it); frames per second.
//! - `model/fan_out/N`: one producer, N consumers each in its own task on a 2-worker tokio
//!   runtime, 1 KiB frames, 30 frames per group; the producer writes a group and waits until
//!   every consumer has read it. Delivered frames (30 × N per group) per second. Heap
//!   allocations per written frame are counted separately (all threads, consumers included)
//!   and printed as `allocs/frame`.
//! - `model/late_join`: a track with a group in progress (30 frames); the time for a new
//!   consumer to subscribe and get the latest group's first frame.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::alloc::System;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::sync::Notify;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The operations the workloads need, for each implementation.
trait Model: 'static {
    const NAME: &'static str;
    type Track: Send + 'static;
    type Group: Send;
    type Consumer: Clone + Send + 'static;
    type GroupConsumer: Send;

    fn produce() -> (Self::Track, Self::Consumer);
    fn consume(track: &Self::Track) -> Self::Consumer;
    fn append(track: &mut Self::Track) -> Self::Group;
    fn write(group: &mut Self::Group, payload: Bytes);
    fn next_group(
        consumer: &mut Self::Consumer,
    ) -> impl Future<Output = Option<Self::GroupConsumer>> + Send;
    fn read_frame(group: &mut Self::GroupConsumer) -> impl Future<Output = Option<Bytes>> + Send;
}

/// This workspace's `moq-model`.
struct Ours;

impl Model for Ours {
    const NAME: &'static str = "moq-model";
    type Track = moq_model::TrackProducer;
    type Group = moq_model::GroupProducer;
    type Consumer = moq_model::TrackConsumer;
    type GroupConsumer = moq_model::GroupConsumer;

    fn produce() -> (Self::Track, Self::Consumer) {
        moq_model::Track::new(["bench"]).produce()
    }

    fn consume(track: &Self::Track) -> Self::Consumer {
        track.consume()
    }

    fn append(track: &mut Self::Track) -> Self::Group {
        track.append_group()
    }

    fn write(group: &mut Self::Group, payload: Bytes) {
        group.write_frame(payload).expect("group open");
    }

    async fn next_group(consumer: &mut Self::Consumer) -> Option<Self::GroupConsumer> {
        consumer.next_group().await.ok().flatten()
    }

    async fn read_frame(group: &mut Self::GroupConsumer) -> Option<Bytes> {
        group.read_frame().await.ok().flatten()
    }
}

/// The published `moq-transfork` 0.5.0 model (baseline).
struct Baseline;

impl Model for Baseline {
    const NAME: &'static str = "moq-transfork-0.5.0";
    type Track = moq_transfork::TrackProducer;
    type Group = moq_transfork::GroupProducer;
    type Consumer = moq_transfork::TrackConsumer;
    type GroupConsumer = moq_transfork::GroupConsumer;

    fn produce() -> (Self::Track, Self::Consumer) {
        moq_transfork::Track::new(moq_transfork::Path::new().push("bench")).produce()
    }

    fn consume(track: &Self::Track) -> Self::Consumer {
        track.subscribe()
    }

    fn append(track: &mut Self::Track) -> Self::Group {
        track.append_group()
    }

    fn write(group: &mut Self::Group, payload: Bytes) {
        group.write_frame(payload);
    }

    async fn next_group(consumer: &mut Self::Consumer) -> Option<Self::GroupConsumer> {
        consumer.next_group().await.ok().flatten()
    }

    async fn read_frame(group: &mut Self::GroupConsumer) -> Option<Bytes> {
        group.read_frame().await.ok().flatten()
    }
}

/// Wakes by unparking the thread that runs [`block_on`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal single-thread executor (used where everything is ready on the same thread).
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

const WRITE_READ_FRAMES: usize = 100;

fn write_read<M: Model>(c: &mut Criterion) {
    let mut bench = c.benchmark_group("model/write_read");
    bench.throughput(Throughput::Elements(WRITE_READ_FRAMES as u64));
    let payload = Bytes::from(vec![0x5a; 100]);
    bench.bench_function(M::NAME, |b| {
        let (mut track, mut consumer) = M::produce();
        b.iter(|| {
            let mut group = M::append(&mut track);
            let mut reader = block_on(M::next_group(&mut consumer)).expect("group");
            for _ in 0..WRITE_READ_FRAMES {
                M::write(&mut group, payload.clone());
                black_box(block_on(M::read_frame(&mut reader)).expect("frame"));
            }
        });
    });
    bench.finish();
}

const FAN_OUT_FRAMES: usize = 30;

/// N consumer tasks reading every group; the producer writes one group at a time and waits
/// until every consumer has read all of it (so neither implementation skips groups).
struct FanOut<M: Model> {
    runtime: tokio::runtime::Runtime,
    track: Option<M::Track>,
    consumers: usize,
    remaining: Arc<AtomicUsize>,
    done: Arc<Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// One distinct buffer per frame of a group, as real frames would be (a single shared
    /// buffer would make every read contend on one reference count).
    payloads: Vec<Bytes>,
}

impl<M: Model> FanOut<M> {
    fn new(consumers: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("runtime");
        let (track, consumer) = M::produce();
        let remaining = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(Notify::new());
        let tasks = (0..consumers)
            .map(|_| {
                let mut consumer = consumer.clone();
                let remaining = remaining.clone();
                let done = done.clone();
                runtime.spawn(async move {
                    while let Some(mut group) = M::next_group(&mut consumer).await {
                        for _ in 0..FAN_OUT_FRAMES {
                            black_box(M::read_frame(&mut group).await.expect("frame"));
                        }
                        if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                            done.notify_one();
                        }
                    }
                })
            })
            .collect();
        Self {
            runtime,
            track: Some(track),
            consumers,
            remaining,
            done,
            tasks,
            payloads: (0..FAN_OUT_FRAMES)
                .map(|i| Bytes::from(vec![i as u8; 1024]))
                .collect(),
        }
    }

    fn run(&mut self, groups: u64) {
        let track = self.track.as_mut().expect("track");
        for _ in 0..groups {
            self.remaining.store(self.consumers, Ordering::Release);
            let mut group = M::append(track);
            for payload in &self.payloads {
                M::write(&mut group, payload.clone());
            }
            drop(group);
            self.runtime.block_on(self.done.notified());
        }
    }

    /// Heap allocations (all threads) per written frame over `groups` groups.
    fn allocations_per_frame(&mut self, groups: u64) -> f64 {
        let region = Region::new(GLOBAL);
        self.run(groups);
        let change = region.change();
        change.allocations as f64 / (groups as f64 * FAN_OUT_FRAMES as f64)
    }
}

impl<M: Model> Drop for FanOut<M> {
    fn drop(&mut self) {
        // Ending the track ends every consumer task.
        self.track = None;
        for task in std::mem::take(&mut self.tasks) {
            let _ = self.runtime.block_on(task);
        }
    }
}

fn fan_out<M: Model>(bench: &mut BenchmarkGroup<'_, WallTime>, n: usize) {
    let mut fan_out = FanOut::<M>::new(n);
    // Settle first (waiter lists, buffers), then count allocations.
    fan_out.run(5);
    let allocs = fan_out.allocations_per_frame(50);
    println!(
        "model/fan_out/{}/{n}: {allocs:.2} allocs/frame (written frame, all threads)",
        M::NAME
    );
    bench.throughput(Throughput::Elements((FAN_OUT_FRAMES * n) as u64));
    bench.bench_with_input(BenchmarkId::new(M::NAME, n), &n, |b, _| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            fan_out.run(iters);
            start.elapsed()
        });
    });
}

fn late_join<M: Model>(c: &mut Criterion) {
    let mut bench = c.benchmark_group("model/late_join");
    let (mut track, _consumer) = M::produce();
    let payload = Bytes::from(vec![0x3c; 1024]);
    // Some history, then the latest group in progress.
    for _ in 0..10 {
        let mut group = M::append(&mut track);
        M::write(&mut group, payload.clone());
    }
    let mut group = M::append(&mut track);
    for _ in 0..FAN_OUT_FRAMES {
        M::write(&mut group, payload.clone());
    }
    bench.bench_function(M::NAME, |b| {
        b.iter(|| {
            let mut consumer = M::consume(&track);
            block_on(async {
                let mut latest = M::next_group(&mut consumer).await.expect("group");
                black_box(M::read_frame(&mut latest).await.expect("frame"));
            });
        });
    });
    bench.finish();
    drop(group);
}

fn benches(c: &mut Criterion) {
    // Consumer counts can be narrowed for a quick run: MODEL_FAN_OUT=1,100
    let consumers: Vec<usize> = std::env::var("MODEL_FAN_OUT")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![1, 10, 100, 1000]);
    // One implementation only (e.g. under a profiler): MODEL_IMPL=moq-model or
    // MODEL_IMPL=moq-transfork-0.5.0. The fan-out setup runs outside criterion's filter.
    let only = std::env::var("MODEL_IMPL").ok();
    let ours = only.as_deref().is_none_or(|name| name == Ours::NAME);
    let baseline = only.as_deref().is_none_or(|name| name == Baseline::NAME);

    if ours {
        write_read::<Ours>(c);
    }
    if baseline {
        write_read::<Baseline>(c);
    }
    // Both implementations back to back for each size, so that they see the same machine.
    let mut bench = c.benchmark_group("model/fan_out");
    for &n in &consumers {
        if ours {
            fan_out::<Ours>(&mut bench, n);
        }
        if baseline {
            fan_out::<Baseline>(&mut bench, n);
        }
    }
    bench.finish();
    if ours {
        late_join::<Ours>(c);
    }
    if baseline {
        late_join::<Baseline>(c);
    }
}

criterion_group! {
    name = model;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(model);
