//! [`Group`], [`GroupProducer`], [`GroupConsumer`]: an ordered sequence of frames.
//!
//! A group's frames live in an append-only list of fixed-size segments whose slots are set
//! once; consumers read complete frames from it without taking the group's lock, and take the
//! lock only to wait (or for frames written in chunks, whose state lives behind it). A frame
//! costs no allocation of its own; the first segment lives in the group itself, and another is
//! allocated every 32 frames.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};

use crate::frame::{FrameConsumer, FrameProducer};
use crate::notify::{self, Lock, Slot, Waiters};
use crate::{Error, MemoryBudget};

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

/// Where a frame written in chunks stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameStatus {
    /// Fewer bytes than declared have been written so far.
    Open,
    /// Exactly the declared size has been written.
    Done,
    /// The frame ended abnormally; its consumers see this error.
    Failed(Error),
}

/// A frame written in chunks, held in its group's locked state.
#[derive(Debug)]
pub(crate) struct FrameState {
    pub(crate) size: usize,
    pub(crate) written: usize,
    pub(crate) chunks: Chunks,
    pub(crate) status: FrameStatus,
}

impl FrameState {
    pub(crate) fn new(size: usize) -> Self {
        Self {
            size,
            written: 0,
            chunks: Chunks::Many(Vec::new()),
            status: if size == 0 {
                FrameStatus::Done
            } else {
                FrameStatus::Open
            },
        }
    }
}

/// A frame as consumers find it in the group's frame list, which they read without the lock.
#[derive(Debug)]
pub(crate) enum FrameSlot {
    /// Written whole: complete and immutable.
    Whole(Bytes),
    /// Written in chunks: its state is `GroupState::chunked[index]`, behind the lock.
    Chunked { index: usize, size: usize },
}

/// Frames per segment of a group's frame list.
const SEGMENT: usize = 32;

/// A fixed-size piece of a group's append-only frame list. Each slot is set once, by the
/// producer under the group lock, and read by consumers without it.
#[derive(Debug)]
pub(crate) struct Segment {
    slots: [OnceLock<FrameSlot>; SEGMENT],
    next: OnceLock<Arc<Segment>>,
}

impl Segment {
    fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| OnceLock::new()),
            next: OnceLock::new(),
        }
    }
}

impl Drop for Segment {
    /// Unlinks the rest of the list iteratively: a long group must not recurse once per
    /// segment when it is dropped.
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(segment) = next {
            next = match Arc::try_unwrap(segment) {
                Ok(mut segment) => segment.next.take(),
                Err(_) => None,
            };
        }
    }
}

/// A reader's position in a group's frame list.
#[derive(Clone, Debug)]
pub(crate) struct Cursor {
    /// The segment holding `index`; `None` for the group's first segment (which lives in the
    /// group itself, so starting to read a group clones no segment).
    segment: Option<Arc<Segment>>,
    /// The index of `segment`'s first slot.
    base: usize,
    /// The index of the next frame.
    index: usize,
}

impl Cursor {
    fn new() -> Self {
        Self {
            segment: None,
            base: 0,
            index: 0,
        }
    }

    /// The frame at the cursor, if the producer has appended it; `head` is the group's first
    /// segment.
    fn slot<'a>(&'a mut self, head: &'a Segment) -> Option<&'a FrameSlot> {
        if self.index - self.base == SEGMENT {
            let current = self.segment.as_deref().unwrap_or(head);
            let next = current.next.get()?.clone();
            self.segment = Some(next);
            self.base = self.index;
        }
        let current = self.segment.as_deref().unwrap_or(head);
        current.slots[self.index - self.base].get()
    }
}

/// The hard limits on a group's memory (see [`CacheLimits`](crate::CacheLimits)).
#[derive(Debug, Default)]
pub(crate) struct GroupLimits {
    /// The most payload bytes the group may hold.
    pub(crate) max_bytes: usize,
    /// Where its bytes are charged.
    pub(crate) budget: Option<MemoryBudget>,
}

