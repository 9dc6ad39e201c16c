//! `moq bench`: a load generator and meter. N publishers (one track each) and M subscribers
//! per track, each on its own QUIC connection (a few connections per client endpoint),
//! against a relay; reports delivered throughput, one-way latency, skipped and dropped groups and the
//! CPU time of this process (and of the relay, given its pid). See `docs/benchmarks.md`.
//!
//! Every frame starts with a stamp (`stats::STAMP_LEN` bytes): the time it was written,
//! from an `Instant` shared by the whole process, and its index in the track. Publishers
//! and subscribers run in this one process, so latency needs no clock synchronisation.

mod raw;
mod stats;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::{Bytes, BytesMut};
use clap::Args;
use moq_model::{GroupOrder, Path, Track, TrackConsumer};
use moq_proto::ErrorCode;
use moq_session::Session;
use moq_transport_quinn::Client;
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::client::ClientArgs;
use stats::{Histogram, MachineSample, ProcessSample, ReceiverStats, STAMP_LEN, StampReader};

/// `moq bench` flags.
#[derive(Args, Debug, Clone)]
pub(crate) struct BenchArgs {
    /// The relay: moqf://HOST:PORT/ (raw QUIC) or https://HOST:PORT/ (WebTransport). Not
    /// used with --raw-quic or --floor.
    #[arg(required_unless_present_any = ["raw_quic", "floor"])]
    url: Option<String>,
    /// Subscribers connect here instead of the URL (repeatable: spread over them in turn),
    /// e.g. other relays of a cluster than the publishers'.
    #[arg(long, value_name = "URL")]
    subscribe_url: Vec<String>,
    /// Publishers, one track each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    tracks: u32,
    /// Subscribers per track, each on its own connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=5000))]
    subscribers: u32,
    /// Bytes per frame (at least 16: the stamp).
    #[arg(long, default_value_t = 1024, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(STAMP_LEN as u64..=16_777_216))]
    frame_size: u64,
    /// Frames per second per track.
    #[arg(
        long,
        default_value_t = 100.0,
        value_name = "FPS",
        conflicts_with = "max"
    )]
    rate: f64,
    /// As fast as the slowest subscriber of each track reads: a publisher keeps at most
    /// --window bytes (at least 8 frames, at most 32 groups) ahead of it, and starts a
    /// group only once every subscriber has the first frame of the group
    /// --groups-in-flight back.
    #[arg(long)]
    max: bool,
    /// With --max: groups a publisher may have started that not every subscriber has seen
    /// the first frame of. 1 (the default) measures one group's round trip through the
    /// relay per group; more keep the relay busy. Above 1, tracks keep older groups cached
    /// for --group-expires so that one that arrives after a newer one is still delivered;
    /// a consumer that moved past it reports it as skipped.
    #[arg(long, default_value_t = 1, value_name = "K", requires = "max",
          value_parser = clap::value_parser!(u64).range(1..=32))]
    groups_in_flight: u64,
    /// With --max: bytes a publisher may be ahead of its slowest subscriber.
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    window: u64,
    /// Group expiry of the tracks, in milliseconds, for the publishers and the subscribers
    /// alike: a group older than this while a newer one exists is given up along the way
    /// (a latency budget for live data). Default: none, except with --groups-in-flight
    /// above 1 (2000).
    #[arg(long, value_name = "MS")]
    group_expires: Option<u64>,
    /// Frames per group (a group is one QUIC stream per subscriber).
    #[arg(long, default_value_t = 30, value_name = "K",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    group_frames: u64,
    /// Seconds to measure, after every subscriber has received its first frame plus a
    /// second of warm-up.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    duration: f64,
    /// Print the result as one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Print a progress line on stderr every second even when stderr is not a terminal.
    #[arg(long)]
    progress: bool,
    /// Also sample this process (the relay): CPU time over the window and per delivered
    /// frame, resident memory, and its growth per subscriber since before the bench connected.
    #[arg(long, value_name = "PID")]
    relay_pid: Option<u32>,
    /// Subscriber connections per client endpoint (UDP socket). One socket for hundreds
    /// of busy connections overflows its kernel receive buffer and loses packets.
    #[arg(long, default_value_t = 8, value_name = "N")]
    per_endpoint: usize,
    /// Concurrent connection handshakes while setting up.
    #[arg(long, default_value_t = 16, hide = true)]
    connect_parallel: usize,
    /// No relay: bulk transfer of frames between two raw quinn endpoints in this process
    /// (the same TLS and QUIC settings), one frame per write, --group-frames per stream.
    /// The network's ceiling for the same frames.
    #[arg(long, hide = true)]
    raw_quic: bool,
    /// No relay: the floor under a relay's fan-out. One sender thread writes each frame
    /// straight to every subscriber over its own raw QUIC connection (quinn, the relay's
    /// settings), at --rate, --group-frames per stream; its CPU per delivered frame is
    /// reported as the relay's. What any relay on quinn pays at the least for the same
    /// packets. Takes --subscribers, --rate, --frame-size, --group-frames.
    #[arg(long, conflicts_with_all = ["raw_quic", "max", "relay_pid"])]
    floor: bool,
}

