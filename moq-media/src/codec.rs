//! Codec strings: the catalog's `codec` field, parsed into its parts and printed back.
//!
//! The strings are the ones WebCodecs and MSE take (RFC 6381 style), printed exactly as
//! moq-karp 0.10 prints them so that its parser accepts ours. Parsing is lenient (hex in
//! either case) and never fails: a string that is not one of the known forms is kept
//! verbatim as [`VideoCodec::Other`] / [`AudioCodec::Other`], as moq-karp 0.10 does.

use std::fmt;
use std::str::FromStr;

/// The codec of a video rendition.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 / AVC: `avc1.PPCCLL`.
    H264(H264),
    /// H.265 / HEVC: `hev1.…` in the ISO/IEC 14496-15 form.
    H265(H265),
    /// VP8: `vp8`.
    Vp8,
    /// VP9: `vp09.PP.LL.DD[.CC.cp.tc.mc.FF]`.
    Vp9(Vp9),
    /// AV1: `av01.P.LLT.DD[.M.CCC.cp.tc.mc.F]`.
    Av1(Av1),
    /// Any other string, kept as it was.
    Other(String),
}

/// The codec of an audio rendition.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// MPEG-4 AAC: `mp4a.40.<audio object type>`.
    Aac(Aac),
    /// Opus: `opus`.
    Opus,
    /// Any other string, kept as it was.
    Other(String),
}

/// H.264 parameters from the decoder configuration (`avcC`): profile, constraint flags and
/// level, each one byte. Printed `avc1.` and six lowercase hex digits.
///
/// ```
/// use moq_media::H264;
///
/// let h264 = H264 { profile: 0x64, constraints: 0x00, level: 0x1f };
/// assert_eq!(h264.to_string(), "avc1.64001f");
/// assert_eq!("avc1.64001F".parse::<H264>().unwrap(), h264);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct H264 {
    /// `AVCProfileIndication` (66 baseline, 77 main, 100 high, ...).
    pub profile: u8,
    /// The `profile_compatibility` byte (constraint_set flags).
    pub constraints: u8,
    /// `AVCLevelIndication` (level times ten: 31 is level 3.1).
    pub level: u8,
}

/// H.265 parameters from the decoder configuration (`hvcC`).
///
/// Printed as ISO/IEC 14496-15 Annex E describes, always with the `hev1` prefix: moq-karp
/// 0.10 fails to parse a whole catalog that holds a `hvc1.` string, and a stream whose
/// parameter sets are all in the sample entry (`hvc1`) is also a valid `hev1` stream.
///
/// ```
/// use moq_media::H265;
///
/// let main = H265 {
///     profile_space: 0,
///     profile_idc: 1,
///     compatibility: 0x6000_0000,
///     high_tier: false,
///     level_idc: 93,
///     constraints: [0xb0, 0, 0, 0, 0, 0],
/// };
/// assert_eq!(main.to_string(), "hev1.1.6.L93.B0");
/// assert_eq!("hev1.1.6.L93.B0".parse::<H265>().unwrap(), main);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct H265 {
    /// `general_profile_space` (0 to 3; printed as nothing, `A`, `B` or `C`).
    pub profile_space: u8,
    /// `general_profile_idc`.
    pub profile_idc: u8,
    /// `general_profile_compatibility_flags` as stored (flag 0 is the most significant bit).
    pub compatibility: u32,
    /// `general_tier_flag`: true for the High tier.
    pub high_tier: bool,
    /// `general_level_idc` (level times thirty).
    pub level_idc: u8,
    /// The six bytes of `general_constraint_indicator_flags`.
    pub constraints: [u8; 6],
}

