//! [`Router`], [`RouterProducer`], [`RouterConsumer`], [`RouterRequest`]: answering requests
//! for tracks nobody has published (yet), e.g. a relay subscribing upstream on demand.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use crate::notify::{self, Lock, Slot, Waiters};
use crate::{Error, Track, TrackConsumer, TrackProducer};

/// The settings of a router: how many unanswered requests may wait in its queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Router {
    /// The most requests queued and not yet taken by [`RouterProducer::requested`].
    pub capacity: usize,
}

impl Default for Router {
    /// A queue of 32 requests.
    fn default() -> Self {
        Self { capacity: 32 }
    }
}

impl Router {
    /// A router whose queue holds at most `capacity` requests.
    pub fn new(capacity: usize) -> Self {
        Self { capacity }
    }

    /// The answering side and the asking side of the router.
    pub fn produce(self) -> (RouterProducer, RouterConsumer) {
        let shared = Arc::new(RouterShared {
            capacity: self.capacity,
            state: Lock::new(RouterState {
                queue: VecDeque::new(),
                producer: true,
                consumers: 1,
                waiters: Waiters::default(),
            }),
        });
        (
            RouterProducer {
                shared: shared.clone(),
            },
            RouterConsumer { shared },
        )
    }
}

#[derive(Debug)]
struct RequestState {
    answer: Option<Result<TrackConsumer, Error>>,
    /// The requester is still waiting for the answer.
    waiting: bool,
    waiters: Waiters,
}

#[derive(Debug)]
struct RequestShared {
    track: Track,
    state: Lock<RequestState>,
}

impl RequestShared {
    fn answer(&self, answer: Result<TrackConsumer, Error>) {
        let mut state = self.state.lock();
        let unused = if state.waiting && state.answer.is_none() {
            state.answer = Some(answer);
            None
        } else {
            Some(answer)
        };
        let mut wakers = notify::take_all(&mut state.waiters);
        drop(state);
        notify::wake(&mut wakers);
        // An answer nobody waits for is dropped outside the lock.
        drop(unused);
    }

    fn is_cancelled(&self) -> bool {
        !self.state.lock().waiting
    }
}

#[derive(Debug)]
struct RouterState {
    queue: VecDeque<Arc<RequestShared>>,
    producer: bool,
    consumers: usize,
    /// The producer waiting for a request (or for the last consumer to go).
    waiters: Waiters,
}

#[derive(Debug)]
struct RouterShared {
    capacity: usize,
    state: Lock<RouterState>,
}

/// Asks for tracks. Cheap to [`Clone`].
///
/// # Drop
/// When the last consumer is dropped, [`RouterProducer::requested`] returns `None` once the
/// queue is empty.
#[derive(Debug)]
pub struct RouterConsumer {
    shared: Arc<RouterShared>,
}

