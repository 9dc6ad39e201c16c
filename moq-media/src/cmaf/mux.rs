//! [`Muxer`]: a catalog and frames in, fragmented MP4 bytes out.

use bytes::{BufMut, Bytes, BytesMut};
use mp4_atom::Encode;

use super::ExportError;
use super::entry::{audio_entry, video_entry};
use crate::{AudioCodec, Catalog, Frame};

/// The video tracks' timescale: microseconds, the unit of frame timestamps, so that times
/// are written exactly. Audio tracks count samples instead (see [`Muxer`]).
const VIDEO_TIMESCALE: u32 = 1_000_000;

/// Sample flags (ISO/IEC 14496-12 §8.8.3.1): a sync sample depends on no other...
const SYNC: u32 = 0x0200_0000;
/// ...a non-sync sample depends on others and is flagged non-sync.
const NON_SYNC: u32 = 0x0101_0000;

#[derive(Debug)]
struct TrackState {
    id: u32,
    /// Units per second.
    timescale: u32,
    /// Audio frames are all sync samples, whatever group they start.
    audio: bool,
    /// The previous sample's decode time, and the duration written for the first sample
    /// (both in the track's units).
    last_dts: Option<u64>,
    last_duration: u32,
}

impl TrackState {
    /// `micros` in the track's units, rounded to the nearest: a time that was rounded down
    /// to microseconds from a sample count (by the import) gets its exact count back.
    fn units(&self, micros: u64) -> u64 {
        let scaled = (u128::from(micros) * u128::from(self.timescale) + 500_000) / 1_000_000;
        u64::try_from(scaled).unwrap_or(u64::MAX)
    }
}

/// Turns a [`Catalog`] into an init segment (`ftyp` + `moov`) and each [`Frame`] into a
/// fragment (`moof` + `mdat` with one sample) that ffmpeg, browsers' MSE and the
/// [`Demuxer`](super::Demuxer) read. Pure: no IO.
///
/// Tracks are numbered 1, 2, ... in [`Catalog::tracks`] order. Video tracks count time in
/// microseconds, as frames do; audio tracks in samples (the timescale is the sample rate),
/// as encoders write them, so that times imported from MP4 and rounded down to microseconds
/// come back to the exact sample. H.264 tracks are `avc1` and H.265 tracks `hev1`, with the
/// catalog's `description` as their `avcC` / `hvcC`; VP9, VP8 and AV1 configurations come
/// from the codec string (AV1's from the `description` when there is one); AAC gets a
/// two-byte AudioSpecificConfig from the codec string, sample rate and channel count, and
/// Opus a `dOps` for mono or stereo with no pre-skip (the catalog does not carry it).
///
/// A frame carries only its presentation time. The decode time written is the
/// presentation time, or just after the previous sample's decode time when frames are
/// reordered (B-frames) or repeated, with the difference as a negative composition offset
/// (up to one second; a larger jump back is taken as the source restarting, and the decode
/// time follows it back). A sample's duration is not known until the next frame arrives, so
/// the duration of the one before is written (the first: 1/30 s for video, one AAC frame or
/// 20 ms for audio); players place samples by their decode times, which are exact.
///
/// ```
/// use moq_media::cmaf::Muxer;
/// use moq_media::{Audio, AudioCodec, Catalog, Frame, Timestamp, TrackInfo};
///
/// let catalog = Catalog {
///     video: vec![],
///     audio: vec![Audio {
///         track: TrackInfo { name: "audio1".into(), priority: 1 },
///         codec: AudioCodec::Opus,
///         sample_rate: 48_000,
///         channel_count: 2,
///         bitrate: None,
///     }],
/// };
/// let mut muxer = Muxer::new(&catalog).unwrap();
/// let init = muxer.init_segment();
/// assert_eq!(&init[4..8], b"ftyp");
/// let frame = Frame { timestamp: Timestamp::ZERO, keyframe: true, payload: "opus".into() };
/// let fragment = muxer.fragment(0, &frame).unwrap();
/// assert_eq!(&fragment[4..8], b"moof");
/// assert!(fragment.ends_with(b"opus"));
/// ```
#[derive(Debug)]
pub struct Muxer {
    init: Bytes,
    tracks: Vec<TrackState>,
    sequence: u32,
}

impl Muxer {
    /// A muxer for the renditions of `catalog`.
    pub fn new(catalog: &Catalog) -> Result<Self, ExportError> {
        if catalog.is_empty() {
            return Err(ExportError::NoTracks);
        }
        let mut traks = Vec::new();
        let mut tracks = Vec::new();
        for (index, video) in catalog.video.iter().enumerate() {
            let id = index as u32 + 1;
            traks.push(trak(
                id,
                video_entry(video)?,
                Some(video.resolution),
                VIDEO_TIMESCALE,
            ));
            tracks.push(TrackState {
                id,
                timescale: VIDEO_TIMESCALE,
                audio: false,
                last_dts: None,
                // 1/30 s.
                last_duration: VIDEO_TIMESCALE / 30,
            });
        }
        for audio in &catalog.audio {
            let id = tracks.len() as u32 + 1;
            let timescale = u32::from(audio.sample_rate.max(1));
            traks.push(trak(id, audio_entry(audio, id)?, None, timescale));
            let frame = match audio.codec {
                AudioCodec::Aac(_) => 1024,
                // 20 ms, Opus's usual frame.
                _ => timescale / 50,
            };
            tracks.push(TrackState {
                id,
                timescale,
                audio: true,
                last_dts: None,
                last_duration: frame,
            });
        }
        let moov = mp4_atom::Moov {
            mvhd: mp4_atom::Mvhd {
                timescale: 1000,
                rate: 1.into(),
                volume: 1.into(),
                next_track_id: tracks.len() as u32 + 1,
                ..Default::default()
            },
            mvex: Some(mp4_atom::Mvex {
                mehd: None,
                trex: tracks
                    .iter()
                    .map(|track| mp4_atom::Trex {
                        track_id: track.id,
                        default_sample_description_index: 1,
                        ..Default::default()
                    })
                    .collect(),
            }),
            trak: traks,
            ..Default::default()
        };
        let ftyp = mp4_atom::Ftyp {
            major_brand: b"iso6".into(),
            minor_version: 512,
            compatible_brands: vec![b"iso6".into(), b"cmfc".into(), b"mp41".into()],
        };
        let mut init = Vec::new();
        ftyp.encode(&mut init)
            .and_then(|()| moov.encode(&mut init))
            .map_err(|err| ExportError::Description {
                track: String::new(),
                reason: err.to_string(),
            })?;
        Ok(Self {
            init: init.into(),
            tracks,
            sequence: 0,
        })
    }

