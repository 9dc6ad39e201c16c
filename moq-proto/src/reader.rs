//! Stream readers: turn chunks of a QUIC stream, as they arrive, into messages and frames.
//!
//! * [`GroupReader`] for unidirectional group streams: the stream type, the [`Group`] header,
//!   then frame headers and payloads. Payload bytes are handed out as slices of the pushed
//!   chunks, never copied; only header bytes split across chunks are copied (at most 16).
//! * [`MessageReader`] for bidirectional control streams: the stream type, then messages of a
//!   type the caller names at each step. Only the bytes of an incomplete message are kept.
//!
//! Both are plain state machines: push bytes, pull results, tell them when the stream ended.
//! Neither re-parses anything it has already returned (WIRE.md §3.11 describes the 0.5.0
//! reader, which retries a message from its start; so do we, but only once the bytes the
//! decoder asked for have arrived).

use std::any::TypeId;
use std::collections::VecDeque;
use std::num::NonZeroU64;

use bytes::{Buf, Bytes, BytesMut};

use crate::coding::Decode;
use crate::error::{DecodeError, Limit};
use crate::limits::{MAX_FRAME_SIZE, MAX_MESSAGE_SIZE};
use crate::{ErrorCode, Frame, Group, StreamUni};

/// Limits for the stream readers.
///
/// ```
/// use moq_proto::ReaderConfig;
///
/// let config = ReaderConfig::default().with_max_frame_size(1 << 20);
/// assert_eq!(config.max_frame_size, 1 << 20);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderConfig {
    /// The largest control message a [`MessageReader`] accepts, in bytes. Default
    /// [`MAX_MESSAGE_SIZE`] (64 KiB).
    pub max_message_size: usize,
    /// The largest declared frame size a [`GroupReader`] accepts. Default [`MAX_FRAME_SIZE`]
    /// (64 MiB).
    pub max_frame_size: u64,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self {
            max_message_size: MAX_MESSAGE_SIZE,
            max_frame_size: MAX_FRAME_SIZE,
        }
    }
}

impl ReaderConfig {
    /// This config with another message size limit.
    pub const fn with_max_message_size(mut self, max: usize) -> Self {
        self.max_message_size = max;
        self
    }

    /// This config with another frame size limit.
    pub const fn with_max_frame_size(mut self, max: u64) -> Self {
        self.max_frame_size = max;
        self
    }
}

/// Why a stream could not be read.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The bytes are malformed or over a limit.
    #[error("decode error: {0}")]
    Decode(#[from] DecodeError),
    /// The stream ended inside a message or a header (WIRE.md §3.11).
    #[error("stream ended inside a message ({buffered} bytes of it received)")]
    Truncated {
        /// Bytes of the incomplete message that had arrived.
        buffered: usize,
    },
    /// The stream ended inside a frame payload (WIRE.md §4.5).
    #[error("stream ended after {received} of {declared} frame payload bytes")]
    WrongSize {
        /// The frame's declared size.
        declared: u64,
        /// Payload bytes that arrived.
        received: u64,
    },
}

impl ReadError {
    /// The code to reset or stop the stream with: [`ErrorCode::WRONG_SIZE`] for a short frame
    /// payload, [`ErrorCode::DECODE`] for everything else.
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::WrongSize { .. } => ErrorCode::WRONG_SIZE,
            Self::Decode(_) | Self::Truncated { .. } => ErrorCode::DECODE,
        }
    }
}

/// What a [`GroupReader`] found next in a group stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupEvent {
    /// The group header (once, first).
    Header(Group),
    /// A frame begins; `size` payload bytes follow in [`Payload`](GroupEvent::Payload) events.
    FrameStart {
        /// The declared payload size.
        size: u64,
    },
    /// Payload bytes of the current frame: a slice of a pushed chunk, not a copy. Never empty.
    Payload(Bytes),
    /// The current frame's payload is complete (also sent for zero-size frames).
    FrameEnd,
}

/// Bytes of a header kept across chunk boundaries; the longest header is two 8-byte varints.
const PARTIAL_CAP: usize = 16;

/// Where a group stream is. Small and `Copy`, so the per-event `match` stays cheap; the error
/// of the `Failed` state is kept beside it. The per-frame states come first: the compiled
/// `match` tests their tags first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GroupState {
    /// Inside a frame payload, with this many bytes of it to come.
    Payload { remaining: NonZeroU64 },
    /// After a frame payload, before its `FrameEnd` event.
    FrameEnd,
    /// At a frame header, no bytes of it kept.
    FrameHeader,
    /// Inside a frame header split across chunks: its first bytes are kept in `partial`.
    FrameHeaderSplit,
    /// At the stream type.
    StreamType,
    /// At the group header.
    Header,
    /// Failed; the error is in `GroupReader::error`.
    Failed,
}

