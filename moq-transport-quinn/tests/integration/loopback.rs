//! The transport trait over real loopback QUIC, on both transports: streams, data, codes,
//! close, drop semantics, priority and scale.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use moq_proto::ErrorCode;
use moq_session::transport::{Connection as _, RecvStream as _, SendStream as _, TransportError};
use moq_transport_quinn::{RecvStream, TransportKind, TransportSettings};

use crate::support::{self, KINDS, Pair, pattern};

/// Reads a stream to its end.
async fn read_all(recv: &mut RecvStream) -> Result<Vec<u8>, TransportError> {
    let mut out = Vec::new();
    while let Some(chunk) = recv.read().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[tokio::test]
async fn open_and_accept_streams_in_both_directions() {
    for kind in KINDS {
        let pair = Pair::new(kind).await;

        // Client-opened bidirectional stream: request and response.
        let (mut send, mut recv) = pair.client_conn.open_bi().await.unwrap();
        send.write(Bytes::from_static(b"ping")).await.unwrap();
        send.finish().unwrap();
        let (mut peer_send, mut peer_recv) = pair.server_conn.accept_bi().await.unwrap();
        assert_eq!(peer_recv.id(), send.id(), "{kind}");
        assert_eq!(peer_send.id(), recv.id(), "{kind}");
        assert_eq!(read_all(&mut peer_recv).await.unwrap(), b"ping", "{kind}");
        peer_send.write(Bytes::from_static(b"pong")).await.unwrap();
        peer_send.finish().unwrap();
        assert_eq!(read_all(&mut recv).await.unwrap(), b"pong", "{kind}");

        // Server-opened bidirectional stream.
        let (mut send, mut recv) = pair.server_conn.open_bi().await.unwrap();
        send.write(Bytes::from_static(b"from server"))
            .await
            .unwrap();
        send.finish().unwrap();
        let (mut peer_send, mut peer_recv) = pair.client_conn.accept_bi().await.unwrap();
        assert_eq!(peer_recv.id(), send.id(), "{kind}");
        assert_eq!(read_all(&mut peer_recv).await.unwrap(), b"from server");
        peer_send.write(Bytes::from_static(b"ack")).await.unwrap();
        peer_send.finish().unwrap();
        assert_eq!(read_all(&mut recv).await.unwrap(), b"ack", "{kind}");

        // Unidirectional streams both ways.
        let mut send = pair.client_conn.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"uni up")).await.unwrap();
        send.finish().unwrap();
        let mut recv = pair.server_conn.accept_uni().await.unwrap();
        assert_eq!(recv.id(), send.id(), "{kind}");
        assert_eq!(read_all(&mut recv).await.unwrap(), b"uni up", "{kind}");

        let mut send = pair.server_conn.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"uni down")).await.unwrap();
        send.finish().unwrap();
        let mut recv = pair.client_conn.accept_uni().await.unwrap();
        assert_eq!(recv.id(), send.id(), "{kind}");
        assert_eq!(read_all(&mut recv).await.unwrap(), b"uni down", "{kind}");

        pair.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_mebibytes_arrive_byte_exact_then_fin() {
    for kind in KINDS {
        let pair = Pair::new(kind).await;
        let data = Bytes::from(pattern(16 << 20, 7));

        let writer = {
            let data = data.clone();
            let conn = pair.client_conn.clone();
            tokio::spawn(async move {
                let mut send = conn.open_uni().await.unwrap();
                // Uneven chunk sizes, written with write_some to exercise partial writes.
                let mut offset = 0;
                let mut size = 1;
                while offset < data.len() {
                    let end = (offset + size).min(data.len());
                    let mut chunk = data.slice(offset..end);
                    while !chunk.is_empty() {
                        let before = chunk.len();
                        let n = send.write_some(&mut chunk).await.unwrap();
                        assert!(n > 0 && n <= before);
                        assert_eq!(chunk.len(), before - n);
                    }
                    offset = end;
                    size = (size * 3 + 1) % 300_000 + 1;
                }
                send.finish().unwrap();
                send.stopped().await
            })
        };

        let mut recv = pair.server_conn.accept_uni().await.unwrap();
        let received = read_all(&mut recv).await.unwrap();
        assert_eq!(received.len(), data.len(), "{kind}");
        assert!(received == data, "{kind}: bytes differ");
        // After the end: None again, not an error.
        assert_eq!(recv.read().await.unwrap(), None, "{kind}");
        // Finished and fully received: the sender's stopped() reports no stop.
        assert_eq!(writer.await.unwrap().unwrap(), None, "{kind}");

        pair.finish().await;
    }
}

