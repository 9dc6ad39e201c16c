//! SubscribeUpdate on the publisher side (WIRE.md §5.7), and the serving loop around it: a raw
//! subscriber changes the priority, order and expiry of its subscriptions on a
//! bandwidth-limited link.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use moq_model::{GroupProducer, Track, TrackProducer};
use moq_proto::{
    Decode, Encode, ErrorCode, Group, GroupDrop, GroupOrder, Info, MessageReader, StreamBi,
    StreamUni, Subscribe, SubscribeUpdate,
};
use moq_session::Session;
use moq_session::transport::memory::{self, Config};
use moq_session::transport::{Connection, RecvStream, SendStream, TransportError};

use crate::support::*;

/// How a group stream ended at the raw subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Done,
    Reset(ErrorCode),
}

/// Group streams in the order they ended: (subscribe id, sequence, fate).
type Log = Arc<Mutex<Vec<(u64, u64, Fate)>>>;

/// Accepts every group stream the raw client receives and logs each when it ends.
fn collect(client: &memory::Connection) -> Log {
    let log = Log::default();
    let (conn, all) = (client.clone(), log.clone());
    tokio::spawn(async move {
        while let Ok(mut stream) = conn.accept_uni().await {
            let log = all.clone();
            tokio::spawn(async move {
                let mut bytes = Vec::new();
                let fate = loop {
                    match stream.read().await {
                        Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                        Ok(None) => break Fate::Done,
                        Err(TransportError::StreamReset(code)) => break Fate::Reset(code),
                        Err(err) => panic!("group stream: {err}"),
                    }
                };
                let header =
                    StreamUni::decode(&bytes).and_then(|(_, used)| Group::decode(&bytes[used..]));
                let Ok((group, _)) = header else {
                    // Reset before its header arrived (a reset may overtake data): whose
                    // group it was is unknown.
                    assert_ne!(fate, Fate::Done, "a whole stream without a group header");
                    return;
                };
                log.lock()
                    .unwrap()
                    .push((group.subscribe, group.sequence, fate));
            });
        }
    });
    log
}

/// Waits (at most 10 s on the paused clock) until `count` group streams have ended.
async fn until_ended(log: &Log, count: usize) -> Vec<(u64, u64, Fate)> {
    let start = tokio::time::Instant::now();
    while ended(log).len() < count {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "ended: {:?}",
            ended(log)
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    ended(log)
}

fn ended(log: &Log) -> Vec<(u64, u64, Fate)> {
    log.lock().unwrap().clone()
}

/// A subscription made by hand on a raw connection.
struct RawSub {
    send: memory::SendStream,
    recv: memory::RecvStream,
    reader: MessageReader,
}

impl RawSub {
    /// Subscribes to `path` with id `id` and reads the Info.
    async fn new(
        client: &memory::Connection,
        id: u64,
        path: &str,
        priority: i8,
        group_order: GroupOrder,
    ) -> Self {
        let subscribe = Subscribe {
            id,
            path: [path].into(),
            priority,
            group_order,
            group_expires: Duration::ZERO,
            group_min: None,
            group_max: None,
        };
        let (send, recv) = raw_bi(client, encode(&[&StreamBi::Subscribe, &subscribe])).await;
        let mut sub = Self {
            send,
            recv,
            reader: MessageReader::new(),
        };
        let _info: Info = soon(sub.next()).await.unwrap();
        sub
    }

    async fn update(&mut self, priority: i8, group_order: GroupOrder, group_expires: Duration) {
        self.write(SubscribeUpdate {
            priority: SubscribeUpdate::priority_of(priority),
            group_order,
            group_expires,
            group_min: None,
            group_max: None,
        })
        .await;
    }

    async fn write(&mut self, update: SubscribeUpdate) {
        self.send.write(update.to_bytes()).await.unwrap();
    }

    /// The next message the publisher writes on the subscribe stream.
    async fn next<T: Decode + 'static>(&mut self) -> Result<T, TransportError> {
        loop {
            if let Some(message) = self.reader.next::<T>().unwrap() {
                return Ok(message);
            }
            match self.recv.read().await? {
                Some(chunk) => self.reader.push(&chunk),
                None => panic!("the publisher ended the subscribe stream"),
            }
        }
    }
}

