//! [`BroadcastProducer`] and [`BroadcastConsumer`]: a broadcast's catalog and its media
//! tracks, on moq-model tracks.

use std::fmt;
use std::time::Duration;

use moq_model::{CacheLimits, GroupOrder, Path, Track};

use crate::{
    Audio, Catalog, Error, TrackConsumer, TrackInfo, TrackProducer, TracksConsumer, Video,
};

/// The priority of the catalog track (moq-karp 0.10: below every media track).
pub const CATALOG_PRIORITY: i8 = -1;

/// The catalog track of the broadcast at `broadcast`: the broadcast's path itself (moq-karp
/// 0.10 names no track `catalog.json`: the catalog is the track at the broadcast's own
/// path), priority [`CATALOG_PRIORITY`], newest group first.
pub fn catalog_track(broadcast: &Path) -> Track {
    template(broadcast.clone(), CATALOG_PRIORITY)
}

/// The name of the clock track below a broadcast: our extension to moq-karp 0.10's layout
/// (its viewers never ask for it). Each group is one frame of JSON,
/// `{"timestamp":T,"wall":W}`: the publisher read media time `T` (µs) of the catalog's first
/// rendition at wall clock `W` (µs since the Unix epoch), the frame read earliest for its
/// timestamp so far. A viewer with the same wall clock tells its end-to-end latency from it.
pub const CLOCK_TRACK: &str = "clock";

/// The clock track ([`CLOCK_TRACK`]) of the broadcast at `broadcast`: priority
/// [`CATALOG_PRIORITY`], newest group first.
pub fn clock_track(broadcast: &Path) -> Track {
    template(broadcast.push(CLOCK_TRACK), CATALOG_PRIORITY)
}

/// The track of rendition `info` in the broadcast at `broadcast`: the broadcast's path and
/// the track's name as one more part, the rendition's priority, newest group first.
///
/// ```
/// use moq_media::{TrackInfo, media_track};
/// use moq_model::Path;
///
/// let broadcast = Path::from(["live", "karp", "1732600000000"]);
/// let track = media_track(&broadcast, &TrackInfo { name: "video1".into(), priority: 2 });
/// assert_eq!(track.path, Path::from(["live", "karp", "1732600000000", "video1"]));
/// assert_eq!(track.priority, 2);
/// ```
pub fn media_track(broadcast: &Path, info: &TrackInfo) -> Track {
    template(broadcast.push(info.name.as_str()), info.priority)
}

/// moq-karp 0.10's settings for every track: descending group order, no expiry.
fn template(path: Path, priority: i8) -> Track {
    Track::build(path)
        .priority(priority)
        .group_order(GroupOrder::Descending)
        .group_expires(Duration::ZERO)
        .into_track()
}

/// Publishes a broadcast: the catalog track and one track per rendition, on a
/// [`moq_model::BroadcastProducer`] (whose path should end with the broadcast's id, see
/// [`broadcast_path`](crate::broadcast_path)).
///
/// Every change to the renditions publishes the whole catalog again, as one new group of
/// one frame on the catalog track (moq-karp 0.10 does the same; it has no deltas).
///
/// # Drop
/// Dropping it ends the catalog track and the broadcast (new lookups find nothing); media
/// tracks go on until their own [`TrackProducer`]s are dropped.
pub struct BroadcastProducer {
    broadcast: moq_model::BroadcastProducer,
    catalog_track: moq_model::TrackProducer,
    catalog: Catalog,
    group_expires: Duration,
    cache: CacheLimits,
}

impl fmt::Debug for BroadcastProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastProducer")
            .field("path", self.broadcast.path())
            .field("catalog", &self.catalog)
            .finish_non_exhaustive()
    }
}

impl BroadcastProducer {
    /// Creates the catalog track on `broadcast`. No catalog is published until the first
    /// rendition is added. [`Error::Model`] with `Duplicate` if the broadcast already has a
    /// live track at its own path.
    pub fn new(mut broadcast: moq_model::BroadcastProducer) -> Result<Self, Error> {
        let catalog_track = broadcast.create_track(template(Path::empty(), CATALOG_PRIORITY))?;
        Ok(Self {
            broadcast,
            catalog_track,
            catalog: Catalog::default(),
            group_expires: Duration::ZERO,
            cache: CacheLimits::default(),
        })
    }