/// VP9 parameters (the `vpcC` fields). The short form `vp09.PP.LL.DD` is printed when the
/// other fields have their default values (4:2:0 colocated, BT.709, limited range).
///
/// ```
/// use moq_media::Vp9;
///
/// let vp9 = Vp9 { profile: 0, level: 10, bit_depth: 8, ..Vp9::default() };
/// assert_eq!(vp9.to_string(), "vp09.00.10.08");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Vp9 {
    /// Profile, 0 to 3.
    pub profile: u8,
    /// Level (times ten).
    pub level: u8,
    /// Bits per sample: 8, 10 or 12.
    pub bit_depth: u8,
    /// Chroma subsampling (0 4:2:0 vertical, 1 4:2:0 colocated, 2 4:2:2, 3 4:4:4).
    pub chroma_subsampling: u8,
    /// Colour primaries (ISO/IEC 23091-4).
    pub color_primaries: u8,
    /// Transfer characteristics (ISO/IEC 23091-4).
    pub transfer_characteristics: u8,
    /// Matrix coefficients (ISO/IEC 23091-4).
    pub matrix_coefficients: u8,
    /// Full-range samples.
    pub full_range: bool,
}

impl Default for Vp9 {
    /// Profile, level and depth 0; the rest at the values the short codec string implies.
    fn default() -> Self {
        Self {
            profile: 0,
            level: 0,
            bit_depth: 0,
            chroma_subsampling: 1,
            color_primaries: 1,
            transfer_characteristics: 1,
            matrix_coefficients: 1,
            full_range: false,
        }
    }
}

/// AV1 parameters (from `av1C` and `colr`). The short form `av01.P.LLT.DD` is printed when
/// the other fields have their default values (not monochrome, 4:2:0, BT.709, limited
/// range).
///
/// ```
/// use moq_media::Av1;
///
/// let av1 = Av1 { profile: 0, level: 4, tier: 'M', bit_depth: 8, ..Av1::default() };
/// assert_eq!(av1.to_string(), "av01.0.04M.08");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Av1 {
    /// `seq_profile`, 0 to 2. moq-karp 0.10 parses only 0 and 1.
    pub profile: u8,
    /// `seq_level_idx_0`.
    pub level: u8,
    /// `M` (Main) or `H` (High).
    pub tier: char,
    /// Bits per sample: 8, 10 or 12.
    pub bit_depth: u8,
    /// Monochrome.
    pub monochrome: bool,
    /// Three digits: subsampling x, subsampling y, chroma sample position (`110` is 4:2:0).
    pub chroma_subsampling: u8,
    /// Colour primaries (ISO/IEC 23091-4).
    pub color_primaries: u8,
    /// Transfer characteristics (ISO/IEC 23091-4).
    pub transfer_characteristics: u8,
    /// Matrix coefficients (ISO/IEC 23091-4).
    pub matrix_coefficients: u8,
    /// Full-range samples.
    pub full_range: bool,
}

impl Default for Av1 {
    /// Profile and level 0, Main tier, 8 bits; the rest at the values the short codec
    /// string implies.
    fn default() -> Self {
        Self {
            profile: 0,
            level: 0,
            tier: 'M',
            bit_depth: 8,
            monochrome: false,
            chroma_subsampling: 110,
            color_primaries: 1,
            transfer_characteristics: 1,
            matrix_coefficients: 1,
            full_range: false,
        }
    }
}

/// MPEG-4 AAC: the audio object type from the AudioSpecificConfig (2 is AAC-LC).
///
/// ```
/// use moq_media::Aac;
///
/// assert_eq!(Aac { profile: 2 }.to_string(), "mp4a.40.2");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Aac {
    /// The MPEG-4 audio object type.
    pub profile: u8,
}

/// Why a codec string did not parse as the form asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {form} codec string: {string:?}")]
pub struct CodecStringError {
    form: &'static str,
    string: String,
}

impl CodecStringError {
    fn new(form: &'static str, string: &str) -> Self {
        Self {
            form,
            string: string.to_owned(),
        }
    }
}

impl fmt::Display for H264 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.constraints, self.level
        )
    }
}

impl FromStr for H264 {
    type Err = CodecStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CodecStringError::new("H.264", s);
        let hex = s.strip_prefix("avc1.").ok_or_else(err)?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err());
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| err());
        Ok(Self {
            profile: byte(0)?,
            constraints: byte(2)?,
            level: byte(4)?,
        })
    }
}

