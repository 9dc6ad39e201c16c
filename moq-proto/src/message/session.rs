use std::num::NonZeroU64;

use bytes::BufMut;

use crate::coding::{Decode, Encode, Input, encode_varint, varint_len};
use crate::error::{DecodeError, Limit};
use crate::limits::MAX_VERSIONS;
use crate::{Extensions, Version};

/// The client's half of the handshake, first on the session stream (WIRE.md §5.1).
///
/// | field | wire |
/// |---|---|
/// | `versions` | varint count (at most [`MAX_VERSIONS`](crate::limits::MAX_VERSIONS)), then each version as a varint |
/// | `extensions` | [`Extensions`] |
///
/// 0.5.0 offers exactly `[Version::CURRENT]` with no extensions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionClient {
    /// The versions the client speaks, preferred first.
    pub versions: Vec<Version>,
    /// Setup extensions.
    pub extensions: Extensions,
}

impl Encode for SessionClient {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        encode_varint(self.versions.len() as u64, buf);
        for v in &self.versions {
            v.encode(buf);
        }
        self.extensions.encode(buf);
    }

    fn encoded_len(&self) -> usize {
        varint_len(self.versions.len() as u64)
            + self.versions.iter().map(Encode::encoded_len).sum::<usize>()
            + self.extensions.encoded_len()
    }
}

impl Decode for SessionClient {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let count = input.length(Limit::Versions, MAX_VERSIONS)?;
        let mut versions = Vec::with_capacity(count);
        for _ in 0..count {
            versions.push(input.read()?);
        }
        Ok(Self {
            versions,
            extensions: input.read()?,
        })
    }
}

/// The server's half of the handshake (WIRE.md §5.2): the chosen version and extensions.
///
/// 0.5.0 always answers [`Version::CURRENT`] with no extensions and, as a client, does not
/// check what it gets back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionServer {
    /// The version chosen from the client's list.
    pub version: Version,
    /// Setup extensions.
    pub extensions: Extensions,
}

impl Encode for SessionServer {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.version.encode(buf);
        self.extensions.encode(buf);
    }

    fn encoded_len(&self) -> usize {
        self.version.encoded_len() + self.extensions.encoded_len()
    }
}

impl Decode for SessionServer {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            version: input.read()?,
            extensions: input.read()?,
        })
    }
}

/// A bitrate estimate for the session stream (WIRE.md §5.3): one varint, `0` = unknown.
///
/// Defined but never sent by any published crate; a 0.4 to 0.8 peer parses bytes on its
/// session stream as `Info` and usually closes the session on it (WIRE.md §4.2). Don't send it
/// to them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionUpdate {
    /// Estimated bits per second, `None` if unknown (zero on the wire, no offset: WIRE.md §3.9).
    pub bitrate: Option<NonZeroU64>,
}

impl Encode for SessionUpdate {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        encode_varint(self.bitrate.map_or(0, NonZeroU64::get), buf);
    }

    fn encoded_len(&self) -> usize {
        varint_len(self.bitrate.map_or(0, NonZeroU64::get))
    }
}

impl Decode for SessionUpdate {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            bitrate: NonZeroU64::new(input.varint()?),
        })
    }
}
