//! Serving one subscription the peer opened (§4.4): Info, then the groups, each on its own
//! stream, as the [`Scheduler`] decides; GroupDrop for every group not delivered.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::future::BoxFuture;
use futures_util::stream::{self, FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;
use moq_model::{FrameConsumer, GroupConsumer, Track, TrackConsumer};
use moq_proto::{ErrorCode, Frame, Group, StreamUni, Subscribe, SubscribeUpdate};

use super::scheduler::{Action, Scheduler, Sent};
use super::{Counted, info, resolve, shared_permit, unless_stopped};
use crate::Error;
use crate::state::Shared;
use crate::stream::{Cancel, Priority, Reader, Sender, abort};
use crate::transport::{Connection, TransportError};

/// §4.4: resolve, Info, then the latest group from its first frame and every newer group,
/// each on its own stream; FIN as soon as the subscriber FINs.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice in its state"
)]
pub(super) fn serve_subscribe<C: Connection>(
    conn: C,
    shared: Arc<Shared>,
    mut send: Sender<C::SendStream>,
    mut reader: Reader<C::RecvStream>,
) -> impl Future<Output = ()> + Send {
    async move {
        let Some(_count) = Counted::acquire(&shared, shared.config.max_subscriptions, |s| {
            &mut s.publish.serving
        }) else {
            return abort(&mut send, &mut reader, ErrorCode::BOUNDS_EXCEEDED);
        };
        let subscribe = match reader.required::<Subscribe>().await {
            Ok(subscribe) => subscribe,
            Err(err) => return abort(&mut send, &mut reader, err.code()),
        };
        // Taken once the request has arrived: a peer's stalled streams hold no shared permit.
        let Ok(_shared_count) = shared_permit(&shared) else {
            return abort(&mut send, &mut reader, ErrorCode::BOUNDS_EXCEEDED);
        };
        let mut wanted = Track::new(subscribe.path.clone());
        wanted.priority = subscribe.priority;
        wanted.group_order = subscribe.group_order;
        wanted.group_expires = subscribe.group_expires;
        let track = match resolve(&shared, wanted).await {
            Ok(track) => track,
            Err(code) => return abort(&mut send, &mut reader, code),
        };
        // §7.3: the Info is written before the first group stream is opened.
        let info = info(&track);
        if send.write_message(&info).await.is_err() {
            return abort(&mut send, &mut reader, ErrorCode::TRANSPORT);
        }
        let scheduler = Scheduler::new(
            shared.config.max_group_streams,
            subscribe.priority,
            subscribe.group_order,
            info.group_expires,
            subscribe.group_expires,
            track.latest(),
        );
        let serving = Serving {
            conn,
            shared: shared.clone(),
            id: subscribe.id,
            scheduler,
            streams: Vec::new(),
            sends: FuturesUnordered::new(),
        };
        serving.run(track, send, reader).await;
    }
}

/// The serving loop's side of a group stream: what carries out the scheduler's actions.
struct Handles {
    sequence: u64,
    cancel: Arc<Cancel>,
    priority: Arc<Priority>,
}

struct Serving<C> {
    conn: C,
    shared: Arc<Shared>,
    id: u64,
    scheduler: Scheduler<GroupConsumer>,
    /// The group streams started and not yet reported (a handful: at most the stream cap,
    /// plus those given up and still ending).
    streams: Vec<Handles>,
    sends: FuturesUnordered<BoxFuture<'static, Sent>>,
}

enum Event {
    Timer,
    Update(Result<Option<SubscribeUpdate>, Error>),
    Group(Result<Option<GroupConsumer>, moq_model::Error>),
    Sent(Sent),
    /// Nothing else to do right now, and the scheduler has work (rule 6).
    Refocus,
    Done,
}

