use bytes::BufMut;

use crate::Path;
use crate::coding::{Decode, Encode, Input};
use crate::error::DecodeError;

/// A request for part of one group, first on a fetch stream (WIRE.md §5.10).
///
/// | field | wire |
/// |---|---|
/// | `path` | path |
/// | `priority` | one byte, `value + 128` |
/// | `group` | varint |
/// | `offset` | varint |
///
/// 0.5.0 never sends it and, as a publisher, answers it with an empty stream; don't send it to
/// 0.4 to 0.8 peers (WIRE.md §4.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetch {
    /// The exact track path.
    pub path: Path,
    /// The priority of the reply.
    pub priority: i8,
    /// The group sequence.
    pub group: u64,
    /// Byte offset into the group stream after its `Group` header (the draft-02 meaning).
    pub offset: u64,
}

impl Encode for Fetch {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.path.encode(buf);
        self.priority.encode(buf);
        self.group.encode(buf);
        self.offset.encode(buf);
    }

    fn encoded_len(&self) -> usize {
        self.path.encoded_len() + 1 + self.group.encoded_len() + self.offset.encoded_len()
    }
}

impl Decode for Fetch {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            path: input.read()?,
            priority: input.read()?,
            group: input.read()?,
            offset: input.read()?,
        })
    }
}
