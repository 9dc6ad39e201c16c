//! Publishing and subscribing through two sessions (WIRE.md §4.4, §4.5, §7).

use std::time::Duration;

use bytes::Bytes;
use moq_model::{Error as ModelError, Router, Track};
use moq_proto::{ErrorCode, Frame, GroupOrder, Info, MessageReader, StreamBi, Subscribe};
use moq_session::transport::memory::Config;
use moq_session::transport::{Connection, RecvStream, SendStream, TransportError};

use crate::support::*;

fn payload(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test(start_paused = true)]
async fn frames_arrive_byte_exact() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (mut track, consumer) = Track::new(["room", "alice", "video"]).produce();
    client.publish(consumer).unwrap();
    let mut sub = server.subscribe(Track::new(["room", "alice", "video"]));
    settle().await;

    let sizes = [0usize, 1, 5, 1200, 100_000, 3];
    for g in 0..4u8 {
        let mut group = track.append_group();
        let mut frames = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let data = payload(size, g * 16 + i as u8);
            if size > 10 && i % 2 == 0 {
                // Written in three chunks.
                let mut frame = group.create_frame(size).unwrap();
                frame.write(data.slice(..size / 3)).unwrap();
                frame.write(data.slice(size / 3..size / 2)).unwrap();
                frame.write(data.slice(size / 2..)).unwrap();
            } else {
                group.write_frame(data.clone()).unwrap();
            }
            frames.push(data);
        }
        group.finish();
        // Read each group before the next is written: the default cache keeps only the
        // latest group, so a consumer that lags skips ahead (tested elsewhere).
        let mut group = soon(sub.next_group()).await.unwrap().expect("group");
        assert_eq!(group.sequence(), u64::from(g));
        for frame in &frames {
            assert_eq!(&soon(group.read_frame()).await.unwrap().unwrap(), frame);
        }
        assert_eq!(soon(group.read_frame()).await.unwrap(), None);
    }
    // The traffic totals, once every group stream has ended on both sides: zero-size frames
    // and frames written in chunks count once each.
    until(|| client.stats().group_streams_out == 0 && server.stats().group_streams_in == 0).await;
    let bytes = 4 * sizes.iter().sum::<usize>() as u64;
    let (sent, received) = (client.stats(), server.stats());
    assert_eq!(
        (sent.groups_sent, sent.frames_sent, sent.payload_bytes_sent),
        (4, 24, bytes)
    );
    assert_eq!(
        (
            received.groups_received,
            received.frames_received,
            received.payload_bytes_received
        ),
        (4, 24, bytes)
    );
    assert_eq!((sent.groups_skipped, sent.groups_dropped), (0, 0));
    assert_eq!((received.groups_sent, sent.groups_received), (0, 0));
    // The track ends: the consumer ends cleanly.
    drop(track);
    assert!(soon(sub.next_group()).await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_late_joiner_gets_the_latest_group_from_its_first_frame() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (mut track, consumer) = Track::new(["clock"]).produce();
    client.publish(consumer).unwrap();
    for g in 0..3 {
        let mut group = track.append_group();
        group.write_frame(format!("{g}-a")).unwrap();
        group.write_frame(format!("{g}-b")).unwrap();
    }
    let mut sub = server.subscribe(Track::new(["clock"]));
    let mut group = soon(sub.next_group()).await.unwrap().unwrap();
    assert_eq!(group.sequence(), 2);
    assert_eq!(soon(group.read_frame()).await.unwrap().unwrap(), "2-a");
    assert_eq!(soon(group.read_frame()).await.unwrap().unwrap(), "2-b");
    track.append_group().write_frame("3-a").unwrap();
    let mut group = soon(sub.next_group()).await.unwrap().unwrap();
    assert_eq!(group.sequence(), 3);
    assert_eq!(soon(group.read_frame()).await.unwrap().unwrap(), "3-a");
    // Info reached the subscriber: the publisher's view, latest group 2 when it joined.
    let info = server.subscription_info(&["clock"].into()).unwrap();
    assert_eq!(info.group_latest, 2);
}

