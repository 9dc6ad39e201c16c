//! [`MemoryBudget`]: a ceiling on the payload bytes held by many tracks' groups together.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A byte budget shared by the groups of many tracks (a relay's whole cache, say): every
/// group of a track whose [`CacheLimits::budget`](crate::CacheLimits::budget) is this
/// budget charges it for its payload as it is written, and gives it back when the group is
/// dropped (by the cache and by every consumer). A write that would go past the budget
/// aborts its group with [`Error::BoundsExceeded`](crate::Error::BoundsExceeded) instead
/// (see [`CacheLimits`](crate::CacheLimits)).
///
/// Cheap to [`Clone`]: clones share the count. Equality is identity.
///
/// ```
/// use moq_model::{MemoryBudget, Track};
///
/// let budget = MemoryBudget::new(10);
/// let (mut track, _consumer) = Track::build(["t"]).budget(budget.clone()).produce();
/// let mut group = track.append_group();
/// group.write_frame(vec![0u8; 8]).unwrap();
/// assert_eq!(budget.used(), 8);
/// // Past the budget: the group is aborted, the write refused.
/// assert!(group.write_frame(vec![0u8; 8]).is_err());
/// drop((group, track, _consumer));
/// assert_eq!(budget.used(), 0);
/// ```
#[derive(Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    used: AtomicUsize,
    max: usize,
}

impl MemoryBudget {
    /// A budget of `max` bytes, none used.
    pub fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                used: AtomicUsize::new(0),
                max,
            }),
        }
    }

    /// The ceiling, in bytes.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// The bytes charged now.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Charges `bytes`, unless that would pass the ceiling.
    pub(crate) fn try_charge(&self, bytes: usize) -> bool {
        let max = self.inner.max;
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= max)
            })
            .is_ok()
    }

    /// Gives `bytes` back.
    pub(crate) fn refund(&self, bytes: usize) {
        self.inner.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("used", &self.used())
            .field("max", &self.max())
            .finish()
    }
}

impl PartialEq for MemoryBudget {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for MemoryBudget {}

impl Hash for MemoryBudget {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.inner), state);
    }
}
