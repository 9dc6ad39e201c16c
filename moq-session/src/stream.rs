//! Small wrappers around transport streams: a message reader for control streams, a writer
//! that encodes messages into a reused buffer and resets the stream if it is dropped
//! unfinished, and the cancel signal (and priority changes) of a group stream.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::future::{Either, select};
use futures_util::task::AtomicWaker;
use moq_proto::{Decode, Encode, ErrorCode, MessageReader, ReadError, ReaderConfig};

use crate::Error;
use crate::transport::{RecvStream, SendStream, TransportError};

/// Bytes of the block group-stream headers are cut from (see [`Sender::for_group`]).
const HEADER_BLOCK: usize = 1024;

/// Reads the messages of a control stream.
pub(crate) struct Reader<R> {
    recv: R,
    buf: MessageReader,
    fin: bool,
}

impl<R: RecvStream> Reader<R> {
    pub(crate) fn new(recv: R, config: ReaderConfig) -> Self {
        Self {
            recv,
            buf: MessageReader::with_config(config),
            fin: false,
        }
    }

    /// The next message; `None` at a clean end of the stream (FIN at a message boundary).
    ///
    /// Cancel-safe: bytes read are pushed into the buffer before the next await.
    pub(crate) async fn next<T: Decode + 'static>(&mut self) -> Result<Option<T>, Error> {
        loop {
            if let Some(message) = self.buf.next::<T>()? {
                return Ok(Some(message));
            }
            if self.fin {
                self.buf.finish()?;
                return Ok(None);
            }
            match self.recv.read().await? {
                Some(chunk) => self.buf.push(&chunk),
                None => self.fin = true,
            }
        }
    }

    /// The next message, which must be there: a FIN first is a decode error (code 5).
    pub(crate) async fn required<T: Decode + 'static>(&mut self) -> Result<T, Error> {
        match self.next().await? {
            Some(message) => Ok(message),
            None => Err(Error::Read(ReadError::Truncated { buffered: 0 })),
        }
    }

    /// Waits for the end of the stream, discarding anything that arrives (for streams on
    /// which the peer has nothing more to say). `Ok` on FIN.
    pub(crate) async fn closed(&mut self) -> Result<(), Error> {
        if self.fin {
            return Ok(());
        }
        while self.recv.read().await?.is_some() {}
        self.fin = true;
        Ok(())
    }

    pub(crate) fn stop(&mut self, code: ErrorCode) {
        self.recv.stop(code);
    }
}

/// The sending half of a stream. Messages are encoded into one reused buffer; payload chunks
/// are written as they are (zero-copy). Dropped before [`finish`](Self::finish) or
/// [`reset`](Self::reset), the stream is reset (with the cancel code, if any): a truncated
/// stream is never presented to the peer as complete.
///
/// A sender with a [`Cancel`] also applies the priority changes made through it
/// ([`Cancel::set_priority`]) while it waits: in a write, in [`stop_code`](Self::stop_code)
/// and in [`finish_delivered`](Self::finish_delivered).
pub(crate) struct Sender<S: SendStream> {
    stream: S,
    buf: BytesMut,
    done: bool,
    cancel: Option<std::sync::Arc<Cancel>>,
}

