//! The transport over a WebTransport session (HTTP/3, ALPN `h3`, WIRE.md §2.2), built on
//! `web-transport-quinn`.
//!
//! That crate writes and strips the WebTransport stream headers and maps stream codes into
//! the HTTP/3 error space itself: it is handed the plain code, so the code goes on the wire
//! mapped exactly once.
//!
//! # Closing
//!
//! [`close`](transport::Connection::close) ends the session the way WebTransport defines
//! it, through web-transport-quinn: a CLOSE_WEBTRANSPORT_SESSION capsule with the plain
//! code and the reason on the CONNECT stream, after which the QUIC connection is closed with
//! the *mapped* code (WIRE.md §2.4), by the peer when it has read the capsule, or by this
//! side after three round trips (at least 100 ms) if the peer does not answer (peers on
//! web-transport-quinn 0.3, such as moq-transfork 0.5.0, ignore the capsule; they then get
//! the mapped code without the reason). This side's operations fail at once, and nothing
//! else is sent meanwhile: resets and stops are not sent, and streams dropped in that time
//! are kept until the connection is closed, so no FIN or STOP_SENDING of theirs reaches the
//! peer before the session close does (as with a QUIC close, which ends everything at once).
//!
//! The capsule is what makes the code and reason reach the peer reliably: when a peer
//! closes the QUIC connection itself, web-transport-quinn 0.13 closes it locally as soon
//! as its CONNECT stream fails, and quinn then reports that local close instead of the
//! peer's. The adapter watches for the peer's close and keeps it, which wins that race in
//! practice on a multi-threaded runtime but is not guaranteed; when it is lost, the close
//! reads as [`ErrorCode::CANCEL`] from the peer.
//!
//! A connection lost without any close from the peer (idle timeout, stateless reset) meets
//! the same local close, and loses the same race. The adapter tells the two apart by what
//! arrived: neither a capsule nor a CONNECTION_CLOSE (quinn counts the frames it receives)
//! reads as [`TransportError::ConnectionLost`], as on raw QUIC. A peer that ends the
//! CONNECT stream without a capsule and without closing the connection looks the same
//! afterwards, and reads that way too.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::{Buf, Bytes};
use moq_proto::ErrorCode;
use moq_session::transport::{self, TransportError};
use url::Url;
use web_transport_quinn::generic::poll::SendStream as _;
use web_transport_quinn::{SessionError, WebTransportError};

use crate::codes::{LocalClose, close_code_to_wire, connection_error, stream_code_from_wire};
use crate::credit::{Dir, Held, StreamCredit};
use crate::quic::{RecvState, stream_id};

/// A WebTransport session implementing [`transport::Connection`].
///
/// A cheap handle: clones share the session. When every clone and every stream is dropped,
/// the connection is closed with [`ErrorCode::CANCEL`] (mapped) and no reason.
#[derive(Clone)]
pub struct Connection(Arc<Inner>);

/// Shared by the clones of a connection and its streams: dropped with the last of them.
struct Inner {
    session: web_transport_quinn::Session,
    quic: quinn::Connection,
    local: LocalClose,
    // The first connection error seen that was not a local close (see the module docs).
    remote: Arc<OnceLock<quinn::ConnectionError>>,
    // Streams dropped while this side's close is in progress, kept until the connection is
    // closed so that their implicit FIN or STOP_SENDING does not reach the peer before the
    // session close does (see the module docs).
    frozen: Arc<Mutex<Vec<Frozen>>>,
    /// Raises the peer's stream limits with use (connections of this crate's endpoints).
    credit: Option<Arc<StreamCredit>>,
}

/// A stream kept unsent while the session close is in progress.
#[allow(dead_code)] // held only to delay its drop
enum Frozen {
    Send(web_transport_quinn::SendStream),
    Recv(web_transport_quinn::RecvStream),
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The web-transport-quinn session keeps the QUIC connection alive in a background
        // task, so the last handle closes it. A close in progress (capsule sent) finishes on
        // its own; otherwise WIRE.md §2.4: all handles dropped closes with code 0, mapped
        // on WebTransport.
        if self.local.get().is_none() {
            self.quic
                .close(close_code_to_wire(ErrorCode::CANCEL, true), b"");
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("webtransport::Connection")
            .field(
                "url",
                &self.url().map(|url| crate::redact_url(url.as_str())),
            )
            .field("remote", &self.quic().remote_address())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Wraps an established WebTransport session.
    ///
    /// Call it within a tokio runtime: a small task watches for the end of the connection
    /// (see the module docs).
    pub fn new(session: web_transport_quinn::Session) -> Self {
        Self::with_credit(session, None)
    }

    /// [`new`](Self::new), raising the peer's stream limits with use (see `credit`).
    pub(crate) fn with_credit(
        session: web_transport_quinn::Session,
        credit: Option<Arc<StreamCredit>>,
    ) -> Self {
        let quic: quinn::Connection = (*session).clone();
        let remote = Arc::new(OnceLock::new());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let quic = quic.clone();
            let remote = remote.clone();
            runtime.spawn(async move {
                let err = quic.closed().await;
                if !matches!(err, quinn::ConnectionError::LocallyClosed) {
                    let _ = remote.set(err);
                }
            });
        }
        Self(Arc::new(Inner {
            session,
            quic,
            local: LocalClose::default(),
            remote,
            frozen: Arc::default(),
            credit,
        }))
    }

