//! A publisher that produces more than the link carries: live groups, twice the link's rate.
//! What reaches the subscriber should be mostly whole groups (a group cut short is worth
//! nothing to a decoder), not a little of every group.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use moq_model::{GroupConsumer, Track, TrackConsumer};
use moq_proto::GroupOrder;
use moq_session::SessionConfig;
use moq_session::transport::memory::Config;
use tokio::time::Instant;

use crate::support::*;

/// The short link: 500 kB/s each way, 5 ms one way.
const LINK_RATE: u64 = 500_000;
const LINK_DELAY: Duration = Duration::from_millis(5);
/// The long link's one-way delay.
const LONG_DELAY: Duration = Duration::from_millis(100);
/// The bloated link's queue, in link time.
const BLOATED_QUEUE: Duration = Duration::from_millis(200);
/// The load: a 1,000-byte frame every millisecond (1 MB/s, twice the link), 30 per group.
const FRAME_SIZE: usize = 1_000;
const GROUP_FRAMES: u64 = 30;
/// How long the publisher produces.
const PRODUCE: Duration = Duration::from_secs(2);
/// Behind the bloated queue: the first cut of the publisher's window comes a few hundred
/// milliseconds in, so the production is longer, to measure what follows.
const PRODUCE_LONG: Duration = Duration::from_secs(6);

/// What one subscriber got while the publisher produced (plus a short grace for the last
/// group in flight).
#[derive(Debug)]
struct Outcome {
    /// Groups the subscriber's session handed out.
    groups: u64,
    /// Of those, groups that arrived whole (every frame, then a clean end).
    whole: u64,
    /// Payload bytes of the whole groups.
    whole_bytes: u64,
    /// Frames read by a reader that reads the groups in turn, each to its end (as `moq
    /// bench` and a simple player do).
    in_turn_frames: u64,
    /// How long the publisher produced.
    produced: Duration,
}

impl Outcome {
    /// The share of the link's capacity over the production time that went into whole
    /// groups.
    fn goodput(&self) -> f64 {
        self.whole_bytes as f64 / (LINK_RATE as f64 * self.produced.as_secs_f64())
    }
}

