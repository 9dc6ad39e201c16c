//! The one waking primitive every model state uses: a lock plus a list of wakers.
//!
//! A state change takes the whole list under the lock (swapping it with a buffer the caller
//! keeps, so steady-state waking allocates nothing), releases the lock, then wakes. A waiting
//! future remembers where its waker sits in the list (a [`Slot`]), so polling it again before
//! the next change replaces that entry instead of growing the list: registration is O(1).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;

/// A mutex that shrugs off poisoning: model state is updated in small, panic-free steps, so a
/// panic elsewhere in a thread that held the lock leaves it consistent.
#[derive(Debug, Default)]
pub(crate) struct Lock<T>(Mutex<T>);

impl<T> Lock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value, without locking (the caller owns the lock).
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where a waiting future's waker sits in a [`Waiters`] list, valid for one epoch.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Slot {
    epoch: u64,
    index: usize,
    used: bool,
}

/// The wakers of the futures waiting for the next change of one piece of state.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    list: Vec<Waker>,
    /// Bumped every time the list is taken, which invalidates every [`Slot`].
    epoch: u64,
}

impl Waiters {
    /// A list with room for `capacity` wakers before it has to grow.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            list: Vec::with_capacity(capacity),
            epoch: 0,
        }
    }

    /// Registers `waker` to be woken on the next [`take`](Self::take); `slot` belongs to the
    /// waiting future and makes repeated polls replace its entry instead of adding one.
    pub(crate) fn register(&mut self, waker: &Waker, slot: &mut Slot) {
        if slot.used
            && slot.epoch == self.epoch
            && let Some(entry) = self.list.get_mut(slot.index)
        {
            if !entry.will_wake(waker) {
                entry.clone_from(waker);
            }
            return;
        }
        *slot = Slot {
            epoch: self.epoch,
            index: self.list.len(),
            used: true,
        };
        self.list.push(waker.clone());
    }

    /// Moves every registered waker into `into` (which must be empty; its capacity is reused
    /// as the next list). Call with the lock held, then drop the lock, then [`wake`].
    pub(crate) fn take(&mut self, into: &mut Vec<Waker>) {
        debug_assert!(into.is_empty());
        self.epoch = self.epoch.wrapping_add(1);
        if !self.list.is_empty() {
            std::mem::swap(&mut self.list, into);
        }
    }

    /// How many wakers are registered (for capacity hints).
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }
}

/// Wakes and removes every waker in `wakers`, keeping its capacity for the next change.
pub(crate) fn wake(wakers: &mut Vec<Waker>) {
    for waker in wakers.drain(..) {
        waker.wake();
    }
}

/// Takes `waiters` into a fresh buffer; for rare changes (drops, aborts) that have no buffer
/// of their own to lend. Wake the result with [`wake`] after the lock is released.
pub(crate) fn take_all(waiters: &mut Waiters) -> Vec<Waker> {
    let mut wakers = Vec::new();
    waiters.take(&mut wakers);
    wakers
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn repeated_registration_keeps_one_entry() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut waiters = Waiters::default();
        let mut slot = Slot::default();
        for _ in 0..10 {
            waiters.register(&waker, &mut slot);
        }
        assert_eq!(waiters.len(), 1);

        let mut buffer = Vec::new();
        waiters.take(&mut buffer);
        assert_eq!(buffer.len(), 1);
        wake(&mut buffer);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);

        // The old slot is stale after a take: registering again adds a fresh entry.
        waiters.register(&waker, &mut slot);
        assert_eq!(waiters.len(), 1);
    }

    #[test]
    fn buffers_are_reused() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let mut waiters = Waiters::with_capacity(4);
        let mut buffer = Vec::with_capacity(4);
        for _ in 0..3 {
            for _ in 0..4 {
                waiters.register(&Waker::from(count.clone()), &mut Slot::default());
            }
            waiters.take(&mut buffer);
            wake(&mut buffer);
            assert!(buffer.capacity() >= 4);
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 12);
    }
}
