//! Announce (WIRE.md §4.3), Info (§4.6) and Fetch (§4.7) streams.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use moq_model::{Announced, Error as ModelError, Router, Track};
use moq_proto::{
    Announce, AnnounceInterest, Encode, ErrorCode, Fetch, Frame, GroupOrder, Info, Path, StreamBi,
};
use moq_session::Error;
use moq_session::transport::memory::Config;
use moq_session::transport::{Connection, RecvStream, SendStream, TransportError};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn announcements_follow_publishing() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (alice, consumer) = Track::new(["room", "alice"]).produce();
    client.publish(consumer).unwrap();
    let (_other, consumer) = Track::new(["lobby", "x"]).produce();
    client.publish(consumer).unwrap();
    let mut announced = server.announced(["room"]);
    assert_eq!(
        soon(announced.next()).await.unwrap(),
        Some(Announced::Active(["room", "alice"].into()))
    );
    let (_bob, consumer) = Track::new(["room", "bob"]).produce();
    client.publish(consumer).unwrap();
    assert_eq!(
        soon(announced.next()).await.unwrap(),
        Some(Announced::Active(["room", "bob"].into()))
    );
    // The producer goes away: the path ends.
    drop(alice);
    assert_eq!(
        soon(announced.next()).await.unwrap(),
        Some(Announced::Ended(["room", "alice"].into()))
    );
    assert_eq!(server.stats().announced, 1);
    assert_eq!(client.stats().announce_streams, 1);
    // Dropping the consumer ends the stream on both sides.
    drop(announced);
    until(|| server.stats().announced == 0 && client.stats().announce_streams == 0).await;
}

#[tokio::test(start_paused = true)]
async fn announce_bytes_are_the_reference_ones() {
    let (session, client, _server, _stream) = raw_client().await;
    let (_track, consumer) = Track::new(["demo", "clock"]).produce();
    session.publish(consumer).unwrap();
    // WIRE.md §9: `01 01 04 64656d6f` → `01 01 05 636c6f636b`.
    let (_send, mut recv) = raw_bi(
        &client,
        Bytes::from_static(&[0x01, 0x01, 0x04, b'd', b'e', b'm', b'o']),
    )
    .await;
    let bytes = read_n(&mut recv, 8).await.unwrap();
    assert_eq!(bytes, [0x01, 0x01, 0x05, b'c', b'l', b'o', b'c', b'k']);
}

#[tokio::test(start_paused = true)]
async fn forwarded_announcements_reach_the_peer() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let mut source = moq_model::AnnouncedProducer::new();
    source.announce(["relay", "a"]);
    client.announce(source.consume(Path::empty()));
    let mut announced = server.announced(Path::empty());
    assert_eq!(
        soon(announced.next()).await.unwrap(),
        Some(Announced::Active(["relay", "a"].into()))
    );
    source.unannounce(&["relay", "a"].into());
    assert_eq!(
        soon(announced.next()).await.unwrap(),
        Some(Announced::Ended(["relay", "a"].into()))
    );
}

#[tokio::test(start_paused = true)]
async fn announce_sources_merge_and_cost_nothing_until_asked() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let mut first = moq_model::AnnouncedProducer::new();
    let mut second = moq_model::AnnouncedProducer::new();
    first.announce(["shared"]);
    second.announce(["shared"]);
    first.announce(["only", "first"]);
    client.announce(first.source());
    settle().await;
    // The peer has not asked: nothing follows the source.
    assert_eq!(first.consumer_count(), 0);

    let mut announced = server.announced(Path::empty());
    let mut seen = vec![
        soon(announced.next()).await.unwrap().unwrap(),
        soon(announced.next()).await.unwrap().unwrap(),
    ];
    seen.sort_by(|a, b| a.path().cmp(b.path()));
    assert_eq!(
        seen,
        [
            Announced::Active(["only", "first"].into()),
            Announced::Active(["shared"].into())
        ]
    );
    assert_eq!(
        first.consumer_count(),
        1,
        "one consumer, for the one stream"
    );
    // A source added while the stream runs joins it; a path both have is reported once
    // and ends with the last of them.
    client.announce(second.source().rooted(&Path::empty()));
    second.announce(["only", "second"]);
    assert_eq!(
        soon(announced.next()).await.unwrap(),
        Some(Announced::Active(["only", "second"].into()))
    );
    first.unannounce(&["shared"].into());
    settle().await;
    second.unannounce(&["shared"].into());
    assert_eq!(
        soon(announced.next()).await.unwrap(),
        Some(Announced::Ended(["shared"].into()))
    );
    // A source whose producer ends takes its paths with it.
    drop(first);
    assert_eq!(
        soon(announced.next()).await.unwrap(),
        Some(Announced::Ended(["only", "first"].into()))
    );
}