    /// The broadcast's path.
    pub fn path(&self) -> &Path {
        self.broadcast.path()
    }

    /// The catalog as last published.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// How the media tracks created from now on cache their groups: kept for
    /// `group_expires` after their creation (zero, the default, keeps only the latest
    /// group, as moq-karp 0.10 does), within `cache`. A longer expiry lets a late or slow
    /// consumer start further back.
    pub fn set_track_cache(&mut self, group_expires: Duration, cache: CacheLimits) {
        self.group_expires = group_expires;
        self.cache = cache;
    }

    /// Adds a video rendition: creates its track and publishes the new catalog.
    /// [`Error::Model`] with `Duplicate` if a rendition of that name exists.
    pub fn add_video(&mut self, video: Video) -> Result<TrackProducer, Error> {
        let track = self.create_track(&video.track)?;
        self.catalog.video.push(video);
        self.publish_catalog()?;
        Ok(track)
    }

    /// Adds an audio rendition: creates its track and publishes the new catalog.
    /// [`Error::Model`] with `Duplicate` if a rendition of that name exists.
    pub fn add_audio(&mut self, audio: Audio) -> Result<TrackProducer, Error> {
        let track = self.create_track(&audio.track)?;
        self.catalog.audio.push(audio);
        self.publish_catalog()?;
        Ok(track)
    }

    /// Adds every rendition of `catalog` and publishes the catalog once. Returns the tracks
    /// in the order of [`Catalog::tracks`] (video first). On an error (a name used twice,
    /// here or before) nothing is added.
    pub fn add_catalog(&mut self, catalog: Catalog) -> Result<Vec<TrackProducer>, Error> {
        let mut names: Vec<&str> = self
            .catalog
            .tracks()
            .chain(catalog.tracks())
            .map(|track| track.name.as_str())
            .collect();
        names.sort_unstable();
        if names.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(moq_model::Error::Duplicate.into());
        }
        let mut tracks = Vec::new();
        for info in catalog.tracks() {
            match self.create_track(info) {
                Ok(track) => tracks.push(track),
                Err(err) => {
                    for track in &tracks {
                        self.broadcast
                            .remove_track(&Path::from([track_name(track)]));
                    }
                    return Err(err);
                }
            }
        }
        self.catalog.video.extend(catalog.video);
        self.catalog.audio.extend(catalog.audio);
        self.publish_catalog()?;
        Ok(tracks)
    }

    /// Removes the rendition `name` from the catalog (publishing the new catalog) and its
    /// track from the broadcast. Its [`TrackProducer`], if still held, goes on writing to
    /// the consumers it already has. False if there was no such rendition.
    pub fn remove(&mut self, name: &str) -> Result<bool, Error> {
        let before = self.catalog.video.len() + self.catalog.audio.len();
        self.catalog.video.retain(|video| video.track.name != name);
        self.catalog.audio.retain(|audio| audio.track.name != name);
        if self.catalog.video.len() + self.catalog.audio.len() == before {
            return Ok(false);
        }
        self.broadcast.remove_track(&Path::from([name]));
        self.publish_catalog()?;
        Ok(true)
    }

    /// A consumer of this broadcast in the same process.
    pub fn consume(&self) -> BroadcastConsumer {
        BroadcastConsumer::local(&self.broadcast.consume())
    }

    fn create_track(&mut self, info: &TrackInfo) -> Result<TrackProducer, Error> {
        if self.catalog.tracks().any(|track| track.name == info.name) {
            return Err(moq_model::Error::Duplicate.into());
        }
        let mut track = template(Path::from([info.name.as_str()]), info.priority);
        track.group_expires = self.group_expires;
        track.cache = self.cache.clone();
        Ok(TrackProducer::new(self.broadcast.create_track(track)?))
    }

    /// One group, one frame: the whole catalog as JSON.
    fn publish_catalog(&mut self) -> Result<(), Error> {
        let mut group = self.catalog_track.append_group();
        group.write_frame(self.catalog.to_json())?;
        group.finish();
        Ok(())
    }
}

