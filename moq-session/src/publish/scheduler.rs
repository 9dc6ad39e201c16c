//! The send scheduler of one subscription we serve: which of its group streams send, at
//! what QUIC priority, and which are given up, under the rules of `docs/session.md`,
//! "Overload" (cited here by number).
//!
//! Plain data, no IO and no clock of its own: the serving loop
//! ([`super::subscription`]) feeds it what happened ([`Scheduler::group`],
//! [`Scheduler::sent`], [`Scheduler::update`], [`Scheduler::timer`], with the time), calls
//! [`Scheduler::refocus`] once every event at hand is handled and
//! [`Scheduler::needs_refocus`] says so, and carries out the [`Action`]s it asks for. The
//! tests at the end drive it on a made-up clock, one test per rule.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use moq_model::GroupConsumer;
use moq_proto::{ErrorCode, GroupDrop, GroupOrder};

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

/// The priority of the focused stream (rule 1): above every other group stream of the
/// track's priority, below every group stream of a higher one.
fn focused_priority(track_priority: i8) -> i32 {
    (i32::from(track_priority) << 24) | 0xff_ffff
}

/// The priority of the stream next in line (rule 2): just below the focused one's.
fn next_priority(track_priority: i8) -> i32 {
    (i32::from(track_priority) << 24) | 0xff_fffe
}

/// The expiry a subscription is served with: the smaller non-zero one of the publisher's
/// and the subscriber's (§7.5, rule 18); zero (none) if both are.
pub(crate) fn expiry(ours: Duration, theirs: Duration) -> Duration {
    match (ours, theirs) {
        (Duration::ZERO, theirs) => theirs,
        (ours, Duration::ZERO) => ours,
        (ours, theirs) => ours.min(theirs),
    }
}

/// A group as the scheduler sees it.
pub(crate) trait Scheduled: Clone {
    fn sequence(&self) -> u64;
    /// Whether the group has ended at its producer (rule 10).
    fn is_closed(&self) -> bool;
}

impl Scheduled for GroupConsumer {
    fn sequence(&self) -> u64 {
        GroupConsumer::sequence(self)
    }

    fn is_closed(&self) -> bool {
        GroupConsumer::is_closed(self)
    }
}

/// What the serving loop is asked to do, in order.
#[derive(Debug)]
pub(crate) enum Action<G> {
    /// Open a unidirectional stream and send the group on it from its first frame, at this
    /// priority; report its end with [`Scheduler::sent`].
    Start { group: G, priority: i32 },
    /// Change the priority of the group's stream.
    Reprioritize { sequence: u64, priority: i32 },
    /// Reset the group's stream with this code (it still reports its end).
    GiveUp { sequence: u64, code: ErrorCode },
    /// Write this GroupDrop on the subscribe stream (§4.5): a group given up or failed.
    Drop(GroupDrop),
    /// Write this GroupDrop on the subscribe stream (§4.5): groups that left the cache
    /// before they could start (told apart from [`Action::Drop`] only for the counts).
    Skip(GroupDrop),
}

/// How a group stream's send ended.
#[derive(Debug)]
pub(crate) struct Sent {
    pub(crate) sequence: u64,
    /// `Err` with the GroupDrop code.
    pub(crate) result: Result<(), ErrorCode>,
    /// The subscriber's STOP_SENDING code, if it stopped the stream.
    pub(crate) stopped: Option<ErrorCode>,
}

/// Where a group stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Started here, queuing nothing yet: its role and first priority come first (rule 6).
    Fresh,
    /// Held back by the window without queuing anything (rule 14).
    Held,
    /// Sending since then.
    Sending(Instant),
    /// Given up by us with this code; `since` is when it started sending, if it did. A
    /// stream that never sent is reported at the next [`Scheduler::refocus`], one that did
    /// when its send ends.
    GivenUp {
        code: ErrorCode,
        since: Option<Instant>,
    },
}

/// A group stream's place in its subscription's use of the link (rules 1 to 5). Only a
/// sending stream holds a role between two turns; a fresh one gets it as it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Uses what the focused stream and the next one leave of the link (rule 3).
    Waiting,
    /// Next in line since then (rule 2).
    Next(Instant),
    /// Focused on since then (rule 1).
    Focus(Instant),
}

#[derive(Debug)]
struct Stream<G> {
    group: G,
    sequence: u64,
    /// When the group started here.
    started: Instant,
    state: State,
    role: Role,
    /// The stream's priority now (the first one until it starts).
    priority: i32,
    /// The subscription's order when the group started: it keeps its place in it.
    order: GroupOrder,
    /// The subscription's priority when the stream started sending: its queued data stays
    /// at that level until its next packet (rules 8 and 22).
    started_priority: i8,
}

impl<G: Scheduled> Stream<G> {
    fn live(&self) -> bool {
        !matches!(self.state, State::GivenUp { .. })
    }

    /// Not started on the transport yet (a stream given up before it sent included).
    fn fresh(&self) -> bool {
        matches!(
            self.state,
            State::Fresh | State::Held | State::GivenUp { since: None, .. }
        )
    }

    fn sending(&self) -> bool {
        matches!(self.state, State::Sending(_))
    }

    fn sending_since(&self) -> Option<Instant> {
        match self.state {
            State::Sending(since) => Some(since),
            State::GivenUp { since, .. } => since,
            State::Fresh | State::Held => None,
        }
    }

    /// What the expiry counts from (rule 18).
    fn expiry_base(&self) -> Instant {
        match self.role {
            Role::Focus(since) | Role::Next(since) => since,
            Role::Waiting => self.started,
        }
    }

