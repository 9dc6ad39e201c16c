use bytes::BufMut;

use crate::Path;
use crate::coding::{Decode, Encode, Input};
use crate::error::DecodeError;

/// The subscriber's request on an announce stream (WIRE.md §5.4): tell me about every path
/// under `prefix`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnnounceInterest {
    /// The part-wise prefix; empty means everything.
    pub prefix: Path,
}

impl Encode for AnnounceInterest {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.prefix.encode(buf);
    }

    fn encoded_len(&self) -> usize {
        self.prefix.encoded_len()
    }
}

impl Decode for AnnounceInterest {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            prefix: input.read()?,
        })
    }
}

/// One change in the set of announced paths (WIRE.md §5.5).
///
/// A raw status byte (not a varint), then the suffix for statuses 0 and 1:
///
/// | byte | variant | then |
/// |---|---|---|
/// | `00` | [`Ended`](Announce::Ended) | suffix path |
/// | `01` | [`Active`](Announce::Active) | suffix path |
/// | `02` | [`Live`](Announce::Live) | nothing |
///
/// `Live` ("caught up with the current set") comes from crates 0.7 and later; we accept it,
/// but 0.4 to 0.6 peers reject it, so never send it to them. Other bytes are
/// [`DecodeError::InvalidValue`].
///
/// The suffix is the announced path with the interest's prefix removed:
///
/// ```
/// use moq_proto::{Announce, Decode, Path};
///
/// let (msg, _) = Announce::decode(&[0x01, 0x01, 0x02, b'h', b'd']).unwrap();
/// assert_eq!(msg, Announce::Active { suffix: Path::from(["hd"]) });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Announce {
    /// The path is no longer published.
    Ended {
        /// The path relative to the interest's prefix.
        suffix: Path,
    },
    /// The path is now published.
    Active {
        /// The path relative to the interest's prefix.
        suffix: Path,
    },
    /// Every path that was active when the interest arrived has now been announced.
    Live,
}

impl Announce {
    /// The status byte.
    pub const fn status(&self) -> u8 {
        match self {
            Self::Ended { .. } => 0,
            Self::Active { .. } => 1,
            Self::Live => 2,
        }
    }

    /// The suffix, if the status carries one.
    pub fn suffix(&self) -> Option<&Path> {
        match self {
            Self::Ended { suffix } | Self::Active { suffix } => Some(suffix),
            Self::Live => None,
        }
    }
}

impl Encode for Announce {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        // The status is one raw byte, not a varint (WIRE.md §5.5).
        buf.put_u8(self.status());
        if let Some(suffix) = self.suffix() {
            suffix.encode(buf);
        }
    }

    fn encoded_len(&self) -> usize {
        1 + self.suffix().map_or(0, Encode::encoded_len)
    }
}

impl Decode for Announce {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        match input.u8()? {
            0 => Ok(Self::Ended {
                suffix: input.read()?,
            }),
            1 => Ok(Self::Active {
                suffix: input.read()?,
            }),
            // "live" has no suffix (WIRE.md §5.5, crates >= 0.7).
            2 => Ok(Self::Live),
            value => Err(DecodeError::InvalidValue {
                field: "announce status",
                value: value.into(),
            }),
        }
    }
}