/// A session publishing `paths` to a raw client: the session (with the raw side's session
/// stream, which must stay open), the raw connection and the tracks. The tracks' expiry
/// (the publisher's) also keeps their groups cached for that long, so that a burst of
/// groups is sent whole.
async fn publishing(
    link: Config,
    config: moq_session::SessionConfig,
    paths: &[&str],
    expires: Duration,
) -> (Published, memory::Connection, Vec<TrackProducer>) {
    let (session, client, _server, stream) = raw_client_on(link, config).await;
    let tracks = paths
        .iter()
        .map(|path| {
            let (track, consumer) = Track::build([*path]).group_expires(expires).produce();
            session.publish(consumer).unwrap();
            track
        })
        .collect();
    (
        Published {
            session,
            _stream: stream,
        },
        client,
        tracks,
    )
}

struct Published {
    session: Session,
    _stream: (memory::SendStream, memory::RecvStream),
}

/// `count` finished groups of `size` bytes on `track`.
fn groups(track: &mut TrackProducer, count: usize, size: usize) {
    for _ in 0..count {
        let mut group = track.append_group();
        group.write_frame(Bytes::from(vec![7u8; size])).unwrap();
    }
}

const MB_PER_S: u64 = 1_000_000;

/// A publisher's expiry far longer than any test.
const CACHED: Duration = Duration::from_secs(3600);

/// One group of 90 kB on each of tracks a and b, both priority 0: their streams take turns
/// packet by packet, 180 ms of link time in all. 5 ms in, the subscriber raises a to 127.
/// When each stream ended, by subscribe id (a is 0).
async fn raise_in_flight(link: Config) -> Vec<(u64, Duration)> {
    let (_session, client, mut tracks) =
        publishing(link, paused_clock(), &["a", "b"], CACHED).await;
    let log = collect(&client);
    let mut a = RawSub::new(&client, 0, "a", 0, GroupOrder::Descending).await;
    let _b = RawSub::new(&client, 1, "b", 0, GroupOrder::Descending).await;
    let start = tokio::time::Instant::now();
    groups(&mut tracks[1], 1, 90_000);
    groups(&mut tracks[0], 1, 90_000);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(ended(&log).is_empty());
    // The highest priority (varint 255).
    a.update(127, GroupOrder::Descending, Duration::ZERO).await;
    let mut ends = Vec::new();
    for count in 1..=2 {
        let ended = until_ended(&log, count).await;
        assert!(ended.iter().all(|(_, _, fate)| *fate == Fate::Done));
        ends.push((ended[count - 1].0, start.elapsed()));
    }
    ends
}

/// a's stream, queued with b's when a was raised, has the link to itself from its next
/// packet on (the transport, like quinn, applies a priority change to queued data from
/// the stream's next packet): it ends after about 95 ms (the 5 ms shared, then its other
/// 87.5 kB alone) instead of with b's at 180 ms.
fn assert_raised_first(ends: &[(u64, Duration)]) {
    assert_eq!(ends[0].0, 0, "{ends:?}");
    assert!(ends[0].1 <= Duration::from_millis(100), "{ends:?}");
    assert!(ends[1].1 >= Duration::from_millis(175), "{ends:?}");
}

#[tokio::test(start_paused = true)]
async fn a_raised_priority_applies_to_the_groups_in_flight() {
    // The whole group is written at once (the 1 MiB window): the stream waits for delivery.
    assert_raised_first(&raise_in_flight(Config::default().bandwidth(MB_PER_S)).await);
}

#[tokio::test(start_paused = true)]
async fn a_raised_priority_applies_to_writes_waiting_for_flow_control() {
    // An 8 kB window: each stream waits in a write for the subscriber to read.
    let link = Config::default().bandwidth(MB_PER_S).stream_window(8_000);
    assert_raised_first(&raise_in_flight(link).await);
}

#[tokio::test(start_paused = true)]
async fn a_raised_priority_applies_to_later_groups() {
    let link = Config::default().bandwidth(MB_PER_S);
    let (_session, client, mut tracks) =
        publishing(link, paused_clock(), &["a", "b"], CACHED).await;
    let log = collect(&client);
    let mut a = RawSub::new(&client, 0, "a", -1, GroupOrder::Descending).await;
    let _b = RawSub::new(&client, 1, "b", 1, GroupOrder::Descending).await;
    a.update(2, GroupOrder::Descending, Duration::ZERO).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    // b's groups are written first; a's, written later, still go first.
    groups(&mut tracks[1], 3, 30_000);
    groups(&mut tracks[0], 3, 30_000);
    until_ended(&log, 6).await;
    let ids: Vec<u64> = ended(&log).iter().map(|(id, _, _)| *id).collect();
    assert_eq!(ids, [0, 0, 0, 1, 1, 1], "{:?}", ended(&log));
}