/// A raw publisher answering our announce interest with `messages`.
async fn announce_from_raw(messages: &[Announce]) -> (ModelError, ErrorCode) {
    let (session, client, _server, _stream) = raw_client().await;
    let mut announced = session.announced(["p"]);
    let (mut send, mut recv) = soon(client.accept_bi()).await.unwrap();
    let head = soon(read_n(&mut recv, 4)).await.unwrap();
    assert_eq!(
        head,
        &encode(&[
            &StreamBi::Announce,
            &AnnounceInterest {
                prefix: ["p"].into()
            }
        ])[..]
    );
    let mut buf = BytesMut::new();
    for message in messages {
        message.encode(&mut buf);
    }
    send.write(buf.freeze()).await.unwrap();
    let error = loop {
        match soon(announced.next()).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("ended cleanly"),
            Err(err) => break err,
        }
    };
    let code = reset_code(recv.read().await);
    (error, code)
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_announce_is_reset_with_12() {
    let active = Announce::Active {
        suffix: ["x"].into(),
    };
    let (error, code) = announce_from_raw(&[active.clone(), active]).await;
    assert_eq!(error, ModelError::Duplicate);
    assert_eq!(code, ErrorCode::DUPLICATE);
}

#[tokio::test(start_paused = true)]
async fn ending_an_unknown_path_is_reset_with_13() {
    let ended = Announce::Ended {
        suffix: ["x"].into(),
    };
    let (error, code) = announce_from_raw(&[ended]).await;
    assert_eq!(error, ModelError::NotFound);
    assert_eq!(code, ErrorCode::NOT_FOUND);
}

#[tokio::test(start_paused = true)]
async fn too_many_announced_paths_are_bounded() {
    let (session, client, _server, _stream) =
        raw_client_with(moq_session::SessionConfig::default().max_announced(3)).await;
    let mut announced = session.announced(Path::empty());
    let (mut send, mut recv) = soon(client.accept_bi()).await.unwrap();
    let _ = read_n(&mut recv, 2).await.unwrap();
    let mut buf = BytesMut::new();
    for i in 0..10 {
        Announce::Active {
            suffix: [format!("{i}")].into(),
        }
        .encode(&mut buf);
    }
    send.write(buf.freeze()).await.unwrap();
    let mut count = 0;
    let error = loop {
        match soon(announced.next()).await {
            Ok(Some(_)) => count += 1,
            Ok(None) => panic!("ended cleanly"),
            Err(err) => break err,
        }
    };
    assert!(count <= 3);
    assert_eq!(error, ModelError::BoundsExceeded);
    assert_eq!(reset_code(recv.read().await), ErrorCode::BOUNDS_EXCEEDED);
}

