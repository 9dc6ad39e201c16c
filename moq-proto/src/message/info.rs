use std::time::Duration;

use bytes::BufMut;

use crate::coding::{Decode, Encode, Input};
use crate::error::DecodeError;
use crate::{GroupOrder, Path};

/// The publisher's description of a track (WIRE.md §5.8): the reply on subscribe and info
/// streams.
///
/// | field | wire |
/// |---|---|
/// | `track_priority` | one byte, `value + 128` |
/// | `group_order` | varint |
/// | `group_expires` | varint milliseconds |
/// | `group_latest` | varint |
///
/// The order differs from the drafts, which put `group_latest` second.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// The publisher's priority for the track.
    pub track_priority: i8,
    /// The publisher's preferred group order.
    pub group_order: GroupOrder,
    /// The publisher's group expiry; zero means none. Sent in whole milliseconds.
    pub group_expires: Duration,
    /// The sequence of the latest group, 0 if there is none yet (ambiguous with group 0).
    pub group_latest: u64,
}

impl Encode for Info {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.track_priority.encode(buf);
        self.group_order.encode(buf);
        self.group_expires.encode(buf);
        self.group_latest.encode(buf);
    }

    fn encoded_len(&self) -> usize {
        1 + self.group_order.encoded_len()
            + self.group_expires.encoded_len()
            + self.group_latest.encoded_len()
    }
}

impl Decode for Info {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            track_priority: input.read()?,
            group_order: input.read()?,
            group_expires: input.read()?,
            group_latest: input.read()?,
        })
    }
}

/// A request for a track's [`Info`], first on an info stream (WIRE.md §5.9).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InfoRequest {
    /// The exact track path.
    pub path: Path,
}

impl Encode for InfoRequest {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.path.encode(buf);
    }

    fn encoded_len(&self) -> usize {
        self.path.encoded_len()
    }
}

impl Decode for InfoRequest {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            path: input.read()?,
        })
    }
}
