//! [`Track`], [`TrackBuilder`], [`TrackProducer`], [`TrackConsumer`]: a live, bounded cache of
//! groups.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use moq_proto::{GroupOrder, Path};

use crate::group::{GroupConsumer, GroupLimits, GroupProducer, GroupShared};
use crate::notify::{self, Lock, Slot, Waiters};
use crate::{Error, MemoryBudget};

/// How much of a track's history its cache keeps, and how much memory its groups may take.
///
/// The cache keeps the latest group (the one with the highest sequence), plus older groups
/// created less than [`Track::group_expires`] ago, as long as there are at most
/// `max_groups` of them and their payloads add up to at most `max_bytes`; the oldest (lowest
/// sequence) go first. Groups are dropped only when the producer acts (creates a group), never
/// by a timer. A consumer that already holds a [`GroupConsumer`] keeps reading it after the
/// cache has let it go.
///
/// The latest group stays in the cache whatever its size, for the consumers that read it,
/// but once it holds more than `max_bytes` a new consumer no longer starts with it: it joins
/// at the next group.
///
/// Hard limits: a group may hold at most `max_group_bytes` of payload, and every group of
/// the track charges its payload to `budget` (shared with other tracks) while it lives. A
/// write past either aborts the group with [`Error::BoundsExceeded`] (its consumers see
/// that error, the writer gets it back; a session receiving the group stops its stream with
/// code 11), and the group's bytes are given back once the cache and its consumers have let
/// it go. A frame written in chunks is charged as its chunks are written; one whose declared
/// size could never fit `max_group_bytes` is refused when it is created.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheLimits {
    /// The most groups kept, the latest included (at least 1 is always kept).
    pub max_groups: usize,
    /// The most payload bytes kept across the groups (the latest group is kept whatever its
    /// size, but new consumers skip it past this).
    pub max_bytes: usize,
    /// The most payload bytes one group may hold; a write past it aborts the group.
    /// Default: no limit.
    pub max_group_bytes: usize,
    /// A budget the track's groups charge their payload to; a write past it aborts its
    /// group. Default: none.
    pub budget: Option<MemoryBudget>,
}

impl CacheLimits {
    /// 64 groups.
    pub const DEFAULT_MAX_GROUPS: usize = 64;
    /// 64 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 64 << 20;
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            max_groups: Self::DEFAULT_MAX_GROUPS,
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_group_bytes: usize::MAX,
            budget: None,
        }
    }
}

/// The description of a track: its path, how to deliver it, how much of it to cache.
///
/// `priority`, `group_order` and `group_expires` are what the wire carries (WIRE.md §5.8);
/// `cache` is local.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Track {
    /// The track's full name.
    pub path: Path,
    /// Higher is sent first when bandwidth is short.
    pub priority: i8,
    /// Which groups to send first when bandwidth is short.
    pub group_order: GroupOrder,
    /// How long a group stays useful after it was created; older groups are dropped from the
    /// cache (the latest group is always kept). Zero (the default) keeps only the latest.
    pub group_expires: Duration,
    /// Caps on the cache, whatever the expiry.
    pub cache: CacheLimits,
}

impl Track {
    /// A track with default settings: priority 0, descending order, no expiry, default caps.
    pub fn new(path: impl Into<Path>) -> Self {
        Self {
            path: path.into(),
            priority: 0,
            group_order: GroupOrder::default(),
            group_expires: Duration::ZERO,
            cache: CacheLimits::default(),
        }
    }

    /// A builder for a track with this path.
    pub fn build(path: impl Into<Path>) -> TrackBuilder {
        TrackBuilder {
            track: Self::new(path),
        }
    }

    /// A producer for this track and a first consumer of it.
    pub fn produce(self) -> (TrackProducer, TrackConsumer) {
        let producer = TrackProducer::new(self);
        let consumer = producer.consume();
        (producer, consumer)
    }
}