impl<S: SendStream> Sender<S> {
    pub(crate) fn new(stream: S) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            done: false,
            cancel: None,
        }
    }

    /// A sender whose headers are cut from one block of `HEADER_BLOCK` bytes: the transport
    /// may hold a header until it is delivered, so a buffer reused per write would need a new
    /// allocation per frame; slices of one block need one per few hundred frames.
    pub(crate) fn for_group(stream: S, cancel: std::sync::Arc<Cancel>) -> Self {
        let mut sender = Self::with_cancel(stream, cancel);
        sender.buf = BytesMut::with_capacity(HEADER_BLOCK);
        sender
    }

    /// A sender whose drop resets with the code of `cancel` (when set).
    pub(crate) fn with_cancel(stream: S, cancel: std::sync::Arc<Cancel>) -> Self {
        let mut sender = Self::new(stream);
        sender.cancel = Some(cancel);
        sender
    }

    pub(crate) fn set_priority(&self, priority: i32) {
        self.stream.set_priority(priority);
    }

    /// Appends a message to the pending buffer (written by [`flush`](Self::flush)).
    pub(crate) fn encode<T: Encode>(&mut self, message: &T) {
        self.buf.reserve(message.encoded_len());
        message.encode(&mut self.buf);
    }

    /// Writes what [`encode`](Self::encode) buffered. The buffer's allocation is reused
    /// once the transport has let go of the previous bytes.
    pub(crate) async fn flush(&mut self) -> Result<(), Error> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let bytes = self.buf.split().freeze();
        self.send(bytes).await?;
        Ok(())
    }

    /// Writes all of `bytes`. With a [`Cancel`], a priority change made while the write
    /// waits (e.g. for flow control) is applied at once: the pending `write_some` is dropped
    /// (it is cancel-safe: nothing was written), the priority set, and the write resumed.
    async fn send(&mut self, mut bytes: Bytes) -> Result<(), TransportError> {
        let Some(cancel) = self.cancel.as_deref() else {
            return self.stream.write(bytes).await;
        };
        while !bytes.is_empty() {
            let changed = {
                let write = pin!(self.stream.write_some(&mut bytes));
                match select(write, pin!(cancel.reprioritized())).await {
                    Either::Left((written, _)) => {
                        written?;
                        None
                    }
                    Either::Right((priority, _)) => Some(priority),
                }
            };
            if let Some(priority) = changed {
                self.stream.set_priority(priority);
            }
        }
        Ok(())
    }

    /// The stream's `stopped`, applying priority changes while it waits (`stopped` only
    /// observes, so it is dropped and asked again after each change).
    async fn stopped(&mut self) -> Result<Option<ErrorCode>, TransportError> {
        let Some(cancel) = self.cancel.as_deref() else {
            return self.stream.stopped().await;
        };
        loop {
            let priority = {
                let stopped = pin!(self.stream.stopped());
                match select(stopped, pin!(cancel.reprioritized())).await {
                    Either::Left((fate, _)) => return fate,
                    Either::Right((priority, _)) => priority,
                }
            };
            self.stream.set_priority(priority);
        }
    }

    /// Encodes and writes one message.
    pub(crate) async fn write_message<T: Encode>(&mut self, message: &T) -> Result<(), Error> {
        self.encode(message);
        self.flush().await
    }

    /// Writes a payload chunk as it is.
    pub(crate) async fn write(&mut self, chunk: Bytes) -> Result<(), Error> {
        self.flush().await?;
        self.send(chunk).await?;
        Ok(())
    }

    pub(crate) fn finish(&mut self) {
        if !self.done {
            self.done = true;
            let _ = self.stream.finish();
        }
    }

    /// Finishes the stream and waits until the peer has received all of it (`Ok`), or
    /// stopped it (`Err` with the stop code; `None` if the connection failed). Until then,
    /// dropping the sender (e.g. because the send was cancelled) still resets the stream and
    /// abandons what is undelivered.
    pub(crate) async fn finish_delivered(&mut self) -> Result<(), Option<ErrorCode>> {
        if self.stream.finish().is_err() {
            self.done = true;
            return Err(None);
        }
        let fate = self.stopped().await;
        self.done = true;
        match fate {
            Ok(None) => Ok(()),
            Ok(Some(code)) => Err(Some(code)),
            Err(_) => Err(None),
        }
    }

    /// Resolves when the peer stops the stream, with its code (a connection error counts as
    /// [`ErrorCode::TRANSPORT`]); never resolves otherwise.
    pub(crate) async fn stop_code(&mut self) -> ErrorCode {
        match self.stopped().await {
            Ok(Some(code)) => code,
            Ok(None) => std::future::pending().await,
            Err(_) => ErrorCode::TRANSPORT,
        }
    }

    pub(crate) fn reset(&mut self, code: ErrorCode) {
        if !self.done {
            self.done = true;
            self.stream.reset(code);
        }
    }
}

impl<S: SendStream> Drop for Sender<S> {
    fn drop(&mut self) {
        let code = self
            .cancel
            .as_ref()
            .and_then(|cancel| cancel.code())
            .unwrap_or(ErrorCode::CANCEL);
        self.reset(code);
    }
}

/// Resets the send half and stops the receive half of a control stream with `code`
/// ("reset+stop", WIRE.md §4.8).
pub(crate) fn abort<S: SendStream, R: RecvStream>(
    send: &mut Sender<S>,
    recv: &mut Reader<R>,
    code: ErrorCode,
) {
    send.reset(code);
    recv.stop(code);
}

/// Tells a group stream's sending future to stop, with the code to reset it with; and
/// carries priority changes to it (a SubscribeUpdate, WIRE.md §5.7), which its [`Sender`]
/// applies to the stream.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    set: AtomicBool,
    code: Mutex<Option<ErrorCode>>,
    waker: AtomicWaker,
    /// A priority not yet applied to the stream, in `priority`.
    reprioritized: AtomicBool,
    priority: AtomicI32,
}

impl Cancel {
    /// Asks the stream's sender to move the stream to `priority`, also while it waits.
    pub(crate) fn set_priority(&self, priority: i32) {
        self.priority.store(priority, Ordering::Relaxed);
        self.reprioritized.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Resolves with the priority set since the last call, or at the next change.
    async fn reprioritized(&self) -> i32 {
        poll_fn(|cx| match self.poll_priority(cx) {
            Some(priority) => Poll::Ready(priority),
            None => Poll::Pending,
        })
        .await
    }

    /// The priority set since the last call, if any; otherwise wakes `cx` on the next change.
    fn poll_priority(&self, cx: &mut Context<'_>) -> Option<i32> {
        if !self.reprioritized.load(Ordering::Acquire) {
            self.waker.register(cx.waker());
        }
        self.reprioritized
            .swap(false, Ordering::AcqRel)
            .then(|| self.priority.load(Ordering::Relaxed))
    }

    pub(crate) fn cancel(&self, code: ErrorCode) {
        let mut slot = self.code.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(code);
            self.set.store(true, Ordering::Release);
        }
        drop(slot);
        self.waker.wake();
    }

    pub(crate) fn code(&self) -> Option<ErrorCode> {
        if !self.set.load(Ordering::Acquire) {
            return None;
        }
        *self.code.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<ErrorCode> {
        if let Some(code) = self.code() {
            return Poll::Ready(code);
        }
        self.waker.register(cx.waker());
        match self.code() {
            Some(code) => Poll::Ready(code),
            None => Poll::Pending,
        }
    }

    /// Runs `work` until it completes or the cancel is set (then `Err(code)`).
    pub(crate) async fn run<T>(
        &self,
        work: impl Future<Output = Result<T, ErrorCode>>,
    ) -> Result<T, ErrorCode> {
        let mut work = std::pin::pin!(work);
        poll_fn(|cx| {
            if let Poll::Ready(code) = self.poll(cx) {
                return Poll::Ready(Err(code));
            }
            work.as_mut().poll(cx)
        })
        .await
    }
}
