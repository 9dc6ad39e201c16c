//! A hostile or broken peer, driven with raw bytes: the session answers with the protocol
//! codes (WIRE.md §4.1, §6) and survives.

use std::time::Duration;

use bytes::Bytes;
use moq_model::Track;
use moq_proto::{ErrorCode, GroupOrder, InfoRequest, StreamBi, Subscribe};
use moq_session::SessionConfig;
use moq_session::transport::memory;
use moq_session::transport::{Connection, RecvStream, SendStream};

use crate::support::*;

/// The session still answers: an Info request for a published track.
async fn still_alive(session: &moq_session::Session, client: &memory::Connection) {
    let (_track, consumer) = Track::new(["alive"]).produce();
    let _ = session.publish(consumer);
    let (_send, mut recv) = raw_bi(
        client,
        encode(&[
            &StreamBi::Info,
            &InfoRequest {
                path: ["alive"].into(),
            },
        ]),
    )
    .await;
    assert_eq!(
        soon(read_all(&mut recv)).await.unwrap(),
        [0x80, 0x01, 0x00, 0x00]
    );
}

fn subscribe(id: u64, path: &[&str]) -> Subscribe {
    Subscribe {
        id,
        path: path.iter().copied().collect(),
        priority: 0,
        group_order: GroupOrder::Descending,
        group_expires: Duration::ZERO,
        group_min: None,
        group_max: None,
    }
}

#[tokio::test(start_paused = true)]
async fn unknown_bidi_stream_type_is_reset_and_stopped_with_5() {
    let (session, client, _server, _stream) = raw_client().await;
    let (send, mut recv) = raw_bi(&client, Bytes::from_static(&[0x09])).await;
    assert_eq!(reset_code(soon(recv.read()).await), ErrorCode::DECODE);
    assert_eq!(soon(send.stopped()).await, Ok(Some(ErrorCode::DECODE)));
    still_alive(&session, &client).await;
}

#[tokio::test(start_paused = true)]
async fn unknown_uni_stream_type_is_stopped_with_5() {
    let (session, client, _server, _stream) = raw_client().await;
    let mut send = client.open_uni().await.unwrap();
    send.write(Bytes::from_static(&[0x01, 0x00])).await.unwrap();
    assert_eq!(soon(send.stopped()).await, Ok(Some(ErrorCode::DECODE)));
    still_alive(&session, &client).await;
}

#[tokio::test(start_paused = true)]
async fn huge_declared_lengths_are_decode_errors() {
    let (session, client, _server, _stream) = raw_client().await;
    // A Subscribe whose path part claims 1 GiB: over the message limit, reset+stop 5 before
    // anything is buffered.
    let (send, mut recv) = raw_bi(
        &client,
        Bytes::from_static(&[0x02, 0x00, 0x01, 0xbf, 0xff, 0xff, 0xff, b'a']),
    )
    .await;
    assert_eq!(reset_code(soon(recv.read()).await), ErrorCode::DECODE);
    assert_eq!(soon(send.stopped()).await, Ok(Some(ErrorCode::DECODE)));
    // A frame that claims 2^40 bytes: the group stream is stopped with 5.
    let _sub = session.subscribe(Track::new(["big"]));
    let (_control, _r) = soon(client.accept_bi()).await.unwrap();
    let mut group = client.open_uni().await.unwrap();
    group
        .write(group_stream_start(0, 0, 1 << 40))
        .await
        .unwrap();
    assert_eq!(soon(group.stopped()).await, Ok(Some(ErrorCode::DECODE)));
    still_alive(&session, &client).await;
}

#[tokio::test(start_paused = true)]
async fn malformed_subscribe_is_reset_with_5_and_unknown_track_with_13() {
    let (session, client, _server, _stream) = raw_client().await;
    // WIRE.md §9: group_order = 2 → reset 5.
    let (_send, mut recv) = raw_bi(
        &client,
        Bytes::from_static(&[
            0x02, 0x40, 0x07, 0x02, 0x04, b'd', b'e', b'm', b'o', 0x05, b'c', b'l', b'o', b'c',
            b'k', 0x80, 0x02, 0x00, 0x00, 0x00,
        ]),
    )
    .await;
    assert_eq!(reset_code(soon(recv.read()).await), ErrorCode::DECODE);
    // WIRE.md §9: subscribe `["nope"]` → reset+stop 13.
    let (send, mut recv) = raw_bi(
        &client,
        Bytes::from_static(&[
            0x02, 0x08, 0x01, 0x04, b'n', b'o', b'p', b'e', 0x80, 0x01, 0x00, 0x00, 0x00,
        ]),
    )
    .await;
    assert_eq!(reset_code(soon(recv.read()).await), ErrorCode::NOT_FOUND);
    assert_eq!(soon(send.stopped()).await, Ok(Some(ErrorCode::NOT_FOUND)));
    still_alive(&session, &client).await;
}

