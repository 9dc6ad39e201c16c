//! The [`Encode`] and [`Decode`] traits, the [`Input`] cursor and the primitive encodings
//! (WIRE.md §3).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Limit};
use crate::limits::{MAX_EXTENSION_SIZE, MAX_PATH_BYTES, MAX_PATH_PARTS, MAX_STRING_LEN};
use crate::{GroupOrder, Path};

/// The largest value a QUIC varint can hold: 2^62 - 1.
pub const MAX_VARINT: u64 = (1 << 62) - 1;

/// A value that can be written to the wire.
///
/// Encoders write the shortest varint forms (WIRE.md §3.1). `encoded_len` is exact:
/// `x.encoded_len() == x.to_bytes().len()`.
///
/// # Panics
///
/// Integer fields are plain `u64`s; encoding one above [`MAX_VARINT`] (2^62 - 1) is a
/// programming error and panics, as it does in `moq-transfork` 0.5.0. Values decoded from the
/// wire are always in range, and offset-by-one optionals must hold at most `MAX_VARINT - 1`.
/// Durations are the exception: they are clamped to `MAX_VARINT` milliseconds.
/// Writing into a fixed-size [`BufMut`] that is too small panics as well (as `BufMut` does).
///
/// ```
/// use moq_proto::{Encode, Group};
///
/// let group = Group { subscribe: 300, sequence: 70000 };
/// let bytes = group.to_bytes();
/// assert_eq!(&bytes[..], [0x41, 0x2c, 0x80, 0x01, 0x11, 0x70]);
/// assert_eq!(group.encoded_len(), bytes.len());
/// ```
pub trait Encode {
    /// Appends the encoding to `buf`.
    fn encode<B: BufMut>(&self, buf: &mut B);

    /// The number of bytes [`encode`](Encode::encode) writes.
    fn encoded_len(&self) -> usize;

    /// The encoding in a new buffer of exactly the right size.
    fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        buf.freeze()
    }
}

/// A value that can be read from the wire.
///
/// [`decode`](Decode::decode) reads one value from the front of a byte slice and returns it
/// with the number of bytes it used. It never reads past the value, so trailing bytes (the next
/// message, a frame payload) are left alone. On any error nothing is consumed:
/// [`DecodeError::Short`] means the slice is a valid but incomplete prefix, every other error
/// means the bytes are malformed. Non-minimal varints are accepted (WIRE.md §3.1).
///
/// ```
/// use moq_proto::{Decode, DecodeError, Frame};
///
/// let (frame, used) = Frame::decode(&[0x45, 0xdc, 0xaa]).unwrap();
/// assert_eq!((frame.size, used), (1500, 2));
/// assert!(matches!(Frame::decode(&[0x45]), Err(DecodeError::Short { needed: 1 })));
/// ```
pub trait Decode: Sized {
    /// Reads one value from `input`, advancing it past the value.
    ///
    /// On error the position of `input` is unspecified; [`decode`](Decode::decode) restarts
    /// from the beginning, so implementations need not restore it.
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError>;

    /// Decodes one value from the front of `buf`, returning it and the number of bytes used.
    fn decode(buf: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut input = Input::new(buf);
        let value = Self::decode_from(&mut input)?;
        Ok((value, input.consumed()))
    }
}

