//! `moq bench --raw-quic`: the ceiling. Two quinn endpoints in this process on 127.0.0.1,
//! made by `moq-transport-quinn` (so the same TLS and QUIC settings as a relay's), and no
//! MoQ at all: the sender writes the same stamped frames back to back, `--group-frames` per
//! unidirectional stream, as fast as quinn takes them; the receiver reads the streams in
//! chunks and takes each frame's latency when its last byte arrives.
//!
//! `moq bench --floor`: the floor under a relay's fan-out. No MoQ and no relay: one thread
//! of its own (a single-threaded runtime, where its endpoint's connection drivers run too)
//! sends each frame straight to every subscriber over that subscriber's raw QUIC
//! connection, at --rate, `--group-frames` per stream, as a relay's fan-out must at least
//! do; the subscribers read as above. That thread's CPU time per delivered frame is what
//! any relay on quinn pays at the least for the same packets, and is reported where a
//! relay's is (`relay` in the JSON: the thread's id and its CPU).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use moq_transport_quinn::{
    Certificate, Client, ClientConfig, Connection, Server, ServerConfig, TransportSettings, Trust,
    quinn,
};
use tokio::sync::Mutex;

use super::stats::{MachineSample, ProcessSample, ReceiverStats, StampReader};
use super::{BenchArgs, RelaySample, Report, frame};

struct Shared {
    epoch: Instant,
    measuring: AtomicBool,
    frames: AtomicU64,
    bytes: AtomicU64,
    sent: AtomicU64,
    stats: Mutex<ReceiverStats>,
}

fn quic(conn: Connection) -> anyhow::Result<quinn::Connection> {
    match conn {
        Connection::Quic(conn) => Ok(conn.quic().clone()),
        Connection::WebTransport(_) => bail!("expected a raw QUIC connection"),
    }
}

pub(super) async fn run(
    args: &BenchArgs,
    transport: TransportSettings,
    progress: bool,
) -> anyhow::Result<Report> {
    let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).context("certificate")?;
    let fingerprint = cert.fingerprint();
    let mut server = Server::new(
        ServerConfig::new(vec![cert])
            .with_bind("127.0.0.1:0".parse().expect("an address"))
            .with_transport(transport.clone()),
    )
    .map_err(|e| anyhow!("{e}"))?;
    let port = server.local_addr()?.port();
    let client = Client::new(
        ClientConfig::default()
            .with_bind("127.0.0.1:0".parse().expect("an address"))
            .with_trust(Trust::Fingerprints(vec![fingerprint]))
            .with_transport(transport),
    )
    .map_err(|e| anyhow!("{e}"))?;
    let url = format!("moqf://127.0.0.1:{port}/");
    let accepting = tokio::spawn(async move {
        let request = server.accept().await.context("no connection")?;
        let conn = request.accept().await.map_err(|e| anyhow!("{e}"))?;
        anyhow::Ok((server, quic(conn)?))
    });
    let sender = quic(client.connect(&url).await.map_err(|e| anyhow!("{e}"))?)?;
    let (server, receiver) = accepting.await??;

    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        measuring: AtomicBool::new(false),
        frames: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        stats: Mutex::new(ReceiverStats::default()),
    });
    let receiving = tokio::spawn(receive(receiver.clone(), args.frame_size, shared.clone()));
    let sending = tokio::spawn(send(
        sender.clone(),
        args.frame_size,
        args.group_frames,
        shared.clone(),
    ));

    // A second of warm-up, then the window.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = ProcessSample::read(None).unwrap_or_default();
    let machine_before = MachineSample::read();
    shared.measuring.store(true, Ordering::Release);
    let started = Instant::now();
    let window = Duration::from_secs_f64(args.duration);
    let mut last = (
        started,
        shared.frames.load(Ordering::Relaxed),
        shared.bytes.load(Ordering::Relaxed),
    );
    while started.elapsed() < window {
        let left = window.saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        if progress {
            let now = Instant::now();
            let frames = shared.frames.load(Ordering::Relaxed);
            let bytes = shared.bytes.load(Ordering::Relaxed);
            let dt = now.duration_since(last.0).as_secs_f64().max(1e-9);
            eprintln!(
                "bench: {:>4.0} s  {:>10.0} frames/s  {:>8.1} MB/s  (raw QUIC)",
                started.elapsed().as_secs_f64(),
                (frames - last.1) as f64 / dt,
                (bytes - last.2) as f64 / dt / 1e6,
            );
            last = (now, frames, bytes);
        }
    }
    shared.measuring.store(false, Ordering::Release);
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = ProcessSample::read(None).unwrap_or_default();
    let machine = machine_before
        .zip(MachineSample::read())
        .map(|(before, after)| after.busy.saturating_sub(before.busy));

    sending.abort();
    sender.close(quinn::VarInt::from_u32(0), b"done");
    let _ = tokio::time::timeout(Duration::from_secs(2), receiving).await;
    client.close();
    server.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), client.wait_idle()).await;

    let received = shared.stats.lock().await.clone();
    Ok(Report {
        mode: "raw-quic",
        url,
        tracks: 1,
        subscribers_per_track: 1,
        subscribers_connected: 1,
        frame_size: args.frame_size,
        rate: None,
        groups_in_flight: None,
        group_expires: None,
        group_frames: args.group_frames,
        seconds,
        frames_sent: shared.sent.load(Ordering::Relaxed),
        received,
        cpu: cpu_after.cpu().saturating_sub(cpu_before.cpu()),
        relay: None,
        machine,
    })
}

