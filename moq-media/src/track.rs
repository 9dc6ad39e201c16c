//! [`TrackProducer`], [`TrackConsumer`], [`TracksConsumer`]: frames on media tracks.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;

use moq_model::{GroupConsumer, GroupProducer};

use crate::{Error, Frame};

/// Writes frames to one media track: a keyframe starts a new group, other frames go to the
/// current group (moq-karp 0.10's layout). Synchronous; never blocks.
///
/// # Drop
/// Dropping the producer finishes the current group and the track cleanly, as
/// [`finish`](Self::finish) does.
#[derive(Debug)]
pub struct TrackProducer {
    track: moq_model::TrackProducer,
    group: Option<GroupProducer>,
    /// Set when a group failed: later frames are dropped until a keyframe starts a group
    /// that a decoder can start on.
    needs_keyframe: bool,
}

impl TrackProducer {
    /// Writes media frames to `track`.
    pub fn new(track: moq_model::TrackProducer) -> Self {
        Self {
            track,
            group: None,
            needs_keyframe: false,
        }
    }

    /// The track's description (path, priority, ...).
    pub fn info(&self) -> &moq_model::Track {
        self.track.info()
    }

    /// A consumer of the track's frames, from its latest group.
    pub fn consume(&self) -> TrackConsumer {
        TrackConsumer::new(self.track.consume())
    }

    /// Writes `frame`. A keyframe finishes the current group and starts a new one; any frame
    /// goes to the current group, or starts the first group if there is none yet (as
    /// moq-karp 0.10 does, even for a frame that is not a keyframe).
    ///
    /// If the group refuses the frame (e.g. it was over the track's byte limit and was
    /// aborted), the error is returned and the following frames are dropped without error
    /// until the next keyframe.
    pub fn write(&mut self, frame: &Frame) -> Result<(), Error> {
        if frame.keyframe {
            if let Some(group) = self.group.take() {
                group.finish();
            }
            self.needs_keyframe = false;
        } else if self.needs_keyframe {
            return Ok(());
        }
        let group = self.group.get_or_insert_with(|| self.track.append_group());
        if let Err(err) = group.write_frame(frame.encode()) {
            self.group = None;
            self.needs_keyframe = true;
            return Err(err.into());
        }
        Ok(())
    }

    /// Ends the track cleanly: the current group is finished, then the track.
    pub fn finish(mut self) {
        if let Some(group) = self.group.take() {
            group.finish();
        }
        self.track.finish();
    }

    /// Ends the track with `error`: its consumers read the error.
    pub fn abort(self, error: moq_model::Error) {
        self.track.abort(error);
    }
}

/// Reads the frames of one media track, live: it reads the current group's frames in
/// order, and moves to a newer group as soon as one exists and the current group has no
/// frame ready (as moq-karp 0.10's reader does), so a slow reader skips ahead to the latest
/// keyframe instead of falling behind.
///
/// # Drop
/// Dropping it has no effect on the track (its producer sees one consumer fewer).
pub struct TrackConsumer {
    track: moq_model::TrackConsumer,
    group: Option<GroupConsumer>,
    /// The track has no more groups; finish the current one, then end.
    track_done: bool,
    /// Groups left before their end (superseded by a newer group, or failed).
    abandoned: u64,
}

impl fmt::Debug for TrackConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackConsumer")
            .field("path", self.track.path())
            .field("group", &self.group.as_ref().map(|group| group.sequence()))
            .finish_non_exhaustive()
    }
}

/// What became ready first while reading.
enum Next {
    Frame(Result<Option<bytes::Bytes>, moq_model::Error>),
    Group(Result<Option<GroupConsumer>, moq_model::Error>),
}

impl TrackConsumer {
    /// Reads media frames from `track`.
    pub fn new(track: moq_model::TrackConsumer) -> Self {
        Self {
            track,
            group: None,
            track_done: false,
            abandoned: 0,
        }
    }

    /// The track's description (path, priority, ...).
    pub fn info(&self) -> &moq_model::Track {
        self.track.info()
    }

    /// How many groups this reader did not read to their end: groups that left the cache
    /// before it got to them, groups it left for a newer one, and groups that failed.
    pub fn skipped(&self) -> u64 {
        self.track.skipped() + self.abandoned
    }

    /// The next frame: `Ok(Some(frame))`, `Ok(None)` once the track has ended cleanly and
    /// its last group is read, or the track's error. A frame is a keyframe when it is the
    /// first of its group.
    ///
    /// A group that fails (aborted by its publisher or lost on the way) is skipped, not
    /// returned as an error: the reader goes on with the next group. A frame whose bytes
    /// are not a valid media frame is an error ([`Error::FrameTooShort`]); reading again
    /// goes on with the next frame.
    ///
    /// # Cancel safety
    /// Cancel-safe: the reader advances only when something is returned or a newer group is
    /// taken, and a group is taken only by the call that then reads from it.
    pub async fn read(&mut self) -> Result<Option<Frame>, Error> {
        loop {
            let Self {
                track,
                group,
                track_done,
                ..
            } = self;
            let Some(current) = group else {
                if *track_done {
                    return Ok(None);
                }
                match track.next_group().await? {
                    Some(next) => *group = Some(next),
                    None => return Ok(None),
                }
                continue;
            };
            let index = current.frame_index();
            let next = if *track_done {
                Next::Frame(current.read_frame().await)
            } else {
                let mut frame = pin!(current.read_frame());
                let mut newer = pin!(track.next_group());
                // Biased: the current group's frames first, then a newer group.
                poll_fn(|cx| {
                    if let Poll::Ready(result) = frame.as_mut().poll(cx) {
                        return Poll::Ready(Next::Frame(result));
                    }
                    if let Poll::Ready(result) = newer.as_mut().poll(cx) {
                        return Poll::Ready(Next::Group(result));
                    }
                    Poll::Pending
                })
                .await
            };
            match next {
                Next::Frame(Ok(Some(bytes))) => return Frame::decode(bytes, index == 0).map(Some),
                Next::Frame(Ok(None)) => *group = None,
                Next::Frame(Err(_)) => {
                    // The group failed; a track error shows up on the next `next_group`.
                    *group = None;
                    self.abandoned += 1;
                }
                Next::Group(Ok(Some(newer))) => {
                    *group = Some(newer);
                    self.abandoned += 1;
                }
                Next::Group(Ok(None)) => *track_done = true,
                Next::Group(Err(err)) => return Err(err.into()),
            }
        }
    }
}

