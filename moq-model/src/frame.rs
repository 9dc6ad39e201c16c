//! [`Frame`], [`FrameProducer`], [`FrameConsumer`]: a payload of declared size, in chunks.
//!
//! A frame lives in its group's state (see `group.rs`). A frame written whole is just its
//! payload; a frame written in chunks is a group reference plus an index into the group's
//! locked list of chunked frames, so creating a frame allocates nothing of its own.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::Error;
use crate::group::{self, Chunks, FrameStatus, GroupShared};
use crate::notify::Slot;

/// The description of a frame: its payload size, declared before the payload is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The payload size in bytes.
    pub size: usize,
}

impl Frame {
    /// A frame of `size` bytes.
    pub fn new(size: usize) -> Self {
        Self { size }
    }

    /// A producer for a standalone frame (not in any group) and a first consumer of it.
    pub fn produce(self) -> (FrameProducer, FrameConsumer) {
        let shared = Arc::new(GroupShared::new(0, 0));
        let index = {
            let mut state = shared.state.lock();
            state.end = Some(Ok(()));
            state.push_chunked(&shared.head, self.size)
        };
        let consumer = FrameConsumer::chunked(shared.clone(), index, self.size);
        (FrameProducer::new(shared, index, self.size, 0), consumer)
    }
}

/// Writes one frame's payload in chunks, up to its declared size. Synchronous.
///
/// The frame is complete as soon as the declared size has been written.
///
/// # Drop
/// Dropping the producer before the declared size was written fails the frame with
/// [`Error::WrongSize`] for its consumers: a truncated frame is never presented as complete.
#[derive(Debug)]
pub struct FrameProducer {
    shared: Arc<GroupShared>,
    /// In the group's list of chunked frames.
    index: usize,
    size: usize,
    written: usize,
    wakers: Vec<Waker>,
}

impl FrameProducer {
    pub(crate) fn new(shared: Arc<GroupShared>, index: usize, size: usize, hint: usize) -> Self {
        Self {
            shared,
            index,
            size,
            written: 0,
            wakers: Vec::with_capacity(hint),
        }
    }

    /// The declared size.
    pub fn size(&self) -> usize {
        self.size
    }

    /// How many bytes are still to be written.
    pub fn remaining(&self) -> usize {
        self.size - self.written
    }

    /// Appends a chunk. [`Error::WrongSize`] (and nothing written) if it would exceed the
    /// declared size; the abort's error if the frame or its group was aborted.
    pub fn write(&mut self, chunk: impl Into<Bytes>) -> Result<(), Error> {
        let chunk = chunk.into();
        if chunk.len() > self.remaining() {
            return Err(Error::WrongSize);
        }
        if chunk.is_empty() {
            return Ok(());
        }
        let (index, len) = (self.index, chunk.len());
        let shared = &self.shared;
        shared.change(&mut self.wakers, |state| {
            if let FrameStatus::Failed(error) = state.chunked[index].status {
                return Err(error);
            }
            shared.charge(state, len)?;
            let frame = &mut state.chunked[index];
            frame.written += len;
            frame.chunks.push(chunk);
            if frame.written == frame.size {
                frame.status = FrameStatus::Done;
            }
            shared.bytes.0.fetch_add(len, Ordering::Relaxed);
            Ok(())
        })?;
        self.written += len;
        Ok(())
    }

    /// Checks that the whole declared size was written. If not, the frame fails with
    /// [`Error::WrongSize`] for its consumers, and this returns that error.
    pub fn finish(self) -> Result<(), Error> {
        if self.written == self.size {
            return Ok(());
        }
        // Drop fails the frame.
        Err(Error::WrongSize)
    }

    /// Fails the frame with `error` for its consumers.
    pub fn abort(mut self, error: Error) {
        self.fail(error);
    }

    fn fail(&mut self, error: Error) {
        let index = self.index;
        self.shared.change(&mut self.wakers, |state| {
            let frame = &mut state.chunked[index];
            if frame.status == FrameStatus::Open {
                frame.status = FrameStatus::Failed(error);
            }
        });
    }

    /// A new consumer of this frame, reading from its first chunk.
    pub fn consume(&self) -> FrameConsumer {
        FrameConsumer::chunked(self.shared.clone(), self.index, self.size)
    }
}

impl Drop for FrameProducer {
    fn drop(&mut self) {
        if self.written < self.size {
            self.fail(Error::WrongSize);
        }
    }
}