/// On raw QUIC one stop watch lasts across writes and reports the peer's STOP_SENDING, and
/// one made on a stream finished and received reports no stop; WebTransport streams have
/// none (their users ask `stopped` per wait).
#[tokio::test]
async fn a_stop_watch_lasts_across_writes() {
    use std::time::Duration;
    for kind in KINDS {
        let pair = Pair::new(kind).await;
        let (mut send, _recv) = pair.server_conn.open_bi().await.unwrap();
        let Some(mut watch) = send.stop_watch() else {
            assert_eq!(kind, TransportKind::WebTransport);
            pair.finish().await;
            continue;
        };
        assert_eq!(kind, TransportKind::Quic);
        send.write(Bytes::from_static(b"frame")).await.unwrap();
        let (_peer_send, mut peer_recv) = pair.client_conn.accept_bi().await.unwrap();
        for _ in 0..3 {
            assert!(peer_recv.read().await.unwrap().is_some());
            let early = tokio::time::timeout(Duration::from_millis(20), watch.as_mut()).await;
            assert!(early.is_err(), "resolved before any stop: {early:?}");
            send.write(Bytes::from_static(b"frame")).await.unwrap();
        }
        peer_recv.stop(ErrorCode::CANCEL);
        let stopped = tokio::time::timeout(Duration::from_secs(5), watch).await;
        assert_eq!(stopped.unwrap().unwrap(), Some(ErrorCode::CANCEL));

        let mut send = pair.server_conn.open_uni().await.unwrap();
        let watch = send.stop_watch().unwrap();
        send.write(Bytes::from_static(b"all")).await.unwrap();
        send.finish().unwrap();
        let mut recv = pair.client_conn.accept_uni().await.unwrap();
        assert_eq!(read_all(&mut recv).await.unwrap(), b"all");
        let fate = tokio::time::timeout(Duration::from_secs(5), watch).await;
        assert_eq!(fate.unwrap().unwrap(), None);
        pair.finish().await;
    }
}

#[tokio::test]
async fn reset_and_stop_carry_their_codes() {
    let app = ErrorCode::app(100).unwrap();
    for kind in KINDS {
        let pair = Pair::new(kind).await;

        for code in [ErrorCode::NOT_FOUND, ErrorCode::CANCEL, app] {
            // Reset: the reader sees StreamReset with the code.
            let mut send = pair.client_conn.open_uni().await.unwrap();
            send.write(Bytes::from_static(b"partial")).await.unwrap();
            let mut recv = pair.server_conn.accept_uni().await.unwrap();
            send.reset(code);
            let err = loop {
                match recv.read().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("{kind}: a reset stream read to its end"),
                    Err(err) => break err,
                }
            };
            assert_eq!(err, TransportError::StreamReset(code), "{kind}");
            // Resetting twice does nothing.
            send.reset(ErrorCode::DECODE);

            // Stop: the writer's stopped() and writes see StreamStopped with the code.
            let (mut send, _recv) = pair.server_conn.open_bi().await.unwrap();
            send.write(Bytes::from_static(b"x")).await.unwrap();
            let (_peer_send, mut peer_recv) = pair.client_conn.accept_bi().await.unwrap();
            peer_recv.stop(code);
            assert_eq!(send.stopped().await.unwrap(), Some(code), "{kind}");
            let err = loop {
                match send.write(Bytes::from_static(b"more")).await {
                    Ok(()) => tokio::task::yield_now().await,
                    Err(err) => break err,
                }
            };
            assert_eq!(err, TransportError::StreamStopped(code), "{kind}");
            // Reading a stopped stream is a local error.
            assert_eq!(
                peer_recv.read().await,
                Err(TransportError::ClosedStream),
                "{kind}"
            );
        }

        // Writing after finish is a local error.
        let mut send = pair.client_conn.open_uni().await.unwrap();
        send.finish().unwrap();
        assert_eq!(
            send.write(Bytes::from_static(b"late")).await,
            Err(TransportError::ClosedStream),
            "{kind}"
        );
        assert_eq!(send.finish(), Err(TransportError::ClosedStream), "{kind}");

        pair.finish().await;
    }
}