impl fmt::Display for H265 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let space = match self.profile_space {
            0 => "",
            1 => "A",
            2 => "B",
            _ => "C",
        };
        // Annex E: the compatibility flags in reverse bit order, hex without leading zeros.
        write!(
            f,
            "hev1.{space}{}.{:X}.{}{}",
            self.profile_idc,
            self.compatibility.reverse_bits(),
            if self.high_tier { 'H' } else { 'L' },
            self.level_idc
        )?;
        // Annex E: the constraint bytes, trailing zero bytes left out.
        let used = self
            .constraints
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        for byte in &self.constraints[..used] {
            write!(f, ".{byte:X}")?;
        }
        Ok(())
    }
}

impl FromStr for H265 {
    type Err = CodecStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CodecStringError::new("H.265", s);
        let mut parts = s.strip_prefix("hev1.").ok_or_else(err)?.split('.');
        let profile = parts.next().ok_or_else(err)?;
        let (profile_space, profile) = match profile.as_bytes().first() {
            Some(b'A' | b'a') => (1, &profile[1..]),
            Some(b'B' | b'b') => (2, &profile[1..]),
            Some(b'C' | b'c') => (3, &profile[1..]),
            _ => (0, profile),
        };
        let profile_idc = decimal(profile).ok_or_else(err)?;
        let compatibility = parts.next().ok_or_else(err)?;
        if compatibility.is_empty() || compatibility.len() > 8 {
            return Err(err());
        }
        let compatibility = u32::from_str_radix(compatibility, 16)
            .map_err(|_| err())?
            .reverse_bits();
        let tier_level = parts.next().ok_or_else(err)?;
        let high_tier = match tier_level.as_bytes().first() {
            Some(b'L' | b'l') => false,
            Some(b'H' | b'h') => true,
            _ => return Err(err()),
        };
        let level_idc = decimal(&tier_level[1..]).ok_or_else(err)?;
        let mut constraints = [0u8; 6];
        for slot in &mut constraints {
            match parts.next() {
                Some(hex) if (1..=2).contains(&hex.len()) => {
                    *slot = u8::from_str_radix(hex, 16).map_err(|_| err())?;
                }
                Some(_) => return Err(err()),
                None => break,
            }
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Self {
            profile_space,
            profile_idc,
            compatibility,
            high_tier,
            level_idc,
            constraints,
        })
    }
}

impl fmt::Display for Vp9 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vp09.{:02}.{:02}.{:02}",
            self.profile, self.level, self.bit_depth
        )?;
        let short = Self {
            profile: self.profile,
            level: self.level,
            bit_depth: self.bit_depth,
            ..Self::default()
        };
        if *self != short {
            write!(
                f,
                ".{:02}.{:02}.{:02}.{:02}.{:02}",
                self.chroma_subsampling,
                self.color_primaries,
                self.transfer_characteristics,
                self.matrix_coefficients,
                u8::from(self.full_range)
            )?;
        }
        Ok(())
    }
}

impl FromStr for Vp9 {
    type Err = CodecStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CodecStringError::new("VP9", s);
        let parts: Vec<u8> = s
            .strip_prefix("vp09.")
            .ok_or_else(err)?
            .split('.')
            .map(decimal)
            .collect::<Option<_>>()
            .ok_or_else(err)?;
        let mut vp9 = match parts[..] {
            [profile, level, bit_depth] | [profile, level, bit_depth, ..] => Self {
                profile,
                level,
                bit_depth,
                ..Self::default()
            },
            _ => return Err(err()),
        };
        match parts[3..] {
            [] => {}
            [chroma, primaries, transfer, matrix, full_range @ (0 | 1)] => {
                vp9.chroma_subsampling = chroma;
                vp9.color_primaries = primaries;
                vp9.transfer_characteristics = transfer;
                vp9.matrix_coefficients = matrix;
                vp9.full_range = full_range == 1;
            }
            _ => return Err(err()),
        }
        Ok(vp9)
    }
}

