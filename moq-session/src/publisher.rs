//! The publisher side: the peer's control streams (announce, subscribe, fetch, info) and
//! the group streams we send.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, Either, select};
use futures_util::stream::{self, FuturesUnordered, StreamExt};
use moq_model::{Announced, FrameConsumer, GroupConsumer, Track, TrackConsumer};
use moq_proto::{
    Announce, AnnounceInterest, ErrorCode, Fetch, Frame, Group, GroupDrop, GroupOrder, Info,
    InfoRequest, StreamBi, StreamUni, Subscribe, SubscribeUpdate,
};

use crate::announce::Merged;
use crate::session::Shared;
use crate::stream::{Cancel, Priority, Reader, Sender, abort};
use crate::transport::{Connection, RecvStream, SendStream, TransportError};
use crate::{Error, SessionConfig};

/// The QUIC stream priority of a group stream (quinn's meaning: higher is sent first).
///
/// The track priority is the top byte, so any group of a higher-priority track goes before
/// any group of a lower one; within a track the low 24 bits order the groups by sequence:
/// newest first for [`GroupOrder::Descending`] (live), oldest first for
/// [`GroupOrder::Ascending`]. (WIRE.md §7.4 quotes a formula with the two orders swapped;
/// with "higher first" this is the one that sends newest-first for descending.) The low 24
/// bits stop at `0xff_fffd`: the two values above are kept for the stream a subscription
/// focuses on and the one next in line (see `docs/session.md`, "Overload"), so three
/// sequences in every 2^24 share a priority (descending: the last three before the low bits
/// wrap; ascending: the first three, 0, 1 and 2).
///
/// ```
/// use moq_proto::GroupOrder;
/// use moq_session::group_priority;
///
/// // Descending: a newer group outranks an older one.
/// assert!(group_priority(0, GroupOrder::Descending, 8) > group_priority(0, GroupOrder::Descending, 7));
/// // Ascending: an older group outranks a newer one.
/// assert!(group_priority(0, GroupOrder::Ascending, 7) > group_priority(0, GroupOrder::Ascending, 8));
/// // Track priority dominates the sequence.
/// assert!(group_priority(1, GroupOrder::Ascending, 1 << 23) > group_priority(0, GroupOrder::Descending, 0xff_ffff));
/// assert!(group_priority(-1, GroupOrder::Descending, 0xff_ffff) < group_priority(0, GroupOrder::Descending, 0));
/// ```
pub fn group_priority(track_priority: i8, order: GroupOrder, sequence: u64) -> i32 {
    let low = (sequence & 0xff_ffff) as i32;
    let low = match order {
        GroupOrder::Descending => low,
        GroupOrder::Ascending => 0xff_ffff - low,
    };
    (i32::from(track_priority) << 24) | low.min(0xff_fffd)
}

/// The QUIC stream priority of the group stream a subscription focuses on (see
/// [`Serving::refocus`]): above every other group stream of the track's priority, below
/// every group stream of a higher one.
fn focused_priority(track_priority: i8) -> i32 {
    (i32::from(track_priority) << 24) | 0xff_ffff
}

/// The QUIC stream priority of the group stream next in line (see [`Serving::refocus`]):
/// just below the focused stream's, above every other group stream of the track's priority.
fn next_priority(track_priority: i8) -> i32 {
    (i32::from(track_priority) << 24) | 0xff_fffe
}

/// Control streams go before any group stream, so that Info reaches the subscriber before
/// the first group (WIRE.md §7.3).
pub(crate) const CONTROL_PRIORITY: i32 = i32::MAX;

/// Serves one bidirectional stream the peer opened, by its type (WIRE.md §4.1).
pub(crate) async fn run_bi<C: Connection>(
    conn: C,
    shared: Arc<Shared>,
    send: C::SendStream,
    recv: C::RecvStream,
) {
    let mut send = Sender::new(send);
    let mut reader = Reader::new(recv, shared.config.reader());
    send.set_priority(CONTROL_PRIORITY);
    let kind = match reader.next::<StreamBi>().await {
        Ok(Some(kind)) => kind,
        Ok(None) => return send.finish(),
        // An unknown type is a decode error: reset+stop 5, the session goes on (§4.1).
        Err(err) => return abort(&mut send, &mut reader, err.code()),
    };
    match kind {
        // §4.2: a second session stream is reset+stopped with 10; the session continues.
        StreamBi::Session => abort(&mut send, &mut reader, ErrorCode::UNEXPECTED_STREAM),
        StreamBi::Announce => serve_announce(shared, send, reader).await,
        StreamBi::Subscribe => serve_subscribe(conn, shared, send, reader).await,
        StreamBi::Fetch => serve_fetch(shared, send, reader).await,
        StreamBi::Info => serve_info(shared, send, reader).await,
    }
}

/// Decrements a counter of the shared state when dropped.
struct Counted {
    shared: Arc<Shared>,
    which: fn(&mut crate::session::State) -> &mut usize,
}