    /// Whether the stream takes a place in the window while it sends: unless it is an older
    /// group than `newest` still open at its producer (rule 10).
    fn counts(&self, newest: u64) -> bool {
        self.sequence >= newest || self.group.is_closed()
    }
}

/// How many group streams may be sending at once in descending order (rules 10 to 13):
/// learned as a congestion window is, from the streams given up after they queued data.
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
    /// Deliveries per stream of the limit before it grows by one (rule 13; the choice is
    /// measured in docs/benchmarks.md, "Overload in memory").
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

/// The scheduler of one served subscription (see the module docs).
#[derive(Debug)]
pub(crate) struct Scheduler<G> {
    max_streams: usize,
    /// The subscriber's priority and order (Subscribe, then the latest SubscribeUpdate).
    priority: i8,
    order: GroupOrder,
    /// The expiry in force: [`expiry`] of `track_expires` and the subscriber's.
    expires: Duration,
    /// The publisher's expiry, as in the Info.
    track_expires: Duration,
    window: Window,
    /// The group streams in flight, in the order their groups started here.
    streams: VecDeque<Stream<G>>,
    actions: VecDeque<Action<G>>,
    /// The sequence the next group is expected at: older ones are ignored, and the ones
    /// skipped get one GroupDrop.
    next_sequence: u64,
    /// Whether a group was started (no GroupDrop for what came before the first).
    started: bool,
    /// The first group sent, which may be served again once (§7.3).
    first_sequence: Option<u64>,
    served_again: bool,
}

impl<G: Scheduled> Scheduler<G> {
    /// A subscription's scheduler: `max_group_streams` in flight at most
    /// ([`SessionConfig::max_group_streams`](crate::SessionConfig::max_group_streams)), the
    /// subscriber's priority, order and expiry, the publisher's expiry, and the track's
    /// latest group when the subscription starts (groups up to it are not expected).
    pub(crate) fn new(
        max_group_streams: usize,
        priority: i8,
        order: GroupOrder,
        track_expires: Duration,
        subscriber_expires: Duration,
        latest: Option<u64>,
    ) -> Self {
        Self {
            max_streams: max_group_streams,
            priority,
            order,
            expires: expiry(track_expires, subscriber_expires),
            track_expires,
            window: Window::new(max_group_streams),
            streams: VecDeque::new(),
            actions: VecDeque::new(),
            next_sequence: latest.map_or(0, |latest| latest + 1),
            started: false,
            first_sequence: None,
            served_again: false,
        }
    }

    /// The next action to carry out, oldest first.
    pub(crate) fn next_action(&mut self) -> Option<Action<G>> {
        self.actions.pop_front()
    }

    /// Starts the track's latest group when the subscription starts (§4.4).
    pub(crate) fn first_group(&mut self, group: G, now: Instant) {
        self.started = true;
        self.first_sequence = Some(group.sequence());
        self.start(group, now);
    }

    /// A new group of the track: started unless older than expected; the groups skipped
    /// since the last one (they left the cache before we got to them) get one GroupDrop.
    pub(crate) fn group(&mut self, group: G, now: Instant) {
        let sequence = group.sequence();
        if sequence < self.next_sequence {
            return;
        }
        if self.started && sequence > self.next_sequence {
            self.actions.push_back(Action::Skip(GroupDrop {
                sequence: self.next_sequence,
                count: sequence - self.next_sequence - 1,
                code: ErrorCode::CANCEL,
            }));
        }
        self.started = true;
        self.first_sequence.get_or_insert(sequence);
        self.next_sequence = sequence + 1;
        self.start(group, now);
        self.expire(now);
    }

    /// A group stream's send ended.
    pub(crate) fn sent(&mut self, sent: Sent, now: Instant) {
        let stream = self
            .streams
            .iter()
            .position(|stream| stream.sequence == sent.sequence)
            .and_then(|index| self.streams.remove(index));
        // §7.3: a 0.4 to 0.7 subscriber stops the first group stream with 13 (0.8: 0) when
        // it overtook the Info. Serve that group again from its first frame, once; by now
        // the Info has arrived.
        if let (Err(_), Some(code), Some(stream)) = (&sent.result, sent.stopped, &stream)
            && !self.served_again
            && self.first_sequence == Some(sent.sequence)
            && (code == ErrorCode::NOT_FOUND || code == ErrorCode::CANCEL)
        {
            self.served_again = true;
            self.start(stream.group.clone(), now);
            return;
        }
        if let Err(code) = sent.result {
            self.actions.push_back(Action::Drop(GroupDrop {
                sequence: sent.sequence,
                count: 0,
                code,
            }));
        }
        if let Some(stream) = &stream {
            if self.order == GroupOrder::Descending {
                match &sent.result {
                    Ok(()) => self.window.delivered(),
                    // Given up by us (not stopped by the peer, not failed): rule 12.
                    Err(_) if sent.stopped.is_none() && !stream.live() => {
                        self.given_up(stream, now);
                    }
                    Err(_) => {}
                }
            }
            if sent.result.is_ok() && matches!(stream.role, Role::Focus(_)) {
                self.passed_over(stream);
            }
        }
        self.expire(now);
    }

    /// A SubscribeUpdate (§5.7): its priority replaces the subscriber's for the groups
    /// started from now on and for the streams in flight; a raised one takes the roles
    /// from the streams already sending (rule 22). Its order applies to the groups started
    /// from now on (the streams in flight keep their place); its expiry is combined with
    /// the publisher's, and groups already past it are given up at once.
    pub(crate) fn update(
        &mut self,
        priority: i8,
        order: GroupOrder,
        subscriber_expires: Duration,
        now: Instant,
    ) {
        let reprioritized = priority != self.priority;
        if priority > self.priority {
            for stream in self.streams.iter_mut().filter(|s| !s.fresh()) {
                stream.role = Role::Waiting;
            }
        }
        self.priority = priority;
        self.order = order;
        self.expires = expiry(self.track_expires, subscriber_expires);
        if reprioritized {
            self.reprioritize();
        }
        self.expire(now);
    }

