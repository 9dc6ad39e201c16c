//! [`SessionConfig`]: the limits a session puts on its peer, with their defaults.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use moq_proto::limits::{MAX_FRAME_SIZE, MAX_MESSAGE_SIZE};
use moq_proto::{Extensions, ReaderConfig};

/// The limits a session enforces, and its clock.
///
/// Every number the peer controls is bounded by one of these, so a hostile or broken peer
/// costs at most a known amount of memory. What happens when a peer exceeds a limit is
/// documented on each field; it is never a panic and never unbounded buffering.
///
/// ```
/// use moq_session::SessionConfig;
///
/// let config = SessionConfig::default().max_subscriptions(10);
/// assert_eq!(config.max_subscriptions, 10);
/// assert_eq!(config.max_group_streams, SessionConfig::DEFAULT_MAX_GROUP_STREAMS);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Subscriptions the peer may have open with us at once (subscribe streams we serve).
    /// One more is reset and stopped with code 11 (BoundsExceeded); the session goes on.
    /// The same cap applies to our own subscriptions: past it,
    /// [`Session::subscribe`](crate::Session::subscribe) returns a track aborted with
    /// [`moq_model::Error::BoundsExceeded`]. Default
    /// [`DEFAULT_MAX_SUBSCRIPTIONS`](Self::DEFAULT_MAX_SUBSCRIPTIONS).
    pub max_subscriptions: usize,
    /// Announce streams the peer may have open with us at once; one more is reset and
    /// stopped with code 11. Default
    /// [`DEFAULT_MAX_ANNOUNCE_STREAMS`](Self::DEFAULT_MAX_ANNOUNCE_STREAMS).
    pub max_announce_streams: usize,
    /// Active paths one announce stream of ours may report; past it the stream is reset and
    /// stopped with code 11 and its consumers see
    /// [`moq_model::Error::BoundsExceeded`]. Default
    /// [`DEFAULT_MAX_ANNOUNCED`](Self::DEFAULT_MAX_ANNOUNCED).
    pub max_announced: usize,
    /// Group streams in flight per subscription. Receiving: one more group stream is
    /// stopped with code 11 (the group is lost, the subscription goes on). Sending: when a
    /// new group starts while this many are still in flight, the oldest one held back by
    /// the window (it has sent nothing), else the oldest waiting one, else the oldest other
    /// than the focused one (`docs/session.md`, "Overload") is reset and a `GroupDrop` with
    /// code 11 is sent for it. Default
    /// [`DEFAULT_MAX_GROUP_STREAMS`](Self::DEFAULT_MAX_GROUP_STREAMS).
    pub max_group_streams: usize,
    /// The largest control message accepted (encoded size); a larger one is a decode error
    /// (code 5) on its stream. Default 64 KiB ([`MAX_MESSAGE_SIZE`]).
    pub max_message_size: usize,
    /// The largest declared frame size accepted on a group stream; a larger one stops the
    /// stream with code 5. Default 64 MiB ([`MAX_FRAME_SIZE`]).
    pub max_frame_size: u64,
    /// The clock used for group expiry. Default [`Instant::now`]. Tests on tokio's paused
    /// clock pass `|| tokio::time::Instant::now().into_std()`.
    pub clock: Arc<dyn Fn() -> Instant + Send + Sync>,
    /// A way to sleep, from the application's runtime (the session has no timer of its own).
    /// With one, a group stream that outlives the expiry while a newer group exists is given
    /// up at its deadline; without one (the default), only when something else happens on
    /// its subscription (a newer group starts, another group stream ends). See
    /// [`timer`](Self::timer).
    pub timer: Option<Sleep>,
    /// Extensions this side sends in its setup message (`SessionClient` or
    /// `SessionServer`, WIRE.md §3.10), after those the transport adds
    /// ([`Connection::setup_extensions`](crate::transport::Connection::setup_extensions));
    /// an id set here replaces the transport's. Default: none (as `moq-transfork` 0.5.0).
    pub extensions: Extensions,
    /// A ceiling on the requests served across several sessions (e.g. all of a relay's):
    /// subscriptions, and Info and Fetch requests while they are answered, besides
    /// [`max_subscriptions`](Self::max_subscriptions) for this one. One past it is reset and
    /// stopped with code 11, as past the per-session one. Default: none.
    pub shared_subscriptions: Option<SharedLimit>,
}

/// A count with a ceiling, shared by several sessions: clones share the count.
///
/// ```
/// use moq_session::SharedLimit;
///
/// let limit = SharedLimit::new(2);
/// let a = limit.try_acquire().unwrap();
/// let _b = limit.clone().try_acquire().unwrap();
/// assert!(limit.try_acquire().is_none());
/// drop(a);
/// assert_eq!(limit.in_use(), 1);
/// assert!(limit.try_acquire().is_some());
/// ```
#[derive(Clone, Debug)]
pub struct SharedLimit {
    inner: Arc<LimitInner>,
}

#[derive(Debug)]
struct LimitInner {
    used: AtomicUsize,
    max: usize,
}

