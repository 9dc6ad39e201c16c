//! The transport over a raw QUIC connection (ALPN `moqf-02`, WIRE.md §2.1).
//!
//! MoQ bytes start at the first byte of each QUIC stream. Stream resets and STOP_SENDING
//! carry the WebTransport-mapped code, the connection close the plain one (WIRE.md §2.4).

use bytes::{Buf, Bytes};
use moq_proto::{ErrorCode, Extensions};
use moq_session::transport::{self, TransportError};

use std::sync::Arc;

use crate::codes::{
    LocalClose, close_code_to_wire, connection_error, stream_code_from_wire, stream_code_to_wire,
};
use crate::credit::{Dir, Held, StreamCredit};

/// A raw QUIC connection (ALPN `moqf-02`) implementing [`transport::Connection`].
///
/// A cheap handle: clones share the connection. When every clone and every stream is
/// dropped, quinn closes the connection with code 0 and no reason.
#[derive(Clone, Debug)]
pub struct Connection {
    conn: quinn::Connection,
    local: LocalClose,
    setup: Extensions,
    /// Raises the peer's stream limits with use (connections of this crate's endpoints).
    credit: Option<Arc<StreamCredit>>,
}

impl Connection {
    /// Wraps an established quinn connection.
    ///
    /// The connection should have negotiated ALPN `moqf-02` ([`moq_proto::ALPN`]); this is
    /// not checked.
    pub fn new(conn: quinn::Connection) -> Self {
        Self {
            conn,
            local: LocalClose::default(),
            setup: Extensions::new(),
            credit: None,
        }
    }

    /// Raises the peer's stream limits with use (see `credit`).
    pub(crate) fn with_credit(mut self, credit: Arc<StreamCredit>) -> Self {
        self.credit = Some(credit);
        self
    }

    /// Sets what [`setup_extensions`](transport::Connection::setup_extensions) returns:
    /// extensions for the session's setup message, e.g. a client's root path and token
    /// ([`Credentials::to_extensions`](crate::Credentials::to_extensions)), which raw QUIC
    /// has no URL to carry. [`Client::connect`](crate::Client::connect) sets them from the
    /// URL.
    pub fn with_setup_extensions(mut self, extensions: Extensions) -> Self {
        self.setup = extensions;
        self
    }

    /// The underlying quinn connection (for statistics, addresses, RTT).
    ///
    /// Closing it directly bypasses the code translation: use
    /// [`close`](transport::Connection::close).
    pub fn quic(&self) -> &quinn::Connection {
        &self.conn
    }

    fn error(&self, err: &quinn::ConnectionError) -> TransportError {
        connection_error(err, &self.local, || None)
    }

    fn send_stream(&self, stream: quinn::SendStream) -> SendStream {
        SendStream {
            stream,
            conn: self.clone(),
        }
    }

    fn recv_stream(&self, stream: quinn::RecvStream, held: Option<Held>) -> RecvStream {
        RecvStream {
            stream,
            conn: self.clone(),
            state: RecvState::Open,
            _held: held,
        }
    }

    /// Counts a stream the peer opened in the connection's credit, if it has one.
    fn hold(&self, dir: Dir) -> Option<Held> {
        self.credit
            .as_ref()
            .map(|credit| credit.accepted(&self.conn, dir))
    }
}

impl transport::Connection for Connection {
    type SendStream = SendStream;
    type RecvStream = RecvStream;

    async fn open_bi(&self) -> Result<(SendStream, RecvStream), TransportError> {
        // quinn's open is cancel-safe: the stream exists only once the future resolves.
        let (send, recv) = self.conn.open_bi().await.map_err(|e| self.error(&e))?;
        Ok((self.send_stream(send), self.recv_stream(recv, None)))
    }

    async fn open_uni(&self) -> Result<SendStream, TransportError> {
        let send = self.conn.open_uni().await.map_err(|e| self.error(&e))?;
        Ok(self.send_stream(send))
    }

