//! Group expiry and GroupDrop (WIRE.md §4.5, §7.5).

use std::time::Duration;

use bytes::Bytes;
use moq_model::Track;
use moq_proto::{ErrorCode, GroupDrop, MessageReader, StreamBi, Subscribe};
use moq_session::transport::memory::Config;
use moq_session::transport::{Connection, RecvStream};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn an_expired_group_is_reset_when_a_newer_one_starts() {
    // 10 kB/s: a 100 kB group needs 10 s.
    let config = Config::default().bandwidth(10_000);
    let (client, server, _c, _s) = sessions_with(config, paused_clock(), paused_clock()).await;
    let (mut track, consumer) = Track::build(["x"])
        .group_expires(Duration::from_millis(100))
        .produce();
    client.publish(consumer).unwrap();
    let mut sub = server.subscribe(Track::new(["x"]));
    until(|| client.stats().serving == 1).await;

    let mut old = track.append_group();
    old.write_frame(Bytes::from(vec![0u8; 100_000])).unwrap();
    drop(old);
    let mut first = soon(sub.next_group()).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A newer group starts while the old one is 200 ms old: the old one is given up.
    track.append_group().write_frame("new").unwrap();
    let mut second = soon(sub.next_group()).await.unwrap().unwrap();
    assert_eq!(second.sequence(), 1);
    assert_eq!(soon(second.read_frame()).await.unwrap().unwrap(), "new");
    match soon(first.read_frame()).await {
        Err(err) => assert_eq!(err, moq_model::Error::Cancel),
        Ok(frame) => panic!(
            "the expired group was delivered: {:?}",
            frame.map(|f| f.len())
        ),
    }
    until(|| server.stats().group_drops_received == 1).await;
    assert_eq!(client.stats().group_drops_sent, 1);
    assert_eq!(client.stats().groups_dropped, 1);
    assert_eq!(client.stats().groups_skipped, 0);
    // Well before the 10 s the whole group would have taken.
    assert!(tokio::time::Instant::now().elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn without_expiry_nothing_is_dropped() {
    let config = Config::default().bandwidth(10_000);
    let (client, server, _c, _s) = sessions_with(config, paused_clock(), paused_clock()).await;
    let (mut track, consumer) = Track::build(["x"]).produce();
    client.publish(consumer).unwrap();
    let mut sub = server.subscribe(Track::new(["x"]));
    until(|| client.stats().serving == 1).await;
    track
        .append_group()
        .write_frame(Bytes::from(vec![0u8; 20_000]))
        .unwrap();
    let mut first = soon(sub.next_group()).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    track.append_group().write_frame("new").unwrap();
    assert_eq!(
        soon(first.read_frame()).await.unwrap().unwrap().len(),
        20_000
    );
    assert_eq!(server.stats().group_drops_received, 0);
}

#[tokio::test(start_paused = true)]
async fn a_group_the_subscriber_stops_is_reported_with_a_group_drop() {
    let (session, client, _server, _stream) = raw_client().await;
    let (mut track, consumer) = Track::new(["d"]).produce();
    session.publish(consumer).unwrap();
    let subscribe = Subscribe {
        id: 3,
        path: ["d"].into(),
        priority: 0,
        group_order: Default::default(),
        group_expires: Duration::ZERO,
        group_min: None,
        group_max: None,
    };
    let (_send, mut recv) = raw_bi(&client, encode(&[&StreamBi::Subscribe, &subscribe])).await;
    let _info = soon(read_n(&mut recv, 4)).await.unwrap();
    let mut group = track.append_group();
    group.write_frame("a").unwrap();
    let mut stream = soon(client.accept_uni()).await.unwrap();
    // (13 or 0 on a first group would make the publisher serve it again: §7.3.)
    stream.stop(ErrorCode::app(1).unwrap());
    settle().await;
    group.write_frame("b").unwrap();
    // GroupDrop {sequence 0, count 0, code 4}.
    let bytes = soon(read_n(&mut recv, 3)).await.unwrap();
    let mut reader = MessageReader::new();
    reader.push(&bytes);
    assert_eq!(
        reader.next::<GroupDrop>().unwrap(),
        Some(GroupDrop {
            sequence: 0,
            count: 0,
            code: ErrorCode::TRANSPORT
        })
    );
}

/// The publisher learns of the stop while it waits for the group's next frame (its watch
/// for STOP_SENDING lasts across the writes), not only at its next write.
#[tokio::test(start_paused = true)]
async fn a_group_stopped_between_frames_is_reported_without_another_frame() {
    let (session, client, _server, _stream) = raw_client().await;
    let (mut track, consumer) = Track::new(["e"]).produce();
    session.publish(consumer).unwrap();
    let subscribe = Subscribe {
        id: 4,
        path: ["e"].into(),
        priority: 0,
        group_order: Default::default(),
        group_expires: Duration::ZERO,
        group_min: None,
        group_max: None,
    };
    let (_send, mut recv) = raw_bi(&client, encode(&[&StreamBi::Subscribe, &subscribe])).await;
    let _info = soon(read_n(&mut recv, 4)).await.unwrap();
    let mut group = track.append_group();
    for frame in ["a", "b", "c"] {
        group.write_frame(frame).unwrap();
        settle().await;
    }
    let mut stream = soon(client.accept_uni()).await.unwrap();
    assert!(soon(stream.read()).await.unwrap().is_some());
    stream.stop(ErrorCode::app(1).unwrap());
    // The group stays open and nothing more is written to it.
    let bytes = soon(read_n(&mut recv, 3)).await.unwrap();
    let mut reader = MessageReader::new();
    reader.push(&bytes);
    assert_eq!(
        reader.next::<GroupDrop>().unwrap(),
        Some(GroupDrop {
            sequence: 0,
            count: 0,
            code: ErrorCode::TRANSPORT
        })
    );
    drop(group);
}

#[tokio::test(start_paused = true)]
async fn skipped_groups_are_reported_with_one_group_drop() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (mut track, consumer) = Track::new(["skip"]).produce();
    client.publish(consumer).unwrap();
    let mut sub = server.subscribe(Track::new(["skip"]));
    until(|| client.stats().serving == 1).await;
    track.append_group().write_frame("0").unwrap();
    assert_eq!(soon(sub.next_group()).await.unwrap().unwrap().sequence(), 0);
    // Groups 1 to 3 are replaced before the session gets to them (the cache keeps only the
    // latest): one GroupDrop {1, count 2}, then group 4.
    for _ in 1..5 {
        track.append_group().write_frame("x").unwrap();
    }
    assert_eq!(soon(sub.next_group()).await.unwrap().unwrap().sequence(), 4);
    until(|| server.stats().group_drops_received == 1).await;
    assert_eq!(client.stats().group_drops_sent, 1);
    // Three groups in the one GroupDrop, none given up after it started.
    assert_eq!(client.stats().groups_skipped, 3);
    assert_eq!(client.stats().groups_dropped, 0);
}

#[tokio::test(start_paused = true)]
async fn past_the_stream_cap_the_oldest_group_is_given_up_with_11() {
    // 10 kB/s: groups of 50 kB stay in flight for seconds.
    let config = Config::default().bandwidth(10_000);
    let (client, server, _c, _s) = sessions_with(
        config,
        moq_session::SessionConfig::default().max_group_streams(2),
        moq_session::SessionConfig::default(),
    )
    .await;
    let (mut track, consumer) = Track::build(["cap"])
        .group_expires(Duration::from_secs(3600))
        .produce();
    client.publish(consumer).unwrap();
    let _sub = server.subscribe(
        Track::build(["cap"])
            .group_expires(Duration::from_secs(3600))
            .into_track(),
    );
    until(|| client.stats().serving == 1).await;
    for _ in 0..3 {
        track
            .append_group()
            .write_frame(Bytes::from(vec![1u8; 50_000]))
            .unwrap();
        settle().await;
    }
    // Three groups, room for two: group 0 is reset and reported.
    until(|| client.stats().group_drops_sent == 1).await;
    until(|| server.stats().group_drops_received == 1).await;
    assert!(client.stats().group_streams_out <= 2);
    assert_eq!(client.stats().groups_dropped, 1);
}

/// Two big groups in flight on a slow link, nothing else happening: only a timer can give
/// the older one up.
async fn idle_expiry(config: moq_session::SessionConfig) -> u64 {
    let link = Config::default().bandwidth(10_000);
    let (client, server, _c, _s) = sessions_with(link, config, paused_clock()).await;
    let (mut track, consumer) = Track::build(["idle"])
        .group_expires(Duration::from_millis(100))
        .produce();
    client.publish(consumer).unwrap();
    let _sub = server.subscribe(Track::new(["idle"]));
    until(|| client.stats().serving == 1).await;
    for _ in 0..2 {
        track
            .append_group()
            .write_frame(Bytes::from(vec![0u8; 100_000]))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stats().group_drops_received
}

#[tokio::test(start_paused = true)]
async fn with_a_timer_an_idle_subscription_expires_on_time() {
    assert_eq!(idle_expiry(paused_clock_and_timer()).await, 1);
}

#[tokio::test(start_paused = true)]
async fn without_a_timer_expiry_waits_for_the_next_event() {
    assert_eq!(idle_expiry(paused_clock()).await, 0);
}
