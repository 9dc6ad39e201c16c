//! The transport a session runs over: a QUIC-like connection with streams.
//!
//! The session never names quinn, WebTransport or a runtime. It talks to a [`Connection`]
//! through three small traits, and every failure crossing them is one concrete enum owned
//! by this crate, [`TransportError`], so the session alone decides what each case means.
//!
//! ```text
//!   moq-session (protocol logic)
//!        |  Connection / SendStream / RecvStream, TransportError, ErrorCode
//!   adapter (one file per transport: quinn, web-transport-quinn, memory, ...)
//!        |  the transport's own types, wire codes
//!   QUIC
//! ```
//!
//! # What an adapter must do
//!
//! * **Streams.** Open and accept bidirectional and unidirectional streams. The two halves
//!   of a bidirectional stream report the same [`id`](SendStream::id). Stream ids are the
//!   QUIC stream ids where the transport has them; they are for tracing and fault injection,
//!   the session gives them no meaning.
//! * **Writes are zero-copy.** Chunks are handed over as [`Bytes`]; an adapter passes them to
//!   the transport without copying where the transport allows it (quinn's `write_chunks`).
//! * **Priority.** [`SendStream::set_priority`] has quinn's meaning: when the connection is
//!   short of congestion window, buffered data of a higher-priority stream is sent before
//!   that of a lower-priority one; equal priorities share the link. The default is 0.
//! * **Codes are protocol codes.** Every [`ErrorCode`] crossing these traits, in either
//!   direction, is the plain MoQ code of WIRE.md §6. The mapping to what goes on the wire
//!   (WIRE.md §2.4) lives in the adapter, and only there:
//!   - RESET_STREAM and STOP_SENDING carry the WebTransport-mapped code
//!     ([`ErrorCode::to_webtransport`]), on raw QUIC too;
//!   - an application CONNECTION_CLOSE carries the plain code on raw QUIC and the mapped
//!     code on WebTransport;
//!   - on receipt, the adapter maps back with [`ErrorCode::from_webtransport`]; a code that
//!     does not map (outside the WebTransport range, or a reserved code point) becomes
//!     [`ErrorCode::TRANSPORT`]. A connection close is read as a plain code on raw QUIC
//!     and as a mapped one on WebTransport, except that a browser's session close capsule
//!     carries the plain code (WIRE.md §2.4: accept both); a plain code that does not fit
//!     in a `u32` becomes [`ErrorCode::TRANSPORT`] too.
//! * **Implicit ends mirror QUIC** (WIRE.md §2.4):
//!   - a [`SendStream`] dropped without [`finish`](SendStream::finish) or
//!     [`reset`](SendStream::reset) is finished: the peer reads everything written, then the
//!     end of the stream;
//!   - a [`RecvStream`] dropped before it was read to the end (or reset by the peer) sends
//!     STOP_SENDING with [`ErrorCode::CANCEL`] (raw 0 on the wire);
//!   - a connection whose every handle is dropped is closed with [`ErrorCode::CANCEL`] and
//!     an empty reason. Adapters do this at the latest when every connection handle *and*
//!     every stream is gone (quinn's rule); they may do it as soon as the last connection
//!     handle goes (the in-memory transport does). A session that wants a prompt, explicit
//!     close calls [`Connection::close`].
//! * **Errors on pending operations.** When the connection ends, every pending and future
//!   operation on it and its streams fails with the reason it ended (the same value
//!   [`Connection::closed`] yields), except that a receive stream already read to its end
//!   keeps reading `None`.
//! * **Cancel safety.** Each method below states its cancel safety; adapters must honour it.
//!   All futures are `Send`, and handles are `Send + 'static`, because the session runs one
//!   task per stream.
//!
//! # Example
//!
//! Code that is generic over the transport, here an echo of one bidirectional stream:
//!
//! ```
//! use moq_session::transport::{Connection, RecvStream, SendStream, TransportError};
//!
//! async fn echo_one<C: Connection>(conn: &C) -> Result<(), TransportError> {
//!     let (mut send, mut recv) = conn.accept_bi().await?;
//!     while let Some(chunk) = recv.read().await? {
//!         send.write(chunk).await?;
//!     }
//!     send.finish()
//! }
//! ```
#![cfg_attr(
    feature = "memory",
    doc = r#"