/// The mutable part of a group, behind its lock.
#[derive(Debug)]
pub(crate) struct GroupState {
    /// How many frames have been appended (every slot below is set).
    pub(crate) len: usize,
    /// Payload bytes charged against the group's limits.
    charged: usize,
    /// The limits (here, behind the lock that charging takes anyway, and off the cache
    /// lines that lock-free readers use).
    limits: GroupLimits,
    /// The segment the next frame goes into (`None`: the group's first segment).
    tail: Option<Arc<Segment>>,
    /// Frames written in chunks, by [`FrameSlot::Chunked::index`].
    pub(crate) chunked: Vec<FrameState>,
    /// `None` while the producer may add frames; then the clean or abnormal end.
    pub(crate) end: Option<Result<(), Error>>,
    pub(crate) waiters: Waiters,
}

impl GroupState {
    /// Appends a frame to the list (whose first segment is `head`); consumers can read it at
    /// once.
    pub(crate) fn push(&mut self, head: &Segment, slot: FrameSlot) {
        let offset = self.len % SEGMENT;
        if offset == 0 && self.len > 0 {
            let segment = Arc::new(Segment::new());
            let tail = self.tail.as_deref().unwrap_or(head);
            // Set only here, under the lock, once per segment.
            let _ = tail.next.set(segment.clone());
            self.tail = Some(segment);
        }
        let tail = self.tail.as_deref().unwrap_or(head);
        let _ = tail.slots[offset].set(slot);
        self.len += 1;
    }

    /// Appends a frame to be written in chunks; returns its index in `chunked`.
    pub(crate) fn push_chunked(&mut self, head: &Segment, size: usize) -> usize {
        let index = self.chunked.len();
        self.chunked.push(FrameState::new(size));
        self.push(head, FrameSlot::Chunked { index, size });
        index
    }
}

/// A value alone on its (64-byte) cache line, so that writing it does not slow down readers
/// of its neighbours.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct OwnLine<T>(pub(crate) T);

/// What producers and consumers of one group share.
#[derive(Debug)]
pub(crate) struct GroupShared {
    pub(crate) sequence: u64,
    /// Payload bytes written so far (read by the track's cache accounting without the lock).
    /// On a cache line of its own: the producer updates it on every write, and consumers read
    /// the fields next to it on every read.
    pub(crate) bytes: OwnLine<AtomicUsize>,
    /// Set when the group is aborted, so lock-free reads can step aside for the error.
    /// Read on every lock-free read, so kept off the line of the lock the producer takes on
    /// every write.
    aborted: OwnLine<AtomicBool>,
    /// The first segment of the frame list.
    pub(crate) head: Segment,
    pub(crate) state: Lock<GroupState>,
}

impl Drop for GroupShared {
    /// Gives the group's bytes back to its budget.
    fn drop(&mut self) {
        let state = self.state.get_mut();
        if let Some(budget) = &state.limits.budget {
            budget.refund(state.charged);
        }
    }
}

impl GroupShared {
    pub(crate) fn new(sequence: u64, waiters_hint: usize) -> Self {
        Self {
            sequence,
            bytes: OwnLine(AtomicUsize::new(0)),
            aborted: OwnLine(AtomicBool::new(false)),
            state: Lock::new(GroupState {
                len: 0,
                charged: 0,
                limits: GroupLimits {
                    max_bytes: usize::MAX,
                    budget: None,
                },
                tail: None,
                chunked: Vec::new(),
                end: None,
                waiters: Waiters::with_capacity(waiters_hint),
            }),
            head: Segment::new(),
        }
    }

    /// The group with these limits.
    pub(crate) fn with_limits(mut self, limits: GroupLimits) -> Self {
        self.state.get_mut().limits = limits;
        self
    }

    /// Charges `bytes` more to the group's limits (under its lock); past one, aborts the
    /// group with [`Error::BoundsExceeded`] and returns that.
    pub(crate) fn charge(&self, state: &mut GroupState, bytes: usize) -> Result<(), Error> {
        let within_group = state
            .charged
            .checked_add(bytes)
            .is_some_and(|total| total <= state.limits.max_bytes);
        let within_budget = within_group
            && state
                .limits
                .budget
                .as_ref()
                .is_none_or(|budget| budget.try_charge(bytes));
        if !within_budget {
            self.abort_locked(state, Error::BoundsExceeded);
            return Err(Error::BoundsExceeded);
        }
        state.charged += bytes;
        Ok(())
    }