impl<C: Connection> Serving<C> {
    // A plain function around an `async move` block: see `run_bi`.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice in its state"
    )]
    fn run(
        mut self,
        track: TrackConsumer,
        mut send: Sender<C::SendStream>,
        mut reader: Reader<C::RecvStream>,
    ) -> impl Future<Output = ()> + Send {
        async move {
            let clock = self.shared.clone();
            let now = move || clock.config.now();
            // The latest group first, from its first frame; then only newer ones.
            if let Some(first) = track.latest().and_then(|sequence| track.group(sequence)) {
                self.scheduler.first_group(first, now());
            }
            let mut groups = Box::pin(stream::unfold(track, |mut track| async move {
                let next = track.next_group().await;
                Some((next, track))
            }));
            let mut track_done = false;
            // The subscribe stream is polled only once it has woken us (see `Gate`).
            let updates = Arc::new(Gate::default());
            let updates_waker = Waker::from(updates.clone());
            // With a timer (`SessionConfig::timer`), expiry also happens when nothing else does.
            let mut timer: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = None;
            let mut armed = None;
            loop {
                if self.carry_out(&mut send).await.is_err() {
                    return;
                }
                let deadline = self.scheduler.deadline();
                if deadline != armed {
                    armed = deadline;
                    timer = match (deadline, &self.shared.config.timer) {
                        (Some(deadline), Some(sleep)) => {
                            Some(sleep(deadline.saturating_duration_since(now())))
                        }
                        _ => None,
                    };
                }
                let event = poll_fn(|cx| {
                    if let Some(sleep) = timer.as_mut()
                        && sleep.as_mut().poll(cx).is_ready()
                    {
                        return Poll::Ready(Event::Timer);
                    }
                    // `Reader::next` is cancel-safe, so a fresh future per poll loses nothing.
                    updates.parent.register(cx.waker());
                    if updates.woken.swap(false, Ordering::AcqRel) {
                        let update = std::pin::pin!(reader.next::<SubscribeUpdate>());
                        if let Poll::Ready(update) =
                            update.poll(&mut Context::from_waker(&updates_waker))
                        {
                            // The reader may hold another message already: poll it next time too.
                            updates.woken.store(true, Ordering::Release);
                            return Poll::Ready(Event::Update(update));
                        }
                    }
                    if let Poll::Ready(Some(sent)) = self.sends.poll_next_unpin(cx) {
                        return Poll::Ready(Event::Sent(sent));
                    }
                    if !track_done && let Poll::Ready(Some(group)) = groups.poll_next_unpin(cx) {
                        return Poll::Ready(Event::Group(group));
                    }
                    // Streams not started yet must start (or be reported) first.
                    if track_done && self.sends.is_empty() && self.scheduler.is_settled() {
                        return Poll::Ready(Event::Done);
                    }
                    // Only once every event at hand is handled, so that of groups that start
                    // together the order picks the one to focus on (rule 6).
                    if self.scheduler.needs_refocus() {
                        return Poll::Ready(Event::Refocus);
                    }
                    Poll::Pending
                })
                .await;
                match event {
                    Event::Timer => {
                        timer = None;
                        armed = None;
                        self.scheduler.timer(now());
                    }
                    Event::Update(Ok(Some(update))) => {
                        // §5.7: a priority varint over 255 is a decode error (5).
                        let priority = match update.track_priority() {
                            Ok(priority) => priority,
                            Err(err) => {
                                self.cancel_all(ErrorCode::CANCEL);
                                return abort(
                                    &mut send,
                                    &mut reader,
                                    Error::Read(err.into()).code(),
                                );
                            }
                        };
                        // `group_min` / `group_max` are ignored, as in Subscribe.
                        self.scheduler.update(
                            priority,
                            update.group_order,
                            update.group_expires,
                            now(),
                        );
                    }
                    // The subscriber FINed: no new group streams, reset the open ones, FIN ours.
                    Event::Update(Ok(None)) => {
                        self.cancel_all(ErrorCode::CANCEL);
                        return send.finish();
                    }
                    Event::Update(Err(err)) => {
                        self.cancel_all(ErrorCode::CANCEL);
                        return match err {
                            Error::Transport(_) => send.reset(ErrorCode::CANCEL),
                            err => abort(&mut send, &mut reader, err.code()),
                        };
                    }
                    Event::Group(Ok(Some(group))) => self.scheduler.group(group, now()),
                    Event::Group(Ok(None)) => track_done = true,
                    Event::Group(Err(err)) => {
                        self.cancel_all(err.code());
                        return abort(&mut send, &mut reader, err.code());
                    }
                    Event::Sent(sent) => {
                        self.streams.retain(|s| s.sequence != sent.sequence);
                        self.scheduler.sent(sent, now());
                    }
                    Event::Refocus => self.scheduler.refocus(now()),
                    // §4.4: FIN after the track ended and its group streams are done. The
                    // subscription counts as served until the subscriber has the FIN, so that a
                    // publisher that waits for `SessionStats::serving` to reach 0 and then closes
                    // the connection does not discard it (a close abandons unacknowledged data,
                    // and the subscriber would see the session end instead of the track).
                    Event::Done => {
                        let _ = send.finish_delivered().await;
                        return;
                    }
                }
            }
        }
    }

    /// Carries out the scheduler's actions; `Err` if the subscribe stream failed.
    async fn carry_out(&mut self, send: &mut Sender<C::SendStream>) -> Result<(), ()> {
        while let Some(action) = self.scheduler.next_action() {
            match action {
                Action::Start { group, priority } => {
                    let cancel = Arc::new(Cancel::default());
                    let priority = Arc::new(Priority::new(priority));
                    self.streams.push(Handles {
                        sequence: group.sequence(),
                        cancel: cancel.clone(),
                        priority: priority.clone(),
                    });
                    self.sends.push(Box::pin(send_group(
                        self.conn.clone(),
                        self.shared.clone(),
                        self.id,
                        group,
                        priority,
                        cancel,
                    )));
                }
                Action::Reprioritize { sequence, priority } => {
                    if let Some(stream) = self.streams.iter().find(|s| s.sequence == sequence) {
                        stream.priority.set(priority);
                    }
                }
                Action::GiveUp { sequence, code } => {
                    if let Some(stream) = self.streams.iter().find(|s| s.sequence == sequence) {
                        stream.cancel.cancel(code);
                    }
                }
                Action::Drop(drop) => {
                    {
                        let mut state = self.shared.lock();
                        state.publish.group_drops_sent += 1;
                        state.publish.groups_dropped += drop.count + 1;
                    }
                    send.write_message(&drop).await.map_err(|_| ())?;
                }
                Action::Skip(drop) => {
                    {
                        let mut state = self.shared.lock();
                        state.publish.group_drops_sent += 1;
                        state.publish.groups_skipped += drop.count + 1;
                    }
                    send.write_message(&drop).await.map_err(|_| ())?;
                }
            }
        }
        Ok(())
    }

    /// Resets every group stream in flight with `code`.
    fn cancel_all(&self, code: ErrorCode) {
        for stream in &self.streams {
            stream.cancel.cancel(code);
        }
    }
}