/// The exact values on the wire, seen by a plain quinn peer: stream codes are mapped on
/// raw QUIC too, the connection close is plain on raw QUIC and mapped on WebTransport.
#[tokio::test]
async fn wire_codes_as_a_plain_quinn_peer_sees_them() {
    // Raw QUIC: the client side is read through the bare quinn connection.
    let pair = Pair::new(TransportKind::Quic).await;
    let raw = pair.client_conn.quic().clone();

    let mut send = pair.server_conn.open_uni().await.unwrap();
    send.write(Bytes::from_static(b"abc")).await.unwrap();
    let mut raw_recv = raw.accept_uni().await.unwrap();
    send.reset(ErrorCode::NOT_FOUND);
    let err = loop {
        match raw_recv.read_chunk(usize::MAX, true).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("reset stream ended cleanly"),
            Err(err) => break err,
        }
    };
    assert_eq!(
        err,
        quinn::ReadError::Reset(quinn::VarInt::from_u64(0x52e4_a40f_a8e8).unwrap())
    );

    let mut raw_send = raw.open_uni().await.unwrap();
    raw_send.write_all(b"abc").await.unwrap();
    let mut recv = pair.server_conn.accept_uni().await.unwrap();
    recv.stop(ErrorCode::DECODE);
    assert_eq!(
        raw_send.stopped().await.unwrap(),
        Some(quinn::VarInt::from_u64(0x52e4_a40f_a8e0).unwrap())
    );

    // A dropped receive stream stops with a plain 0, which reads back as CANCEL.
    let mut raw_send = raw.open_uni().await.unwrap();
    raw_send.write_all(b"abc").await.unwrap();
    drop(pair.server_conn.accept_uni().await.unwrap());
    assert_eq!(
        raw_send.stopped().await.unwrap(),
        Some(quinn::VarInt::from_u32(0))
    );

    pair.server_conn.close(ErrorCode::NOT_FOUND, "gone");
    match raw.closed().await {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, quinn::VarInt::from_u32(13));
            assert_eq!(&close.reason[..], b"gone");
        }
        other => panic!("unexpected close {other:?}"),
    }
    pair.finish().await;
}

/// The same over WebTransport, seen by a plain web-transport-quinn client: stream codes
/// arrive mapped exactly once (the client library maps them back), a rejected session is
/// closed with the mapped code, and a session close sends the capsule with the plain code,
/// answered by a QUIC close with the mapped one.
#[tokio::test]
async fn webtransport_wire_codes_as_a_plain_client_sees_them() {
    let mut server = support::server(TransportSettings::default());
    let addr = server.local_addr().unwrap();
    let endpoint = quinn::Endpoint::client(support::loopback()).unwrap();
    let config = support::raw_client_config(b"h3");
    let url =
        moq_transport_quinn::Url::parse(&support::url(TransportKind::WebTransport, addr, "/wire"))
            .unwrap();
    let open = |url: moq_transport_quinn::Url| {
        let endpoint = endpoint.clone();
        let config = config.clone();
        tokio::spawn(async move {
            let conn = endpoint
                .connect_with(config, addr, "localhost")
                .unwrap()
                .await
                .unwrap();
            let request = web_transport_quinn::proto::ConnectRequest::new(url);
            let session = web_transport_quinn::Session::connect(conn.clone(), request).await;
            (conn, session)
        })
    };

    // Rejected: the QUIC close carries the mapped code and the reason.
    let connecting = open(url.clone());
    server
        .accept()
        .await
        .unwrap()
        .reject(ErrorCode::NOT_FOUND, "no");
    let (conn, session) = connecting.await.unwrap();
    assert!(session.is_err());
    match conn.closed().await {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(
                close.error_code,
                quinn::VarInt::from_u64(0x52e4_a40f_a8e8).unwrap()
            );
            assert_eq!(&close.reason[..], b"no");
        }
        other => panic!("unexpected close {other:?}"),
    }

    // Accepted: stream codes.
    let connecting = open(url);
    let server_conn = server.accept().await.unwrap().accept().await.unwrap();
    let (conn, session) = connecting.await.unwrap();
    let session = session.unwrap();

    let mut send = server_conn.open_uni().await.unwrap();
    send.write(Bytes::from_static(b"abc")).await.unwrap();
    let mut recv = session.accept_uni().await.unwrap();
    send.reset(ErrorCode::NOT_FOUND);
    let err = loop {
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("reset stream ended cleanly"),
            Err(err) => break err,
        }
    };
    // Mapped once: the client maps it back to 13 (twice would not map back at all).
    assert!(
        matches!(err, web_transport_quinn::ReadError::Reset(13)),
        "{err:?}"
    );

    let mut send = session.open_uni().await.unwrap();
    send.write_all(b"abc").await.unwrap();
    let mut recv = server_conn.accept_uni().await.unwrap();
    recv.stop(ErrorCode::DECODE);
    assert_eq!(send.stopped().await.unwrap(), Some(5));

    // The session close: the client reads the capsule's plain code and reason, then closes
    // the QUIC connection with the mapped code (unless this side's wait for that ran out
    // first on a very slow machine, in which case this side closed it with the same code).
    server_conn.close(ErrorCode::NOT_FOUND, "gone");
    match session.closed().await {
        web_transport_quinn::SessionError::WebTransportError(
            web_transport_quinn::WebTransportError::Closed(code, reason),
        ) => {
            assert_eq!(code, 13);
            assert_eq!(reason, "gone");
        }
        other => panic!("unexpected session end {other:?}"),
    }
    match server_conn.quic().closed().await {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(
                close.error_code,
                quinn::VarInt::from_u64(0x52e4_a40f_a8e8).unwrap()
            );
            assert_eq!(&close.reason[..], b"gone");
        }
        quinn::ConnectionError::LocallyClosed => {}
        other => panic!("unexpected close {other:?}"),
    }

    drop((conn, session, server_conn));
    endpoint.close(0u32.into(), b"");
    server.close();
    endpoint.wait_idle().await;
    server.wait_idle().await;
}