    /// The timer armed at [`deadline`](Self::deadline) fired.
    pub(crate) fn timer(&mut self, now: Instant) {
        self.expire(now);
    }

    /// When the next stream expires (one that is not the newest and not given up), if any.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.expires.is_zero() || self.streams.len() < 2 {
            return None;
        }
        let newest = self.newest();
        self.streams
            .iter()
            .filter(|s| s.sequence < newest && s.live())
            .map(|s| s.expiry_base() + self.expires)
            .min()
    }

    /// Whether no stream waits to start or to be reported: with the track ended and every
    /// send ended, the subscription is done.
    pub(crate) fn is_settled(&self) -> bool {
        !self.streams.iter().any(Stream::fresh)
    }

    /// Rule 18: gives up the streams that outlived the expiry while a newer group exists.
    fn expire(&mut self, now: Instant) {
        if self.expires.is_zero() || self.streams.len() < 2 {
            return;
        }
        let newest = self.newest();
        for stream in &mut self.streams {
            if stream.sequence < newest && now.duration_since(stream.expiry_base()) >= self.expires
            {
                give_up(stream, ErrorCode::CANCEL, &mut self.actions);
            }
        }
    }

    /// Rule 19: in descending order without an expiry, once the focused stream is
    /// delivered, gives up the streams of older groups that started before it.
    fn passed_over(&mut self, delivered: &Stream<G>) {
        if !self.expires.is_zero() || self.order != GroupOrder::Descending {
            return;
        }
        for stream in &mut self.streams {
            if stream.sequence < delivered.sequence && stream.started < delivered.started {
                give_up(stream, ErrorCode::CANCEL, &mut self.actions);
            }
        }
    }

    /// Adds a group stream, past the stream cap after giving one up (rule 20). It starts
    /// at the next [`refocus`](Self::refocus) (rule 6).
    fn start(&mut self, group: G, now: Instant) {
        while self.streams.len() >= self.max_streams {
            // Rule 20: held back first (it has sent nothing), then waiting, then anything
            // but the focus.
            let victim = self
                .streams
                .iter()
                .position(|s| s.state == State::Held)
                .or_else(|| self.streams.iter().position(|s| s.role == Role::Waiting))
                .or_else(|| {
                    self.streams
                        .iter()
                        .position(|s| !matches!(s.role, Role::Focus(_)))
                })
                .unwrap_or(0);
            let Some(mut oldest) = self.streams.remove(victim) else {
                break;
            };
            give_up(&mut oldest, ErrorCode::BOUNDS_EXCEEDED, &mut self.actions);
            if self.order == GroupOrder::Descending {
                self.given_up(&oldest, now);
            }
            if let State::GivenUp { code, since: None } = oldest.state {
                // Never sent: reported here, since it has no send to report its end.
                self.actions.push_back(Action::Drop(GroupDrop {
                    sequence: oldest.sequence,
                    count: 0,
                    code,
                }));
            }
        }
        self.streams.push_back(Stream {
            sequence: group.sequence(),
            group,
            started: now,
            state: State::Fresh,
            role: Role::Waiting,
            priority: 0,
            order: self.order,
            started_priority: self.priority,
        });
    }

    /// Whether [`refocus`](Self::refocus) has work: a stream waits to start or to be
    /// reported, a held-back one fits now, or a role is free and a stream can take it.
    pub(crate) fn needs_refocus(&self) -> bool {
        let mut held = false;
        for stream in self.streams.iter().filter(|s| s.fresh()) {
            if stream.state != State::Held {
                return true;
            }
            held = true;
        }
        if held {
            let sending = self.sending();
            if self
                .streams
                .iter()
                .any(|s| s.state == State::Held && !self.holds_back(s, sending))
            {
                return true;
            }
        }
        let live = || self.streams.iter().filter(|s| s.live());
        let focus = live().any(|s| matches!(s.role, Role::Focus(_)));
        let next = live().any(|s| matches!(s.role, Role::Next(_)));
        (!focus && (next || self.first_eligible().is_some()))
            || (focus && !next && self.next_candidate().is_some())
    }

    /// Gives the two roles (rules 1 to 9), sets every stream's priority, then starts the
    /// fresh streams the window lets through (rules 14 to 17) and reports the ones given up
    /// before they sent.
    pub(crate) fn refocus(&mut self, now: Instant) {
        for stream in &mut self.streams {
            if !stream.live() {
                stream.role = Role::Waiting;
            }
        }
        // Rule 5: the next in line takes the focus, else the stream the order ranks first.
        if !self
            .streams
            .iter()
            .any(|s| matches!(s.role, Role::Focus(_)))
        {
            let next = self
                .streams
                .iter()
                .position(|s| matches!(s.role, Role::Next(_)))
                .or_else(|| self.first_eligible());
            if let Some(index) = next {
                self.streams[index].role = Role::Focus(now);
            }
        }
        if !self.streams.iter().any(|s| matches!(s.role, Role::Next(_)))
            && let Some(index) = self.next_candidate()
        {
            self.streams[index].role = Role::Next(now);
        }
        self.reprioritize();
        if self.order != GroupOrder::Descending || self.streams.len() <= self.window.limit {
            // Nothing can be held back: start the fresh ones in the order they came (17).
            for index in 0..self.streams.len() {
                if self.streams[index].fresh() {
                    self.begin(index, now);
                }
            }
            self.forget_reported();
            return;
        }
        // Which streams start: the ones with a role first, then the newest (rule 16).
        let mut fresh: Vec<usize> = (0..self.streams.len())
            .filter(|&index| self.streams[index].fresh())
            .collect();
        fresh.sort_by_key(|&index| {
            let stream = &self.streams[index];
            (
                stream.role == Role::Waiting,
                std::cmp::Reverse(stream.sequence),
            )
        });
        let mut sending = self.sending();
        let newest = self.newest();
        let mut newest_sending = self
            .streams
            .iter()
            .filter(|s| s.sending())
            .map(|s| s.sequence)
            .max();
        let mut one_held = false;
        let mut starting = Vec::new();
        for index in fresh {
            if self.streams[index].live() && self.holds_back(&self.streams[index], sending) {
                let stream = &mut self.streams[index];
                // Rule 15: without an expiry only the newest group waits, and only while
                // nothing newer is sending: an older one would be passed over anyway.
                let stale = self.expires.is_zero()
                    && (one_held || newest_sending.is_some_and(|n| n > stream.sequence));
                if !stale {
                    stream.state = State::Held;
                    one_held = true;
                    continue;
                }
                give_up(stream, ErrorCode::CANCEL, &mut self.actions);
            }
            let stream = &self.streams[index];
            if stream.live() {
                if stream.counts(newest) {
                    sending += 1;
                }
                newest_sending = newest_sending.max(Some(stream.sequence));
            }
            starting.push(index);
        }
        // Rule 17: opened in the order the groups started.
        starting.sort_unstable();
        for index in starting {
            self.begin(index, now);
        }
        self.forget_reported();
    }

    /// Starts a fresh stream (it sends from now on), or reports one given up before it sent.
    fn begin(&mut self, index: usize, now: Instant) {
        let stream = &mut self.streams[index];
        match stream.state {
            State::Fresh | State::Held => {
                stream.state = State::Sending(now);
                stream.started_priority = self.priority;
                self.actions.push_back(Action::Start {
                    group: stream.group.clone(),
                    priority: stream.priority,
                });
            }
            State::GivenUp { code, since: None } => {
                self.actions.push_back(Action::Drop(GroupDrop {
                    sequence: stream.sequence,
                    count: 0,
                    code,
                }));
            }
            State::Sending(_) | State::GivenUp { .. } => {}
        }
    }

    /// Removes the streams [`begin`](Self::begin) reported.
    fn forget_reported(&mut self) {
        self.streams
            .retain(|s| !matches!(s.state, State::GivenUp { since: None, .. }));
    }

    /// Tells the window that `stream`, no longer in flight, was given up by us (rule 12).
    fn given_up(&mut self, stream: &Stream<G>, now: Instant) {
        if let Some(since) = stream.sending_since() {
            // It was sending along with the ones not reported yet, given up or not.
            let sending = self.window_count(|s| s.sending_since().is_some()) + 1;
            self.window.wasted(since, sending, now);
        }
    }

    /// Rule 14: whether a live fresh stream waits, in descending order one without a role
    /// while the window is full.
    fn holds_back(&self, stream: &Stream<G>, sending: usize) -> bool {
        self.order == GroupOrder::Descending
            && stream.role == Role::Waiting
            && sending >= self.window.limit
    }

    /// The stream eligible for a free role (rules 7 and 8) that the order ranks first
    /// (rule 5).
    fn first_eligible(&self) -> Option<usize> {
        let eligible = self.streams.iter().enumerate().filter(|(_, s)| {
            s.role == Role::Waiting
                && s.live()
                && (s.fresh()
                    || (self.order == GroupOrder::Ascending
                        && s.order == self.order
                        && s.started_priority >= self.priority))
        });
        match self.order {
            GroupOrder::Descending => eligible.max_by_key(|(_, s)| s.sequence),
            GroupOrder::Ascending => eligible.min_by_key(|(_, s)| s.sequence),
        }
        .map(|(index, _)| index)
    }

    /// The stream to put next in line: the first eligible, and in descending order without
    /// an expiry only one newer than the focused stream (rule 9).
    fn next_candidate(&self) -> Option<usize> {
        let index = self.first_eligible()?;
        if self.order == GroupOrder::Descending && self.expires.is_zero() {
            let focus = self
                .streams
                .iter()
                .find(|s| s.live() && matches!(s.role, Role::Focus(_)))?;
            if self.streams[index].sequence < focus.sequence {
                return None;
            }
        }
        Some(index)
    }

    /// Sets every stream's priority from the subscription's priority, its order when the
    /// group started and its role (rules 1 to 3).
    fn reprioritize(&mut self) {
        for stream in &mut self.streams {
            let priority = match stream.role {
                Role::Focus(_) => focused_priority(self.priority),
                Role::Next(_) => next_priority(self.priority),
                Role::Waiting => group_priority(self.priority, stream.order, stream.sequence),
            };
            if priority != stream.priority && stream.sending() {
                self.actions.push_back(Action::Reprioritize {
                    sequence: stream.sequence,
                    priority,
                });
            }
            stream.priority = priority;
        }
    }

    /// Streams that take a place in the window: sending, and not an older group left open.
    fn sending(&self) -> usize {
        self.window_count(Stream::sending)
    }

    /// Streams that pass `filter` and are not an older group left open.
    fn window_count(&self, filter: impl Fn(&Stream<G>) -> bool) -> usize {
        let newest = self.newest();
        self.streams
            .iter()
            .filter(|s| filter(s) && s.counts(newest))
            .count()
    }

    /// The newest group in flight.
    fn newest(&self) -> u64 {
        self.streams.iter().map(|s| s.sequence).max().unwrap_or(0)
    }
}