/// Whether a future polled under this waker has woken since it was last polled, and the
/// task to wake when it does. Every frame of every group wakes the serving loop, and polling
/// the subscribe stream takes the connection's lock (quinn): the loop polls that stream only
/// after it woke (and first of all), as `FuturesUnordered` does for its futures.
struct Gate {
    woken: AtomicBool,
    parent: AtomicWaker,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            woken: AtomicBool::new(true),
            parent: AtomicWaker::new(),
        }
    }
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.parent.wake();
    }
}

// A plain function around an `async move` block (see `run_bi`); boxed for each group
// stream in flight.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice in its state"
)]
fn send_group<C: Connection>(
    conn: C,
    shared: Arc<Shared>,
    id: u64,
    mut group: GroupConsumer,
    priority: Arc<Priority>,
    cancel: Arc<Cancel>,
) -> impl Future<Output = Sent> + Send {
    async move {
        let sequence = group.sequence();
        let mut count = SentCount::new(shared);
        let mut stopped = None;
        let result = {
            let work = std::pin::pin!(async {
                let stream = conn.open_uni().await.map_err(|_| ErrorCode::TRANSPORT)?;
                let mut out = Sender::for_group(stream, cancel.clone(), priority);
                out.encode(&StreamUni::Group);
                out.encode(&Group {
                    subscribe: id,
                    sequence,
                });
                let mut frame = None;
                // Payload bytes of the current frame still to write: the frame counts once it is 0.
                let mut left = 0u64;
                loop {
                    let step =
                        match unless_stopped(&mut out, next_step(&mut group, &mut frame)).await {
                            Ok(step) => step,
                            Err(code) => {
                                stopped = Some(code);
                                return Err(ErrorCode::TRANSPORT);
                            }
                        };
                    let written = match step {
                        Step::Frame(size) => {
                            out.encode(&Frame { size });
                            left = size;
                            if size == 0 {
                                count.frames += 1;
                            }
                            Ok(())
                        }
                        Step::Chunk(chunk) => {
                            let len = chunk.len() as u64;
                            let written = out.write(chunk).await;
                            // (A zero-size frame may yield an empty chunk: counted at its header.)
                            if written.is_ok() && len > 0 {
                                count.bytes += len;
                                left = left.saturating_sub(len);
                                if left == 0 {
                                    count.frames += 1;
                                }
                            }
                            written
                        }
                        Step::End => {
                            out.flush().await.map_err(|_| ErrorCode::TRANSPORT)?;
                            // In flight until delivered: expiry and the stream cap may still give
                            // it up.
                            return out.finish_delivered().await.map_err(|code| {
                                stopped = code;
                                ErrorCode::TRANSPORT
                            });
                        }
                        Step::Failed(err) => {
                            out.reset(err.code());
                            return Err(err.code());
                        }
                    };
                    if let Err(err) = written {
                        if let Error::Transport(TransportError::StreamStopped(code)) = err {
                            stopped = Some(code);
                        }
                        return Err(ErrorCode::TRANSPORT);
                    }
                }
            });
            cancel.run(work).await
        };
        Sent {
            sequence,
            result,
            stopped,
        }
    }
}