/// A peer that closes the QUIC connection itself with the mapped code (the way
/// web-transport-quinn 0.3 peers do, instead of sending the session close capsule) is seen
/// as closing the session. Its code and reason come through only if the adapter sees the
/// close before web-transport-quinn closes the connection locally in reaction (see the
/// `webtransport` module docs); otherwise the close reads as CANCEL. Never as a local close
/// or a lost connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webtransport_quic_level_close_from_the_peer() {
    for _ in 0..5 {
        let pair = Pair::new(TransportKind::WebTransport).await;
        pair.client_conn.quic().close(
            quinn::VarInt::from_u64(ErrorCode::NOT_FOUND.to_webtransport()).unwrap(),
            b"quic close",
        );
        let err = pair.server_conn.closed().await;
        let full = TransportError::ClosedByPeer {
            code: ErrorCode::NOT_FOUND,
            reason: "quic close".into(),
        };
        let lost = TransportError::ClosedByPeer {
            code: ErrorCode::CANCEL,
            reason: String::new(),
        };
        assert!(err == full || err == lost, "{err:?}");
        pair.finish().await;
    }
}

#[tokio::test]
async fn close_reaches_the_peer_with_code_and_reason() {
    let code = ErrorCode::app(7).unwrap();
    for kind in KINDS {
        for client_closes in [true, false] {
            let pair = Pair::new(kind).await;
            let (closer, peer) = if client_closes {
                (&pair.client_conn, &pair.server_conn)
            } else {
                (&pair.server_conn, &pair.client_conn)
            };
            // Something pending on the peer when the close arrives.
            let (mut pending_send, _pending_recv) = peer.open_bi().await.unwrap();
            pending_send.write(Bytes::from_static(b"x")).await.unwrap();
            let accept = {
                let peer = peer.clone();
                tokio::spawn(async move { peer.accept_uni().await })
            };

            closer.close(code, "bye now");
            let expected = TransportError::ClosedByPeer {
                code,
                reason: "bye now".into(),
            };
            assert_eq!(peer.closed().await, expected, "{kind}");
            assert_eq!(accept.await.unwrap().unwrap_err(), expected, "{kind}");
            assert_eq!(peer.open_uni().await.unwrap_err(), expected, "{kind}");
            let _ = pending_send.stopped().await;
            assert_eq!(pending_send.finish(), Err(expected.clone()), "{kind}");

            let local = TransportError::ClosedLocally {
                code,
                reason: "bye now".into(),
            };
            assert_eq!(closer.closed().await, local, "{kind}");
            assert_eq!(closer.open_bi().await.unwrap_err(), local, "{kind}");
            // A second close changes nothing.
            closer.close(ErrorCode::DECODE, "again");
            assert_eq!(closer.closed().await, local, "{kind}");

            pair.finish().await;
        }
    }
}

