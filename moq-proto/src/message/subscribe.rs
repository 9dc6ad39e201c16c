use std::time::Duration;

use bytes::BufMut;

use crate::coding::{Decode, Encode, Input, decode_plus_one, encode_plus_one, plus_one_len};
use crate::error::DecodeError;
use crate::{GroupOrder, Path};

/// A subscription request, first on a subscribe stream (WIRE.md §5.6).
///
/// | field | wire |
/// |---|---|
/// | `id` | varint |
/// | `path` | path |
/// | `priority` | one byte, `value + 128` |
/// | `group_order` | varint, 0 ascending / 1 descending |
/// | `group_expires` | varint milliseconds, 0 = no expiry |
/// | `group_min` | varint, offset by one: 0 = none |
/// | `group_max` | varint, offset by one: 0 = none |
///
/// 0.5.0 sends priority 0, descending, 0 ms, no min, no max, and ignores all five on receipt.
///
/// ```
/// use std::time::Duration;
/// use moq_proto::{Decode, Encode, GroupOrder, Path, Subscribe};
///
/// let sub = Subscribe {
///     id: 1,
///     path: Path::from(["a", "b", "c"]),
///     priority: 0,
///     group_order: GroupOrder::Descending,
///     group_expires: Duration::ZERO,
///     group_min: None,
///     group_max: None,
/// };
/// let bytes = sub.to_bytes();
/// assert_eq!(&bytes[..], [0x01, 0x03, 0x01, b'a', 0x01, b'b', 0x01, b'c', 0x80, 0x01, 0x00, 0x00, 0x00]);
/// assert_eq!(Subscribe::decode(&bytes).unwrap(), (sub, bytes.len()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    /// Chosen by the subscriber, unique per session; copied into every [`Group`](crate::Group).
    pub id: u64,
    /// The exact track path.
    pub path: Path,
    /// The subscriber's priority for this track; higher goes first.
    pub priority: i8,
    /// Which groups the subscriber wants first.
    pub group_order: GroupOrder,
    /// How long a group stays useful after it finished; zero means no expiry.
    /// Sent in whole milliseconds (truncated).
    pub group_expires: Duration,
    /// The first group wanted, or `None` to start at the latest. At most `MAX_VARINT - 1`.
    pub group_min: Option<u64>,
    /// The last group wanted, or `None` for open-ended. At most `MAX_VARINT - 1`.
    pub group_max: Option<u64>,
}

impl Encode for Subscribe {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.id.encode(buf);
        self.path.encode(buf);
        self.priority.encode(buf);
        self.group_order.encode(buf);
        self.group_expires.encode(buf);
        encode_plus_one(self.group_min, buf);
        encode_plus_one(self.group_max, buf);
    }

    fn encoded_len(&self) -> usize {
        self.id.encoded_len()
            + self.path.encoded_len()
            + 1
            + self.group_order.encoded_len()
            + self.group_expires.encoded_len()
            + plus_one_len(self.group_min)
            + plus_one_len(self.group_max)
    }
}

impl Decode for Subscribe {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: input.read()?,
            path: input.read()?,
            priority: input.read()?,
            group_order: input.read()?,
            group_expires: input.read()?,
            group_min: decode_plus_one(input)?,
            group_max: decode_plus_one(input)?,
        })
    }
}

