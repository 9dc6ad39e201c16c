//! The paths a session announces to its peer: what it publishes itself, and the sources
//! given to [`Session::announce`](crate::Session::announce), merged for each announce
//! stream the peer opens.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};

use moq_model::{Announced, AnnouncedConsumer, AnnouncedSource, Error};
use moq_proto::Path;

use crate::state::Shared;

/// The announcements one announce stream reports: every input's paths under the stream's
/// prefix, each path once while at least one input has it.
///
/// Inputs are consumers made for this stream only (a session that is never asked holds no
/// consumer, and so queues nothing): one of the session's own published paths, and one per
/// source, including sources added while the stream runs.
pub(crate) struct Merged {
    shared: Arc<Shared>,
    /// Its key in the session's table of merges waiting for new sources.
    id: u64,
    prefix: Path,
    inputs: Vec<Input>,
    /// Sources of the session already made into inputs.
    sources_seen: usize,
    /// Changes decided and not yet returned (an input's end can end several paths).
    pending: VecDeque<Announced>,
    /// Where the round of polls starts, so that no input starves the others.
    next_input: usize,
}

struct Input {
    consumer: AnnouncedConsumer,
    /// Its paths that are active now.
    active: HashSet<Path>,
}

impl Merged {
    /// The merge for an announce stream with `prefix`.
    pub(crate) fn new(shared: &Arc<Shared>, prefix: Path) -> Self {
        let mut state = shared.lock();
        let local = state.publish.announced.consume(prefix.clone());
        let id = state.publish.next_merge;
        state.publish.next_merge += 1;
        drop(state);
        Self {
            shared: shared.clone(),
            id,
            prefix,
            inputs: vec![Input {
                consumer: local,
                active: HashSet::new(),
            }],
            sources_seen: 0,
            pending: VecDeque::new(),
            next_input: 0,
        }
    }

    /// The next change of the merged set; `Ok(None)` once every input has ended.
    ///
    /// Cancel-safe, as [`AnnouncedConsumer::poll_next`].
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Announced>, Error>> {
        self.add_sources(cx);
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Poll::Ready(Ok(Some(event)));
            }
            if self.inputs.is_empty() {
                return Poll::Ready(Ok(None));
            }
            let mut progressed = false;
            let count = self.inputs.len();
            for step in 0..count {
                let index = (self.next_input + step) % count;
                match self.inputs[index].consumer.poll_next(cx) {
                    Poll::Ready(Ok(Some(event))) => {
                        self.next_input = (index + 1) % count;
                        self.apply(index, event);
                        progressed = true;
                        break;
                    }
                    // An input that ends, cleanly or not, takes its paths with it.
                    Poll::Ready(Ok(None) | Err(_)) => {
                        let input = self.inputs.swap_remove(index);
                        for path in input.active {
                            if !self.held(&path) {
                                self.pending.push_back(Announced::Ended(path));
                            }
                        }
                        self.next_input = 0;
                        progressed = true;
                        break;
                    }
                    Poll::Pending => {}
                }
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }

    /// Makes inputs of the session's sources added since the last look, and asks to be
    /// woken when more are added.
    fn add_sources(&mut self, cx: &mut Context<'_>) {
        let mut state = self.shared.lock();
        let sources: &[AnnouncedSource] = &state.publish.announce_sources;
        for source in &sources[self.sources_seen..] {
            if let Some(consumer) = source.consume(self.prefix.clone()) {
                self.inputs.push(Input {
                    consumer,
                    active: HashSet::new(),
                });
            }
        }
        self.sources_seen = sources.len();
        // One entry per merge, replaced at every poll and removed with the merge.
        match state.publish.source_waiters.get_mut(&self.id) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => *waker = cx.waker().clone(),
            None => {
                state
                    .publish
                    .source_waiters
                    .insert(self.id, cx.waker().clone());
            }
        }
    }

    /// Records input `index`'s change, and queues it if it changes the merged set.
    fn apply(&mut self, index: usize, event: Announced) {
        match event {
            Announced::Active(path) => {
                let new = !self.held(&path);
                if self.inputs[index].active.insert(path.clone()) && new {
                    self.pending.push_back(Announced::Active(path));
                }
            }
            Announced::Ended(path) => {
                if self.inputs[index].active.remove(&path) && !self.held(&path) {
                    self.pending.push_back(Announced::Ended(path));
                }
            }
        }
    }

    /// True if some input has `path` active.
    fn held(&self, path: &Path) -> bool {
        self.inputs.iter().any(|input| input.active.contains(path))
    }
}

impl Drop for Merged {
    fn drop(&mut self) {
        self.shared.lock().publish.source_waiters.remove(&self.id);
    }
}
