//! The caps this crate puts on sizes and counts a peer declares.
//!
//! `moq-transfork` 0.5.0 has no limits at all (WIRE.md §3.11); we check every peer-declared
//! length or count against these constants *before* allocating anything, and report excess as
//! [`DecodeError::LimitExceeded`](crate::DecodeError::LimitExceeded) (wire code 5).
//!
//! The values are deliberately more generous than what draft-03 recommends emitting (1 to 32
//! path parts, under 1024 bytes), so that anything a real 0.4 to 0.8 peer sends is accepted,
//! while a hostile peer can make us hold at most a few kilobytes per control message.
//! The two stream-level caps ([`MAX_MESSAGE_SIZE`], [`MAX_FRAME_SIZE`]) are defaults of
//! [`ReaderConfig`](crate::ReaderConfig) and can be changed per reader.

/// Bytes in one string (a path part). Draft-03 asks for whole paths under 1024 bytes.
pub const MAX_STRING_LEN: usize = 4096;

/// Parts in one path. Draft-03 asks for at most 32; we accept twice that.
pub const MAX_PATH_PARTS: usize = 64;

/// Bytes in all parts of one path together (not counting the length prefixes).
pub const MAX_PATH_BYTES: usize = 4096;

/// Versions offered in one `SessionClient`. 0.5.0 offers exactly one.
pub const MAX_VERSIONS: usize = 64;

/// Entries in one extension map. 0.5.0 sends none.
pub const MAX_EXTENSIONS: usize = 64;

/// Bytes in one extension payload.
pub const MAX_EXTENSION_SIZE: usize = 4096;

/// Default cap on the encoded size of one control message in a
/// [`MessageReader`](crate::MessageReader): 64 KiB.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// Default cap on the declared payload size of one frame in a
/// [`GroupReader`](crate::GroupReader): 64 MiB. Payload bytes are never buffered by the
/// reader, so this bounds what the application may be asked to hold, not our own memory.
pub const MAX_FRAME_SIZE: u64 = 64 * 1024 * 1024;