#[tokio::test(start_paused = true)]
async fn group_streams_for_unknown_ids_are_stopped_with_13() {
    let (session, client, _server, _stream) = raw_client().await;
    let mut group = client.open_uni().await.unwrap();
    group.write(group_stream(42, 0, &[])).await.unwrap();
    assert_eq!(soon(group.stopped()).await, Ok(Some(ErrorCode::NOT_FOUND)));
    still_alive(&session, &client).await;
}

#[tokio::test(start_paused = true)]
async fn a_subscribe_flood_beyond_the_limit_is_reset_with_11() {
    let (session, client, _server, _stream) =
        raw_client_with(SessionConfig::default().max_subscriptions(4)).await;
    let (_track, consumer) = Track::new(["t"]).produce();
    session.publish(consumer).unwrap();
    let mut streams = Vec::new();
    for id in 0..4 {
        let (send, mut recv) = raw_bi(
            &client,
            encode(&[&StreamBi::Subscribe, &subscribe(id, &["t"])]),
        )
        .await;
        // Served: the Info arrives.
        assert_eq!(
            soon(read_n(&mut recv, 4)).await.unwrap(),
            [0x80, 0x01, 0x00, 0x00]
        );
        streams.push((send, recv));
    }
    until(|| session.stats().serving == 4).await;
    for id in 4..10 {
        let (_send, mut recv) = raw_bi(
            &client,
            encode(&[&StreamBi::Subscribe, &subscribe(id, &["t"])]),
        )
        .await;
        assert_eq!(
            reset_code(soon(recv.read()).await),
            ErrorCode::BOUNDS_EXCEEDED
        );
    }
    // The session survives, and ending one subscription frees a place.
    still_alive(&session, &client).await;
    let (mut send, _recv) = streams.pop().unwrap();
    send.finish().unwrap();
    until(|| session.stats().serving == 3).await;
    let (_send, mut recv) = raw_bi(
        &client,
        encode(&[&StreamBi::Subscribe, &subscribe(10, &["t"])]),
    )
    .await;
    assert_eq!(
        soon(read_n(&mut recv, 4)).await.unwrap(),
        [0x80, 0x01, 0x00, 0x00]
    );
}

#[tokio::test(start_paused = true)]
async fn too_many_group_streams_in_flight_are_stopped_with_11() {
    let (session, client, _server, _stream) =
        raw_client_with(SessionConfig::default().max_group_streams(3)).await;
    let _sub = session.subscribe(Track::new(["g"]));
    let (_control, _r) = soon(client.accept_bi()).await.unwrap();
    let mut groups = Vec::new();
    for sequence in 0..5 {
        let mut group = client.open_uni().await.unwrap();
        // Headers and an unfinished frame: the streams stay in flight.
        group
            .write(group_stream_start(0, sequence, 10))
            .await
            .unwrap();
        groups.push(group);
        settle().await;
    }
    assert_eq!(session.stats().group_streams_in, 3);
    for group in &groups[3..] {
        assert_eq!(
            soon(group.stopped()).await,
            Ok(Some(ErrorCode::BOUNDS_EXCEEDED))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn our_own_subscriptions_are_bounded() {
    let (client, _server, _c, _s) = sessions_with(
        memory::Config::default(),
        SessionConfig::default().max_subscriptions(2),
        SessionConfig::default(),
    )
    .await;
    let _a = client.subscribe(Track::new(["a"]));
    let _b = client.subscribe(Track::new(["b"]));
    let mut c = client.subscribe(Track::new(["c"]));
    assert_eq!(
        soon(c.next_group()).await.unwrap_err(),
        moq_model::Error::BoundsExceeded
    );
}

#[tokio::test(start_paused = true)]
async fn an_announce_stream_flood_beyond_the_limit_is_reset_with_11() {
    let (session, client, _server, _stream) =
        raw_client_with(SessionConfig::default().max_announce_streams(2)).await;
    let interest = moq_proto::AnnounceInterest {
        prefix: moq_proto::Path::empty(),
    };
    let mut kept = Vec::new();
    for _ in 0..2 {
        kept.push(raw_bi(&client, encode(&[&StreamBi::Announce, &interest])).await);
    }
    until(|| session.stats().announce_streams == 2).await;
    let (_send, mut recv) = raw_bi(&client, encode(&[&StreamBi::Announce, &interest])).await;
    assert_eq!(
        reset_code(soon(recv.read()).await),
        ErrorCode::BOUNDS_EXCEEDED
    );
    still_alive(&session, &client).await;
}