/// Writes frames, `group_frames` per stream, until aborted or the connection closes.
async fn send(conn: quinn::Connection, frame_size: u64, group_frames: u64, shared: Arc<Shared>) {
    let template = vec![0xa5u8; frame_size as usize];
    let mut index = 0u64;
    'streams: loop {
        let Ok(mut stream) = conn.open_uni().await else {
            return;
        };
        for _ in 0..group_frames {
            let payload = frame(&template, shared.epoch, index);
            if stream.write_chunk(payload).await.is_err() {
                break 'streams;
            }
            if shared.measuring.load(Ordering::Relaxed) {
                shared.sent.fetch_add(1, Ordering::Relaxed);
            }
            index += 1;
        }
        let _ = stream.finish();
    }
}

/// Accepts streams until the connection closes; each is read on its own task.
async fn receive(conn: quinn::Connection, frame_size: u64, shared: Arc<Shared>) {
    let mut streams = tokio::task::JoinSet::new();
    while let Ok(stream) = conn.accept_uni().await {
        streams.spawn(read_stream(stream, frame_size, shared.clone()));
        while streams.try_join_next().is_some() {}
    }
    // The connection is gone: every stream task ends now, with what it counted.
    while streams.join_next().await.is_some() {}
}

async fn read_stream(mut stream: quinn::RecvStream, frame_size: u64, shared: Arc<Shared>) {
    let mut local = ReceiverStats::default();
    let mut stamp = StampReader::default();
    let mut sent_at = None;
    let mut in_frame = 0u64;
    let mut complete = true;
    loop {
        let chunk = match stream.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => chunk.bytes,
            Ok(None) => break,
            Err(_) => {
                complete = false;
                break;
            }
        };
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let take = (frame_size - in_frame).min(rest.len() as u64) as usize;
            if let Some((at, _)) = stamp.feed(&rest[..take]) {
                sent_at = Some(at);
            }
            in_frame += take as u64;
            rest = &rest[take..];
            if in_frame == frame_size {
                let now = shared.epoch.elapsed().as_nanos() as u64;
                shared.frames.fetch_add(1, Ordering::Relaxed);
                shared.bytes.fetch_add(frame_size, Ordering::Relaxed);
                if shared.measuring.load(Ordering::Relaxed) {
                    local.frames += 1;
                    local.bytes += frame_size;
                    if let Some(at) = sent_at.take() {
                        local.latency.record(now.saturating_sub(at));
                    }
                }
                in_frame = 0;
                stamp.reset();
            }
        }
    }
    if local.frames > 0 {
        local.groups = 1;
    }
    if !complete && shared.measuring.load(Ordering::Relaxed) {
        local.dropped = 1;
    }
    shared.stats.lock().await.merge(&local);
}