#[tokio::test(start_paused = true)]
async fn a_new_group_order_applies_to_later_groups() {
    let link = Config::default().bandwidth(MB_PER_S);
    let (_session, client, mut tracks) = publishing(link, paused_clock(), &["vod"], CACHED).await;
    let log = collect(&client);
    let mut sub = RawSub::new(&client, 0, "vod", 0, GroupOrder::Descending).await;
    // Three groups of 20 kB, newest first: 60 ms of link time...
    groups(&mut tracks[0], 3, 20_000);
    tokio::time::sleep(Duration::from_millis(5)).await;
    // ...until the subscriber asks for the oldest first, and three more start.
    sub.update(0, GroupOrder::Ascending, Duration::ZERO).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    groups(&mut tracks[0], 3, 20_000);
    until_ended(&log, 6).await;
    let sequences: Vec<u64> = ended(&log).iter().map(|(_, seq, _)| *seq).collect();
    // The groups in flight keep their place (newest first; the stream queued next in line
    // before the update, 1, goes on after the focused one); the later groups go oldest
    // first.
    let later: Vec<u64> = sequences.iter().copied().filter(|seq| *seq >= 3).collect();
    assert_eq!(later, [3, 4, 5], "{sequences:?}");
    assert_eq!(sequences[..2], [2, 1], "{sequences:?}");
}

/// A subscription with no expiry on a 10 kB/s link: group 0 (100 kB, 10 s of link time)
/// and group 1 (still open, so in flight too) are being sent, group 0 for 200 ms.
struct TwoInFlight {
    _session: Published,
    _tracks: Vec<TrackProducer>,
    _newer: GroupProducer,
    sub: RawSub,
    log: Log,
}

async fn two_groups_in_flight(config: moq_session::SessionConfig) -> TwoInFlight {
    let link = Config::default().bandwidth(10_000);
    let (session, client, mut tracks) = publishing(link, config, &["x"], Duration::ZERO).await;
    let log = collect(&client);
    let sub = RawSub::new(&client, 0, "x", 0, GroupOrder::Descending).await;
    groups(&mut tracks[0], 1, 100_000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut newer = tracks[0].append_group();
    newer.write_frame("new").unwrap();
    settle().await;
    TwoInFlight {
        _session: session,
        _tracks: tracks,
        _newer: newer,
        sub,
        log,
    }
}

#[tokio::test(start_paused = true)]
async fn a_shorter_expiry_gives_up_an_old_group_at_once() {
    let setup = two_groups_in_flight(paused_clock()).await;
    let TwoInFlight {
        mut sub,
        log,
        _session: published,
        ..
    } = setup;
    let start = tokio::time::Instant::now();
    sub.update(0, GroupOrder::Descending, Duration::from_millis(100))
        .await;
    until(|| published.session.stats().group_drops_sent == 1).await;
    assert!(start.elapsed() <= Duration::from_millis(2));
    let drop: GroupDrop = soon(sub.next()).await.unwrap();
    assert_eq!(
        drop,
        GroupDrop {
            sequence: 0,
            count: 0,
            code: ErrorCode::CANCEL
        }
    );
    until_ended(&log, 1).await;
    assert_eq!(ended(&log), [(0, 0, Fate::Reset(ErrorCode::CANCEL))]);
}

#[tokio::test(start_paused = true)]
async fn an_updated_expiry_is_enforced_at_its_deadline() {
    let setup = two_groups_in_flight(paused_clock_and_timer()).await;
    let TwoInFlight {
        mut sub,
        log,
        _session: published,
        ..
    } = setup;
    // Group 0 has been in flight for 201 ms: a 1 s budget gives it 799 ms more, and
    // nothing but the timer happens meanwhile.
    let start = tokio::time::Instant::now();
    sub.update(0, GroupOrder::Descending, Duration::from_secs(1))
        .await;
    until(|| published.session.stats().group_drops_sent == 1).await;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(798) && waited <= Duration::from_millis(801),
        "dropped after {waited:?}"
    );
    let drop: GroupDrop = soon(sub.next()).await.unwrap();
    assert_eq!(drop.sequence, 0);
    until_ended(&log, 1).await;
    assert_eq!(ended(&log), [(0, 0, Fate::Reset(ErrorCode::CANCEL))]);
}

