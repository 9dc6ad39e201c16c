//! The subscriber side of Fetch (WIRE.md §4.7): [`Fetched`], the reply being read, and the
//! task that sends the request.

use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use moq_proto::{ErrorCode, Fetch, StreamBi};

use crate::Error;
use crate::state::Shared;
use crate::stream::start_control;
use crate::transport::{Connection, RecvStream, TransportError};

/// The reply to a Fetch request ([`Session::fetch`](crate::Session::fetch)): the group's
/// stream contents after its Group header (frame headers and payloads) from the requested
/// byte offset, as raw bytes.
///
/// Chunk boundaries carry no meaning: the transport may split or merge the publisher's
/// writes. From offset 0 the reply is a sequence of frames, each a [`moq_proto::Frame`]
/// header (the payload size) followed by the payload; from another offset it continues the
/// bytes of the group received before.
///
/// # Drop
///
/// Dropping it before the end of the reply stops the stream (STOP_SENDING with
/// [`ErrorCode::CANCEL`]); our publisher gives up the reply as soon as it learns of the stop.
#[must_use = "the reply is only read through this handle; dropping it stops the stream"]
pub struct Fetched {
    recv: Box<dyn ErasedRecv>,
    /// Read to the end (FIN): nothing left to stop.
    fin: bool,
}

impl fmt::Debug for Fetched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetched")
            .field("id", &self.recv.id())
            .field("fin", &self.fin)
            .finish_non_exhaustive()
    }
}

impl Fetched {
    /// The next chunk of the reply; `None` once the publisher finished it (the group ended
    /// and everything from the offset was read), and again on every later call.
    ///
    /// Fails with [`Error::Transport`] carrying [`TransportError::StreamReset`] with the
    /// publisher's code: [`ErrorCode::NOT_FOUND`] (13) if it knows no such track or group
    /// (as [`Session::info`](crate::Session::info) reports an unknown track), or the
    /// group's error code if the group was aborted. A reply that ends in a reset is never
    /// presented as complete.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before it resolves, no data was consumed.
    pub async fn read_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if self.fin {
            return Ok(None);
        }
        match self.recv.read().await? {
            Some(chunk) => Ok(Some(chunk)),
            None => {
                self.fin = true;
                Ok(None)
            }
        }
    }

    /// Reads the whole reply into one buffer of at most `max` bytes.
    ///
    /// A reply longer than `max` stops the stream with [`ErrorCode::BOUNDS_EXCEEDED`] and
    /// fails with [`Error::BoundsExceeded`]; nothing beyond `max` bytes is buffered. Other
    /// errors as for [`read_chunk`](Self::read_chunk).
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: if the future is dropped before it resolves, the bytes read so far
    /// are lost. Loop on [`read_chunk`](Self::read_chunk) to keep them.
    pub async fn read_all(&mut self, max: usize) -> Result<Bytes, Error> {
        let mut first: Option<Bytes> = None;
        let mut joined = BytesMut::new();
        let mut total = 0usize;
        while let Some(chunk) = self.read_chunk().await? {
            total = total.saturating_add(chunk.len());
            if total > max {
                self.recv.stop(ErrorCode::BOUNDS_EXCEEDED);
                // Stopped: nothing is left to stop on drop.
                self.fin = true;
                return Err(Error::BoundsExceeded);
            }
            // A reply in one chunk is returned as it came, without a copy.
            match first.take() {
                None if joined.is_empty() => first = Some(chunk),
                None => joined.extend_from_slice(&chunk),
                Some(previous) => {
                    joined.reserve(previous.len() + chunk.len());
                    joined.extend_from_slice(&previous);
                    joined.extend_from_slice(&chunk);
                }
            }
        }
        Ok(first.unwrap_or_else(|| joined.freeze()))
    }
}

impl Drop for Fetched {
    fn drop(&mut self) {
        if !self.fin {
            // What dropping a receive stream does anyway (WIRE.md §2.4); said explicitly.
            self.recv.stop(ErrorCode::CANCEL);
        }
    }
}

/// A [`RecvStream`] behind a trait object, so that [`Fetched`] is not generic.
trait ErasedRecv: Send + 'static {
    fn id(&self) -> u64;
    fn read(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, TransportError>>;
    fn stop(&mut self, code: ErrorCode);
}

impl<R: RecvStream> ErasedRecv for R {
    fn id(&self) -> u64 {
        RecvStream::id(self)
    }

    fn read(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, TransportError>> {
        Box::pin(RecvStream::read(self))
    }

    fn stop(&mut self, code: ErrorCode) {
        RecvStream::stop(self, code);
    }
}

/// §4.7: opens a Fetch stream, writes `vi 3` + Fetch, and finishes our side (the request is
/// the only message the subscriber sends on it); the reply is read through [`Fetched`].
pub(crate) async fn request_fetch<C: Connection>(
    conn: C,
    shared: Arc<Shared>,
    request: Fetch,
) -> Result<Fetched, Error> {
    if let Some(err) = shared.closed_error() {
        return Err(err);
    }
    let (send, recv) = conn.open_bi().await?;
    // On failure the sender is reset and the receive half stopped as they drop.
    let mut send = start_control(send, StreamBi::Fetch, &request).await?;
    send.finish();
    Ok(Fetched {
        recv: Box::new(recv),
        fin: false,
    })
}