/// Gives up a live stream with `code`: a sending one is reset, one that never sent is
/// reported at the next refocus.
fn give_up<G>(stream: &mut Stream<G>, code: ErrorCode, actions: &mut VecDeque<Action<G>>) {
    let since = match stream.state {
        State::GivenUp { .. } => return,
        State::Fresh | State::Held => None,
        State::Sending(since) => {
            actions.push_back(Action::GiveUp {
                sequence: stream.sequence,
                code,
            });
            Some(since)
        }
    };
    stream.state = State::GivenUp { code, since };
}

#[cfg(test)]
mod tests {
    //! One test per rule of `docs/session.md`, "Overload", on a made-up clock. Priorities
    //! are at subscription priority 0 unless a test changes it.

    use std::cell::Cell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use super::*;

    const FOCUS: i32 = 0xff_ffff;
    const NEXT: i32 = 0xff_fffe;
    const CANCEL: ErrorCode = ErrorCode::CANCEL;
    const BOUNDS: ErrorCode = ErrorCode::BOUNDS_EXCEEDED;

    #[derive(Clone, Debug)]
    struct FakeGroup {
        sequence: u64,
        closed: Rc<Cell<bool>>,
    }

    impl Scheduled for FakeGroup {
        fn sequence(&self) -> u64 {
            self.sequence
        }