type ReadFuture =
    Pin<Box<dyn Future<Output = (TrackConsumer, Result<Option<Frame>, Error>)> + Send>>;

/// Reads the frames of several media tracks as they come (e.g. a broadcast's video and
/// audio, to write them to one file). Runs on any executor: it polls the tracks itself.
///
/// ```
/// use moq_media::{Frame, Timestamp, TrackProducer, TracksConsumer};
/// use moq_model::Track;
///
/// let (video, video_reader) = Track::new(["b", "video1"]).produce();
/// let (audio, audio_reader) = Track::new(["b", "audio2"]).produce();
/// let (mut video, mut audio) = (TrackProducer::new(video), TrackProducer::new(audio));
/// let mut tracks = TracksConsumer::new();
/// let video_index = tracks.push(video_reader.into());
/// let audio_index = tracks.push(audio_reader.into());
///
/// let frame = |micros| Frame {
///     timestamp: Timestamp::from_micros(micros).unwrap(),
///     keyframe: true,
///     payload: "x".into(),
/// };
/// audio.write(&frame(0)).unwrap();
/// video.write(&frame(10)).unwrap();
/// # futures_lite_block_on(async move {
/// let (index, first) = tracks.read().await.unwrap().unwrap();
/// let (other, second) = tracks.read().await.unwrap().unwrap();
/// let mut seen = [(index, first.timestamp.as_micros()), (other, second.timestamp.as_micros())];
/// seen.sort();
/// assert_eq!(seen, [(video_index, 10), (audio_index, 0)]);
/// drop((video, audio));
/// assert!(tracks.read().await.unwrap().is_none());
/// # });
/// # fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
/// #     struct Unpark(std::thread::Thread);
/// #     impl std::task::Wake for Unpark {
/// #         fn wake(self: std::sync::Arc<Self>) { self.0.unpark() }
/// #     }
/// #     let waker = std::sync::Arc::new(Unpark(std::thread::current())).into();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut future = std::pin::pin!(future);
/// #     loop {
/// #         match future.as_mut().poll(&mut cx) {
/// #             std::task::Poll::Ready(output) => return output,
/// #             std::task::Poll::Pending => std::thread::park(),
/// #         }
/// #     }
/// # }
/// ```
///
/// # Drop
/// Dropping it drops its track consumers.
#[derive(Default)]
pub struct TracksConsumer {
    /// One pending read per track still open, by index; `None` once the track ended.
    reads: Vec<Option<ReadFuture>>,
    /// Where the next poll starts, so that a busy track cannot starve the others.
    start: usize,
}

impl fmt::Debug for TracksConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracksConsumer")
            .field("tracks", &self.reads.len())
            .field("open", &self.reads.iter().filter(|r| r.is_some()).count())
            .finish()
    }
}

impl TracksConsumer {
    /// No track yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a track; returns its index, which [`read`](Self::read) returns with its frames.
    pub fn push(&mut self, track: TrackConsumer) -> usize {
        self.reads.push(Some(Self::start_read(track)));
        self.reads.len() - 1
    }

    fn start_read(mut track: TrackConsumer) -> ReadFuture {
        Box::pin(async move {
            let result = track.read().await;
            (track, result)
        })
    }

    /// The next frame of any track, with the track's index: `Ok(None)` once every track has
    /// ended. A track that fails returns its error once and is then left out; reading again
    /// goes on with the others.
    ///
    /// # Cancel safety
    /// Cancel-safe: the reads in progress are kept in `self`.
    pub async fn read(&mut self) -> Result<Option<(usize, Frame)>, Error> {
        poll_fn(|cx| {
            let count = self.reads.len();
            let first = self.start;
            for offset in 0..count {
                let index = (first + offset) % count;
                let Some(read) = self.reads[index].as_mut() else {
                    continue;
                };
                let Poll::Ready((track, result)) = read.as_mut().poll(cx) else {
                    continue;
                };
                self.start = (index + 1) % count;
                return Poll::Ready(match result {
                    Ok(Some(frame)) => {
                        self.reads[index] = Some(Self::start_read(track));
                        Ok(Some((index, frame)))
                    }
                    // The frame is bad, the track may not be: keep reading it.
                    Err(err @ Error::FrameTooShort) => {
                        self.reads[index] = Some(Self::start_read(track));
                        Err(err)
                    }
                    Ok(None) => {
                        self.reads[index] = None;
                        continue;
                    }
                    Err(err) => {
                        self.reads[index] = None;
                        Err(err)
                    }
                });
            }
            // Every open track was polled this round, so each will wake this task.
            if self.reads.iter().any(Option::is_some) {
                Poll::Pending
            } else {
                Poll::Ready(Ok(None))
            }
        })
        .await
    }
}

impl From<moq_model::TrackConsumer> for TrackConsumer {
    fn from(track: moq_model::TrackConsumer) -> Self {
        Self::new(track)
    }
}