/// Counts a group stream we send in `group_streams_out` while it runs, and the frames and
/// payload bytes written on it, added to the session's totals when it ends (in plain fields
/// until then: no shared write per frame).
struct SentCount {
    shared: Arc<Shared>,
    frames: u64,
    bytes: u64,
}

impl SentCount {
    fn new(shared: Arc<Shared>) -> Self {
        {
            let mut state = shared.lock();
            state.publish.group_streams_out += 1;
            state.publish.groups_sent += 1;
        }
        Self {
            shared,
            frames: 0,
            bytes: 0,
        }
    }
}

impl Drop for SentCount {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let publish = &mut state.publish;
        publish.group_streams_out = publish.group_streams_out.saturating_sub(1);
        publish.frames_sent += self.frames;
        publish.payload_bytes_sent += self.bytes;
    }
}

/// What a group stream has to do next.
enum Step {
    Frame(u64),
    Chunk(bytes::Bytes),
    End,
    Failed(moq_model::Error),
}

/// The next thing to write for a group. Cancel-safe (the model's reads are, and the frame
/// being read is kept in `frame`).
async fn next_step(group: &mut GroupConsumer, frame: &mut Option<FrameConsumer>) -> Step {
    loop {
        match frame {
            Some(current) => match current.read_chunk().await {
                Ok(Some(chunk)) => return Step::Chunk(chunk),
                Ok(None) => *frame = None,
                Err(err) => return Step::Failed(err),
            },
            None => match group.next_frame().await {
                Ok(Some(next)) => {
                    let size = next.size() as u64;
                    *frame = Some(next);
                    return Step::Frame(size);
                }
                Ok(None) => return Step::End,
                Err(err) => return Step::Failed(err),
            },
        }
    }
}