/// What [`GroupReader::next_slow`] did: plain values, so that the inlined part of
/// [`GroupReader::next`] builds every event itself.
#[derive(Clone, Copy, Debug)]
enum Slow {
    /// More input is needed.
    NeedMore,
    /// The state moved on without an event (a queued chunk became current, the stream type
    /// was read): take the fast path again.
    Again,
    /// The group header was read.
    Header(Group),
    /// A frame header split across chunks was read; the state is set for its payload.
    FrameStart(u64),
    /// The reader failed; the error is kept in the reader.
    Failed,
}

/// Reads a group stream (WIRE.md §4.5) from chunks as they arrive.
///
/// Push each chunk with [`push`](GroupReader::push), then call [`next`](GroupReader::next)
/// until it returns `Ok(None)` (it needs more input). When the stream ends (FIN), call
/// [`finish`](GroupReader::finish): it says whether the stream ended cleanly after a whole
/// frame (or after the header of a group with no frames).
///
/// Events: one [`Header`](GroupEvent::Header), then for each frame a
/// [`FrameStart`](GroupEvent::FrameStart), zero or more [`Payload`](GroupEvent::Payload)
/// slices and a [`FrameEnd`](GroupEvent::FrameEnd). Errors are sticky: after one, `next`
/// and `finish` keep returning it.
///
/// ```
/// use bytes::Bytes;
/// use moq_proto::{Group, GroupEvent, GroupReader};
///
/// let mut reader = GroupReader::new();
/// // Type 0, Group {subscribe 0, sequence 7}, frames "hello" and "", split mid-payload.
/// reader.push(Bytes::from_static(&[0x00, 0x00, 0x07, 0x05, b'h', b'e']));
/// reader.push(Bytes::from_static(&[b'l', b'l', b'o', 0x00]));
///
/// let mut events = Vec::new();
/// while let Some(event) = reader.next().unwrap() {
///     events.push(event);
/// }
/// assert_eq!(events, [
///     GroupEvent::Header(Group { subscribe: 0, sequence: 7 }),
///     GroupEvent::FrameStart { size: 5 },
///     GroupEvent::Payload(Bytes::from_static(b"he")),
///     GroupEvent::Payload(Bytes::from_static(b"llo")),
///     GroupEvent::FrameEnd,
///     GroupEvent::FrameStart { size: 0 },
///     GroupEvent::FrameEnd,
/// ]);
/// assert!(reader.finish().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct GroupReader {
    /// The chunk being read, never empty (`None` rather than an empty `Bytes`, so that taking
    /// it or putting the next chunk in its place costs no drop); later chunks wait in `queue`.
    current: Option<Bytes>,
    queue: VecDeque<Bytes>,
    state: GroupState,
    /// The error that put the reader in `GroupState::Failed`.
    error: Option<ReadError>,
    /// The declared size of the current frame.
    frame_size: u64,
    partial: [u8; PARTIAL_CAP],
    partial_len: usize,
    max_frame_size: u64,
}

impl Default for GroupReader {
    fn default() -> Self {
        Self::new()
    }
}

impl GroupReader {
    /// A reader for a whole unidirectional stream, starting with its stream type.
    pub fn new() -> Self {
        Self::with_config(ReaderConfig::default())
    }

    /// Like [`new`](GroupReader::new), with limits.
    pub fn with_config(config: ReaderConfig) -> Self {
        Self {
            current: None,
            queue: VecDeque::new(),
            state: GroupState::StreamType,
            error: None,
            frame_size: 0,
            partial: [0; PARTIAL_CAP],
            partial_len: 0,
            max_frame_size: config.max_frame_size,
        }
    }

    /// A reader for a stream whose type ([`StreamUni::Group`]) was already read: it starts at
    /// the [`Group`] header.
    pub fn after_stream_type(config: ReaderConfig) -> Self {
        let mut reader = Self::with_config(config);
        reader.state = GroupState::Header;
        reader
    }