#[tokio::test(start_paused = true)]
async fn info_describes_the_track() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (mut track, consumer) = Track::build(["demo", "clock"])
        .priority(1)
        .group_expires(Duration::from_millis(2000))
        .produce();
    client.publish(consumer).unwrap();
    for _ in 0..6 {
        track.append_group();
    }
    let info = soon(server.info(["demo", "clock"])).await.unwrap();
    assert_eq!(
        info,
        Info {
            track_priority: 1,
            group_order: GroupOrder::Descending,
            group_expires: Duration::from_millis(2000),
            group_latest: 5,
        }
    );
    match soon(server.info(["nope"])).await {
        Err(Error::Transport(TransportError::StreamReset(code))) => {
            assert_eq!(code, ErrorCode::NOT_FOUND)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn info_asks_the_router_for_unknown_paths() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (mut router, consumer) = Router::new(8).produce();
    client.route(consumer);
    let asking = tokio::spawn({
        let server = server.clone();
        async move { server.info(["on", "demand"]).await }
    });
    let request = soon(router.requested()).await.unwrap();
    assert_eq!(request.track().path, ["on", "demand"].into());
    let (mut track, consumer) = Track::build(["on", "demand"])
        .priority(2)
        .group_order(GroupOrder::Ascending)
        .group_expires(Duration::from_millis(1500))
        .produce();
    for _ in 0..3 {
        track.append_group();
    }
    request.serve(consumer);
    assert_eq!(
        soon(asking).await.unwrap().unwrap(),
        Info {
            track_priority: 2,
            group_order: GroupOrder::Ascending,
            group_expires: Duration::from_millis(1500),
            group_latest: 2,
        }
    );
    // The served track was only needed for its Info: nobody holds it any more.
    soon(track.unused()).await;
    // A rejection resets the Info request with its code.
    let asking = tokio::spawn({
        let server = server.clone();
        async move { server.info(["refused"]).await }
    });
    soon(router.requested())
        .await
        .unwrap()
        .reject(ModelError::App(9));
    match soon(asking).await.unwrap() {
        Err(Error::Transport(TransportError::StreamReset(code))) => {
            assert_eq!(code, ModelError::App(9).code())
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn info_bytes_are_the_reference_ones() {
    let (session, client, _server, _stream) = raw_client().await;
    let (mut track, consumer) = Track::build(["demo", "clock"])
        .priority(1)
        .group_expires(Duration::from_millis(2000))
        .produce();
    session.publish(consumer).unwrap();
    for _ in 0..6 {
        track.append_group();
    }
    // WIRE.md §9: `04 02 0464656d6f 05636c6f636b` → `81 01 47d0 05` then FIN.
    let (_send, mut recv) = raw_bi(
        &client,
        Bytes::from_static(&[
            0x04, 0x02, 0x04, b'd', b'e', b'm', b'o', 0x05, b'c', b'l', b'o', b'c', b'k',
        ]),
    )
    .await;
    assert_eq!(
        read_all(&mut recv).await.unwrap(),
        [0x81, 0x01, 0x47, 0xd0, 0x05]
    );
}

async fn fetch(
    client: &moq_session::transport::memory::Connection,
    fetch: Fetch,
) -> Result<Vec<u8>, TransportError> {
    let (_send, mut recv) = raw_bi(client, encode(&[&StreamBi::Fetch, &fetch])).await;
    read_all(&mut recv).await
}

#[tokio::test(start_paused = true)]
async fn fetch_returns_the_group_contents_from_the_offset() {
    let (session, client, _server, _stream) = raw_client().await;
    let (mut track, consumer) = Track::build(["f"])
        .group_expires(Duration::from_secs(60))
        .produce();
    session.publish(consumer).unwrap();
    let mut group = track.append_group();
    group.write_frame("hello").unwrap();
    group.write_frame("").unwrap();
    group.write_frame("x").unwrap();
    group.finish();
    track.append_group().write_frame("newer").unwrap();
    // Group 0: `05 hello 00 01 x`.
    let whole = encode(&[&Frame { size: 5 }]);
    let mut expected = whole.to_vec();
    expected.extend_from_slice(b"hello");
    expected.extend_from_slice(&[0x00, 0x01, b'x']);
    let request = |offset| Fetch {
        path: ["f"].into(),
        priority: 0,
        group: 0,
        offset,
    };
    assert_eq!(fetch(&client, request(0)).await.unwrap(), expected);
    for offset in 1..=expected.len() as u64 {
        assert_eq!(
            fetch(&client, request(offset)).await.unwrap(),
            expected[offset as usize..],
            "offset {offset}"
        );
    }
    // Unknown group or track: reset with 13.
    let mut missing = request(0);
    missing.group = 48;
    assert_eq!(
        reset_code(fetch(&client, missing).await),
        ErrorCode::NOT_FOUND
    );
    let mut missing = request(0);
    missing.path = ["nope"].into();
    assert_eq!(
        reset_code(fetch(&client, missing).await),
        ErrorCode::NOT_FOUND
    );
}

/// Group 0 of a finished group: frames "hello", "", "x" and 200 bytes (a two-byte header),
/// and its stream contents after the Group header.
fn finished_group(track: &mut moq_model::TrackProducer) -> Vec<u8> {
    let mut group = track.append_group();
    let big = vec![7u8; 200];
    group.write_frame("hello").unwrap();
    group.write_frame("").unwrap();
    group.write_frame("x").unwrap();
    group.write_frame(Bytes::from(big.clone())).unwrap();
    group.finish();
    let mut expected = vec![0x05];
    expected.extend_from_slice(b"hello");
    expected.extend_from_slice(&[0x00, 0x01, b'x', 0x40, 0xc8]);
    expected.extend_from_slice(&big);
    expected
}

fn fetch_request(path: &[&str], group: u64, offset: u64) -> Fetch {
    Fetch {
        path: Path::from_iter(path.iter().copied()),
        priority: 0,
        group,
        offset,
    }
}

#[tokio::test(start_paused = true)]
async fn fetch_reads_a_finished_group_from_any_offset() {
    let (publisher, session, _c, _s) = sessions(Config::default()).await;
    let (mut track, consumer) = Track::build(["f"])
        .group_expires(Duration::from_secs(60))
        .produce();
    publisher.publish(consumer).unwrap();
    let expected = finished_group(&mut track);
    track.append_group().write_frame("newer").unwrap();
    // Every offset: 0, inside the first header, inside a payload, inside the two-byte
    // header (10), inside the last payload, the end, and past it.
    for offset in 0..=expected.len() as u64 + 2 {
        let mut reply = soon(session.fetch(fetch_request(&["f"], 0, offset)))
            .await
            .unwrap();
        let start = (offset as usize).min(expected.len());
        assert_eq!(
            soon(reply.read_all(1024)).await.unwrap(),
            expected[start..],
            "offset {offset}"
        );
        // The end stays the end.
        assert_eq!(reply.read_chunk().await.unwrap(), None);
    }
    // Chunk by chunk, from inside the two-byte header.
    let mut reply = soon(session.fetch(fetch_request(&["f"], 0, 10)))
        .await
        .unwrap();
    let mut all = Vec::new();
    while let Some(chunk) = soon(reply.read_chunk()).await.unwrap() {
        all.extend_from_slice(&chunk);
    }
    assert_eq!(all, expected[10..]);
    assert_eq!(expected[9..11], [0x40, 0xc8]);
}

#[tokio::test(start_paused = true)]
async fn fetch_follows_a_live_group_until_it_ends() {
    let (publisher, session, _c, _s) = sessions(Config::default()).await;
    let (mut track, consumer) = Track::new(["live"]).produce();
    publisher.publish(consumer).unwrap();
    let mut group = track.append_group();
    group.write_frame("ab").unwrap();
    let mut reply = soon(session.fetch(fetch_request(&["live"], 0, 1)))
        .await
        .unwrap();
    let mut received = Vec::new();
    while received.len() < 2 {
        received.extend_from_slice(&soon(reply.read_chunk()).await.unwrap().unwrap());
    }
    assert_eq!(received, b"ab");
    // Nothing more until the group grows; the reply is not over.
    let pending = tokio::time::timeout(Duration::from_secs(1), reply.read_chunk()).await;
    assert!(pending.is_err(), "the reply ended early: {pending:?}");
    group.write_frame("cde").unwrap();
    while received.len() < 6 {
        received.extend_from_slice(&soon(reply.read_chunk()).await.unwrap().unwrap());
    }
    assert_eq!(received, b"ab\x03cde");
    group.finish();
    assert_eq!(soon(reply.read_chunk()).await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn fetch_of_an_unknown_track_or_group_is_not_found() {
    let (publisher, session, _c, _s) = sessions(Config::default()).await;
    let (mut track, consumer) = Track::new(["f"]).produce();
    publisher.publish(consumer).unwrap();
    track.append_group().write_frame("x").unwrap();
    let not_found = Error::Transport(TransportError::StreamReset(ErrorCode::NOT_FOUND));
    // The same error `info` returns for a path the peer does not know.
    assert_eq!(soon(session.info(["nope"])).await.unwrap_err(), not_found);
    for request in [fetch_request(&["nope"], 0, 0), fetch_request(&["f"], 48, 0)] {
        let mut reply = soon(session.fetch(request)).await.unwrap();
        assert_eq!(soon(reply.read_chunk()).await.unwrap_err(), not_found);
        assert_eq!(soon(reply.read_all(16)).await.unwrap_err(), not_found);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_a_fetch_stops_the_publishers_stream() {
    let (publisher, session, _c, _s) = sessions(Config::default()).await;
    let (mut track, consumer) = Track::new(["live"]).produce();
    publisher.publish(consumer).unwrap();
    let mut group = track.append_group();
    group.write_frame("a").unwrap();
    settle().await;
    let idle = publisher.stats().tasks;
    let mut reply = soon(session.fetch(fetch_request(&["live"], 0, 0)))
        .await
        .unwrap();
    assert!(soon(reply.read_chunk()).await.unwrap().is_some());
    // The publisher serves the request with one task while the group is live...
    until(|| publisher.stats().tasks == idle + 1).await;
    drop(reply);
    // ... and gives it up as soon as the stream is stopped, though the group is idle.
    until(|| publisher.stats().tasks == idle).await;
    // The group goes on for everyone else.
    group.write_frame("b").unwrap();
}

#[tokio::test(start_paused = true)]
async fn fetch_request_bytes_are_the_reference_ones() {
    let (session, client, _server, _stream) = raw_client().await;
    let request = Fetch {
        path: ["meeting", "1234", "alice"].into(),
        priority: 5,
        group: 42,
        offset: 1200,
    };
    let (fetched, accepted) = tokio::join!(session.fetch(request), client.accept_bi());
    let mut reply = fetched.unwrap();
    let (mut send, mut recv) = accepted.unwrap();
    // WIRE.md §4.7 and §10.2: `vi 3` + Fetch, then FIN (read_all returns at the FIN).
    let mut expected = vec![0x03, 0x03, 0x07];
    expected.extend_from_slice(b"meeting");
    expected.push(0x04);
    expected.extend_from_slice(b"1234");
    expected.push(0x05);
    expected.extend_from_slice(b"alice");
    expected.extend_from_slice(&[0x85, 0x2a, 0x44, 0xb0]);
    assert_eq!(soon(read_all(&mut recv)).await.unwrap(), expected);
    // The reply's bytes come out as they were written; dropping the handle before the end
    // stops the stream with 0 (CANCEL).
    send.write(Bytes::from_static(b"\x02hi")).await.unwrap();
    let mut received = Vec::new();
    while received.len() < 3 {
        received.extend_from_slice(&soon(reply.read_chunk()).await.unwrap().unwrap());
    }
    assert_eq!(received, b"\x02hi");
    drop(reply);
    assert_eq!(soon(send.stopped()).await.unwrap(), Some(ErrorCode::CANCEL));
}

#[tokio::test(start_paused = true)]
async fn fetch_read_all_stops_a_reply_over_its_limit() {
    let (session, client, _server, _stream) = raw_client().await;
    let (fetched, accepted) = tokio::join!(
        session.fetch(fetch_request(&["f"], 0, 0)),
        client.accept_bi()
    );
    let mut reply = fetched.unwrap();
    let (mut send, _recv) = accepted.unwrap();
    send.write(Bytes::from_static(b"12345")).await.unwrap();
    send.write(Bytes::from_static(b"6789")).await.unwrap();
    assert_eq!(
        soon(reply.read_all(8)).await.unwrap_err(),
        Error::BoundsExceeded
    );
    assert_eq!(
        soon(send.stopped()).await.unwrap(),
        Some(ErrorCode::BOUNDS_EXCEEDED)
    );
    // A reply that fits, in several chunks, is joined; exactly at the limit is fine.
    let (fetched, accepted) = tokio::join!(
        session.fetch(fetch_request(&["f"], 0, 0)),
        client.accept_bi()
    );
    let mut reply = fetched.unwrap();
    let (mut send, _recv) = accepted.unwrap();
    send.write(Bytes::from_static(b"1234")).await.unwrap();
    send.write(Bytes::from_static(b"5678")).await.unwrap();
    send.finish().unwrap();
    assert_eq!(soon(reply.read_all(8)).await.unwrap(), "12345678");
}

#[tokio::test(start_paused = true)]
async fn fetch_asks_the_router_for_unknown_paths() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (mut router, consumer) = Router::new(8).produce();
    client.route(consumer);
    // Served: the reply is the routed track's group, read while the track is held.
    let fetching = tokio::spawn({
        let server = server.clone();
        async move {
            let mut reply = server.fetch(fetch_request(&["routed"], 0, 0)).await?;
            reply.read_all(64).await
        }
    });
    let request = soon(router.requested()).await.unwrap();
    assert_eq!(request.track().path, ["routed"].into());
    let (mut track, consumer) = Track::new(["routed"]).produce();
    let mut group = track.append_group();
    group.write_frame("ab").unwrap();
    request.serve(consumer);
    settle().await;
    // The group is still live: the reply follows it until it ends.
    group.write_frame("c").unwrap();
    group.finish();
    assert_eq!(soon(fetching).await.unwrap().unwrap(), b"\x02ab\x01c"[..]);
    soon(track.unused()).await;
    // Refused: the reply is reset with the router's code.
    let fetching = tokio::spawn({
        let server = server.clone();
        async move {
            let mut reply = server.fetch(fetch_request(&["private"], 0, 0)).await?;
            reply.read_all(64).await
        }
    });
    soon(router.requested())
        .await
        .unwrap()
        .reject(ModelError::Unauthorized);
    assert_eq!(
        soon(fetching).await.unwrap().unwrap_err(),
        Error::Transport(TransportError::StreamReset(ErrorCode::UNAUTHORIZED))
    );
}