    async fn accept_bi(&self) -> Result<(SendStream, RecvStream), TransportError> {
        let (send, recv) = self.conn.accept_bi().await.map_err(|e| self.error(&e))?;
        let held = self.hold(Dir::Bidi);
        Ok((self.send_stream(send), self.recv_stream(recv, held)))
    }

    async fn accept_uni(&self) -> Result<RecvStream, TransportError> {
        let recv = self.conn.accept_uni().await.map_err(|e| self.error(&e))?;
        let held = self.hold(Dir::Uni);
        Ok(self.recv_stream(recv, held))
    }

    fn close(&self, code: ErrorCode, reason: &str) {
        // quinn would overwrite the reason of a connection the peer already closed.
        if self.conn.close_reason().is_none() && self.local.set(code, reason) {
            // WIRE.md §2.4: a raw QUIC connection close carries the plain code.
            self.conn
                .close(close_code_to_wire(code, false), reason.as_bytes());
        }
    }

    async fn closed(&self) -> TransportError {
        let err = self.conn.closed().await;
        self.error(&err)
    }

    fn setup_extensions(&self) -> Extensions {
        self.setup.clone()
    }
}

/// The sending half of a raw QUIC stream.
///
/// Dropping it without [`finish`](transport::SendStream::finish) or
/// [`reset`](transport::SendStream::reset) finishes it (quinn's behaviour).
#[derive(Debug)]
pub struct SendStream {
    stream: quinn::SendStream,
    conn: Connection,
}

impl SendStream {
    fn write_error(&self, err: quinn::WriteError) -> TransportError {
        write_error(err, |e| self.conn.error(e))
    }
}

/// Translates a quinn write error; `conn` translates a connection error.
pub(crate) fn write_error(
    err: quinn::WriteError,
    conn: impl FnOnce(&quinn::ConnectionError) -> TransportError,
) -> TransportError {
    match err {
        quinn::WriteError::Stopped(code) => {
            TransportError::StreamStopped(stream_code_from_wire(code))
        }
        quinn::WriteError::ConnectionLost(e) => conn(&e),
        quinn::WriteError::ClosedStream => TransportError::ClosedStream,
        quinn::WriteError::ZeroRttRejected => {
            TransportError::ConnectionLost("0-RTT rejected".into())
        }
    }
}

/// Translates a quinn read error; `conn` translates a connection error.
pub(crate) fn read_error(
    err: quinn::ReadError,
    conn: impl FnOnce(&quinn::ConnectionError) -> TransportError,
) -> TransportError {
    match err {
        quinn::ReadError::Reset(code) => TransportError::StreamReset(stream_code_from_wire(code)),
        quinn::ReadError::ConnectionLost(e) => conn(&e),
        quinn::ReadError::ClosedStream | quinn::ReadError::IllegalOrderedRead => {
            TransportError::ClosedStream
        }
        quinn::ReadError::ZeroRttRejected => {
            TransportError::ConnectionLost("0-RTT rejected".into())
        }
    }
}

/// The id of a quinn stream as the trait reports it.
pub(crate) fn stream_id(id: quinn::StreamId) -> u64 {
    quinn::VarInt::from(id).into_inner()
}

impl transport::SendStream for SendStream {
    fn id(&self) -> u64 {
        stream_id(self.stream.id())
    }