/// A read position in a byte slice, for [`Decode::decode_from`].
///
/// Use it to decode several values back to back, e.g. a stream type and then a message:
///
/// ```
/// use moq_proto::{Input, StreamBi, Subscribe};
///
/// let bytes = [0x02, 0x01, 0x03, 0x01, 0x61, 0x01, 0x62, 0x01, 0x63, 0x80, 0x01, 0x00, 0x00, 0x00];
/// let mut input = Input::new(&bytes);
/// assert_eq!(input.read::<StreamBi>().unwrap(), StreamBi::Subscribe);
/// let subscribe: Subscribe = input.read().unwrap();
/// assert_eq!(subscribe.id, 1);
/// assert_eq!(input.remaining(), 0);
/// ```
#[derive(Clone, Debug)]
pub struct Input<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// A cursor at the start of `buf`.
    pub const fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub const fn consumed(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    pub const fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Decodes the next value.
    pub fn read<T: Decode>(&mut self) -> Result<T, DecodeError> {
        T::decode_from(self)
    }

    /// The next `n` bytes, or `Short` (a lower bound on what is missing).
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(DecodeError::Short {
                needed: n - remaining,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// One raw byte (WIRE.md §3.2).
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(DecodeError::Short { needed: 1 }),
        }
    }

    /// A QUIC varint (WIRE.md §3.1); non-minimal encodings are accepted.
    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let rest = &self.buf[self.pos..];
        match varint_prefix(rest) {
            Some((value, len)) => {
                self.pos += len;
                Ok(value)
            }
            None => {
                let needed = match rest.first() {
                    Some(&first) => (1usize << (first >> 6)) - rest.len(),
                    None => 1,
                };
                Err(DecodeError::Short { needed })
            }
        }
    }

    /// A varint length, checked against `max` before anything is read or allocated.
    pub(crate) fn length(&mut self, limit: Limit, max: usize) -> Result<usize, DecodeError> {
        let len = self.varint()?;
        if len > max as u64 {
            return Err(DecodeError::LimitExceeded {
                limit,
                value: len,
                max: max as u64,
            });
        }
        Ok(len as usize)
    }

    /// A string of at most `max` bytes (WIRE.md §3.5).
    pub(crate) fn string(&mut self, limit: Limit, max: usize) -> Result<String, DecodeError> {
        let len = self.length(limit, max)?;
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(DecodeError::InvalidString),
        }
    }
}

/// A whole varint at the start of `buf` and its length, or `None` if `buf` is too short.
#[inline]
pub(crate) fn varint_prefix(buf: &[u8]) -> Option<(u64, usize)> {
    if let Some(word) = buf.first_chunk::<8>() {
        // Eight bytes at hand: no branch on the length. The top two bits give the length
        // (1 << tag bytes, WIRE.md §3.1); clear them, then shift out the bytes after it.
        const SHIFT: [u32; 4] = [56, 48, 32, 0];
        const LEN: [usize; 4] = [1, 2, 4, 8];
        let word = u64::from_be_bytes(*word);
        let tag = (word >> 62) as usize;
        return Some(((word & (u64::MAX >> 2)) >> SHIFT[tag], LEN[tag]));
    }
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    let bytes = buf.get(..len)?;
    let value = match len {
        1 => u64::from(first),
        2 => u64::from(u16::from_be_bytes([first & 0x3f, bytes[1]])),
        4 => u64::from(u32::from_be_bytes([
            first & 0x3f,
            bytes[1],
            bytes[2],
            bytes[3],
        ])),
        _ => u64::from_be_bytes([
            first & 0x3f,
            bytes[1],
            bytes[2],
            bytes[3],
            bytes[4],
            bytes[5],
            bytes[6],
            bytes[7],
        ]),
    };
    Some((value, len))
}

/// The number of bytes of the shortest varint encoding of `value` (1, 2, 4 or 8).
///
/// Values above [`MAX_VARINT`] cannot be encoded; this returns 8 for them.
pub const fn varint_len(value: u64) -> usize {
    if value < 1 << 6 {
        1
    } else if value < 1 << 14 {
        2
    } else if value < 1 << 30 {
        4
    } else {
        8
    }
}

/// Writes `value` as the shortest varint (WIRE.md §3.1).
///
/// # Panics
///
/// If `value` is above [`MAX_VARINT`].
pub fn encode_varint<B: BufMut>(value: u64, buf: &mut B) {
    if value < 1 << 6 {
        buf.put_u8(value as u8);
    } else if value < 1 << 14 {
        buf.put_u16(0x4000 | value as u16);
    } else if value < 1 << 30 {
        buf.put_u32(0x8000_0000 | value as u32);
    } else {
        assert!(value <= MAX_VARINT, "varint out of range: {value} >= 2^62");
        buf.put_u64(0xc000_0000_0000_0000 | value);
    }
}

