//! The catalog: the JSON document, on a broadcast's catalog track, that lists its renditions.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{AudioCodec, Error, VideoCodec};

/// What a broadcast carries: its video and audio renditions.
///
/// Serialized as moq-karp 0.10 does: compact JSON with the keys `video` and `audio`, each
/// left out when empty. Unknown keys are ignored when parsing, so newer catalogs with more
/// fields still parse.
///
/// ```
/// use moq_media::{Audio, AudioCodec, Catalog, TrackInfo};
///
/// let catalog = Catalog {
///     video: vec![],
///     audio: vec![Audio {
///         track: TrackInfo { name: "audio2".into(), priority: 1 },
///         codec: AudioCodec::Opus,
///         sample_rate: 48_000,
///         channel_count: 2,
///         bitrate: None,
///     }],
/// };
/// let json = catalog.to_json();
/// assert_eq!(
///     json,
///     r#"{"audio":[{"track":{"name":"audio2","priority":1},"codec":"opus","sample_rate":48000,"channel_count":2}]}"#
/// );
/// assert_eq!(Catalog::from_json(json.as_bytes()).unwrap(), catalog);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// The video renditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub video: Vec<Video>,
    /// The audio renditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audio: Vec<Audio>,
}

/// Which track carries a rendition, and its priority.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TrackInfo {
    /// The track's name: one path part below the broadcast's path (`video1`, `audio2`).
    pub name: String,
    /// The track's priority (higher is sent first); moq-karp 0.10 uses 2 for video and 1
    /// for audio.
    pub priority: i8,
}

/// A video rendition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Video {
    /// Its track.
    pub track: TrackInfo,
    /// The codec string, e.g. `avc1.64001f`.
    pub codec: VideoCodec,
    /// The decoder configuration a decoder needs besides the frames (WebCodecs'
    /// `description`): the body of the `avcC` box for H.264, of `hvcC` for H.265, of `av1C`
    /// for AV1; empty for VP8 and VP9. JSON: lowercase hex, left out when empty.
    #[serde(default, skip_serializing_if = "Bytes::is_empty", with = "hex_bytes")]
    pub description: Bytes,
    /// The coded size in pixels.
    pub resolution: Dimensions,
    /// Bits per second, if known. Left out of the JSON when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u32>,
}

/// An audio rendition.
///
/// The catalog of moq-karp 0.10 has no decoder configuration for audio: an AAC decoder is
/// configured from the codec string, sample rate and channel count alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audio {
    /// Its track.
    pub track: TrackInfo,
    /// The codec string, e.g. `mp4a.40.2` or `opus`.
    pub codec: AudioCodec,
    /// Samples per second. 16 bits, as in moq-karp 0.10 (so 88.2 and 96 kHz do not fit).
    pub sample_rate: u16,
    /// The number of channels.
    pub channel_count: u16,
    /// Bits per second, if known. Left out of the JSON when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u32>,
}

/// A size in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dimensions {
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
}

impl Catalog {
    /// Parses a catalog from its JSON.
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(json).map_err(|err| Error::Catalog(err.to_string()))
    }

    /// The catalog as compact JSON, as it travels on the catalog track.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every map key is a string.
        serde_json::to_string(self).expect("a catalog serializes")
    }

    /// No rendition at all.
    pub fn is_empty(&self) -> bool {
        self.video.is_empty() && self.audio.is_empty()
    }

    /// Every rendition's track, video first, in catalog order.
    pub fn tracks(&self) -> impl Iterator<Item = &TrackInfo> {
        self.video
            .iter()
            .map(|video| &video.track)
            .chain(self.audio.iter().map(|audio| &audio.track))
    }
}

/// `Bytes` as a lowercase hex string (parsing takes either case).
mod hex_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(
        bytes: &Bytes,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(bytes.len() * 2);
        for byte in bytes.iter() {
            hex.push(DIGITS[usize::from(byte >> 4)] as char);
            hex.push(DIGITS[usize::from(byte & 0xf)] as char);
        }
        serializer.serialize_str(&hex)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Bytes, D::Error> {
        let hex = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        let hex = hex.as_bytes();
        if hex.len() % 2 != 0 {
            return Err(D::Error::custom("odd number of hex digits"));
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(D::Error::custom("invalid hex digit")),
        };
        hex.chunks_exact(2)
            .map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?))
            .collect::<Result<Vec<u8>, _>>()
            .map(Bytes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::H264;

    /// The JSON moq-karp 0.10's own catalog test expects, byte for byte.
    const KARP_TEST_JSON: &str = r#"{"video":[{"track":{"name":"video","priority":2},"codec":"avc1.64001f","resolution":{"width":1280,"height":720},"bitrate":6000000}],"audio":[{"track":{"name":"audio","priority":1},"codec":"opus","sample_rate":48000,"channel_count":2,"bitrate":128000}]}"#;

    fn karp_test_catalog() -> Catalog {
        Catalog {
            video: vec![Video {
                track: TrackInfo {
                    name: "video".into(),
                    priority: 2,
                },
                codec: H264 {
                    profile: 0x64,
                    constraints: 0,
                    level: 0x1f,
                }
                .into(),
                description: Bytes::new(),
                resolution: Dimensions {
                    width: 1280,
                    height: 720,
                },
                bitrate: Some(6_000_000),
            }],
            audio: vec![Audio {
                track: TrackInfo {
                    name: "audio".into(),
                    priority: 1,
                },
                codec: AudioCodec::Opus,
                sample_rate: 48_000,
                channel_count: 2,
                bitrate: Some(128_000),
            }],
        }
    }

    #[test]
    fn same_json_as_karp() {
        assert_eq!(karp_test_catalog().to_json(), KARP_TEST_JSON);
        assert_eq!(
            Catalog::from_json(KARP_TEST_JSON.as_bytes()).unwrap(),
            karp_test_catalog()
        );
    }

    #[test]
    fn description_is_hex_and_optional_fields_default() {
        let json = r#"{"video":[{"track":{"name":"v","priority":-1},"codec":"avc1.42C01E","description":"01AbfF","resolution":{"width":2,"height":4},"extra":true}],"future":[]}"#;
        let catalog = Catalog::from_json(json.as_bytes()).unwrap();
        let video = &catalog.video[0];
        assert_eq!(&video.description[..], [0x01, 0xab, 0xff]);
        assert_eq!(video.bitrate, None);
        assert!(catalog.audio.is_empty());
        assert_eq!(
            catalog.to_json(),
            r#"{"video":[{"track":{"name":"v","priority":-1},"codec":"avc1.42c01e","description":"01abff","resolution":{"width":2,"height":4}}]}"#
        );
        assert_eq!(Catalog::from_json(b"{}").unwrap(), Catalog::default());
        assert_eq!(Catalog::default().to_json(), "{}");
    }

    #[test]
    fn bad_json_is_an_error() {
        for json in [
            &b"{"[..],
            br#"{"video":[{"track":{"name":"v","priority":1},"codec":"vp8","description":"abc","resolution":{"width":1,"height":1}}]}"#,
            br#"{"audio":[{"track":{"name":"a","priority":1},"codec":"opus","sample_rate":96000,"channel_count":2}]}"#,
            br#"{"audio":[{"track":{"name":"a","priority":1},"codec":"opus","channel_count":2}]}"#,
            b"\xff",
        ] {
            assert!(matches!(Catalog::from_json(json), Err(Error::Catalog(_))));
        }
    }
}