/// Builds a [`Track`] setting by setting.
///
/// ```
/// use std::time::Duration;
/// use moq_model::Track;
///
/// let track = Track::build(["room", "alice", "video"])
///     .priority(2)
///     .group_expires(Duration::from_secs(2))
///     .max_groups(8)
///     .into_track();
/// assert_eq!(track.priority, 2);
/// assert_eq!(track.cache.max_groups, 8);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct TrackBuilder {
    track: Track,
}

impl TrackBuilder {
    /// Sets [`Track::priority`].
    pub fn priority(mut self, priority: i8) -> Self {
        self.track.priority = priority;
        self
    }

    /// Sets [`Track::group_order`].
    pub fn group_order(mut self, order: GroupOrder) -> Self {
        self.track.group_order = order;
        self
    }

    /// Sets [`Track::group_expires`].
    pub fn group_expires(mut self, expires: Duration) -> Self {
        self.track.group_expires = expires;
        self
    }

    /// Sets [`CacheLimits::max_groups`] (0 is taken as 1).
    pub fn max_groups(mut self, groups: usize) -> Self {
        self.track.cache.max_groups = groups.max(1);
        self
    }

    /// Sets [`CacheLimits::max_group_bytes`].
    pub fn max_group_bytes(mut self, bytes: usize) -> Self {
        self.track.cache.max_group_bytes = bytes;
        self
    }

    /// Sets [`CacheLimits::budget`].
    pub fn budget(mut self, budget: MemoryBudget) -> Self {
        self.track.cache.budget = Some(budget);
        self
    }

    /// Sets [`CacheLimits::max_bytes`].
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.track.cache.max_bytes = bytes;
        self
    }

    /// The track.
    pub fn into_track(self) -> Track {
        self.track
    }

    /// A producer for the track and a first consumer of it.
    pub fn produce(self) -> (TrackProducer, TrackConsumer) {
        self.track.produce()
    }
}

/// A snapshot of a track's cache and audience.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackStats {
    /// Groups in the cache.
    pub groups: usize,
    /// Payload bytes written into the cached groups.
    pub bytes: usize,
    /// The highest group sequence created so far.
    pub latest: Option<u64>,
    /// The oldest (lowest) sequence still cached.
    pub oldest: Option<u64>,
    /// Live [`TrackConsumer`]s.
    pub consumers: usize,
}

#[derive(Debug)]
struct CachedGroup {
    group: Arc<GroupShared>,
    created: Instant,
}

#[derive(Debug)]
struct TrackState {
    /// Sorted by sequence, no duplicates; never empty once a group was created (the latest
    /// is always kept).
    groups: VecDeque<CachedGroup>,
    end: Option<Result<(), Error>>,
    consumers: usize,
    /// Consumers waiting for a group or for the end.
    waiters: Waiters,
    /// The producer waiting for the last consumer to go.
    unused: Waiters,
}

impl TrackState {
    fn latest(&self) -> Option<u64> {
        self.groups.back().map(|cached| cached.group.sequence)
    }

    fn stats(&self) -> TrackStats {
        TrackStats {
            groups: self.groups.len(),
            bytes: self.groups.iter().map(|cached| cached.group.bytes()).sum(),
            latest: self.latest(),
            oldest: self.groups.front().map(|cached| cached.group.sequence),
            consumers: self.consumers,
        }
    }

    /// Drops what the cache may no longer keep (see [`CacheLimits`]).
    fn evict(&mut self, track: &Track, now: Instant) {
        if self.groups.len() <= 1 {
            return;
        }
        let latest = self.latest();
        let expires = track.group_expires;
        self.groups.retain(|cached| {
            Some(cached.group.sequence) == latest || now.duration_since(cached.created) < expires
        });
        let max_groups = track.cache.max_groups.max(1);
        while self.groups.len() > max_groups {
            self.groups.pop_front();
        }
        let mut bytes: usize = self.groups.iter().map(|cached| cached.group.bytes()).sum();
        while bytes > track.cache.max_bytes && self.groups.len() > 1 {
            if let Some(cached) = self.groups.pop_front() {
                bytes -= cached.group.bytes().min(bytes);
            }
        }
    }
}