/// A QUIC varint (WIRE.md §3.1).
impl Encode for u64 {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        encode_varint(*self, buf);
    }

    fn encoded_len(&self) -> usize {
        varint_len(*self)
    }
}

/// A QUIC varint (WIRE.md §3.1).
impl Decode for u64 {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        input.varint()
    }
}

/// One raw byte (WIRE.md §3.2).
impl Encode for u8 {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(*self);
    }

    fn encoded_len(&self) -> usize {
        1
    }
}

/// One raw byte (WIRE.md §3.2).
impl Decode for u8 {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        input.u8()
    }
}

/// A priority: one byte holding `value + 128`, so -128 is `00`, 0 is `80`, 127 is `ff`
/// (WIRE.md §3.3). Not a varint and not two's complement.
impl Encode for i8 {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8((*self as u8) ^ 0x80);
    }

    fn encoded_len(&self) -> usize {
        1
    }
}

/// A priority: one byte holding `value + 128` (WIRE.md §3.3).
impl Decode for i8 {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok((input.u8()? ^ 0x80) as i8)
    }
}

/// Varint byte length, then UTF-8 bytes (WIRE.md §3.5). Decoding caps the length at
/// [`MAX_STRING_LEN`](crate::limits::MAX_STRING_LEN).
impl Encode for String {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.as_str().encode(buf);
    }

    fn encoded_len(&self) -> usize {
        self.as_str().encoded_len()
    }
}

/// Varint byte length, then UTF-8 bytes (WIRE.md §3.5).
impl Encode for str {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        encode_varint(self.len() as u64, buf);
        buf.put_slice(self.as_bytes());
    }

    fn encoded_len(&self) -> usize {
        varint_len(self.len() as u64) + self.len()
    }
}

/// Varint byte length, then UTF-8 bytes (WIRE.md §3.5), at most
/// [`MAX_STRING_LEN`](crate::limits::MAX_STRING_LEN) bytes.
impl Decode for String {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        input.string(Limit::StringLength, MAX_STRING_LEN)
    }
}

/// Varint byte length, then the raw bytes (WIRE.md §3.6).
impl Encode for Bytes {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        encode_varint(self.len() as u64, buf);
        buf.put_slice(self);
    }

    fn encoded_len(&self) -> usize {
        varint_len(self.len() as u64) + self.len()
    }
}

/// Varint length, then the raw bytes (WIRE.md §3.6). The only byte strings on the wire are
/// extension payloads, so the length is capped at
/// [`MAX_EXTENSION_SIZE`](crate::limits::MAX_EXTENSION_SIZE).
impl Decode for Bytes {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let len = input.length(Limit::ExtensionSize, MAX_EXTENSION_SIZE)?;
        Ok(Bytes::copy_from_slice(input.take(len)?))
    }
}

/// Milliseconds as a varint (WIRE.md §3.8). Sub-millisecond parts are truncated and values
/// above [`MAX_VARINT`] milliseconds (some 146 million years) are clamped.
impl Encode for Duration {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        encode_varint(duration_millis(self), buf);
    }

    fn encoded_len(&self) -> usize {
        varint_len(duration_millis(self))
    }
}

fn duration_millis(d: &Duration) -> u64 {
    d.as_millis().min(u128::from(MAX_VARINT)) as u64
}

/// Milliseconds as a varint (WIRE.md §3.8).
impl Decode for Duration {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(Duration::from_millis(input.varint()?))
    }
}

/// Part count, then each part as a string (WIRE.md §3.7).
impl Encode for Path {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        encode_varint(self.len() as u64, buf);
        for part in self.parts() {
            part.encode(buf);
        }
    }

    fn encoded_len(&self) -> usize {
        varint_len(self.len() as u64) + self.parts().iter().map(|p| p.encoded_len()).sum::<usize>()
    }
}

