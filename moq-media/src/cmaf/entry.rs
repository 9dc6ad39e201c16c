//! Between MP4 sample entries (`avc1`, `mp4a`, ...) and catalog renditions.

use bytes::Bytes;
use mp4_atom::{Atom, Codec, Encode, Trak};

use super::{ExportError, ImportError};
use crate::{
    Aac, Audio, AudioCodec, Av1, Dimensions, H264, H265, TrackInfo, Video, VideoCodec, Vp9,
};

/// moq-karp 0.10's video priority (above audio's).
pub(crate) const VIDEO_PRIORITY: i8 = 2;
/// moq-karp 0.10's audio priority.
pub(crate) const AUDIO_PRIORITY: i8 = 1;

/// A rendition read from an MP4 track.
#[derive(Debug)]
pub(crate) enum Rendition {
    Video(Video),
    Audio(Audio),
}

/// The rendition of `trak`, named as moq-karp 0.10 names it (`video<id>`, `audio<id>`);
/// `None` for a track that is neither video nor audio (subtitles, metadata), which is left
/// out.
pub(crate) fn rendition(trak: &Trak) -> Result<Option<Rendition>, ImportError> {
    let track = trak.tkhd.track_id;
    let handler: [u8; 4] = trak.mdia.hdlr.handler.into();
    let entry = trak.mdia.minf.stbl.stsd.codecs.first();
    match &handler {
        b"vide" => {
            let entry = entry.ok_or(ImportError::UnsupportedTrack {
                track,
                reason: "a video track without a sample entry",
            })?;
            video(track, entry).map(|video| Some(Rendition::Video(video)))
        }
        b"soun" => {
            let entry = entry.ok_or(ImportError::UnsupportedTrack {
                track,
                reason: "an audio track without a sample entry",
            })?;
            audio(track, entry).map(|audio| Some(Rendition::Audio(audio)))
        }
        _ => Ok(None),
    }
}

/// The body of a box (without its header), as the catalog's `description` holds it.
fn body<T: Atom>(atom: &T, track: u32) -> Result<Bytes, ImportError> {
    let mut buf = Vec::new();
    atom.encode_body(&mut buf)
        .map_err(|_| ImportError::UnsupportedTrack {
            track,
            reason: "the decoder configuration does not re-encode",
        })?;
    Ok(buf.into())
}

/// The four characters of a sample entry's type, for error messages.
fn entry_type(entry: &Codec) -> String {
    if let Codec::Unknown(kind, _) = entry {
        return super::BoxType::from(*kind).to_string();
    }
    let mut buf = Vec::new();
    match entry.encode(&mut buf) {
        Ok(()) if buf.len() >= 8 => super::BoxType([buf[4], buf[5], buf[6], buf[7]]).to_string(),
        _ => "unknown".to_owned(),
    }
}

fn video(track: u32, entry: &Codec) -> Result<Video, ImportError> {
    let (codec, description, visual, btrt) = match entry {
        Codec::Avc1(avc) => (
            h264(&avc.avcc),
            body(&avc.avcc, track)?,
            &avc.visual,
            &avc.btrt,
        ),
        // An avc3 stream may repeat its parameter sets in band; with the avcC as the
        // description it decodes as avc1 does.
        Codec::Avc3(avc) => (
            h264(&avc.avcc),
            body(&avc.avcc, track)?,
            &avc.visual,
            &avc.btrt,
        ),
        Codec::Hev1(hevc) => (
            h265(&hevc.hvcc),
            body(&hevc.hvcc, track)?,
            &hevc.visual,
            &hevc.btrt,
        ),
        Codec::Hvc1(hevc) => (
            h265(&hevc.hvcc),
            body(&hevc.hvcc, track)?,
            &hevc.visual,
            &hevc.btrt,
        ),
        Codec::Vp08(vp8) => (VideoCodec::Vp8, Bytes::new(), &vp8.visual, &vp8.btrt),
        Codec::Vp09(vp9) => {
            let config = &vp9.vpcc;
            let codec = Vp9 {
                profile: config.profile,
                level: config.level,
                bit_depth: config.bit_depth,
                chroma_subsampling: config.chroma_subsampling,
                color_primaries: config.color_primaries,
                transfer_characteristics: config.transfer_characteristics,
                matrix_coefficients: config.matrix_coefficients,
                full_range: config.video_full_range_flag,
            };
            // moq-karp 0.10 sends no description for VP9: the codec string says it all.
            (codec.into(), Bytes::new(), &vp9.visual, &vp9.btrt)
        }
        Codec::Av01(av1) => (
            av1_codec(&av1.av1c, av1.colr.as_ref()),
            body(&av1.av1c, track)?,
            &av1.visual,
            &av1.btrt,
        ),
        other => {
            return Err(ImportError::UnsupportedCodec {
                track,
                codec: entry_type(other),
            });
        }
    };
    let bitrate = btrt.as_ref().and_then(|btrt| {
        Some(btrt.avg_bitrate)
            .filter(|&rate| rate > 0)
            .or(Some(btrt.max_bitrate).filter(|&rate| rate > 0))
    });
    Ok(Video {
        track: TrackInfo {
            name: format!("video{track}"),
            priority: VIDEO_PRIORITY,
        },
        codec,
        description,
        resolution: Dimensions {
            width: visual.width,
            height: visual.height,
        },
        bitrate,
    })
}

