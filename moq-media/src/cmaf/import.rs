//! [`Import`]: fragmented MP4 bytes published as a broadcast.

use super::{Demuxer, Event, ImportConfig, ImportError};
use crate::{BroadcastProducer, Catalog, Frame, Timestamp, TrackProducer};

/// Publishes fragmented MP4, fed as it arrives, on a [`BroadcastProducer`]: the init segment
/// becomes the catalog (published once, with every track), each sample a frame.
///
/// Groups follow moq-karp 0.10: a video track starts a group at each keyframe; an audio
/// track (all of whose frames are keyframes) starts one at its first frame, after each
/// video keyframe, and otherwise when [`ImportConfig::audio_group_duration`] has passed
/// since its group began, so that audio groups line up with video groups.
///
/// Parsing is the [`Demuxer`]'s (see there for what is accepted and the memory bound).
/// After an error the import is over: drop it (its tracks end cleanly when dropped; use
/// [`abort`](Self::abort) to end them with an error instead).
///
/// ```
/// use moq_media::cmaf::{Import, ImportError};
/// use moq_media::BroadcastProducer;
/// use moq_model::Broadcast;
///
/// let (broadcast, _consumer) = Broadcast::new(["live", "cam", "1"]).produce();
/// let mut import = Import::new(BroadcastProducer::new(broadcast).unwrap());
/// // An mdat first: no init segment to describe it.
/// let err = import.push(&[0, 0, 0, 8, b'm', b'd', b'a', b't']).unwrap_err();
/// assert!(matches!(err, ImportError::MissingInit(_)));
/// ```
#[derive(Debug)]
pub struct Import {
    demuxer: Demuxer,
    broadcast: BroadcastProducer,
    /// Per catalog track (in [`Catalog::tracks`] order): its producer, whether it is audio,
    /// and for audio when its current group began (`None`: start one with the next frame).
    tracks: Vec<ImportTrack>,
    audio_group_duration: std::time::Duration,
}

#[derive(Debug)]
struct ImportTrack {
    producer: TrackProducer,
    audio: bool,
    group_start: Option<Timestamp>,
}

impl Import {
    /// Publishes on `broadcast`, with the default [`ImportConfig`].
    pub fn new(broadcast: BroadcastProducer) -> Self {
        Self::with_config(broadcast, ImportConfig::default())
    }

    /// Publishes on `broadcast`, with the limits of `config`.
    pub fn with_config(broadcast: BroadcastProducer, config: ImportConfig) -> Self {
        Self {
            audio_group_duration: config.audio_group_duration,
            demuxer: Demuxer::new(config),
            broadcast,
            tracks: Vec::new(),
        }
    }

    /// The catalog, once the init segment has been read.
    pub fn catalog(&self) -> Option<&Catalog> {
        self.demuxer.catalog()
    }

    /// The broadcast being published.
    pub fn broadcast(&self) -> &BroadcastProducer {
        &self.broadcast
    }

    /// Parses `data` (any amount: part of a box, several boxes) and publishes what is
    /// complete.
    pub fn push(&mut self, data: &[u8]) -> Result<(), ImportError> {
        self.push_each(data, |_, _| {})
    }

    /// [`push`](Self::push), calling `published` with each frame that `data` completed once
    /// it is published, and its track's position in [`Catalog::tracks`] (e.g. to note when
    /// each frame was read).
    pub fn push_each(
        &mut self,
        data: &[u8],
        mut published: impl FnMut(usize, &Frame),
    ) -> Result<(), ImportError> {
        self.demuxer.push(data);
        while let Some(event) = self.demuxer.next()? {
            match event {
                Event::Catalog(catalog) => {
                    // Tracks come video first, then audio (Catalog::tracks).
                    let videos = catalog.video.len();
                    let producers = self.broadcast.add_catalog(catalog)?;
                    self.tracks = producers
                        .into_iter()
                        .enumerate()
                        .map(|(index, producer)| ImportTrack {
                            producer,
                            audio: index >= videos,
                            group_start: None,
                        })
                        .collect();
                }
                Event::Frame { track, mut frame } => {
                    // No track when publishing the catalog failed (and the caller went on).
                    let Some(state) = self.tracks.get_mut(track) else {
                        continue;
                    };
                    if state.audio {
                        frame.keyframe = match state.group_start {
                            None => true,
                            Some(start) => frame
                                .timestamp
                                .checked_sub(start)
                                .is_some_and(|elapsed| elapsed > self.audio_group_duration),
                        };
                        if frame.keyframe {
                            state.group_start = Some(frame.timestamp);
                        }
                    } else if frame.keyframe {
                        // Audio starts its next group with this video group.
                        for other in self.tracks.iter_mut().filter(|track| track.audio) {
                            other.group_start = None;
                        }
                    }
                    self.tracks[track].producer.write(&frame)?;
                    published(track, &frame);
                }
            }
        }
        Ok(())
    }

    /// Ends the input: the tracks are finished, and the broadcast producer returned (the
    /// broadcast ends when it is dropped). An error if the input stopped inside a box; the
    /// tracks are finished either way.
    pub fn finish(self) -> Result<BroadcastProducer, ImportError> {
        let end = self.demuxer.finish();
        for track in self.tracks {
            track.producer.finish();
        }
        end.map(|()| self.broadcast)
    }

    /// Ends every track with `error` (e.g. after an [`ImportError`], so that consumers see
    /// a failure rather than a clean end).
    pub fn abort(self, error: moq_model::Error) {
        for track in self.tracks {
            track.producer.abort(error);
        }
    }
}