/// Part count, then each part as a string (WIRE.md §3.7). At most
/// [`MAX_PATH_PARTS`](crate::limits::MAX_PATH_PARTS) parts and
/// [`MAX_PATH_BYTES`](crate::limits::MAX_PATH_BYTES) bytes in all, checked before allocating.
impl Decode for Path {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let count = input.length(Limit::PathParts, MAX_PATH_PARTS)?;
        let mut parts = Vec::with_capacity(count);
        let mut total = 0;
        for _ in 0..count {
            let left = MAX_PATH_BYTES - total;
            let part = if left < MAX_STRING_LEN {
                input.string(Limit::PathBytes, left)?
            } else {
                input.string(Limit::StringLength, MAX_STRING_LEN)?
            };
            total += part.len();
            parts.push(part);
        }
        Ok(Path::from(parts))
    }
}

/// A varint: 0 ascending, 1 descending (WIRE.md §5.6).
impl Encode for GroupOrder {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(self.to_wire() as u8);
    }

    fn encoded_len(&self) -> usize {
        1
    }
}

/// A varint: 0 ascending, 1 descending; anything else is invalid (WIRE.md §3.11).
impl Decode for GroupOrder {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let value = input.varint()?;
        GroupOrder::from_wire(value).ok_or(DecodeError::InvalidValue {
            field: "group order",
            value,
        })
    }
}

/// The offset-by-one optional (WIRE.md §3.9): `0` is absent, `v + 1` is `Some(v)`.
pub(crate) fn encode_plus_one<B: BufMut>(value: Option<u64>, buf: &mut B) {
    encode_varint(plus_one(value), buf);
}

pub(crate) fn plus_one_len(value: Option<u64>) -> usize {
    varint_len(plus_one(value))
}

fn plus_one(value: Option<u64>) -> u64 {
    match value {
        None => 0,
        Some(v) => {
            assert!(v < MAX_VARINT, "offset-by-one optional out of range: {v}");
            v + 1
        }
    }
}

