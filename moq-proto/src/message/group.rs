use bytes::BufMut;

use crate::ErrorCode;
use crate::coding::{Decode, Encode, Input, encode_varint, varint_len};
use crate::error::DecodeError;

/// The header of a group stream, after the stream type (WIRE.md §5.12).
///
/// | field | wire |
/// |---|---|
/// | `subscribe` | varint |
/// | `sequence` | varint |
///
/// Then frames follow until FIN; see [`GroupReader`](crate::GroupReader).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Group {
    /// The [`Subscribe::id`](crate::Subscribe::id) this group answers.
    pub subscribe: u64,
    /// The group's sequence number in its track.
    pub sequence: u64,
}

impl Encode for Group {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        encode_varint(self.subscribe, buf);
        encode_varint(self.sequence, buf);
    }

    fn encoded_len(&self) -> usize {
        varint_len(self.subscribe) + varint_len(self.sequence)
    }
}

impl Decode for Group {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            subscribe: input.varint()?,
            sequence: input.varint()?,
        })
    }
}

/// Groups a publisher could not deliver, on the subscribe stream after `Info`
/// (WIRE.md §5.11).
///
/// | field | wire |
/// |---|---|
/// | `sequence` | varint |
/// | `count` | varint |
/// | `code` | varint that must fit a `u32` ([`DecodeError::BoundsExceeded`] otherwise) |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupDrop {
    /// The first dropped group.
    pub sequence: u64,
    /// How many more groups after `sequence` were dropped (0 = just that one); 0.5.0 always
    /// sends 0.
    pub count: u64,
    /// Why.
    pub code: ErrorCode,
}

impl Encode for GroupDrop {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        encode_varint(self.sequence, buf);
        encode_varint(self.count, buf);
        encode_varint(self.code.0.into(), buf);
    }

    fn encoded_len(&self) -> usize {
        varint_len(self.sequence) + varint_len(self.count) + varint_len(self.code.0.into())
    }
}

impl Decode for GroupDrop {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let sequence = input.varint()?;
        let count = input.varint()?;
        let value = input.varint()?;
        // The code is a u32 (WIRE.md §3.1, §5.11).
        let code = u32::try_from(value).map_err(|_| DecodeError::BoundsExceeded {
            field: "group drop code",
            value,
        })?;
        Ok(Self {
            sequence,
            count,
            code: ErrorCode(code),
        })
    }
}

/// The header of one frame in a group stream: its payload size (WIRE.md §5.13).
///
/// Exactly `size` payload bytes follow; they are not part of this struct.
/// [`GroupReader`](crate::GroupReader) hands them out without copying.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Payload bytes that follow.
    pub size: u64,
}

impl Encode for Frame {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        encode_varint(self.size, buf);
    }

    fn encoded_len(&self) -> usize {
        varint_len(self.size)
    }
}

impl Decode for Frame {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            size: input.varint()?,
        })
    }
}
