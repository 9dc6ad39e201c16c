//! [`Demuxer`]: fragmented MP4 bytes in, a catalog and timed frames out.

use bytes::{Buf, Bytes, BytesMut};
use mp4_atom::{Decode, Moof, Moov};

use super::entry::{Rendition, rendition};
use super::{BoxType, ImportError};
use crate::{Catalog, Frame, Timestamp};

/// What a [`Demuxer`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The init segment, as a catalog. Comes once, before any frame.
    Catalog(Catalog),
    /// A sample of a track.
    Frame {
        /// The track's position in [`Catalog::tracks`] (video renditions first).
        track: usize,
        /// The sample; `keyframe` is whether the MP4 marks it a sync sample.
        frame: Frame,
    },
}

/// The importer's limits.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportConfig {
    /// The largest box accepted, header included; a larger one is refused with
    /// [`ImportError::BoxTooLarge`] as soon as its header arrives. Default
    /// [`ImportConfig::DEFAULT_MAX_BOX_SIZE`].
    pub max_box_size: u64,
    /// How often at most an audio track starts a new group when no video keyframe starts
    /// one (used by [`Import`](super::Import)); default 10 s, as in moq-karp 0.10.
    pub audio_group_duration: std::time::Duration,
}

impl ImportConfig {
    /// 32 MiB: several seconds of high-bitrate video in one fragment.
    pub const DEFAULT_MAX_BOX_SIZE: u64 = 32 << 20;
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self {
            max_box_size: Self::DEFAULT_MAX_BOX_SIZE,
            audio_group_duration: std::time::Duration::from_secs(10),
        }
    }
}

/// A track of the init segment that the catalog carries.
#[derive(Clone, Debug)]
struct TrackState {
    id: u32,
    timescale: u32,
    /// Defaults from the `trex` box.
    default_duration: u32,
    default_size: u32,
    default_flags: u32,
    /// Where the next fragment's decode time starts when it has no `tfdt`.
    next_dts: u64,
}

/// The moof whose mdat is awaited.
#[derive(Debug)]
struct PendingMoof {
    moof: Moof,
    /// Stream offset of the moof's first byte.
    start: u64,
}

/// A moof and its mdat, read one sample at a time so that memory stays at the box.
#[derive(Debug)]
struct Fragment {
    moof: Moof,
    moof_start: u64,
    /// The mdat's payload, and the stream offset of its first byte.
    mdat: Bytes,
    mdat_start: u64,
    /// The position: traf, trun within it, sample within that.
    traf: usize,
    trun: usize,
    sample: usize,
    /// The current traf's track (`None` for a track the catalog leaves out) and its state.
    current: Option<Option<usize>>,
    /// Stream offset the current traf's data offsets count from.
    base: u64,
    /// Stream offset of the next sample's data, and its decode time.
    data: u64,
    dts: u64,
    /// Where the previous traf's data ended (the base of the next, without other base).
    previous_end: u64,
}

/// Turns fragmented MP4 (CMAF), fed as it arrives, into a [`Catalog`] and [`Frame`]s.
/// Pure: bytes in, events out, no IO.
///
/// Give it input with [`push`](Self::push) in chunks of any size, then take events with
/// [`next`](Self::next) until it returns `Ok(None)` ("need more input"). It holds at most
/// the box being received (plus the chunk pushed last): a box is decoded once it is whole,
/// and a box header declaring more than [`ImportConfig::max_box_size`] is refused before
/// anything of it is buffered. Frames are slices of the `mdat` that carried them (no copy).
///
/// What it expects is what `ffmpeg -f mp4 -movflags
/// cmaf+separate_moof+delay_moov+skip_trailer+frag_every_frame` writes: `ftyp`, `moov`, then
/// `moof` + `mdat` pairs. Other top-level boxes (`styp`, `sidx`, `free`, ...) are skipped.
/// Tracks that are neither video nor audio are left out of the catalog and their samples
/// skipped; a video or audio track with a codec this crate does not carry is an error.
/// Sample data must lie in the `mdat` that follows its `moof`; edit lists are not applied.
///
/// Timestamps are the presentation time (decode time from `tfdt` and the durations, plus
/// the composition offset) converted from the track's timescale to microseconds, rounding
/// down. A sample is a keyframe when its flags do not say "non-sync" and do not say it
/// depends on other samples (the flags of the sample, else the `tfhd` default, else the
/// `trex` default).
///
/// ```
/// use moq_media::cmaf::{Demuxer, Event, ImportConfig, ImportError};
///
/// let mut demuxer = Demuxer::new(ImportConfig::default());
/// // A box header alone: more input needed.
/// demuxer.push(&[0, 0, 0, 16, b'f', b'r', b'e', b'e']);
/// assert_eq!(demuxer.next(), Ok(None));
/// demuxer.push(&[0; 8]);
/// assert_eq!(demuxer.next(), Ok(None)); // skipped
/// // A moof before any moov.
/// demuxer.push(&[0, 0, 0, 8, b'm', b'o', b'o', b'f']);
/// assert!(matches!(demuxer.next(), Err(ImportError::MissingInit(_))));
/// ```
#[derive(Debug)]
pub struct Demuxer {
    config: ImportConfig,
    buffer: BytesMut,
    /// Stream offset of `buffer[0]`.
    position: u64,
    catalog: Option<Catalog>,
    /// Tracks in catalog order.
    tracks: Vec<TrackState>,
    /// Ids of the init segment's tracks that the catalog leaves out.
    ignored: Vec<u32>,
    moof: Option<PendingMoof>,
    fragment: Option<Fragment>,
}