/// Reads every group the track hands out on its own task, counting the whole ones; and,
/// separately, reads the groups in turn.
fn observe(track: TrackConsumer) -> (Arc<[AtomicU64; 4]>, tokio::task::JoinHandle<()>) {
    let counts: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
    let all = {
        let counts = counts.clone();
        let mut track = track.clone();
        tokio::spawn(async move {
            while let Ok(Some(group)) = track.next_group().await {
                counts[0].fetch_add(1, Ordering::Relaxed);
                let counts = counts.clone();
                tokio::spawn(async move {
                    if let Some(bytes) = read_whole(group).await {
                        counts[1].fetch_add(1, Ordering::Relaxed);
                        counts[2].fetch_add(bytes, Ordering::Relaxed);
                    }
                });
            }
        })
    };
    let in_turn = {
        let counts = counts.clone();
        let mut track = track;
        tokio::spawn(async move {
            while let Ok(Some(mut group)) = track.next_group().await {
                while let Ok(Some(_)) = group.read_frame().await {
                    counts[3].fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let both = tokio::spawn(async move {
        let _ = tokio::join!(all, in_turn);
    });
    (counts, both)
}

/// The payload bytes of the group if it arrives whole.
async fn read_whole(mut group: GroupConsumer) -> Option<u64> {
    let mut frames = 0;
    let mut bytes = 0;
    loop {
        match group.read_frame().await {
            Ok(Some(frame)) => {
                frames += 1;
                bytes += frame.len() as u64;
            }
            Ok(None) => return (frames == GROUP_FRAMES).then_some(bytes),
            Err(_) => return None,
        }
    }
}

/// One subscriber's link and its publisher's session config.
struct Leg {
    link: Config,
    publisher: SessionConfig,
}

impl Leg {
    /// 500 kB/s each way, 5 ms one way: half the load.
    fn short() -> Self {
        Self {
            link: Config::default().bandwidth(LINK_RATE).delay(LINK_DELAY),
            publisher: paused_clock_and_timer(),
        }
    }

    /// 500 kB/s each way, 100 ms one way: half the load, and a group's acknowledgement
    /// takes longer than the publisher takes to produce six more groups.
    fn long() -> Self {
        Self {
            link: Config::default().bandwidth(LINK_RATE).delay(LONG_DELAY),
            publisher: paused_clock_and_timer(),
        }
    }

    /// The short link behind a 200 ms first-in, first-out queue that the sender keeps full:
    /// priorities decide only what enters it (quinn's congestion controller behind a
    /// bottleneck's deep queue, `docs/benchmarks.md`, "the uplink rows").
    fn bloated() -> Self {
        Self {
            link: Config::default()
                .bandwidth(LINK_RATE)
                .delay(LINK_DELAY)
                .buffer(BLOATED_QUEUE),
            publisher: paused_clock_and_timer(),
        }
    }

    /// No bandwidth limit, 100 ms one way: about seven groups in flight at once.
    fn ample_long() -> Self {
        Self {
            link: Config::default().delay(LONG_DELAY),
            publisher: paused_clock_and_timer(),
        }
    }

    /// No bandwidth limit, 5 ms one way.
    fn ample() -> Self {
        Self {
            link: Config::default().delay(LINK_DELAY),
            publisher: paused_clock_and_timer(),
        }
    }
}

/// How the publisher's groups come into being.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Production {
    /// A frame every millisecond, as an encoder makes them.
    Live,
    /// Every 30 ms a whole group at once, as a relay gets them from a fast upstream: the
    /// publisher queues each group in the transport as soon as it starts.
    Bursts,
}

/// Publishes one track of live groups (a frame a millisecond, twice [`LINK_RATE`]) for
/// [`PRODUCE`] on one session per leg, each with a subscriber of this order and expiry, and
/// reports what each got.
async fn overload(legs: Vec<Leg>, order: GroupOrder, expires: Duration) -> Vec<Outcome> {
    overload_with(legs, order, expires, Production::Live, PRODUCE).await
}

async fn overload_with(
    legs: Vec<Leg>,
    order: GroupOrder,
    expires: Duration,
    production: Production,
    produce: Duration,
) -> Vec<Outcome> {
    let (mut track, consumer) = Track::build(["live"])
        .group_order(order)
        .group_expires(expires)
        .produce();
    let mut observed = Vec::new();
    let mut sessions_kept = Vec::new();
    for leg in legs {
        let (client, server, c, s) =
            sessions_with(leg.link, leg.publisher, paused_clock_and_timer()).await;
        client.publish(consumer.clone()).unwrap();
        let sub = server.subscribe(
            Track::build(["live"])
                .group_order(order)
                .group_expires(expires)
                .into_track(),
        );
        until(|| client.stats().serving == 1).await;
        observed.push(observe(sub));
        sessions_kept.push((client, server, c, s));
    }

    let frames = produce.as_millis() as u64;
    let _open = produce_frames(&mut track, production, frames, |_| FRAME_SIZE).await;
    // A last group in flight may still arrive; nothing after that is counted.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let outcomes = observed
        .into_iter()
        .map(|(counts, readers)| {
            readers.abort();
            Outcome {
                groups: counts[0].load(Ordering::Relaxed),
                whole: counts[1].load(Ordering::Relaxed),
                whole_bytes: counts[2].load(Ordering::Relaxed),
                in_turn_frames: counts[3].load(Ordering::Relaxed),
                produced: produce,
            }
        })
        .collect();
    drop(track);
    outcomes
}

/// Whole groups must fill most of the link: a link that carries 1 MB in the two seconds
/// has room for 33 whole groups of 30 kB. (Before the publisher focused on one group
/// stream at a time, newest first without expiry made 6% of it.)
fn assert_goodput(outcome: &Outcome) {
    assert_goodput_of_whole_groups(outcome);
    // The groups that arrive at all mostly arrive whole (the last may be cut by the end).
    assert!(
        outcome.whole * 10 >= outcome.groups * 8,
        "groups cut short: {outcome:?}"
    );
}

/// [`assert_goodput`] without the share of groups that arrive whole. On a long link the
/// focused stream waits a round trip (200 ms here) for its acknowledgement before the focus
/// moves; the stream next in line has the link meanwhile, and once it too is sent, the
/// newest waiting streams get what is left: parts of groups that are given up later.
fn assert_goodput_of_whole_groups(outcome: &Outcome) {
    println!("{outcome:?}: {:.0}% of the link", outcome.goodput() * 100.0);
    assert!(
        outcome.goodput() >= 0.6,
        "whole groups used {:.0}% of the link: {outcome:?}",
        outcome.goodput() * 100.0
    );
    // A reader that reads the groups in turn gets a good part of it (it is not stuck on a
    // group that will not complete).
    assert!(
        outcome.in_turn_frames * FRAME_SIZE as u64 >= outcome.whole_bytes / 2,
        "the in-turn reader fell behind: {outcome:?}"
    );
}

async fn one(leg: Leg, order: GroupOrder, expires: Duration) -> Outcome {
    let mut outcomes = overload(vec![leg], order, expires).await;
    outcomes.remove(0)
}

async fn one_in_bursts(leg: Leg, order: GroupOrder, expires: Duration) -> Outcome {
    let mut outcomes = overload_with(vec![leg], order, expires, Production::Bursts, PRODUCE).await;
    outcomes.remove(0)
}

/// Behind the bloated queue, for [`PRODUCE_LONG`].
async fn one_bloated(production: Production, expires: Duration) -> Outcome {
    let legs = vec![Leg::bloated()];
    let order = GroupOrder::Descending;
    let mut outcomes = overload_with(legs, order, expires, production, PRODUCE_LONG).await;
    outcomes.remove(0)
}

#[tokio::test(start_paused = true)]
async fn newest_first_without_expiry_delivers_whole_groups() {
    assert_goodput(&one(Leg::short(), GroupOrder::Descending, Duration::ZERO).await);
}

#[tokio::test(start_paused = true)]
async fn newest_first_with_expiry_delivers_whole_groups() {
    let expires = Duration::from_millis(500);
    assert_goodput(&one(Leg::short(), GroupOrder::Descending, expires).await);
}

#[tokio::test(start_paused = true)]
async fn oldest_first_with_expiry_delivers_whole_groups() {
    let expires = Duration::from_millis(500);
    assert_goodput(&one(Leg::short(), GroupOrder::Ascending, expires).await);
}

#[tokio::test(start_paused = true)]
async fn oldest_first_past_the_stream_cap_delivers_whole_groups() {
    // The backlog outgrows 8 streams in flight: the cap must give up waiting groups, not
    // the one the link is sending.
    let mut leg = Leg::short();
    leg.publisher = leg.publisher.max_group_streams(8);
    assert_goodput(&one(leg, GroupOrder::Ascending, Duration::ZERO).await);
}

// A relay serves groups that arrive whole: each is queued in the transport at once, and the
// transport (like quinn) keeps a queued stream at the priority it was queued with. A stream
// raised to the focus after it was queued stayed behind every newer group queued since, and
// the link carried the newest groups only until the next one came (the relay's collapse
// behind a bottleneck in docs/benchmarks.md).

#[tokio::test(start_paused = true)]
async fn newest_first_in_bursts_delivers_whole_groups() {
    assert_goodput(&one_in_bursts(Leg::short(), GroupOrder::Descending, Duration::ZERO).await);
}

#[tokio::test(start_paused = true)]
async fn newest_first_with_expiry_in_bursts_delivers_whole_groups() {
    let expires = Duration::from_millis(500);
    assert_goodput(&one_in_bursts(Leg::short(), GroupOrder::Descending, expires).await);
}

#[tokio::test(start_paused = true)]
async fn oldest_first_with_expiry_in_bursts_delivers_whole_groups() {
    let expires = Duration::from_millis(500);
    assert_goodput(&one_in_bursts(Leg::short(), GroupOrder::Ascending, expires).await);
}

#[tokio::test(start_paused = true)]
async fn newest_first_in_bursts_on_a_long_link_delivers_whole_groups() {
    // 39% before the stream next in line (the link idled on the focus's acknowledgement).
    assert_goodput_of_whole_groups(
        &one_in_bursts(Leg::long(), GroupOrder::Descending, Duration::ZERO).await,
    );
}

#[tokio::test(start_paused = true)]
async fn newest_first_on_a_long_link_delivers_whole_groups() {
    assert_goodput_of_whole_groups(&one(Leg::long(), GroupOrder::Descending, Duration::ZERO).await);
}

#[tokio::test(start_paused = true)]
async fn newest_first_with_expiry_on_a_long_link_delivers_whole_groups() {
    let expires = Duration::from_millis(500);
    assert_goodput_of_whole_groups(&one(Leg::long(), GroupOrder::Descending, expires).await);
}

#[tokio::test(start_paused = true)]
async fn oldest_first_with_expiry_on_a_long_link_delivers_whole_groups() {
    let expires = Duration::from_millis(500);
    assert_goodput(&one(Leg::long(), GroupOrder::Ascending, expires).await);
}

#[tokio::test(start_paused = true)]
async fn a_short_link_gets_whole_groups_and_an_ample_one_every_group() {
    let outcomes = overload(
        vec![Leg::ample(), Leg::short()],
        GroupOrder::Descending,
        Duration::ZERO,
    )
    .await;
    let (ample, short) = (&outcomes[0], &outcomes[1]);
    let produced = PRODUCE.as_millis() as u64;
    // Every finished group whole (the last one is still open when counting stops).
    assert_eq!(ample.whole, produced / GROUP_FRAMES, "{ample:?}");
    assert_eq!(ample.in_turn_frames, produced, "{ample:?}");
    assert_goodput(short);
}

// Behind a deep queue that the sender keeps full, every packet handed to the link waits its
// turn whatever its priority: the focused stream waits the queue out too, and whatever the
// waiting streams put in the queue meanwhile is carried, then given up with its group. The
// publisher learns to hold them back (its window, `docs/session.md`, "Overload"); before,
// whole groups were 48% of the link (48 of 155 groups) and the in-turn reader got 831
// frames in 6 s.

#[tokio::test(start_paused = true)]
async fn newest_first_behind_a_bloated_queue_delivers_whole_groups() {
    assert_goodput(&one_bloated(Production::Live, Duration::ZERO).await);
}

#[tokio::test(start_paused = true)]
async fn newest_first_in_bursts_behind_a_bloated_queue_delivers_whole_groups() {
    assert_goodput(&one_bloated(Production::Bursts, Duration::ZERO).await);
}

#[tokio::test(start_paused = true)]
async fn newest_first_with_expiry_behind_a_bloated_queue_delivers_whole_groups() {
    let expires = Duration::from_millis(500);
    assert_goodput(&one_bloated(Production::Live, expires).await);
}

#[tokio::test(start_paused = true)]
async fn a_long_ample_link_gets_every_group() {
    // Seven groups in flight at once, none of them late: nothing may be held back.
    let outcomes = overload(
        vec![Leg::ample_long()],
        GroupOrder::Descending,
        Duration::ZERO,
    )
    .await;
    let produced = PRODUCE.as_millis() as u64;
    // Every finished group whole, but the last few still on the way when counting stops.
    let whole = outcomes[0].whole;
    assert!(whole + 4 >= produced / GROUP_FRAMES, "{:?}", outcomes[0]);
}

// The window must not cost a link that keeps up, nor hold newer groups behind idle ones.

/// Every group a track handed out, with its frame count if it arrived whole.
type Record = Arc<std::sync::Mutex<Vec<(u64, Option<u64>)>>>;

/// Records every group the track hands out.
fn record(mut track: TrackConsumer) -> Record {
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = got.clone();
    tokio::spawn(async move {
        while let Ok(Some(mut group)) = track.next_group().await {
            let out = out.clone();
            tokio::spawn(async move {
                let mut frames = 0;
                let whole = loop {
                    match group.read_frame().await {
                        Ok(Some(_)) => frames += 1,
                        Ok(None) => break Some(frames),
                        Err(_) => break None,
                    }
                };
                out.lock().unwrap().push((group.sequence(), whole));
            });
        }
    });
    got
}

/// A publisher and a newest-first subscriber on `link`, with `expires`.
async fn live_pair(
    link: Config,
    expires: Duration,
) -> (moq_model::TrackProducer, Record, impl Sized) {
    let (client, server, c, s) =
        sessions_with(link, paused_clock_and_timer(), paused_clock_and_timer()).await;
    let (track, consumer) = Track::build(["live"]).group_expires(expires).produce();
    client.publish(consumer).unwrap();
    let sub = server.subscribe(Track::build(["live"]).group_expires(expires).into_track());
    until(|| client.stats().serving == 1).await;
    (track, record(sub), (client, server, c, s))
}

/// Groups of [`GROUP_FRAMES`] frames of `size(index)` bytes, a frame every millisecond (or a
/// group at once every 30 ms, in bursts). Returns the last group if it is still open.
async fn produce_frames(
    track: &mut moq_model::TrackProducer,
    production: Production,
    frames: u64,
    size: impl Fn(u64) -> usize,
) -> Option<moq_model::GroupProducer> {
    let start = Instant::now();
    let mut group = None;
    for index in 0..frames {
        if production == Production::Live || index % GROUP_FRAMES == 0 {
            tokio::time::sleep_until(start + Duration::from_millis(index)).await;
        }
        let current = group.get_or_insert_with(|| track.append_group());
        current
            .write_frame(Bytes::from(vec![0x5a; size(index)]))
            .unwrap();
        if (index + 1) % GROUP_FRAMES == 0
            && let Some(done) = group.take()
        {
            done.finish();
        }
    }
    group
}

#[tokio::test(start_paused = true)]
async fn a_long_link_at_80_percent_gets_every_group() {
    // 1 MB/s on a 1.25 MB/s link, 100 ms each way: about seven groups in flight.
    let link = Config::default().bandwidth(1_250_000).delay(LONG_DELAY);
    let (mut track, got, _sessions) = live_pair(link, Duration::ZERO).await;
    let _open = produce_frames(&mut track, Production::Live, 6_000, |_| FRAME_SIZE).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = got.lock().unwrap().clone();
    let whole = got.iter().filter(|(_, w)| *w == Some(GROUP_FRAMES)).count();
    assert_eq!(whole, 200, "{got:?}");
}

#[tokio::test(start_paused = true)]
async fn the_window_grows_back_after_an_overload() {
    // One second at twice the link, then half of it, on the long link: the groups of the
    // calm part arrive whole once the window has grown back.
    for expires in [Duration::ZERO, Duration::from_millis(500)] {
        let link = Config::default().bandwidth(LINK_RATE).delay(LONG_DELAY);
        let (mut track, got, _sessions) = live_pair(link, expires).await;
        let _open = produce_frames(&mut track, Production::Live, 6_000, |index| {
            if index < 1_000 { 1_000 } else { 250 }
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let got = got.lock().unwrap().clone();
        let lost: Vec<u64> = (0..200)
            .filter(|seq| !got.contains(&(*seq, Some(GROUP_FRAMES))))
            .collect();
        println!("expiry {expires:?}: lost {lost:?}");
        // Groups from 2.5 s on (84 and later): every one.
        assert!(lost.iter().all(|seq| *seq < 84), "{lost:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn older_groups_left_open_do_not_hold_newer_ones_back() {
    // Four groups opened and left idle, then five complete ones, with a stream cap of four:
    // the open ones are given up by the cap (they are the oldest), but they must not keep
    // the complete ones from the link.
    let link = Config::default().delay(LINK_DELAY);
    let publisher = paused_clock_and_timer().max_group_streams(4);
    let (client, server, _c, _s) = sessions_with(link, publisher, paused_clock_and_timer()).await;
    let (mut track, consumer) = Track::build(["live"]).produce();
    client.publish(consumer).unwrap();
    let got = record(server.subscribe(Track::build(["live"]).into_track()));
    until(|| client.stats().serving == 1).await;
    let payload = Bytes::from_static(b"frame");
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut group = track.append_group();
        group.write_frame(payload.clone()).unwrap();
        open.push(group);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..5 {
        let mut group = track.append_group();
        group.write_frame(payload.clone()).unwrap();
        group.finish();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = got.lock().unwrap().clone();
    for seq in 4..9 {
        assert!(got.contains(&(seq, Some(1))), "group {seq}: {got:?}");
    }
    drop(open);
}

#[tokio::test(start_paused = true)]
async fn a_group_delivered_with_the_focus_is_not_given_up() {
    // An older waiting group and the focused one end together and are delivered in the
    // same turn, the focused one reported first: the older one was delivered, so no
    // GroupDrop (it used to be passed over once its delivery was seen).
    let link = Config::default().delay(LINK_DELAY);
    let (client, server, _c, _s) =
        sessions_with(link, paused_clock_and_timer(), paused_clock_and_timer()).await;
    let (mut track, consumer) = Track::build(["live"]).produce();
    client.publish(consumer).unwrap();
    let got = record(server.subscribe(Track::build(["live"]).into_track()));
    until(|| client.stats().serving == 1).await;
    let step = || tokio::time::sleep(Duration::from_millis(20));
    let open = |track: &mut moq_model::TrackProducer| {
        let mut group = track.append_group();
        group.write_frame(Bytes::from_static(b"frame")).unwrap();
        group
    };
    let g0 = open(&mut track); // focused
    step().await;
    let g1 = open(&mut track); // next in line
    step().await;
    let g2 = open(&mut track); // waiting
    step().await;
    g0.finish(); // g1 takes the focus
    step().await;
    let g3 = open(&mut track); // next in line
    step().await;
    g1.finish(); // g3 takes the focus; g2, older, still open
    step().await;
    g2.finish();
    g3.finish();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut got = got.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        [(0, Some(1)), (1, Some(1)), (2, Some(1)), (3, Some(1))]
    );
    assert_eq!(client.stats().group_drops_sent, 0);
}