fn h264(avcc: &mp4_atom::Avcc) -> VideoCodec {
    H264 {
        profile: avcc.avc_profile_indication,
        constraints: avcc.profile_compatibility,
        level: avcc.avc_level_indication,
    }
    .into()
}

fn h265(hvcc: &mp4_atom::Hvcc) -> VideoCodec {
    H265 {
        profile_space: hvcc.general_profile_space & 3,
        profile_idc: hvcc.general_profile_idc,
        compatibility: u32::from_be_bytes(hvcc.general_profile_compatibility_flags),
        high_tier: hvcc.general_tier_flag,
        level_idc: hvcc.general_level_idc,
        constraints: hvcc.general_constraint_indicator_flags,
    }
    .into()
}

fn av1_codec(config: &mp4_atom::Av1c, colr: Option<&mp4_atom::Colr>) -> VideoCodec {
    let bit_depth = match (config.high_bitdepth, config.twelve_bit) {
        (false, _) => 8,
        (true, false) => 10,
        (true, true) => 12,
    };
    let (x, y) = (
        u8::from(config.chroma_subsampling_x),
        u8::from(config.chroma_subsampling_y),
    );
    // The codec string's three digits: subsampling x, y, and the sample position (only
    // meaningful for 4:2:0).
    let position = if x == 1 && y == 1 {
        config.chroma_sample_position & 3
    } else {
        0
    };
    let mut codec = Av1 {
        profile: config.seq_profile,
        level: config.seq_level_idx_0,
        tier: if config.seq_tier_0 { 'H' } else { 'M' },
        bit_depth,
        monochrome: config.monochrome,
        chroma_subsampling: x * 100 + y * 10 + position,
        ..Av1::default()
    };
    if let Some(mp4_atom::Colr::Nclx {
        colour_primaries,
        transfer_characteristics,
        matrix_coefficients,
        full_range_flag,
    }) = colr
    {
        // Values past 255 are not in ISO/IEC 23091-4; keep the defaults for them.
        let narrow = |value: u16, default: u8| u8::try_from(value).unwrap_or(default);
        codec.color_primaries = narrow(*colour_primaries, codec.color_primaries);
        codec.transfer_characteristics =
            narrow(*transfer_characteristics, codec.transfer_characteristics);
        codec.matrix_coefficients = narrow(*matrix_coefficients, codec.matrix_coefficients);
        codec.full_range = *full_range_flag;
    }
    codec.into()
}

fn audio(track: u32, entry: &Codec) -> Result<Audio, ImportError> {
    let (codec, fields, bitrate) = match entry {
        Codec::Mp4a(mp4a) => {
            let config = &mp4a.esds.es_desc.dec_config;
            // 0x40: MPEG-4 audio (ISO/IEC 14496-1 object type indication); the audio object
            // type is in the AudioSpecificConfig.
            if config.object_type_indication != 0x40 {
                return Err(ImportError::UnsupportedCodec {
                    track,
                    codec: format!("mp4a.{:02X}", config.object_type_indication),
                });
            }
            let specific = config
                .dec_specific
                .as_ref()
                .ok_or(ImportError::UnsupportedTrack {
                    track,
                    reason: "an AAC track without an AudioSpecificConfig",
                })?;
            let bitrate = Some(config.avg_bitrate.max(config.max_bitrate)).filter(|&rate| rate > 0);
            let codec = AudioCodec::Aac(Aac {
                profile: specific.profile,
            });
            (codec, &mp4a.audio, bitrate)
        }
        Codec::Opus(opus) => (AudioCodec::Opus, &opus.audio, None),
        other => {
            return Err(ImportError::UnsupportedCodec {
                track,
                codec: entry_type(other),
            });
        }
    };
    // The sample entry's rate is 16.16 fixed point; a rate that needs more than 16 bits is
    // not in it, and a moq-karp 0.10 catalog could not hold it either.
    let sample_rate = fields.sample_rate.integer();
    if sample_rate == 0 {
        return Err(ImportError::UnsupportedTrack {
            track,
            reason: "an audio sample rate of zero",
        });
    }
    let channel_count = match entry {
        Codec::Opus(opus) => u16::from(opus.dops.output_channel_count),
        // The AudioSpecificConfig's channel configuration (ISO/IEC 14496-3 table 1.19)
        // over the sample entry's count, which ffmpeg sets to 2 even for mono AAC (moq-karp
        // 0.10 takes the sample entry's).
        Codec::Mp4a(mp4a) => match mp4a.esds.es_desc.dec_config.dec_specific.as_ref() {
            Some(specific) if (1..=6).contains(&specific.chan_conf) => {
                u16::from(specific.chan_conf)
            }
            Some(specific) if specific.chan_conf == 7 => 8,
            _ => fields.channel_count,
        },
        _ => fields.channel_count,
    };
    Ok(Audio {
        track: TrackInfo {
            name: format!("audio{track}"),
            priority: AUDIO_PRIORITY,
        },
        codec,
        sample_rate,
        channel_count,
        bitrate,
    })
}

