//! Small wrappers around transport streams: a message reader for control streams, a writer
//! that encodes messages into a reused buffer and resets the stream if it is dropped
//! unfinished, and the cancel signal and the changeable priority of a group stream.

use std::future::poll_fn;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::future::{Either, select};
use futures_util::task::AtomicWaker;
use moq_proto::{Decode, Encode, ErrorCode, MessageReader, ReadError, ReaderConfig, StreamBi};

use crate::Error;
use crate::transport::{RecvStream, SendStream, StopWatch};

/// The QUIC priority of control streams: above any group stream, so that Info reaches the
/// subscriber before the first group (WIRE.md §7.3).
pub(crate) const CONTROL_PRIORITY: i32 = i32::MAX;

/// Starts a control stream we opened (WIRE.md §4.1): at [`CONTROL_PRIORITY`], with its type
/// and first message written. On an error the stream is reset as the sender drops.
pub(crate) async fn start_control<S: SendStream>(
    send: S,
    kind: StreamBi,
    first: &impl Encode,
) -> Result<Sender<S>, Error> {
    let mut send = Sender::new(send);
    send.set_priority(CONTROL_PRIORITY);
    send.encode(&kind);
    send.encode(first);
    send.flush().await?;
    Ok(send)
}

/// Bytes of the block group-stream headers are cut from (see [`Sender::for_group`]).
/// 256: a frame's header is 1 to 8 bytes, so a block lasts dozens of frames, and every group
/// stream in flight to every subscriber holds one.
const HEADER_BLOCK: usize = 256;

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
pub(crate) struct Sender<S: SendStream> {
    stream: S,
    buf: BytesMut,
    done: bool,
    cancel: Option<std::sync::Arc<Cancel>>,
    /// A priority the owner may change while the stream is being sent: applied as soon as
    /// it changes, even while the sender waits (for the peer's window or for delivery).
    priority: Option<std::sync::Arc<Priority>>,
    /// Bytes of each new block headers are cut from (group streams), or 0: `buf` grows as
    /// `BytesMut` grows it (control streams).
    block: usize,
    /// The transport's watch for STOP_SENDING, made at the first wait and kept until it
    /// resolves (`SendStream::stop_watch`).
    watch: Option<StopWatch>,
}