        fn is_closed(&self) -> bool {
            self.closed.get()
        }
    }

    /// An action, without the group handle.
    #[derive(Debug, PartialEq, Eq)]
    enum Did {
        Start(u64, i32),
        Priority(u64, i32),
        GiveUp(u64, ErrorCode),
        Drop(u64, u64, ErrorCode),
        Skip(u64, u64, ErrorCode),
    }
    use Did::*;

    struct Test {
        scheduler: Scheduler<FakeGroup>,
        epoch: Instant,
        now: Instant,
        groups: BTreeMap<u64, FakeGroup>,
    }

    impl Test {
        fn new(max_group_streams: usize, order: GroupOrder, expires_ms: u64) -> Self {
            let epoch = Instant::now();
            Self {
                scheduler: Scheduler::new(
                    max_group_streams,
                    0,
                    order,
                    Duration::from_millis(expires_ms),
                    Duration::ZERO,
                    None,
                ),
                epoch,
                now: epoch,
                groups: BTreeMap::new(),
            }
        }

        fn descending() -> Self {
            Self::new(64, GroupOrder::Descending, 0)
        }

        fn at(&mut self, ms: u64) -> &mut Self {
            self.now = self.epoch + Duration::from_millis(ms);
            self
        }

        /// A group starts at the publisher (and stays open until [`close`](Self::close)).
        fn group(&mut self, sequence: u64) -> &mut Self {
            let group = FakeGroup {
                sequence,
                closed: Rc::new(Cell::new(false)),
            };
            self.groups.insert(sequence, group.clone());
            self.scheduler.group(group, self.now);
            self
        }

        /// Groups that start and end at once, as a relay's whole groups do.
        fn groups(&mut self, sequences: impl IntoIterator<Item = u64>) -> &mut Self {
            for sequence in sequences {
                self.group(sequence).close(sequence);
            }
            self
        }

        fn close(&mut self, sequence: u64) -> &mut Self {
            self.groups[&sequence].closed.set(true);
            self
        }

        fn report(&mut self, sequence: u64, result: Result<(), ErrorCode>) -> &mut Self {
            let sent = Sent {
                sequence,
                result,
                stopped: None,
            };
            self.scheduler.sent(sent, self.now);
            self
        }

        fn delivered(&mut self, sequence: u64) -> &mut Self {
            self.report(sequence, Ok(()))
        }

        fn stopped(&mut self, sequence: u64, code: ErrorCode) -> &mut Self {
            let sent = Sent {
                sequence,
                result: Err(ErrorCode::TRANSPORT),
                stopped: Some(code),
            };
            self.scheduler.sent(sent, self.now);
            self
        }

        fn timer(&mut self) -> &mut Self {
            self.scheduler.timer(self.now);
            self
        }

        /// The end of a turn, as the serving loop does it: refocus while there is work,
        /// then the actions, in order.
        fn turn(&mut self) -> Vec<Did> {
            for _ in 0..3 {
                if !self.scheduler.needs_refocus() {
                    break;
                }
                self.scheduler.refocus(self.now);
            }
            assert!(!self.scheduler.needs_refocus(), "refocus left work");
            std::iter::from_fn(|| self.scheduler.next_action())
                .map(|action| match action {
                    Action::Start { group, priority } => Start(group.sequence, priority),
                    Action::Reprioritize { sequence, priority } => Priority(sequence, priority),
                    Action::GiveUp { sequence, code } => GiveUp(sequence, code),
                    Action::Drop(drop) => Drop(drop.sequence, drop.count, drop.code),
                    Action::Skip(drop) => Skip(drop.sequence, drop.count, drop.code),
                })
                .collect()
        }

        fn window(&mut self, limit: usize) -> &mut Self {
            self.scheduler.window.limit = limit;
            self
        }
    }

    #[test]
    fn rule_1_the_first_group_is_focused() {
        let mut t = Test::descending();
        assert_eq!(t.group(0).turn(), [Start(0, FOCUS)]);
    }

    #[test]
    fn rule_2_the_next_group_is_next_in_line() {
        let mut t = Test::descending();
        t.group(0).turn();
        assert_eq!(t.group(1).turn(), [Start(1, NEXT)]);
    }

