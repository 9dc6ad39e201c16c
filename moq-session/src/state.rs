//! The state the session's handles, its driver and every task share: one lock over a
//! publish half and a subscribe half, the driver's spawn queue, and the close.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicUsize;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use futures_util::future::BoxFuture;
use futures_util::task::AtomicWaker;
use moq_model::{
    AnnouncedProducer, AnnouncedSource, BroadcastConsumer, RouterConsumer, TrackConsumer,
    TrackProducer,
};
use moq_proto::{ErrorCode, Extensions, Info, Path, SubscribeUpdate};

use crate::session::Ops;
use crate::{Error, SessionConfig};

/// What the handles, the driver and every task share.
pub(crate) struct Shared {
    pub(crate) config: SessionConfig,
    /// The extensions of the peer's setup message.
    pub(crate) peer_extensions: Extensions,
    pub(crate) ops: Box<dyn Ops>,
    pub(crate) state: Mutex<State>,
    pub(crate) driver: AtomicWaker,
    pub(crate) tasks: AtomicUsize,
    /// The send half of the session stream, never written after the handshake. Held here,
    /// not by a task, so that it outlives the driver's shutdown: dropping it would reset or
    /// finish it, and a peer that sees that before our connection close (WebTransport can
    /// deliver them in either order) would end the session with code 4 or 0 instead of ours.
    _session_send: Mutex<Box<dyn std::any::Any + Send>>,
}

/// One of our subscriptions.
pub(crate) struct Sub {
    pub(crate) path: Path,
    pub(crate) producer: TrackProducer,
    /// Group streams being received for it.
    pub(crate) groups: usize,
    /// The publisher's view of the track, once its Info arrived.
    pub(crate) info: Option<Info>,
    /// A SubscribeUpdate not yet written (only the latest one is kept), and the task that
    /// writes it.
    pub(crate) update: Option<SubscribeUpdate>,
    pub(crate) update_waker: Option<Waker>,
}

/// A group stream whose header is not read yet: how often its reader found no data to read,
/// and the reader's waker from the last time.
#[derive(Default)]
pub(crate) struct HeaderWait {
    pub(crate) starved: u64,
    pub(crate) waker: Option<Waker>,
}

/// A published track or broadcast; `generation` tells a re-publication apart.
pub(crate) struct Published<T> {
    pub(crate) generation: u64,
    pub(crate) value: T,
}

/// The session's state, behind [`Shared::lock`].
#[derive(Default)]
pub(crate) struct State {
    pub(crate) closed: Option<Error>,
    pub(crate) closed_wakers: Vec<Waker>,
    pub(crate) spawn: Vec<BoxFuture<'static, ()>>,
    pub(crate) publish: PublishState,
    pub(crate) subscribe: SubscribeState,
}

/// What we publish and serve.
#[derive(Default)]
pub(crate) struct PublishState {
    pub(crate) tracks: HashMap<Path, Published<TrackConsumer>>,
    pub(crate) broadcasts: HashMap<Path, Published<BroadcastConsumer>>,
    pub(crate) next_generation: u64,
    pub(crate) router: Option<RouterConsumer>,
    /// What the session publishes itself, announced to the peer's announce streams.
    pub(crate) announced: AnnouncedProducer,
    /// More to announce ([`Session::announce`]), and the announce streams waiting for more
    /// (by the id of their merge).
    pub(crate) announce_sources: Vec<AnnouncedSource>,
    pub(crate) source_waiters: HashMap<u64, Waker>,
    pub(crate) next_merge: u64,
    pub(crate) serving: usize,
    pub(crate) announce_streams: usize,
    pub(crate) group_streams_out: usize,
    pub(crate) group_drops_sent: u64,
    /// Since the session started: group streams opened, and the frames and payload bytes
    /// written whole on them (added when each stream ends).
    pub(crate) groups_sent: u64,
    pub(crate) frames_sent: u64,
    pub(crate) payload_bytes_sent: u64,
    /// Groups never started because they left the cache first, and groups given up or
    /// failed after they started (both reported in GroupDrops).
    pub(crate) groups_skipped: u64,
    pub(crate) groups_dropped: u64,
}

/// What we subscribe to and receive.
#[derive(Default)]
pub(crate) struct SubscribeState {
    pub(crate) next_id: u64,
    pub(crate) subs: HashMap<u64, Sub>,
    pub(crate) sub_paths: HashMap<Path, u64>,
    pub(crate) next_announced: u64,
    pub(crate) announced_in: HashMap<u64, AnnouncedProducer>,
    pub(crate) group_streams_in: usize,
    pub(crate) group_drops_received: u64,
    /// Since the session started: group streams taken into a subscription, and the frames
    /// and payload bytes read whole from them (added when each stream ends).
    pub(crate) groups_received: u64,
    pub(crate) frames_received: u64,
    pub(crate) payload_bytes_received: u64,
    /// Group streams accepted whose header is not read yet, by the number of their accept,
    /// and who waits for some of them (see `subscribe::settle_group_streams`).
    pub(crate) groups_accepted: u64,
    pub(crate) headers_pending: BTreeMap<u64, HeaderWait>,
    pub(crate) header_waiters: Vec<Waker>,
}

impl Shared {
    pub(crate) fn new(
        config: SessionConfig,
        peer_extensions: Extensions,
        ops: Box<dyn Ops>,
        session_send: Box<dyn std::any::Any + Send>,
    ) -> Self {
        Self {
            config,
            peer_extensions,
            ops,
            state: Mutex::new(State::default()),
            driver: AtomicWaker::new(),
            tasks: AtomicUsize::new(0),
            _session_send: Mutex::new(session_send),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `task` on the driver. Dropped at once if the session is closed.
    pub(crate) fn spawn(&self, task: BoxFuture<'static, ()>) {
        let mut state = self.lock();
        if state.closed.is_some() {
            drop(state);
            drop(task);
            return;
        }
        state.spawn.push(task);
        drop(state);
        self.driver.wake();
    }

    /// Ends the session: records why, closes the connection with `code`, wakes the driver
    /// (which aborts every subscription with the error and drops every stream).
    pub(crate) fn close(&self, error: Error, code: ErrorCode, reason: &str) {
        let mut state = self.lock();
        if state.closed.is_some() {
            return;
        }
        state.closed = Some(error);
        let wakers = std::mem::take(&mut state.closed_wakers);
        drop(state);
        self.ops.close(code, reason);
        for waker in wakers {
            waker.wake();
        }
        self.driver.wake();
    }

    /// Closes the session because of `error` seen on the connection or the session stream
    /// (WIRE.md §4.2: FIN → 0, reset or connection error → 4, decode → 5).
    pub(crate) fn fail(&self, error: Error) {
        let code = error.code();
        let reason = error.to_string();
        self.close(error, code, &reason);
    }

    pub(crate) fn closed_error(&self) -> Option<Error> {
        self.lock().closed.clone()
    }

    /// The track published under `path`, directly or in a broadcast; no router.
    pub(crate) fn published(&self, path: &Path) -> Option<TrackConsumer> {
        let state = self.lock();
        if let Some(published) = state.publish.tracks.get(path) {
            return Some(published.value.clone());
        }
        // The longest matching broadcast prefix wins.
        let mut best: Option<(usize, TrackConsumer)> = None;
        for (prefix, published) in &state.publish.broadcasts {
            if prefix.len() >= best.as_ref().map_or(0, |(len, _)| *len)
                && let Some(name) = path.strip_prefix(prefix)
                && let Ok(track) = published.value.track(&name)
            {
                best = Some((prefix.len(), track));
            }
        }
        best.map(|(_, track)| track)
    }
}
