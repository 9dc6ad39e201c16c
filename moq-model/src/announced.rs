//! [`Announced`], [`AnnouncedProducer`], [`AnnouncedConsumer`]: which paths are available.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

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
///
/// At most one pending event per path, except `Ended(p)` followed by `Active(p)` (a path
/// that went away and came back), so the queue is bounded by twice the number of paths the
/// consumer has seen. An end cancels the unread activation of its path in constant time
/// (a path's unread activation is indexed), leaving a hole that reading skips; holes are
/// compacted away once they are half the queue.
#[derive(Debug)]
struct Queue {
    prefix: Path,
    /// Unread events in order; `None` is an activation cancelled by its end.
    events: VecDeque<Option<Announced>>,
    /// The number, counted since the queue was made, of `events[0]`.
    head: u64,
    /// Paths whose activation is unread, with that event's number.
    unread_active: HashMap<Path, u64>,
    /// Cancelled activations still in `events`.
    holes: usize,
    waiters: Waiters,
}

/// A copy of the unread events, with no waiter (for a cloned consumer).
impl Clone for Queue {
    fn clone(&self) -> Self {
        Self {
            prefix: self.prefix.clone(),
            events: self.events.clone(),
            head: self.head,
            unread_active: self.unread_active.clone(),
            holes: self.holes,
            waiters: Waiters::default(),
        }
    }
}

impl Queue {
    fn new(prefix: Path, events: impl IntoIterator<Item = Announced>) -> Self {
        let mut queue = Self {
            prefix,
            events: VecDeque::new(),
            head: 0,
            unread_active: HashMap::new(),
            holes: 0,
            waiters: Waiters::default(),
        };
        for event in events {
            queue.push(event);
        }
        queue
    }

    fn push(&mut self, event: Announced) {
        match &event {
            Announced::Ended(path) => {
                // An activation the consumer never saw cancels out with its end.
                if let Some(number) = self.unread_active.remove(path) {
                    self.events[(number - self.head) as usize] = None;
                    self.holes += 1;
                    self.compact();
                    return;
                }
            }
            Announced::Active(path) => {
                let number = self.head + self.events.len() as u64;
                self.unread_active.insert(path.clone(), number);
            }
        }
        self.events.push_back(Some(event));
    }

    fn pop(&mut self) -> Option<Announced> {
        while let Some(slot) = self.events.pop_front() {
            let number = self.head;
            self.head += 1;
            match slot {
                None => self.holes -= 1,
                Some(event) => {
                    if let Announced::Active(path) = &event
                        && self.unread_active.get(path) == Some(&number)
                    {
                        self.unread_active.remove(path);
                    }
                    return Some(event);
                }
            }
        }
        None
    }

    /// Drops the holes once they are half the queue (and not just a few), renumbering.
    fn compact(&mut self) {
        if self.holes < 64 || self.holes * 2 < self.events.len() {
            return;
        }
        let events: Vec<Announced> = self.events.drain(..).flatten().collect();
        self.head = 0;
        self.holes = 0;
        self.unread_active.clear();
        for event in events {
            self.push(event);
        }
    }
}

#[derive(Debug)]
struct AnnounceState {
    active: BTreeSet<Path>,
    /// Boxed: a map's first node holds room for eleven entries, and most producers (one per
    /// session's announce interest) have a single consumer.
    queues: BTreeMap<u64, Box<Queue>>,
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

