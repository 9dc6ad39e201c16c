//! The stream types: the first varint of every stream (WIRE.md §4.1, §5.14).

use bytes::BufMut;

use crate::coding::{Decode, Encode, Input};
use crate::error::DecodeError;

/// The type of a bidirectional (control) stream, written by the opener as its first varint
/// (WIRE.md §4.1).
///
/// | value | type | first message from the opener | reply |
/// |---|---|---|---|
/// | 0 | [`Session`](StreamBi::Session) | [`SessionClient`](crate::SessionClient) | [`SessionServer`](crate::SessionServer) |
/// | 1 | [`Announce`](StreamBi::Announce) | [`AnnounceInterest`](crate::AnnounceInterest) | [`Announce`](crate::Announce)* |
/// | 2 | [`Subscribe`](StreamBi::Subscribe) | [`Subscribe`](crate::Subscribe), then [`SubscribeUpdate`](crate::SubscribeUpdate)* | [`Info`](crate::Info), then [`GroupDrop`](crate::GroupDrop)* |
/// | 3 | [`Fetch`](StreamBi::Fetch) | [`Fetch`](crate::Fetch) | group stream contents (not served by 0.5.0) |
/// | 4 | [`Info`](StreamBi::Info) | [`InfoRequest`](crate::InfoRequest) | [`Info`](crate::Info) |
///
/// Other values are [`DecodeError::InvalidValue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamBi {
    /// 0: the session handshake, opened once by the client.
    Session = 0,
    /// 1: announcements under a prefix.
    Announce = 1,
    /// 2: one subscription.
    Subscribe = 2,
    /// 3: a fetch of part of a group.
    Fetch = 3,
    /// 4: a request for a track's info.
    Info = 4,
}

impl StreamBi {
    /// The wire value.
    pub const fn to_wire(self) -> u64 {
        self as u64
    }

    /// The type for a wire value, or `None` if it is unknown.
    pub const fn from_wire(value: u64) -> Option<Self> {
        Some(match value {
            0 => Self::Session,
            1 => Self::Announce,
            2 => Self::Subscribe,
            3 => Self::Fetch,
            4 => Self::Info,
            _ => return None,
        })
    }
}

impl Encode for StreamBi {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(*self as u8);
    }

    fn encoded_len(&self) -> usize {
        1
    }
}

impl Decode for StreamBi {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let value = input.varint()?;
        // Unknown types are a decode error (WIRE.md §4.1).
        Self::from_wire(value).ok_or(DecodeError::InvalidValue {
            field: "bidirectional stream type",
            value,
        })
    }
}

/// The type of a unidirectional (data) stream, its first varint (WIRE.md §4.1).
///
/// Only `0` ([`Group`](StreamUni::Group)) exists: a [`Group`](crate::Group) header, then
/// frames until FIN. Other values are [`DecodeError::InvalidValue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamUni {
    /// 0: the frames of one group.
    Group = 0,
}

impl StreamUni {
    /// The wire value.
    pub const fn to_wire(self) -> u64 {
        self as u64
    }

    /// The type for a wire value, or `None` if it is unknown.
    pub const fn from_wire(value: u64) -> Option<Self> {
        match value {
            0 => Some(Self::Group),
            _ => None,
        }
    }
}

impl Encode for StreamUni {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(*self as u8);
    }

    fn encoded_len(&self) -> usize {
        1
    }
}

impl Decode for StreamUni {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let value = input.varint()?;
        // Unknown types are a decode error (WIRE.md §4.1).
        Self::from_wire(value).ok_or(DecodeError::InvalidValue {
            field: "unidirectional stream type",
            value,
        })
    }
}
