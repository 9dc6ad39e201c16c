//! [`Broadcast`], [`BroadcastProducer`], [`BroadcastConsumer`]: the tracks under one path.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use moq_proto::Path;

use crate::notify::{self, Lock, Slot, Waiters};
use crate::track::TrackShared;
use crate::{Error, Track, TrackConsumer, TrackProducer};

/// The description of a broadcast: the path prefix of its tracks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Broadcast {
    /// The prefix every track of the broadcast shares.
    pub path: Path,
}

impl Broadcast {
    /// A broadcast under `path`.
    pub fn new(path: impl Into<Path>) -> Self {
        Self { path: path.into() }
    }

    /// A producer for the broadcast and a first consumer of it.
    pub fn produce(self) -> (BroadcastProducer, BroadcastConsumer) {
        let shared = Arc::new(BroadcastShared {
            path: self.path,
            state: Lock::new(BroadcastState {
                tracks: HashMap::new(),
                ended: false,
                waiters: Waiters::default(),
            }),
        });
        let consumer = BroadcastConsumer {
            shared: shared.clone(),
        };
        (BroadcastProducer { shared }, consumer)
    }
}

#[derive(Debug)]
struct BroadcastState {
    /// By name (the path after the broadcast's prefix). Holding a track here does not count
    /// as consuming it.
    tracks: HashMap<Path, Arc<TrackShared>>,
    ended: bool,
    waiters: Waiters,
}

#[derive(Debug)]
struct BroadcastShared {
    path: Path,
    state: Lock<BroadcastState>,
}

/// Creates the tracks of one broadcast. Synchronous.
///
/// # Drop
/// Dropping the producer ends the broadcast: [`BroadcastConsumer::closed`] returns and
/// [`BroadcastConsumer::track`] finds nothing any more. Tracks already created go on until
/// their own producers end.
#[derive(Debug)]
pub struct BroadcastProducer {
    shared: Arc<BroadcastShared>,
}

impl BroadcastProducer {
    /// The broadcast's path prefix.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Creates a track of this broadcast. `track.path` is the track's name *within* the
    /// broadcast; the producer's [`path`](TrackProducer::path) is the broadcast's path joined
    /// with it. [`Error::Duplicate`] if a track of that name is live (created and not ended).
    pub fn create_track(&mut self, mut track: Track) -> Result<TrackProducer, Error> {
        let name = std::mem::take(&mut track.path);
        track.path = self.shared.path.join(&name);
        let mut state = self.shared.state.lock();
        if state.tracks.get(&name).is_some_and(|t| !t.is_ended()) {
            return Err(Error::Duplicate);
        }
        let producer = TrackProducer::new(track);
        let consumer = producer.consume();
        state.tracks.insert(name, consumer.shared().clone());
        state.tracks.retain(|_, track| !track.is_ended());
        drop(state);
        Ok(producer)
    }

    /// Publishes an existing track (e.g. one received from elsewhere) under `name`;
    /// [`Error::Duplicate`] if a live track has that name.
    pub fn insert_track(
        &mut self,
        name: impl Into<Path>,
        track: TrackConsumer,
    ) -> Result<(), Error> {
        let name = name.into();
        let mut state = self.shared.state.lock();
        if state.tracks.get(&name).is_some_and(|t| !t.is_ended()) {
            return Err(Error::Duplicate);
        }
        state.tracks.insert(name, track.shared().clone());
        Ok(())
    }

    /// Removes the track `name` from the broadcast (new lookups will not find it; existing
    /// consumers are not affected). True if it was there.
    pub fn remove_track(&mut self, name: &Path) -> bool {
        self.shared.state.lock().tracks.remove(name).is_some()
    }

    /// A new consumer of the broadcast.
    pub fn consume(&self) -> BroadcastConsumer {
        BroadcastConsumer {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for BroadcastProducer {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        state.ended = true;
        state.tracks.clear();
        let mut wakers = notify::take_all(&mut state.waiters);
        drop(state);
        notify::wake(&mut wakers);
    }
}

/// Finds the tracks of one broadcast by name. Cheap to [`Clone`].
///
/// # Drop
/// Dropping a consumer has no effect on the broadcast.
#[derive(Clone, Debug)]
pub struct BroadcastConsumer {
    shared: Arc<BroadcastShared>,
}

impl BroadcastConsumer {
    /// The broadcast's path prefix.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// A consumer of the live track `name` (the path after the broadcast's prefix), starting
    /// at its latest group. [`Error::NotFound`] if there is no such track or it has ended.
    pub fn track(&self, name: &Path) -> Result<TrackConsumer, Error> {
        let state = self.shared.state.lock();
        match state.tracks.get(name) {
            Some(track) if !track.is_ended() => Ok(TrackConsumer::new(track.clone())),
            _ => Err(Error::NotFound),
        }
    }

    /// The names of the live tracks, sorted.
    pub fn track_names(&self) -> Vec<Path> {
        let state = self.shared.state.lock();
        let mut names: Vec<Path> = state
            .tracks
            .iter()
            .filter(|(_, track)| !track.is_ended())
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Waits until the broadcast's producer is gone.
    ///
    /// # Cancel safety
    /// Cancel-safe: it only observes.
    pub async fn closed(&self) {
        let mut slot = Slot::default();
        poll_fn(|cx| {
            let mut state = self.shared.state.lock();
            if state.ended {
                return Poll::Ready(());
            }
            state.waiters.register(cx.waker(), &mut slot);
            Poll::Pending
        })
        .await
    }
}