pub(crate) fn decode_plus_one(input: &mut Input<'_>) -> Result<Option<u64>, DecodeError> {
    Ok(input.varint()?.checked_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc<T: Encode + ?Sized>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out.len(), v.encoded_len());
        out
    }

    #[test]
    fn varint_boundaries() {
        for (value, len) in [
            (0, 1),
            (63, 1),
            (64, 2),
            (16383, 2),
            (16384, 4),
            ((1 << 30) - 1, 4),
            (1 << 30, 8),
            (MAX_VARINT, 8),
        ] {
            let bytes = enc(&value);
            assert_eq!(bytes.len(), len, "{value}");
            assert_eq!(u64::decode(&bytes), Ok((value, len)));
            for cut in 0..len {
                assert_eq!(
                    u64::decode(&bytes[..cut]),
                    Err(DecodeError::Short {
                        needed: if cut == 0 { 1 } else { len - cut }
                    })
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "varint out of range")]
    fn varint_too_large_panics() {
        enc(&(MAX_VARINT + 1));
    }

    #[test]
    fn non_minimal_varints_are_accepted() {
        assert_eq!(u64::decode(&[0x40, 0x09]), Ok((9, 2)));
        assert_eq!(u64::decode(&[0x80, 0, 0, 9]), Ok((9, 4)));
        assert_eq!(u64::decode(&[0xc0, 0, 0, 0, 0, 0, 0, 9]), Ok((9, 8)));
        assert_eq!(
            GroupOrder::decode(&[0x40, 0x01]),
            Ok((GroupOrder::Descending, 2))
        );
        // Re-encoding is minimal.
        assert_eq!(enc(&9u64), [9]);
    }

    #[test]
    fn i8_bias_table() {
        for (value, byte) in [
            (-128i8, 0x00u8),
            (-2, 0x7e),
            (-1, 0x7f),
            (0, 0x80),
            (1, 0x81),
            (127, 0xff),
        ] {
            assert_eq!(enc(&value), [byte]);
            assert_eq!(i8::decode(&[byte]), Ok((value, 1)));
        }
        for byte in 0..=255u8 {
            let (v, _) = i8::decode(&[byte]).unwrap();
            assert_eq!(i16::from(v) + 128, i16::from(byte));
        }
        assert_eq!(i8::decode(&[]), Err(DecodeError::Short { needed: 1 }));
    }

    #[test]
    fn huge_string_length_is_rejected_before_reading() {
        // Declares 2^62-1 bytes but provides none: a limit error, not "need more".
        let err = String::decode(&[0xff; 8]).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::LimitExceeded {
                limit: Limit::StringLength,
                ..
            }
        ));
        let mut just_over = Vec::new();
        encode_varint(MAX_STRING_LEN as u64 + 1, &mut just_over);
        assert!(matches!(
            String::decode(&just_over),
            Err(DecodeError::LimitExceeded { limit: Limit::StringLength, value, .. }) if value == MAX_STRING_LEN as u64 + 1
        ));
        // Exactly at the limit is fine (and incomplete here).
        let mut at = Vec::new();
        encode_varint(MAX_STRING_LEN as u64, &mut at);
        assert_eq!(
            String::decode(&at),
            Err(DecodeError::Short {
                needed: MAX_STRING_LEN
            })
        );
    }

    #[test]
    fn path_limits() {
        let mut too_many = Vec::new();
        encode_varint(MAX_PATH_PARTS as u64 + 1, &mut too_many);
        assert!(matches!(
            Path::decode(&too_many),
            Err(DecodeError::LimitExceeded {
                limit: Limit::PathParts,
                ..
            })
        ));
        // A huge declared count is rejected at once.
        assert!(matches!(
            Path::decode(&[0xbf, 0xff, 0xff, 0xff]),
            Err(DecodeError::LimitExceeded {
                limit: Limit::PathParts,
                ..
            })
        ));
        // Total size: two parts of 3000 bytes each exceed MAX_PATH_BYTES at the second length.
        let part = "x".repeat(3000);
        let big = Path::from([part.clone(), part]);
        let bytes = enc(&big);
        let second = 1 + part_len_prefix(3000) + 3000;
        assert!(matches!(
            Path::decode(&bytes[..second + 2]),
            Err(DecodeError::LimitExceeded {
                limit: Limit::PathBytes,
                ..
            })
        ));
        // At the limit is accepted.
        let ok = Path::from(["y".repeat(MAX_PATH_BYTES - 10), "z".repeat(10)]);
        assert_eq!(Path::decode(&enc(&ok)).unwrap().0, ok);
    }

    fn part_len_prefix(n: u64) -> usize {
        varint_len(n)
    }

    #[test]
    fn invalid_utf8() {
        assert_eq!(
            String::decode(&[0x02, 0xc3, 0x28]),
            Err(DecodeError::InvalidString)
        );
    }

    #[test]
    fn durations() {
        assert_eq!(enc(&Duration::from_micros(1_500_900)), [0x45, 0xdc]);
        assert_eq!(enc(&Duration::MAX), enc(&MAX_VARINT));
        assert_eq!(
            Duration::decode(&[0x45, 0xdc]),
            Ok((Duration::from_millis(1500), 2))
        );
    }

    #[test]
    fn plus_one_optionals() {
        let mut buf = Vec::new();
        encode_plus_one(None, &mut buf);
        encode_plus_one(Some(0), &mut buf);
        encode_plus_one(Some(99), &mut buf);
        assert_eq!(buf, [0x00, 0x01, 0x40, 0x64]);
        let mut input = Input::new(&buf);
        assert_eq!(decode_plus_one(&mut input), Ok(None));
        assert_eq!(decode_plus_one(&mut input), Ok(Some(0)));
        assert_eq!(decode_plus_one(&mut input), Ok(Some(99)));
    }
}