    async fn write_some(&mut self, buf: &mut Bytes) -> Result<usize, TransportError> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Zero-copy: quinn keeps slices of the (reference-counted) chunk. `write_chunks`
        // takes data only in the poll that resolves, so dropping this future writes nothing
        // and `buf` is advanced only by what was taken.
        let mut chunks = [buf.clone()];
        let written = self
            .stream
            .write_chunks(&mut chunks)
            .await
            .map_err(|e| self.write_error(e))?;
        buf.advance(written.bytes);
        Ok(written.bytes)
    }

    async fn write_some_pair(
        &mut self,
        first: &mut Bytes,
        second: &mut Bytes,
    ) -> Result<usize, TransportError> {
        if first.is_empty() && second.is_empty() {
            return Ok(0);
        }
        // One write (one lock of the connection, one wake-up of its driver) for both, as in
        // `write_some`: clones taken, the originals advanced by what was written.
        let mut chunks = [first.clone(), second.clone()];
        let written = self
            .stream
            .write_chunks(&mut chunks)
            .await
            .map_err(|e| self.write_error(e))?;
        let from_first = written.bytes.min(first.len());
        first.advance(from_first);
        second.advance(written.bytes - from_first);
        Ok(written.bytes)
    }

    fn set_priority(&self, priority: i32) {
        // Same sign as quinn: higher is sent first.
        let _ = self.stream.set_priority(priority);
    }

    fn finish(&mut self) -> Result<(), TransportError> {
        if let Some(err) = self.conn.conn.close_reason() {
            return Err(self.conn.error(&err));
        }
        self.stream
            .finish()
            .map_err(|_| TransportError::ClosedStream)
    }

    fn reset(&mut self, code: ErrorCode) {
        // WIRE.md §2.4: RESET_STREAM carries the mapped code, on raw QUIC too.
        let _ = self.stream.reset(stream_code_to_wire(code));
    }

    async fn stopped(&self) -> Result<Option<ErrorCode>, TransportError> {
        stopped_result(self.stream.stopped().await, &self.conn.local)
    }

    // quinn's `stopped` owns what it needs (a handle of the connection, taken under its
    // lock, as is the watch's registration and its drop): made once per stream here.
    fn stop_watch(&self) -> Option<transport::StopWatch> {
        let stopped = self.stream.stopped();
        let local = self.conn.local.clone();
        Some(Box::pin(
            async move { stopped_result(stopped.await, &local) },
        ))
    }
}

/// `SendStream::stopped`'s result from quinn's.
fn stopped_result(
    result: Result<Option<quinn::VarInt>, quinn::StoppedError>,
    local: &LocalClose,
) -> Result<Option<ErrorCode>, TransportError> {
    match result {
        Ok(code) => Ok(code.map(stream_code_from_wire)),
        Err(quinn::StoppedError::ConnectionLost(e)) => Err(connection_error(&e, local, || None)),
        Err(quinn::StoppedError::ZeroRttRejected) => {
            Err(TransportError::ConnectionLost("0-RTT rejected".into()))
        }
    }
}

/// Where a receive stream stands, as far as the trait's contract needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecvState {
    /// Still reading.
    Open,
    /// Read to the end: every later read is `None`.
    Finished,
    /// Stopped by this side: every later read fails with `ClosedStream`.
    Stopped,
}

/// The receiving half of a raw QUIC stream.
///
/// Dropping it before the end was read sends STOP_SENDING with code 0 (quinn's behaviour,
/// which is the implicit stop of WIRE.md §2.4).
#[derive(Debug)]
pub struct RecvStream {
    stream: quinn::RecvStream,
    conn: Connection,
    state: RecvState,
    /// Counted in the connection's stream credit while it lives (if the peer opened it).
    _held: Option<Held>,
}

impl transport::RecvStream for RecvStream {
    fn id(&self) -> u64 {
        stream_id(self.stream.id())
    }

    async fn read(&mut self) -> Result<Option<Bytes>, TransportError> {
        match self.state {
            RecvState::Open => {}
            RecvState::Finished => return Ok(None),
            RecvState::Stopped => return Err(TransportError::ClosedStream),
        }
        // quinn's `read_chunk` consumes data only in the poll that resolves: cancel-safe.
        match self.stream.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => Ok(Some(chunk.bytes)),
            Ok(None) => {
                self.state = RecvState::Finished;
                Ok(None)
            }
            Err(err) => Err(read_error(err, |e| self.conn.error(e))),
        }
    }

    fn stop(&mut self, code: ErrorCode) {
        if self.state == RecvState::Open {
            self.state = RecvState::Stopped;
            // WIRE.md §2.4: STOP_SENDING carries the mapped code, on raw QUIC too.
            let _ = self.stream.stop(stream_code_to_wire(code));
        }
    }
}