/// A browser (and web-transport-quinn's own close) ends a WebTransport session with a
/// CLOSE_WEBTRANSPORT_SESSION capsule carrying the plain code.
#[tokio::test]
async fn webtransport_session_close_capsule_is_understood() {
    let pair = Pair::new(TransportKind::WebTransport).await;
    let moq_transport_quinn::Connection::WebTransport(client) = &pair.client_conn else {
        panic!("not WebTransport");
    };
    client.session().close(13, b"capsule");
    assert_eq!(
        pair.server_conn.closed().await,
        TransportError::ClosedByPeer {
            code: ErrorCode::NOT_FOUND,
            reason: "capsule".into()
        }
    );
    pair.finish().await;
}

#[tokio::test]
async fn dropping_streams_stops_or_finishes_them() {
    for kind in KINDS {
        let pair = Pair::new(kind).await;

        // Dropping a receive stream before its end: the writer sees a stop with CANCEL.
        let mut send = pair.client_conn.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"unread")).await.unwrap();
        let recv = pair.server_conn.accept_uni().await.unwrap();
        drop(recv);
        assert_eq!(
            send.stopped().await.unwrap(),
            Some(ErrorCode::CANCEL),
            "{kind}"
        );

        // Dropping a send stream without finish: the reader gets the data, then the end.
        let mut send = pair.client_conn.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"then dropped"))
            .await
            .unwrap();
        drop(send);
        let mut recv = pair.server_conn.accept_uni().await.unwrap();
        assert_eq!(
            read_all(&mut recv).await.unwrap(),
            b"then dropped",
            "{kind}"
        );

        pair.finish().await;
    }
}

#[tokio::test]
async fn dropping_every_handle_closes_with_cancel() {
    for kind in KINDS {
        let pair = Pair::new(kind).await;
        let Pair {
            server,
            client,
            server_conn,
            client_conn,
            ..
        } = pair;
        drop(client_conn);
        let err = server_conn.closed().await;
        assert_eq!(
            err,
            TransportError::ClosedByPeer {
                code: ErrorCode::CANCEL,
                reason: String::new()
            },
            "{kind}"
        );
        drop(server_conn);
        client.close();
        server.close();
        client.wait_idle().await;
        server.wait_idle().await;
    }
}

/// Accepts `streams` unidirectional streams of `size` bytes each and reads them at once:
/// their ids in the order they were read to the end.
async fn completion_order(
    conn: &moq_transport_quinn::Connection,
    streams: usize,
    size: usize,
) -> Vec<u64> {
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    for _ in 0..streams {
        let mut recv = conn.accept_uni().await.unwrap();
        let order = order.clone();
        readers.push(tokio::spawn(async move {
            let data = read_all(&mut recv).await.unwrap();
            assert_eq!(data.len(), size);
            order.lock().unwrap().push(recv.id());
        }));
    }
    for reader in readers {
        reader.await.unwrap();
    }
    order.lock().unwrap().clone()
}

/// Two streams with megabytes queued behind a congestion window: the higher-priority one
/// is delivered first. Everything is written before the connection task gets to run (one
/// thread, no await point yields while quinn has buffer space), so both backlogs compete
/// from the start.
#[tokio::test(flavor = "current_thread")]
async fn higher_priority_stream_completes_first() {
    const SIZE: usize = 4 << 20;
    for kind in KINDS {
        // Which stream is written first, and whether the priorities are set before the
        // writes or only once everything is buffered.
        for (high_first, set_after) in [(true, false), (false, false), (false, true)] {
            let pair = Pair::with_settings(kind, TransportSettings::default()).await;

            let mut low = pair.client_conn.open_uni().await.unwrap();
            let mut high = pair.client_conn.open_uni().await.unwrap();
            if !set_after {
                low.set_priority(-5);
                high.set_priority(5);
            }
            let (first, second) = if high_first {
                (&mut high, &mut low)
            } else {
                (&mut low, &mut high)
            };
            first.write(Bytes::from(pattern(SIZE, 1))).await.unwrap();
            second.write(Bytes::from(pattern(SIZE, 2))).await.unwrap();
            if set_after {
                low.set_priority(-5);
                high.set_priority(5);
            }
            let high_id = high.id();
            high.finish().unwrap();
            low.finish().unwrap();

            let order = completion_order(&pair.server_conn, 2, SIZE).await;
            assert_eq!(
                order[0], high_id,
                "{kind}: the high-priority stream finished second \
                 (written first: {high_first}, priority set after the writes: {set_after})"
            );
            pair.finish().await;
        }
    }
}