    /// The URL of the CONNECT request: the one the client asked for, path and query
    /// included (servers accept any path; what it means is up to the application).
    pub fn url(&self) -> Option<&Url> {
        self.0.session.request().map(|request| &request.url)
    }

    /// The underlying web-transport-quinn session.
    ///
    /// Closing it directly bypasses the code translation: use
    /// [`close`](transport::Connection::close).
    pub fn session(&self) -> &web_transport_quinn::Session {
        &self.0.session
    }

    /// The underlying QUIC connection (for statistics, addresses, RTT).
    pub fn quic(&self) -> &quinn::Connection {
        &self.0.quic
    }

    /// The error for a connection that ended with `err` at the QUIC level.
    fn error(&self, err: &quinn::ConnectionError) -> TransportError {
        let err = match err {
            quinn::ConnectionError::LocallyClosed => self.0.remote.get().unwrap_or(err),
            err => {
                let _ = self.0.remote.set(err.clone());
                err
            }
        };
        let capsule = match self.0.session.close_reason() {
            Some(SessionError::WebTransportError(WebTransportError::Closed(code, reason))) => {
                Some((ErrorCode(code), reason))
            }
            _ => None,
        };
        if matches!(err, quinn::ConnectionError::LocallyClosed)
            && self.0.local.get().is_none()
            && capsule.is_none()
            && self.0.quic.stats().frame_rx.connection_close == 0
        {
            // quinn says we closed, but not through `close`: web-transport-quinn did when
            // its CONNECT stream failed, and the peer sent neither a session close capsule
            // nor a CONNECTION_CLOSE. So the connection was lost (idle timeout, stateless
            // reset) and that local close overwrote quinn's reason before the watcher saw it.
            return TransportError::ConnectionLost(
                "lost without a close from the peer (idle timeout or reset)".into(),
            );
        }
        connection_error(err, &self.0.local, || {
            // quinn says we closed, but not through `close`: web-transport-quinn did, because
            // the peer ended the session: with a capsule (plain code), or by closing the QUIC
            // connection, whose code was lost (see the module docs).
            Some(capsule.unwrap_or((ErrorCode::CANCEL, String::new())))
        })
    }

    /// Whether this side's close is in progress: closed by [`close`](transport::Connection::close)
    /// but the QUIC connection not yet.
    fn closing(&self) -> bool {
        self.0.local.get().is_some() && self.0.quic.close_reason().is_none()
    }

    /// Keeps a dropped stream until the connection is closed, if a close is in progress;
    /// otherwise drops it (FIN or STOP_SENDING 0, WIRE.md §2.4).
    fn dispose(&self, stream: Frozen) {
        if self.closing() {
            self.0
                .frozen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(stream);
        }
    }