    #[test]
    fn rule_3_the_others_wait_at_their_group_priority() {
        let mut t = Test::descending();
        t.group(0).turn();
        t.group(1).turn();
        assert_eq!(t.group(2).turn(), [Start(2, 2)]);
        assert_eq!(t.group(3).turn(), [Start(3, 3)]);
    }

    #[test]
    fn rule_4_a_newer_group_does_not_take_a_role_over() {
        let mut t = Test::descending();
        t.group(0).turn();
        t.group(1).turn();
        t.group(2).turn();
        // No priority change for 0 and 1.
        assert_eq!(t.group(3).turn(), [Start(3, 3)]);
    }

    #[test]
    fn rule_5_the_next_in_line_takes_the_focus_and_the_order_picks_the_free_role() {
        // Descending: the newest fresh stream.
        let mut t = Test::descending();
        t.group(0).turn();
        t.group(1).turn();
        t.group(2).group(3);
        assert_eq!(t.turn(), [Start(2, 2), Start(3, 3)]);
        t.group(4).group(5).delivered(0);
        assert_eq!(
            t.turn(),
            [Priority(1, FOCUS), Start(4, 4), Start(5, NEXT)],
            "1 takes the focus, the newest fresh stream the free role"
        );
        // Ascending: the oldest.
        let mut t = Test::new(64, GroupOrder::Ascending, 0);
        t.group(0).group(1).group(2);
        let low = |sequence| group_priority(0, GroupOrder::Ascending, sequence);
        assert_eq!(
            t.turn(),
            [Start(0, FOCUS), Start(1, NEXT), Start(2, low(2))]
        );
        t.delivered(0);
        assert_eq!(t.turn(), [Priority(1, FOCUS), Priority(2, NEXT)]);
    }

    #[test]
    fn rule_6_groups_that_start_together_get_their_roles_before_they_send() {
        let mut t = Test::descending();
        t.group(5).group(6).group(7);
        // The order picks among them: the newest is focused from its first byte.
        assert_eq!(t.turn(), [Start(5, 5), Start(6, 6), Start(7, FOCUS)]);
    }

    #[test]
    fn rule_7_descending_a_stream_that_sent_is_not_raised() {
        let mut t = Test::descending();
        t.group(0).turn();
        t.group(1).turn();
        t.group(2).turn();
        // The next in line takes the focus; 2 is sending and stays where it is.
        assert_eq!(t.delivered(0).turn(), [Priority(1, FOCUS)]);
        // The free role goes to the next fresh stream.
        assert_eq!(t.group(3).turn(), [Start(3, NEXT)]);
    }

    #[test]
    fn rule_8_ascending_a_stream_that_sent_may_be_raised_unless_queued_lower() {
        let low = |priority, sequence| group_priority(priority, GroupOrder::Ascending, sequence);
        let mut t = Test::new(64, GroupOrder::Ascending, 0);
        t.group(0).group(1).group(2).group(3).turn();
        assert_eq!(
            t.delivered(0).turn(),
            [Priority(1, FOCUS), Priority(2, NEXT)]
        );
        // 3 started at priority 0; at priority 1 the streams that start later queue above it,
        // so it cannot take a role.
        t.scheduler
            .update(1, GroupOrder::Ascending, Duration::ZERO, t.now);
        assert_eq!(
            t.turn(),
            [
                Priority(1, low(1, 1)),
                Priority(2, low(1, 2)),
                Priority(3, low(1, 3)),
            ],
            "a raised priority takes the roles (rule 22) and 3 is not eligible"
        );
        assert_eq!(
            t.group(4).group(5).turn(),
            [Start(4, focused_priority(1)), Start(5, next_priority(1))]
        );
    }

    #[test]
    fn rule_9_descending_without_expiry_the_next_in_line_is_newer_than_the_focus() {
        let mut t = Test::descending();
        assert_eq!(t.group(5).group(6).turn(), [Start(5, 5), Start(6, FOCUS)]);
        // With an expiry the older one may be next in line.
        let mut t = Test::new(64, GroupOrder::Descending, 500);
        assert_eq!(
            t.group(5).group(6).turn(),
            [Start(5, NEXT), Start(6, FOCUS)]
        );
    }

    #[test]
    fn rule_10_an_older_group_still_open_does_not_count_in_the_window() {
        // 0 and 1 still open at the producer: 2 is not held back behind them.
        let mut t = Test::descending();
        t.window(2);
        t.group(0).turn();
        t.group(1).turn();
        assert_eq!(t.group(2).turn(), [Start(2, 2)]);
        // 0 and 1 complete: they count, and 2 is held back.
        let mut t = Test::descending();
        t.window(2);
        t.groups([0]).turn();
        t.groups([1]).turn();
        assert_eq!(t.groups([2]).turn(), []);
    }

    #[test]
    fn rule_11_the_window_starts_at_the_stream_cap() {
        let mut t = Test::new(8, GroupOrder::Descending, 500);
        assert_eq!(t.scheduler.window.limit, 8);
        t.groups(0..8);
        assert_eq!(t.turn().len(), 8, "nothing held back");
    }