/// The last part of a media track's path: its name in the broadcast.
fn track_name(track: &TrackProducer) -> String {
    let path = &track.info().path;
    path.get(path.len().saturating_sub(1))
        .unwrap_or_default()
        .to_owned()
}

type Subscribe = dyn Fn(Track) -> moq_model::TrackConsumer + Send + Sync;

/// Reads a broadcast: its catalog, then the tracks of the renditions wanted.
///
/// It subscribes through a function from [`moq_model::Track`] (path, priority, order) to a
/// [`moq_model::TrackConsumer`]: a session's `subscribe` for a remote broadcast, or
/// [`BroadcastConsumer::local`] for one in this process.
///
/// # Drop
/// Dropping it drops its subscription to the catalog; track consumers it returned are
/// independent of it.
pub struct BroadcastConsumer {
    path: Path,
    catalog: moq_model::TrackConsumer,
    /// The catalog group whose frame is being awaited.
    pending: Option<moq_model::GroupConsumer>,
    subscribe: Box<Subscribe>,
}

impl fmt::Debug for BroadcastConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastConsumer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl BroadcastConsumer {
    /// Reads the broadcast at `path`, subscribing with `subscribe` (at once for the
    /// catalog track, later for media tracks).
    pub fn new(
        path: Path,
        subscribe: impl Fn(Track) -> moq_model::TrackConsumer + Send + Sync + 'static,
    ) -> Self {
        let catalog = subscribe(catalog_track(&path));
        Self {
            path,
            catalog,
            pending: None,
            subscribe: Box::new(subscribe),
        }
    }

    /// Reads a broadcast of this process. A track it does not have reads as
    /// [`moq_model::Error::NotFound`].
    pub fn local(broadcast: &moq_model::BroadcastConsumer) -> Self {
        let broadcast = broadcast.clone();
        let prefix = broadcast.path().clone();
        Self::new(prefix.clone(), move |track| {
            let name = track.path.strip_prefix(&prefix).unwrap_or_else(Path::empty);
            broadcast.track(&name).unwrap_or_else(|err| {
                let (producer, consumer) = track.produce();
                producer.abort(err);
                consumer
            })
        })
    }

    /// The broadcast's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next version of the catalog: the first call returns the latest one (waiting for
    /// it if none is published yet), later calls wait for the next. `Ok(None)` once the
    /// catalog track has ended; the track's error if it failed.
    ///
    /// A catalog group that is empty or fails is skipped. A frame that is not a valid
    /// catalog returns [`Error::Catalog`]; calling again waits for the next version.
    ///
    /// # Cancel safety
    /// Cancel-safe: a group that arrived is kept until its frame is read.
    pub async fn catalog(&mut self) -> Result<Option<Catalog>, Error> {
        loop {
            let group = match &mut self.pending {
                Some(group) => group,
                None => match self.catalog.next_group().await? {
                    Some(group) => self.pending.insert(group),
                    None => return Ok(None),
                },
            };
            // One frame per group, the whole catalog (moq-karp 0.10 has no deltas).
            let frame = group.read_frame().await;
            self.pending = None;
            match frame {
                Ok(Some(json)) => return Catalog::from_json(&json).map(Some),
                Ok(None) | Err(_) => continue,
            }
        }
    }

    /// Subscribes to the track of rendition `info`.
    pub fn track(&self, info: &TrackInfo) -> TrackConsumer {
        TrackConsumer::new((self.subscribe)(media_track(&self.path, info)))
    }

    /// Subscribes to every rendition of `catalog`; the indexes
    /// [`TracksConsumer::read`] returns are positions in [`Catalog::tracks`].
    pub fn tracks(&self, catalog: &Catalog) -> TracksConsumer {
        let mut tracks = TracksConsumer::new();
        for info in catalog.tracks() {
            tracks.push(self.track(info));
        }
        tracks
    }
}