/// The sample entry for a video rendition.
pub(crate) fn video_entry(video: &Video) -> Result<Codec, ExportError> {
    let track = &video.track.name;
    let unsupported = || ExportError::UnsupportedCodec {
        track: track.clone(),
        codec: video.codec.to_string(),
    };
    let bad = |reason: String| ExportError::Description {
        track: track.clone(),
        reason,
    };
    let visual = mp4_atom::Visual {
        data_reference_index: 1,
        width: video.resolution.width,
        height: video.resolution.height,
        ..Default::default()
    };
    let btrt = video.bitrate.map(|rate| mp4_atom::Btrt {
        buffer_size_db: 0,
        max_bitrate: rate,
        avg_bitrate: rate,
    });
    Ok(match &video.codec {
        VideoCodec::H264(_) => {
            let avcc = decode_body::<mp4_atom::Avcc>(&video.description).map_err(bad)?;
            mp4_atom::Avc1 {
                visual,
                avcc,
                btrt,
                ..Default::default()
            }
            .into()
        }
        // hev1 (not hvc1): the catalog's string says hev1, and hvc1 streams are valid hev1.
        VideoCodec::H265(_) => {
            let hvcc = decode_body::<mp4_atom::Hvcc>(&video.description).map_err(bad)?;
            mp4_atom::Hev1 {
                visual,
                hvcc,
                btrt,
                ..Default::default()
            }
            .into()
        }
        VideoCodec::Vp8 => mp4_atom::Vp08 {
            visual,
            vpcc: mp4_atom::VpcC {
                profile: 0,
                level: 0,
                bit_depth: 8,
                chroma_subsampling: 1,
                video_full_range_flag: false,
                color_primaries: 1,
                transfer_characteristics: 1,
                matrix_coefficients: 1,
                codec_initialization_data: Vec::new(),
            },
            btrt,
            ..Default::default()
        }
        .into(),
        VideoCodec::Vp9(vp9) => mp4_atom::Vp09 {
            visual,
            vpcc: mp4_atom::VpcC {
                profile: vp9.profile,
                level: vp9.level,
                bit_depth: vp9.bit_depth,
                chroma_subsampling: vp9.chroma_subsampling,
                video_full_range_flag: vp9.full_range,
                color_primaries: vp9.color_primaries,
                transfer_characteristics: vp9.transfer_characteristics,
                matrix_coefficients: vp9.matrix_coefficients,
                codec_initialization_data: Vec::new(),
            },
            btrt,
            ..Default::default()
        }
        .into(),
        VideoCodec::Av1(av1) => {
            let av1c = if video.description.is_empty() {
                av1c_from_codec(av1).ok_or_else(unsupported)?
            } else {
                decode_body::<mp4_atom::Av1c>(&video.description).map_err(bad)?
            };
            mp4_atom::Av01 {
                visual,
                av1c,
                btrt,
                ..Default::default()
            }
            .into()
        }
        _ => return Err(unsupported()),
    })
}

/// An `av1C` with no configuration OBUs, from the codec string's fields.
fn av1c_from_codec(av1: &Av1) -> Option<mp4_atom::Av1c> {
    let (high_bitdepth, twelve_bit) = match av1.bit_depth {
        8 => (false, false),
        10 => (true, false),
        12 => (true, true),
        _ => return None,
    };
    let digits = av1.chroma_subsampling;
    Some(mp4_atom::Av1c {
        seq_profile: av1.profile,
        seq_level_idx_0: av1.level,
        seq_tier_0: av1.tier == 'H',
        high_bitdepth,
        twelve_bit,
        monochrome: av1.monochrome,
        chroma_subsampling_x: digits / 100 == 1,
        chroma_subsampling_y: digits / 10 % 10 == 1,
        chroma_sample_position: digits % 10,
        initial_presentation_delay: None,
        config_obus: Vec::new(),
    })
}