    #[test]
    fn rule_12_a_stream_given_up_after_it_sent_cuts_the_window_once_per_round() {
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let mut window = Window::new(64);
        // Given up while 20 were sending: half of those.
        window.wasted(ms(0), 20, ms(100));
        assert_eq!(window.limit, 10);
        // Streams that started sending before the cut, or with it, were sent with the old
        // limit; one that started after it cuts again, never below the two roles.
        window.wasted(ms(99), 20, ms(110));
        window.wasted(ms(100), 20, ms(115));
        assert_eq!(window.limit, 10);
        window.wasted(ms(101), 3, ms(120));
        assert_eq!(window.limit, 2);
        window.wasted(ms(130), 2, ms(140));
        assert_eq!(window.limit, 2);

        // Through the scheduler: the expiry gives up 0 to 5, which had sent; their reports
        // cut the window once, to half of the 7 then sending.
        let mut t = Test::new(64, GroupOrder::Descending, 100);
        t.groups(0..6).turn();
        t.at(150).groups([6]);
        let given_up: Vec<Did> = (0..6).map(|sequence| GiveUp(sequence, CANCEL)).collect();
        assert_eq!(t.turn()[..6], given_up[..]);
        for sequence in 0..6 {
            t.report(sequence, Err(CANCEL));
        }
        assert_eq!(t.scheduler.window.limit, 3);
        // A stream the peer stopped, or one that failed, cuts nothing.
        let mut t = Test::new(64, GroupOrder::Descending, 0);
        t.groups(0..4).turn();
        t.stopped(0, CANCEL).report(1, Err(ErrorCode::TRANSPORT));
        assert_eq!(t.scheduler.window.limit, 64);
        // Nor one whose delivery was seen in the turn it was given up in.
        let mut t = Test::new(64, GroupOrder::Descending, 100);
        t.groups(0..4).turn();
        t.at(150).groups([4]).turn();
        t.delivered(0);
        assert_eq!(t.scheduler.window.limit, 64);
    }

