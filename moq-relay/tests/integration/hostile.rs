//! The relay under hostile or heavy load: relay-wide limits with their codes, and nobody
//! else noticing.

use std::time::Duration;

use moq_model::{Error as ModelError, Path, Track};
use moq_proto::ErrorCode;
use moq_relay::{RelayConfig, RelayLimits};
use moq_session::Error;
use moq_session::transport::TransportError;
use moq_transport_quinn::ConnectError;

use crate::support::*;

const BOTH: [Via; 2] = [Via::Quic, Via::WebTransport];

fn p(text: &str) -> Path {
    text.split('/').filter(|s| !s.is_empty()).collect()
}

/// Connects and expects to be turned away with code 11; returns the reason.
async fn turned_away(relay: &Harness, via: Via) -> String {
    match relay.connect_to(via, "").await {
        Err(ConnectFailure::Connect(ConnectError::WebTransport { message, .. })) => {
            assert!(message.contains("bounds exceeded (11)"), "{message}");
            message
        }
        Err(ConnectFailure::Session(Error::Transport(TransportError::ClosedByPeer {
            code,
            reason,
        }))) => {
            assert_eq!(code, ErrorCode::BOUNDS_EXCEEDED, "{reason}");
            reason
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("admitted past the limit"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_limited_in_all_and_per_address() {
    for (limits, expected) in [
        (RelayLimits::default().max_sessions(2), "full"),
        (RelayLimits::default().max_sessions_per_ip(2), "127.0.0.1"),
    ] {
        let relay = Harness::start_with(RelayConfig::default().with_limits(limits)).await;
        let a = relay.connect(Via::Quic).await;
        let b = relay.connect(Via::WebTransport).await;
        until("two sessions", || relay.relay.stats().sessions == 2).await;
        for via in BOTH {
            assert!(turned_away(&relay, via).await.contains(expected));
        }
        assert_eq!(relay.relay.stats().refused, 2);
        // The admitted ones are untouched, and a place freed is taken again.
        let (mut track, consumer) = Track::new(p("still/here")).produce();
        a.session.publish(consumer).unwrap();
        track.append_group().write_frame("yes").unwrap();
        until("announced", || {
            relay.relay.origins().route(&p("still/here")).is_some()
        })
        .await;
        let mut sub = b.session.subscribe(Track::new(p("still/here")));
        let mut group = sub.next_group().await.unwrap().unwrap();
        assert_eq!(group.read_frame().await.unwrap().unwrap(), "yes");
        b.leave().await;
        until("one session", || relay.relay.stats().sessions == 1).await;
        let c = relay.connect(Via::WebTransport).await;
        for peer in [a, c] {
            peer.leave().await;
        }
        relay.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_paths_are_limited_relay_wide() {
    let limits = RelayLimits::default().max_announced(3);
    let relay = Harness::start_with(RelayConfig::default().with_limits(limits)).await;
    let modest = relay.connect(Via::Quic).await;
    let mut tracks = Vec::new();
    for name in ["a", "b"] {
        let (track, consumer) = Track::new(p(name)).produce();
        modest.session.publish(consumer).unwrap();
        tracks.push(track);
    }
    until("two paths", || relay.relay.stats().announced == 2).await;
    for via in BOTH {
        let greedy = relay.connect(via).await;
        let mut mine = Vec::new();
        for i in 0..5 {
            let (track, consumer) = Track::new(p(&format!("greedy/{i}"))).produce();
            greedy.session.publish(consumer).unwrap();
            mine.push(track);
        }
        match tokio::time::timeout(Duration::from_secs(10), greedy.session.closed())
            .await
            .unwrap()
        {
            Error::Transport(TransportError::ClosedByPeer { code, reason }) => {
                assert_eq!(code, ErrorCode::BOUNDS_EXCEEDED);
                assert!(reason.contains("most announced paths"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Its paths went with it; the modest publisher's stay.
        until("back to two", || relay.relay.stats().announced == 2).await;
        greedy.leave().await;
    }
    modest.leave().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_limited_relay_wide() {
    let limits = RelayLimits::default().max_subscriptions(2);
    let relay = Harness::start_with(RelayConfig::default().with_limits(limits)).await;
    let publisher = relay.connect(Via::Quic).await;
    let mut tracks = Vec::new();
    for name in ["a", "b", "c"] {
        let (mut track, consumer) = Track::new(p(name)).produce();
        publisher.session.publish(consumer).unwrap();
        track.append_group().write_frame(name).unwrap();
        tracks.push(track);
    }
    until("three paths", || relay.relay.stats().announced == 3).await;
    let x = relay.connect(Via::Quic).await;
    let y = relay.connect(Via::WebTransport).await;
    let mut a = x.session.subscribe(Track::new(p("a")));
    let mut b = y.session.subscribe(Track::new(p("b")));
    for track in [&mut a, &mut b] {
        assert!(track.next_group().await.unwrap().is_some());
    }
    let mut c = y.session.subscribe(Track::new(p("c")));
    assert_eq!(
        c.next_group().await.unwrap_err(),
        ModelError::BoundsExceeded
    );
    // Room again once one ends.
    drop(a);
    until("one served", || relay.relay.stats().subscribers == 1).await;
    let mut c = x.session.subscribe(Track::new(p("c")));
    assert!(c.next_group().await.unwrap().is_some());
    for peer in [publisher, x, y] {
        peer.leave().await;
    }
    relay.stop().await;
}

/// Frames every 10 ms on a track through the relay; returns the largest gap between two
/// arrivals at a subscriber while `during` runs.
async fn largest_gap_while<F: std::future::Future>(
    relay: &Harness,
    during: F,
) -> (Duration, F::Output) {
    let publisher = relay.connect(Via::Quic).await;
    let (mut track, consumer) = Track::new(p("legit/clock")).produce();
    publisher.session.publish(consumer).unwrap();
    let ticking = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut group = track.append_group();
        for i in 0u64.. {
            tick.tick().await;
            if i % 100 == 0 {
                group = track.append_group();
            }
            if group.write_frame(i.to_be_bytes().to_vec()).is_err() {
                break;
            }
        }
    });
    until("announced", || {
        relay.relay.origins().route(&p("legit/clock")).is_some()
    })
    .await;
    let subscriber = relay.connect(Via::WebTransport).await;
    let mut sub = subscriber.session.subscribe(Track::new(p("legit/clock")));
    let (gaps, stop) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        let mut stop = stop;
        let mut largest = Duration::ZERO;
        let mut last = std::time::Instant::now();
        let mut group = sub.next_group().await.unwrap().unwrap();
        loop {
            tokio::select! {
                frame = group.read_frame() => match frame {
                    Ok(Some(_)) => {
                        largest = largest.max(last.elapsed());
                        last = std::time::Instant::now();
                    }
                    other => match sub.next_group().await {
                        Ok(Some(next)) => group = next,
                        end => panic!("{other:?} then {end:?} after {:?}", last.elapsed()),
                    },
                },
                _ = &mut stop => return largest,
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let output = during.await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = gaps.send(());
    let largest = reader.await.unwrap();
    ticking.abort();
    publisher.leave().await;
    subscriber.leave().await;
    (largest, output)
}

/// A session that announced 65,000 paths leaves: the relay's other sessions barely notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_session_with_many_paths_stalls_nobody() {
    const PATHS: usize = 65_000;
    let relay = Harness::start().await;
    // A listener of every path, as a browser page or a relay's peers would be.
    let watcher = relay.connect(Via::Quic).await;
    let mut everything = watcher.session.announced(Path::empty());
    let counting = tokio::spawn(async move {
        let mut active = 0i64;
        while let Ok(Some(event)) = everything.next().await {
            active += if event.is_active() { 1 } else { -1 };
        }
        active
    });
    let flooder = relay.connect(Via::Quic).await;
    let mut paths = moq_model::AnnouncedProducer::new();
    for i in 0..PATHS {
        paths.announce(p(&format!("flood/{i}")));
    }
    flooder.session.announce(paths.consume(Path::empty()));
    until("all announced", || relay.relay.stats().announced >= PATHS).await;
    // The subscriber's largest gap with nothing else going on, then while the 65,000 paths
    // end (for the relay and for the watcher, who hears every one of them end).
    let (quiet, ()) = largest_gap_while(&relay, async {
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .await;
    let started = std::time::Instant::now();
    let (gap, ()) = largest_gap_while(&relay, async {
        flooder.leave().await;
        until("all gone", || relay.relay.stats().announced <= 1).await;
    })
    .await;
    println!(
        "{PATHS} paths ended in {:?}; largest gap of a 100 frames/s subscriber {gap:?} \
         (quiet: {quiet:?})",
        started.elapsed()
    );
    // Ended all at once, without yielding to the other sessions, the gap was the whole
    // teardown: 0.4 to 0.7 s in a debug build against 0.1 to 0.15 s quiet.
    assert!(
        gap <= quiet * 2 + Duration::from_millis(100),
        "the teardown stalled the subscriber: {gap:?} (quiet {quiet:?})"
    );
    drop(paths);
    watcher.leave().await;
    let _ = counting.await;
    relay.stop().await;
}

/// A publisher writes one group that never ends, in 1 MiB frames (each under the frame
/// cap), while one subscriber reads it and another stalls. The relay holds at most its
/// memory budget, the group is aborted with 11 for everyone, and the track goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_group_is_cut_at_the_memory_limits() {
    const MIB: usize = 1 << 20;
    for (limits, what) in [
        (
            RelayLimits::default().max_group_bytes(6 * MIB),
            "the group limit",
        ),
        (
            RelayLimits::default().max_memory(4 * MIB),
            "the relay's memory",
        ),
    ] {
        let max_memory = limits.max_memory;
        let relay = Harness::start_with(RelayConfig::default().with_limits(limits)).await;
        for via in BOTH {
            let publisher = relay.connect(via).await;
            let (mut track, consumer) = Track::new(p("big")).produce();
            publisher.session.publish(consumer).unwrap();
            track.append_group().write_frame("start").unwrap();
            until("announced", || {
                relay.relay.origins().route(&p("big")).is_some()
            })
            .await;
            let reader = relay.connect(Via::Quic).await;
            let staller = relay.connect(Via::WebTransport).await;
            let mut read = reader.session.subscribe(Track::new(p("big")));
            let mut stalled = staller.session.subscribe(Track::new(p("big")));
            // Both have the first group, so the relay serves both from here on.
            for sub in [&mut read, &mut stalled] {
                let mut group = sub.next_group().await.unwrap().unwrap();
                assert_eq!(group.read_frame().await.unwrap().unwrap(), "start");
            }
            let mut group = track.append_group();
            group.write_frame(vec![7u8; MIB]).unwrap();
            let mut cut = read.next_group().await.unwrap().unwrap();
            // 20 MiB into one group, paced so the relay keeps up; it never holds more than
            // its budget.
            let mut peak = 0;
            for _ in 1..20 {
                if group.write_frame(vec![7u8; MIB]).is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                peak = peak.max(relay.relay.stats().memory);
            }
            assert!(peak <= max_memory, "{what}: the relay held {peak} bytes");
            // The reader's copy of the group ends with 11 once the relay cut it.
            let ended = loop {
                match tokio::time::timeout(Duration::from_secs(20), cut.read_frame()).await {
                    Ok(Ok(Some(_))) => {}
                    Ok(other) => break other,
                    Err(_) => panic!("{what}: the group never ended for the reader"),
                }
            };
            assert_eq!(ended, Err(ModelError::BoundsExceeded), "{what}");
            // The track goes on: a new small group reaches the reader.
            drop(group);
            let mut next = track.append_group();
            next.write_frame("after").unwrap();
            next.finish();
            let mut group = loop {
                let group = read.next_group().await.unwrap().unwrap();
                if group.sequence() >= 2 {
                    break group;
                }
            };
            assert_eq!(
                group.read_frame().await.unwrap().unwrap(),
                "after",
                "{what}"
            );
            for peer in [publisher, reader, staller] {
                peer.leave().await;
            }
            // Everything it held comes back once the sessions are gone.
            until("memory given back", || relay.relay.stats().memory == 0).await;
        }
        relay.stop().await;
    }
}

/// The binary's limit flags reach the relay: with `--max-sessions 1` a second session is
/// turned away with 11.
#[test]
fn the_binarys_limit_flags_take_effect() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut relay = Command::new(env!("CARGO_BIN_EXE_moq-relay"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--tls-self-sign",
            "localhost",
            "-q",
        ])
        .args(["--max-sessions", "1", "--max-memory", "1000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The reader lives until the relay is killed: the relay prints more lines after the first,
    // and a closed pipe would make its next print fail and the relay exit.
    let mut stdout = BufReader::new(relay.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let port: u16 = first
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {first}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let refused = runtime.block_on(async {
        let client = moq_transport_quinn::Client::new(
            moq_transport_quinn::ClientConfig::default()
                .with_bind("127.0.0.1:0".parse().unwrap())
                .with_trust(moq_transport_quinn::Trust::DangerousDisableVerify),
        )
        .unwrap();
        let url = format!("moqf://127.0.0.1:{port}/");
        let conn = client.connect(&url).await.unwrap();
        let (_first, driver) = moq_session::Session::connect(conn).await.unwrap();
        tokio::spawn(driver);
        let conn = client.connect(&url).await.unwrap();
        let refused = match moq_session::Session::connect(conn).await {
            Err(Error::Transport(TransportError::ClosedByPeer { code, reason })) => (code, reason),
            Ok(_) => panic!("a second session was admitted"),
            Err(other) => panic!("{other:?}"),
        };
        client.close();
        refused
    });
    let _ = relay.kill();
    let _ = relay.wait();
    drop(stdout);
    assert_eq!(refused.0, ErrorCode::BOUNDS_EXCEEDED);
    assert!(refused.1.contains("full (1 sessions)"), "{}", refused.1);
}