With the in-memory transport (feature `memory`):

```
# #[tokio::main(flavor = "current_thread")]
# async fn main() {
use bytes::Bytes;
use moq_session::transport::{memory, Connection, RecvStream, SendStream};

let (client, server) = memory::pair(memory::Config::default());

let mut send = client.open_uni().await.unwrap();
send.write(Bytes::from_static(b"hello")).await.unwrap();
send.finish().unwrap();

let mut recv = server.accept_uni().await.unwrap();
assert_eq!(recv.id(), send.id());
assert_eq!(recv.read().await.unwrap().as_deref(), Some(&b"hello"[..]));
assert_eq!(recv.read().await.unwrap(), None);
# }
```
"#
)]

use std::future::Future;

use bytes::{Buf, Bytes};
use moq_proto::{ErrorCode, Extensions};

#[cfg(feature = "memory")]
pub mod memory;

/// A failure reported by a transport, with the protocol code it carries.
///
/// One enum for every operation, so the session can pass it around and compare it. Codes
/// are protocol codes (WIRE.md §6), already translated by the adapter; a code that could not
/// be translated is [`ErrorCode::TRANSPORT`].
///
/// Connection-level variants ([`is_connection`](Self::is_connection)) mean the whole
/// connection is over; the others concern one stream.
///
/// ```
/// use moq_proto::ErrorCode;
/// use moq_session::transport::TransportError;
///
/// let err = TransportError::StreamReset(ErrorCode::NOT_FOUND);
/// assert_eq!(err.code(), ErrorCode::NOT_FOUND);
/// assert!(!err.is_connection());
///
/// let lost = TransportError::ConnectionLost("idle timeout".into());
/// assert_eq!(lost.code(), ErrorCode::TRANSPORT);
/// assert!(lost.is_connection());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer closed the connection with this code and reason.
    #[error("connection closed by the peer: {code}: {reason:?}")]
    ClosedByPeer {
        /// The code the peer closed with.
        code: ErrorCode,
        /// The peer's reason text (may be empty).
        reason: String,
    },
    /// This side closed the connection (explicitly, or by dropping every handle).
    #[error("connection closed locally: {code}: {reason:?}")]
    ClosedLocally {
        /// The code this side closed with.
        code: ErrorCode,
        /// The reason text this side gave.
        reason: String,
    },
    /// The connection ended without an application close: idle timeout, a transport-level
    /// error, the network went away.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The peer reset the stream being read (RESET_STREAM) with this code.
    #[error("stream reset by the peer: {0}")]
    StreamReset(ErrorCode),
    /// The peer stopped the stream being written (STOP_SENDING) with this code.
    #[error("stream stopped by the peer: {0}")]
    StreamStopped(ErrorCode),
    /// This side already finished, reset or stopped the stream.
    #[error("stream already closed locally")]
    ClosedStream,
}

impl TransportError {
    /// The protocol code this error carries: the close, reset or stop code, or
    /// [`ErrorCode::TRANSPORT`] for errors that carry none (a lost connection, a locally
    /// closed stream).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::ClosedByPeer { code, .. } | Self::ClosedLocally { code, .. } => *code,
            Self::StreamReset(code) | Self::StreamStopped(code) => *code,
            Self::ConnectionLost(_) | Self::ClosedStream => ErrorCode::TRANSPORT,
        }
    }

    /// Whether the whole connection is over (closed by either side, or lost), as opposed
    /// to one stream.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            Self::ClosedByPeer { .. } | Self::ClosedLocally { .. } | Self::ConnectionLost(_)
        )
    }
}

