//! [`DecodeError`]: why bytes did not decode, and [`Limit`]: which cap they hit.

use std::fmt;

use crate::ErrorCode;

/// Why decoding failed.
///
/// [`Short`](DecodeError::Short) means "not enough bytes yet": the input is a valid prefix so
/// far, nothing was consumed, and decoding may succeed once more bytes arrive. Every other
/// variant means the input is malformed and more bytes will not help. On the wire every
/// variant is reported as [`ErrorCode::DECODE`] (WIRE.md §3.11); see [`DecodeError::code`].
///
/// ```
/// use moq_proto::{Decode, DecodeError, Subscribe};
///
/// // A Subscribe whose first byte announces a longer varint: need more input.
/// assert!(matches!(Subscribe::decode(&[0x40]), Err(DecodeError::Short { needed: 1 })));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ends before the value does. `needed` is a lower bound (at least 1) on how many
    /// more bytes are required before trying again; nothing was consumed.
    #[error("need at least {needed} more bytes")]
    Short {
        /// At least this many more bytes are needed.
        needed: usize,
    },
    /// An enumerated field has a value the protocol does not define (stream type, group order,
    /// announce status).
    #[error("invalid {field} value {value}")]
    InvalidValue {
        /// The field that holds the value.
        field: &'static str,
        /// The value found on the wire.
        value: u64,
    },
    /// A string is not valid UTF-8.
    #[error("invalid UTF-8 in a string")]
    InvalidString,
    /// An extension id appears twice in one message (WIRE.md §3.10).
    #[error("duplicate extension {id}")]
    DuplicateParameter {
        /// The repeated extension id.
        id: u64,
    },
    /// A value does not fit the field's type (the error code of `GroupDrop` must fit a `u32`).
    #[error("value {value} exceeds the bounds of {field}")]
    BoundsExceeded {
        /// The field that holds the value.
        field: &'static str,
        /// The value found on the wire.
        value: u64,
    },
    /// A length or count declared by the peer is over one of this crate's limits
    /// (see [`limits`](crate::limits)); reported before anything is allocated.
    #[error("{limit} is {value}, over the limit of {max}")]
    LimitExceeded {
        /// The limit that was exceeded.
        limit: Limit,
        /// The declared (or accumulated) value.
        value: u64,
        /// The limit in force.
        max: u64,
    },
}

impl DecodeError {
    /// The error code to send to the peer: always [`ErrorCode::DECODE`] (5).
    pub const fn code(&self) -> ErrorCode {
        ErrorCode::DECODE
    }

    /// True for [`Short`](DecodeError::Short): more input may make decoding succeed.
    pub const fn is_short(&self) -> bool {
        matches!(self, Self::Short { .. })
    }
}

/// A cap this crate puts on a peer-declared size or count; values are in [`limits`](crate::limits).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Bytes in one string ([`MAX_STRING_LEN`](crate::limits::MAX_STRING_LEN)).
    StringLength,
    /// Parts in a path ([`MAX_PATH_PARTS`](crate::limits::MAX_PATH_PARTS)).
    PathParts,
    /// Bytes of all parts of a path ([`MAX_PATH_BYTES`](crate::limits::MAX_PATH_BYTES)).
    PathBytes,
    /// Versions in `SessionClient` ([`MAX_VERSIONS`](crate::limits::MAX_VERSIONS)).
    Versions,
    /// Entries in an extension map ([`MAX_EXTENSIONS`](crate::limits::MAX_EXTENSIONS)).
    Extensions,
    /// Bytes of one extension payload ([`MAX_EXTENSION_SIZE`](crate::limits::MAX_EXTENSION_SIZE)).
    ExtensionSize,
    /// Bytes of one control message, as configured in the reader
    /// ([`MAX_MESSAGE_SIZE`](crate::limits::MAX_MESSAGE_SIZE) by default).
    MessageSize,
    /// Declared payload size of one frame, as configured in the reader
    /// ([`MAX_FRAME_SIZE`](crate::limits::MAX_FRAME_SIZE) by default).
    FrameSize,
}

impl Limit {
    /// The default value of this limit.
    pub const fn default_max(self) -> u64 {
        use crate::limits::*;
        (match self {
            Self::StringLength => MAX_STRING_LEN,
            Self::PathParts => MAX_PATH_PARTS,
            Self::PathBytes => MAX_PATH_BYTES,
            Self::Versions => MAX_VERSIONS,
            Self::Extensions => MAX_EXTENSIONS,
            Self::ExtensionSize => MAX_EXTENSION_SIZE,
            Self::MessageSize => MAX_MESSAGE_SIZE,
            Self::FrameSize => return MAX_FRAME_SIZE,
        }) as u64
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::StringLength => "string length",
            Self::PathParts => "path part count",
            Self::PathBytes => "path size",
            Self::Versions => "version count",
            Self::Extensions => "extension count",
            Self::ExtensionSize => "extension size",
            Self::MessageSize => "message size",
            Self::FrameSize => "frame size",
        })
    }
}