/// A change to a subscription, later on the subscribe stream (WIRE.md §5.7).
///
/// This uses the layout the 0.5.0 *decoder* expects, five fields:
///
/// | field | wire |
/// |---|---|
/// | `priority` | **varint** (unlike the biased byte of `Subscribe`) |
/// | `group_order` | varint |
/// | `group_expires` | varint milliseconds |
/// | `group_min` | varint, offset by one |
/// | `group_max` | varint, offset by one |
///
/// The 0.5.0 *encoder* leaves out `group_expires`; its 4-byte output is an incomplete
/// message to this decoder (and to its own). No published crate sends this message; 0.4 to
/// 0.8 publishers parse the five fields and ignore them, so sending it to them is harmless
/// and changes nothing.
///
/// The priority varint carries the same number as the priority byte of [`Subscribe`]
/// (`value + 128`, so 0 to 255; 0.5.0's biased `i8` stands in for the drafts' unsigned
/// priority): [`track_priority`](Self::track_priority) reads it back and
/// [`priority_of`](Self::priority_of) writes it.
///
/// ```
/// use std::time::Duration;
/// use moq_proto::{Decode, Encode, GroupOrder, SubscribeUpdate};
///
/// let update = SubscribeUpdate {
///     priority: SubscribeUpdate::priority_of(-1),
///     group_order: GroupOrder::Ascending,
///     group_expires: Duration::from_millis(250),
///     group_min: None,
///     group_max: None,
/// };
/// let bytes = update.to_bytes();
/// assert_eq!(&bytes[..], [0x40, 0x7f, 0x00, 0x40, 0xfa, 0x00, 0x00]);
/// let (decoded, _) = SubscribeUpdate::decode(&bytes).unwrap();
/// assert_eq!(decoded.track_priority(), Ok(-1));
///
/// // Any varint decodes; one past 255 is no track priority.
/// let too_high = SubscribeUpdate { priority: 256, ..decoded };
/// assert!(too_high.track_priority().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeUpdate {
    /// The new priority (a varint on the wire).
    pub priority: u64,
    /// The new group order.
    pub group_order: GroupOrder,
    /// The new expiry; zero means none.
    pub group_expires: Duration,
    /// The new first group, or `None`. At most `MAX_VARINT - 1`.
    pub group_min: Option<u64>,
    /// The new last group, or `None`. At most `MAX_VARINT - 1`.
    pub group_max: Option<u64>,
}

impl SubscribeUpdate {
    /// The priority as a track priority (higher goes first), or
    /// [`DecodeError::BoundsExceeded`] if the varint is over 255.
    pub fn track_priority(&self) -> Result<i8, DecodeError> {
        match u8::try_from(self.priority) {
            Ok(byte) => Ok((byte ^ 0x80) as i8),
            Err(_) => Err(DecodeError::BoundsExceeded {
                field: "SubscribeUpdate.priority",
                value: self.priority,
            }),
        }
    }

    /// The varint that carries the track priority `priority` (`priority + 128`).
    pub fn priority_of(priority: i8) -> u64 {
        u64::from((priority as u8) ^ 0x80)
    }
}

impl Encode for SubscribeUpdate {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.priority.encode(buf);
        self.group_order.encode(buf);
        self.group_expires.encode(buf);
        encode_plus_one(self.group_min, buf);
        encode_plus_one(self.group_max, buf);
    }

    fn encoded_len(&self) -> usize {
        self.priority.encoded_len()
            + self.group_order.encoded_len()
            + self.group_expires.encoded_len()
            + plus_one_len(self.group_min)
            + plus_one_len(self.group_max)
    }
}

impl Decode for SubscribeUpdate {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            priority: input.read()?,
            group_order: input.read()?,
            group_expires: input.read()?,
            group_min: decode_plus_one(input)?,
            group_max: decode_plus_one(input)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_priority_is_the_subscribe_byte_as_a_varint() {
        for priority in i8::MIN..=i8::MAX {
            let value = SubscribeUpdate::priority_of(priority);
            // The same number as Subscribe's byte.
            assert_eq!(value, u64::from(priority.to_bytes()[0]));
            let update = SubscribeUpdate {
                priority: value,
                group_order: GroupOrder::Descending,
                group_expires: Duration::ZERO,
                group_min: None,
                group_max: None,
            };
            assert_eq!(update.track_priority(), Ok(priority));
        }
        assert_eq!(SubscribeUpdate::priority_of(i8::MIN), 0);
        assert_eq!(SubscribeUpdate::priority_of(i8::MAX), 255);
        for value in [256, 1 << 20, crate::coding::MAX_VARINT] {
            let update = SubscribeUpdate {
                priority: value,
                group_order: GroupOrder::Descending,
                group_expires: Duration::ZERO,
                group_min: None,
                group_max: None,
            };
            assert!(matches!(
                update.track_priority(),
                Err(DecodeError::BoundsExceeded { value: v, .. }) if v == value
            ));
        }
    }
}