/// A QUIC-like connection: a cheap handle to open, accept and close streams.
///
/// Clones share the connection. Dropping every clone closes it with
/// [`ErrorCode::CANCEL`] and an empty reason (see the [module docs](self) for when exactly).
///
/// Synchronous methods never wait. Every handle is `Send + 'static` and every future
/// `Send`, so a session can hand streams to tasks:
///
/// ```
/// use moq_session::transport::{Connection, RecvStream, TransportError};
///
/// /// Accepts unidirectional streams until the connection ends, counting their bytes.
/// async fn count_bytes<C: Connection>(conn: C) -> Result<u64, TransportError> {
///     let mut total = 0;
///     loop {
///         let mut stream = match conn.accept_uni().await {
///             Ok(stream) => stream,
///             Err(err) if err.is_connection() => return Ok(total),
///             Err(err) => return Err(err),
///         };
///         // Each stream could as well go to its own task: `stream` is `Send + 'static`.
///         while let Some(chunk) = stream.read().await? {
///             total += chunk.len() as u64;
///         }
///     }
/// }
/// ```
pub trait Connection: Clone + Send + Sync + 'static {
    /// The sending half of a stream.
    type SendStream: SendStream;
    /// The receiving half of a stream.
    type RecvStream: RecvStream;

    /// Opens a bidirectional stream.
    ///
    /// Waits while the peer's limit on concurrent bidirectional streams is reached (QUIC
    /// MAX_STREAMS). As in QUIC, the peer may learn of the stream only when something is
    /// sent on it: write before waiting for a reply.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before it resolves, no stream was opened.
    fn open_bi(
        &self,
    ) -> impl Future<Output = Result<(Self::SendStream, Self::RecvStream), TransportError>> + Send;

    /// Opens a unidirectional (send-only) stream.
    ///
    /// Waits while the peer's limit on concurrent unidirectional streams is reached.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before it resolves, no stream was opened.
    fn open_uni(&self) -> impl Future<Output = Result<Self::SendStream, TransportError>> + Send;

    /// Accepts the next bidirectional stream the peer opened.
    ///
    /// With several concurrent callers, each stream goes to exactly one of them.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before it resolves, no stream was taken; the
    /// next call returns it.
    fn accept_bi(
        &self,
    ) -> impl Future<Output = Result<(Self::SendStream, Self::RecvStream), TransportError>> + Send;

    /// Accepts the next unidirectional stream the peer opened.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before it resolves, no stream was taken.
    fn accept_uni(&self) -> impl Future<Output = Result<Self::RecvStream, TransportError>> + Send;

    /// Closes the connection at once with a protocol code and a reason text.
    ///
    /// Data not yet delivered is abandoned, as with a QUIC CONNECTION_CLOSE. Every pending
    /// operation fails; this side sees [`TransportError::ClosedLocally`] and the peer
    /// [`TransportError::ClosedByPeer`] with the same code and reason. Closing an already
    /// closed connection does nothing (the first reason stays).
    fn close(&self, code: ErrorCode, reason: &str);

    /// Resolves when the connection has ended, with the reason it ended.
    ///
    /// The value is what every failed operation on the connection returns: always a
    /// connection-level error ([`TransportError::is_connection`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe; it only observes.
    fn closed(&self) -> impl Future<Output = TransportError> + Send;

    /// Setup extensions the transport contributes to this side's setup message
    /// (`SessionClient` or `SessionServer`, WIRE.md §3.10). None by default.
    ///
    /// For what a transport knows that the session must carry: a raw-QUIC client has no
    /// request URL, so its adapter puts the URL's root path and access token here
    /// ([`Extensions::ROOT`](moq_proto::Extensions::ROOT),
    /// [`Extensions::JWT`](moq_proto::Extensions::JWT)); over WebTransport the CONNECT
    /// URL carries them and nothing is added.
    fn setup_extensions(&self) -> Extensions {
        Extensions::new()
    }
}