    /// The init segment: `ftyp` and `moov`. Write it once, before the fragments.
    pub fn init_segment(&self) -> Bytes {
        self.init.clone()
    }

    /// The fragment carrying `frame` of the track at `track` (its position in
    /// [`Catalog::tracks`]): a `moof` and an `mdat`.
    pub fn fragment(&mut self, track: usize, frame: &Frame) -> Result<Bytes, ExportError> {
        let state = self
            .tracks
            .get_mut(track)
            .ok_or(ExportError::UnknownTrack(track))?;
        let size = u32::try_from(frame.payload.len())
            .ok()
            .filter(|&size| size <= u32::MAX - 16)
            .ok_or(ExportError::FrameTooLarge(frame.payload.len()))?;
        let pts = state.units(frame.timestamp.as_micros());
        // Up to one second of reordering; further back is a restart.
        let max_reorder = u64::from(state.timescale);
        let dts = match state.last_dts {
            Some(last) if pts <= last && last - pts < max_reorder => last + 1,
            _ => pts,
        };
        if let Some(last) = state.last_dts
            && let Some(delta) = dts.checked_sub(last)
        {
            state.last_duration = u32::try_from(delta).unwrap_or(u32::MAX);
        }
        state.last_dts = Some(dts);
        let flags = if state.audio || frame.keyframe {
            SYNC
        } else {
            NON_SYNC
        };
        // Zero or down to minus one second (at most 2^32 units), so it fits.
        let cts = pts as i64 - dts as i64;
        self.sequence = self.sequence.wrapping_add(1);
        let mut moof = mp4_atom::Moof {
            mfhd: mp4_atom::Mfhd {
                sequence_number: self.sequence,
            },
            traf: vec![mp4_atom::Traf {
                tfhd: mp4_atom::Tfhd {
                    track_id: state.id,
                    default_base_is_moof: true,
                    ..Default::default()
                },
                tfdt: Some(mp4_atom::Tfdt {
                    base_media_decode_time: dts,
                }),
                trun: vec![mp4_atom::Trun {
                    data_offset: Some(0),
                    samples: vec![mp4_atom::TrunEntry {
                        duration: Some(state.last_duration),
                        size: Some(size),
                        flags: Some(flags),
                        cts: (cts != 0).then_some(cts),
                    }]
                    .into(),
                }],
                ..Default::default()
            }],
        };
        // The sample's data starts after the moof and the mdat's header; the offset's
        // width does not depend on its value, so encoding twice gives the same length.
        let mut probe = Vec::new();
        moof.encode(&mut probe)
            .map_err(|_| ExportError::FrameTooLarge(frame.payload.len()))?;
        moof.traf[0].trun[0].data_offset = Some(probe.len() as i32 + 8);
        let mut out = BytesMut::with_capacity(probe.len() + 8 + frame.payload.len());
        let mut writer = Vec::with_capacity(probe.len());
        moof.encode(&mut writer)
            .map_err(|_| ExportError::FrameTooLarge(frame.payload.len()))?;
        out.put_slice(&writer);
        out.put_u32(size + 8);
        out.put_slice(b"mdat");
        out.put_slice(&frame.payload);
        Ok(out.freeze())
    }
}

/// A `trak` with an empty sample table (the samples are in the fragments).
fn trak(
    id: u32,
    entry: mp4_atom::Codec,
    size: Option<crate::Dimensions>,
    timescale: u32,
) -> mp4_atom::Trak {
    let video = size.is_some();
    let size = size.unwrap_or(crate::Dimensions {
        width: 0,
        height: 0,
    });
    mp4_atom::Trak {
        tkhd: mp4_atom::Tkhd {
            track_id: id,
            enabled: true,
            in_movie: true,
            volume: if video { 0.into() } else { 1.into() },
            width: size.width.into(),
            height: size.height.into(),
            ..Default::default()
        },
        mdia: mp4_atom::Mdia {
            mdhd: mp4_atom::Mdhd {
                timescale,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: mp4_atom::Hdlr {
                handler: if video { b"vide" } else { b"soun" }.into(),
                name: if video {
                    "VideoHandler"
                } else {
                    "SoundHandler"
                }
                .into(),
            },
            minf: mp4_atom::Minf {
                vmhd: video.then(mp4_atom::Vmhd::default),
                smhd: (!video).then(mp4_atom::Smhd::default),
                dinf: mp4_atom::Dinf {
                    dref: mp4_atom::Dref {
                        entries: vec![mp4_atom::Url::default().into()],
                    },
                },
                stbl: mp4_atom::Stbl {
                    stsd: mp4_atom::Stsd {
                        codecs: vec![entry],
                    },
                    stco: Some(mp4_atom::Stco::default()),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        ..Default::default()
    }
}