#[tokio::test(start_paused = true)]
async fn unknown_track_fails_with_not_found() {
    let (_client, server, _c, _s) = sessions(Config::default()).await;
    let mut sub = server.subscribe(Track::new(["nope"]));
    assert_eq!(
        soon(sub.next_group()).await.unwrap_err(),
        ModelError::NotFound
    );
    settle().await;
    assert_eq!(server.stats().subscriptions, 0);
}

#[tokio::test(start_paused = true)]
async fn identical_subscriptions_share_one_upstream_subscription() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (mut track, consumer) = Track::new(["shared"]).produce();
    client.publish(consumer).unwrap();
    let mut a = server.subscribe(Track::new(["shared"]));
    let mut b = server.subscribe(Track::new(["shared"]));
    settle().await;
    assert_eq!(server.stats().subscriptions, 1);
    assert_eq!(server.stats().next_subscribe_id, 1);
    assert_eq!(client.stats().serving, 1);
    track.append_group().write_frame("x").unwrap();
    for sub in [&mut a, &mut b] {
        let mut group = soon(sub.next_group()).await.unwrap().unwrap();
        assert_eq!(soon(group.read_frame()).await.unwrap().unwrap(), "x");
    }
    // Dropping one keeps the subscription; dropping both ends it.
    drop(a);
    settle().await;
    assert_eq!(server.stats().subscriptions, 1);
    drop(b);
    settle().await;
    assert_eq!(server.stats().subscriptions, 0);
    assert_eq!(client.stats().serving, 0);
    // A new subscription gets a new id: ids are never reused.
    let _c = server.subscribe(Track::new(["shared"]));
    settle().await;
    assert_eq!(server.stats().next_subscribe_id, 2);
}

#[tokio::test(start_paused = true)]
async fn subscribe_bytes_and_ids_from_zero() {
    let (session, client, _server, _stream) = raw_client().await;
    let track = Track::build(["a", "b"])
        .priority(-2)
        .group_order(GroupOrder::Ascending)
        .group_expires(Duration::from_millis(1500))
        .into_track();
    let _one = session.subscribe(track);
    let _two = session.subscribe(Track::new(["c"]));
    let mut keep = Vec::new();
    for expected_id in [0u64, 1] {
        let (send, mut recv) = soon(client.accept_bi()).await.unwrap();
        let mut reader = MessageReader::new();
        let bytes = read_n(&mut recv, 8).await.unwrap();
        reader.push(&bytes);
        assert_eq!(
            reader.next::<StreamBi>().unwrap(),
            Some(StreamBi::Subscribe)
        );
        let subscribe = reader.next::<Subscribe>().unwrap().unwrap();
        assert_eq!(subscribe.id, expected_id);
        if expected_id == 0 {
            assert_eq!(subscribe.priority, -2);
            assert_eq!(subscribe.group_order, GroupOrder::Ascending);
            assert_eq!(subscribe.group_expires, Duration::from_millis(1500));
            assert_eq!((subscribe.group_min, subscribe.group_max), (None, None));
        }
        keep.push(send);
    }
}

