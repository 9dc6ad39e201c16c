//! [`Version`] numbers of the setup handshake, and the [`ALPN`] of raw QUIC connections.

use std::fmt;

use bytes::BufMut;

use crate::coding::{Decode, Encode, Input, encode_varint, varint_len};
use crate::error::DecodeError;

/// The ALPN of a raw QUIC connection (WIRE.md §2.1). WebTransport sessions use `h3`.
pub const ALPN: &[u8] = b"moqf-02";

/// A protocol version offered in `SessionClient` and chosen in `SessionServer` (WIRE.md §5.1).
///
/// A varint on the wire. Every version `moq-transfork` knows has a named constant; only
/// [`CURRENT`](Version::CURRENT) (`0xff0bad02`, draft-lcurley-moq-transfork-02) is spoken here.
///
/// ```
/// use moq_proto::Version;
///
/// assert_eq!(format!("{:?}", Version::CURRENT), "Version::FORK_02");
/// assert_eq!(format!("{:?}", Version(0xff0bad04)), "Version(0xff0bad04)");
/// assert!(Version::KNOWN.contains(&Version(0xff000003)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub u64);

impl Version {
    /// draft-ietf-moq-transport-00.
    pub const DRAFT_00: Self = Self(0xff00_0000);
    /// draft-ietf-moq-transport-01.
    pub const DRAFT_01: Self = Self(0xff00_0001);
    /// draft-ietf-moq-transport-02.
    pub const DRAFT_02: Self = Self(0xff00_0002);
    /// draft-ietf-moq-transport-03.
    pub const DRAFT_03: Self = Self(0xff00_0003);
    /// draft-ietf-moq-transport-04.
    pub const DRAFT_04: Self = Self(0xff00_0004);
    /// draft-lcurley-moq-transfork-00.
    pub const FORK_00: Self = Self(0xff0b_ad00);
    /// draft-lcurley-moq-transfork-01.
    pub const FORK_01: Self = Self(0xff0b_ad01);
    /// draft-lcurley-moq-transfork-02: the version of `moq-transfork` 0.3 to 0.8.
    pub const FORK_02: Self = Self(0xff0b_ad02);
    /// The version this crate speaks: [`FORK_02`](Version::FORK_02).
    pub const CURRENT: Self = Self::FORK_02;

    /// Every version with a name, oldest first.
    pub const KNOWN: [Self; 8] = [
        Self::DRAFT_00,
        Self::DRAFT_01,
        Self::DRAFT_02,
        Self::DRAFT_03,
        Self::DRAFT_04,
        Self::FORK_00,
        Self::FORK_01,
        Self::FORK_02,
    ];

    /// The constant's name, if this is a known version.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0xff00_0000 => "DRAFT_00",
            0xff00_0001 => "DRAFT_01",
            0xff00_0002 => "DRAFT_02",
            0xff00_0003 => "DRAFT_03",
            0xff00_0004 => "DRAFT_04",
            0xff0b_ad00 => "FORK_00",
            0xff0b_ad01 => "FORK_01",
            0xff0b_ad02 => "FORK_02",
            _ => return None,
        })
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "Version::{name}"),
            None => write!(f, "Version({:#x})", self.0),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl From<u64> for Version {
    fn from(v: u64) -> Self {
        Self(v)
    }
}

/// A varint (WIRE.md §5.1).
impl Encode for Version {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        encode_varint(self.0, buf);
    }

    fn encoded_len(&self) -> usize {
        varint_len(self.0)
    }
}

/// A varint (WIRE.md §5.1). Unknown versions decode fine; choosing one is the session's job.
impl Decode for Version {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(Self(input.varint()?))
    }
}
