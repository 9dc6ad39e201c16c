//! [`Group`], [`GroupProducer`], [`GroupConsumer`]: an ordered sequence of frames.
//!
//! One lock per group holds every frame of the group (sizes, chunks, status), so a frame costs
//! no allocation of its own beyond its slot in the group's frame list.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};

use crate::Error;
use crate::frame::{FrameConsumer, FrameProducer};
use crate::notify::{self, Lock, Slot, Waiters};

/// The description of a group: its sequence number within its track.
///
/// ```
/// use moq_model::Group;
///
/// let (mut producer, mut consumer) = Group::new(7).produce();
/// producer.write_frame("hello").unwrap();
/// producer.finish();
/// # block_on(async move {
/// assert_eq!(consumer.sequence(), 7);
/// assert_eq!(consumer.read_frame().await.unwrap().unwrap(), "hello");
/// assert_eq!(consumer.read_frame().await.unwrap(), None);
/// # });
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Group {
    /// The group's sequence number (a QUIC varint on the wire, so below 2^62).
    pub sequence: u64,
}

impl Group {
    /// A group with this sequence number.
    pub fn new(sequence: u64) -> Self {
        Self { sequence }
    }

    /// A producer for a standalone group (not in any track) and a first consumer of it.
    pub fn produce(self) -> (GroupProducer, GroupConsumer) {
        let shared = Arc::new(GroupShared::new(self.sequence, 0));
        let consumer = GroupConsumer::new(shared.clone());
        (GroupProducer::new(shared, 0), consumer)
    }
}

/// How a frame's payload is held: one chunk without a vector, more chunks in one.
#[derive(Debug)]
pub(crate) enum Chunks {
    One(Bytes),
    Many(Vec<Bytes>),
}

impl Chunks {
    pub(crate) fn push(&mut self, chunk: Bytes) {
        match self {
            Self::Many(list) if list.is_empty() => *self = Self::One(chunk),
            Self::Many(list) => list.push(chunk),
            Self::One(first) => {
                let first = std::mem::take(first);
                *self = Self::Many(vec![first, chunk]);
            }
        }
    }

    pub(crate) fn get(&self, index: usize) -> Option<&Bytes> {
        match self {
            Self::One(chunk) if index == 0 => Some(chunk),
            Self::One(_) => None,
            Self::Many(list) => list.get(index),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Many(list) => list.len(),
        }
    }
}

/// Where a frame stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameStatus {
    /// Fewer bytes than declared have been written so far.
    Open,
    /// Exactly the declared size has been written.
    Done,
    /// The frame ended abnormally; its consumers see this error.
    Failed(Error),
}

/// One frame of a group, held in the group's state.
#[derive(Debug)]
pub(crate) struct FrameState {
    pub(crate) size: usize,
    pub(crate) written: usize,
    pub(crate) chunks: Chunks,
    pub(crate) status: FrameStatus,
}

/// The mutable part of a group, behind its lock.
#[derive(Debug)]
pub(crate) struct GroupState {
    pub(crate) frames: Vec<FrameState>,
    /// `None` while the producer may add frames; then the clean or abnormal end.
    pub(crate) end: Option<Result<(), Error>>,
    pub(crate) waiters: Waiters,
}

impl GroupState {
    /// Ends the group with `error` (if it has not ended) and fails its unfinished frames.
    /// Returns false if the group had already ended.
    pub(crate) fn abort(&mut self, error: Error) -> bool {
        if self.end.is_some() {
            return false;
        }
        self.end = Some(Err(error));
        for frame in &mut self.frames {
            if frame.status == FrameStatus::Open {
                frame.status = FrameStatus::Failed(error);
            }
        }
        true
    }
}

/// What producers and consumers of one group share.
#[derive(Debug)]
pub(crate) struct GroupShared {
    pub(crate) sequence: u64,
    /// Payload bytes written so far (read by the track's cache accounting without the lock).
    pub(crate) bytes: AtomicUsize,
    pub(crate) state: Lock<GroupState>,
}

impl GroupShared {
    pub(crate) fn new(sequence: u64, waiters_hint: usize) -> Self {
        Self {
            sequence,
            bytes: AtomicUsize::new(0),
            state: Lock::new(GroupState {
                frames: Vec::new(),
                end: None,
                waiters: Waiters::with_capacity(waiters_hint),
            }),
        }
    }

    /// Runs `change` under the lock, then wakes every waiter after releasing it, using
    /// `wakers` (empty, owned by the caller) as the buffer.
    pub(crate) fn change<R>(
        &self,
        wakers: &mut Vec<Waker>,
        change: impl FnOnce(&mut GroupState) -> R,
    ) -> R {
        let mut state = self.state.lock();
        let result = change(&mut state);
        state.waiters.take(wakers);
        drop(state);
        notify::wake(wakers);
        result
    }

