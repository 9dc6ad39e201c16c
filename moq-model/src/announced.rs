//! [`Announced`], [`AnnouncedProducer`], [`AnnouncedConsumer`]: which paths are available.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};

use moq_proto::Path;

use crate::Error;
use crate::notify::{self, Lock, Slot, Waiters};

/// A change in the set of announced paths.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Announced {
    /// The path became available.
    Active(Path),
    /// The path is no longer available.
    Ended(Path),
}

impl Announced {
    /// The (full) path the event is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Active(path) | Self::Ended(path) => path,
        }
    }

    /// True for [`Announced::Active`].
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Active(_))
    }
}

/// One consumer's view: its prefix and the events it has not read yet.
#[derive(Debug)]
struct Queue {
    prefix: Path,
    /// At most one pending event per path, except `Ended(p)` followed by `Active(p)`
    /// (a path that went away and came back), so the queue is bounded by twice the number of
    /// paths the consumer has seen.
    events: VecDeque<Announced>,
    waiters: Waiters,
}

impl Queue {
    fn push(&mut self, event: Announced) {
        if let Announced::Ended(path) = &event {
            // An activation the consumer never saw cancels out with its end.
            if let Some(i) = self
                .events
                .iter()
                .position(|e| matches!(e, Announced::Active(p) if p == path))
            {
                self.events.remove(i);
                return;
            }
        }
        self.events.push_back(event);
    }
}

#[derive(Debug)]
struct AnnounceState {
    active: BTreeSet<Path>,
    queues: BTreeMap<u64, Queue>,
    next_id: u64,
    end: Option<Result<(), Error>>,
    unused: Waiters,
}

impl AnnounceState {
    /// Queues `event` for every consumer whose prefix matches; collects their wakers.
    fn publish(&mut self, event: &Announced, wakers: &mut Vec<Waker>) {
        for queue in self.queues.values_mut() {
            if event.path().starts_with(&queue.prefix) {
                queue.push(event.clone());
                let mut taken = notify::take_all(&mut queue.waiters);
                wakers.append(&mut taken);
            }
        }
    }

    fn subscribe(&mut self, prefix: Path, events: VecDeque<Announced>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.queues.insert(
            id,
            Queue {
                prefix,
                events,
                waiters: Waiters::default(),
            },
        );
        id
    }
}

#[derive(Debug)]
struct AnnounceShared {
    state: Lock<AnnounceState>,
}

/// Announces and unannounces paths. Synchronous.
///
/// # Drop
/// Dropping the producer ends every active path (consumers receive [`Announced::Ended`] for
/// each) and then ends the consumers cleanly (`Ok(None)`).
#[derive(Debug)]
pub struct AnnouncedProducer {
    shared: Arc<AnnounceShared>,
    ended: bool,
}

impl Default for AnnouncedProducer {
    fn default() -> Self {
        Self::new()
    }
}