/// The sending half of a stream.
///
/// # Drop
///
/// Dropping a send stream that was neither finished nor reset finishes it: the peer reads
/// everything written so far, then the end of the stream (WIRE.md §2.4). To abandon the
/// data instead, call [`reset`](Self::reset) before dropping.
///
/// # Example
///
/// A cancel-safe way to send a buffer: if the future is dropped, `data` holds exactly
/// what was not written.
///
/// ```
/// use bytes::Bytes;
/// use moq_session::transport::{SendStream, TransportError};
///
/// async fn send_all<S: SendStream>(
///     stream: &mut S,
///     data: &mut Bytes,
/// ) -> Result<(), TransportError> {
///     while !data.is_empty() {
///         stream.write_some(data).await?;
///     }
///     Ok(())
/// }
/// ```
pub trait SendStream: Send + 'static {
    /// The stream id (shared with the other half of a bidirectional stream).
    fn id(&self) -> u64;

    /// Writes a prefix of `buf`, at least one byte unless `buf` is empty, and advances
    /// `buf` past what was written. Returns how many bytes were written.
    ///
    /// Waits while the stream's flow-control window (or the transport's send buffer) is
    /// full. The bytes are not copied: what is queued is a slice of `buf`.
    ///
    /// Fails with [`TransportError::StreamStopped`] once the peer stopped the stream,
    /// [`TransportError::ClosedStream`] after [`finish`](Self::finish) or
    /// [`reset`](Self::reset), and a connection error once the connection ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before it resolves, nothing was written and
    /// `buf` is unchanged.
    fn write_some(
        &mut self,
        buf: &mut Bytes,
    ) -> impl Future<Output = Result<usize, TransportError>> + Send;

    /// Writes as much of `first` and then `second` as the stream takes now, advancing them;
    /// the bytes written. A frame header and its payload go in one call, which a transport
    /// may take as one write instead of two. The default writes from the first non-empty one.
    ///
    /// # Cancel safety
    ///
    /// As [`write_some`](Self::write_some): if dropped before it resolves, nothing was
    /// written.
    fn write_some_pair(
        &mut self,
        first: &mut Bytes,
        second: &mut Bytes,
    ) -> impl Future<Output = Result<usize, TransportError>> + Send {
        async move {
            if first.is_empty() {
                self.write_some(second).await
            } else {
                self.write_some(first).await
            }
        }
    }

    /// Writes all of `chunk`.
    ///
    /// Errors as for [`write_some`](Self::write_some).
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: if the future is dropped before it resolves, an unknown prefix of
    /// `chunk` may have been written. Loop on [`write_some`](Self::write_some) with a buffer
    /// you keep to know exactly what was written.
    fn write(&mut self, chunk: Bytes) -> impl Future<Output = Result<(), TransportError>> + Send {
        async move {
            let mut chunk = chunk;
            while chunk.has_remaining() {
                self.write_some(&mut chunk).await?;
            }
            Ok(())
        }
    }

    /// Sets the send priority: when the link is short, buffered data of streams with a
    /// higher priority is sent first; equal priorities share the link. The default is 0.
    ///
    /// Applies to data written later, and to data already buffered from the stream's next
    /// packet on: quinn's send queue keeps a stream at the priority it had when it joined
    /// the queue, so a stream raised above one whose data is queued at a higher priority
    /// waits until that data is sent (the memory transport does the same). Set it before
    /// the first write to have it apply from the start. Does nothing on a stream that is
    /// already closed.
    fn set_priority(&self, priority: i32);

    /// Finishes the stream: the peer reads everything written, then the end (FIN).
    ///
    /// Does not wait for delivery; use [`stopped`](Self::stopped) for that. Fails with
    /// [`TransportError::ClosedStream`] if the stream was already finished or reset, which
    /// is harmless, and with a connection error if the connection ended (the data will not
    /// be delivered). A peer's STOP_SENDING is not reported here but by
    /// [`stopped`](Self::stopped).
    fn finish(&mut self) -> Result<(), TransportError>;

    /// Aborts the stream with a protocol code (RESET_STREAM): data not yet delivered is
    /// abandoned, and the peer's reads fail with [`TransportError::StreamReset`].
    ///
    /// Allowed after [`finish`](Self::finish) (it abandons what is still undelivered);
    /// does nothing if the stream was already reset, stopped by the peer, or the
    /// connection ended.
    fn reset(&mut self, code: ErrorCode);

    /// Resolves when the stream's fate is known: `Some(code)` when the peer stopped it
    /// (STOP_SENDING), `None` when it ended without being stopped: finished and everything
    /// received by the peer, or reset by this side.
    ///
    /// Fails with the connection error if the connection ends first. This is the way to
    /// learn that a subscriber lost interest in a stream while there is nothing to write;
    /// pending writes also fail with [`TransportError::StreamStopped`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe; it only observes.
    fn stopped(&self) -> impl Future<Output = Result<Option<ErrorCode>, TransportError>> + Send;

    /// [`stopped`](Self::stopped) as a future that does not borrow the stream, so that one
    /// watch can last across writes; `None` (the default) where the transport has none, and
    /// callers then ask `stopped` again for each wait.
    ///
    /// A publisher waits for the next frame between writes and watches for STOP_SENDING
    /// meanwhile: one watch per stream instead of one per frame (on quinn each new one takes
    /// the connection's lock three times). Resolves as `stopped` does, once.
    fn stop_watch(&self) -> Option<StopWatch> {
        None
    }
}

