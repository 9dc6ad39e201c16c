//! The handshake (WIRE.md §4.2) and the session stream afterwards.

use bytes::Bytes;
use moq_proto::{
    Encode, ErrorCode, Extensions, GroupOrder, Info, SessionClient, SessionServer, StreamBi,
    Version,
};
use moq_session::transport::memory::{self, Config};
use moq_session::transport::{Connection, RecvStream, SendStream, TransportError};
use moq_session::{Error, Session};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn handshake_ok_and_both_sides_can_publish() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    assert_eq!(client.stats().subscriptions, 0);
    // Both directions work after the handshake.
    for (publisher, subscriber) in [(&client, &server), (&server, &client)] {
        let (mut track, consumer) = moq_model::Track::new(["dir"]).produce();
        publisher.publish(consumer).unwrap();
        track.append_group().write_frame("x").unwrap();
        let mut sub = subscriber.subscribe(moq_model::Track::new(["dir"]));
        let mut group = soon(sub.next_group()).await.unwrap().unwrap();
        assert_eq!(soon(group.read_frame()).await.unwrap().unwrap(), "x");
    }
}

#[tokio::test(start_paused = true)]
async fn handshake_bytes_are_the_reference_ones() {
    let (client, server) = memory::pair(Config::default());
    let accept = tokio::spawn(Session::accept(server.clone()));
    let (mut send, mut recv) = client.open_bi().await.unwrap();
    // WIRE.md §9: `00 01 c0000000ff0bad02 00` → `c0000000ff0bad02 00`.
    send.write(Bytes::from_static(&[
        0x00, 0x01, 0xc0, 0, 0, 0, 0xff, 0x0b, 0xad, 0x02, 0x00,
    ]))
    .await
    .unwrap();
    let reply = read_n(&mut recv, 9).await.unwrap();
    assert_eq!(reply, [0xc0, 0, 0, 0, 0xff, 0x0b, 0xad, 0x02, 0x00]);
    let (_session, driver) = accept.await.unwrap().unwrap();
    tokio::spawn(driver);
    settle().await;
    // Nothing more is ever written on the session stream, and it stays open.
    let mut next = std::pin::pin!(recv.read());
    assert!(
        futures_poll(next.as_mut()).is_pending(),
        "the session stream must stay silent"
    );
}

fn futures_poll<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    f.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

#[tokio::test(start_paused = true)]
async fn version_refused_with_code_9() {
    let (client, server) = memory::pair(Config::default());
    // Keep a handle: dropping the last one would close the connection (as 0.5.0's accept
    // does), and the peer would see only the close.
    let accept = tokio::spawn(Session::accept(server.clone()));
    let (mut send, mut recv) = client.open_bi().await.unwrap();
    let hello = encode(&[
        &StreamBi::Session,
        &SessionClient {
            versions: vec![Version(0xff0b_ad04), Version::FORK_01],
            extensions: Extensions::new(),
        },
    ]);
    send.write(hello).await.unwrap();
    let result = accept.await.unwrap();
    match result {
        Err(Error::Version(offered)) => {
            assert_eq!(offered, vec![Version(0xff0b_ad04), Version::FORK_01])
        }
        other => panic!("expected a version error, got {other:?}"),
    }
    // Reset and stopped with 9 (the memory transport reports plain codes).
    assert_eq!(reset_code(recv.read().await), ErrorCode::VERSION);
    assert_eq!(send.stopped().await, Ok(Some(ErrorCode::VERSION)));
}

