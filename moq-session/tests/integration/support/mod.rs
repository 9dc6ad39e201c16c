//! Helpers shared by the session tests: connected session pairs and a raw peer that
//! writes bytes with moq-proto over the in-memory transport.

use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use moq_proto::{
    Encode, ErrorCode, Extensions, Frame, Group, SessionClient, SessionServer, StreamBi, StreamUni,
    Version,
};
use moq_session::transport::memory::{self, Config};
use moq_session::transport::{Connection, RecvStream, SendStream, TransportError};
use moq_session::{Session, SessionConfig};

/// Fails the test instead of hanging; on tokio's paused clock the timeout fires as soon as
/// every task is idle, so it costs no wall time.
pub(crate) async fn soon<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(3600), future)
        .await
        .expect("never completed")
}

/// Lets every task run until all are idle (on the paused clock: advances to the next timer).
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Waits (on the paused clock) until `condition` holds.
pub(crate) async fn until(mut condition: impl FnMut() -> bool) {
    soon(async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
}

/// A connected pair of sessions with their drivers spawned: (client, server, the client's
/// connection, the server's connection).
pub(crate) async fn sessions(
    config: Config,
) -> (Session, Session, memory::Connection, memory::Connection) {
    sessions_with(config, SessionConfig::default(), SessionConfig::default()).await
}

pub(crate) async fn sessions_with(
    config: Config,
    client_config: SessionConfig,
    server_config: SessionConfig,
) -> (Session, Session, memory::Connection, memory::Connection) {
    let (client, server) = memory::pair(config);
    let (connected, accepted) = tokio::join!(
        Session::connect_with(client.clone(), client_config),
        Session::accept_with(server.clone(), server_config)
    );
    let (client_session, driver) = connected.expect("connect");
    tokio::spawn(driver);
    let (server_session, driver) = accepted.expect("accept");
    tokio::spawn(driver);
    (client_session, server_session, client, server)
}

/// A session config on tokio's clock (paused in tests).
pub(crate) fn paused_clock() -> SessionConfig {
    SessionConfig::default().clock(|| tokio::time::Instant::now().into_std())
}

/// A session config on tokio's clock and timer.
pub(crate) fn paused_clock_and_timer() -> SessionConfig {
    paused_clock().timer(|d| Box::pin(tokio::time::sleep(d)))
}

pub(crate) fn encode(messages: &[&dyn EncodeDyn]) -> Bytes {
    let mut buf = BytesMut::new();
    for message in messages {
        message.encode_dyn(&mut buf);
    }
    buf.freeze()
}

/// `Encode` as an object, to list messages of several types.
pub(crate) trait EncodeDyn {
    fn encode_dyn(&self, buf: &mut BytesMut);
}

impl<T: Encode> EncodeDyn for T {
    fn encode_dyn(&self, buf: &mut BytesMut) {
        self.encode(buf);
    }
}

/// A group stream as a publisher writes it (WIRE.md §4.5): the stream type, the Group
/// header, then each frame's size and payload.
pub(crate) fn group_stream(subscribe: u64, sequence: u64, frames: &[&[u8]]) -> Bytes {
    let mut buf = BytesMut::new();
    StreamUni::Group.encode(&mut buf);
    Group {
        subscribe,
        sequence,
    }
    .encode(&mut buf);
    for frame in frames {
        Frame {
            size: frame.len() as u64,
        }
        .encode(&mut buf);
        buf.extend_from_slice(frame);
    }
    buf.freeze()
}

/// The start of a group stream: the stream type, the Group header and the size of a first
/// frame whose payload is written afterwards (in pieces, in part or never).
pub(crate) fn group_stream_start(subscribe: u64, sequence: u64, frame_size: u64) -> Bytes {
    let mut buf = BytesMut::from(group_stream(subscribe, sequence, &[]));
    Frame { size: frame_size }.encode(&mut buf);
    buf.freeze()
}

pub(crate) async fn read_all<R: RecvStream>(recv: &mut R) -> Result<Vec<u8>, TransportError> {
    let mut all = Vec::new();
    while let Some(chunk) = recv.read().await? {
        all.extend_from_slice(&chunk);
    }
    Ok(all)
}

/// Reads at least `n` bytes (or to the end).
pub(crate) async fn read_n<R: RecvStream>(
    recv: &mut R,
    n: usize,
) -> Result<Vec<u8>, TransportError> {
    let mut all = Vec::new();
    while all.len() < n {
        match recv.read().await? {
            Some(chunk) => all.extend_from_slice(&chunk),
            None => break,
        }
    }
    Ok(all)
}

/// What [`raw_client`] returns: the session on the other side, the raw client connection,
/// the server's connection, and the raw session stream halves.
pub(crate) type RawClient = (
    Session,
    memory::Connection,
    memory::Connection,
    (memory::SendStream, memory::RecvStream),
);

/// A raw client: does the handshake by hand, then returns a session on the other side
/// plus the raw connection and the raw session stream halves.
pub(crate) async fn raw_client() -> RawClient {
    raw_client_with(SessionConfig::default()).await
}

pub(crate) async fn raw_client_with(config: SessionConfig) -> RawClient {
    raw_client_on(Config::default(), config).await
}

/// [`raw_client_with`] over a link shaped by `link`.
pub(crate) async fn raw_client_on(link: Config, config: SessionConfig) -> RawClient {
    let (client, server) = memory::pair(link);
    let accept = tokio::spawn(Session::accept_with(server.clone(), config));
    let (mut send, mut recv) = client.open_bi().await.unwrap();
    let hello = encode(&[
        &StreamBi::Session,
        &SessionClient {
            versions: vec![Version::CURRENT],
            extensions: Extensions::new(),
        },
    ]);
    send.write(hello).await.unwrap();
    let reply = read_n(&mut recv, 9).await.unwrap();
    let expected = SessionServer {
        version: Version::CURRENT,
        extensions: Extensions::new(),
    }
    .to_bytes();
    assert_eq!(reply, &expected[..]);
    let (session, driver) = accept.await.unwrap().expect("accept");
    tokio::spawn(driver);
    (session, client, server, (send, recv))
}

/// Opens a raw bidi stream and writes `bytes` on it.
pub(crate) async fn raw_bi(
    conn: &memory::Connection,
    bytes: Bytes,
) -> (memory::SendStream, memory::RecvStream) {
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write(bytes).await.unwrap();
    (send, recv)
}

pub(crate) fn reset_code(result: Result<impl std::fmt::Debug, TransportError>) -> ErrorCode {
    match result {
        Err(TransportError::StreamReset(code)) => code,
        other => panic!("expected a reset, got {other:?}"),
    }
}