    /// Aborts the group from outside its producer (a track abort).
    pub(crate) fn abort(&self, error: Error) {
        let mut wakers = Vec::new();
        self.change(&mut wakers, |state| state.abort(error));
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// Writes the frames of one group. Synchronous: no method blocks or awaits.
///
/// Created by [`TrackProducer::append_group`](crate::TrackProducer::append_group),
/// [`TrackProducer::create_group`](crate::TrackProducer::create_group) or [`Group::produce`].
///
/// # Drop
/// Dropping the producer ends the group cleanly, like [`finish`](Self::finish): consumers
/// read the frames written so far and then `Ok(None)`. Frames still being written through a
/// [`FrameProducer`] are not affected.
#[derive(Debug)]
pub struct GroupProducer {
    shared: Arc<GroupShared>,
    /// Lent to the group's waiter list on every change, so waking allocates nothing.
    wakers: Vec<Waker>,
    ended: bool,
}

impl GroupProducer {
    pub(crate) fn new(shared: Arc<GroupShared>, waiters_hint: usize) -> Self {
        Self {
            shared,
            wakers: Vec::with_capacity(waiters_hint),
            ended: false,
        }
    }

    /// The group's sequence number.
    pub fn sequence(&self) -> u64 {
        self.shared.sequence
    }

    /// Appends a whole frame. The payload is stored once, however many consumers read it.
    ///
    /// Fails only if the group was aborted from above (its track was aborted); the error is
    /// the abort's.
    pub fn write_frame(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        let size = payload.len();
        let shared = &self.shared;
        shared.change(&mut self.wakers, |state| {
            if let Some(Err(error)) = state.end {
                return Err(error);
            }
            state.frames.push(FrameState {
                size,
                written: size,
                chunks: Chunks::One(payload),
                status: FrameStatus::Done,
            });
            shared.bytes.fetch_add(size, Ordering::Relaxed);
            Ok(())
        })
    }

    /// Appends a frame of `size` bytes to be written in chunks through the returned
    /// [`FrameProducer`]. Consumers can start reading its chunks at once.
    ///
    /// Fails only if the group was aborted from above.
    pub fn create_frame(&mut self, size: usize) -> Result<FrameProducer, Error> {
        let (index, hint) = self.shared.change(&mut self.wakers, |state| {
            if let Some(Err(error)) = state.end {
                return Err(error);
            }
            state.frames.push(FrameState {
                size,
                written: 0,
                chunks: Chunks::Many(Vec::new()),
                status: if size == 0 {
                    FrameStatus::Done
                } else {
                    FrameStatus::Open
                },
            });
            Ok((state.frames.len() - 1, state.waiters.len()))
        })?;
        Ok(FrameProducer::new(self.shared.clone(), index, size, hint))
    }

    /// How many frames have been appended so far.
    pub fn frame_count(&self) -> usize {
        self.shared.state.lock().frames.len()
    }

    /// A new consumer of this group, reading from its first frame.
    pub fn consume(&self) -> GroupConsumer {
        GroupConsumer::new(self.shared.clone())
    }

    /// Ends the group cleanly: consumers read every frame written and then `Ok(None)`.
    pub fn finish(mut self) {
        self.end(Ok(()));
    }

    /// Ends the group with `error`: its consumers' reads return `Err(error)`, and so do reads
    /// of its frames that were not complete. Complete frames already handed out as
    /// [`FrameConsumer`]s stay readable.
    pub fn abort(mut self, error: Error) {
        self.end(Err(error));
    }

    fn end(&mut self, end: Result<(), Error>) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.shared.change(&mut self.wakers, |state| match end {
            Ok(()) => {
                if state.end.is_none() {
                    state.end = Some(Ok(()));
                }
            }
            Err(error) => {
                state.abort(error);
            }
        });
    }
}

impl Drop for GroupProducer {
    fn drop(&mut self) {
        self.end(Ok(()));
    }
}

/// Reads the frames of one group, in order, from its first frame.
///
/// Asynchronous and cheap to [`Clone`]; a clone continues from the same frame and every clone
/// reads every frame. Payloads are shared, never copied (except to join the chunks of a
/// multi-chunk frame in [`read_frame`](Self::read_frame)).
///
/// # Drop
/// Dropping a consumer has no effect on the producer or on other consumers.
#[derive(Clone, Debug)]
pub struct GroupConsumer {
    shared: Arc<GroupShared>,
    /// The index of the next frame to return.
    index: usize,
}

impl GroupConsumer {
    pub(crate) fn new(shared: Arc<GroupShared>) -> Self {
        Self { shared, index: 0 }
    }