#[tokio::test(start_paused = true)]
async fn an_update_with_a_priority_over_255_is_reset_and_stopped_with_5() {
    let (session, client, mut tracks) =
        publishing(Config::default(), paused_clock(), &["p"], Duration::ZERO).await;
    let log = collect(&client);
    let mut sub = RawSub::new(&client, 0, "p", 0, GroupOrder::Descending).await;
    let mut open = tracks[0].append_group();
    open.write_frame("a").unwrap();
    until(|| session.session.stats().group_streams_out == 1).await;
    sub.write(SubscribeUpdate {
        priority: 256,
        group_order: GroupOrder::Descending,
        group_expires: Duration::ZERO,
        group_min: None,
        group_max: None,
    })
    .await;
    assert_eq!(
        reset_code(soon(sub.next::<GroupDrop>()).await),
        ErrorCode::DECODE
    );
    // Stopped too: our writes fail with 5.
    let mut stopped = Err(TransportError::ClosedStream);
    for _ in 0..10 {
        stopped = sub.send.write(Bytes::from_static(&[0])).await;
        if stopped.is_err() {
            break;
        }
        settle().await;
    }
    assert_eq!(
        stopped,
        Err(TransportError::StreamStopped(ErrorCode::DECODE))
    );
    // The open group stream goes with the subscription; the session goes on.
    until_ended(&log, 1).await;
    assert_eq!(ended(&log), [(0, 0, Fate::Reset(ErrorCode::CANCEL))]);
    let _again = RawSub::new(&client, 1, "p", 0, GroupOrder::Descending).await;
}