    #[test]
    fn rule_13_the_window_grows_by_one_per_four_windows_delivered() {
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

    #[test]
    fn rule_14_a_full_window_holds_back_streams_without_a_role_but_not_the_roles() {
        let mut t = Test::new(64, GroupOrder::Descending, 500);
        t.window(2);
        t.groups([0]).turn();
        t.groups([1]).turn();
        assert_eq!(t.groups([2]).turn(), [], "held back: nothing queued");
        // 0 is delivered: 1 takes the focus, and 2 the role next in line, and starts.
        assert_eq!(t.delivered(0).turn(), [Priority(1, FOCUS), Start(2, NEXT)]);
        // The roles start even when the window is full.
        t.groups([3]).turn();
        assert_eq!(t.groups([4]).turn(), []);
        t.delivered(1).delivered(2);
        assert_eq!(t.turn(), [Start(3, NEXT), Start(4, FOCUS)]);
    }

    #[test]
    fn rule_15_without_expiry_only_the_newest_held_back_stream_waits() {
        let mut t = Test::descending();
        t.window(2);
        t.groups([0]).turn();
        t.groups([1]).turn();
        // 3 waits; 2 would be passed over anyway: given up without sending.
        assert_eq!(t.groups([2, 3]).turn(), [Drop(2, 0, CANCEL)]);
        // With an expiry both wait.
        let mut t = Test::new(64, GroupOrder::Descending, 500);
        t.window(2);
        t.groups([0]).turn();
        t.groups([1]).turn();
        assert_eq!(t.groups([2, 3]).turn(), []);
    }

    #[test]
    fn rule_16_the_newest_held_back_stream_takes_the_next_free_role() {
        let mut t = Test::new(64, GroupOrder::Descending, 500);
        t.window(2);
        t.groups([0]).turn();
        t.groups([1]).turn();
        t.groups([2, 3]).turn();
        assert_eq!(t.delivered(0).turn(), [Priority(1, FOCUS), Start(3, NEXT)]);
        // And room in the window goes to the newest too.
        t.window(3);
        assert_eq!(t.delivered(1).turn(), [Priority(3, FOCUS), Start(2, NEXT)]);
    }

    #[test]
    fn rule_17_streams_that_start_in_one_turn_open_oldest_first() {
        let mut t = Test::descending();
        t.groups([0]).turn();
        t.groups([1]).turn();
        assert_eq!(
            t.groups([2, 3, 4]).turn(),
            [Start(2, 2), Start(3, 3), Start(4, 4)]
        );
    }

    #[test]
    fn rule_18_expiry_counts_from_the_start_or_from_the_role() {
        let mut t = Test::new(64, GroupOrder::Descending, 100);
        // 2 focused, 1 next in line, 0 waiting, all since 0 ms.
        assert_eq!(
            t.group(0).group(1).group(2).turn(),
            [Start(0, 0), Start(1, NEXT), Start(2, FOCUS)]
        );
        // At 60 ms 2 is delivered: 1 is focused from then on, 3 next in line.
        t.at(60).delivered(2).group(3);
        assert_eq!(t.turn(), [Priority(1, FOCUS), Start(3, NEXT)]);
        assert_eq!(
            t.scheduler.deadline(),
            Some(t.epoch + Duration::from_millis(100))
        );
        // At 100 ms 0 has waited its budget; 1 has until 160 ms, 3 is the newest.
        assert_eq!(t.at(100).timer().turn(), [GiveUp(0, CANCEL)]);
        t.report(0, Err(CANCEL));
        assert_eq!(t.turn(), [Drop(0, 0, CANCEL)]);
        assert_eq!(
            t.scheduler.deadline(),
            Some(t.epoch + Duration::from_millis(160))
        );
        assert_eq!(t.at(159).timer().turn(), []);
        // The focus given up, the next in line takes it.
        assert_eq!(
            t.at(160).timer().turn(),
            [GiveUp(1, CANCEL), Priority(3, FOCUS)]
        );
    }

    #[test]
    fn rule_19_the_focus_delivered_passes_over_older_groups_that_started_before_it() {
        let mut t = Test::descending();
        t.at(0).group(0).turn();
        t.at(1).group(1).turn();
        t.at(2).group(2).turn();
        // The next in line delivered gives nothing up.
        assert_eq!(t.at(3).delivered(1).turn(), []);
        assert_eq!(t.at(4).group(3).turn(), [Start(3, NEXT)]);
        assert_eq!(t.at(5).delivered(0).turn(), [Priority(3, FOCUS)]);
        // 3, focused, is delivered: 2 is older and started before it.
        assert_eq!(t.at(6).delivered(3).turn(), [GiveUp(2, CANCEL)]);
        // A group that started with the focused one is kept.
        let mut t = Test::descending();
        assert_eq!(t.group(0).group(1).turn(), [Start(0, 0), Start(1, FOCUS)]);
        assert_eq!(t.delivered(1).turn(), []);
        // With an expiry nothing is passed over: 2 waits for it.
        let mut t = Test::new(64, GroupOrder::Descending, 500);
        t.at(0).group(0).turn();
        t.at(1).group(1).turn();
        t.at(2).group(2).turn();
        t.delivered(1).group(3).turn();
        t.delivered(0).turn();
        assert_eq!(t.delivered(3).turn(), []);
        assert_eq!(
            t.at(502).group(4).turn(),
            [GiveUp(2, CANCEL), Start(4, FOCUS)]
        );
    }

    #[test]
    fn rule_20_the_stream_cap_gives_up_held_then_waiting_then_anything_but_the_focus() {
        // A waiting stream, oldest first.
        let mut t = Test::new(4, GroupOrder::Descending, 0);
        t.group(0).turn();
        t.group(1).turn();
        t.group(2).turn();
        t.group(3).turn();
        assert_eq!(t.group(4).turn(), [GiveUp(2, BOUNDS), Start(4, 4)]);
        t.report(2, Err(BOUNDS));
        assert_eq!(t.turn(), [Drop(2, 0, BOUNDS)]);
        // A held-back one first: it has sent nothing, and is reported at once.
        let mut t = Test::new(4, GroupOrder::Descending, 500);
        t.groups([0]).turn();
        t.groups([1]).turn();
        t.groups([2]).turn();
        t.window(2).groups([3]).turn();
        assert_eq!(t.groups([4]).turn(), [Drop(3, 0, BOUNDS)]);
        // Without waiting streams, the next in line; never the focus.
        let mut t = Test::new(2, GroupOrder::Descending, 0);
        t.group(0).turn();
        t.group(1).turn();
        assert_eq!(t.group(2).turn(), [GiveUp(1, BOUNDS), Start(2, NEXT)]);
    }

    #[test]
    fn rule_21_ascending_without_expiry_gives_nothing_up_by_age() {
        let mut t = Test::new(4, GroupOrder::Ascending, 0);
        t.group(0).group(1).group(2).turn();
        let low = |sequence| group_priority(0, GroupOrder::Ascending, sequence);
        assert_eq!(t.at(60_000).group(3).timer().turn(), [Start(3, low(3))]);
        assert_eq!(t.delivered(2).turn(), []);
        assert_eq!(
            t.delivered(0).turn(),
            [Priority(1, FOCUS), Priority(3, NEXT)]
        );
        // Only the stream cap bounds the backlog.
        t.group(4).group(5).turn();
        assert_eq!(t.group(6).turn(), [GiveUp(4, BOUNDS), Start(6, low(6))]);
    }

    #[test]
    fn rule_22_a_raised_priority_takes_the_roles_from_the_streams_sending() {
        let mut t = Test::descending();
        t.group(0).turn();
        t.group(1).turn();
        t.scheduler
            .update(1, GroupOrder::Descending, Duration::ZERO, t.now);
        let low = |sequence| group_priority(1, GroupOrder::Descending, sequence);
        assert_eq!(t.turn(), [Priority(0, low(0)), Priority(1, low(1))]);
        assert_eq!(t.group(2).turn(), [Start(2, focused_priority(1))]);
        // A lowered one leaves the roles where they are.
        let mut t = Test::descending();
        t.group(0).turn();
        t.group(1).turn();
        t.scheduler
            .update(-1, GroupOrder::Descending, Duration::ZERO, t.now);
        assert_eq!(
            t.turn(),
            [
                Priority(0, focused_priority(-1)),
                Priority(1, next_priority(-1))
            ]
        );
    }

    #[test]
    fn groups_left_behind_get_one_group_drop_and_older_ones_are_ignored() {
        let mut t = Test::descending();
        t.group(3).turn();
        assert_eq!(t.group(7).turn(), [Skip(4, 2, CANCEL), Start(7, NEXT)]);
        assert_eq!(t.group(5).turn(), []);
        // Before the first group nothing is reported.
        let mut t = Test::descending();
        t.scheduler.next_sequence = 10;
        assert_eq!(t.group(12).turn(), [Start(12, FOCUS)]);
    }

    #[test]
    fn the_first_group_stopped_for_an_unknown_subscription_is_served_again_once() {
        let mut t = Test::descending();
        t.group(0).turn();
        assert_eq!(t.stopped(0, ErrorCode::NOT_FOUND).turn(), [Start(0, FOCUS)]);
        assert_eq!(
            t.stopped(0, ErrorCode::NOT_FOUND).turn(),
            [Drop(0, 0, ErrorCode::TRANSPORT)]
        );
    }

    #[test]
    fn the_subscription_is_settled_once_every_stream_started_or_was_reported() {
        let mut t = Test::descending();
        t.group(0);
        assert!(!t.scheduler.is_settled());
        t.turn();
        assert!(t.scheduler.is_settled());
    }
}
