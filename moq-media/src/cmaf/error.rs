//! [`ImportError`], [`ExportError`] and [`BoxType`].

use std::fmt;

/// A box's four-character type, e.g. `moov`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BoxType(pub [u8; 4]);

impl BoxType {
    pub(crate) const MOOV: Self = Self(*b"moov");
    pub(crate) const MOOF: Self = Self(*b"moof");
    pub(crate) const MDAT: Self = Self(*b"mdat");
}

impl fmt::Display for BoxType {
    /// Printable ASCII as is, other bytes escaped (`\xNN`), so a hostile type cannot forge
    /// log lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in &self.0 {
            if byte.is_ascii_graphic() || byte == b' ' {
                write!(f, "{}", byte as char)?;
            } else {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for BoxType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BoxType({self})")
    }
}

impl From<mp4_atom::FourCC> for BoxType {
    fn from(kind: mp4_atom::FourCC) -> Self {
        Self(kind.into())
    }
}

/// Why fragmented MP4 input was refused. Every case ends the import: a live stream that
/// lost its framing cannot be resynchronized reliably.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// A box declares more bytes than the configured limit
    /// ([`ImportConfig::max_box_size`](crate::cmaf::ImportConfig::max_box_size)); nothing
    /// of it was buffered.
    #[error("`{kind}` box of {size} bytes is over the limit of {limit} bytes")]
    BoxTooLarge {
        /// The box's type.
        kind: BoxType,
        /// The size it declares, header included.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A box declares a size smaller than its own header.
    #[error("`{kind}` box declares {size} bytes, less than its header")]
    InvalidBoxSize {
        /// The box's type.
        kind: BoxType,
        /// The size it declares.
        size: u64,
    },
    /// A box declares that it runs to the end of the file (size 0), which a live stream
    /// cannot wait for.
    #[error("`{0}` box runs to the end of the stream (size 0)")]
    UnboundedBox(BoxType),
    /// The input ended inside a box.
    #[error("the input ended inside a box ({buffered} bytes of it buffered)")]
    Truncated {
        /// The bytes of the unfinished box that had arrived.
        buffered: usize,
    },
    /// A box did not decode.
    #[error("malformed `{kind}` box: {reason}")]
    Malformed {
        /// The top-level box that failed (the failing part may be inside it).
        kind: BoxType,
        /// What the box parser said.
        reason: String,
    },
    /// A media box came before the init segment (`moov`).
    #[error("`{0}` before the init segment (moov)")]
    MissingInit(BoxType),
    /// A second `moov`: the stream was restarted or concatenated.
    #[error("a second init segment (moov)")]
    DuplicateInit,
    /// A `moof` not followed by its `mdat`: another `moof` came first, or the input ended.
    #[error("a moof without its mdat")]
    MoofWithoutMdat,
    /// An `mdat` without a `moof` before it.
    #[error("an mdat without a moof")]
    MdatWithoutMoof,
    /// The init segment has no audio or video track.
    #[error("the init segment has no audio or video track")]
    NoTracks,
    /// A track's codec is not one this crate carries.
    #[error("track {track}: unsupported codec `{codec}`")]
    UnsupportedCodec {
        /// The MP4 track id.
        track: u32,
        /// The sample entry type or object type.
        codec: String,
    },
    /// A track cannot be described in a moq-karp 0.10 catalog (e.g. an audio sample rate
    /// over 65535 Hz, or a zero timescale).
    #[error("track {track}: {reason}")]
    UnsupportedTrack {
        /// The MP4 track id.
        track: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// A fragment is for a track the init segment does not have.
    #[error("a fragment for track {0}, which the init segment does not have")]
    UnknownTrack(u32),
    /// A fragment's timing or sample layout does not add up (data outside the `mdat`, more
    /// samples than bytes, a time that overflows or is negative).
    #[error("track {track}: {reason}")]
    BadFragment {
        /// The MP4 track id.
        track: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// Publishing a frame or the catalog failed.
    #[error("publishing failed: {0}")]
    Publish(#[from] crate::Error),
}

/// Why a catalog or frame could not be written as fragmented MP4.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// The catalog has no rendition.
    #[error("the catalog has no rendition")]
    NoTracks,
    /// A rendition's codec has no MP4 sample entry here.
    #[error("track {track}: unsupported codec `{codec}`")]
    UnsupportedCodec {
        /// The track's name.
        track: String,
        /// The codec string.
        codec: String,
    },
    /// A rendition's decoder configuration (`description`) is missing or does not decode.
    #[error("track {track}: bad decoder configuration: {reason}")]
    Description {
        /// The track's name.
        track: String,
        /// What is wrong.
        reason: String,
    },
    /// A frame for a track index the catalog does not have.
    #[error("no track {0} in the catalog")]
    UnknownTrack(usize),
    /// A frame too large for one MP4 sample (over 4 GiB).
    #[error("a frame of {0} bytes is too large for an MP4 sample")]
    FrameTooLarge(usize),
}