/// What [`SendStream::stop_watch`] returns: [`SendStream::stopped`]'s result, owning what it
/// needs.
pub type StopWatch =
    std::pin::Pin<Box<dyn Future<Output = Result<Option<ErrorCode>, TransportError>> + Send>>;

/// The receiving half of a stream.
///
/// # Drop
///
/// Dropping a receive stream before it was read to the end (and while the peer has not
/// reset it) stops it with [`ErrorCode::CANCEL`]: STOP_SENDING 0 on the wire (WIRE.md §2.4).
///
/// # Example
///
/// Reading a whole stream, bounded; a peer that sends too much is stopped with a code.
///
/// ```
/// use moq_proto::ErrorCode;
/// use moq_session::transport::{RecvStream, TransportError};
///
/// async fn read_bounded<R: RecvStream>(
///     stream: &mut R,
///     limit: usize,
/// ) -> Result<Option<Vec<u8>>, TransportError> {
///     let mut all = Vec::new();
///     while let Some(chunk) = stream.read().await? {
///         if all.len() + chunk.len() > limit {
///             stream.stop(ErrorCode::BOUNDS_EXCEEDED);
///             return Ok(None);
///         }
///         all.extend_from_slice(&chunk);
///     }
///     Ok(Some(all))
/// }
/// ```
pub trait RecvStream: Send + 'static {
    /// The stream id (shared with the other half of a bidirectional stream).
    fn id(&self) -> u64;

    /// Reads the next chunk, in order; `None` at the end of the stream (FIN), and again on
    /// every later call.
    ///
    /// Chunk boundaries carry no meaning: the transport may split or merge writes.
    /// Fails with [`TransportError::StreamReset`] if the peer reset the stream (undelivered
    /// data is lost), [`TransportError::ClosedStream`] after [`stop`](Self::stop), and a
    /// connection error once the connection ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before it resolves, no data was consumed.
    fn read(&mut self) -> impl Future<Output = Result<Option<Bytes>, TransportError>> + Send;

    /// Tells the peer to stop sending (STOP_SENDING) with a protocol code; unread data is
    /// discarded and the peer's writes fail with [`TransportError::StreamStopped`].
    ///
    /// Does nothing if the stream was already read to the end, reset, or stopped.
    fn stop(&mut self, code: ErrorCode);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let closed = TransportError::ClosedByPeer {
            code: ErrorCode::NOT_FOUND,
            reason: "gone".into(),
        };
        assert_eq!(closed.code(), ErrorCode::NOT_FOUND);
        assert!(closed.is_connection());

        let local = TransportError::ClosedLocally {
            code: ErrorCode::CANCEL,
            reason: String::new(),
        };
        assert_eq!(local.code(), ErrorCode::CANCEL);
        assert!(local.is_connection());

        assert_eq!(
            TransportError::StreamStopped(ErrorCode::WRONG_SIZE).code(),
            ErrorCode::WRONG_SIZE
        );
        assert!(!TransportError::StreamStopped(ErrorCode::CANCEL).is_connection());
        assert_eq!(TransportError::ClosedStream.code(), ErrorCode::TRANSPORT);
        assert!(!TransportError::ClosedStream.is_connection());
        assert!(TransportError::ConnectionLost(String::new()).is_connection());
    }

    #[test]
    fn display_names_the_code() {
        let err = TransportError::StreamReset(ErrorCode::NOT_FOUND);
        assert_eq!(err.to_string(), "stream reset by the peer: not found (13)");
        let err = TransportError::ClosedByPeer {
            code: ErrorCode::app(1).unwrap(),
            reason: "bye".into(),
        };
        assert_eq!(
            err.to_string(),
            "connection closed by the peer: application error 1 (65): \"bye\""
        );
    }
}