/// Shared by every task of a run.
struct Run {
    epoch: Instant,
    /// Set while the measured window is open.
    measuring: AtomicBool,
    /// Delivered frames and bytes since the start (for the progress line).
    frames: AtomicU64,
    bytes: AtomicU64,
    /// Subscribers that have received a frame.
    ready: AtomicUsize,
    /// Subscribers that gave up (failed to connect or subscribe).
    failed: AtomicUsize,
    /// Set once setup is over (every subscriber receiving, or the setup time up).
    set_up: AtomicBool,
    /// Frames written during the measured window.
    sent: AtomicU64,
}

/// What a publisher in --max mode needs from its track's subscribers.
struct TrackPace {
    /// Per subscriber: one past the highest frame index received (u64::MAX before the first
    /// frame and once gone).
    received: Vec<AtomicU64>,
    /// The subscriber the publisher waits for, and the index it waits for.
    waiting_on: AtomicUsize,
    target: AtomicU64,
    wake: Notify,
}

impl TrackPace {
    fn new(subscribers: usize) -> Self {
        Self {
            // u64::MAX: not receiving yet (or gone), so not waited for.
            received: (0..subscribers).map(|_| AtomicU64::new(u64::MAX)).collect(),
            waiting_on: AtomicUsize::new(usize::MAX),
            target: AtomicU64::new(u64::MAX),
            wake: Notify::new(),
        }
    }

    fn advance(&self, subscriber: usize, next: u64) {
        let slot = &self.received[subscriber];
        let at = slot.load(Ordering::Relaxed);
        if next > at || at == u64::MAX {
            slot.store(next, Ordering::Release);
        }
        if self.waiting_on.load(Ordering::Acquire) == subscriber
            && next >= self.target.load(Ordering::Acquire)
        {
            self.wake.notify_one();
        }
    }

    fn gone(&self, subscriber: usize) {
        self.received[subscriber].store(u64::MAX, Ordering::Release);
        self.wake.notify_one();
    }

    /// Waits until every subscriber has received frames up to `index` (or has gone).
    async fn wait_for(&self, index: u64) {
        loop {
            let slowest = self
                .received
                .iter()
                .enumerate()
                .min_by_key(|(_, r)| r.load(Ordering::Acquire))
                .map(|(i, r)| (i, r.load(Ordering::Acquire)));
            let Some((who, at)) = slowest else { return };
            if at >= index {
                return;
            }
            self.target.store(index, Ordering::Release);
            self.waiting_on.store(who, Ordering::Release);
            // Re-check after publishing what we wait for, so a wake-up is not missed; the
            // timeout bounds the wait if a subscriber stalls without going.
            if self.received[who].load(Ordering::Acquire) < index {
                let _ = tokio::time::timeout(Duration::from_millis(50), self.wake.notified()).await;
            }
            self.waiting_on.store(usize::MAX, Ordering::Release);
        }
    }
}

/// The result of one run.
struct Report {
    mode: &'static str,
    url: String,
    tracks: u32,
    subscribers_per_track: u32,
    subscribers_connected: usize,
    frame_size: u64,
    rate: Option<f64>,
    /// With --max through a relay: --groups-in-flight.
    groups_in_flight: Option<u64>,
    /// The tracks' group expiry, if any.
    group_expires: Option<Duration>,
    group_frames: u64,
    seconds: f64,
    frames_sent: u64,
    received: ReceiverStats,
    cpu: Duration,
    relay: Option<RelaySample>,
    /// CPU time of the whole machine over the measured window (Linux).
    machine: Option<Duration>,
}

/// What `moq bench --json` prints, one object on one line. The field names and types are
/// read by `scripts/perf/` and by users' scripts: change them only on purpose. Times and
/// rates are rounded to the precision shown (seconds to ms, latencies to 0.1 µs).
#[derive(Serialize)]
struct JsonReport<'a> {
    /// `relay`, `raw-quic` or `floor` (whose `relay` is the sender's thread).
    mode: &'a str,
    url: &'a str,
    tracks: u32,
    subscribers_per_track: u32,
    subscribers: u64,
    subscribers_connected: usize,
    frame_size: u64,
    /// Frames per second per track; `null` with `--max`.
    rate: Option<f64>,
    max: bool,
    groups_in_flight: Option<u64>,
    group_expires_ms: Option<u64>,
    group_frames: u64,
    /// The measured window.
    seconds: f64,
    frames_sent: u64,
    frames_delivered: u64,
    bytes_delivered: u64,
    frames_per_s: f64,
    mb_per_s: f64,
    latency_us: JsonLatency,
    groups_received: u64,
    groups_skipped: u64,
    groups_dropped: u64,
    /// CPU time of this process over the window.
    cpu_s: f64,
    cpu_percent: f64,
    /// Every process on the machine (Linux only; absent elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    machine_cpu_percent: Option<f64>,
    /// With `--relay-pid` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    relay: Option<JsonRelay>,
}

/// One-way latency in microseconds.
#[derive(Serialize)]
struct JsonLatency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
    /// Frames measured.
    samples: u64,
}

