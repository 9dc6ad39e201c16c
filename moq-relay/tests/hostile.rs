//! The relay under hostile or heavy load: relay-wide limits with their codes, and nobody
//! else noticing.

use std::time::Duration;

use moq_model::{Error as ModelError, Path, Track};
use moq_proto::ErrorCode;
use moq_relay::{RelayConfig, RelayLimits};
use moq_session::Error;
use moq_session::transport::TransportError;
use moq_transport_quinn::ConnectError;

mod support;
use support::*;

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