    /// The group's sequence number.
    pub fn sequence(&self) -> u64 {
        self.shared.sequence
    }

    /// The index of the next frame this consumer will return.
    pub fn frame_index(&self) -> usize {
        self.index
    }

    /// How many frames the producer has appended so far.
    pub fn frame_count(&self) -> usize {
        self.shared.state.lock().frames.len()
    }

    /// The next whole frame: `Ok(Some(payload))`, `Ok(None)` once the group has ended cleanly
    /// and every frame was read, or the error the group or the frame was aborted with.
    /// [`Error::WrongSize`] if the frame's producer went away before writing all of it.
    ///
    /// Waits until the frame is complete. A frame written in one piece comes back without a
    /// copy; the chunks of a multi-chunk frame are joined into one buffer.
    ///
    /// # Cancel safety
    /// Cancel-safe: the consumer advances only when a frame is returned, so dropping the
    /// future loses nothing.
    pub async fn read_frame(&mut self) -> Result<Option<Bytes>, Error> {
        let mut slot = Slot::default();
        let chunks = poll_fn(|cx| self.poll_read_frame(cx, &mut slot)).await?;
        Ok(chunks.map(|chunks| match chunks {
            Chunks::One(payload) => payload,
            Chunks::Many(list) => join(&list),
        }))
    }

    fn poll_read_frame(
        &mut self,
        cx: &mut Context<'_>,
        slot: &mut Slot,
    ) -> Poll<Result<Option<Chunks>, Error>> {
        let mut state = self.shared.state.lock();
        if let Some(Err(error)) = state.end {
            return Poll::Ready(Err(error));
        }
        match state.frames.get(self.index) {
            Some(frame) => match frame.status {
                FrameStatus::Done => {
                    let chunks = match &frame.chunks {
                        Chunks::One(payload) => Chunks::One(payload.clone()),
                        Chunks::Many(list) => Chunks::Many(list.clone()),
                    };
                    self.index += 1;
                    return Poll::Ready(Ok(Some(chunks)));
                }
                FrameStatus::Failed(error) => return Poll::Ready(Err(error)),
                FrameStatus::Open => {}
            },
            None if state.end.is_some() => return Poll::Ready(Ok(None)),
            None => {}
        }
        state.waiters.register(cx.waker(), slot);
        Poll::Pending
    }

    /// The next frame as a [`FrameConsumer`], as soon as it exists (before its payload is
    /// complete), to read it chunk by chunk. `Ok(None)` once the group has ended cleanly and
    /// every frame was returned; the group's error if it was aborted.
    ///
    /// # Cancel safety
    /// Cancel-safe: the consumer advances only when a frame is returned.
    pub async fn next_frame(&mut self) -> Result<Option<FrameConsumer>, Error> {
        let mut slot = Slot::default();
        poll_fn(|cx| self.poll_next_frame(cx, &mut slot)).await
    }

    fn poll_next_frame(
        &mut self,
        cx: &mut Context<'_>,
        slot: &mut Slot,
    ) -> Poll<Result<Option<FrameConsumer>, Error>> {
        let mut state = self.shared.state.lock();
        if let Some(Err(error)) = state.end {
            return Poll::Ready(Err(error));
        }
        if let Some(frame) = state.frames.get(self.index) {
            let consumer = FrameConsumer::new(self.shared.clone(), self.index, frame.size);
            self.index += 1;
            return Poll::Ready(Ok(Some(consumer)));
        }
        if state.end.is_some() {
            return Poll::Ready(Ok(None));
        }
        state.waiters.register(cx.waker(), slot);
        Poll::Pending
    }

    /// Waits until the group has ended: `Ok(())` when it was finished (or its producer
    /// dropped), the error when it was aborted. Frames may still be unread.
    ///
    /// # Cancel safety
    /// Cancel-safe: it only observes.
    pub async fn closed(&self) -> Result<(), Error> {
        let mut slot = Slot::default();
        poll_fn(|cx| {
            let mut state = self.shared.state.lock();
            match state.end {
                Some(end) => Poll::Ready(end),
                None => {
                    state.waiters.register(cx.waker(), &mut slot);
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// Joins chunks into one buffer (one allocation, one copy).
pub(crate) fn join(chunks: &[Bytes]) -> Bytes {
    let mut buffer = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
    for chunk in chunks {
        buffer.extend_from_slice(chunk);
    }
    buffer.freeze()
}