    /// Adds the next chunk of the stream. Empty chunks are ignored.
    #[inline]
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if self.current.is_none() && self.queue.is_empty() {
            self.current = Some(chunk);
        } else {
            self.queue.push_back(chunk);
        }
    }

    /// Bytes pushed but not yet returned (including header bytes carried across chunks).
    pub fn buffered(&self) -> usize {
        let current = self.current.as_ref().map_or(0, Bytes::len);
        self.partial_len + current + self.queue.iter().map(Bytes::len).sum::<usize>()
    }

    /// Makes the next queued chunk `current` if there is none; `current` stays `None` only if
    /// no input is left.
    #[inline]
    fn fill(&mut self) {
        if self.current.is_none() {
            // `push` queues only non-empty chunks.
            self.current = self.queue.pop_front();
        }
    }

    /// Puts the rest of the current chunk back after `used` bytes of it were read, keeping
    /// `current` `None` rather than empty.
    #[inline]
    fn consume(&mut self, used: usize) {
        if let Some(chunk) = &mut self.current {
            chunk.advance(used);
            if chunk.is_empty() {
                self.current = None;
            }
        }
    }

    /// The next event, or `Ok(None)` if more input is needed.
    #[allow(clippy::should_implement_trait)]
    #[inline(always)]
    pub fn next(&mut self) -> Result<Option<GroupEvent>, ReadError> {
        // The per-frame work (payload slices, frame ends, frame headers inside one chunk) is
        // inlined into the caller and builds its event from plain values. Everything else
        // (headers split across chunks, the stream header, queued chunks, errors) is out of
        // line in `next_slow`, which reports back with a small `Slow` and never with an event
        // or an error, so that the caller's `match` on the event is resolved where the event
        // is made instead of going through a `Result` in memory. `inline(always)` lets rustc
        // inline this before LLVM does, which also removes the copies of payload handles
        // between here and the caller (8% of the instructions of `proto/group_stream`).
        loop {
            match self.state {
                GroupState::Payload { remaining } => {
                    let remaining = remaining.get();
                    // Hand out the chunk itself, or a slice of it: never a copy. The chunk is
                    // taken out before its length is looked at, so handing it out moves four
                    // separate words. Looking first and taking after made the compiler copy two
                    // of them with one 16-byte load over two 8-byte stores, which the CPU cannot
                    // forward: a stall per payload that, depending on code and stack layout,
                    // made `proto/group_stream` up to twice as slow in wall time.
                    match self.current.take() {
                        Some(data) if data.len() as u64 <= remaining => {
                            self.state = match NonZeroU64::new(remaining - data.len() as u64) {
                                None => GroupState::FrameEnd,
                                Some(remaining) => GroupState::Payload { remaining },
                            };
                            return Ok(Some(GroupEvent::Payload(data)));
                        }
                        Some(chunk) => {
                            // The frame ends inside this chunk: a slice (one reference count
                            // increment), and the rest stays.
                            let chunk = self.current.insert(chunk);
                            let at = remaining as usize;
                            let data = chunk.slice(..at);
                            chunk.advance(at);
                            self.state = GroupState::FrameEnd;
                            return Ok(Some(GroupEvent::Payload(data)));
                        }
                        None if self.queue.is_empty() => return Ok(None),
                        None => {}
                    }
                }
                GroupState::FrameEnd => {
                    self.state = GroupState::FrameHeader;
                    return Ok(Some(GroupEvent::FrameEnd));
                }
                GroupState::FrameHeader => {
                    // A frame header is one varint (WIRE.md §5.13); decode it in place if
                    // whole. Over the limit, `next_slow` reads it again and fails.
                    if let Some(chunk) = &self.current
                        && let Some((size, used)) = crate::coding::varint_prefix(chunk)
                        && size <= self.max_frame_size
                    {
                        self.consume(used);
                        self.frame_size = size;
                        self.state = match NonZeroU64::new(size) {
                            None => GroupState::FrameEnd,
                            Some(remaining) => GroupState::Payload { remaining },
                        };
                        return Ok(Some(GroupEvent::FrameStart { size }));
                    }
                }
                _ => {}
            }
            match self.next_slow() {
                Slow::Again => {}
                Slow::NeedMore => return Ok(None),
                Slow::Header(group) => return Ok(Some(GroupEvent::Header(group))),
                Slow::FrameStart(size) => return Ok(Some(GroupEvent::FrameStart { size })),
                Slow::Failed => return Err(self.error()),
            }
        }
    }

    /// The rest of [`next`](GroupReader::next): moves the state on by at most one event.
    #[cold]
    #[inline(never)]
    fn next_slow(&mut self) -> Slow {
        match self.step() {
            Ok(slow) => slow,
            Err(err) => {
                self.fail(err);
                Slow::Failed
            }
        }
    }

    fn step(&mut self) -> Result<Slow, ReadError> {
        Ok(match self.state {
            GroupState::Payload { .. } | GroupState::FrameEnd => {
                self.fill();
                match self.current {
                    Some(_) => Slow::Again,
                    None => Slow::NeedMore,
                }
            }
            GroupState::FrameHeader | GroupState::FrameHeaderSplit => {
                match self.header::<Frame>()? {
                    Some(frame) => {
                        if frame.size > self.max_frame_size {
                            return Err(DecodeError::LimitExceeded {
                                limit: Limit::FrameSize,
                                value: frame.size,
                                max: self.max_frame_size,
                            }
                            .into());
                        }
                        // Back in the fast path with the header's bytes consumed: set the state
                        // the fast path would have set, and report the frame start from here.
                        self.frame_size = frame.size;
                        self.state = match NonZeroU64::new(frame.size) {
                            None => GroupState::FrameEnd,
                            Some(remaining) => GroupState::Payload { remaining },
                        };
                        Slow::FrameStart(frame.size)
                    }
                    None => {
                        if self.partial_len > 0 {
                            // The fast path reads only headers that have no bytes kept.
                            self.state = GroupState::FrameHeaderSplit;
                        }
                        Slow::NeedMore
                    }
                }
            }
            GroupState::Header => match self.header::<Group>()? {
                Some(group) => {
                    self.state = GroupState::FrameHeader;
                    Slow::Header(group)
                }
                None => Slow::NeedMore,
            },
            GroupState::StreamType => {
                // Only type 0 exists (WIRE.md §4.1); anything else fails in decode.
                if self.header::<StreamUni>()?.is_none() {
                    return Ok(Slow::NeedMore);
                }
                self.state = GroupState::Header;
                Slow::Again
            }
            GroupState::Failed => Slow::Failed,
        })
    }

    /// The error that failed the reader.
    #[cold]
    #[inline(never)]
    fn error(&self) -> ReadError {
        self.error.clone().expect("failed with an error")
    }

    /// The stream ended (FIN): `Ok` if it ended at a frame boundary after the group header.
    ///
    /// A stream that ends inside a header (or before the group header) is
    /// [`ReadError::Truncated`] (code 5); inside a payload it is [`ReadError::WrongSize`]
    /// (code 14) (WIRE.md §4.5).
    ///
    /// # Panics
    ///
    /// If pushed input is still unread: call [`next`](GroupReader::next) until it returns
    /// `Ok(None)` first. A failed reader returns its error instead, whatever is left unread.
    pub fn finish(&mut self) -> Result<(), ReadError> {
        if self.state == GroupState::Failed {
            // Sticky, whatever input is left.
            return Err(self.error());
        }
        self.fill();
        assert!(
            self.current.is_none(),
            "GroupReader::finish with unread input"
        );
        let err = match self.state {
            GroupState::FrameHeader | GroupState::FrameEnd => return Ok(()),
            GroupState::Payload { remaining } => ReadError::WrongSize {
                declared: self.frame_size,
                received: self.frame_size - remaining.get(),
            },
            GroupState::Failed => return Err(self.error()),
            GroupState::StreamType | GroupState::Header | GroupState::FrameHeaderSplit => {
                ReadError::Truncated {
                    buffered: self.partial_len,
                }
            }
        };
        Err(self.fail(err))
    }

    fn fail(&mut self, err: ReadError) -> ReadError {
        self.state = GroupState::Failed;
        self.error = Some(err.clone());
        err
    }

    /// Decodes a small header that may be split across chunks. Whole headers inside one chunk
    /// are decoded in place; the bytes of a split one are gathered in `partial`. The caller
    /// fails the reader on an error.
    fn header<T: Decode>(&mut self) -> Result<Option<T>, ReadError> {
        loop {
            self.fill();
            let Some(front) = &self.current else {
                return Ok(None);
            };
            let kept = self.partial_len;
            let result = if kept == 0 {
                T::decode(front)
            } else {
                let take = front.len().min(PARTIAL_CAP - kept);
                self.partial[kept..kept + take].copy_from_slice(&front[..take]);
                T::decode(&self.partial[..kept + take])
            };
            match result {
                Ok((value, used)) => {
                    // A successful decode always uses more than the bytes kept, which alone
                    // were too short.
                    self.consume(used - kept);
                    self.partial_len = 0;
                    return Ok(Some(value));
                }
                Err(DecodeError::Short { .. }) => {
                    let take = front.len().min(PARTIAL_CAP - kept);
                    if take < front.len() {
                        // Not reachable for our headers (at most 16 bytes); fail safe.
                        let err = DecodeError::LimitExceeded {
                            limit: Limit::MessageSize,
                            value: (kept + front.len()) as u64,
                            max: PARTIAL_CAP as u64,
                        };
                        return Err(err.into());
                    }
                    if kept == 0 {
                        self.partial[..take].copy_from_slice(front);
                    }
                    self.partial_len = kept + take;
                    self.current = None;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
}

/// Reads a control stream (bidirectional): a sequence of messages whose types the caller
/// names, as chunks arrive.
///
/// Bytes are copied into an internal buffer that only ever holds the incomplete tail; a
/// decoded message's bytes are dropped at once. After a "need more" the reader does not try
/// again until the bytes the decoder asked for have arrived, so feeding a message one byte at
/// a time costs one parse per varint or string, not one per byte. A message larger than
/// [`ReaderConfig::max_message_size`] is [`DecodeError::LimitExceeded`], reported as soon as
/// its declared lengths show it.
///
/// At the end of the stream, [`finish`](MessageReader::finish) tells a clean end at a message
/// boundary (where an optional message was expected: WIRE.md §3.11 "decode_maybe") from a
/// truncated message.
///
/// ```
/// use moq_proto::{GroupOrder, Info, MessageReader, StreamBi, Subscribe};
///
/// let stream = [0x02, 0x01, 0x03, 0x01, 0x61, 0x01, 0x62, 0x01, 0x63, 0x80, 0x01, 0x00, 0x00, 0x00];
/// let mut reader = MessageReader::new();
/// reader.push(&stream[..6]);
/// assert_eq!(reader.next::<StreamBi>().unwrap(), Some(StreamBi::Subscribe));
/// assert_eq!(reader.next::<Subscribe>().unwrap(), None); // need more
/// reader.push(&stream[6..]);
/// let subscribe = reader.next::<Subscribe>().unwrap().unwrap();
/// assert_eq!(subscribe.group_order, GroupOrder::Descending);
/// assert!(reader.finish().is_ok()); // FIN here is clean
/// ```
#[derive(Clone, Debug)]
pub struct MessageReader {
    buf: BytesMut,
    /// After a "need more" for type T: don't retry T before the buffer holds this many bytes.
    wait: Option<(TypeId, usize)>,
    max_message_size: usize,
    failed: Option<ReadError>,
}

impl Default for MessageReader {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageReader {
    /// A reader with the default limits.
    pub fn new() -> Self {
        Self::with_config(ReaderConfig::default())
    }

    /// A reader with limits.
    pub fn with_config(config: ReaderConfig) -> Self {
        Self {
            buf: BytesMut::new(),
            wait: None,
            max_message_size: config.max_message_size,
            failed: None,
        }
    }

    /// Adds the next chunk of the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes pushed but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next message, decoded as `T`, or `Ok(None)` if more input is needed.
    ///
    /// Errors are sticky: after one, every call returns it.
    #[allow(clippy::should_implement_trait)]
    pub fn next<T: Decode + 'static>(&mut self) -> Result<Option<T>, ReadError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        if let Some((ty, until)) = self.wait
            && ty == TypeId::of::<T>()
            && self.buf.len() < until
        {
            return Ok(None);
        }
        match T::decode(&self.buf) {
            Ok((value, used)) => {
                if used > self.max_message_size {
                    return Err(self.fail(used));
                }
                self.buf.advance(used);
                self.wait = None;
                Ok(Some(value))
            }
            Err(DecodeError::Short { needed }) => {
                let until = self.buf.len().saturating_add(needed);
                if until > self.max_message_size {
                    return Err(self.fail(until));
                }
                self.wait = Some((TypeId::of::<T>(), until));
                Ok(None)
            }
            Err(err) => {
                let err = ReadError::from(err);
                self.failed = Some(err.clone());
                Err(err)
            }
        }
    }

    /// The stream ended (FIN): `Ok` if no bytes are left over, [`ReadError::Truncated`]
    /// otherwise. Call it once `next` has returned `Ok(None)`.
    ///
    /// `Ok` means the stream ended at a message boundary: a clean end where an optional message
    /// was expected (announces, group drops, subscribe updates). If the caller was still waiting
    /// for a required message, the end is an error of its own making.
    pub fn finish(&self) -> Result<(), ReadError> {
        match (&self.failed, self.buf.len()) {
            (Some(err), _) => Err(err.clone()),
            (None, 0) => Ok(()),
            (None, buffered) => Err(ReadError::Truncated { buffered }),
        }
    }

    fn fail(&mut self, size: usize) -> ReadError {
        let err = ReadError::Decode(DecodeError::LimitExceeded {
            limit: Limit::MessageSize,
            value: size as u64,
            max: self.max_message_size as u64,
        });
        self.failed = Some(err.clone());
        err
    }
}