impl<S: SendStream> Sender<S> {
    pub(crate) fn new(stream: S) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            done: false,
            cancel: None,
            priority: None,
            block: 0,
            watch: None,
        }
    }

    /// A sender whose headers are cut from one block of `HEADER_BLOCK` bytes: the transport
    /// may hold a header until it is delivered, so a buffer reused per write would need a new
    /// allocation per frame; slices of one block need one per hundred or so frames. Its
    /// stream's priority follows `priority` for as long as the sender lives.
    pub(crate) fn for_group(
        stream: S,
        cancel: std::sync::Arc<Cancel>,
        priority: std::sync::Arc<Priority>,
    ) -> Self {
        let mut sender = Self::with_cancel(stream, cancel);
        sender.block = HEADER_BLOCK;
        sender.buf = BytesMut::with_capacity(HEADER_BLOCK);
        sender.stream.set_priority(priority.get());
        sender.priority = Some(priority);
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
        let len = message.encoded_len();
        // A used-up block is replaced by a whole new one: `BytesMut` forgets capacities
        // under 1 KiB and would allocate exactly each header, one allocation per frame.
        if self.block > 0 && self.buf.is_empty() && self.buf.capacity() < len {
            self.buf = BytesMut::with_capacity(self.block.max(len));
        }
        self.buf.reserve(len);
        message.encode(&mut self.buf);
    }

    /// Writes what [`encode`](Self::encode) buffered. The buffer's allocation is reused
    /// once the transport has let go of the previous bytes.
    pub(crate) async fn flush(&mut self) -> Result<(), Error> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let bytes = self.buf.split().freeze();
        self.write_bytes(bytes).await
    }

    /// Encodes and writes one message.
    pub(crate) async fn write_message<T: Encode>(&mut self, message: &T) -> Result<(), Error> {
        self.encode(message);
        self.flush().await
    }

    /// Writes a payload chunk as it is, after what [`encode`](Self::encode) buffered (in one
    /// transport write where it takes both).
    pub(crate) async fn write(&mut self, chunk: Bytes) -> Result<(), Error> {
        if self.buf.is_empty() {
            return self.write_bytes(chunk).await;
        }
        let header = self.buf.split().freeze();
        self.write_pair(header, chunk).await
    }

    /// Writes all of `bytes`, applying priority changes while it waits for room.
    async fn write_bytes(&mut self, bytes: Bytes) -> Result<(), Error> {
        self.write_pair(Bytes::new(), bytes).await
    }

    /// Writes all of `first` then `second` (in one transport write where it takes both),
    /// applying priority changes while it waits for room.
    async fn write_pair(&mut self, mut first: Bytes, mut second: Bytes) -> Result<(), Error> {
        // Borrowed apart from the stream, not cloned: this runs for every chunk of every
        // group stream, and a clone would be an atomic increment and decrement each time.
        let Self {
            stream, priority, ..
        } = self;
        let Some(priority) = priority.as_deref() else {
            while !first.is_empty() {
                stream.write_some_pair(&mut first, &mut second).await?;
            }
            stream.write(second).await?;
            return Ok(());
        };
        while !first.is_empty() || !second.is_empty() {
            let changed = {
                let write = std::pin::pin!(stream.write_some_pair(&mut first, &mut second));
                let change = std::pin::pin!(priority.changed());
                match select(write, change).await {
                    Either::Left((written, _)) => {
                        written?;
                        continue;
                    }
                    // `write_some_pair` is cancel-safe: dropped, it wrote nothing.
                    Either::Right((value, _)) => value,
                }
            };
            stream.set_priority(changed);
        }
        Ok(())
    }

    /// The stream's `stopped`, applying priority changes meanwhile. The `stopped` future is
    /// kept while nothing changes (a transport may forget the waker of one that is
    /// dropped) and made anew after a change (it only observes).
    async fn stopped(&mut self) -> Result<Option<ErrorCode>, crate::transport::TransportError> {
        let Self {
            stream, priority, ..
        } = self;
        let Some(priority) = priority.as_deref() else {
            return stream.stopped().await;
        };
        loop {
            let changed = {
                let stopped = std::pin::pin!(stream.stopped());
                let change = std::pin::pin!(priority.changed());
                match select(stopped, change).await {
                    Either::Left((fate, _)) => return fate,
                    Either::Right((value, _)) => value,
                }
            };
            stream.set_priority(changed);
        }
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
    ///
    /// Cancel-safe: one watch of the transport lasts across calls where it has them.
    pub(crate) async fn stop_code(&mut self) -> ErrorCode {
        if self.watch.is_none() {
            self.watch = self.stream.stop_watch();
        }
        let result = match self.watch.as_mut() {
            Some(watch) => {
                let result = watch.as_mut().await;
                // Resolved: never polled again (a later call asks for a new one).
                self.watch = None;
                result
            }
            None => self.stopped().await,
        };
        match result {
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

/// The send priority of a group stream, which the subscription serving it may change while
/// the stream is being sent (see `docs/session.md`, "Overload"). The [`Sender`] the stream
/// belongs to applies a change as soon as it is made.
#[derive(Debug)]
pub(crate) struct Priority {
    value: AtomicI32,
    changed: AtomicBool,
    waker: AtomicWaker,
}

impl Priority {
    pub(crate) fn new(value: i32) -> Self {
        Self {
            value: AtomicI32::new(value),
            changed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    pub(crate) fn get(&self) -> i32 {
        self.value.load(Ordering::Acquire)
    }

    pub(crate) fn set(&self, value: i32) {
        if self.value.swap(value, Ordering::AcqRel) != value {
            self.changed.store(true, Ordering::Release);
            self.waker.wake();
        }
    }

    /// Resolves with the new value when it changes.
    ///
    /// # Cancel safety
    /// Cancel-safe: a change is consumed only when it is returned.
    async fn changed(&self) -> i32 {
        poll_fn(|cx| self.poll_changed(cx)).await
    }

    /// The new value if it changed since the last `Ready`.
    fn poll_changed(&self, cx: &mut Context<'_>) -> Poll<i32> {
        // A load first: this runs on every poll of a group stream, and changes are rare.
        if self.changed.load(Ordering::Acquire) && self.changed.swap(false, Ordering::AcqRel) {
            return Poll::Ready(self.get());
        }
        self.waker.register(cx.waker());
        if self.changed.swap(false, Ordering::AcqRel) {
            return Poll::Ready(self.get());
        }
        Poll::Pending
    }
}

/// Tells a group stream's sending future to stop, with the code to reset it with.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    set: AtomicBool,
    code: Mutex<Option<ErrorCode>>,
    waker: AtomicWaker,
}

impl Cancel {
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

    /// Runs `work` until it completes or the cancel is set (then `Err(code)`). Work that
    /// had started and completes successfully when the cancel is seen counts as done: a
    /// group stream delivered just before it was given up (its delivery and the cancel
    /// were handled in the same turn) was delivered. Work not started when the cancel is
    /// seen is never started.
    ///
    /// `work` is pinned by the caller, so that it is stored once, in the caller's state (an
    /// `async fn` taking it by value would keep it twice: as taken and as pinned).
    pub(crate) async fn run<T>(
        &self,
        mut work: std::pin::Pin<&mut impl Future<Output = Result<T, ErrorCode>>>,
    ) -> Result<T, ErrorCode> {
        let mut started = false;
        poll_fn(|cx| {
            if let Poll::Ready(code) = self.poll(cx) {
                if started && let Poll::Ready(Ok(done)) = work.as_mut().poll(cx) {
                    return Poll::Ready(Ok(done));
                }
                return Poll::Ready(Err(code));
            }
            started = true;
            work.as_mut().poll(cx)
        })
        .await
    }
}