impl AnnouncedProducer {
    /// A producer with no active path and no consumer.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(AnnounceShared {
                state: Lock::new(AnnounceState {
                    active: BTreeSet::new(),
                    queues: BTreeMap::new(),
                    next_id: 0,
                    end: None,
                    unused: Waiters::default(),
                }),
            }),
            ended: false,
        }
    }

    /// Makes `path` active; false (and no event) if it already was.
    pub fn announce(&mut self, path: impl Into<Path>) -> bool {
        let path = path.into();
        let mut wakers = Vec::new();
        let mut state = self.shared.state.lock();
        if !state.active.insert(path.clone()) {
            return false;
        }
        state.publish(&Announced::Active(path), &mut wakers);
        drop(state);
        notify::wake(&mut wakers);
        true
    }

    /// Ends `path`; false (and no event) if it was not active.
    pub fn unannounce(&mut self, path: &Path) -> bool {
        let mut wakers = Vec::new();
        let mut state = self.shared.state.lock();
        if !state.active.remove(path) {
            return false;
        }
        state.publish(&Announced::Ended(path.clone()), &mut wakers);
        drop(state);
        notify::wake(&mut wakers);
        true
    }

    /// True if `path` is active.
    pub fn is_active(&self, path: &Path) -> bool {
        self.shared.state.lock().active.contains(path)
    }

    /// The active paths, in [`Path`] order.
    pub fn active(&self) -> Vec<Path> {
        self.shared.state.lock().active.iter().cloned().collect()
    }

    /// A consumer of the paths under `prefix` (the empty path for all). It first receives
    /// [`Announced::Active`] for every path active now, in [`Path`] order, then the changes.
    pub fn consume(&self, prefix: impl Into<Path>) -> AnnouncedConsumer {
        let prefix = prefix.into();
        let mut state = self.shared.state.lock();
        let events = state
            .active
            .iter()
            .filter(|path| path.starts_with(&prefix))
            .cloned()
            .map(Announced::Active)
            .collect();
        let id = state.subscribe(prefix.clone(), events);
        drop(state);
        AnnouncedConsumer {
            shared: self.shared.clone(),
            id,
            prefix,
        }
    }

    /// How many [`AnnouncedConsumer`]s are alive.
    pub fn consumer_count(&self) -> usize {
        self.shared.state.lock().queues.len()
    }

    /// Waits until no [`AnnouncedConsumer`] is alive (at once if none is).
    ///
    /// # Cancel safety
    /// Cancel-safe: it only observes.
    pub async fn unused(&self) {
        self.unused_owned().await
    }

    /// Like [`unused`](Self::unused), but the future does not borrow the producer: it can
    /// be held while the producer goes on announcing (e.g. by a session that owns the
    /// producer and must learn when the last consumer is gone).
    ///
    /// # Cancel safety
    /// Cancel-safe: it only observes.
    pub fn unused_owned(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            let mut slot = Slot::default();
            poll_fn(|cx| {
                let mut state = shared.state.lock();
                if state.queues.is_empty() {
                    return Poll::Ready(());
                }
                state.unused.register(cx.waker(), &mut slot);
                Poll::Pending
            })
            .await
        }
    }

    /// Ends the announcements with `error`: consumers' [`next`](AnnouncedConsumer::next)
    /// returns it at once, dropping events they had not read.
    pub fn abort(mut self, error: Error) {
        self.end(Err(error));
    }

    fn end(&mut self, end: Result<(), Error>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let mut wakers = Vec::new();
        let mut state = self.shared.state.lock();
        if end.is_ok() {
            let active = std::mem::take(&mut state.active);
            for path in active {
                state.publish(&Announced::Ended(path), &mut wakers);
            }
        }
        state.end = Some(end);
        for queue in state.queues.values_mut() {
            wakers.append(&mut notify::take_all(&mut queue.waiters));
        }
        drop(state);
        notify::wake(&mut wakers);
    }
}

impl Drop for AnnouncedProducer {
    fn drop(&mut self) {
        self.end(Ok(()));
    }
}

/// Receives the announcements under one prefix, in order.
///
/// Cheap to [`Clone`]: a clone starts with the same unread events and then receives every
/// change too. Changes a consumer has not read yet are merged: a path that became active and
/// ended again before the consumer looked is not reported at all.
///
/// # Drop
/// Dropping the last consumer wakes [`AnnouncedProducer::unused`].
#[derive(Debug)]
pub struct AnnouncedConsumer {
    shared: Arc<AnnounceShared>,
    id: u64,
    prefix: Path,
}

impl AnnouncedConsumer {
    /// The prefix this consumer watches.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The next change: `Ok(Some(event))`, `Ok(None)` once the producer is gone and every
    /// event was read, or the producer's abort error.
    ///
    /// # Cancel safety
    /// Cancel-safe: an event is removed only when it is returned.
    pub async fn next(&mut self) -> Result<Option<Announced>, Error> {
        let mut slot = Slot::default();
        poll_fn(|cx| {
            let mut state = self.shared.state.lock();
            if let Some(Err(error)) = state.end {
                return Poll::Ready(Err(error));
            }
            let ended = state.end.is_some();
            let Some(queue) = state.queues.get_mut(&self.id) else {
                return Poll::Ready(Ok(None));
            };
            if let Some(event) = queue.events.pop_front() {
                return Poll::Ready(Ok(Some(event)));
            }
            if ended {
                return Poll::Ready(Ok(None));
            }
            queue.waiters.register(cx.waker(), &mut slot);
            Poll::Pending
        })
        .await
    }
}

impl Clone for AnnouncedConsumer {
    fn clone(&self) -> Self {
        let mut state = self.shared.state.lock();
        let events = state
            .queues
            .get(&self.id)
            .map(|queue| queue.events.clone())
            .unwrap_or_default();
        let id = state.subscribe(self.prefix.clone(), events);
        drop(state);
        Self {
            shared: self.shared.clone(),
            id,
            prefix: self.prefix.clone(),
        }
    }
}

impl Drop for AnnouncedConsumer {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        state.queues.remove(&self.id);
        if state.queues.is_empty() {
            let mut wakers = notify::take_all(&mut state.unused);
            drop(state);
            notify::wake(&mut wakers);
        }
    }
}