/// What quinn does with a priority change (docs/transport.md, "Stream priority"): a stream
/// with data queued keeps its place in quinn's send queue, which holds the priority the
/// stream had when it was queued, until quinn next sends from it. Raised above a stream
/// whose data was queued at a higher priority, it waits until that stream's data is sent:
/// the session's publisher relies on this model (it gives a group stream its role before
/// the stream queues anything, `docs/session.md`, "Overload"), so this fails if a quinn
/// upgrade changes it.
#[tokio::test(flavor = "current_thread")]
async fn a_raised_stream_waits_behind_data_queued_at_a_higher_priority() {
    const SIZE: usize = 4 << 20;
    for kind in KINDS {
        let pair = Pair::with_settings(kind, TransportSettings::default()).await;

        let mut first = pair.client_conn.open_uni().await.unwrap();
        let mut raised = pair.client_conn.open_uni().await.unwrap();
        first.set_priority(1);
        raised.set_priority(0);
        // WebTransport queues each stream's header at open, at the top priority
        // (web-transport-quinn); let them go first, so that what follows is queued anew.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        first.write(Bytes::from(pattern(SIZE, 1))).await.unwrap();
        raised.write(Bytes::from(pattern(SIZE, 2))).await.unwrap();
        raised.set_priority(2);
        let first_id = first.id();
        first.finish().unwrap();
        raised.finish().unwrap();

        let order = completion_order(&pair.server_conn, 2, SIZE).await;
        assert_eq!(
            order[0], first_id,
            "{kind}: the raised stream overtook data queued before the change: quinn now \
             applies priority changes to queued data, and the publisher's roles can be simpler"
        );
        pair.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_uni_streams_on_one_connection() {
    const STREAMS: usize = 1000;
    for kind in KINDS {
        let pair = Pair::new(kind).await;
        let conn = pair.client_conn.clone();
        let opener = tokio::spawn(async move {
            // All open at once (the default limit grows to 1024 as the server accepts them),
            // each finished after its payload.
            let mut streams = Vec::new();
            for i in 0..STREAMS {
                let mut send = conn.open_uni().await.unwrap();
                send.write(Bytes::from(format!("stream {i}")))
                    .await
                    .unwrap();
                streams.push(send);
            }
            for mut send in streams {
                send.finish().unwrap();
            }
        });
        let mut seen = vec![false; STREAMS];
        // Accepted as they come, as a session does (the credit grows with what is held),
        // then read.
        let mut accepted = Vec::new();
        for _ in 0..STREAMS {
            accepted.push(pair.server_conn.accept_uni().await.unwrap());
        }
        for mut recv in accepted {
            let text = String::from_utf8(read_all(&mut recv).await.unwrap()).unwrap();
            let i: usize = text.strip_prefix("stream ").unwrap().parse().unwrap();
            assert!(!seen[i], "{kind}: stream {i} twice");
            seen[i] = true;
        }
        assert!(seen.iter().all(|s| *s), "{kind}");
        opener.await.unwrap();
        pair.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_connections() {
    const CONNECTIONS: usize = 50;
    for kind in KINDS {
        let mut server = support::server(TransportSettings::default());
        let client = support::client(&server, TransportSettings::default());
        let url = support::url(kind, server.local_addr().unwrap(), "/many");

        let echo = tokio::spawn(async move {
            let mut tasks = Vec::new();
            for _ in 0..CONNECTIONS {
                let request = server.accept().await.unwrap();
                tasks.push(tokio::spawn(async move {
                    let conn = request.accept().await.unwrap();
                    let (mut send, mut recv) = conn.accept_bi().await.unwrap();
                    let data = read_all(&mut recv).await.unwrap();
                    send.write(Bytes::from(data)).await.unwrap();
                    send.finish().unwrap();
                    conn.closed().await
                }));
            }
            for task in tasks {
                let closed = task.await.unwrap();
                assert_eq!(closed.code(), ErrorCode::CANCEL);
            }
            server
        });

        let mut clients = Vec::new();
        for i in 0..CONNECTIONS {
            let client = client.clone();
            let url = url.clone();
            clients.push(tokio::spawn(async move {
                let conn = client.connect(&url).await.unwrap();
                let (mut send, mut recv) = conn.open_bi().await.unwrap();
                let message = format!("connection {i}");
                send.write(Bytes::from(message.clone())).await.unwrap();
                send.finish().unwrap();
                assert_eq!(read_all(&mut recv).await.unwrap(), message.as_bytes());
                conn.close(ErrorCode::CANCEL, "done");
            }));
        }
        for task in clients {
            task.await.unwrap();
        }
        let server = echo.await.unwrap();
        client.close();
        server.close();
        client.wait_idle().await;
        server.wait_idle().await;
    }
}

/// `write_some` is cancel-safe: a write dropped while waiting for flow control wrote
/// nothing, so carrying on with the same buffer delivers every byte exactly once.
#[tokio::test]
async fn cancelled_write_some_writes_nothing() {
    use std::future::{Future, poll_fn};
    use std::pin::pin;
    use std::task::Poll;

    for kind in KINDS {
        let mut settings = TransportSettings::default();
        settings.stream_receive_window = 64 * 1024;
        let pair = Pair::with_settings(kind, settings).await;
        let data = Bytes::from(pattern(1 << 20, 3));
        let reader = {
            let server = pair.server_conn.clone();
            tokio::spawn(async move {
                let mut recv = server.accept_uni().await.unwrap();
                read_all(&mut recv).await.unwrap()
            })
        };

        let mut send = pair.client_conn.open_uni().await.unwrap();
        let mut buf = data.clone();
        let mut cancelled = 0;
        while !buf.is_empty() {
            let before = buf.len();
            // Poll once; a write that is not ready at once is dropped.
            let poll = {
                let mut write = pin!(send.write_some(&mut buf));
                poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await
            };
            match poll {
                Poll::Ready(result) => assert_eq!(result.unwrap(), before - buf.len(), "{kind}"),
                Poll::Pending => {
                    assert_eq!(
                        buf.len(),
                        before,
                        "{kind}: a dropped write advanced the buffer"
                    );
                    cancelled += 1;
                    // Let the connection and the reader run.
                    tokio::task::yield_now().await;
                }
            }
        }
        send.finish().unwrap();
        assert!(cancelled > 0, "{kind}: no write ever had to wait");
        let received = reader.await.unwrap();
        assert_eq!(received.len(), data.len(), "{kind}");
        assert!(received == data, "{kind}: bytes differ");
        pair.finish().await;
    }
}

/// After `close`, nothing but the close reaches the peer: a send stream dropped right after
/// it is not seen as finished, a receive stream dropped right after it is not seen as
/// stopped. (On WebTransport the close takes a round trip, so this is the adapter's doing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_dropped_after_close_do_not_reach_the_peer() {
    let code = ErrorCode::app(9).unwrap();
    for kind in KINDS {
        let pair = Pair::new(kind).await;
        let mut send = pair.client_conn.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"x")).await.unwrap();
        let mut peer_recv = pair.server_conn.accept_uni().await.unwrap();
        let (mut peer_send, _) = pair.server_conn.open_bi().await.unwrap();
        peer_send.write(Bytes::from_static(b"y")).await.unwrap();
        let (_, recv) = pair.client_conn.accept_bi().await.unwrap();

        pair.client_conn.close(code, "bye");
        drop(send);
        drop(recv);

        let expected = TransportError::ClosedByPeer {
            code,
            reason: "bye".into(),
        };
        let end = loop {
            match peer_recv.read().await {
                Ok(Some(_)) => continue,
                end => break end,
            }
        };
        assert_eq!(
            end,
            Err(expected.clone()),
            "{kind}: the stream ended cleanly"
        );
        assert_eq!(peer_send.stopped().await, Err(expected), "{kind}");
        pair.finish().await;
    }
}

/// Sends 2 MiB on a stream from client to server and returns the largest datagram the client
/// ended up sending (quinn's discovered path MTU), in both directions' view.
async fn discovered_mtu(kind: TransportKind, settings: TransportSettings) -> (u16, u16) {
    let pair = Pair::with_settings(kind, settings).await;
    let data = Bytes::from(pattern(2 << 20, 3));
    let mut send = pair.client_conn.open_uni().await.unwrap();
    send.write(data.clone()).await.unwrap();
    send.finish().unwrap();
    let mut recv = pair.server_conn.accept_uni().await.unwrap();
    assert!(
        read_all(&mut recv).await.unwrap() == data,
        "{kind}: bytes differ"
    );
    // Discovery runs alongside the data; give its last probes a few round trips.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut mtus = (0, 0);
    while tokio::time::Instant::now() < deadline {
        mtus = (
            pair.client_conn.quic().stats().path.current_mtu,
            pair.server_conn.quic().stats().path.current_mtu,
        );
        if mtus.0 > 5000 && mtus.1 > 5000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    pair.finish().await;
    mtus
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_discovers_large_datagrams_up_to_the_setting() {
    for kind in KINDS {
        // The default: loopback carries far more than Ethernet, so discovery climbs past
        // 1452 towards the 6000 default (minimum step 20 bytes), and never above it.
        let (client, server) = discovered_mtu(kind, TransportSettings::default()).await;
        for mtu in [client, server] {
            assert!((5000..=6000).contains(&mtu), "{kind}: default, mtu {mtu}");
        }

        // Capped at Ethernet's size: never above it.
        let mut settings = TransportSettings::default();
        settings.max_udp_payload = 1452;
        let (client, server) = discovered_mtu(kind, settings).await;
        for mtu in [client, server] {
            assert!((1200..=1452).contains(&mtu), "{kind}: 1452, mtu {mtu}");
        }

        // Above the limit: lowered to it, so quinn's offload batches still fit one send.
        let mut settings = TransportSettings::default();
        settings.max_udp_payload = 9000;
        let (client, server) = discovered_mtu(kind, settings).await;
        for mtu in [client, server] {
            assert!(
                mtu <= TransportSettings::MAX_UDP_PAYLOAD_LIMIT && mtu > 5000,
                "{kind}: 9000, mtu {mtu}"
            );
        }
    }
}

/// Opens `count` unidirectional streams from the client, each with a byte written and left
/// open, while the server accepts and holds them; whether all of them got through within
/// `seconds`.
async fn open_held_uni_streams(pair: &Pair, count: usize, seconds: u64) -> bool {
    let opening = async {
        let mut held = Vec::new();
        for _ in 0..count {
            let mut send = pair.client_conn.open_uni().await.unwrap();
            send.write(Bytes::from_static(b"x")).await.unwrap();
            held.push(send);
        }
        held
    };
    let accepting = async {
        let mut held = Vec::new();
        for _ in 0..count {
            held.push(pair.server_conn.accept_uni().await.unwrap());
        }
        held
    };
    tokio::time::timeout(std::time::Duration::from_secs(seconds), async {
        tokio::join!(opening, accepting)
    })
    .await
    .is_ok()
}

fn with_max_uni(max: u32) -> TransportSettings {
    let mut settings = TransportSettings::default();
    settings.max_concurrent_uni_streams = max;
    settings
}

#[tokio::test]
async fn stream_credit_grows_with_use_up_to_the_setting() {
    for kind in KINDS {
        // The peer starts with a few streams and gets more as they are used: 600 held open
        // at once get through.
        let pair = Pair::new(kind).await;
        assert!(
            open_held_uni_streams(&pair, 600, 10).await,
            "{kind}: 600 streams"
        );
        pair.finish().await;
    }
    // Never past the setting: with 100, 100 held open at once get through, 101 do not.
    let pair = Pair::with_settings(TransportKind::Quic, with_max_uni(100)).await;
    assert!(open_held_uni_streams(&pair, 100, 10).await, "100 streams");
    pair.finish().await;
    let pair = Pair::with_settings(TransportKind::Quic, with_max_uni(100)).await;
    assert!(!open_held_uni_streams(&pair, 101, 2).await, "101 streams");
    pair.finish().await;
}

#[tokio::test]
async fn a_pair_of_buffers_is_written_in_order() {
    for kind in KINDS {
        let pair = Pair::new(kind).await;
        let mut send = pair.client_conn.open_uni().await.unwrap();
        let mut first = Bytes::from(pattern(3000, 1));
        let mut second = Bytes::from(pattern(70_000, 2));
        while !first.is_empty() || !second.is_empty() {
            let before = first.len() + second.len();
            let written = send.write_some_pair(&mut first, &mut second).await.unwrap();
            assert_eq!(before - written, first.len() + second.len(), "{kind}");
            assert!(written > 0, "{kind}");
        }
        send.finish().unwrap();
        let mut recv = pair.server_conn.accept_uni().await.unwrap();
        let mut want = pattern(3000, 1);
        want.extend(pattern(70_000, 2));
        assert_eq!(read_all(&mut recv).await.unwrap(), want, "{kind}");
        pair.finish().await;
    }
}