/// What producers and consumers of one track share; also held (without counting as a
/// consumer) by broadcasts.
#[derive(Debug)]
pub(crate) struct TrackShared {
    info: Track,
    state: Lock<TrackState>,
}

impl TrackShared {
    pub(crate) fn is_ended(&self) -> bool {
        self.state.lock().end.is_some()
    }
}

/// Creates the groups of one track. Synchronous: no method blocks or awaits.
///
/// Groups are cached even when nobody consumes the track, within the track's
/// [`CacheLimits`] and [`Track::group_expires`].
///
/// # Drop
/// Dropping the producer ends the track cleanly, like [`finish`](Self::finish): consumers
/// receive the cached groups they have not passed yet and then `Ok(None)`. Groups whose
/// [`GroupProducer`]s are still alive keep receiving frames.
#[derive(Debug)]
pub struct TrackProducer {
    shared: Arc<TrackShared>,
    wakers: Vec<Waker>,
    ended: bool,
}

impl TrackProducer {
    /// A producer for `track`, with no consumer yet (see [`consume`](Self::consume)).
    pub fn new(track: Track) -> Self {
        Self {
            shared: Arc::new(TrackShared {
                info: track,
                state: Lock::new(TrackState {
                    groups: VecDeque::new(),
                    end: None,
                    consumers: 0,
                    waiters: Waiters::default(),
                    unused: Waiters::default(),
                }),
            }),
            wakers: Vec::new(),
            ended: false,
        }
    }

    /// The track's description.
    pub fn info(&self) -> &Track {
        &self.shared.info
    }

    /// The track's path.
    pub fn path(&self) -> &Path {
        &self.shared.info.path
    }

    /// Creates the group after the latest one (sequence 0 for the first).
    ///
    /// # Panics
    /// If the latest sequence is `u64::MAX` (only reachable through
    /// [`create_group`](Self::create_group); the wire carries sequences below 2^62).
    pub fn append_group(&mut self) -> GroupProducer {
        let result = self.insert(None);
        // Appending lands after every cached sequence, so it never collides.
        result.unwrap_or_else(|_| panic!("group sequence overflow"))
    }

    /// Creates the group with this sequence, which may be older than the latest (it then
    /// reaches the consumers that have not passed it yet, while it stays cached).
    /// [`Error::Duplicate`] if a group with this sequence is cached.
    pub fn create_group(&mut self, sequence: u64) -> Result<GroupProducer, Error> {
        self.insert(Some(sequence))
    }

    fn insert(&mut self, sequence: Option<u64>) -> Result<GroupProducer, Error> {
        let now = Instant::now();
        let mut state = self.shared.state.lock();
        let latest = state.latest();
        let sequence = match (sequence, latest) {
            (Some(sequence), _) => sequence,
            (None, None) => 0,
            (None, Some(latest)) => latest.checked_add(1).ok_or(Error::BoundsExceeded)?,
        };
        let position = state
            .groups
            .partition_point(|cached| cached.group.sequence < sequence);
        if state
            .groups
            .get(position)
            .is_some_and(|cached| cached.group.sequence == sequence)
        {
            return Err(Error::Duplicate);
        }
        // Most consumers will wait on this group: size its waiter lists for them up front.
        let hint = state.consumers;
        let limits = GroupLimits {
            max_bytes: self.shared.info.cache.max_group_bytes,
            budget: self.shared.info.cache.budget.clone(),
        };
        let group = Arc::new(GroupShared::new(sequence, hint).with_limits(limits));
        state.groups.insert(
            position,
            CachedGroup {
                group: group.clone(),
                created: now,
            },
        );
        let info = &self.shared.info;
        state.evict(info, now);
        state.waiters.take(&mut self.wakers);
        drop(state);
        notify::wake(&mut self.wakers);
        Ok(GroupProducer::new(group, hint))
    }

    /// A new consumer, starting at the latest group (see [`TrackConsumer::next_group`]).
    pub fn consume(&self) -> TrackConsumer {
        TrackConsumer::new(self.shared.clone())
    }

    /// The highest group sequence created so far.
    pub fn latest(&self) -> Option<u64> {
        self.shared.state.lock().latest()
    }