#[tokio::test(start_paused = true)]
async fn group_streams_before_info_are_accepted() {
    let (session, client, _server, _stream) = raw_client().await;
    let mut sub = session.subscribe(Track::new(["early"]));
    let (mut control, _recv) = soon(client.accept_bi()).await.unwrap();
    // The group overtakes the Info.
    let mut group = client.open_uni().await.unwrap();
    group.write(group_stream_start(0, 9, 2)).await.unwrap();
    group.write(Bytes::from_static(b"hi")).await.unwrap();
    group.finish().unwrap();
    settle().await;
    control
        .write(encode(&[&Info {
            track_priority: 0,
            group_order: GroupOrder::Descending,
            group_expires: Duration::ZERO,
            group_latest: 9,
        }]))
        .await
        .unwrap();
    let mut received = soon(sub.next_group()).await.unwrap().unwrap();
    assert_eq!(received.sequence(), 9);
    assert_eq!(soon(received.read_frame()).await.unwrap().unwrap(), "hi");
    assert_eq!(soon(received.read_frame()).await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn a_publisher_error_reaches_the_consumers_with_its_code() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (mut track, consumer) = Track::new(["fails"]).produce();
    client.publish(consumer).unwrap();
    let mut sub = server.subscribe(Track::new(["fails"]));
    track.append_group().write_frame("ok").unwrap();
    let mut group = soon(sub.next_group()).await.unwrap().unwrap();
    assert_eq!(soon(group.read_frame()).await.unwrap().unwrap(), "ok");
    track.abort(ModelError::App(3));
    assert_eq!(
        soon(sub.next_group()).await.unwrap_err(),
        ModelError::App(3)
    );
}

#[tokio::test(start_paused = true)]
async fn a_reset_group_reaches_its_consumers_with_the_code() {
    let (session, client, _server, _stream) = raw_client().await;
    let mut sub = session.subscribe(Track::new(["r"]));
    let (_control, _recv) = soon(client.accept_bi()).await.unwrap();
    let mut group = client.open_uni().await.unwrap();
    group.write(group_stream_start(0, 0, 10)).await.unwrap();
    group.write(Bytes::from_static(b"abc")).await.unwrap();
    settle().await;
    group.reset(ErrorCode::app(5).unwrap());
    let mut received = soon(sub.next_group()).await.unwrap().unwrap();
    assert_eq!(
        soon(received.read_frame()).await.unwrap_err(),
        ModelError::App(5)
    );
}

#[tokio::test(start_paused = true)]
async fn payload_chunks_that_arrived_together_are_stored_as_one() {
    let (session, client, _server, _stream) = raw_client().await;
    let mut sub = session.subscribe(Track::new(["pieces"]));
    let (_control, _recv) = soon(client.accept_bi()).await.unwrap();
    let mut group = client.open_uni().await.unwrap();
    group.write(group_stream_start(0, 0, 12)).await.unwrap();
    // Four pieces of one frame, all there before the session reads any of them, then a
    // second frame that comes later.
    for piece in [&b"abc"[..], b"def", b"ghi", b"jkl"] {
        group.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    let mut received = soon(sub.next_group()).await.unwrap().unwrap();
    let mut frame = soon(received.next_frame()).await.unwrap().unwrap();
    let mut chunks = Vec::new();
    while let Some(chunk) = soon(frame.read_chunk()).await.unwrap() {
        chunks.push(chunk);
    }
    assert_eq!(chunks.concat(), b"abcdefghijkl");
    // One chunk, or at most as many as the session read in separate goes.
    assert!(chunks.len() < 4, "{chunks:?}");
    group.write(encode(&[&Frame { size: 2 }])).await.unwrap();
    group.write(Bytes::from_static(b"ok")).await.unwrap();
    group.finish().unwrap();
    assert_eq!(soon(received.read_frame()).await.unwrap().unwrap(), "ok");
    assert_eq!(soon(received.read_frame()).await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn fin_mid_payload_is_wrong_size_never_a_short_frame() {
    let (session, client, _server, _stream) = raw_client().await;
    let mut sub = session.subscribe(Track::new(["short"]));
    let (_control, _recv) = soon(client.accept_bi()).await.unwrap();
    let mut group = client.open_uni().await.unwrap();
    group.write(group_stream_start(0, 0, 2)).await.unwrap();
    group.write(Bytes::from_static(b"ok")).await.unwrap();
    group.write(encode(&[&Frame { size: 10 }])).await.unwrap();
    group.write(Bytes::from_static(b"abc")).await.unwrap();
    group.finish().unwrap();
    let mut received = soon(sub.next_group()).await.unwrap().unwrap();
    // The whole first frame may or may not be readable (the group failed); the second is
    // never handed out short.
    let mut results = Vec::new();
    loop {
        match soon(received.read_frame()).await {
            Ok(Some(frame)) => results.push(frame),
            Ok(None) => panic!("a truncated group read as complete"),
            Err(err) => {
                assert_eq!(err, ModelError::WrongSize);
                break;
            }
        }
    }
    assert!(results.iter().all(|f| f == "ok"));
}

#[tokio::test(start_paused = true)]
async fn connection_loss_mid_frame_is_an_error() {
    let config = Config::default()
        .bandwidth(100_000)
        .delay(Duration::from_millis(5));
    let (client, server, client_conn, _s) = sessions(config).await;
    let (mut track, consumer) = Track::new(["big"]).produce();
    client.publish(consumer).unwrap();
    let mut sub = server.subscribe(Track::new(["big"]));
    settle().await;
    let mut group = track.append_group();
    group.write_frame(payload(1_000_000, 1)).unwrap();
    let mut received = soon(sub.next_group()).await.unwrap().unwrap();
    let mut frame = soon(received.next_frame()).await.unwrap().unwrap();
    // Some of the frame has arrived; then the connection goes.
    let first = soon(frame.read_chunk()).await.unwrap().unwrap();
    assert!(!first.is_empty());
    client_conn.lose("cable cut");
    let err = loop {
        match soon(frame.read_chunk()).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("a truncated frame read as complete"),
            Err(err) => break err,
        }
    };
    assert_eq!(err, ModelError::Transport);
    assert_eq!(
        soon(sub.next_group()).await.unwrap_err(),
        ModelError::Transport
    );
    assert!(matches!(
        soon(server.closed()).await,
        moq_session::Error::Transport(TransportError::ConnectionLost(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn unsubscribe_stops_data_within_one_round_trip() {
    let delay = Duration::from_millis(20);
    let config = Config::default().bandwidth(1_000_000).delay(delay);
    let (client, server, client_conn, _s) = sessions(config).await;
    let (mut track, consumer) = Track::new(["live"]).produce();
    client.publish(consumer).unwrap();
    let mut sub = server.subscribe(Track::new(["live"]));
    // A big group in flight.
    let mut group = track.append_group();
    group.write_frame(payload(500_000, 2)).unwrap();
    let mut received = soon(sub.next_group()).await.unwrap().unwrap();
    let mut frame = soon(received.next_frame()).await.unwrap().unwrap();
    soon(frame.read_chunk()).await.unwrap();
    assert_eq!(client.stats().serving, 1);
    let start = tokio::time::Instant::now();
    drop((frame, received, sub));
    // The publisher learns within one round trip and stops serving.
    while client.stats().serving > 0 || client.stats().group_streams_out > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(start.elapsed() <= 2 * delay + Duration::from_millis(2));
    }
    let delivered = client_conn.stats().bytes_delivered;
    let opened = client_conn.stats().uni_opened;
    // New groups are not sent any more, and the old one's data stopped flowing.
    track.append_group().write_frame("late").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(client_conn.stats().uni_opened, opened);
    assert!(client_conn.stats().bytes_delivered - delivered < 100_000);
    assert_eq!(server.stats().subscriptions, 0);
}

#[tokio::test(start_paused = true)]
async fn the_router_answers_unknown_paths() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (mut router, consumer) = Router::new(8).produce();
    client.route(consumer);
    let mut sub = server.subscribe(Track::build(["on", "demand"]).priority(3).into_track());
    let request = soon(router.requested()).await.unwrap();
    assert_eq!(request.track().path, ["on", "demand"].into());
    assert_eq!(request.track().priority, 3);
    let mut track = request.produce();
    track.append_group().write_frame("routed").unwrap();
    let mut group = soon(sub.next_group()).await.unwrap().unwrap();
    assert_eq!(soon(group.read_frame()).await.unwrap().unwrap(), "routed");
    // A rejection reaches the subscriber with its code.
    let mut rejected = server.subscribe(Track::new(["refused"]));
    soon(router.requested())
        .await
        .unwrap()
        .reject(ModelError::App(9));
    assert_eq!(
        soon(rejected.next_group()).await.unwrap_err(),
        ModelError::App(9)
    );
}

#[tokio::test(start_paused = true)]
async fn broadcast_tracks_are_found_by_name() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (mut broadcast, consumer) = moq_model::Broadcast::new(["room", "bob"]).produce();
    client.publish_broadcast(consumer).unwrap();
    let mut audio = broadcast.create_track(Track::new(["audio"])).unwrap();
    audio.append_group().write_frame("a").unwrap();
    let mut sub = server.subscribe(Track::new(["room", "bob", "audio"]));
    let mut group = soon(sub.next_group()).await.unwrap().unwrap();
    assert_eq!(soon(group.read_frame()).await.unwrap().unwrap(), "a");
    let mut missing = server.subscribe(Track::new(["room", "bob", "video"]));
    assert_eq!(
        soon(missing.next_group()).await.unwrap_err(),
        ModelError::NotFound
    );
}

#[tokio::test(start_paused = true)]
async fn closing_the_session_fails_the_subscriptions() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (_track, consumer) = Track::new(["t"]).produce();
    client.publish(consumer).unwrap();
    let mut sub = server.subscribe(Track::new(["t"]));
    settle().await;
    server.close(ErrorCode::app(1).unwrap());
    assert_eq!(
        soon(sub.next_group()).await.unwrap_err(),
        ModelError::App(1)
    );
    // Later subscriptions fail at once.
    let mut late = server.subscribe(Track::new(["t"]));
    assert_eq!(
        soon(late.next_group()).await.unwrap_err(),
        ModelError::App(1)
    );
}

#[tokio::test(start_paused = true)]
async fn unsubscribing_fins_and_stops_the_subscribe_stream_with_0() {
    let (session, client, _server, _stream) = raw_client().await;
    let sub = session.subscribe(Track::new(["bye"]));
    let (send, mut recv) = soon(client.accept_bi()).await.unwrap();
    // `02 00 01 03 "bye" 80 01 00 00 00`
    let _subscribe = soon(read_n(&mut recv, 12)).await.unwrap();
    drop(sub);
    // FIN after the Subscribe, and STOP_SENDING 0 (WIRE.md §4.4).
    assert_eq!(soon(read_all(&mut recv)).await.unwrap(), Vec::<u8>::new());
    assert_eq!(soon(send.stopped()).await, Ok(Some(ErrorCode::CANCEL)));
    until(|| session.stats().subscriptions == 0).await;
}

#[tokio::test(start_paused = true)]
async fn a_first_group_stopped_with_13_is_served_again_once() {
    let (session, client, _server, _stream) = raw_client().await;
    let (mut track, consumer) = Track::new(["clock"]).produce();
    session.publish(consumer).unwrap();
    // A live group: its stream stays open.
    let mut group = track.append_group();
    group.write_frame("12:00").unwrap();
    let subscribe = Subscribe {
        id: 7,
        path: ["clock"].into(),
        priority: 0,
        group_order: GroupOrder::Descending,
        group_expires: Duration::ZERO,
        group_min: None,
        group_max: None,
    };
    let (_send, mut control) = raw_bi(&client, encode(&[&StreamBi::Subscribe, &subscribe])).await;
    let _info = soon(read_n(&mut control, 4)).await.unwrap();
    let expected = group_stream(7, 0, &[b"12:00"]);
    // A 0.5.0 subscriber that had not read the Info yet stops the group stream with 13.
    let mut first = soon(client.accept_uni()).await.unwrap();
    assert_eq!(
        soon(read_n(&mut first, expected.len())).await.unwrap(),
        expected
    );
    first.stop(ErrorCode::NOT_FOUND);
    // The publisher notices while the group is idle and serves it again from frame 0.
    let mut again = soon(client.accept_uni()).await.unwrap();
    assert_eq!(
        soon(read_n(&mut again, expected.len())).await.unwrap(),
        expected
    );
    // Only once: a second stop is reported with a GroupDrop (code 4).
    again.stop(ErrorCode::NOT_FOUND);
    let bytes = soon(read_n(&mut control, 3)).await.unwrap();
    assert_eq!(bytes, [0x00, 0x00, 0x04]);
    group.write_frame("12:01").unwrap();
    settle().await;
    assert_eq!(session.stats().group_streams_out, 0);
}

#[tokio::test(start_paused = true)]
async fn a_path_is_published_once_at_a_time() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (track, consumer) = Track::new(["once"]).produce();
    client.publish(consumer).unwrap();
    let (_other, duplicate) = Track::new(["once"]).produce();
    assert!(matches!(
        client.publish(duplicate),
        Err(moq_session::Error::Model(ModelError::Duplicate))
    ));
    // Once the first producer is gone, the path can be published again at once.
    drop(track);
    let (mut again, consumer) = Track::new(["once"]).produce();
    client.publish(consumer).unwrap();
    again.append_group().write_frame("second").unwrap();
    let mut sub = server.subscribe(Track::new(["once"]));
    let mut group = soon(sub.next_group()).await.unwrap().unwrap();
    assert_eq!(soon(group.read_frame()).await.unwrap().unwrap(), "second");
    settle().await;
    assert_eq!(client.stats().published, 1);
}

/// A publisher that ends its track, waits until it serves no subscription any more and then
/// closes the session (what `moq pub` does at the end of its input) must not take the end of
/// the track with it: `serving` reaches 0 only once the subscriber has the FIN of the
/// subscribe stream, which a close would otherwise abandon in flight.
#[tokio::test(start_paused = true)]
async fn the_track_end_reaches_the_subscriber_before_serving_drops_to_zero() {
    let config = Config::default().delay(Duration::from_millis(10));
    let (client, server, _c, _s) = sessions(config).await;
    let (mut track, consumer) = Track::new(["room", "end"]).produce();
    client.publish(consumer).unwrap();
    let mut sub = server.subscribe(Track::new(["room", "end"]));
    until(|| client.stats().serving == 1).await;

    let mut group = track.append_group();
    group.write_frame(Bytes::from_static(b"last")).unwrap();
    group.finish();
    let mut received = soon(sub.next_group()).await.unwrap().expect("the group");
    assert_eq!(
        soon(received.read_frame()).await.unwrap().unwrap(),
        Bytes::from_static(b"last")
    );

    track.finish();
    until(|| {
        let stats = client.stats();
        stats.serving == 0 && stats.group_streams_out == 0
    })
    .await;
    client.close(ErrorCode::CANCEL);
    assert!(
        soon(sub.next_group()).await.unwrap().is_none(),
        "the track did not end cleanly"
    );
}

/// A track that ends in the same breath as its last group starts. The publisher ends the
/// subscription once the group stream is delivered; the subscriber may see that end before
/// it has taken the group stream, and must still put the group in the track before ending
/// it (it used to stop the stream with 13: the last group was lost).
#[tokio::test(start_paused = true)]
async fn the_last_group_reaches_the_subscriber_when_the_track_ends_at_once() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (mut track, consumer) = Track::new(["room", "last"]).produce();
    client.publish(consumer).unwrap();
    let mut sub = server.subscribe(Track::new(["room", "last"]));
    until(|| client.stats().serving == 1).await;

    let mut group = track.append_group();
    group.write_frame(Bytes::from_static(b"last")).unwrap();
    group.finish();
    track.finish();
    let mut received = soon(sub.next_group())
        .await
        .unwrap()
        .expect("the last group");
    assert_eq!(
        soon(received.read_frame()).await.unwrap().unwrap(),
        Bytes::from_static(b"last")
    );
    assert!(soon(sub.next_group()).await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_subscription_left_by_its_last_consumer_is_not_handed_to_a_new_one() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (mut track, consumer) = Track::new(["churn"]).produce();
    client.publish(consumer).unwrap();
    let a = server.subscribe(Track::new(["churn"]));
    settle().await;
    assert_eq!(server.stats().subscriptions, 1);
    // The last consumer goes and a new one comes before the session's task has run: the
    // new one must get the track's frames, not the end of the subscription being torn down.
    drop(a);
    let mut b = server.subscribe(Track::new(["churn"]));
    settle().await;
    track.append_group().write_frame("x").unwrap();
    let mut group = soon(b.next_group())
        .await
        .expect("the track failed")
        .expect("the track ended");
    assert_eq!(soon(group.read_frame()).await.unwrap().unwrap(), "x");
}