    /// Fails once this side closed the session: its close completes in the background.
    fn check_open(&self) -> Result<(), TransportError> {
        match self.0.local.get() {
            Some((code, reason)) => Err(TransportError::ClosedLocally {
                code: *code,
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The error for a failed session operation.
    fn session_error(&self, err: &SessionError) -> TransportError {
        if let Err(err) = self.check_open() {
            return err;
        }
        if let Some(closed) = self.quic().close_reason() {
            return self.error(&closed);
        }
        match err {
            // The peer's capsule arrived and the connection is being closed right now.
            SessionError::WebTransportError(WebTransportError::Closed(code, reason)) => {
                TransportError::ClosedByPeer {
                    code: ErrorCode(*code),
                    reason: reason.clone(),
                }
            }
            err => TransportError::ConnectionLost(err.to_string()),
        }
    }

    fn send_stream(&self, stream: web_transport_quinn::SendStream) -> SendStream {
        SendStream {
            id: stream_id(stream.quic_id()),
            stream: Some(Mutex::new(stream)),
            conn: self.clone(),
        }
    }

    fn recv_stream(
        &self,
        stream: web_transport_quinn::RecvStream,
        held: Option<Held>,
    ) -> RecvStream {
        RecvStream {
            id: stream_id(stream.quic_id()),
            stream: Some(stream),
            conn: self.clone(),
            state: RecvState::Open,
            _held: held,
        }
    }

    /// Counts a stream the peer opened in the connection's credit, if it has one.
    fn hold(&self, dir: Dir) -> Option<Held> {
        self.0
            .credit
            .as_ref()
            .map(|credit| credit.accepted(&self.0.quic, dir))
    }
}

impl transport::Connection for Connection {
    type SendStream = SendStream;
    type RecvStream = RecvStream;

    async fn open_bi(&self) -> Result<(SendStream, RecvStream), TransportError> {
        self.check_open()?;
        // Waiting happens in quinn's open (cancel-safe); the WebTransport header written
        // after it fits in any stream window, so it completes in the same poll.
        let (send, recv) = self
            .session()
            .open_bi()
            .await
            .map_err(|e| self.session_error(&e))?;
        Ok((self.send_stream(send), self.recv_stream(recv, None)))
    }

    async fn open_uni(&self) -> Result<SendStream, TransportError> {
        self.check_open()?;
        let send = self
            .session()
            .open_uni()
            .await
            .map_err(|e| self.session_error(&e))?;
        Ok(self.send_stream(send))
    }

    async fn accept_bi(&self) -> Result<(SendStream, RecvStream), TransportError> {
        self.check_open()?;
        let (send, recv) = self
            .session()
            .accept_bi()
            .await
            .map_err(|e| self.session_error(&e))?;
        let held = self.hold(Dir::Bidi);
        Ok((self.send_stream(send), self.recv_stream(recv, held)))
    }

    async fn accept_uni(&self) -> Result<RecvStream, TransportError> {
        self.check_open()?;
        let recv = self
            .session()
            .accept_uni()
            .await
            .map_err(|e| self.session_error(&e))?;
        let held = self.hold(Dir::Uni);
        Ok(self.recv_stream(recv, held))
    }

    fn close(&self, code: ErrorCode, reason: &str) {
        // quinn would overwrite the reason of a connection the peer already closed.
        if self.quic().close_reason().is_none() && self.0.local.set(code, reason) {
            // The session close capsule (plain code), then the QUIC close with the mapped
            // code (WIRE.md §2.4), as the module docs describe.
            self.0.session.close(code.0, reason.as_bytes());
            // Streams dropped meanwhile, and the session itself, are kept until the
            // connection is closed: the session holds the HTTP/3 control streams, and
            // dropping them before the close capsule is through makes the peer (Chromium)
            // fail the connection instead of reading the capsule's code and reason.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let quic = self.0.quic.clone();
                let frozen = self.0.frozen.clone();
                let session = self.0.session.clone();
                runtime.spawn(async move {
                    quic.closed().await;
                    drop(session);
                    frozen
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clear();
                });
            }
        }
    }

    async fn closed(&self) -> TransportError {
        if let Err(err) = self.check_open() {
            return err;
        }
        let err = self.quic().closed().await;
        self.error(&err)
    }
}

/// The sending half of a WebTransport stream.
///
/// [`stopped`](transport::SendStream::stopped) keeps one pending observation per stream
/// (web-transport-quinn's `poll_closed`): await it from one task at a time.
///
/// Dropping it without [`finish`](transport::SendStream::finish) or
/// [`reset`](transport::SendStream::reset) finishes it.
pub struct SendStream {
    // Behind a mutex only so that `stopped(&self)` can drive web-transport-quinn's
    // `poll_closed(&mut self)`, the one call that reports a STOP_SENDING code outside the
    // WebTransport range (such as the plain 0 of a dropped stream) instead of hiding it.
    // Writes go through `get_mut`, without locking.
    stream: Option<Mutex<web_transport_quinn::SendStream>>,
    conn: Connection,
    id: u64,
}

impl std::fmt::Debug for SendStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("webtransport::SendStream")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SendStream {
    fn stream_mut(&mut self) -> &mut web_transport_quinn::SendStream {
        self.stream
            .as_mut()
            .expect("present until dropped")
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn stream_ref(&self) -> &Mutex<web_transport_quinn::SendStream> {
        self.stream.as_ref().expect("present until dropped")
    }

    fn write_error(&self, err: web_transport_quinn::WriteError) -> TransportError {
        use web_transport_quinn::WriteError as E;
        match err {
            E::Stopped(code) => TransportError::StreamStopped(ErrorCode(code)),
            E::InvalidStopped(code) => TransportError::StreamStopped(stream_code_from_wire(code)),
            E::SessionError(e) => self.conn.session_error(&e),
            E::ClosedStream => TransportError::ClosedStream,
        }
    }
}

impl transport::SendStream for SendStream {
    fn id(&self) -> u64 {
        self.id
    }

    async fn write_some(&mut self, buf: &mut Bytes) -> Result<usize, TransportError> {
        self.conn.check_open()?;
        if buf.is_empty() {
            return Ok(0);
        }
        // Zero-copy and cancel-safe, as on raw QUIC (quinn's `write_chunks` underneath).
        let mut chunks = [buf.clone()];
        let written = self.stream_mut().write_chunks(&mut chunks).await;
        let written = written.map_err(|e| self.write_error(e))?;
        buf.advance(written.bytes);
        Ok(written.bytes)
    }

    fn set_priority(&self, priority: i32) {
        let stream = self
            .stream_ref()
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Same sign as quinn: higher is sent first.
        let _ = stream.set_priority(priority);
    }

    fn finish(&mut self) -> Result<(), TransportError> {
        self.conn.check_open()?;
        if let Some(err) = self.conn.quic().close_reason() {
            return Err(self.conn.error(&err));
        }
        self.stream_mut()
            .finish()
            .map_err(|_| TransportError::ClosedStream)
    }

    fn reset(&mut self, code: ErrorCode) {
        // web-transport-quinn maps the plain code into the HTTP/3 space (WIRE.md §2.4).
        // Nothing more goes out while this side's session close is in progress.
        if !self.conn.closing() {
            let _ = self.stream_mut().reset(code.0);
        }
    }

    async fn stopped(&self) -> Result<Option<ErrorCode>, TransportError> {
        use web_transport_quinn::WriteError as E;
        let result = poll_fn(|cx| {
            let mut stream = self
                .stream_ref()
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            stream.poll_closed(cx)
        })
        .await;
        match result {
            Ok(()) | Err(E::ClosedStream) => Ok(None),
            Err(E::Stopped(code)) => Ok(Some(ErrorCode(code))),
            Err(E::InvalidStopped(code)) => Ok(Some(stream_code_from_wire(code))),
            Err(E::SessionError(e)) => Err(self.conn.session_error(&e)),
        }
    }
}

/// The receiving half of a WebTransport stream.
///
/// Dropping it before the end was read sends STOP_SENDING with code 0 (WIRE.md §2.4).
pub struct RecvStream {
    stream: Option<web_transport_quinn::RecvStream>,
    conn: Connection,
    id: u64,
    state: RecvState,
    /// Counted in the connection's stream credit while it lives (if the peer opened it).
    _held: Option<Held>,
}

impl std::fmt::Debug for RecvStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("webtransport::RecvStream")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl transport::RecvStream for RecvStream {
    fn id(&self) -> u64 {
        self.id
    }

    async fn read(&mut self) -> Result<Option<Bytes>, TransportError> {
        use web_transport_quinn::ReadError as E;
        match self.state {
            RecvState::Open => {}
            RecvState::Finished => return Ok(None),
            RecvState::Stopped => return Err(TransportError::ClosedStream),
        }
        let stream = self.stream.as_mut().expect("present until dropped");
        match stream.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => Ok(Some(chunk.bytes)),
            Ok(None) => {
                self.state = RecvState::Finished;
                Ok(None)
            }
            Err(E::Reset(code)) => Err(TransportError::StreamReset(ErrorCode(code))),
            Err(E::InvalidReset(code)) => {
                Err(TransportError::StreamReset(stream_code_from_wire(code)))
            }
            Err(E::SessionError(e)) => Err(self.conn.session_error(&e)),
            Err(E::ClosedStream | E::IllegalOrderedRead) => Err(TransportError::ClosedStream),
        }
    }

    fn stop(&mut self, code: ErrorCode) {
        if self.state == RecvState::Open {
            self.state = RecvState::Stopped;
            // web-transport-quinn maps the plain code into the HTTP/3 space (WIRE.md §2.4).
            if !self.conn.closing() {
                let stream = self.stream.as_mut().expect("present until dropped");
                let _ = stream.stop(code.0);
            }
        }
    }
}

impl Drop for SendStream {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            let stream = stream.into_inner().unwrap_or_else(PoisonError::into_inner);
            self.conn.dispose(Frozen::Send(stream));
        }
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            self.conn.dispose(Frozen::Recv(stream));
        }
    }
}