/// The relay process named by `--relay-pid`.
#[derive(Serialize)]
struct JsonRelay {
    pid: u32,
    cpu_s: f64,
    cpu_percent: f64,
    rss_kib: u64,
    /// The relay's CPU time per frame delivered to a subscriber, in microseconds.
    cpu_us_per_frame: Option<f64>,
    /// Resident memory before the bench connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    rss_idle_kib: Option<u64>,
    /// What the relay's resident memory grew by from then, per connected subscriber.
    #[serde(skip_serializing_if = "Option::is_none")]
    kib_per_subscriber: Option<f64>,
}

/// The relay process named by `--relay-pid`, over the measured window.
#[derive(Clone, Copy, Debug)]
struct RelaySample {
    pid: u32,
    /// At the end of the window.
    after: ProcessSample,
    /// CPU time over the window.
    cpu: Duration,
    /// Resident memory before the bench connected anything.
    rss_idle_kib: Option<u64>,
}

/// Runs `moq bench`.
pub(crate) async fn run(client: &ClientArgs, args: BenchArgs) -> anyhow::Result<()> {
    if !(args.duration > 0.0 && args.duration <= 3600.0) {
        bail!("--duration must be between 0 and 3600 seconds");
    }
    let rate_ok = args.rate > 0.0 && args.rate <= 1_000_000.0;
    if !args.max && !rate_ok {
        bail!("--rate must be between 0 and 1000000 frames per second");
    }
    let progress = args.progress || std::io::stderr().is_terminal();
    let report = if args.raw_quic {
        raw::run(&args, client.transport(), progress).await?
    } else if args.floor {
        raw::run_floor(&args, client.transport(), progress).await?
    } else {
        run_relay(client, &args, progress).await?
    };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// A session on its own connection from the shared endpoint; the driver on its own task.
async fn connect(
    endpoint: &Client,
    url: &str,
    timeout: Duration,
) -> anyhow::Result<(Session, tokio::task::JoinHandle<()>)> {
    let conn = endpoint
        .connect(url)
        .await
        .map_err(|e| anyhow!("connecting to {url}: {e}"))?;
    let (session, driver) = tokio::time::timeout(timeout, Session::connect(conn))
        .await
        .map_err(|_| anyhow!("{url}: no MoQ handshake in time"))?
        .map_err(|e| anyhow!("MoQ handshake with {url} failed: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = driver.await;
    });
    Ok((session, driver))
}

async fn run_relay(
    client: &ClientArgs,
    args: &BenchArgs,
    progress: bool,
) -> anyhow::Result<Report> {
    let url = args.url.clone().unwrap_or_default();
    let timeout = client.timeout();
    let config = client.config()?;
    // The relay's memory before we connect, so that what each subscriber adds is known.
    let relay_idle = args
        .relay_pid
        .and_then(|pid| ProcessSample::read(Some(pid)));
    if client.bind.port() != 0 {
        bail!("moq bench opens several client sockets: give --bind a port of 0");
    }
    // Publishers share one endpoint; subscribers share one per --per-endpoint connections.
    let endpoint = Client::new(config.clone()).map_err(|e| anyhow!("{e}"))?;
    let per_endpoint = args.per_endpoint.max(1);
    let total = args.tracks as usize * args.subscribers as usize;
    let subscriber_endpoints = (0..total.div_ceil(per_endpoint))
        .map(|_| Client::new(config.clone()).map_err(|e| anyhow!("{e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let run = Arc::new(Run {
        epoch: Instant::now(),
        measuring: AtomicBool::new(false),
        frames: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        set_up: AtomicBool::new(false),
        sent: AtomicU64::new(0),
    });
    let (stop_tx, stop) = watch::channel(false);
    // A prefix of our own, so runs against the same relay never share tracks.
    let prefix = format!(
        "bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let per_track = args.subscribers as usize;
    let total_subscribers = args.tracks as usize * per_track;

    // Publishers first: each connects and publishes its track, then writes until stopped.
    let mut publishers = JoinSet::new();
    let mut paces = Vec::new();
    let mut publisher_sessions = Vec::new();
    for t in 0..args.tracks {
        let (session, driver) = connect(&endpoint, &url, timeout)
            .await
            .with_context(|| format!("publisher {t}"))?;
        let path = Path::from([prefix.as_str(), "track", &t.to_string()]);
        let (producer, consumer) = track(path, args).produce();
        session
            .publish(consumer)
            .map_err(|e| anyhow!("cannot publish: {e}"))?;
        let pace = Arc::new(TrackPace::new(per_track));
        paces.push(pace.clone());
        publishers.spawn(publish(
            producer,
            args.clone(),
            run.clone(),
            pace,
            stop.clone(),
        ));
        publisher_sessions.push((session, driver));
    }

    // Subscribers, a few handshakes at a time.
    let handshakes = Arc::new(Semaphore::new(args.connect_parallel.max(1)));
    let mut subscribers = JoinSet::new();
    for t in 0..args.tracks {
        for s in 0..per_track {
            let path = Path::from([prefix.as_str(), "track", &t.to_string()]);
            let n = t as usize * per_track + s;
            let sub_url = match args.subscribe_url.as_slice() {
                [] => url.clone(),
                urls => urls[n % urls.len()].clone(),
            };
            subscribers.spawn(subscriber(
                subscriber_endpoints[n / per_endpoint].clone(),
                sub_url,
                timeout,
                track(path, args),
                handshakes.clone(),
                run.clone(),
                paces[t as usize].clone(),
                s,
                stop.clone(),
            ));
        }
    }

    // Wait until every subscriber has a frame (bounded), then warm up for a second.
    let setup_deadline = Instant::now() + Duration::from_secs(60) + timeout;
    let mut last_line = Instant::now();
    while run.ready.load(Ordering::Acquire) < total_subscribers && Instant::now() < setup_deadline {
        if run.ready.load(Ordering::Acquire) + run.failed.load(Ordering::Acquire)
            >= total_subscribers
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if progress && last_line.elapsed() >= Duration::from_secs(1) {
            last_line = Instant::now();
            eprintln!(
                "bench: setting up, {}/{} subscribers receiving",
                run.ready.load(Ordering::Acquire),
                total_subscribers
            );
        }
    }
    run.set_up.store(true, Ordering::Release);
    let connected = run.ready.load(Ordering::Acquire);
    if connected == 0 {
        let _ = stop_tx.send(true);
        bail!("no subscriber received a frame within the setup time (is the relay at {url}?)");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The measured window.
    let cpu_before = ProcessSample::read(None).unwrap_or_default();
    let machine_before = MachineSample::read();
    let relay_before = args
        .relay_pid
        .and_then(|pid| ProcessSample::read(Some(pid)));
    run.measuring.store(true, Ordering::Release);
    let started = Instant::now();
    let window = Duration::from_secs_f64(args.duration);
    let mut last = (
        started,
        run.frames.load(Ordering::Relaxed),
        run.bytes.load(Ordering::Relaxed),
    );
    while started.elapsed() < window {
        let left = window.saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        if progress {
            let now = Instant::now();
            let frames = run.frames.load(Ordering::Relaxed);
            let bytes = run.bytes.load(Ordering::Relaxed);
            let dt = now.duration_since(last.0).as_secs_f64().max(1e-9);
            let cpu = ProcessSample::read(None)
                .map(|s| s.cpu().saturating_sub(cpu_before.cpu()).as_secs_f64())
                .unwrap_or(0.0);
            eprintln!(
                "bench: {:>4.0} s  {:>10.0} frames/s  {:>8.1} MB/s  subscribers {}/{}  cpu {:.0}%",
                started.elapsed().as_secs_f64(),
                (frames - last.1) as f64 / dt,
                (bytes - last.2) as f64 / dt / 1e6,
                run.ready.load(Ordering::Acquire),
                total_subscribers,
                100.0 * cpu / started.elapsed().as_secs_f64().max(1e-9),
            );
            last = (now, frames, bytes);
        }
    }
    run.measuring.store(false, Ordering::Release);
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = ProcessSample::read(None).unwrap_or_default();
    let machine = machine_before
        .zip(MachineSample::read())
        .map(|(before, after)| after.busy.saturating_sub(before.busy));
    let relay = args.relay_pid.and_then(|pid| {
        let after = ProcessSample::read(Some(pid))?;
        let before = relay_before?;
        Some(RelaySample {
            pid,
            after,
            cpu: after.cpu().saturating_sub(before.cpu()),
            rss_idle_kib: relay_idle.map(|idle| idle.rss_kib),
        })
    });

    // Stop: subscribers first (they report), then publishers.
    let _ = stop_tx.send(true);
    let mut received = ReceiverStats::default();
    while let Some(result) = subscribers.join_next().await {
        if let Ok(Ok(stats)) = result {
            received.merge(&stats);
        } else if let Ok(Err(err)) = result {
            tracing::warn!("subscriber: {err:#}");
        }
    }
    while publishers.join_next().await.is_some() {}
    for (session, driver) in publisher_sessions {
        session.close(ErrorCode::CANCEL);
        drop(session);
        let _ = tokio::time::timeout(Duration::from_secs(1), driver).await;
    }
    // Close every endpoint, then wait (2 s at most in all) until the closes are sent.
    let mut idle = JoinSet::new();
    for endpoint in subscriber_endpoints.into_iter().chain([endpoint]) {
        endpoint.close();
        idle.spawn(async move { endpoint.wait_idle().await });
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), idle.join_all()).await;

    Ok(Report {
        mode: "relay",
        url,
        tracks: args.tracks,
        subscribers_per_track: args.subscribers,
        subscribers_connected: connected,
        frame_size: args.frame_size,
        rate: (!args.max).then_some(args.rate),
        groups_in_flight: args.max.then_some(args.groups_in_flight),
        group_expires: group_expires(args),
        group_frames: args.group_frames,
        seconds,
        frames_sent: run.sent.load(Ordering::Relaxed),
        received,
        cpu: cpu_after.cpu().saturating_sub(cpu_before.cpu()),
        relay,
        machine,
    })
}

/// The track a publisher produces and a subscriber asks for: with --max, oldest group first
/// (every frame is to be delivered and counted); otherwise the default, newest first, as
/// live media.
///
/// With several groups in flight, groups are kept cached for [`GROUPS_IN_FLIGHT_EXPIRES`]
/// (publisher, relay and subscriber alike: the relay subscribes upstream with the
/// publisher's expiry), so a group whose stream lost the race to a newer one still reaches
/// the consumers that have not passed it.
fn track(path: Path, args: &BenchArgs) -> Track {
    let builder = Track::build(path);
    let builder = match group_expires(args) {
        Some(expires) => builder.group_expires(expires),
        None => builder,
    };
    if args.max {
        builder.group_order(GroupOrder::Ascending).into_track()
    } else {
        builder.into_track()
    }
}

/// The group expiry of the bench's tracks with `--groups-in-flight` above 1.
const GROUPS_IN_FLIGHT_EXPIRES: Duration = Duration::from_secs(2);

/// The tracks' group expiry: `--group-expires`, else [`GROUPS_IN_FLIGHT_EXPIRES`] with
/// several groups in flight, else none.
fn group_expires(args: &BenchArgs) -> Option<Duration> {
    match args.group_expires {
        Some(0) => None,
        Some(ms) => Some(Duration::from_millis(ms)),
        None => (args.max && args.groups_in_flight > 1).then_some(GROUPS_IN_FLIGHT_EXPIRES),
    }
}

/// A frame of `size` bytes stamped now with `index`: one allocation and one copy, as an
/// application producing fresh frames would do.
fn frame(template: &[u8], epoch: Instant, index: u64) -> Bytes {
    let mut buf = BytesMut::from(template);
    stats::stamp(&mut buf, epoch, index);
    buf.freeze()
}

/// Writes frames into `track` at the configured rate (or paced by the subscribers with
/// --max) until stopped.
async fn publish(
    mut track: moq_model::TrackProducer,
    args: BenchArgs,
    run: Arc<Run>,
    pace: Arc<TrackPace>,
    mut stop: watch::Receiver<bool>,
) {
    let template = vec![0xa5u8; args.frame_size as usize];
    // --max: how far ahead of the slowest subscriber the publisher may get.
    let ahead = (args.window / args.frame_size)
        .max(8)
        .min(32 * args.group_frames);
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let started = tokio::time::Instant::now();
    let mut group = None;
    let mut index = 0u64;
    loop {
        if *stop.borrow() {
            break;
        }
        if args.max && !run.set_up.load(Ordering::Acquire) {
            // While subscribers join: a frame every 10 ms, so each gets a first frame soon
            // without the relay being flooded before anyone is measured.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                _ = stop.changed() => break,
            }
        } else if args.max {
            // Within the window; and a new group only once every subscriber has the first
            // frame of the group --groups-in-flight back. With 1, no hop ever learns of a
            // group before the one ahead of it (a consumer that sees group n+1 first passes
            // over group n for good); with more, the streams of the groups in flight race
            // and the caches (`track`) catch the late ones.
            let mut need = (index + 1).saturating_sub(ahead);
            let back = args.groups_in_flight * args.group_frames;
            if index >= back && index.is_multiple_of(args.group_frames) {
                need = need.max(index - back + 1);
            }
            if need > 0 {
                tokio::select! {
                    _ = pace.wait_for(need) => {}
                    _ = stop.changed() => break,
                }
            } else if index % 16 == 15 {
                tokio::task::yield_now().await;
            }
        } else {
            let due = started + interval.mul_f64(index as f64);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.changed() => break,
            }
        }
        let current = group.get_or_insert_with(|| track.append_group());
        if current
            .write_frame(frame(&template, run.epoch, index))
            .is_err()
        {
            break;
        }
        if run.measuring.load(Ordering::Relaxed) {
            run.sent.fetch_add(1, Ordering::Relaxed);
        }
        index += 1;
        if index.is_multiple_of(args.group_frames)
            && let Some(done) = group.take()
        {
            done.finish();
        }
    }
    if let Some(done) = group.take() {
        done.finish();
    }
    track.finish();
}

/// One subscriber: connects, subscribes (retrying while the relay does not know the track
/// yet), reads until stopped, and returns what it saw in the measured window.
#[allow(clippy::too_many_arguments)]
async fn subscriber(
    endpoint: Client,
    url: String,
    timeout: Duration,
    wanted: Track,
    handshakes: Arc<Semaphore>,
    run: Arc<Run>,
    pace: Arc<TrackPace>,
    index: usize,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<ReceiverStats> {
    let result = async {
        let permit = handshakes.acquire().await;
        let (session, driver) = connect(&endpoint, &url, timeout).await?;
        drop(permit);
        let result = receive(&session, wanted, &run, &pace, index, stop).await;
        session.close(ErrorCode::CANCEL);
        drop(session);
        let _ = tokio::time::timeout(Duration::from_secs(1), driver).await;
        result
    }
    .await;
    pace.gone(index);
    if result.is_err() {
        run.failed.fetch_add(1, Ordering::AcqRel);
    }
    result
}

async fn receive(
    session: &Session,
    wanted: Track,
    run: &Run,
    pace: &TrackPace,
    index: usize,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<ReceiverStats> {
    let mut stats = ReceiverStats::default();
    let mut first = true;
    // The relay may not know the track for a moment after the publisher announced it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let path = wanted.path.clone();
    let mut track = session.subscribe(wanted.clone());
    let mut skipped_before = 0;
    loop {
        let next = tokio::select! {
            next = track.next_group() => next,
            _ = stop.changed() => break,
        };
        let mut group = match next {
            Ok(Some(group)) => group,
            Ok(None) => break,
            Err(moq_model::Error::NotFound) if first && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                track = session.subscribe(wanted.clone());
                continue;
            }
            Err(err) => {
                if *stop.borrow() {
                    break;
                }
                return Err(anyhow!("track {path}: {err}"));
            }
        };
        let measuring = run.measuring.load(Ordering::Acquire);
        if !measuring || first {
            skipped_before = track.skipped();
        }
        if measuring {
            stats.groups += 1;
        }
        // Each frame chunk by chunk (no copy); its latency when its last byte is here.
        loop {
            let next = tokio::select! {
                next = group.next_frame() => next,
                _ = stop.changed() => return Ok(finish(stats, &track, skipped_before)),
            };
            let mut frame = match next {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => {
                    if run.measuring.load(Ordering::Acquire) {
                        stats.dropped += 1;
                    }
                    break;
                }
            };
            let mut stamp = StampReader::default();
            let mut sent = None;
            let mut failed = false;
            loop {
                match frame.read_chunk().await {
                    Ok(Some(chunk)) => {
                        if let Some(found) = stamp.feed(&chunk) {
                            sent = Some(found);
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            let measuring = run.measuring.load(Ordering::Acquire);
            if failed {
                if measuring {
                    stats.dropped += 1;
                }
                break;
            }
            let now = run.epoch.elapsed().as_nanos() as u64;
            let size = frame.size() as u64;
            if first {
                first = false;
                run.ready.fetch_add(1, Ordering::AcqRel);
            }
            run.frames.fetch_add(1, Ordering::Relaxed);
            run.bytes.fetch_add(size, Ordering::Relaxed);
            if let Some((sent_at, frame_index)) = sent {
                pace.advance(index, frame_index + 1);
                if measuring {
                    stats.frames += 1;
                    stats.bytes += size;
                    stats.latency.record(now.saturating_sub(sent_at));
                }
            }
            stamp.reset();
        }
    }
    Ok(finish(stats, &track, skipped_before))
}

fn finish(mut stats: ReceiverStats, track: &TrackConsumer, skipped_before: u64) -> ReceiverStats {
    stats.skipped = track.skipped().saturating_sub(skipped_before);
    stats
}

impl Report {
    fn subscribers(&self) -> u64 {
        u64::from(self.tracks) * u64::from(self.subscribers_per_track)
    }

    fn quantiles(&self) -> [(&'static str, u64); 5] {
        let h: &Histogram = &self.received.latency;
        [
            ("p50", h.quantile(0.50)),
            ("p90", h.quantile(0.90)),
            ("p99", h.quantile(0.99)),
            ("max", h.max()),
            ("mean", h.mean()),
        ]
    }

    fn frames_per_second(&self) -> f64 {
        self.received.frames as f64 / self.seconds.max(1e-9)
    }

    /// The relay's CPU time per delivered frame, in microseconds.
    fn relay_cpu_per_frame(&self) -> Option<f64> {
        let relay = self.relay.as_ref()?;
        (self.received.frames > 0)
            .then(|| relay.cpu.as_secs_f64() * 1e6 / self.received.frames as f64)
    }

    /// What the relay's resident memory grew by since before the bench connected, per
    /// connected subscriber (the publishers' share included).
    fn relay_kib_per_subscriber(&self) -> Option<f64> {
        let relay = self.relay.as_ref()?;
        let idle = relay.rss_idle_kib?;
        (self.subscribers_connected > 0).then(|| {
            relay.after.rss_kib.saturating_sub(idle) as f64 / self.subscribers_connected as f64
        })
    }

    fn megabytes_per_second(&self) -> f64 {
        self.received.bytes as f64 / self.seconds.max(1e-9) / 1e6
    }

    /// The report as one line of JSON (`--json`): the fields of [`JsonReport`].
    fn json(&self) -> String {
        serde_json::to_string(&self.json_report()).expect("a report serializes")
    }

    fn json_report(&self) -> JsonReport<'_> {
        let percent = |cpu: Duration| round(100.0 * cpu.as_secs_f64() / self.seconds.max(1e-9), 1);
        let [p50, p90, p99, max, mean] = self.quantiles().map(|(_, ns)| round(ns as f64 / 1e3, 1));
        JsonReport {
            mode: self.mode,
            url: &self.url,
            tracks: self.tracks,
            subscribers_per_track: self.subscribers_per_track,
            subscribers: self.subscribers(),
            subscribers_connected: self.subscribers_connected,
            frame_size: self.frame_size,
            rate: self.rate,
            max: self.rate.is_none(),
            groups_in_flight: self.groups_in_flight,
            group_expires_ms: self
                .group_expires
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            group_frames: self.group_frames,
            seconds: round(self.seconds, 3),
            frames_sent: self.frames_sent,
            frames_delivered: self.received.frames,
            bytes_delivered: self.received.bytes,
            frames_per_s: round(self.frames_per_second(), 1),
            mb_per_s: round(self.megabytes_per_second(), 3),
            latency_us: JsonLatency {
                p50,
                p90,
                p99,
                max,
                mean,
                samples: self.received.latency.count(),
            },
            groups_received: self.received.groups,
            groups_skipped: self.received.skipped,
            groups_dropped: self.received.dropped,
            cpu_s: round(self.cpu.as_secs_f64(), 3),
            cpu_percent: percent(self.cpu),
            machine_cpu_percent: self.machine.map(percent),
            relay: self.relay.as_ref().map(|relay| JsonRelay {
                pid: relay.pid,
                cpu_s: round(relay.cpu.as_secs_f64(), 3),
                cpu_percent: percent(relay.cpu),
                rss_kib: relay.after.rss_kib,
                cpu_us_per_frame: self.relay_cpu_per_frame().map(|us| round(us, 2)),
                rss_idle_kib: relay.rss_idle_kib,
                kib_per_subscriber: self.relay_kib_per_subscriber().map(|kib| round(kib, 1)),
            }),
        }
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let rate = match (self.rate, self.groups_in_flight) {
            (Some(r), _) => format!("{r} frames/s per track"),
            (None, Some(k)) => {
                format!("as fast as the subscribers read, {k} group(s) in flight")
            }
            (None, None) => "as fast as the subscribers read".to_string(),
        };
        let target = if self.mode == "raw-quic" {
            "raw QUIC, two endpoints in this process".to_string()
        } else if self.mode == "floor" {
            "the floor: no relay, one sender thread to every subscriber over raw QUIC".to_string()
        } else {
            self.url.clone()
        };
        out.push_str(&format!("moq bench: {target}\n"));
        out.push_str(&format!(
            "  load        {} track(s) x {} subscriber(s) ({} receiving), {} B frames, {} per group, {}\n",
            self.tracks,
            self.subscribers_per_track,
            self.subscribers_connected,
            self.frame_size,
            self.group_frames,
            rate
        ));
        if let Some(expires) = self.group_expires {
            out.push_str(&format!(
                "  expiry      {} ms (an older group is given up once a newer one exists)\n",
                expires.as_millis()
            ));
        }
        out.push_str(&format!(
            "  measured    {:.2} s: {} frames sent, {} delivered\n",
            self.seconds, self.frames_sent, self.received.frames
        ));
        out.push_str(&format!(
            "  throughput  {:.0} frames/s, {:.2} MB/s delivered\n",
            self.frames_per_second(),
            self.megabytes_per_second()
        ));
        let latency = self
            .quantiles()
            .iter()
            .map(|(name, ns)| format!("{name} {}", human_ns(*ns)))
            .collect::<Vec<_>>()
            .join("  ");
        out.push_str(&format!("  latency     {latency}\n"));
        out.push_str(&format!(
            "  groups      {} received, {} skipped, {} dropped\n",
            self.received.groups, self.received.skipped, self.received.dropped
        ));
        out.push_str(&format!(
            "  cpu (moq)   {:.2} s ({:.0}% of one core)\n",
            self.cpu.as_secs_f64(),
            100.0 * self.cpu.as_secs_f64() / self.seconds.max(1e-9)
        ));
        if let Some(machine) = self.machine {
            out.push_str(&format!(
                "  machine     {:.0}% of one core busy (every process, {} cores)\n",
                100.0 * machine.as_secs_f64() / self.seconds.max(1e-9),
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ));
        }
        if let Some(relay) = &self.relay {
            // With --floor the "relay" is the sender's thread.
            let who = if self.mode == "floor" {
                "sender thread"
            } else {
                "relay"
            };
            out.push_str(&format!(
                "  {who} {}  cpu {:.2} s ({:.0}%), rss {} KiB\n",
                relay.pid,
                relay.cpu.as_secs_f64(),
                100.0 * relay.cpu.as_secs_f64() / self.seconds.max(1e-9),
                relay.after.rss_kib
            ));
            if let Some(us) = self.relay_cpu_per_frame() {
                out.push_str(&format!("  {who} cpu   {us:.2} µs per delivered frame\n"));
            }
            if let (Some(kib), Some(idle)) = (self.relay_kib_per_subscriber(), relay.rss_idle_kib) {
                out.push_str(&format!(
                    "  relay rss   {kib:.1} KiB per subscriber (from {idle} KiB idle)\n"
                ));
            }
        }
        out
    }
}

fn human_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.0} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// `value` rounded to `decimals` decimal places: the precision `--json` reports.
fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// A report with every optional part present (`relay`) or absent.
    fn sample(relay: bool) -> Report {
        let mut received = ReceiverStats {
            frames: 10,
            bytes: 20_480,
            groups: 2,
            skipped: 1,
            dropped: 0,
            ..ReceiverStats::default()
        };
        for ns in [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 2000] {
            received.latency.record(ns);
        }
        let process = ProcessSample {
            rss_kib: 9000,
            ..ProcessSample::default()
        };
        Report {
            mode: "relay",
            url: "moqf://127.0.0.1:4443/\"a\\b\u{1}é".to_string(),
            tracks: 2,
            subscribers_per_track: 3,
            subscribers_connected: 6,
            frame_size: 2048,
            rate: relay.then_some(100.0),
            groups_in_flight: (!relay).then_some(2),
            group_expires: relay.then_some(Duration::from_millis(500)),
            group_frames: 30,
            seconds: 2.0004,
            frames_sent: 12,
            received,
            cpu: Duration::from_millis(1234),
            relay: relay.then_some(RelaySample {
                pid: 42,
                after: process,
                cpu: Duration::from_millis(500),
                rss_idle_kib: Some(3000),
            }),
            machine: relay.then_some(Duration::from_millis(3000)),
        }
    }

    /// What the report's JSON was before it was written with serde, for the same two reports:
    /// the scripts in `scripts/perf/` were written against it. Keys added since come after
    /// the old ones (`relay.cpu_us_per_frame` and what follows it).
    const BEFORE: [&str; 2] = [
        r#"{"mode":"relay","url":"moqf://127.0.0.1:4443/\"a\\b\u0001é","tracks":2,"subscribers_per_track":3,"subscribers":6,"subscribers_connected":6,"frame_size":2048,"rate":100,"max":false,"groups_in_flight":null,"group_expires_ms":500,"group_frames":30,"seconds":2.000,"frames_sent":12,"frames_delivered":10,"bytes_delivered":20480,"frames_per_s":5.0,"mb_per_s":0.010,"latency_us":{"p50":1.0,"p90":1.0,"p99":2.0,"max":2.0,"mean":1.1,"samples":10},"groups_received":2,"groups_skipped":1,"groups_dropped":0,"cpu_s":1.234,"cpu_percent":61.7,"machine_cpu_percent":150.0,"relay":{"pid":42,"cpu_s":0.500,"cpu_percent":25.0,"rss_kib":9000,"cpu_us_per_frame":50000.0,"rss_idle_kib":3000,"kib_per_subscriber":1000.0}}"#,
        r#"{"mode":"relay","url":"moqf://127.0.0.1:4443/\"a\\b\u0001é","tracks":2,"subscribers_per_track":3,"subscribers":6,"subscribers_connected":6,"frame_size":2048,"rate":null,"max":true,"groups_in_flight":2,"group_expires_ms":null,"group_frames":30,"seconds":2.000,"frames_sent":12,"frames_delivered":10,"bytes_delivered":20480,"frames_per_s":5.0,"mb_per_s":0.010,"latency_us":{"p50":1.0,"p90":1.0,"p99":2.0,"max":2.0,"mean":1.1,"samples":10},"groups_received":2,"groups_skipped":1,"groups_dropped":0,"cpu_s":1.234,"cpu_percent":61.7}"#,
    ];

    /// The same keys in the same order, the same kinds of value, equal numbers.
    fn assert_same(got: &Value, want: &Value, at: &str) {
        match (got, want) {
            (Value::Object(got), Value::Object(want)) => {
                let keys =
                    |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
                assert_eq!(keys(got), keys(want), "keys of {at}");
                for (key, value) in want {
                    assert_same(&got[key], value, &format!("{at}.{key}"));
                }
            }
            (Value::Number(got), Value::Number(want)) => {
                assert_eq!(got.as_f64(), want.as_f64(), "{at}");
            }
            _ => assert_eq!(got, want, "{at}"),
        }
    }

    #[test]
    fn json_keeps_its_fields_and_types() {
        for (relay, before) in [(true, BEFORE[0]), (false, BEFORE[1])] {
            let json = sample(relay).json();
            assert!(!json.contains('\n'), "{json}");
            let got: Value = serde_json::from_str(&json).unwrap();
            let want: Value = serde_json::from_str(before).unwrap();
            assert_same(&got, &want, "report");
        }
    }

    #[test]
    fn json_text() {
        assert_eq!(
            sample(false).json(),
            r#"{"mode":"relay","url":"moqf://127.0.0.1:4443/\"a\\b\u0001é","tracks":2,"subscribers_per_track":3,"subscribers":6,"subscribers_connected":6,"frame_size":2048,"rate":null,"max":true,"groups_in_flight":2,"group_expires_ms":null,"group_frames":30,"seconds":2.0,"frames_sent":12,"frames_delivered":10,"bytes_delivered":20480,"frames_per_s":5.0,"mb_per_s":0.01,"latency_us":{"p50":1.0,"p90":1.0,"p99":2.0,"max":2.0,"mean":1.1,"samples":10},"groups_received":2,"groups_skipped":1,"groups_dropped":0,"cpu_s":1.234,"cpu_percent":61.7}"#
        );
    }

    #[test]
    fn rounds_to_the_reported_precision() {
        assert_eq!(round(2.0004, 3), 2.0);
        assert_eq!(round(0.0105, 3), 0.011);
        assert_eq!(round(61.66, 1), 61.7);
        assert_eq!(round(12345.678, 1), 12345.7);
    }
}