/// `moq bench --floor`: see the module's documentation.
pub(super) async fn run_floor(
    args: &BenchArgs,
    transport: TransportSettings,
    progress: bool,
) -> anyhow::Result<Report> {
    let subscribers = args.subscribers as usize;
    if subscribers == 0 {
        bail!("--floor needs at least one subscriber");
    }
    let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).context("certificate")?;
    let fingerprint = cert.fingerprint();
    let server = Server::new(
        ServerConfig::new(vec![cert])
            .with_bind("127.0.0.1:0".parse().expect("an address"))
            .with_transport(transport.clone()),
    )
    .map_err(|e| anyhow!("{e}"))?;
    let port = server.local_addr()?.port();
    let url = format!("moqf://127.0.0.1:{port}/");
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        measuring: AtomicBool::new(false),
        frames: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        stats: Mutex::new(ReceiverStats::default()),
    });

    // The sender's thread: it reports its /proc directory, accepts every subscriber, then
    // sends until `stop`.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<anyhow::Result<String>>();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (args, shared, stop) = (args.clone(), shared.clone(), stop.clone());
        std::thread::Builder::new()
            .name("floor-sender".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                runtime.block_on(floor_sender(server, args, shared, stop, ready_tx))
            })
            .context("starting the sender's thread")?
    };

    // Subscribers: --per-endpoint connections per client socket, as against a relay.
    let per_endpoint = args.per_endpoint.max(1);
    let config = ClientConfig::default()
        .with_bind("127.0.0.1:0".parse().expect("an address"))
        .with_trust(Trust::Fingerprints(vec![fingerprint]))
        .with_transport(transport);
    let clients = (0..subscribers.div_ceil(per_endpoint))
        .map(|_| Client::new(config.clone()).map_err(|e| anyhow!("{e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut connecting = tokio::task::JoinSet::new();
    let handshakes = Arc::new(tokio::sync::Semaphore::new(args.connect_parallel.max(1)));
    for n in 0..subscribers {
        let (client, url, handshakes) = (
            clients[n / per_endpoint].clone(),
            url.clone(),
            handshakes.clone(),
        );
        connecting.spawn(async move {
            let _permit = handshakes.acquire_owned().await;
            quic(client.connect(&url).await.map_err(|e| anyhow!("{e}"))?)
        });
    }
    let mut receivers = Vec::new();
    let mut receiving = tokio::task::JoinSet::new();
    // Bounded per connection, as a stuck handshake must not hang the bench.
    while let Some(conn) = tokio::time::timeout(Duration::from_secs(30), connecting.join_next())
        .await
        .context("connecting the subscribers timed out")?
    {
        let conn = conn??;
        receiving.spawn(receive(conn.clone(), args.frame_size, shared.clone()));
        receivers.push(conn);
    }
    let thread_dir = ready_rx.await.context("the sender's thread ended")??;

    // A second of warm-up once everyone receives, then the window.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = ProcessSample::read(None).unwrap_or_default();
    let sender_before = ProcessSample::read_dir(&thread_dir).unwrap_or_default();
    let machine_before = MachineSample::read();
    shared.measuring.store(true, Ordering::Release);
    let started = Instant::now();
    let window = Duration::from_secs_f64(args.duration);
    while started.elapsed() < window {
        let left = window.saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        if progress {
            eprintln!(
                "bench: {:>4.0} s  {:>10} frames delivered  (floor)",
                started.elapsed().as_secs_f64(),
                shared.frames.load(Ordering::Relaxed),
            );
        }
    }
    shared.measuring.store(false, Ordering::Release);
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = ProcessSample::read(None).unwrap_or_default();
    let sender_after = ProcessSample::read_dir(&thread_dir).unwrap_or_default();
    let machine = machine_before
        .zip(MachineSample::read())
        .map(|(before, after)| after.busy.saturating_sub(before.busy));

    stop.store(true, Ordering::Release);
    let _ = tokio::task::spawn_blocking(move || sender.join()).await;
    for conn in &receivers {
        conn.close(quinn::VarInt::from_u32(0), b"done");
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while receiving.join_next().await.is_some() {}
    })
    .await;
    for client in &clients {
        client.close();
    }

    let tid = thread_dir
        .rsplit('/')
        .next()
        .and_then(|tid| tid.parse().ok())
        .unwrap_or(0);
    let received = shared.stats.lock().await.clone();
    Ok(Report {
        mode: "floor",
        url,
        tracks: 1,
        subscribers_per_track: args.subscribers,
        subscribers_connected: receivers.len(),
        frame_size: args.frame_size,
        rate: Some(args.rate),
        groups_in_flight: None,
        group_expires: None,
        group_frames: args.group_frames,
        seconds,
        frames_sent: shared.sent.load(Ordering::Relaxed),
        received,
        cpu: cpu_after.cpu().saturating_sub(cpu_before.cpu()),
        relay: Some(RelaySample {
            pid: tid,
            after: sender_after,
            cpu: sender_after.cpu().saturating_sub(sender_before.cpu()),
            rss_idle_kib: None,
        }),
        machine,
    })
}

/// The floor's sender, on its own thread: accepts `--subscribers` connections, then writes
/// each frame to every one of them at `--rate` (a new stream per `--group-frames`), until
/// `stop`. A connection that fails is left out from then on.
async fn floor_sender(
    mut server: Server,
    args: BenchArgs,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    ready: tokio::sync::oneshot::Sender<anyhow::Result<String>>,
) {
    let accepted = async {
        // This thread's /proc directory ("PID/task/TID"), for its CPU time.
        let dir = std::fs::read_link("/proc/thread-self").context("/proc/thread-self")?;
        let mut conns = Vec::new();
        while conns.len() < args.subscribers as usize {
            let request = server.accept().await.context("the endpoint closed")?;
            conns.push(quic(request.accept().await.map_err(|e| anyhow!("{e}"))?)?);
        }
        anyhow::Ok((format!("/proc/{}", dir.display()), conns))
    };
    let conns = match accepted.await {
        Ok((dir, conns)) => {
            let _ = ready.send(Ok(dir));
            conns
        }
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    let mut streams: Vec<Option<quinn::SendStream>> = conns.iter().map(|_| None).collect();
    let mut alive = vec![true; conns.len()];
    let template = vec![0xa5u8; args.frame_size as usize];
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let started = tokio::time::Instant::now();
    let mut index = 0u64;
    while !stop.load(Ordering::Acquire) {
        tokio::time::sleep_until(started + interval.mul_f64(index as f64)).await;
        let payload = frame(&template, shared.epoch, index);
        let new_group = index.is_multiple_of(args.group_frames);
        for ((conn, stream), alive) in conns.iter().zip(&mut streams).zip(&mut alive) {
            if !*alive {
                continue;
            }
            if new_group {
                if let Some(mut done) = stream.take() {
                    let _ = done.finish();
                }
                *stream = conn.open_uni().await.ok();
            }
            let written = match stream {
                Some(stream) => stream.write_chunk(payload.clone()).await.is_ok(),
                None => false,
            };
            *alive = written;
        }
        if shared.measuring.load(Ordering::Relaxed) {
            shared.sent.fetch_add(1, Ordering::Relaxed);
        }
        index += 1;
    }
    for conn in &conns {
        conn.close(quinn::VarInt::from_u32(0), b"done");
    }
    server.close();
}