/// Decodes a box body that the catalog holds without its header.
fn decode_body<T: Atom>(body: &[u8]) -> Result<T, String> {
    if body.is_empty() {
        return Err("missing".to_owned());
    }
    let mut buf = body;
    let atom = T::decode_body(&mut buf).map_err(|err| err.to_string())?;
    if !buf.is_empty() {
        return Err(format!("{} bytes left over", buf.len()));
    }
    Ok(atom)
}

/// The MPEG-4 audio sampling frequency index of `rate` (ISO/IEC 14496-3 table 1.18).
fn frequency_index(rate: u16) -> Option<u8> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    RATES
        .iter()
        .position(|&r| r == u32::from(rate))
        .map(|index| index as u8)
}

/// The sample entry for an audio rendition.
pub(crate) fn audio_entry(audio: &Audio, track_id: u32) -> Result<Codec, ExportError> {
    let track = &audio.track.name;
    let unsupported = || ExportError::UnsupportedCodec {
        track: track.clone(),
        codec: audio.codec.to_string(),
    };
    let fields = mp4_atom::Audio {
        data_reference_index: 1,
        channel_count: audio.channel_count,
        sample_size: 16,
        sample_rate: audio.sample_rate.into(),
    };
    Ok(match &audio.codec {
        AudioCodec::Aac(aac) => {
            // A two-byte AudioSpecificConfig: object type (5 bits, so below 31), frequency
            // index (4 bits), channel configuration (4 bits).
            let frequency = frequency_index(audio.sample_rate).ok_or_else(unsupported)?;
            let channels = u8::try_from(audio.channel_count)
                .ok()
                .filter(|&count| (1..=7).contains(&count))
                .ok_or_else(unsupported)?;
            if aac.profile == 0 || aac.profile >= 31 {
                return Err(unsupported());
            }
            let config = [
                (aac.profile << 3) | (frequency >> 1),
                ((frequency & 1) << 7) | (channels << 3),
            ];
            let bitrate = audio.bitrate.unwrap_or(0);
            mp4_atom::Mp4a {
                audio: fields,
                esds: mp4_atom::Esds {
                    es_desc: mp4_atom::esds::EsDescriptor {
                        es_id: u16::try_from(track_id).unwrap_or(0),
                        dec_config: mp4_atom::esds::DecoderConfig {
                            object_type_indication: 0x40,
                            // 5: audio stream (ISO/IEC 14496-1 table 6).
                            stream_type: 5,
                            max_bitrate: bitrate,
                            avg_bitrate: bitrate,
                            dec_specific: Some(mp4_atom::esds::DecoderSpecific {
                                profile: aac.profile,
                                freq_index: frequency,
                                chan_conf: channels,
                                raw: config.to_vec(),
                            }),
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                },
                btrt: None,
                taic: None,
            }
            .into()
        }
        AudioCodec::Opus => {
            // Channel mapping family 0 covers mono and stereo only.
            let channels = u8::try_from(audio.channel_count)
                .ok()
                .filter(|&count| (1..=2).contains(&count))
                .ok_or_else(unsupported)?;
            mp4_atom::Opus {
                audio: fields,
                dops: mp4_atom::Dops {
                    output_channel_count: channels,
                    // The catalog does not carry the encoder's pre-skip; zero plays the
                    // priming samples instead of dropping them.
                    pre_skip: 0,
                    input_sample_rate: u32::from(audio.sample_rate),
                    output_gain: 0,
                    channel_mapping: None,
                },
                btrt: None,
            }
            .into()
        }
        _ => return Err(unsupported()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_indexes() {
        assert_eq!(frequency_index(48000), Some(3));
        assert_eq!(frequency_index(44100), Some(4));
        assert_eq!(frequency_index(7350), Some(12));
        assert_eq!(frequency_index(47999), None);
    }

    #[test]
    fn av1c_from_the_codec_string() {
        let av1: Av1 = "av01.0.04M.10.0.112.09.16.09.0".parse().unwrap();
        let av1c = av1c_from_codec(&av1).unwrap();
        assert!(av1c.high_bitdepth && !av1c.twelve_bit);
        assert!(av1c.chroma_subsampling_x && av1c.chroma_subsampling_y);
        assert_eq!(av1c.chroma_sample_position, 2);
        assert_eq!(
            av1_codec(
                &av1c,
                Some(&mp4_atom::Colr::Nclx {
                    colour_primaries: 9,
                    transfer_characteristics: 16,
                    matrix_coefficients: 9,
                    full_range_flag: false,
                })
            ),
            VideoCodec::Av1(av1)
        );
    }
}
