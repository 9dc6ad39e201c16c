//! [`Frame`] and [`Timestamp`]: one coded picture or audio packet, and when to present it.

use std::fmt;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use moq_proto::{Decode, MAX_VARINT, encode_varint, varint_len};

use crate::Error;

/// A presentation time in microseconds, as frames carry it on the wire.
///
/// The wire holds it as a QUIC varint, so it is at most 2^62 - 1 µs (about 146,000 years);
/// constructors that could exceed that return `None`.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// Zero.
    pub const ZERO: Self = Self(0);

    /// The largest timestamp a frame can carry.
    pub const MAX: Self = Self(MAX_VARINT);

    /// `micros` microseconds; `None` above [`Timestamp::MAX`].
    pub const fn from_micros(micros: u64) -> Option<Self> {
        if micros <= MAX_VARINT {
            Some(Self(micros))
        } else {
            None
        }
    }

    /// `value` ticks of a clock with `timescale` ticks per second, rounded down to whole
    /// microseconds (as moq-karp 0.10 converts MP4 times). `None` for a zero timescale or a
    /// result above [`Timestamp::MAX`].
    ///
    /// ```
    /// use moq_media::Timestamp;
    ///
    /// assert_eq!(Timestamp::from_units(3, 90_000).unwrap().as_micros(), 33);
    /// assert_eq!(Timestamp::from_units(48_000, 48_000).unwrap().as_micros(), 1_000_000);
    /// assert_eq!(Timestamp::from_units(1, 0), None);
    /// ```
    pub fn from_units(value: u64, timescale: u32) -> Option<Self> {
        if timescale == 0 {
            return None;
        }
        // u128: value * 10^6 cannot overflow it.
        let micros = u128::from(value) * 1_000_000 / u128::from(timescale);
        u64::try_from(micros).ok().and_then(Self::from_micros)
    }

    /// Microseconds.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// In ticks of a clock with `timescale` ticks per second, rounded down.
    pub fn as_units(self, timescale: u32) -> u64 {
        // At most (2^62 - 1) * (2^32 - 1) / 10^6, which fits a u64.
        (u128::from(self.0) * u128::from(timescale) / 1_000_000) as u64
    }

    /// As a [`Duration`] since the stream's time zero.
    pub const fn as_duration(self) -> Duration {
        Duration::from_micros(self.0)
    }

    /// From a [`Duration`], truncated to whole microseconds; `None` above [`Timestamp::MAX`].
    pub fn from_duration(duration: Duration) -> Option<Self> {
        u64::try_from(duration.as_micros())
            .ok()
            .and_then(Self::from_micros)
    }

    /// `self - earlier`, or `None` if `earlier` is later.
    pub const fn checked_sub(self, earlier: Self) -> Option<Duration> {
        match self.0.checked_sub(earlier.0) {
            Some(micros) => Some(Duration::from_micros(micros)),
            None => None,
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// One frame of a media track: a coded picture or audio packet with its presentation time.
///
/// On the wire (moq-karp 0.10): a MoQ frame whose payload is the timestamp in microseconds
/// as a QUIC varint, then the codec payload, with nothing between or after. Whether it is a
/// keyframe is not written: the first frame of every group is one, and only the first.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// When to present it.
    pub timestamp: Timestamp,
    /// Whether it can be decoded on its own. A keyframe starts a new group when written; a
    /// frame read is a keyframe when it is the first of its group.
    pub keyframe: bool,
    /// The codec payload: for H.264 and H.265 length-prefixed NAL units as in MP4; for AAC
    /// a raw access unit (no ADTS header); for Opus one packet.
    pub payload: Bytes,
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("timestamp", &self.timestamp)
            .field("keyframe", &self.keyframe)
            .field("payload", &format_args!("{} bytes", self.payload.len()))
            .finish()
    }
}

impl Frame {
    /// The frame's bytes as they travel: timestamp varint, then the payload (one copy of
    /// the payload, so that every reader gets one contiguous buffer).
    pub fn encode(&self) -> Bytes {
        let micros = self.timestamp.as_micros();
        let mut buf = BytesMut::with_capacity(varint_len(micros) + self.payload.len());
        encode_varint(micros, &mut buf);
        buf.put_slice(&self.payload);
        buf.freeze()
    }

    /// Reads a frame from the bytes of a MoQ frame; `keyframe` is whether it was the first of
    /// its group. The payload is a slice of `bytes` (no copy).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use moq_media::Frame;
    ///
    /// let frame = Frame::decode(Bytes::from_static(&[0x40, 0x64, 0xaa, 0xbb]), true).unwrap();
    /// assert_eq!(frame.timestamp.as_micros(), 100);
    /// assert_eq!(&frame.payload[..], [0xaa, 0xbb]);
    /// assert!(Frame::decode(Bytes::from_static(&[0x40]), false).is_err());
    /// ```
    pub fn decode(mut bytes: Bytes, keyframe: bool) -> Result<Self, Error> {
        // A varint can only be short, never malformed.
        let (micros, used) = u64::decode(&bytes).map_err(|_| Error::FrameTooShort)?;
        let payload = bytes.split_off(used);
        Ok(Self {
            timestamp: Timestamp(micros),
            keyframe,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn encode_decode_round_trip(micros in 0..=MAX_VARINT, payload in proptest::collection::vec(any::<u8>(), 0..64), keyframe: bool) {
            let frame = Frame {
                timestamp: Timestamp::from_micros(micros).unwrap(),
                keyframe,
                payload: payload.into(),
            };
            let bytes = frame.encode();
            prop_assert_eq!(bytes.len(), varint_len(micros) + frame.payload.len());
            prop_assert_eq!(Frame::decode(bytes, keyframe).unwrap(), frame);
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let bytes = Bytes::from(bytes);
            match Frame::decode(bytes.clone(), false) {
                Ok(frame) => {
                    let used = bytes.len() - frame.payload.len();
                    prop_assert_eq!(&bytes[used..], &frame.payload[..]);
                    prop_assert!(frame.timestamp <= Timestamp::MAX);
                }
                Err(err) => prop_assert_eq!(err, Error::FrameTooShort),
            }
        }
    }

    #[test]
    fn conversions() {
        assert_eq!(Timestamp::from_micros(MAX_VARINT + 1), None);
        assert_eq!(Timestamp::from_units(u64::MAX, 1), None);
        // (2^64 - 1) / (2^32 - 1) is exactly 2^32 + 1.
        assert_eq!(
            Timestamp::from_units(u64::MAX, u32::MAX)
                .unwrap()
                .as_micros(),
            4_294_967_297_000_000
        );
        let t = Timestamp::from_micros(1_500_000).unwrap();
        assert_eq!(t.as_units(90_000), 135_000);
        assert_eq!(
            Timestamp::MAX.as_units(u32::MAX),
            (u128::from(MAX_VARINT) * u128::from(u32::MAX) / 1_000_000) as u64
        );
        assert_eq!(format!("{t:?}"), "1.500000s");
        assert_eq!(t.as_duration(), Duration::from_millis(1500));
        assert_eq!(
            Timestamp::from_duration(Duration::from_millis(1500)),
            Some(t)
        );
        assert_eq!(
            t.checked_sub(Timestamp::ZERO),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(Timestamp::ZERO.checked_sub(t), None);
    }
}