impl Demuxer {
    /// A demuxer with the limits of `config`.
    pub fn new(config: ImportConfig) -> Self {
        Self {
            config,
            buffer: BytesMut::new(),
            position: 0,
            catalog: None,
            tracks: Vec::new(),
            ignored: Vec::new(),
            moof: None,
            fragment: None,
        }
    }

    /// The catalog, once the init segment has been read.
    pub fn catalog(&self) -> Option<&Catalog> {
        self.catalog.as_ref()
    }

    /// The MP4 track id of each catalog track, in [`Catalog::tracks`] order.
    pub fn track_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.tracks.iter().map(|track| track.id)
    }

    /// How many bytes are buffered: the part of a box received so far.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Adds input. Nothing is parsed until [`next`](Self::next).
    pub fn push(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// The next event: `Ok(Some(event))`, `Ok(None)` when more input is needed, or why the
    /// input is refused (after an error the demuxer should be dropped).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Event>, ImportError> {
        loop {
            if let Some(event) = self.next_sample()? {
                return Ok(Some(event));
            }
            let Some((kind, size)) = self.box_header()? else {
                return Ok(None);
            };
            let start = self.position;
            let bytes = self.buffer.split_to(size).freeze();
            self.position += size as u64;
            if let Some(event) = self.process(kind, bytes, start)? {
                return Ok(Some(event));
            }
        }
    }

    /// Ends the input: an error if it stopped inside a box or between a `moof` and its
    /// `mdat`. Events not yet taken with [`next`](Self::next) are not checked.
    pub fn finish(&self) -> Result<(), ImportError> {
        if !self.buffer.is_empty() {
            return Err(ImportError::Truncated {
                buffered: self.buffer.len(),
            });
        }
        if self.moof.is_some() {
            return Err(ImportError::MoofWithoutMdat);
        }
        Ok(())
    }

    /// The type and total size of the box at the front of the buffer, once all of it is
    /// there; `None` if more input is needed.
    fn box_header(&self) -> Result<Option<(BoxType, usize)>, ImportError> {
        let buf = &self.buffer[..];
        if buf.len() < 8 {
            return Ok(None);
        }
        let kind = BoxType([buf[4], buf[5], buf[6], buf[7]]);
        // ISO/IEC 14496-12 §4.2: size 1 means a 64-bit size follows the type; 0 means the
        // box runs to the end of the file.
        let (size, header) = match (&buf[..4]).get_u32() {
            0 => return Err(ImportError::UnboundedBox(kind)),
            1 => {
                if buf.len() < 16 {
                    return Ok(None);
                }
                ((&buf[8..16]).get_u64(), 16)
            }
            size => (u64::from(size), 8),
        };
        if size < header {
            return Err(ImportError::InvalidBoxSize { kind, size });
        }
        if size > self.config.max_box_size {
            return Err(ImportError::BoxTooLarge {
                kind,
                size,
                limit: self.config.max_box_size,
            });
        }
        // Below the limit, so it fits a usize on any platform that can buffer it.
        let size = usize::try_from(size).map_err(|_| ImportError::BoxTooLarge {
            kind,
            size,
            limit: self.config.max_box_size,
        })?;
        Ok((buf.len() >= size).then_some((kind, size)))
    }

    fn process(
        &mut self,
        kind: BoxType,
        bytes: Bytes,
        start: u64,
    ) -> Result<Option<Event>, ImportError> {
        match kind {
            BoxType::MOOV => {
                if self.catalog.is_some() {
                    return Err(ImportError::DuplicateInit);
                }
                let moov = Moov::decode(&mut &bytes[..]).map_err(|err| malformed(kind, err))?;
                let catalog = self.init(&moov)?;
                self.catalog = Some(catalog.clone());
                Ok(Some(Event::Catalog(catalog)))
            }
            BoxType::MOOF => {
                if self.catalog.is_none() {
                    return Err(ImportError::MissingInit(kind));
                }
                if self.moof.is_some() {
                    return Err(ImportError::MoofWithoutMdat);
                }
                let moof = Moof::decode(&mut &bytes[..]).map_err(|err| malformed(kind, err))?;
                self.moof = Some(PendingMoof { moof, start });
                Ok(None)
            }
            BoxType::MDAT => {
                if self.catalog.is_none() {
                    return Err(ImportError::MissingInit(kind));
                }
                let moof = self.moof.take().ok_or(ImportError::MdatWithoutMoof)?;
                let header = if (&bytes[..4]).get_u32() == 1 { 16 } else { 8 };
                let mdat = bytes.slice(header..);
                self.start_fragment(moof, mdat, start + header as u64)?;
                Ok(None)
            }
            // ftyp, styp, sidx, free, skip, prft, emsg, uuid, ...: nothing to carry.
            _ => Ok(None),
        }
    }

    /// Reads the init segment: the catalog and each track's timescale and defaults.
    fn init(&mut self, moov: &Moov) -> Result<Catalog, ImportError> {
        let mut catalog = Catalog::default();
        let mut video = Vec::new();
        let mut audio = Vec::new();
        for trak in &moov.trak {
            let id = trak.tkhd.track_id;
            let Some(rendition) = rendition(trak)? else {
                self.ignored.push(id);
                continue;
            };
            let timescale = trak.mdia.mdhd.timescale;
            if timescale == 0 {
                return Err(ImportError::UnsupportedTrack {
                    track: id,
                    reason: "a timescale of zero",
                });
            }
            let trex = moov
                .mvex
                .as_ref()
                .and_then(|mvex| mvex.trex.iter().find(|trex| trex.track_id == id));
            let state = TrackState {
                id,
                timescale,
                default_duration: trex.map_or(0, |trex| trex.default_sample_duration),
                default_size: trex.map_or(0, |trex| trex.default_sample_size),
                default_flags: trex.map_or(0, |trex| trex.default_sample_flags),
                next_dts: 0,
            };
            let all = self.tracks.iter().chain(&video).chain(&audio);
            if all
                .map(|track: &TrackState| track.id)
                .any(|other| other == id)
            {
                return Err(ImportError::UnsupportedTrack {
                    track: id,
                    reason: "two tracks with the same id",
                });
            }
            match rendition {
                Rendition::Video(rendition) => {
                    catalog.video.push(rendition);
                    video.push(state);
                }
                Rendition::Audio(rendition) => {
                    catalog.audio.push(rendition);
                    audio.push(state);
                }
            }
        }
        if catalog.is_empty() {
            return Err(ImportError::NoTracks);
        }
        self.tracks = video.into_iter().chain(audio).collect();
        Ok(catalog)
    }

    fn start_fragment(
        &mut self,
        moof: PendingMoof,
        mdat: Bytes,
        mdat_start: u64,
    ) -> Result<(), ImportError> {
        // Every sample takes at least one byte of the mdat, so a fragment declares at most
        // that many: this bounds the work a hostile sample count can cause.
        let mut samples: u64 = 0;
        for traf in &moof.moof.traf {
            for trun in &traf.trun {
                samples = samples.saturating_add(trun.samples.len() as u64);
            }
            if samples > mdat.len() as u64 {
                return Err(ImportError::BadFragment {
                    track: traf.tfhd.track_id,
                    reason: "more samples than bytes in the mdat",
                });
            }
        }
        self.fragment = Some(Fragment {
            moof: moof.moof,
            moof_start: moof.start,
            mdat,
            mdat_start,
            traf: 0,
            trun: 0,
            sample: 0,
            current: None,
            base: 0,
            data: 0,
            dts: 0,
            previous_end: moof.start,
        });
        Ok(())
    }

    /// The next sample of the fragment being read, if any.
    fn next_sample(&mut self) -> Result<Option<Event>, ImportError> {
        let Some(fragment) = self.fragment.as_mut() else {
            return Ok(None);
        };
        loop {
            let Some(traf) = fragment.moof.traf.get(fragment.traf) else {
                self.fragment = None;
                return Ok(None);
            };
            let id = traf.tfhd.track_id;
            let bad = |reason| ImportError::BadFragment { track: id, reason };
            let index = match fragment.current {
                Some(index) => index,
                None => {
                    let index = self.tracks.iter().position(|track| track.id == id);
                    if index.is_none() && !self.ignored.contains(&id) {
                        return Err(ImportError::UnknownTrack(id));
                    }
                    // ISO/IEC 14496-12 §8.8.7: the base is the explicit offset, else the
                    // moof (default-base-is-moof, or the first traf), else where the
                    // previous traf's data ended.
                    fragment.base = match traf.tfhd.base_data_offset {
                        Some(base) => base,
                        None if traf.tfhd.default_base_is_moof || fragment.traf == 0 => {
                            fragment.moof_start
                        }
                        None => fragment.previous_end,
                    };
                    fragment.data = fragment.base;
                    fragment.dts = match (&traf.tfdt, index) {
                        (Some(tfdt), _) => tfdt.base_media_decode_time,
                        (None, Some(index)) => self.tracks[index].next_dts,
                        (None, None) => 0,
                    };
                    fragment.trun = 0;
                    fragment.sample = 0;
                    fragment.current = Some(index);
                    index
                }
            };
            let Some(trun) = traf.trun.get(fragment.trun) else {
                // This traf is done.
                if let Some(index) = index {
                    self.tracks[index].next_dts = fragment.dts;
                }
                fragment.previous_end = fragment.data;
                fragment.traf += 1;
                fragment.current = None;
                continue;
            };
            if fragment.sample == 0 {
                // §8.8.8: data_offset is relative to the traf's base; without it, the run
                // follows the previous one.
                if let Some(offset) = trun.data_offset {
                    fragment.data = fragment
                        .base
                        .checked_add_signed(i64::from(offset))
                        .ok_or_else(|| bad("a data offset before the stream"))?;
                }
            }
            let Some(entry) = trun.samples.get(fragment.sample) else {
                fragment.trun += 1;
                fragment.sample = 0;
                continue;
            };
            fragment.sample += 1;

            let defaults = index.map(|index| &self.tracks[index]);
            let duration = entry
                .duration
                .or(traf.tfhd.default_sample_duration)
                .unwrap_or(defaults.map_or(0, |track| track.default_duration));
            let size = entry
                .size
                .or(traf.tfhd.default_sample_size)
                .unwrap_or(defaults.map_or(0, |track| track.default_size));
            let flags = entry
                .flags
                .or(traf.tfhd.default_sample_flags)
                .unwrap_or(defaults.map_or(0, |track| track.default_flags));

            let start = fragment.data;
            let end = start
                .checked_add(u64::from(size))
                .ok_or_else(|| bad("sample data past the end of the stream"))?;
            let mdat_end = fragment.mdat_start + fragment.mdat.len() as u64;
            if start < fragment.mdat_start || end > mdat_end {
                return Err(bad("sample data outside the mdat"));
            }
            fragment.data = end;
            let dts = fragment.dts;
            fragment.dts = dts
                .checked_add(u64::from(duration))
                .ok_or_else(|| bad("a decode time that overflows"))?;

            let (Some(index), false) = (index, size == 0) else {
                // A track the catalog leaves out, or an empty sample: nothing to carry.
                continue;
            };
            let track = &self.tracks[index];
            let pts = i128::from(dts) + i128::from(entry.cts.unwrap_or(0));
            let pts = u64::try_from(pts).map_err(|_| bad("a negative presentation time"))?;
            let timestamp = Timestamp::from_units(pts, track.timescale)
                .ok_or_else(|| bad("a presentation time past the largest timestamp"))?;
            // ISO/IEC 14496-12 §8.8.3.1: sample_is_non_sync_sample is bit 16,
            // sample_depends_on bits 24-25 (1: depends on others).
            let non_sync = flags & 0x0001_0000 != 0;
            let depends = (flags >> 24) & 0b11 == 1;
            let offset = (start - fragment.mdat_start) as usize;
            let payload = fragment.mdat.slice(offset..offset + size as usize);
            return Ok(Some(Event::Frame {
                track: index,
                frame: Frame {
                    timestamp,
                    keyframe: !non_sync && !depends,
                    payload,
                },
            }));
        }
    }
}

fn malformed(kind: BoxType, err: mp4_atom::Error) -> ImportError {
    ImportError::Malformed {
        kind,
        reason: err.to_string(),
    }
}