    fn subscribe(&mut self, queue: Queue) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.queues.insert(id, Box::new(queue));
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
        AnnouncedConsumer::subscribe(&self.shared, Path::empty(), prefix.into())
    }

    /// A handle that makes consumers of these announcements on demand, and queues nothing
    /// until it does ([`AnnouncedSource`]).
    pub fn source(&self) -> AnnouncedSource {
        AnnouncedSource {
            shared: self.shared.clone(),
            root: Path::empty(),
            prefix: Some(Path::empty()),
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

/// Where announcements can be followed from, without following them yet: the paths of an
/// [`AnnouncedProducer`] under a prefix, seen from a root, and a way to make
/// [`AnnouncedConsumer`]s of them on demand.
///
/// A consumer queues every change until it is read; a source queues nothing. So something
/// that may or may not need the announcements (a session, which serves them only if its peer
/// asks) holds a source, not a consumer: ten thousand sessions holding consumers of a table
/// of 65,000 paths would queue 650 million events nobody reads.
///
/// Seen from a root (see [`rooted`](Self::rooted)), paths are reported without the root's
/// parts, and prefixes are relative to it. Cheap to [`Clone`]; it does not count as a
/// consumer.
///
/// ```
/// use moq_model::{Announced, AnnouncedProducer, Path};
///
/// let mut table = AnnouncedProducer::new();
/// table.announce(["room", "alice", "cam"]);
/// table.announce(["lobby", "x"]);
/// let room = table.source().rooted(&Path::from(["room"]));
/// let mut alice = room.consume(["alice"]).expect("under the source");
/// # futures_lite(async move {
/// assert_eq!(alice.next().await.unwrap(), Some(Announced::Active(["alice", "cam"].into())));
/// # });
/// assert!(room.under(&["lobby"].into()).is_some()); // room/lobby: nothing there yet
/// # fn futures_lite<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// ```
#[derive(Clone)]
pub struct AnnouncedSource {
    shared: Arc<AnnounceShared>,
    /// The parts the paths are reported without.
    root: Path,
    /// The absolute prefix of the paths it covers (under `root`); `None`: none.
    prefix: Option<Path>,
}

impl std::fmt::Debug for AnnouncedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnouncedSource")
            .field("root", &self.root)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The longer of two prefixes if one covers the other; `None` if they are disjoint.
fn narrower(a: &Path, b: &Path) -> Option<Path> {
    if a.starts_with(b) {
        Some(a.clone())
    } else if b.starts_with(a) {
        Some(b.clone())
    } else {
        None
    }
}

impl AnnouncedSource {
    /// The same announcements seen from `root` (relative to this source's root): only
    /// paths under it are covered, and they are reported without it.
    pub fn rooted(&self, root: &Path) -> AnnouncedSource {
        let root = self.root.join(root);
        let prefix = self
            .prefix
            .as_ref()
            .and_then(|prefix| narrower(prefix, &root));
        AnnouncedSource {
            shared: self.shared.clone(),
            root,
            prefix,
        }
    }

    /// Narrowed to the paths under `prefix` (relative to its root); `None` if it covers
    /// none of them.
    pub fn under(&self, prefix: &Path) -> Option<AnnouncedSource> {
        let prefix = narrower(self.prefix.as_ref()?, &self.root.join(prefix))?;
        Some(AnnouncedSource {
            shared: self.shared.clone(),
            root: self.root.clone(),
            prefix: Some(prefix),
        })
    }

    /// The prefix it covers, relative to its root; `None` if it covers nothing.
    pub fn prefix(&self) -> Option<Path> {
        self.prefix.as_ref()?.strip_prefix(&self.root)
    }

    /// A consumer of the paths it covers under `prefix` (relative to its root): Active for
    /// every one active now, then the changes; `None` if it covers none of them.
    pub fn consume(&self, prefix: impl Into<Path>) -> Option<AnnouncedConsumer> {
        let wanted = self.root.join(&prefix.into());
        let prefix = narrower(self.prefix.as_ref()?, &wanted)?;
        Some(AnnouncedConsumer::subscribe(
            &self.shared,
            self.root.clone(),
            prefix,
        ))
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
    /// The parts the paths are reported without (from an [`AnnouncedSource`]).
    root: Path,
    /// The absolute prefix of the paths it follows.
    prefix: Path,
    /// Events returned in a row without waiting (see [`YIELD_EVERY`]).
    ready_run: usize,
    /// Where the waker of the last pending poll sits.
    slot: Slot,
}

/// After this many events in a row, [`AnnouncedConsumer::next`] lets its executor run
/// other tasks once before it goes on.
const YIELD_EVERY: usize = 64;

impl AnnouncedConsumer {
    /// A consumer of the paths under the absolute `prefix`, reported without `root`.
    fn subscribe(shared: &Arc<AnnounceShared>, root: Path, prefix: Path) -> Self {
        let mut state = shared.state.lock();
        let events: Vec<Announced> = state
            .active
            .iter()
            .filter(|path| path.starts_with(&prefix))
            .cloned()
            .map(Announced::Active)
            .collect();
        let id = state.subscribe(Queue::new(prefix.clone(), events));
        drop(state);
        Self {
            shared: shared.clone(),
            id,
            root,
            prefix,
            ready_run: 0,
            slot: Slot::default(),
        }
    }

    /// The prefix this consumer watches (relative to its source's root, if it came from
    /// one).
    pub fn prefix(&self) -> Path {
        self.prefix
            .strip_prefix(&self.root)
            .unwrap_or_else(|| self.prefix.clone())
    }

    /// A source of the same announcements this consumer follows, to make more consumers
    /// of them later.
    pub fn source(&self) -> AnnouncedSource {
        AnnouncedSource {
            shared: self.shared.clone(),
            root: self.root.clone(),
            prefix: Some(self.prefix.clone()),
        }
    }

    /// The next change: `Ok(Some(event))`, `Ok(None)` once the producer is gone and every
    /// event was read, or the producer's abort error.
    ///
    /// After 64 events in a row it returns `Pending` once (waking itself at once), so that
    /// a task draining a long backlog lets others run on its executor.
    ///
    /// # Cancel safety
    /// Cancel-safe: an event is removed only when it is returned.
    pub async fn next(&mut self) -> Result<Option<Announced>, Error> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// [`next`](Self::next) as a poll, for code that waits on several consumers at once.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Announced>, Error>> {
        // A consumer with thousands of events queued would otherwise get every one at once,
        // and a task looping over them would hold its executor thread for the whole backlog:
        // after a run of ready events, give the executor a turn.
        if self.ready_run >= YIELD_EVERY {
            self.ready_run = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let mut state = self.shared.state.lock();
        if let Some(Err(error)) = state.end {
            return Poll::Ready(Err(error));
        }
        let ended = state.end.is_some();
        let Some(queue) = state.queues.get_mut(&self.id) else {
            return Poll::Ready(Ok(None));
        };
        if let Some(event) = queue.pop() {
            drop(state);
            self.ready_run += 1;
            return Poll::Ready(Ok(Some(self.relative(event))));
        }
        if ended {
            return Poll::Ready(Ok(None));
        }
        self.ready_run = 0;
        queue.waiters.register(cx.waker(), &mut self.slot);
        Poll::Pending
    }

    /// `event` with the root's parts taken off its path.
    fn relative(&self, event: Announced) -> Announced {
        if self.root.is_empty() {
            return event;
        }
        let strip = |path: Path| path.strip_prefix(&self.root).unwrap_or(path);
        match event {
            Announced::Active(path) => Announced::Active(strip(path)),
            Announced::Ended(path) => Announced::Ended(strip(path)),
        }
    }
}

/// The source of what the consumer follows (its queue goes with it).
impl From<AnnouncedConsumer> for AnnouncedSource {
    fn from(consumer: AnnouncedConsumer) -> Self {
        consumer.source()
    }
}

impl Clone for AnnouncedConsumer {
    fn clone(&self) -> Self {
        let mut state = self.shared.state.lock();
        let queue = state
            .queues
            .get(&self.id)
            .map(|queue| Queue::clone(queue))
            .unwrap_or_else(|| Queue::new(self.prefix.clone(), []));
        let id = state.subscribe(queue);
        drop(state);
        Self {
            shared: self.shared.clone(),
            id,
            root: self.root.clone(),
            prefix: self.prefix.clone(),
            ready_run: 0,
            slot: Slot::default(),
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

#[cfg(test)]
mod queue_tests {
    use super::*;

    fn p(i: usize) -> Path {
        Path::from([i.to_string()])
    }

    fn drain(queue: &mut Queue) -> Vec<Announced> {
        std::iter::from_fn(|| queue.pop()).collect()
    }

    #[test]
    fn an_unread_activation_cancels_with_its_end_in_order() {
        let mut queue = Queue::new(Path::empty(), [Announced::Active(p(0))]);
        for i in 1..5 {
            queue.push(Announced::Active(p(i)));
        }
        queue.push(Announced::Ended(p(2)));
        queue.push(Announced::Ended(p(0)));
        let seen = drain(&mut queue);
        assert_eq!(seen, [1, 3, 4].map(|i| Announced::Active(p(i))).to_vec());
        // A path read as active and then ended: the end is kept, and a return after it too.
        queue.push(Announced::Ended(p(1)));
        queue.push(Announced::Active(p(1)));
        let mut copy = queue.clone();
        assert_eq!(
            drain(&mut queue),
            [Announced::Ended(p(1)), Announced::Active(p(1))]
        );
        // A clone reads the same, and ends cancel its copy of the activation.
        copy.push(Announced::Ended(p(1)));
        assert_eq!(drain(&mut copy), [Announced::Ended(p(1))]);
    }

    #[test]
    fn a_flapping_path_does_not_grow_an_unread_queue() {
        let mut queue = Queue::new(Path::empty(), []);
        queue.push(Announced::Active(p(0)));
        for _ in 0..10_000 {
            queue.push(Announced::Active(p(1)));
            queue.push(Announced::Ended(p(1)));
        }
        assert!(queue.events.len() <= 130, "{}", queue.events.len());
        assert_eq!(drain(&mut queue), [Announced::Active(p(0))]);
    }

    #[test]
    fn many_ends_of_unread_paths_are_cheap() {
        // 200,000 activations then their ends: linear, where a scan per end was quadratic.
        let mut queue = Queue::new(Path::empty(), []);
        for i in 0..200_000 {
            queue.push(Announced::Active(p(i)));
        }
        for i in 0..200_000 {
            queue.push(Announced::Ended(p(i)));
        }
        assert_eq!(queue.pop(), None);
        assert!(queue.unread_active.is_empty());
    }
}