/// The groups `seqs` of `track` in the order they completed, each with the time it did.
async fn completion_order(
    track: &moq_model::TrackConsumer,
    seqs: &[u64],
) -> Vec<(u64, tokio::time::Instant)> {
    let mut done: Vec<(u64, tokio::time::Instant)> = Vec::new();
    let start = tokio::time::Instant::now();
    while done.len() < seqs.len() {
        assert!(start.elapsed() < Duration::from_secs(10), "done: {done:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
        for &seq in seqs {
            if done.iter().any(|(s, _)| *s == seq) {
                continue;
            }
            if let Some(group) = track.group(seq) {
                let closed = std::pin::pin!(group.closed());
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                if let std::task::Poll::Ready(result) = closed.poll(&mut cx) {
                    result.unwrap();
                    done.push((seq, tokio::time::Instant::now()));
                }
            }
        }
    }
    done
}

#[tokio::test(start_paused = true)]
async fn update_subscription_raises_a_track_over_another() {
    let link = Config::default().bandwidth(MB_PER_S);
    let (client, server, _c, _s) = sessions(link).await;
    let mut producers = Vec::new();
    for path in ["a", "b"] {
        let (track, consumer) = Track::build([path]).group_expires(CACHED).produce();
        client.publish(consumer).unwrap();
        producers.push(track);
    }
    let subscription = |path: &str, priority: i8| {
        Track::build([path])
            .priority(priority)
            .group_expires(CACHED)
            .into_track()
    };
    let a = server.subscribe(subscription("a", -1));
    let b = server.subscribe(subscription("b", 1));
    until(|| client.stats().serving == 2).await;
    assert!(server.update_subscription(&subscription("a", 2)));
    assert!(!server.update_subscription(&subscription("c", 2)));
    tokio::time::sleep(Duration::from_millis(10)).await;
    // b's groups are written first; a's go first all the same, and arrive whole.
    groups(&mut producers[1], 3, 30_000);
    groups(&mut producers[0], 3, 30_000);
    let (a_done, b_done) = tokio::join!(
        completion_order(&a, &[0, 1, 2]),
        completion_order(&b, &[0, 1, 2])
    );
    let (last_a, first_b) = (a_done[2].1, b_done[0].1);
    assert!(
        last_a < first_b,
        "every group of a must arrive before any of b: a {a_done:?}, b {b_done:?}"
    );
    assert_eq!(server.stats().subscriptions, 2);
}

/// Not an update: a track that ends in the same breath as its last group starts. The
/// serving loop sees the group and the end together, and still sends the group before it
/// ends the subscription (group streams start only once their role is known, and the end
/// waits for them).
#[tokio::test(start_paused = true)]
async fn a_group_that_starts_as_the_track_ends_is_sent() {
    let link = Config::default().bandwidth(MB_PER_S);
    let (_session, client, mut tracks) = publishing(link, paused_clock(), &["last"], CACHED).await;
    let log = collect(&client);
    let _sub = RawSub::new(&client, 0, "last", 0, GroupOrder::Descending).await;
    groups(&mut tracks[0], 1, 1_000);
    tracks.remove(0).finish();
    assert_eq!(until_ended(&log, 1).await, [(0, 0, Fate::Done)]);
}

/// Twice a 500 kB/s link (a 1 kB frame every ms, 30 per group, as an encoder makes them),
/// newest first, no expiry. At 1 s the subscriber updates its priority from 0 to `to`.
/// Whole groups among those that started after the update, in the 2 s after it.
async fn whole_groups_after_update(to: i8) -> usize {
    let link = Config::default()
        .bandwidth(500_000)
        .delay(Duration::from_millis(5));
    let (_session, client, mut tracks) =
        publishing(link, paused_clock(), &["live"], Duration::ZERO).await;
    let log = collect(&client);
    let mut sub = RawSub::new(&client, 0, "live", 0, GroupOrder::Descending).await;
    let mut track = tracks.remove(0);
    let producer = tokio::spawn(async move {
        loop {
            let mut group = track.append_group();
            for _ in 0..30 {
                group.write_frame(Bytes::from(vec![7u8; 1_000])).unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            group.finish();
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    // About 33 groups have started.
    sub.update(to, GroupOrder::Descending, Duration::ZERO).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    producer.abort();
    ended(&log)
        .iter()
        .filter(|(_, seq, fate)| *fate == Fate::Done && *seq >= 35)
        .count()
}

/// The 2 s hold 33 groups' worth of link. Without a change the focus keeps the link whole.
#[tokio::test(start_paused = true)]
async fn an_update_that_keeps_the_priority_keeps_whole_groups() {
    let whole = whole_groups_after_update(0).await;
    assert!(whole >= 25, "{whole} whole groups");
}

/// Raised, the streams already sending stay queued at the old priority, below every group
/// started since, until their next packet, which under overload never comes: they hand
/// their roles to streams that start at the new priority. (When they kept them, the focus
/// stayed on a stream the link never sent again, and only 21 groups arrived whole.)
#[tokio::test(start_paused = true)]
async fn a_raised_priority_under_overload_keeps_whole_groups() {
    let whole = whole_groups_after_update(5).await;
    assert!(whole >= 25, "{whole} whole groups");
}

/// Lowered, the streams already sending stay queued above the groups started since until
/// their next packet: the link finishes them first, then goes on in whole groups.
#[tokio::test(start_paused = true)]
async fn a_lowered_priority_under_overload_keeps_whole_groups() {
    let whole = whole_groups_after_update(-5).await;
    assert!(whole >= 25, "{whole} whole groups");
}

/// Not an update: a group still being written when a newer, finished one is delivered is
/// not given up (newest first, no expiry). The newer group, next in line, has the link
/// while the older one waits for its producer, and is delivered first.
#[tokio::test(start_paused = true)]
async fn an_open_group_is_kept_when_a_newer_one_is_delivered_first() {
    let link = Config::default().bandwidth(MB_PER_S);
    let (published, client, mut tracks) =
        publishing(link, paused_clock(), &["live"], Duration::ZERO).await;
    let log = collect(&client);
    let _sub = RawSub::new(&client, 0, "live", 0, GroupOrder::Descending).await;
    let track = &mut tracks[0];
    let mut open = track.append_group();
    open.write_frame(Bytes::from_static(b"first half")).unwrap();
    // Started before the newer group comes (the track caches only its latest group).
    until(|| published.session.stats().group_streams_out == 1).await;
    let mut newer = track.append_group();
    newer.write_frame(Bytes::from_static(b"all")).unwrap();
    newer.finish();
    assert_eq!(until_ended(&log, 1).await, [(0, 1, Fate::Done)]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    open.write_frame(Bytes::from_static(b"second half"))
        .unwrap();
    open.finish();
    assert_eq!(
        until_ended(&log, 2).await,
        [(0, 1, Fate::Done), (0, 0, Fate::Done)]
    );
}