/// Reads one frame's payload, chunk by chunk as it is written, or whole.
///
/// Asynchronous and cheap to [`Clone`]; a clone continues from the same chunk.
///
/// # Drop
/// Dropping a consumer has no effect on the producer or on other consumers.
#[derive(Clone, Debug)]
pub struct FrameConsumer {
    source: Source,
    size: usize,
    /// The index of the next chunk to return.
    chunk: usize,
}

#[derive(Clone, Debug)]
enum Source {
    /// A frame written whole: its payload is all there is.
    Whole(Bytes),
    /// A frame written in chunks: its index in the group's list of chunked frames.
    Chunked(Arc<GroupShared>, usize),
}

impl FrameConsumer {
    pub(crate) fn whole(payload: Bytes) -> Self {
        Self {
            size: payload.len(),
            source: Source::Whole(payload),
            chunk: 0,
        }
    }

    pub(crate) fn chunked(shared: Arc<GroupShared>, index: usize, size: usize) -> Self {
        Self {
            source: Source::Chunked(shared, index),
            size,
            chunk: 0,
        }
    }

    /// The declared size of the frame.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The next chunk, as written by the producer (shared, not copied); `Ok(None)` once the
    /// whole frame was read. The frame's error if it failed, e.g. [`Error::WrongSize`] when
    /// its producer went away early, even if some chunks were already returned.
    ///
    /// # Cancel safety
    /// Cancel-safe: the consumer advances only when a chunk is returned.
    pub async fn read_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        let mut slot = Slot::default();
        poll_fn(|cx| self.poll_chunk(cx, &mut slot)).await
    }

    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
        slot: &mut Slot,
    ) -> Poll<Result<Option<Bytes>, Error>> {
        let (shared, index) = match &self.source {
            Source::Whole(payload) => {
                let chunk = (self.chunk == 0).then(|| payload.clone());
                self.chunk = 1;
                return Poll::Ready(Ok(chunk));
            }
            Source::Chunked(shared, index) => (shared, *index),
        };
        let mut state = shared.state.lock();
        let frame = &state.chunked[index];
        if let FrameStatus::Failed(error) = frame.status {
            return Poll::Ready(Err(error));
        }
        if let Some(chunk) = frame.chunks.get(self.chunk) {
            let chunk = chunk.clone();
            self.chunk += 1;
            return Poll::Ready(Ok(Some(chunk)));
        }
        if frame.status == FrameStatus::Done {
            return Poll::Ready(Ok(None));
        }
        state.waiters.register(cx.waker(), slot);
        Poll::Pending
    }

    /// The rest of the frame (all of it if nothing was read yet), once it is complete.
    /// A frame written in one chunk comes back without a copy.
    ///
    /// # Cancel safety
    /// Cancel-safe: nothing is consumed until the whole frame is there.
    pub async fn read_all(&mut self) -> Result<Bytes, Error> {
        let (shared, index) = match &self.source {
            Source::Whole(payload) => {
                let rest = if self.chunk == 0 {
                    payload.clone()
                } else {
                    Bytes::new()
                };
                self.chunk = 1;
                return Ok(rest);
            }
            Source::Chunked(shared, index) => (shared, *index),
        };
        let mut slot = Slot::default();
        let from = self.chunk;
        let rest = poll_fn(|cx| {
            let mut state = shared.state.lock();
            let frame = &state.chunked[index];
            match frame.status {
                FrameStatus::Failed(error) => Poll::Ready(Err(error)),
                FrameStatus::Done => {
                    let count = frame.chunks.len();
                    let rest = match (&frame.chunks, from) {
                        (Chunks::One(payload), 0) => Chunks::One(payload.clone()),
                        (chunks, from) => Chunks::Many(
                            (from..count)
                                .filter_map(|i| chunks.get(i).cloned())
                                .collect(),
                        ),
                    };
                    Poll::Ready(Ok((rest, count)))
                }
                FrameStatus::Open => {
                    state.waiters.register(cx.waker(), &mut slot);
                    Poll::Pending
                }
            }
        })
        .await;
        let (rest, count) = rest?;
        self.chunk = count;
        Ok(match rest {
            Chunks::One(payload) => payload,
            Chunks::Many(list) if list.len() == 1 => list[0].clone(),
            Chunks::Many(list) => group::join(&list),
        })
    }
}