impl fmt::Display for Av1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "av01.{}.{:02}{}.{:02}",
            self.profile, self.level, self.tier, self.bit_depth
        )?;
        let short = Self {
            profile: self.profile,
            level: self.level,
            tier: self.tier,
            bit_depth: self.bit_depth,
            ..Self::default()
        };
        if *self != short {
            write!(
                f,
                ".{}.{:03}.{:02}.{:02}.{:02}.{}",
                u8::from(self.monochrome),
                self.chroma_subsampling,
                self.color_primaries,
                self.transfer_characteristics,
                self.matrix_coefficients,
                u8::from(self.full_range)
            )?;
        }
        Ok(())
    }
}

impl FromStr for Av1 {
    type Err = CodecStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CodecStringError::new("AV1", s);
        let parts: Vec<&str> = s
            .strip_prefix("av01.")
            .ok_or_else(err)?
            .split('.')
            .collect();
        if parts.len() != 3 && parts.len() != 9 {
            return Err(err());
        }
        let number = |part: &str, digits: usize| {
            (part.len() == digits)
                .then(|| decimal(part))
                .flatten()
                .ok_or_else(err)
        };
        let flag = |part: &str| match part {
            "0" => Ok(false),
            "1" => Ok(true),
            _ => Err(err()),
        };
        let level_tier = parts[1];
        if level_tier.len() != 3 || !level_tier.is_char_boundary(2) {
            return Err(err());
        }
        let tier = match &level_tier[2..] {
            "M" => 'M',
            "H" => 'H',
            _ => return Err(err()),
        };
        let mut av1 = Self {
            profile: number(parts[0], 1)?,
            level: number(&level_tier[..2], 2)?,
            tier,
            bit_depth: number(parts[2], 2)?,
            ..Self::default()
        };
        if parts.len() == 9 {
            av1.monochrome = flag(parts[3])?;
            av1.chroma_subsampling = number(parts[4], 3)?;
            av1.color_primaries = number(parts[5], 2)?;
            av1.transfer_characteristics = number(parts[6], 2)?;
            av1.matrix_coefficients = number(parts[7], 2)?;
            av1.full_range = flag(parts[8])?;
        }
        Ok(av1)
    }
}

impl fmt::Display for Aac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mp4a.40.{}", self.profile)
    }
}

impl FromStr for Aac {
    type Err = CodecStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let profile = s
            .strip_prefix("mp4a.40.")
            .and_then(decimal)
            .ok_or_else(|| CodecStringError::new("AAC", s))?;
        Ok(Self { profile })
    }
}

/// A decimal `u8` of one to three ASCII digits (no sign, unlike `u8::from_str`).
fn decimal(s: &str) -> Option<u8> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::H264(codec) => codec.fmt(f),
            Self::H265(codec) => codec.fmt(f),
            Self::Vp8 => f.write_str("vp8"),
            Self::Vp9(codec) => codec.fmt(f),
            Self::Av1(codec) => codec.fmt(f),
            Self::Other(string) => f.write_str(string),
        }
    }
}

impl From<&str> for VideoCodec {
    /// Parses by prefix; anything not in a known form is [`VideoCodec::Other`].
    fn from(s: &str) -> Self {
        let parsed = if s.starts_with("avc1.") {
            s.parse().map(Self::H264).ok()
        } else if s.starts_with("hev1.") {
            s.parse().map(Self::H265).ok()
        } else if s == "vp8" {
            Some(Self::Vp8)
        } else if s.starts_with("vp09.") {
            s.parse().map(Self::Vp9).ok()
        } else if s.starts_with("av01.") {
            s.parse().map(Self::Av1).ok()
        } else {
            None
        };
        parsed.unwrap_or_else(|| Self::Other(s.to_owned()))
    }
}

impl FromStr for VideoCodec {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(s.into())
    }
}

impl fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Aac(codec) => codec.fmt(f),
            Self::Opus => f.write_str("opus"),
            Self::Other(string) => f.write_str(string),
        }
    }
}