impl Counted {
    /// Counts one more unless the counter is at `max`.
    fn acquire(
        shared: &Arc<Shared>,
        max: usize,
        which: fn(&mut crate::session::State) -> &mut usize,
    ) -> Option<Self> {
        let mut state = shared.lock();
        let count = which(&mut state);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Self {
            shared: shared.clone(),
            which,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let count = (self.which)(&mut state);
        *count = count.saturating_sub(1);
    }
}

/// §4.3: write Active for every current match, then the changes, until the subscriber
/// ends the stream. The matches are the session's own published paths and those of its
/// announce sources ([`Merged`]).
async fn serve_announce<S: SendStream, R: RecvStream>(
    shared: Arc<Shared>,
    mut send: Sender<S>,
    mut reader: Reader<R>,
) {
    let Some(_count) = Counted::acquire(&shared, shared.config.max_announce_streams, |s| {
        &mut s.announce_streams
    }) else {
        return abort(&mut send, &mut reader, ErrorCode::BOUNDS_EXCEEDED);
    };
    let interest = match reader.required::<AnnounceInterest>().await {
        Ok(interest) => interest,
        Err(err) => return abort(&mut send, &mut reader, err.code()),
    };
    let prefix = interest.prefix;
    let mut merged = Merged::new(&shared, prefix.clone());
    loop {
        let event = {
            let next = std::pin::pin!(poll_fn(|cx| merged.poll_next(cx)));
            let closed = std::pin::pin!(reader.closed());
            match select(next, closed).await {
                Either::Left((event, _)) => event,
                // The subscriber ended its side (or reset it): we are done too.
                Either::Right((Ok(()), _)) => return send.finish(),
                Either::Right((Err(_), _)) => return send.reset(ErrorCode::CANCEL),
            }
        };
        let message = match event {
            Ok(Some(Announced::Active(path))) => path
                .strip_prefix(&prefix)
                .map(|suffix| Announce::Active { suffix }),
            Ok(Some(Announced::Ended(path))) => path
                .strip_prefix(&prefix)
                .map(|suffix| Announce::Ended { suffix }),
            Ok(None) => return send.finish(),
            Err(err) => return abort(&mut send, &mut reader, err.code()),
        };
        if let Some(message) = message
            && send.write_message(&message).await.is_err()
        {
            return abort(&mut send, &mut reader, ErrorCode::TRANSPORT);
        }
    }
}

/// §4.6: Info then FIN; unknown → reset+stop 13.
///
/// A path nobody published here is asked of the router, as a subscription would be (§12: a
/// relay forwards the request upstream): the Info describes the track the router serves,
/// and the track is dropped once the Info is written. A router rejection resets the stream
/// with its code.
async fn serve_info<S: SendStream, R: RecvStream>(
    shared: Arc<Shared>,
    mut send: Sender<S>,
    mut reader: Reader<R>,
) {
    let request = match reader.required::<InfoRequest>().await {
        Ok(request) => request,
        Err(err) => return abort(&mut send, &mut reader, err.code()),
    };
    let Ok(_shared_count) = shared_permit(&shared) else {
        return abort(&mut send, &mut reader, ErrorCode::BOUNDS_EXCEEDED);
    };
    let track = match resolve(&shared, Track::new(request.path)).await {
        Ok(track) => track,
        Err(code) => return abort(&mut send, &mut reader, code),
    };
    if send.write_message(&info(&track)).await.is_ok() {
        send.finish();
    }
}

fn info(track: &TrackConsumer) -> Info {
    let description = track.info();
    Info {
        track_priority: description.priority,
        group_order: description.group_order,
        group_expires: description.group_expires,
        // §5.8: 0 when there is no group yet.
        group_latest: track.latest().unwrap_or(0),
    }
}

/// §4.7 with the draft-02 meaning: the cached group's stream contents after the Group
/// header (frame headers and payloads), from byte `offset`, then FIN. Unknown track or
/// group → reset+stop 13; a router's rejection → reset+stop with its code.
async fn serve_fetch<S: SendStream, R: RecvStream>(
    shared: Arc<Shared>,
    mut send: Sender<S>,
    mut reader: Reader<R>,
) {
    let fetch = match reader.required::<Fetch>().await {
        Ok(fetch) => fetch,
        Err(err) => return abort(&mut send, &mut reader, err.code()),
    };
    let Ok(_shared_count) = shared_permit(&shared) else {
        return abort(&mut send, &mut reader, ErrorCode::BOUNDS_EXCEEDED);
    };
    // A path nobody published here is asked of the router, as Info is (a relay serves the
    // group from its cache of the upstream track, or refuses with its own code).
    let track = match resolve(&shared, Track::new(fetch.path.clone())).await {
        Ok(track) => track,
        Err(code) => return abort(&mut send, &mut reader, code),
    };
    let Some(mut group) = track.group(fetch.group) else {
        return abort(&mut send, &mut reader, ErrorCode::NOT_FOUND);
    };
    // `track` lives until the reply ends: a routed track's last consumer going would end
    // its subscription upstream, and with it a group still being received.
    send.set_priority(i32::from(fetch.priority) << 24);
    let mut skip = fetch.offset;
    let result: Result<(), ErrorCode> = async {
        // A live group may keep us waiting: a subscriber that stops the stream meanwhile
        // ends the reply at once, not at the next write.
        while let Some(mut frame) = unless_stopped(&mut send, group.next_frame())
            .await?
            .map_err(|e| e.code())?
        {
            let header = Frame {
                size: frame.size() as u64,
            };
            let header = moq_proto::Encode::to_bytes(&header);
            write_skipping(&mut send, header, &mut skip).await?;
            while let Some(chunk) = unless_stopped(&mut send, frame.read_chunk())
                .await?
                .map_err(|e| e.code())?
            {
                write_skipping(&mut send, chunk, &mut skip).await?;
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => send.finish(),
        Err(code) => abort(&mut send, &mut reader, code),
    }
}

async fn write_skipping<S: SendStream>(
    send: &mut Sender<S>,
    mut bytes: bytes::Bytes,
    skip: &mut u64,
) -> Result<(), ErrorCode> {
    let len = bytes.len() as u64;
    if *skip >= len {
        *skip -= len;
        return Ok(());
    }
    let _ = bytes.split_to(*skip as usize);
    *skip = 0;
    send.write(bytes).await.map_err(|_| ErrorCode::TRANSPORT)
}

/// `wait`'s value, or the subscriber's STOP_SENDING code if it stops the stream first.
async fn unless_stopped<S: SendStream, T>(
    send: &mut Sender<S>,
    wait: impl Future<Output = T>,
) -> Result<T, ErrorCode> {
    let wait = std::pin::pin!(wait);
    let stop = std::pin::pin!(send.stop_code());
    match select(wait, stop).await {
        Either::Left((value, _)) => Ok(value),
        Either::Right((code, _)) => Err(code),
    }
}

/// A permit of [`SessionConfig::shared_subscriptions`], held while a subscription, an Info or
/// a Fetch request is served (each may hold a track, and a relay's router an upstream
/// subscription); `Ok(None)` without a shared limit, `Err` when it is reached.
fn shared_permit(shared: &Shared) -> Result<Option<crate::SharedPermit>, ()> {
    match &shared.config.shared_subscriptions {
        Some(limit) => limit.try_acquire().map(Some).ok_or(()),
        None => Ok(None),
    }
}

/// Finds a track: published tracks and broadcasts, then the router (asked for `track`, which
/// carries what the subscriber wants).
async fn resolve(shared: &Shared, track: Track) -> Result<TrackConsumer, ErrorCode> {
    if let Some(published) = shared.published(&track.path) {
        return Ok(published);
    }
    let router = shared.lock().router.clone();
    let Some(router) = router else {
        return Err(ErrorCode::NOT_FOUND);
    };
    router.subscribe(track).await.map_err(|e| e.code())
}

/// How a group stream ended, for the serving loop.
struct Sent {
    sequence: u64,
    /// `Err` with the GroupDrop code.
    result: Result<(), ErrorCode>,
    /// The subscriber's STOP_SENDING code, if it stopped the stream.
    stopped: Option<ErrorCode>,
}

/// A group stream being sent.
struct InFlight {
    sequence: u64,
    started: Instant,
    cancel: Arc<Cancel>,
    /// From its first frame, to serve the group again (§7.3).
    group: GroupConsumer,
    /// The stream's priority, which [`Serving::refocus`] changes.
    priority: Arc<Priority>,
    /// Whether the subscription focuses on this stream, or has it next in line (see
    /// [`Serving::refocus`]).
    role: Role,
    /// Started and not yet sending: [`Serving::refocus`] gives it its role and its first
    /// priority, then starts sending it (or holds it back: `parked`).
    fresh: bool,
    /// Held back by [`Serving::refocus`] (still `fresh`): the subscription's [`Window`] is
    /// full and the stream has no role.
    parked: bool,
    /// When the stream started sending, if it did (not given up before it queued anything).
    sending_since: Option<Instant>,
    /// The group was seen complete at its producer (see [`InFlight::complete`]).
    complete: AtomicBool,
    /// The subscription's group order when the stream started, which orders it among the
    /// waiting streams (a SubscribeUpdate's new order applies to later groups).
    order: GroupOrder,
    /// The subscription's priority when the stream started sending: its data stays queued
    /// at that level until its next packet (see [`Serving::refocus`]).
    started_priority: i8,
}

/// A group stream's place in its subscription's use of the link (see [`Serving::refocus`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Uses what the focused stream and the next one leave of the link.
    Waiting,
    /// Next in line, since then: gets what the focused stream leaves of the link (all of it
    /// while the focused stream waits for its acknowledgement), and takes the focus when it
    /// moves.
    Next(Instant),
    /// Focused on, since then: gets the link before any other group stream of the
    /// subscription until it is delivered or given up.
    Focus(Instant),
}

impl InFlight {
    /// What the expiry counts from: when the stream started, or, once it is next in line or
    /// focused on, from when it got there. A group that waited its whole budget for the link
    /// is given up before it takes any; one that got the link in time has the budget again
    /// to finish, so that the link is not spent on groups given up half sent (in ascending
    /// order the focused group is the oldest, the first one the expiry would reach).
    fn expiry_base(&self) -> Instant {
        match self.role {
            Role::Focus(since) | Role::Next(since) => since,
            Role::Waiting => self.started,
        }
    }

    fn live(&self) -> bool {
        self.cancel.code().is_none()
    }

    /// Whether the stream takes a place in the [`Window`] while it sends: unless it is an
    /// older group than `newest` still open at its producer. Groups of a live track come
    /// one after another, so only the newest is normally open; an older one left open may
    /// be idle (a producer with groups that overlap, a relay whose upstream group stalls)
    /// and must not hold newer, complete groups back.
    fn counts(&self, newest: u64) -> bool {
        self.sequence >= newest || self.complete()
    }

    /// Whether the group has ended at its producer (finished or aborted).
    fn complete(&self) -> bool {
        // Only the serving loop looks at it: the atomic is for `Sync`, not for ordering.
        if !self.complete.load(Ordering::Relaxed) {
            let closed = std::pin::pin!(self.group.closed());
            let ended = closed
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_ready();
            self.complete.store(ended, Ordering::Relaxed);
        }
        self.complete.load(Ordering::Relaxed)
    }
}

/// How many of a subscription's group streams may be sending at once in descending order
/// (the focused stream and the next in line always may; see [`Serving::refocus`]). An
/// older group left open does not count (see [`InFlight::counts`]).
///
/// The transport sends whatever it is given as fast as its congestion controller lets it,
/// and behind a deep queue at the bottleneck that is faster than the link: the waiting
/// streams' data then fills the queue ahead of the focused stream's next group, waits its
/// turn in it, and is given up with its group (the stream cap, expiry, or passed over).
/// So the limit is learned as a congestion window is, from that waste: it starts at the
/// stream cap (nothing held back), drops to half the streams sending when a stream that
/// started sending after the last cut is given up by us, and grows by one for every
/// [`GROWTH`](Self::GROWTH) times `limit` streams delivered.
#[derive(Debug)]
struct Window {
    limit: usize,
    max: usize,
    /// Streams delivered since the limit last grew.
    delivered: usize,
    /// When the limit was last cut: streams that started sending before then were sent
    /// with the old limit and do not cut it again.
    cut_at: Option<Instant>,
}

impl Window {
    /// The two roles.
    const MIN: usize = 2;
    /// Deliveries per stream of the limit before it grows by one. One (a congestion
    /// window's pace) probed so often that behind a deep queue every third group or so
    /// was sent in part and given up: 81% of the link in whole groups in
    /// `tests/integration/overload.rs`, against 89% with four (92% with sixteen, which takes
    /// four times longer to get back to a deep line on a long link after a cut).
    const GROWTH: usize = 4;

    fn new(max_group_streams: usize) -> Self {
        let max = max_group_streams.max(Self::MIN);
        Self {
            limit: max,
            max,
            delivered: 0,
            cut_at: None,
        }
    }

    fn delivered(&mut self) {
        self.delivered += 1;
        if self.delivered >= self.limit * Self::GROWTH {
            self.delivered = 0;
            self.limit = (self.limit + 1).min(self.max);
        }
    }

    /// A stream that started sending at `since` was given up while `sending` were sending.
    fn wasted(&mut self, since: Instant, sending: usize, now: Instant) {
        if self.cut_at.is_some_and(|at| since <= at) {
            return;
        }
        self.limit = (sending.min(self.limit) / 2).max(Self::MIN);
        self.delivered = 0;
        self.cut_at = Some(now);
    }
}

/// §4.4: resolve, Info, then the latest group from its first frame and every newer group,
/// each on its own stream with a priority from [`group_priority`]; GroupDrop for every group
/// not delivered; FIN as soon as the subscriber FINs.
async fn serve_subscribe<C: Connection>(
    conn: C,
    shared: Arc<Shared>,
    mut send: Sender<C::SendStream>,
    mut reader: Reader<C::RecvStream>,
) {
    let Some(_count) =
        Counted::acquire(&shared, shared.config.max_subscriptions, |s| &mut s.serving)
    else {
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
    let serving = Serving {
        conn,
        shared: shared.clone(),
        id: subscribe.id,
        priority: subscribe.priority,
        order: subscribe.group_order,
        expires: expiry(info.group_expires, subscribe.group_expires),
        track_expires: info.group_expires,
        config: shared.config.clone(),
        window: Window::new(shared.config.max_group_streams),
    };
    serving.run(track, send, reader).await;
}

/// The expiry a subscription is served with: the smaller non-zero one of the publisher's
/// and the subscriber's (§7.5); zero (none) if both are.
fn expiry(ours: Duration, theirs: Duration) -> Duration {
    match (ours, theirs) {
        (Duration::ZERO, theirs) => theirs,
        (ours, Duration::ZERO) => ours,
        (ours, theirs) => ours.min(theirs),
    }
}

struct Serving<C> {
    conn: C,
    shared: Arc<Shared>,
    id: u64,
    /// The subscriber's priority and order (Subscribe, then the latest SubscribeUpdate).
    priority: i8,
    order: GroupOrder,
    /// The expiry in force: [`expiry`] of `track_expires` and the subscriber's.
    expires: Duration,
    /// The publisher's expiry, as in the Info.
    track_expires: Duration,
    config: SessionConfig,
    window: Window,
}

enum Event {
    Timer,
    Update(Result<Option<SubscribeUpdate>, Error>),
    Group(Result<Option<GroupConsumer>, moq_model::Error>),
    Sent(Sent),
    /// Nothing else to do right now, and the focus must move (see [`Serving::refocus`]).
    Refocus,
    Done,
}

impl<C: Connection> Serving<C> {
    async fn run(
        mut self,
        track: TrackConsumer,
        mut send: Sender<C::SendStream>,
        mut reader: Reader<C::RecvStream>,
    ) {
        // The latest group first, from its first frame; then only newer ones.
        let latest = track.latest();
        let first = latest.and_then(|sequence| track.group(sequence));
        let mut next_sequence = latest.map_or(0, |latest| latest + 1);

        let mut groups = Box::pin(stream::unfold(track, |mut track| async move {
            let next = track.next_group().await;
            Some((next, track))
        }));
        let mut sends: FuturesUnordered<BoxFuture<'static, Sent>> = FuturesUnordered::new();
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut track_done = false;

        let mut started = first.is_some();
        let mut first_sequence = first.as_ref().map(GroupConsumer::sequence);
        let mut served_again = false;
        if let Some(group) = first {
            self.start(group, &mut sends, &mut in_flight);
        }
        // With a timer (`SessionConfig::timer`), expiry also happens when nothing else does.
        let mut timer: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = None;
        let mut armed: Option<Instant> = None;
        loop {
            let deadline = self.next_deadline(&in_flight);
            if deadline != armed {
                armed = deadline;
                timer = match (deadline, &self.config.timer) {
                    (Some(deadline), Some(sleep)) => {
                        Some(sleep(deadline.saturating_duration_since(self.config.now())))
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
                let update = std::pin::pin!(reader.next::<SubscribeUpdate>());
                if let Poll::Ready(update) = update.poll(cx) {
                    return Poll::Ready(Event::Update(update));
                }
                if let Poll::Ready(Some(sent)) = sends.poll_next_unpin(cx) {
                    return Poll::Ready(Event::Sent(sent));
                }
                if !track_done && let Poll::Ready(Some(group)) = groups.poll_next_unpin(cx) {
                    return Poll::Ready(Event::Group(group));
                }
                // Streams not started yet (see [`Serving::refocus`]) must start first.
                if track_done && sends.is_empty() && !in_flight.iter().any(|f| f.fresh) {
                    return Poll::Ready(Event::Done);
                }
                // Only once every event at hand is handled, so that of groups that start
                // together the order picks the one to focus on.
                if self.needs_focus(&in_flight) {
                    return Poll::Ready(Event::Refocus);
                }
                Poll::Pending
            })
            .await;
            match event {
                Event::Timer => {
                    timer = None;
                    armed = None;
                    self.expire(&in_flight);
                }
                Event::Update(Ok(Some(update))) => {
                    if let Err(err) = self.update(&update, &mut in_flight) {
                        for flight in &in_flight {
                            flight.cancel.cancel(ErrorCode::CANCEL);
                        }
                        abort(&mut send, &mut reader, err.code());
                        return;
                    }
                }
                // The subscriber FINed: no new group streams, reset the open ones, FIN ours.
                Event::Update(Ok(None)) => {
                    for flight in &in_flight {
                        flight.cancel.cancel(ErrorCode::CANCEL);
                    }
                    send.finish();
                    return;
                }
                Event::Update(Err(err)) => {
                    for flight in &in_flight {
                        flight.cancel.cancel(ErrorCode::CANCEL);
                    }
                    match err {
                        Error::Transport(_) => send.reset(ErrorCode::CANCEL),
                        err => abort(&mut send, &mut reader, err.code()),
                    }
                    return;
                }
                Event::Group(Ok(Some(group))) => {
                    let sequence = group.sequence();
                    if sequence < next_sequence {
                        continue;
                    }
                    // Groups skipped since the last one sent (they left the publisher's
                    // cache before we got to them) are accounted for with one GroupDrop.
                    if started && sequence > next_sequence {
                        let drop = GroupDrop {
                            sequence: next_sequence,
                            count: sequence - next_sequence - 1,
                            code: ErrorCode::CANCEL,
                        };
                        self.shared.lock().group_drops_sent += 1;
                        if send.write_message(&drop).await.is_err() {
                            return;
                        }
                    }
                    started = true;
                    first_sequence.get_or_insert(sequence);
                    next_sequence = sequence + 1;
                    self.start(group, &mut sends, &mut in_flight);
                    self.expire(&in_flight);
                }
                Event::Group(Ok(None)) => track_done = true,
                Event::Group(Err(err)) => {
                    for flight in &in_flight {
                        flight.cancel.cancel(err.code());
                    }
                    abort(&mut send, &mut reader, err.code());
                    return;
                }
                Event::Sent(sent) => {
                    let flight = in_flight
                        .iter()
                        .position(|flight| flight.sequence == sent.sequence)
                        .and_then(|index| in_flight.remove(index));
                    // §7.3: a 0.4 to 0.7 subscriber stops the first group stream with 13 (0.8:
                    // 0) when it overtook the Info. Serve that group again from its first
                    // frame, once; by now the Info has arrived.
                    if let (Err(_), Some(code), Some(flight)) =
                        (&sent.result, sent.stopped, &flight)
                        && !served_again
                        && first_sequence == Some(sent.sequence)
                        && (code == ErrorCode::NOT_FOUND || code == ErrorCode::CANCEL)
                    {
                        served_again = true;
                        self.start(flight.group.clone(), &mut sends, &mut in_flight);
                        continue;
                    }
                    if let Err(code) = sent.result {
                        // §4.5: every group not delivered is followed by a GroupDrop.
                        let drop = GroupDrop {
                            sequence: sent.sequence,
                            count: 0,
                            code,
                        };
                        self.shared.lock().group_drops_sent += 1;
                        if send.write_message(&drop).await.is_err() {
                            return;
                        }
                    }
                    if let Some(flight) = &flight
                        && self.order == GroupOrder::Descending
                    {
                        match &sent.result {
                            Ok(()) => self.window.delivered(),
                            // Given up by us (not stopped by the peer, not failed).
                            Err(_) if sent.stopped.is_none() && !flight.live() => {
                                self.given_up(flight, &in_flight);
                            }
                            Err(_) => {}
                        }
                    }
                    if sent.result.is_ok()
                        && let Some(flight) = &flight
                        && matches!(flight.role, Role::Focus(_))
                    {
                        self.passed_over(&in_flight, flight);
                    }
                    self.expire(&in_flight);
                }
                Event::Refocus => self.refocus(&mut in_flight, &mut sends),
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

    /// §5.7: applies a SubscribeUpdate. Its priority replaces the subscriber's, for the
    /// groups started from now on and for the group streams in flight (re-prioritized with
    /// the same [`group_priority`], [`focused_priority`] and [`next_priority`]: quinn applies
    /// that to a stream's queued data from the stream's next packet). A raised priority
    /// also hands the roles of the streams already sending to streams that start at the new
    /// one (see [`Serving::refocus`]). Its order applies to
    /// the groups started from now on: the streams in flight keep their place (the ones
    /// waiting keep the order they started with), because the transport would apply a new
    /// order to queued data only stream by stream as each next sends, a mix of the two
    /// orders worse than either. Its expiry is combined with the publisher's as at subscribe
    /// time, and groups already past the new budget are given up at once (the timer is
    /// re-armed by the loop). `group_min` / `group_max` are ignored, as in Subscribe. A
    /// priority varint over 255 is a decode error (5).
    fn update(
        &mut self,
        update: &SubscribeUpdate,
        in_flight: &mut VecDeque<InFlight>,
    ) -> Result<(), Error> {
        let priority = update
            .track_priority()
            .map_err(|err| Error::Read(err.into()))?;
        let reprioritized = priority != self.priority;
        if priority > self.priority {
            // The streams sending keep their data queued at the old priority, below every
            // group that starts from now on, until their next packet: under overload that
            // never comes. Their roles go to streams that start at the new priority.
            for flight in in_flight.iter_mut().filter(|f| !f.fresh) {
                flight.role = Role::Waiting;
            }
        }
        self.priority = priority;
        self.order = update.group_order;
        self.expires = expiry(self.track_expires, update.group_expires);
        if reprioritized {
            self.reprioritize(in_flight);
        }
        self.expire(in_flight);
        Ok(())
    }

    /// When the next group stream in flight expires (one that is not the newest and not
    /// already cancelled), if any.
    fn next_deadline(&self, in_flight: &VecDeque<InFlight>) -> Option<Instant> {
        if self.expires.is_zero() || in_flight.len() < 2 {
            return None;
        }
        let newest = in_flight.iter().map(|f| f.sequence).max()?;
        in_flight
            .iter()
            .filter(|f| f.sequence < newest && f.cancel.code().is_none())
            .map(|f| f.expiry_base() + self.expires)
            .min()
    }

    /// Cancels the group streams that outlived the expiry while a newer one exists.
    fn expire(&self, in_flight: &VecDeque<InFlight>) {
        if self.expires.is_zero() || in_flight.len() < 2 {
            return;
        }
        let now = self.config.now();
        let newest = in_flight.iter().map(|f| f.sequence).max().unwrap_or(0);
        for flight in in_flight {
            if flight.sequence < newest && now.duration_since(flight.expiry_base()) >= self.expires
            {
                flight.cancel.cancel(ErrorCode::CANCEL);
            }
        }
    }

    /// Without an expiry, in descending order: once the focused stream is delivered, the
    /// streams of older groups still in flight are given up (GroupDrop 0). The link moved on
    /// to a newer group while they waited, so they are stale; a subscriber reading in order
    /// would otherwise wait for them until the stream cap gives them up. (Not when the next
    /// in line is delivered: it is sent right after the focused one, and the two are often
    /// acknowledged together, in either order; giving up the focused stream then would lose
    /// a group the subscriber has.) Only streams that started before the delivered one: a
    /// group that started with it (the two came together, the newer took the focus) is sent
    /// right after it and is not stale. With an expiry, they wait for it: the link may still
    /// have room for them within the budget.
    fn passed_over(&self, in_flight: &VecDeque<InFlight>, delivered: &InFlight) {
        if !self.expires.is_zero() || self.order != GroupOrder::Descending {
            return;
        }
        for flight in in_flight {
            if flight.sequence < delivered.sequence && flight.started < delivered.started {
                flight.cancel.cancel(ErrorCode::CANCEL);
            }
        }
    }

    fn start(
        &mut self,
        group: GroupConsumer,
        sends: &mut FuturesUnordered<BoxFuture<'static, Sent>>,
        in_flight: &mut VecDeque<InFlight>,
    ) {
        // Past the cap, the oldest held-back or else waiting stream in flight is given up
        // (GroupDrop 11): the focused one and the next in line have the link, so giving one
        // of them up would waste what it has sent.
        while in_flight.len() >= self.config.max_group_streams {
            // A stream held back by the window first: it has sent nothing.
            let victim = in_flight
                .iter()
                .position(|f| f.parked)
                .or_else(|| in_flight.iter().position(|f| f.role == Role::Waiting))
                .or_else(|| {
                    in_flight
                        .iter()
                        .position(|f| !matches!(f.role, Role::Focus(_)))
                })
                .unwrap_or(0);
            let Some(oldest) = in_flight.remove(victim) else {
                break;
            };
            oldest.cancel.cancel(ErrorCode::BOUNDS_EXCEEDED);
            if self.order == GroupOrder::Descending {
                self.given_up(&oldest, in_flight);
            }
            if oldest.fresh {
                // Never sent: started given up, so that it reports (GroupDrop 11).
                sends.push(self.send(&oldest));
            }
        }
        // Sent once [`Serving::refocus`] has given it its role, which happens before the
        // serving loop waits again: of groups that start together the order picks.
        in_flight.push_back(InFlight {
            sequence: group.sequence(),
            started: self.config.now(),
            cancel: Arc::new(Cancel::default()),
            group,
            priority: Arc::new(Priority::new(0)),
            role: Role::Waiting,
            fresh: true,
            parked: false,
            sending_since: None,
            complete: AtomicBool::new(false),
            order: self.order,
            started_priority: self.priority,
        });
    }

    /// Gives the subscription's use of the link its two roles (see [`Role`]), one focused
    /// stream and one next in line, then starts the streams that were waiting for theirs.
    ///
    /// The focus goes to the stream next in line; the order picks the streams that get a
    /// free role: the newest for descending, the oldest for ascending. A stream keeps its
    /// role until it is delivered or given up (a newer group does not take it over), and
    /// the streams with neither keep their [`group_priority`] and use what the two leave of
    /// the link.
    ///
    /// Without a focus, under overload each group stream of a descending subscription would
    /// have the link only until the next group starts: a link carrying less than the
    /// track's rate would carry a part of every group and no whole group. With it, the
    /// link finishes the group it started, then moves on, and the groups in between wait
    /// (and are given up by expiry, the stream cap or [`Serving::passed_over`]) instead of
    /// taking turns. The focus moves only once its stream is delivered, a round trip after
    /// its last byte was sent; meanwhile the stream next in line has the link, rather than a
    /// part of each of the newest groups that are then given up.
    ///
    /// In descending order only a stream that has not started sending takes a free role
    /// (besides the focus passing to the next in line), because quinn applies a priority
    /// change to a stream's queued data only when it next sends from that stream: a waiting
    /// stream raised to the focus would stay behind the newer groups queued since it
    /// started, and under overload never get the link (`docs/session.md`, "Overload"). In
    /// ascending order newer groups queue behind older ones, so the oldest waiting stream
    /// can be raised.
    fn refocus(
        &mut self,
        in_flight: &mut VecDeque<InFlight>,
        sends: &mut FuturesUnordered<BoxFuture<'static, Sent>>,
    ) {
        let now = self.config.now();
        for flight in in_flight.iter_mut() {
            if !flight.live() {
                flight.role = Role::Waiting;
            }
        }
        if !in_flight.iter().any(|f| matches!(f.role, Role::Focus(_))) {
            let next = in_flight
                .iter()
                .position(|f| matches!(f.role, Role::Next(_)))
                .or_else(|| self.first_eligible(in_flight));
            if let Some(index) = next {
                in_flight[index].role = Role::Focus(now);
            }
        }
        if !in_flight.iter().any(|f| matches!(f.role, Role::Next(_)))
            && let Some(index) = self.next_candidate(in_flight)
        {
            in_flight[index].role = Role::Next(now);
        }
        self.reprioritize(in_flight);
        if self.order != GroupOrder::Descending || in_flight.len() <= self.window.limit {
            // Nothing can be held back (fewer streams in flight than the window): start the
            // new ones, oldest first.
            for flight in in_flight.iter_mut().filter(|f| f.fresh) {
                sends.push(self.send(self.begin(flight, now)));
            }
            return;
        }
        // Which streams start: the ones with a role first, then the newest.
        let mut fresh: Vec<usize> = (0..in_flight.len())
            .filter(|&index| in_flight[index].fresh)
            .collect();
        fresh.sort_by_key(|&index| {
            let flight = &in_flight[index];
            (
                flight.role == Role::Waiting,
                std::cmp::Reverse(flight.sequence),
            )
        });
        let mut sending = sending(in_flight);
        let newest = newest(in_flight);
        let mut newest_sending = in_flight
            .iter()
            .filter(|f| !f.fresh && f.live())
            .map(|f| f.sequence)
            .max();
        let mut one_parked = false;
        let mut starting = Vec::new();
        for index in fresh {
            let flight = &mut in_flight[index];
            if flight.live() && self.holds_back(flight, sending) {
                // Without an expiry only the newest group waits, and only while nothing
                // newer is sending: an older one would be passed over anyway.
                let stale = self.expires.is_zero()
                    && (one_parked || newest_sending.is_some_and(|n| n > flight.sequence));
                if !stale {
                    flight.parked = true;
                    one_parked = true;
                    continue;
                }
                flight.cancel.cancel(ErrorCode::CANCEL);
            }
            if flight.live() {
                if flight.counts(newest) {
                    sending += 1;
                }
                newest_sending = newest_sending.max(Some(flight.sequence));
            }
            starting.push(index);
        }
        // Started in the order the groups started (oldest first), as before the window: the
        // streams are opened in that order (their priorities still send the newest first).
        starting.sort_unstable();
        for index in starting {
            sends.push(self.send(self.begin(&mut in_flight[index], now)));
        }
    }

    /// Tells the window that `flight`, no longer in `in_flight`, was given up by us: waste
    /// if it had queued data.
    fn given_up(&mut self, flight: &InFlight, in_flight: &VecDeque<InFlight>) {
        if let Some(since) = flight.sending_since {
            // It was sending along with the ones not reported yet, given up or not.
            let sending = window_count(in_flight, |f| f.sending_since.is_some()) + 1;
            self.window.wasted(since, sending, self.config.now());
        }
    }

    /// Marks a fresh stream as started (at `now`, if live) and returns it, for its send.
    fn begin<'a>(&self, flight: &'a mut InFlight, now: Instant) -> &'a InFlight {
        if flight.live() {
            flight.sending_since = Some(now);
        }
        flight.fresh = false;
        flight.parked = false;
        flight.started_priority = self.priority;
        flight
    }

    /// Whether a live fresh stream waits (see [`Window`]): in descending order, one without
    /// a role while the window is full.
    fn holds_back(&self, flight: &InFlight, sending: usize) -> bool {
        self.order == GroupOrder::Descending
            && flight.role == Role::Waiting
            && sending >= self.window.limit
    }

    /// The future that sends a group stream, from the group's first frame.
    fn send(&self, flight: &InFlight) -> BoxFuture<'static, Sent> {
        Box::pin(send_group(
            self.conn.clone(),
            self.shared.clone(),
            self.id,
            flight.group.clone(),
            flight.priority.clone(),
            flight.cancel.clone(),
        ))
    }

    /// The live waiting stream that may take a free role and that the order ranks first (in
    /// descending order, only one that has not started sending, and in ascending order also
    /// one that started in ascending order: see [`refocus`](Self::refocus)).
    fn first_eligible(&self, in_flight: &VecDeque<InFlight>) -> Option<usize> {
        let waiting = in_flight
            .iter()
            .enumerate()
            .filter(|(_, f)| eligible(f, self.order, self.priority));
        match self.order {
            GroupOrder::Descending => waiting.max_by_key(|(_, f)| f.sequence),
            GroupOrder::Ascending => waiting.min_by_key(|(_, f)| f.sequence),
        }
        .map(|(index, _)| index)
    }

    /// The stream to put next in line: the first eligible one, and in descending order
    /// without an expiry only one newer than the focused stream (an older one would be
    /// given up when the focused stream is delivered, see [`passed_over`](Self::passed_over)).
    fn next_candidate(&self, in_flight: &VecDeque<InFlight>) -> Option<usize> {
        let index = self.first_eligible(in_flight)?;
        if self.order == GroupOrder::Descending && self.expires.is_zero() {
            let focus = in_flight
                .iter()
                .find(|f| f.live() && matches!(f.role, Role::Focus(_)))?;
            if in_flight[index].sequence < focus.sequence {
                return None;
            }
        }
        Some(index)
    }

    /// Whether [`refocus`](Self::refocus) has work: a stream waits to start, or a role is
    /// free and there is a stream to take it (the next in line for the focus, or the one
    /// `refocus` would pick).
    fn needs_focus(&self, in_flight: &VecDeque<InFlight>) -> bool {
        // A new stream to place, a held-back one given up (to report), or one the window
        // now has room for.
        let mut parked = false;
        for flight in in_flight.iter().filter(|f| f.fresh) {
            if !flight.parked || !flight.live() {
                return true;
            }
            parked = true;
        }
        if parked {
            let sending = sending(in_flight);
            if in_flight
                .iter()
                .any(|f| f.parked && f.live() && !self.holds_back(f, sending))
            {
                return true;
            }
        }
        let live = || in_flight.iter().filter(|f| f.live());
        let focus = live().any(|f| matches!(f.role, Role::Focus(_)));
        let next = live().any(|f| matches!(f.role, Role::Next(_)));
        (!focus && (next || self.first_eligible(in_flight).is_some()))
            || (focus && !next && self.next_candidate(in_flight).is_some())
    }

    /// Sets every stream's priority from the subscription's priority and order and its role.
    fn reprioritize(&self, in_flight: &mut VecDeque<InFlight>) {
        for flight in in_flight {
            let priority = match flight.role {
                Role::Focus(_) => focused_priority(self.priority),
                Role::Next(_) => next_priority(self.priority),
                Role::Waiting => group_priority(self.priority, flight.order, flight.sequence),
            };
            if flight.fresh {
                // Not sending yet: its sender starts with this value, no change to apply.
                flight.priority = Arc::new(Priority::new(priority));
            } else {
                flight.priority.set(priority);
            }
        }
    }
}

/// Group streams of a subscription that take a place in its [`Window`]: sending, not given
/// up, and not an older group left open (see [`InFlight::counts`]).
fn sending(in_flight: &VecDeque<InFlight>) -> usize {
    window_count(in_flight, |f| !f.fresh && f.live())
}

/// Streams that pass `filter` and are not an older group left open.
fn window_count(in_flight: &VecDeque<InFlight>, filter: impl Fn(&InFlight) -> bool) -> usize {
    let newest = newest(in_flight);
    in_flight
        .iter()
        .filter(|f| filter(f) && f.counts(newest))
        .count()
}

/// The newest group in flight.
fn newest(in_flight: &VecDeque<InFlight>) -> u64 {
    in_flight.iter().map(|f| f.sequence).max().unwrap_or(0)
}

/// Whether a live waiting stream may take a free role (see [`Serving::refocus`]): one that
/// has not started sending, or, in ascending order, one that started in ascending order and
/// at a priority no lower than the subscription's (so that nothing started since is queued
/// above it).
fn eligible(flight: &InFlight, order: GroupOrder, priority: i8) -> bool {
    flight.role == Role::Waiting
        && flight.live()
        && (flight.fresh
            || (order == GroupOrder::Ascending
                && flight.order == order
                && flight.started_priority >= priority))
}

/// Sends one group on its own unidirectional stream (§4.5): header, then each frame's size
/// and its payload chunks as the model holds them (no copy), then FIN. Resets the stream
/// with the reason if the group fails or the send is cancelled; notices a STOP_SENDING even
/// while the group is idle.
async fn send_group<C: Connection>(
    conn: C,
    shared: Arc<Shared>,
    id: u64,
    mut group: GroupConsumer,
    priority: Arc<Priority>,
    cancel: Arc<Cancel>,
) -> Sent {
    let sequence = group.sequence();
    let _count = Counted::acquire(&shared, usize::MAX, |s| &mut s.group_streams_out);
    let mut stopped = None;
    let work = async {
        let stream = conn.open_uni().await.map_err(|_| ErrorCode::TRANSPORT)?;
        let mut out = Sender::for_group(stream, cancel.clone(), priority);
        out.encode(&StreamUni::Group);
        out.encode(&Group {
            subscribe: id,
            sequence,
        });
        let mut frame = None;
        loop {
            let step = match unless_stopped(&mut out, next_step(&mut group, &mut frame)).await {
                Ok(step) => step,
                Err(code) => {
                    stopped = Some(code);
                    return Err(ErrorCode::TRANSPORT);
                }
            };
            let written = match step {
                Step::Frame(size) => {
                    out.encode(&Frame { size });
                    Ok(())
                }
                Step::Chunk(chunk) => out.write(chunk).await,
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
    };
    let result = cancel.run(work).await;
    Sent {
        sequence,
        result,
        stopped,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_starts_at_the_cap_and_halves_once_per_round() {
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let mut window = Window::new(64);
        assert_eq!(window.limit, 64);
        // Given up while 20 were sending: half of those.
        window.wasted(ms(0), 20, ms(100));
        assert_eq!(window.limit, 10);
        // Streams that started sending before the cut were sent with the old limit.
        window.wasted(ms(99), 20, ms(110));
        assert_eq!(window.limit, 10);
        // One that started with the cut did too; one that started after it cuts again,
        // never below the two roles.
        window.wasted(ms(100), 20, ms(115));
        assert_eq!(window.limit, 10);
        window.wasted(ms(101), 3, ms(120));
        assert_eq!(window.limit, 2);
        window.wasted(ms(130), 2, ms(140));
        assert_eq!(window.limit, 2);
    }

    #[test]
    fn the_window_grows_by_one_per_growth_times_limit_deliveries() {
        let now = Instant::now();
        let mut window = Window::new(3);
        window.wasted(now, 3, now);
        assert_eq!(window.limit, 2);
        for _ in 1..2 * Window::GROWTH {
            window.delivered();
        }
        assert_eq!(window.limit, 2);
        window.delivered();
        assert_eq!(window.limit, 3);
        // Never past the stream cap.
        for _ in 0..10 * Window::GROWTH {
            window.delivered();
        }
        assert_eq!(window.limit, 3);
    }
}