#[tokio::test(start_paused = true)]
async fn client_fails_when_the_server_refuses() {
    let (client, server) = memory::pair(Config::default());
    let connect = tokio::spawn(Session::connect(client));
    let (mut send, mut recv) = server.accept_bi().await.unwrap();
    let _hello = read_n(&mut recv, 11).await.unwrap();
    send.reset(ErrorCode::VERSION);
    recv.stop(ErrorCode::VERSION);
    match connect.await.unwrap() {
        Err(Error::Transport(TransportError::StreamReset(code))) => {
            assert_eq!(code, ErrorCode::VERSION)
        }
        other => panic!("expected the reset, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn client_refuses_another_version() {
    let (client, server) = memory::pair(Config::default());
    let connect = tokio::spawn(Session::connect(client.clone()));
    let (mut send, mut recv) = server.accept_bi().await.unwrap();
    let _hello = read_n(&mut recv, 11).await.unwrap();
    let reply = SessionServer {
        version: Version::FORK_01,
        extensions: Extensions::new(),
    };
    send.write(reply.to_bytes()).await.unwrap();
    assert!(matches!(connect.await.unwrap(), Err(Error::Version(v)) if v == [Version::FORK_01]));
    assert_eq!(reset_code(recv.read().await), ErrorCode::VERSION);
}

#[tokio::test(start_paused = true)]
async fn first_stream_of_another_type_is_unexpected() {
    let (client, server) = memory::pair(Config::default());
    let accept = tokio::spawn(Session::accept(server));
    let (_send, _recv) = raw_bi(&client, encode(&[&StreamBi::Announce])).await;
    assert!(matches!(
        accept.await.unwrap(),
        Err(Error::UnexpectedStream)
    ));
}

#[tokio::test(start_paused = true)]
async fn info_bytes_on_the_session_stream_are_tolerated() {
    let (session, client, _server, (mut send, _recv)) = raw_client().await;
    let info = Info {
        track_priority: 1,
        group_order: GroupOrder::Descending,
        group_expires: std::time::Duration::from_millis(2000),
        group_latest: 5,
    };
    send.write(info.to_bytes()).await.unwrap();
    settle().await;
    // Still alive: a stream opened now is served (an unknown info request → 13).
    let (_s, mut r) = raw_bi(
        &client,
        encode(&[
            &StreamBi::Info,
            &moq_proto::InfoRequest {
                path: ["nope"].into(),
            },
        ]),
    )
    .await;
    assert_eq!(reset_code(r.read().await), ErrorCode::NOT_FOUND);
    assert!(session.stats().tasks > 0);
}

#[tokio::test(start_paused = true)]
async fn fin_on_the_session_stream_closes_with_0() {
    let (session, client, _server, (mut send, _recv)) = raw_client().await;
    send.finish().unwrap();
    assert_eq!(soon(session.closed()).await, Error::Cancelled);
    match soon(client.closed()).await {
        TransportError::ClosedByPeer { code, reason } => {
            assert_eq!(code, ErrorCode::CANCEL);
            assert_eq!(reason, "cancelled");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn garbage_on_the_session_stream_closes_with_5() {
    let (session, client, _server, (mut send, _recv)) = raw_client().await;
    // WIRE.md §9: a SessionUpdate `802625a0` does not parse as Info → close 5.
    send.write(Bytes::from_static(&[0x80, 0x26, 0x25, 0xa0]))
        .await
        .unwrap();
    assert!(matches!(soon(session.closed()).await, Error::Read(_)));
    match soon(client.closed()).await {
        TransportError::ClosedByPeer { code, .. } => assert_eq!(code, ErrorCode::DECODE),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn second_session_stream_is_reset_with_10_and_the_session_goes_on() {
    let (session, client, _server, _stream) = raw_client().await;
    let (send, mut recv) = raw_bi(&client, encode(&[&StreamBi::Session])).await;
    assert_eq!(reset_code(recv.read().await), ErrorCode::UNEXPECTED_STREAM);
    assert_eq!(send.stopped().await, Ok(Some(ErrorCode::UNEXPECTED_STREAM)));
    // The session survives.
    let (mut track, consumer) = moq_model::Track::new(["still"]).produce();
    session.publish(consumer).unwrap();
    track.append_group();
    let (_s, mut r) = raw_bi(
        &client,
        encode(&[
            &StreamBi::Info,
            &moq_proto::InfoRequest {
                path: ["still"].into(),
            },
        ]),
    )
    .await;
    let info = read_all(&mut r).await.unwrap();
    assert_eq!(info, [0x80, 0x01, 0x00, 0x00]);
}

#[tokio::test(start_paused = true)]
async fn close_and_drop_close_the_connection() {
    let (client, server, client_conn, server_conn) = sessions(Config::default()).await;
    client.close(ErrorCode::app(7).unwrap());
    assert_eq!(
        soon(client.closed()).await,
        Error::Closed(ErrorCode::app(7).unwrap())
    );
    match soon(server_conn.closed()).await {
        TransportError::ClosedByPeer { code, .. } => assert_eq!(code, ErrorCode::app(7).unwrap()),
        other => panic!("{other:?}"),
    }
    assert!(matches!(soon(server.closed()).await, Error::Transport(_)));
    drop(client_conn);

    // Dropping every handle closes with 0.
    let (client, _server, _client_conn, server_conn) = sessions(Config::default()).await;
    let clone = client.clone();
    drop(client);
    settle().await;
    assert!(futures_poll(std::pin::pin!(server_conn.closed())).is_pending());
    drop(clone);
    match soon(server_conn.closed()).await {
        TransportError::ClosedByPeer { code, .. } => assert_eq!(code, ErrorCode::CANCEL),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_reset_session_stream_closes_with_4() {
    let (session, client, _server, (mut send, _recv)) = raw_client().await;
    send.reset(ErrorCode::app(2).unwrap());
    assert!(matches!(
        soon(session.closed()).await,
        Error::Transport(TransportError::StreamReset(_))
    ));
    match soon(client.closed()).await {
        TransportError::ClosedByPeer { code, .. } => assert_eq!(code, ErrorCode::TRANSPORT),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn setup_extensions_reach_the_peer_and_a_close_carries_its_reason() {
    let mut ours = Extensions::new();
    ours.insert(Extensions::ROOT, Bytes::from_static(b"room"));
    ours.insert(0x2a, Bytes::from_static(b"x"));
    let mut theirs = Extensions::new();
    theirs.insert(0x2b, Bytes::from_static(b"y"));
    let (client, server) = memory::pair(Config::default());
    let (connected, accepted) = tokio::join!(
        Session::connect_with(
            client,
            moq_session::SessionConfig::default().extensions(ours.clone())
        ),
        Session::accept_with(
            server,
            moq_session::SessionConfig::default().extensions(theirs.clone())
        ),
    );
    let (client, driver) = connected.unwrap();
    tokio::spawn(driver);
    let (server, driver) = accepted.unwrap();
    tokio::spawn(driver);
    assert_eq!(server.peer_extensions(), &ours);
    assert_eq!(client.peer_extensions(), &theirs);

    server.close_with_reason(ErrorCode::UNAUTHORIZED, "not allowed here");
    match soon(client.closed()).await {
        Error::Transport(TransportError::ClosedByPeer { code, reason }) => {
            assert_eq!(code, ErrorCode::UNAUTHORIZED);
            assert_eq!(reason, "not allowed here");
        }
        other => panic!("{other:?}"),
    }
}