    /// The cache and audience right now.
    pub fn stats(&self) -> TrackStats {
        self.shared.state.lock().stats()
    }

    /// True if no [`TrackConsumer`] is alive.
    pub fn is_unused(&self) -> bool {
        self.shared.state.lock().consumers == 0
    }

    /// Waits until no [`TrackConsumer`] of this track is alive (at once if none is). A new
    /// consumer may appear afterwards (through [`consume`](Self::consume) or a broadcast).
    ///
    /// # Cancel safety
    /// Cancel-safe: it only observes.
    pub async fn unused(&self) {
        self.unused_owned().await
    }

    /// Like [`unused`](Self::unused), but the future does not borrow the producer: it can
    /// be held while the producer goes on creating groups (e.g. by a session that owns the
    /// producer and must learn when the last consumer is gone). It does not count as a
    /// consumer.
    ///
    /// # Cancel safety
    /// Cancel-safe: it only observes.
    pub fn unused_owned(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            let mut slot = Slot::default();
            poll_fn(|cx| {
                let mut state = shared.state.lock();
                if state.consumers == 0 {
                    return Poll::Ready(());
                }
                state.unused.register(cx.waker(), &mut slot);
                Poll::Pending
            })
            .await
        }
    }

    /// Ends the track cleanly (same as dropping the producer).
    pub fn finish(mut self) {
        self.end(Ok(()));
    }

    /// Ends the track with `error`. Consumers' [`next_group`](TrackConsumer::next_group) and
    /// [`closed`](TrackConsumer::closed) return it, and every cached group that was not
    /// finished is aborted with it too (its consumers, and those of its unfinished frames,
    /// see the error). Finished groups stay readable by consumers that hold them.
    pub fn abort(mut self, error: Error) {
        self.end(Err(error));
    }

    fn end(&mut self, end: Result<(), Error>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let mut state = self.shared.state.lock();
        state.end = Some(end);
        let groups: Vec<Arc<GroupShared>> = match end {
            Ok(()) => Vec::new(),
            Err(_) => state.groups.iter().map(|c| c.group.clone()).collect(),
        };
        state.waiters.take(&mut self.wakers);
        drop(state);
        notify::wake(&mut self.wakers);
        if let Err(error) = end {
            for group in groups {
                group.abort(error);
            }
        }
    }
}

impl Drop for TrackProducer {
    fn drop(&mut self) {
        self.end(Ok(()));
    }
}

/// Reads the groups of one track, in sequence order, from the latest group at the time it
/// was created.
///
/// Asynchronous and cheap to [`Clone`]: a clone continues from the same position, and every
/// clone receives every group (the groups and their payloads are shared, not copied).
///
/// # Drop
/// Dropping the last consumer (of every clone, including those handed out by a
/// [`BroadcastConsumer`](crate::BroadcastConsumer)) wakes [`TrackProducer::unused`]. The
/// track itself goes on.
#[derive(Debug)]
pub struct TrackConsumer {
    shared: Arc<TrackShared>,
    /// The lowest sequence the next group may have.
    cursor: u64,
    skipped: u64,
}

impl TrackConsumer {
    pub(crate) fn new(shared: Arc<TrackShared>) -> Self {
        let cursor = {
            let mut state = shared.state.lock();
            state.consumers += 1;
            match state.groups.back() {
                // A latest group past the cache's byte limit is left to those reading it.
                Some(latest) if latest.group.bytes() > shared.info.cache.max_bytes => {
                    latest.group.sequence + 1
                }
                Some(latest) => latest.group.sequence,
                None => 0,
            }
        };
        Self {
            shared,
            cursor,
            skipped: 0,
        }
    }

    /// A consumer of the track `shared` (used by broadcasts and routers).
    pub(crate) fn shared(&self) -> &Arc<TrackShared> {
        &self.shared
    }

    /// The track's description (as its producer declared it).
    pub fn info(&self) -> &Track {
        &self.shared.info
    }

    /// The track's path.
    pub fn path(&self) -> &Path {
        &self.shared.info.path
    }

