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
/// of the `Failed` state is kept beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GroupState {
    StreamType,
    Header,
    FrameHeader,
    Payload { remaining: u64 },
    FrameEnd,
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
    /// The chunk being read (possibly empty); later chunks wait in `queue`.
    current: Bytes,
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
            current: Bytes::new(),
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
        if self.current.is_empty() && self.queue.is_empty() {
            self.current = chunk;
        } else {
            self.queue.push_back(chunk);
        }
    }

    /// Bytes pushed but not yet returned (including header bytes carried across chunks).
    pub fn buffered(&self) -> usize {
        self.partial_len + self.current.len() + self.queue.iter().map(Bytes::len).sum::<usize>()
    }

    /// Makes `current` non-empty if any input is left; false if there is none.
    #[inline]
    fn fill(&mut self) -> bool {
        while self.current.is_empty() {
            match self.queue.pop_front() {
                Some(chunk) => self.current = chunk,
                None => return false,
            }
        }
        true
    }

    /// The next event, or `Ok(None)` if more input is needed.
    #[allow(clippy::should_implement_trait)]
    #[inline]
    pub fn next(&mut self) -> Result<Option<GroupEvent>, ReadError> {
        // The per-frame work (payload slices, frame ends, frame headers inside one chunk) is
        // small and inlined into the caller; everything else goes through `next_slow`.
        match self.state {
            GroupState::Payload { remaining } => {
                if self.current.is_empty() && !self.fill() {
                    return Ok(None);
                }
                // Hand out the chunk itself, or a slice of it: never a copy.
                let data = if self.current.len() as u64 <= remaining {
                    std::mem::take(&mut self.current)
                } else {
                    self.current.split_to(remaining as usize)
                };
                let remaining = remaining - data.len() as u64;
                self.state = match remaining {
                    0 => GroupState::FrameEnd,
                    _ => GroupState::Payload { remaining },
                };
                Ok(Some(GroupEvent::Payload(data)))
            }
            GroupState::FrameEnd => {
                self.state = GroupState::FrameHeader;
                Ok(Some(GroupEvent::FrameEnd))
            }
            GroupState::FrameHeader if self.partial_len == 0 => {
                // A frame header is one varint (WIRE.md §5.13); decode it in place if whole.
                match crate::coding::varint_prefix(&self.current) {
                    Some((size, used)) => {
                        self.current.advance(used);
                        self.frame_start(size)
                    }
                    None => self.next_slow(),
                }
            }
            _ => self.next_slow(),
        }
    }

    #[inline]
    fn frame_start(&mut self, size: u64) -> Result<Option<GroupEvent>, ReadError> {
        if size > self.max_frame_size {
            let err = DecodeError::LimitExceeded {
                limit: Limit::FrameSize,
                value: size,
                max: self.max_frame_size,
            };
            return Err(self.fail(err.into()));
        }
        self.frame_size = size;
        self.state = match size {
            0 => GroupState::FrameEnd,
            size => GroupState::Payload { remaining: size },
        };
        Ok(Some(GroupEvent::FrameStart { size }))
    }

    #[cold]
    fn next_slow(&mut self) -> Result<Option<GroupEvent>, ReadError> {
        match self.state {
            GroupState::Payload { .. } | GroupState::FrameEnd => self.next(),
            GroupState::FrameHeader => match self.header::<Frame>()? {
                Some(frame) => self.frame_start(frame.size),
                None => Ok(None),
            },
            GroupState::Header => {
                let Some(group) = self.header::<Group>()? else {
                    return Ok(None);
                };
                self.state = GroupState::FrameHeader;
                Ok(Some(GroupEvent::Header(group)))
            }
            GroupState::StreamType => {
                // Only type 0 exists (WIRE.md §4.1); anything else fails in decode.
                if self.header::<StreamUni>()?.is_none() {
                    return Ok(None);
                }
                self.state = GroupState::Header;
                self.next_slow()
            }
            GroupState::Failed => Err(self.error.clone().expect("failed with an error")),
        }
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
    /// `Ok(None)` first.
    pub fn finish(&mut self) -> Result<(), ReadError> {
        assert!(!self.fill(), "GroupReader::finish with unread input");
        let err = match self.state {
            GroupState::FrameHeader if self.partial_len == 0 => return Ok(()),
            GroupState::FrameEnd => return Ok(()),
            GroupState::Payload { remaining } => ReadError::WrongSize {
                declared: self.frame_size,
                received: self.frame_size - remaining,
            },
            GroupState::Failed => return Err(self.error.clone().expect("failed with an error")),
            GroupState::StreamType | GroupState::Header | GroupState::FrameHeader => {
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
    /// are decoded in place; the bytes of a split one are gathered in `partial`.
    fn header<T: Decode>(&mut self) -> Result<Option<T>, ReadError> {
        loop {
            if !self.fill() {
                return Ok(None);
            }
            let front = &mut self.current;
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
                    front.advance(used - kept);
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
                        return Err(self.fail(err.into()));
                    }
                    if kept == 0 {
                        self.partial[..take].copy_from_slice(front);
                    }
                    self.partial_len = kept + take;
                    self.current = Bytes::new();
                }
                Err(err) => return Err(self.fail(err.into())),
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
