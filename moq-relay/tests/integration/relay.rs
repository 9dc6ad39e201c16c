//! The relay in-process, with clients over raw QUIC and WebTransport on 127.0.0.1.

use std::time::Duration;

use moq_model::{
    Announced, Broadcast, Error as ModelError, Path, Track, TrackConsumer, TrackProducer,
};
use moq_proto::{GroupOrder, Info};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_subscribers_get_every_byte_over_both_transports() {
    let relay = Harness::start().await;
    let publisher = relay.connect(Via::Quic).await;
    let path = Path::from(["room", "alice", "data"]);
    let (mut track, consumer) = Track::new(path.clone()).produce();
    publisher.session.publish(consumer).unwrap();
    until("announced", || relay.relay.origins().route(&path).is_some()).await;

    let a = relay.connect(Via::Quic).await;
    let b = relay.connect(Via::WebTransport).await;
    let mut sub_a = a.session.subscribe(Track::new(path.clone()));
    let mut sub_b = b.session.subscribe(Track::new(path.clone()));
    until("both served", || relay.relay.stats().subscribers == 2).await;
    // One upstream subscription serves both.
    until("one upstream", || publisher.session.stats().serving == 1).await;
    assert_eq!(relay.relay.stats().tracks, 1);

    let groups: Vec<Vec<Vec<u8>>> = vec![
        vec![b"hello".to_vec(), Vec::new(), (0..=255u8).collect()],
        vec![vec![0u8; 100_000], b"x".to_vec()],
        vec![],
    ];
    for frames in &groups {
        let mut group = track.append_group();
        for frame in frames {
            if frame.len() > 10 {
                // In chunks, to cross the relay as several writes.
                let mut writer = group.create_frame(frame.len()).unwrap();
                for chunk in frame.chunks(7_000) {
                    writer.write(bytes::Bytes::copy_from_slice(chunk)).unwrap();
                }
            } else {
                group
                    .write_frame(bytes::Bytes::copy_from_slice(frame))
                    .unwrap();
            }
        }
        let sequence = group.sequence();
        group.finish();
        for sub in [&mut sub_a, &mut sub_b] {
            assert_eq!(read_group(sub).await, (sequence, frames.clone()));
        }
    }
    track.finish();
    for sub in [&mut sub_a, &mut sub_b] {
        assert!(sub.next_group().await.unwrap().is_none());
    }

    drop((sub_a, sub_b));
    a.leave().await;
    b.leave().await;
    publisher.leave().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_on_several_endpoints_keep_receiving_after_their_address_changes() {
    let relay = Harness::start_on_endpoints(moq_relay::RelayConfig::default(), 4).await;
    let publisher = relay.connect(Via::Quic).await;
    let path = Path::from(["room", "spread"]);
    let (mut track, consumer) = Track::new(path.clone()).produce();
    publisher.session.publish(consumer).unwrap();
    until("announced", || relay.relay.origins().route(&path).is_some()).await;

    // Eight subscribers, both transports, spread by the kernel over the four sockets.
    let mut peers = Vec::new();
    for i in 0..8 {
        peers.push(
            relay
                .connect(if i % 2 == 0 {
                    Via::Quic
                } else {
                    Via::WebTransport
                })
                .await,
        );
    }
    for round in 0..2u8 {
        let mut group = track.append_group();
        group
            .write_frame(bytes::Bytes::from(vec![round; 3000]))
            .unwrap();
        let sequence = group.sequence();
        group.finish();
        // Subscribed after the group: each starts at it. After the move, a SUBSCRIBE is a
        // request from the new address, which must reach the endpoint owning the connection.
        for peer in &peers {
            let mut sub = peer.session.subscribe(Track::new(path.clone()));
            let received = tokio::time::timeout(Duration::from_secs(10), read_group(&mut sub))
                .await
                .expect("the group arrives");
            assert_eq!(received, (sequence, vec![vec![round; 3000]]));
        }
        if round == 0 {
            // Every subscriber moves to a new port: most now land on another socket than
            // the one their connection started on.
            for peer in &peers {
                peer.client.rebind("127.0.0.1:0".parse().unwrap()).unwrap();
            }
        }
    }

    // The publisher and the eight subscribers arrived spread over the endpoints, and
    // packets from the new addresses were passed between them.
    let [server] = &relay.relay.server_stats()[..] else {
        panic!("one server")
    };
    let arrived = server.connections_per_endpoint();
    assert_eq!(arrived.iter().sum::<u64>(), 9, "{arrived:?}");
    assert!(server.forwarded_datagrams() > 0);

    track.finish();
    for peer in peers {
        peer.leave().await;
    }
    publisher.leave().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_starts_at_the_first_frame_of_the_latest_group() {
    let relay = Harness::start().await;
    let publisher = relay.connect(Via::WebTransport).await;
    let path = Path::from(["clock"]);
    let (mut track, consumer) = Track::new(path.clone()).produce();
    publisher.session.publish(consumer).unwrap();
    until("announced", || relay.relay.origins().route(&path).is_some()).await;

    let early = relay.connect(Via::Quic).await;
    let mut first = early.session.subscribe(Track::new(path.clone()));
    let mut old = track.append_group();
    old.write_frame("old").unwrap();
    old.finish();
    assert_eq!(read_group(&mut first).await.1, vec![b"old".to_vec()]);

    let mut group = track.append_group();
    group.write_frame("base").unwrap();
    group.write_frame("01").unwrap();
    let mut live = first.next_group().await.unwrap().unwrap();
    assert_eq!(live.read_frame().await.unwrap().unwrap(), "base");
    assert_eq!(live.read_frame().await.unwrap().unwrap(), "01");

    // The late joiner is served from the relay's cache: no new upstream subscription.
    let late = relay.connect(Via::WebTransport).await;
    let mut second = late.session.subscribe(Track::new(path.clone()));
    let mut joined = second.next_group().await.unwrap().unwrap();
    assert_eq!(joined.sequence(), group.sequence());
    assert_eq!(joined.read_frame().await.unwrap().unwrap(), "base");
    assert_eq!(joined.read_frame().await.unwrap().unwrap(), "01");
    group.write_frame("02").unwrap();
    assert_eq!(joined.read_frame().await.unwrap().unwrap(), "02");
    assert_eq!(live.read_frame().await.unwrap().unwrap(), "02");
    assert_eq!(publisher.session.stats().serving, 1);

    drop((first, second, live, joined));
    early.leave().await;
    late.leave().await;
    publisher.leave().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_subscription_is_shared_and_ends_with_the_last_subscriber() {
    let relay = Harness::start().await;
    let publisher = relay.connect(Via::Quic).await;
    let path = Path::from(["shared"]);
    let (mut track, consumer) = Track::new(path.clone()).produce();
    publisher.session.publish(consumer).unwrap();
    until("announced", || relay.relay.origins().route(&path).is_some()).await;
    let mut group = track.append_group();
    group.write_frame("0").unwrap();

    let mut peers = Vec::new();
    let mut subs = Vec::new();
    for i in 0..3 {
        let via = if i % 2 == 0 {
            Via::Quic
        } else {
            Via::WebTransport
        };
        let peer = relay.connect(via).await;
        let mut sub = peer.session.subscribe(Track::new(path.clone()));
        let mut first = sub.next_group().await.unwrap().unwrap();
        assert_eq!(first.read_frame().await.unwrap().unwrap(), "0");
        peers.push(peer);
        subs.push(sub);
    }
    until("three served", || relay.relay.stats().subscribers == 3).await;
    assert_eq!(publisher.session.stats().serving, 1);
    assert_eq!(relay.relay.stats().tracks, 1);

    // Two leave: the upstream subscription stays.
    subs.truncate(1);
    for peer in peers.drain(1..) {
        peer.leave().await;
    }
    until("one served", || relay.relay.stats().subscribers == 1).await;
    assert_eq!(publisher.session.stats().serving, 1);
    group.write_frame("1").unwrap();

    // The last one leaves: the upstream subscription ends.
    subs.clear();
    until("upstream ended", || publisher.session.stats().serving == 0).await;
    until("no tracks", || relay.relay.stats().tracks == 0).await;

    for peer in peers {
        peer.leave().await;
    }
    publisher.leave().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_recent_announcer_wins() {
    let relay = Harness::start().await;
    let path = Path::from(["x"]);
    let one = relay.connect(Via::Quic).await;
    let (mut track_one, consumer) = Track::new(path.clone()).produce();
    one.session.publish(consumer).unwrap();
    track_one.append_group().write_frame("one").unwrap();
    until("first announced", || {
        relay.relay.origins().route(&path).is_some()
    })
    .await;
    let first_id = relay.relay.origins().route(&path).unwrap().id;

    let two = relay.connect(Via::WebTransport).await;
    let (mut track_two, consumer) = Track::new(path.clone()).produce();
    two.session.publish(consumer).unwrap();
    track_two.append_group().write_frame("two").unwrap();
    until("second announced", || {
        relay.relay.origins().route(&path).unwrap().id != first_id
    })
    .await;

    let sub = relay.connect(Via::Quic).await;
    let mut track = sub.session.subscribe(Track::new(path.clone()));
    assert_eq!(read_frame0(&mut track).await, "two");
    drop(track);

    // When the latest announcer leaves, the one before it serves again.
    two.leave().await;
    until("fell back", || {
        relay.relay.origins().route(&path).map(|r| r.id) == Some(first_id)
    })
    .await;
    until("old subscription gone", || relay.relay.stats().tracks == 0).await;
    let mut track = sub.session.subscribe(Track::new(path.clone()));
    assert_eq!(read_frame0(&mut track).await, "one");
    drop(track);

    drop((track_one, track_two));
    sub.leave().await;
    one.leave().await;
    relay.stop().await;
}

async fn read_frame0(track: &mut TrackConsumer) -> String {
    let mut group = track.next_group().await.unwrap().expect("a group");
    let frame = group.read_frame().await.unwrap().expect("a frame");
    String::from_utf8(frame.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_reach_every_matching_prefix() {
    let relay = Harness::start().await;
    let watcher = relay.connect(Via::WebTransport).await;
    let mut room = watcher.session.announced(Path::from(["room"]));
    let mut other = watcher.session.announced(Path::from(["other"]));
    let everything_peer = relay.connect(Via::Quic).await;
    let mut everything = everything_peer.session.announced(Path::empty());

    let publisher = relay.connect(Via::Quic).await;
    let path = Path::from(["room", "a"]);
    let (track, consumer) = Track::new(path.clone()).produce();
    publisher.session.publish(consumer).unwrap();
    assert_eq!(
        next_announced(&mut room).await,
        Announced::Active(path.clone())
    );
    assert_eq!(
        next_announced(&mut everything).await,
        Announced::Active(path.clone())
    );

    // A late watcher learns the active paths at once.
    let mut late = watcher.session.announced(Path::from(["room"]));
    assert_eq!(
        next_announced(&mut late).await,
        Announced::Active(path.clone())
    );

    // Ended reaches them too.
    drop(track);
    assert_eq!(
        next_announced(&mut room).await,
        Announced::Ended(path.clone())
    );
    assert_eq!(
        next_announced(&mut everything).await,
        Announced::Ended(path.clone())
    );
    assert_eq!(
        next_announced(&mut late).await,
        Announced::Ended(path.clone())
    );

    // The non-matching prefix saw none of it: its first event is its own path.
    let other_path = Path::from(["other", "b"]);
    let (_other_track, consumer) = Track::new(other_path.clone()).produce();
    publisher.session.publish(consumer).unwrap();
    assert_eq!(
        next_announced(&mut other).await,
        Announced::Active(other_path.clone())
    );

    // A publisher that leaves ends its paths.
    publisher.leave().await;
    assert_eq!(
        next_announced(&mut other).await,
        Announced::Ended(other_path)
    );

    drop((room, other, everything, late));
    watcher.leave().await;
    everything_peer.leave().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_leaves_nothing_behind() {
    let relay = Harness::start().await;
    let publisher = relay.connect(Via::Quic).await;
    let path = Path::from(["churn"]);
    let (mut track, consumer) = Track::new(path.clone()).produce();
    publisher.session.publish(consumer).unwrap();
    track.append_group().write_frame("frame").unwrap();
    until("announced", || relay.relay.origins().route(&path).is_some()).await;

    for i in 0..100 {
        let via = if i % 2 == 0 {
            Via::Quic
        } else {
            Via::WebTransport
        };
        let peer = relay.connect(via).await;
        if i % 10 == 0 {
            // Publisher churn too: announce a path of its own, then leave with it.
            let (_track, consumer) = Track::new(["churn", "extra"]).produce();
            peer.session.publish(consumer).unwrap();
        }
        let mut sub = peer.session.subscribe(Track::new(path.clone()));
        assert_eq!(read_frame0(&mut sub).await, "frame");
        drop(sub);
        peer.leave().await;
    }

    until("only the publisher is left", || {
        let stats = relay.relay.stats();
        stats.sessions == 1
            && stats.announced == 1
            && stats.tracks == 0
            && stats.subscribers == 0
            && stats.group_streams == 0
    })
    .await;
    assert_eq!(relay.relay.origins().paths(), vec![path.clone()]);
    until("upstream ended", || publisher.session.stats().serving == 0).await;

    publisher.leave().await;
    until("empty", || {
        let stats = relay.relay.stats();
        stats.sessions == 0 && stats.announced == 0
    })
    .await;
    assert!(relay.relay.origins().paths().is_empty());
    drop(track);
    relay.stop().await;
}

/// A publisher of `path` (priority 3, ascending, 500 ms expiry) with groups 0 to `latest`
/// of one frame each, once the relay knows the path; and the Info that describes it.
async fn publish_described(
    relay: &Harness,
    path: &Path,
    latest: u64,
) -> (Peer, TrackProducer, Info) {
    let publisher = relay.connect(Via::Quic).await;
    let (mut track, consumer) = Track::build(path.clone())
        .priority(3)
        .group_order(GroupOrder::Ascending)
        .group_expires(Duration::from_millis(500))
        .produce();
    publisher.session.publish(consumer).unwrap();
    until("announced", || relay.relay.origins().route(path).is_some()).await;
    for sequence in 0..=latest {
        let mut group = track.append_group();
        group.write_frame(sequence.to_string()).unwrap();
        group.finish();
    }
    let info = Info {
        track_priority: 3,
        group_order: GroupOrder::Ascending,
        group_expires: Duration::from_millis(500),
        group_latest: latest,
    };
    (publisher, track, info)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_subscriber_gets_the_publishers_info() {
    let relay = Harness::start().await;
    let path = Path::from(["room", "carol", "audio"]);
    let (publisher, _track, expected) = publish_described(&relay, &path, 41).await;

    // The first subscriber asks for other values: the Info still describes the publisher's
    // track, and the latest group it has.
    let mut peers = Vec::new();
    for via in [Via::Quic, Via::WebTransport] {
        let peer = relay.connect(via).await;
        let mut sub = peer.session.subscribe(Track::new(path.clone()));
        assert_eq!(read_group(&mut sub).await, (41, vec![b"41".to_vec()]));
        until("Info", || peer.session.subscription_info(&path).is_some()).await;
        assert_eq!(
            peer.session.subscription_info(&path),
            Some(expected.clone())
        );
        peers.push((peer, sub));
    }
    assert_eq!(publisher.session.stats().serving, 1);

    for (peer, sub) in peers {
        drop(sub);
        peer.leave().await;
    }
    publisher.leave().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_unknown_upstream_is_not_found() {
    let relay = Harness::start().await;
    let publisher = relay.connect(Via::Quic).await;
    let prefix = Path::from(["room", "dave"]);
    let (mut broadcast, consumer) = Broadcast::new(prefix.clone()).produce();
    let _video = broadcast
        .create_track(Track::new(Path::from(["video"])))
        .unwrap();
    publisher.session.publish_broadcast(consumer).unwrap();
    until("announced", || {
        relay.relay.origins().route(&prefix).is_some()
    })
    .await;

    // Routed by the broadcast's prefix to the publisher, which knows no such track.
    let subscriber = relay.connect(Via::Quic).await;
    let mut sub = subscriber
        .session
        .subscribe(Track::new(Path::from(["room", "dave", "nope"])));
    assert_eq!(sub.next_group().await.unwrap_err(), ModelError::NotFound);
    assert_eq!(publisher.session.stats().serving, 0);

    drop(sub);
    subscriber.leave().await;
    publisher.leave().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_requests_are_answered_through_the_relay() {
    let relay = Harness::start().await;
    let path = Path::from(["room", "erin", "video"]);
    let (publisher, _track, expected) = publish_described(&relay, &path, 7).await;

    for via in [Via::Quic, Via::WebTransport] {
        let peer = relay.connect(via).await;
        // Nobody downstream subscribes: the relay forwards the request upstream.
        let info = tokio::time::timeout(Duration::from_secs(20), peer.session.info(path.clone()))
            .await
            .expect("an answer")
            .unwrap();
        assert_eq!(info, expected);
        // The upstream subscription made for it goes away with the request.
        until("upstream unsubscribed", || {
            publisher.session.stats().serving == 0
        })
        .await;
        // A path nobody announced: 13, and the session goes on.
        let unknown = tokio::time::timeout(
            Duration::from_secs(20),
            peer.session.info(Path::from(["room", "nobody"])),
        )
        .await
        .expect("an answer");
        match unknown {
            Err(moq_session::Error::Transport(
                moq_session::transport::TransportError::StreamReset(code),
            )) => assert_eq!(code, moq_proto::ErrorCode::NOT_FOUND),
            other => panic!("{other:?}"),
        }
        peer.leave().await;
    }

    publisher.leave().await;
    relay.stop().await;
}

/// WIRE.md §4.2: a client that offers no common version gets its session stream reset
/// with 9, and then the connection closed with 9, on both transports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_mismatch_is_reset_and_closed_with_9() {
    use moq_proto::{Encode, ErrorCode, Extensions, SessionClient, StreamBi, Version};
    use moq_session::transport::{Connection, RecvStream, SendStream, TransportError};

    let relay = Harness::start().await;
    for via in [Via::Quic, Via::WebTransport] {
        let client = relay.client();
        let conn = client.connect(&relay.url(via, "")).await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let hello = SessionClient {
            versions: vec![Version::FORK_01],
            extensions: Extensions::new(),
        };
        let mut bytes = StreamBi::Session.to_bytes().to_vec();
        bytes.extend_from_slice(&hello.to_bytes());
        send.write(bytes.into()).await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(10), recv.read())
            .await
            .unwrap();
        assert_eq!(read, Err(TransportError::StreamReset(ErrorCode::VERSION)));
        // We do not close: the relay closes with the same code a moment later.
        let closed = tokio::time::timeout(Duration::from_secs(10), conn.closed())
            .await
            .unwrap();
        assert_eq!(closed.code(), ErrorCode::VERSION, "{closed:?}");
        client.close();
    }
    relay.stop().await;
}