    /// Aborts the group with [`Error::BoundsExceeded`] (and returns that) if `bytes` more
    /// would pass its own limit; charges nothing.
    pub(crate) fn check_fits(&self, state: &mut GroupState, bytes: usize) -> Result<(), Error> {
        if state
            .charged
            .checked_add(bytes)
            .is_some_and(|total| total <= state.limits.max_bytes)
        {
            return Ok(());
        }
        self.abort_locked(state, Error::BoundsExceeded);
        Err(Error::BoundsExceeded)
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

    /// Ends the group with `error` (unless it has ended) and fails its unfinished frames.
    fn abort_locked(&self, state: &mut GroupState, error: Error) {
        if state.end.is_some() {
            return;
        }
        state.end = Some(Err(error));
        self.aborted.0.store(true, Ordering::Release);
        for frame in &mut state.chunked {
            if frame.status == FrameStatus::Open {
                frame.status = FrameStatus::Failed(error);
            }
        }
    }

    /// Aborts the group from outside its producer (a track abort).
    pub(crate) fn abort(&self, error: Error) {
        let mut wakers = Vec::new();
        self.change(&mut wakers, |state| self.abort_locked(state, error));
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes.0.load(Ordering::Relaxed)
    }

    fn is_aborted(&self) -> bool {
        self.aborted.0.load(Ordering::Acquire)
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
            shared.charge(state, size)?;
            state.push(&shared.head, FrameSlot::Whole(payload));
            shared.bytes.0.fetch_add(size, Ordering::Relaxed);
            Ok(())
        })
    }

    /// Appends a frame of `size` bytes to be written in chunks through the returned
    /// [`FrameProducer`]. Consumers can start reading its chunks at once.
    ///
    /// Fails only if the group was aborted from above.
    pub fn create_frame(&mut self, size: usize) -> Result<FrameProducer, Error> {
        let shared = &self.shared;
        let (index, hint) = shared.change(&mut self.wakers, |state| {
            if let Some(Err(error)) = state.end {
                return Err(error);
            }
            // Charged chunk by chunk as it is written (a peer that declares large frames and
            // sends nothing holds nothing); refused at once if it can never fit the group.
            shared.check_fits(state, size)?;
            Ok((state.push_chunked(&shared.head, size), state.waiters.len()))
        })?;
        Ok(FrameProducer::new(self.shared.clone(), index, size, hint))
    }

    /// How many frames have been appended so far.
    pub fn frame_count(&self) -> usize {
        self.shared.state.lock().len
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
        let shared = &self.shared;
        shared.change(&mut self.wakers, |state| match end {
            Ok(()) => {
                if state.end.is_none() {
                    state.end = Some(Ok(()));
                }
            }
            Err(error) => shared.abort_locked(state, error),
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
    cursor: Cursor,
}

/// What [`GroupConsumer::read_frame`] found, before joining chunks outside the lock.
enum Found {
    Frame(Chunks),
    End,
}

impl GroupConsumer {
    pub(crate) fn new(shared: Arc<GroupShared>) -> Self {
        Self {
            shared,
            cursor: Cursor::new(),
        }
    }

    /// The group's sequence number.
    pub fn sequence(&self) -> u64 {
        self.shared.sequence
    }

    /// The index of the next frame this consumer will return.
    pub fn frame_index(&self) -> usize {
        self.cursor.index
    }

    /// How many frames the producer has appended so far.
    pub fn frame_count(&self) -> usize {
        self.shared.state.lock().len
    }

    /// The next whole frame: `Ok(Some(payload))`, `Ok(None)` once the group has ended cleanly
    /// and every frame was read, or the error the group or the frame was aborted with.
    /// [`Error::WrongSize`] if the frame's producer went away before writing all of it.
    ///
    /// Waits until the frame is complete. A frame written in one piece comes back without a
    /// copy (and without taking the group's lock); the chunks of a multi-chunk frame are
    /// joined into one buffer.
    ///
    /// # Cancel safety
    /// Cancel-safe: the consumer advances only when a frame is returned, so dropping the
    /// future loses nothing.
    pub async fn read_frame(&mut self) -> Result<Option<Bytes>, Error> {
        let mut slot = Slot::default();
        let found = poll_fn(|cx| self.poll_read_frame(cx, &mut slot)).await?;
        Ok(match found {
            Found::Frame(Chunks::One(payload)) => Some(payload),
            Found::Frame(Chunks::Many(list)) => Some(join(&list)),
            Found::End => None,
        })
    }

    /// The next frame if it was written whole and is there, read without the lock.
    fn try_whole(&mut self) -> Option<Bytes> {
        if self.shared.is_aborted() {
            return None;
        }
        match self.cursor.slot(&self.shared.head)? {
            FrameSlot::Whole(payload) => {
                let payload = payload.clone();
                self.cursor.index += 1;
                Some(payload)
            }
            FrameSlot::Chunked { .. } => None,
        }
    }

    fn poll_read_frame(
        &mut self,
        cx: &mut Context<'_>,
        slot: &mut Slot,
    ) -> Poll<Result<Found, Error>> {
        if let Some(payload) = self.try_whole() {
            return Poll::Ready(Ok(Found::Frame(Chunks::One(payload))));
        }
        let mut state = self.shared.state.lock();
        if let Some(Err(error)) = state.end {
            return Poll::Ready(Err(error));
        }
        if self.cursor.index < state.len {
            // Appended, so the slot is set (under this lock, before `len` grew).
            let found = match self.cursor.slot(&self.shared.head) {
                Some(FrameSlot::Whole(payload)) => Some(Chunks::One(payload.clone())),
                Some(&FrameSlot::Chunked { index, .. }) => {
                    let frame = &state.chunked[index];
                    match frame.status {
                        FrameStatus::Done => Some(match &frame.chunks {
                            Chunks::One(payload) => Chunks::One(payload.clone()),
                            Chunks::Many(list) => Chunks::Many(list.clone()),
                        }),
                        FrameStatus::Failed(error) => return Poll::Ready(Err(error)),
                        FrameStatus::Open => None,
                    }
                }
                None => None,
            };
            if let Some(chunks) = found {
                self.cursor.index += 1;
                return Poll::Ready(Ok(Found::Frame(chunks)));
            }
        } else if state.end.is_some() {
            return Poll::Ready(Ok(Found::End));
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
        if let Some(payload) = self.try_whole() {
            return Poll::Ready(Ok(Some(FrameConsumer::whole(payload))));
        }
        let mut state = self.shared.state.lock();
        if let Some(Err(error)) = state.end {
            return Poll::Ready(Err(error));
        }
        if self.cursor.index < state.len {
            let consumer = match self.cursor.slot(&self.shared.head) {
                Some(FrameSlot::Whole(payload)) => Some(FrameConsumer::whole(payload.clone())),
                Some(&FrameSlot::Chunked { index, size }) => {
                    Some(FrameConsumer::chunked(self.shared.clone(), index, size))
                }
                None => None,
            };
            if let Some(consumer) = consumer {
                self.cursor.index += 1;
                return Poll::Ready(Ok(Some(consumer)));
            }
        } else if state.end.is_some() {
            return Poll::Ready(Ok(None));
        }
        state.waiters.register(cx.waker(), slot);
        Poll::Pending
    }

    /// Whether the group has ended (finished, aborted, or its producer dropped), without
    /// waiting: [`closed`](Self::closed) would be ready. Frames may still be unread.
    ///
    /// ```
    /// use moq_model::Group;
    ///
    /// let (mut producer, consumer) = Group::new(0).produce();
    /// producer.write_frame("a").unwrap();
    /// assert!(!consumer.is_closed());
    /// producer.finish();
    /// assert!(consumer.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.state.lock().end.is_some()
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