/// One unit of a [`SharedLimit`], given back when dropped.
#[derive(Debug)]
pub struct SharedPermit {
    inner: Arc<LimitInner>,
}

impl SharedLimit {
    /// A limit of `max` units, none in use.
    pub fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(LimitInner {
                used: AtomicUsize::new(0),
                max,
            }),
        }
    }

    /// The ceiling.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// Units in use now.
    pub fn in_use(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// One more unit, unless all are in use.
    pub fn try_acquire(&self) -> Option<SharedPermit> {
        let max = self.inner.max;
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| {
                (used < max).then_some(used + 1)
            })
            .ok()
            .map(|_| SharedPermit {
                inner: self.inner.clone(),
            })
    }
}

impl Drop for SharedPermit {
    fn drop(&mut self) {
        self.inner.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A function that returns a future completing after the given duration, e.g.
/// `|d| Box::pin(tokio::time::sleep(d))`.
pub type Sleep = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

impl SessionConfig {
    /// Default of [`max_subscriptions`](Self::max_subscriptions): 1024.
    pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 1024;
    /// Default of [`max_announce_streams`](Self::max_announce_streams): 64.
    pub const DEFAULT_MAX_ANNOUNCE_STREAMS: usize = 64;
    /// Default of [`max_announced`](Self::max_announced): 65536.
    pub const DEFAULT_MAX_ANNOUNCED: usize = 65536;
    /// Default of [`max_group_streams`](Self::max_group_streams): 64.
    pub const DEFAULT_MAX_GROUP_STREAMS: usize = 64;

    /// Sets [`max_subscriptions`](Self::max_subscriptions).
    pub fn max_subscriptions(mut self, max: usize) -> Self {
        self.max_subscriptions = max;
        self
    }

    /// Sets [`max_announce_streams`](Self::max_announce_streams).
    pub fn max_announce_streams(mut self, max: usize) -> Self {
        self.max_announce_streams = max;
        self
    }

    /// Sets [`max_announced`](Self::max_announced).
    pub fn max_announced(mut self, max: usize) -> Self {
        self.max_announced = max;
        self
    }

    /// Sets [`max_group_streams`](Self::max_group_streams) (at least 1).
    pub fn max_group_streams(mut self, max: usize) -> Self {
        self.max_group_streams = max.max(1);
        self
    }

    /// Sets [`max_message_size`](Self::max_message_size).
    pub fn max_message_size(mut self, max: usize) -> Self {
        self.max_message_size = max;
        self
    }

    /// Sets [`max_frame_size`](Self::max_frame_size).
    pub fn max_frame_size(mut self, max: u64) -> Self {
        self.max_frame_size = max;
        self
    }

    /// Sets [`timer`](Self::timer): how to sleep on the application's runtime.
    ///
    /// ```
    /// use moq_session::SessionConfig;
    ///
    /// let config = SessionConfig::default().timer(|d| Box::pin(tokio::time::sleep(d)));
    /// assert!(config.timer.is_some());
    /// ```
    pub fn timer(
        mut self,
        sleep: impl Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static,
    ) -> Self {
        self.timer = Some(Arc::new(sleep));
        self
    }

    /// Sets [`extensions`](Self::extensions).
    pub fn extensions(mut self, extensions: Extensions) -> Self {
        self.extensions = extensions;
        self
    }

    /// Sets [`shared_subscriptions`](Self::shared_subscriptions).
    pub fn shared_subscriptions(mut self, limit: SharedLimit) -> Self {
        self.shared_subscriptions = Some(limit);
        self
    }

    /// Sets [`clock`](Self::clock).
    pub fn clock(mut self, clock: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub(crate) fn reader(&self) -> ReaderConfig {
        ReaderConfig::default()
            .with_max_message_size(self.max_message_size)
            .with_max_frame_size(self.max_frame_size)
    }

    pub(crate) fn now(&self) -> Instant {
        (self.clock)()
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_subscriptions: Self::DEFAULT_MAX_SUBSCRIPTIONS,
            max_announce_streams: Self::DEFAULT_MAX_ANNOUNCE_STREAMS,
            max_announced: Self::DEFAULT_MAX_ANNOUNCED,
            max_group_streams: Self::DEFAULT_MAX_GROUP_STREAMS,
            max_message_size: MAX_MESSAGE_SIZE,
            max_frame_size: MAX_FRAME_SIZE,
            clock: Arc::new(Instant::now),
            timer: None,
            extensions: Extensions::new(),
            shared_subscriptions: None,
        }
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("max_subscriptions", &self.max_subscriptions)
            .field("max_announce_streams", &self.max_announce_streams)
            .field("max_announced", &self.max_announced)
            .field("max_group_streams", &self.max_group_streams)
            .field("max_message_size", &self.max_message_size)
            .field("max_frame_size", &self.max_frame_size)
            .field("timer", &self.timer.is_some())
            .field("extensions", &self.extensions)
            .field("shared_subscriptions", &self.shared_subscriptions)
            .finish_non_exhaustive()
    }
}