impl From<&str> for AudioCodec {
    /// Parses by prefix; anything not in a known form is [`AudioCodec::Other`].
    fn from(s: &str) -> Self {
        if s == "opus" {
            return Self::Opus;
        }
        match s.parse() {
            Ok(aac) if s.starts_with("mp4a.40.") => Self::Aac(aac),
            _ => Self::Other(s.to_owned()),
        }
    }
}

impl FromStr for AudioCodec {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(s.into())
    }
}

impl From<H264> for VideoCodec {
    fn from(codec: H264) -> Self {
        Self::H264(codec)
    }
}

impl From<H265> for VideoCodec {
    fn from(codec: H265) -> Self {
        Self::H265(codec)
    }
}

impl From<Vp9> for VideoCodec {
    fn from(codec: Vp9) -> Self {
        Self::Vp9(codec)
    }
}

impl From<Av1> for VideoCodec {
    fn from(codec: Av1) -> Self {
        Self::Av1(codec)
    }
}

impl From<Aac> for AudioCodec {
    fn from(codec: Aac) -> Self {
        Self::Aac(codec)
    }
}

/// The codec fields are JSON strings.
mod serde_string {
    use super::{AudioCodec, VideoCodec};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    impl Serialize for VideoCodec {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_str(self)
        }
    }

    impl<'de> Deserialize<'de> for VideoCodec {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
            Ok(Self::from(&*s))
        }
    }

    impl Serialize for AudioCodec {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_str(self)
        }
    }

    impl<'de> Deserialize<'de> for AudioCodec {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
            Ok(Self::from(&*s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_moq_karp_writes_parse_and_print_back() {
        // Examples from moq-karp 0.10's own tests of its codec strings.
        for s in [
            "avc1.42c01e",
            "vp09.02.10.10.01.09.16.09.01",
            "vp09.00.41.08",
            "av01.0.04M.10.0.112.09.16.09.0",
            "av01.0.01M.08",
            "mp4a.40.2",
            "opus",
            "vp8",
        ] {
            let video = VideoCodec::from(s);
            let audio = AudioCodec::from(s);
            assert!(
                !matches!(video, VideoCodec::Other(_)) || !matches!(audio, AudioCodec::Other(_)),
                "{s} parsed as neither"
            );
            assert_eq!(video.to_string(), s);
            assert_eq!(audio.to_string(), s);
        }
    }

    #[test]
    fn hevc_strings() {
        let main10 = "hev1.2.4.L120.B0";
        let codec: H265 = main10.parse().unwrap();
        assert_eq!(codec.profile_idc, 2);
        assert_eq!(codec.compatibility, 0x2000_0000);
        assert_eq!(codec.to_string(), main10);
        let spaced = "hev1.A4.10.H153.90.1.2";
        assert_eq!(spaced.parse::<H265>().unwrap().to_string(), spaced);
        // moq-karp 0.10's own (non-standard) form stays verbatim.
        assert_eq!(
            VideoCodec::from("hev1.42c01e"),
            VideoCodec::Other("hev1.42c01e".into())
        );
        assert_eq!(
            VideoCodec::from("hvc1.1.6.L93.B0"),
            VideoCodec::Other("hvc1.1.6.L93.B0".into())
        );
    }

    #[test]
    fn malformed_strings_are_kept_verbatim() {
        for s in [
            "avc1.64001",
            "avc1.6400zz",
            "avc1.+6400f",
            "vp09.00.10",
            "vp09.00.10.08.01",
            "vp09.00.10.08.01.01.01.01.02",
            "av01.3.04M.08x",
            "av01.0.04Q.08",
            "av01.0.04M.08.0.110.01.01.01",
            "hev1.1.6.X93",
            "hev1.1.123456789.L93",
            "",
            "avc1.é4001f",
        ] {
            assert_eq!(VideoCodec::from(s), VideoCodec::Other(s.into()), "{s}");
        }
        for s in ["mp4a.40.", "mp4a.40.-1", "mp4a.40.256", "mp4a.6B", "flac"] {
            assert_eq!(AudioCodec::from(s), AudioCodec::Other(s.into()), "{s}");
        }
    }
}
