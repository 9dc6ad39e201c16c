//! Stream credit that grows with use.
//!
//! quinn keeps state for every stream the peer is allowed to open (its concurrency limit)
//! from the start of the connection: at a relay's 1024 unidirectional and 256
//! bidirectional streams that was about 56 KiB per connection, most of a subscriber's
//! memory, though a subscriber's connection carries a handful of streams. So a connection
//! starts with a small limit ([`INITIAL_UNI`], [`INITIAL_BIDI`]) and doubles it, up to the
//! configured maximum, whenever the streams the peer opened and this side still holds reach
//! three quarters of it: a publisher with many groups in flight gets its credit within a
//! round trip, and every other connection stays small.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// The unidirectional streams a peer may open at first (quinn's default is 100).
pub(crate) const INITIAL_UNI: u32 = 64;
/// The bidirectional streams a peer may open at first (quinn's default is 100).
pub(crate) const INITIAL_BIDI: u32 = 32;

/// Which kind of stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Uni,
    Bidi,
}

/// One connection's stream credit (see the module docs).
#[derive(Debug)]
pub(crate) struct StreamCredit {
    uni: Limit,
    bidi: Limit,
}

#[derive(Debug)]
struct Limit {
    /// Streams the peer opened that this side accepted and still holds.
    open: AtomicU32,
    /// The limit the peer was given.
    limit: AtomicU32,
    max: u32,
}

impl Limit {
    fn new(max: u32, initial: u32) -> Self {
        Self {
            open: AtomicU32::new(0),
            limit: AtomicU32::new(initial.min(max)),
            max,
        }
    }
}

impl StreamCredit {
    /// The credit for a connection whose peer may open up to `max_uni` and `max_bidi`
    /// streams at once, and whose quinn configuration gave it [`initial`](Self::initial).
    pub(crate) fn new(max_uni: u32, max_bidi: u32) -> Arc<Self> {
        Arc::new(Self {
            uni: Limit::new(max_uni, INITIAL_UNI),
            bidi: Limit::new(max_bidi, INITIAL_BIDI),
        })
    }

    /// The limit a connection starts with for streams of `dir`, at most `max`.
    pub(crate) fn initial(dir: Dir, max: u32) -> u32 {
        match dir {
            Dir::Uni => INITIAL_UNI,
            Dir::Bidi => INITIAL_BIDI,
        }
        .min(max)
    }

    fn limit(&self, dir: Dir) -> &Limit {
        match dir {
            Dir::Uni => &self.uni,
            Dir::Bidi => &self.bidi,
        }
    }

    /// A stream of `dir` the peer opened was accepted: counted until the returned guard
    /// drops, and the peer's limit doubled (up to the maximum) if the streams held reach
    /// three quarters of it.
    pub(crate) fn accepted(self: &Arc<Self>, conn: &quinn::Connection, dir: Dir) -> Held {
        let limit = self.limit(dir);
        let open = limit.open.fetch_add(1, Ordering::Relaxed) + 1;
        let current = limit.limit.load(Ordering::Relaxed);
        if current < limit.max && u64::from(open) * 4 >= u64::from(current) * 3 {
            let raised = current.saturating_mul(2).min(limit.max);
            // Only the caller that moves the limit tells quinn.
            if limit
                .limit
                .compare_exchange(current, raised, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                match dir {
                    Dir::Uni => conn.set_max_concurrent_uni_streams(raised.into()),
                    Dir::Bidi => conn.set_max_concurrent_bi_streams(raised.into()),
                }
            }
        }
        Held {
            credit: self.clone(),
            dir,
        }
    }
}

/// An accepted stream, counted in its connection's [`StreamCredit`] while it lives.
#[derive(Debug)]
pub(crate) struct Held {
    credit: Arc<StreamCredit>,
    dir: Dir,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.credit
            .limit(self.dir)
            .open
            .fetch_sub(1, Ordering::Relaxed);
    }
}