impl RouterConsumer {
    /// Asks the router's producer for `track` and waits for the answer: a consumer of the
    /// track, or the error the request was rejected with. [`Error::BoundsExceeded`] at once
    /// if the queue is full; [`Error::NotFound`] if the producer is gone or drops the request
    /// without answering.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request: the producer sees it as
    /// [`cancelled`](RouterRequest::cancelled), and an answer given after that is dropped.
    pub async fn subscribe(&self, track: Track) -> Result<TrackConsumer, Error> {
        let request = Arc::new(RequestShared {
            track,
            state: Lock::new(RequestState {
                answer: None,
                waiting: true,
                waiters: Waiters::default(),
            }),
        });
        {
            let mut state = self.shared.state.lock();
            if !state.producer {
                return Err(Error::NotFound);
            }
            // Cancelled requests do not hold places in the queue.
            state.queue.retain(|request| !request.is_cancelled());
            if state.queue.len() >= self.shared.capacity {
                return Err(Error::BoundsExceeded);
            }
            state.queue.push_back(request.clone());
            let mut wakers = notify::take_all(&mut state.waiters);
            drop(state);
            notify::wake(&mut wakers);
        }
        let guard = CancelOnDrop(request);
        let mut slot = Slot::default();
        poll_fn(|cx| {
            let mut state = guard.0.state.lock();
            match state.answer.take() {
                Some(answer) => Poll::Ready(answer),
                None => {
                    state.waiters.register(cx.waker(), &mut slot);
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Waits until the router's producer is gone.
    ///
    /// # Cancel safety
    /// Cancel-safe: it only observes.
    pub async fn closed(&self) {
        let mut slot = Slot::default();
        poll_fn(|cx| {
            let mut state = self.shared.state.lock();
            if !state.producer {
                return Poll::Ready(());
            }
            state.waiters.register(cx.waker(), &mut slot);
            Poll::Pending
        })
        .await
    }
}

/// Marks a request as no longer waited for when the requester's future goes away.
struct CancelOnDrop(Arc<RequestShared>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.waiting = false;
        let answer = state.answer.take();
        let mut wakers = notify::take_all(&mut state.waiters);
        drop(state);
        notify::wake(&mut wakers);
        drop(answer);
    }
}

impl Clone for RouterConsumer {
    fn clone(&self) -> Self {
        self.shared.state.lock().consumers += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for RouterConsumer {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        state.consumers -= 1;
        if state.consumers == 0 {
            let mut wakers = notify::take_all(&mut state.waiters);
            drop(state);
            notify::wake(&mut wakers);
        }
    }
}

/// Receives the requests for tracks and answers them. Not [`Clone`]: one answering side.
///
/// # Drop
/// Dropping the producer rejects every queued request with [`Error::NotFound`], and later
/// requests fail with it at once.
#[derive(Debug)]
pub struct RouterProducer {
    shared: Arc<RouterShared>,
}

impl RouterProducer {
    /// The next request whose requester is still waiting, oldest first; `None` once every
    /// [`RouterConsumer`] is gone and the queue is empty.
    ///
    /// # Cancel safety
    /// Cancel-safe: a request leaves the queue only when it is returned.
    pub async fn requested(&mut self) -> Option<RouterRequest> {
        let mut slot = Slot::default();
        poll_fn(|cx| {
            let mut state = self.shared.state.lock();
            while let Some(request) = state.queue.pop_front() {
                if !request.is_cancelled() {
                    return Poll::Ready(Some(RouterRequest {
                        shared: request,
                        answered: false,
                    }));
                }
            }
            if state.consumers == 0 {
                return Poll::Ready(None);
            }
            state.waiters.register(cx.waker(), &mut slot);
            Poll::Pending
        })
        .await
    }

    /// How many requests wait in the queue (cancelled ones included until they are purged).
    pub fn queued(&self) -> usize {
        self.shared.state.lock().queue.len()
    }
}

impl Drop for RouterProducer {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        state.producer = false;
        let queue = std::mem::take(&mut state.queue);
        let mut wakers = notify::take_all(&mut state.waiters);
        drop(state);
        notify::wake(&mut wakers);
        for request in queue {
            request.answer(Err(Error::NotFound));
        }
    }
}

/// One request for a track, to answer with [`serve`](Self::serve),
/// [`produce`](Self::produce) or [`reject`](Self::reject).
///
/// # Drop
/// Dropping an unanswered request rejects it with [`Error::NotFound`].
#[derive(Debug)]
pub struct RouterRequest {
    shared: Arc<RequestShared>,
    answered: bool,
}

impl RouterRequest {
    /// The track asked for, as the requester described it.
    pub fn track(&self) -> &Track {
        &self.shared.track
    }

    /// True if the requester has stopped waiting.
    pub fn is_cancelled(&self) -> bool {
        self.shared.is_cancelled()
    }

    /// Waits until the requester stops waiting (it went away before the answer).
    ///
    /// # Cancel safety
    /// Cancel-safe: it only observes.
    pub async fn cancelled(&self) {
        let mut slot = Slot::default();
        poll_fn(|cx| {
            let mut state = self.shared.state.lock();
            if !state.waiting {
                return Poll::Ready(());
            }
            state.waiters.register(cx.waker(), &mut slot);
            Poll::Pending
        })
        .await
    }

    /// Answers with an existing track.
    pub fn serve(mut self, track: TrackConsumer) {
        self.answered = true;
        self.shared.answer(Ok(track));
    }

    /// Answers with a new track described as requested, and returns its producer.
    pub fn produce(mut self) -> TrackProducer {
        let (producer, consumer) = self.shared.track.clone().produce();
        self.answered = true;
        self.shared.answer(Ok(consumer));
        producer
    }

    /// Answers with an error.
    pub fn reject(mut self, error: Error) {
        self.answered = true;
        self.shared.answer(Err(error));
    }
}

impl Drop for RouterRequest {
    fn drop(&mut self) {
        if !self.answered {
            self.shared.answer(Err(Error::NotFound));
        }
    }
}