    /// The next group: the cached group with the lowest sequence this consumer has not
    /// passed. The first call returns the latest group at the time the consumer was created
    /// (or the first group created after that), from its first frame; later calls return
    /// groups in increasing sequence order. Groups that left the cache before this consumer
    /// got to them are skipped (see [`skipped`](Self::skipped)): a slow consumer never holds
    /// the producer back.
    ///
    /// `Ok(None)` once the track has ended cleanly and no cached group is left for this
    /// consumer; the track's error if it was aborted.
    ///
    /// # Cancel safety
    /// Cancel-safe: the consumer advances only when a group is returned.
    pub async fn next_group(&mut self) -> Result<Option<GroupConsumer>, Error> {
        let mut slot = Slot::default();
        poll_fn(|cx| self.poll_next_group(cx, &mut slot)).await
    }

    fn poll_next_group(
        &mut self,
        cx: &mut Context<'_>,
        slot: &mut Slot,
    ) -> Poll<Result<Option<GroupConsumer>, Error>> {
        let mut state = self.shared.state.lock();
        if let Some(Err(error)) = state.end {
            return Poll::Ready(Err(error));
        }
        let position = state
            .groups
            .partition_point(|cached| cached.group.sequence < self.cursor);
        if let Some(cached) = state.groups.get(position) {
            let sequence = cached.group.sequence;
            let group = GroupConsumer::new(cached.group.clone());
            drop(state);
            self.skipped += sequence - self.cursor;
            self.cursor = sequence + 1;
            return Poll::Ready(Ok(Some(group)));
        }
        if state.end.is_some() {
            return Poll::Ready(Ok(None));
        }
        state.waiters.register(cx.waker(), slot);
        Poll::Pending
    }

    /// How many sequence numbers this consumer has jumped over so far: groups that left the
    /// cache before it got to them (or that were never created, if the producer left gaps).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The cached group with this sequence, if there is one. Does not move the consumer.
    pub fn group(&self, sequence: u64) -> Option<GroupConsumer> {
        let state = self.shared.state.lock();
        let position = state
            .groups
            .binary_search_by_key(&sequence, |cached| cached.group.sequence)
            .ok()?;
        Some(GroupConsumer::new(state.groups[position].group.clone()))
    }

    /// The highest group sequence created so far.
    pub fn latest(&self) -> Option<u64> {
        self.shared.state.lock().latest()
    }

    /// The cache and audience right now.
    pub fn stats(&self) -> TrackStats {
        self.shared.state.lock().stats()
    }

    /// Whether the track has ended (finished, aborted, or its producer dropped), without
    /// waiting: [`closed`](Self::closed) would be ready. Cached groups may still be unread.
    ///
    /// ```
    /// use moq_model::Track;
    ///
    /// let (producer, consumer) = Track::new(["clock"]).produce();
    /// assert!(!consumer.is_closed());
    /// drop(producer);
    /// assert!(consumer.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.state.lock().end.is_some()
    }

    /// Waits until the track has ended: `Ok(())` when its producer finished or was dropped,
    /// the error when it was aborted. Cached groups may still be unread.
    ///
    /// # Cancel safety
    /// Cancel-safe: it only observes.
    pub async fn closed(&self) -> Result<(), Error> {
        let mut slot = Slot::default();
        poll_fn(|cx| {
            let mut state = self.shared.state.lock();
            match state.end {
                Some(end) => Poll::Ready(end),
                None => {
                    state.waiters.register(cx.waker(), &mut slot);
                    Poll::Pending
                }
            }
        })
        .await
    }
}

impl Clone for TrackConsumer {
    fn clone(&self) -> Self {
        self.shared.state.lock().consumers += 1;
        Self {
            shared: self.shared.clone(),
            cursor: self.cursor,
            skipped: self.skipped,
        }
    }
}

impl Drop for TrackConsumer {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        state.consumers -= 1;
        if state.consumers == 0 {
            let mut wakers = notify::take_all(&mut state.unused);
            drop(state);
            notify::wake(&mut wakers);
        }
    }
}
