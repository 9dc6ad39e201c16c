//! Tracks, groups and frames through the public API: delivery, ends, waking, the cache.

use std::time::Duration;

use bytes::Bytes;
use moq_model::{Error, Frame, Group, Track, TrackConsumer, TrackProducer};

use crate::on_both_executors;
use crate::support::{self, Probe};

fn track(name: &str) -> (TrackProducer, TrackConsumer) {
    Track::new([name]).produce()
}

/// Reads every remaining frame of every remaining group: `(sequence, frames)` per group.
async fn drain(consumer: &mut TrackConsumer) -> Result<Vec<(u64, Vec<Bytes>)>, Error> {
    let mut groups = Vec::new();
    while let Some(mut group) = consumer.next_group().await? {
        let mut frames = Vec::new();
        while let Some(frame) = group.read_frame().await? {
            frames.push(frame);
        }
        groups.push((group.sequence(), frames));
    }
    Ok(groups)
}

on_both_executors!(
    every_clone_reads_the_same_bytes,
    groups_cross_threads,
    chunks_arrive_as_written,
    late_group_consumer_reads_from_first_frame,
);

async fn every_clone_reads_the_same_bytes() {
    let (mut producer, consumer) = track("fan-out");
    let mut consumers: Vec<TrackConsumer> = (0..8).map(|_| consumer.clone()).collect();
    consumers.push(consumer);

    let payload = Bytes::from(vec![7u8; 1000]);
    let mut group = producer.append_group();
    group.write_frame(payload.clone()).unwrap();
    group.write_frame("second").unwrap();
    group.finish();
    producer.finish();

    for consumer in &mut consumers {
        let groups = drain(consumer).await.unwrap();
        assert_eq!(groups.len(), 1);
        let frames = &groups[0].1;
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0], payload);
        assert_eq!(frames[1], "second");
        // Stored once: every consumer gets the very same buffer.
        assert_eq!(frames[0].as_ptr(), payload.as_ptr());
    }
}

async fn groups_cross_threads() {
    let (mut producer, mut consumer) = Track::build(["threads"])
        .group_expires(Duration::from_secs(3600))
        .produce();
    let writer = std::thread::spawn(move || {
        for g in 0..20u8 {
            let mut group = producer.append_group();
            for f in 0..5u8 {
                group.write_frame(vec![g, f]).unwrap();
            }
        }
    });
    let groups = drain(&mut consumer).await.unwrap();
    writer.join().unwrap();
    // The cache keeps everything (long expiry, 20 groups < 64), so nothing is skipped.
    assert_eq!(groups.len(), 20);
    assert_eq!(consumer.skipped(), 0);
    for (i, (sequence, frames)) in groups.iter().enumerate() {
        assert_eq!(*sequence, i as u64);
        let expected: Vec<Bytes> = (0..5u8).map(|f| Bytes::from(vec![i as u8, f])).collect();
        assert_eq!(frames, &expected);
    }
}

async fn chunks_arrive_as_written() {
    let (mut group, mut consumer) = Group::new(3).produce();
    let mut frame = group.create_frame(6).unwrap();
    frame.write("ab").unwrap();
    let mut reader = consumer.next_frame().await.unwrap().unwrap();
    assert_eq!(reader.size(), 6);
    assert_eq!(reader.read_chunk().await.unwrap().unwrap(), "ab");

    let writer = std::thread::spawn(move || {
        frame.write("cd").unwrap();
        frame.write("ef").unwrap();
        frame.finish().unwrap();
        group.finish();
    });
    assert_eq!(reader.read_chunk().await.unwrap().unwrap(), "cd");
    assert_eq!(reader.read_chunk().await.unwrap().unwrap(), "ef");
    assert_eq!(reader.read_chunk().await.unwrap(), None);
    assert_eq!(consumer.next_frame().await.unwrap().map(|f| f.size()), None);
    writer.join().unwrap();
}

async fn late_group_consumer_reads_from_first_frame() {
    let (mut producer, _first) = track("late");
    let mut group = producer.append_group();
    for i in 0..3u8 {
        group.write_frame(vec![i]).unwrap();
    }
    // Subscribes while the group is in progress: it still gets the group from frame 0.
    let mut late = producer.consume();
    let mut reader = late.next_group().await.unwrap().unwrap();
    assert_eq!(reader.frame_index(), 0);
    assert_eq!(reader.frame_count(), 3);
    group.write_frame(vec![3]).unwrap();
    group.finish();
    for i in 0..4u8 {
        assert_eq!(reader.read_frame().await.unwrap().unwrap(), vec![i]);
    }
    assert_eq!(reader.read_frame().await.unwrap(), None);
}

#[test]
fn single_chunk_frames_are_not_copied() {
    let (mut group, mut consumer) = Group::new(0).produce();
    let whole = Bytes::from(vec![1u8; 64]);
    group.write_frame(whole.clone()).unwrap();
    let chunk = Bytes::from(vec![2u8; 64]);
    let mut frame = group.create_frame(64).unwrap();
    frame.write(chunk.clone()).unwrap();
    let mut split = group.create_frame(4).unwrap();
    split.write("ab").unwrap();
    split.write("cd").unwrap();
    group.finish();

    let mut other = consumer.clone();
    support::block_on(async {
        let a = consumer.read_frame().await.unwrap().unwrap();
        assert_eq!(a.as_ptr(), whole.as_ptr());
        let b = consumer.read_frame().await.unwrap().unwrap();
        assert_eq!(b.as_ptr(), chunk.as_ptr());
        // Two chunks are joined into one buffer.
        assert_eq!(consumer.read_frame().await.unwrap().unwrap(), "abcd");
        assert_eq!(consumer.read_frame().await.unwrap(), None);

        other.next_frame().await.unwrap().unwrap();
        let mut second = other.next_frame().await.unwrap().unwrap();
        assert_eq!(second.read_all().await.unwrap().as_ptr(), chunk.as_ptr());
        let mut third = other.next_frame().await.unwrap().unwrap();
        assert_eq!(third.read_all().await.unwrap(), "abcd");
    });
}

#[test]
fn next_group_starts_at_latest_and_goes_in_order() {
    let (mut producer, _keep) = Track::build(["order"])
        .group_expires(Duration::from_secs(3600))
        .produce();
    for _ in 0..5 {
        producer.append_group().finish();
    }
    let mut consumer = producer.consume();
    assert_eq!(consumer.latest(), Some(4));
    let mut next = Probe::new(async move {
        let mut seen = Vec::new();
        while let Some(group) = consumer.next_group().await.unwrap() {
            seen.push(group.sequence());
        }
        seen
    });
    // Group 4 (the latest at subscribe time) is there; then it waits for more.
    next.pending();
    producer.append_group().finish();
    producer.append_group().finish();
    assert!(next.wakes() > 0);
    next.pending();
    producer.finish();
    assert_eq!(next.woken_ready(), vec![4, 5, 6]);
}

#[test]
fn slow_consumer_skips_to_newer_groups() {
    // Default expiry (zero): only the latest group stays cached.
    let (mut producer, mut slow) = track("slow");
    producer.append_group().finish();
    for _ in 0..9 {
        producer.append_group().finish();
    }
    let stats = producer.stats();
    assert_eq!((stats.groups, stats.latest), (1, Some(9)));
    support::block_on(async {
        // `slow` joined at group 0, which left the cache: it continues at 9.
        let group = slow.next_group().await.unwrap().unwrap();
        assert_eq!(group.sequence(), 9);
        assert_eq!(slow.skipped(), 9);
    });

    // With a cap of 3 groups, a consumer that fell behind gets the 3 newest, in order.
    let (mut producer, mut behind) = Track::build(["capped"])
        .group_expires(Duration::from_secs(3600))
        .max_groups(3)
        .produce();
    for _ in 0..10 {
        producer.append_group().finish();
    }
    producer.finish();
    support::block_on(async {
        let groups = drain(&mut behind).await.unwrap();
        let sequences: Vec<u64> = groups.iter().map(|(s, _)| *s).collect();
        assert_eq!(sequences, vec![7, 8, 9]);
        assert_eq!(behind.skipped(), 7);
    });
}

#[test]
fn late_created_older_group_reaches_consumers_that_have_not_passed_it() {
    let (mut producer, _keep) = Track::build(["late-old"])
        .group_expires(Duration::from_secs(3600))
        .produce();
    producer.create_group(5).unwrap().finish();
    let mut at_five = producer.consume();
    let mut passed = producer.consume();
    support::block_on(async {
        assert_eq!(at_five.next_group().await.unwrap().unwrap().sequence(), 5);
        assert_eq!(passed.next_group().await.unwrap().unwrap().sequence(), 5);
    });
    producer.create_group(9).unwrap().finish();
    support::block_on(async {
        assert_eq!(passed.next_group().await.unwrap().unwrap().sequence(), 9);
    });
    // Group 7 is created after 9: `at_five` (at 6) gets it before 9; `passed` (at 10) not.
    let mut seven = producer.create_group(7).unwrap();
    seven.write_frame("late").unwrap();
    seven.finish();
    assert_eq!(producer.create_group(7).err(), Some(Error::Duplicate));
    assert_eq!(producer.latest(), Some(9));
    producer.finish();
    support::block_on(async {
        let groups = drain(&mut at_five).await.unwrap();
        assert_eq!(groups[0], (7, vec![Bytes::from("late")]));
        assert_eq!(groups[1].0, 9);
        assert_eq!(groups.len(), 2);
        assert!(drain(&mut passed).await.unwrap().is_empty());
    });
}

#[test]
fn frame_size_is_enforced() {
    let (mut group, mut consumer) = Group::new(0).produce();

    let mut frame = group.create_frame(4).unwrap();
    assert_eq!(frame.write("12345"), Err(Error::WrongSize));
    frame.write("12").unwrap();
    assert_eq!(frame.write("345"), Err(Error::WrongSize));
    assert_eq!(frame.remaining(), 2);
    frame.write("34").unwrap();
    assert_eq!(frame.write("5"), Err(Error::WrongSize));
    frame.finish().unwrap();

    // A frame whose producer goes away early is an error, never a short frame.
    let mut short = group.create_frame(10).unwrap();
    short.write("abc").unwrap();
    let mut chunked = consumer.clone();
    drop(short);
    // So is one finished short.
    let mut short = group.create_frame(10).unwrap();
    short.write("abc").unwrap();
    assert_eq!(short.finish(), Err(Error::WrongSize));
    group.finish();

    support::block_on(async {
        assert_eq!(consumer.read_frame().await.unwrap().unwrap(), "1234");
        assert_eq!(consumer.read_frame().await, Err(Error::WrongSize));

        chunked.next_frame().await.unwrap();
        let mut reader = chunked.next_frame().await.unwrap().unwrap();
        assert_eq!(reader.read_chunk().await, Err(Error::WrongSize));
        let mut reader = chunked.next_frame().await.unwrap().unwrap();
        assert_eq!(reader.read_all().await, Err(Error::WrongSize));
    });
}

#[test]
fn standalone_frame() {
    let (mut frame, mut consumer) = Frame::new(3).produce();
    let mut read = Probe::new(async move { consumer.read_all().await });
    read.pending();
    frame.write("ab").unwrap();
    read.pending();
    frame.write("c").unwrap();
    assert_eq!(read.woken_ready().unwrap(), "abc");

    let (frame, mut consumer) = Frame::new(3).produce();
    let mut read = Probe::new(async move { consumer.read_chunk().await });
    read.pending();
    frame.abort(Error::App(1));
    assert_eq!(read.woken_ready(), Err(Error::App(1)));
}

#[test]
fn clean_ends_read_as_none_and_wake() {
    // finish()
    let (mut producer, mut consumer) = track("finish");
    let group = producer.append_group();
    let mut group_consumer = group.consume();
    let mut next = Probe::new(async move { group_consumer.read_frame().await });
    next.pending();
    group.finish();
    assert_eq!(next.woken_ready(), Ok(None));
    let mut closed = Probe::new(async move {
        consumer.next_group().await.unwrap().unwrap();
        consumer.closed().await
    });
    closed.pending();
    producer.finish();
    assert_eq!(closed.woken_ready(), Ok(()));

    // drop
    let (mut producer, mut consumer) = track("drop");
    let group = producer.append_group();
    let mut group_consumer = group.consume();
    let mut frames =
        Probe::new(async move { group_consumer.next_frame().await.map(|f| f.is_none()) });
    frames.pending();
    drop(group);
    assert_eq!(frames.woken_ready(), Ok(true));
    let mut groups = Probe::new(async move {
        consumer.next_group().await.unwrap().unwrap();
        consumer.next_group().await.map(|g| g.is_none())
    });
    groups.pending();
    drop(producer);
    assert_eq!(groups.woken_ready(), Ok(true));
}

#[test]
fn abort_reaches_every_level_below() {
    let (mut producer, mut consumer) = track("abort");
    let mut done = producer.append_group();
    done.write_frame("kept").unwrap();
    done.finish();
    let mut done_reader = consumer.next_group().await_now().unwrap().unwrap();

    let mut open = producer.append_group();
    open.write_frame("whole").unwrap();
    let mut partial = open.create_frame(10).unwrap();
    partial.write("part").unwrap();
    let mut open_reader = producer
        .consume()
        .next_group()
        .await_now()
        .unwrap()
        .unwrap();
    let mut frame_reader = {
        let mut g = open_reader.clone();
        g.next_frame().await_now().unwrap().unwrap();
        g.next_frame().await_now().unwrap().unwrap()
    };
    let mut complete_frame = open_reader
        .clone()
        .next_frame()
        .await_now()
        .unwrap()
        .unwrap();

    let mut track_next = Probe::new({
        let mut c = consumer.clone();
        async move {
            assert_eq!(c.next_group().await.unwrap().unwrap().sequence(), 1);
            c.next_group().await.map(|_| ())
        }
    });
    let mut track_closed = Probe::new({
        let c = consumer.clone();
        async move { c.closed().await }
    });
    let mut group_closed = Probe::new({
        let g = open_reader.clone();
        async move { g.closed().await }
    });
    let mut chunk = Probe::new(async move {
        frame_reader.read_chunk().await.unwrap().unwrap();
        frame_reader.read_chunk().await
    });
    track_next.pending();
    track_closed.pending();
    group_closed.pending();
    chunk.pending();

    producer.abort(Error::App(42));

    let error = Err(Error::App(42));
    assert_eq!(track_next.woken_ready(), error);
    assert_eq!(track_closed.woken_ready(), error);
    assert_eq!(group_closed.woken_ready(), error);
    assert_eq!(chunk.woken_ready().map(|_| ()), error);
    assert_eq!(open_reader.read_frame().await_now().map(|_| ()), error);
    // Writers learn it too.
    assert_eq!(open.write_frame("late"), error);
    assert_eq!(partial.write("more"), error);
    // Finished is not aborted: the finished group and the complete frame stay readable.
    assert_eq!(
        done_reader.read_frame().await_now().unwrap().unwrap(),
        "kept"
    );
    assert_eq!(complete_frame.read_all().await_now().unwrap(), "whole");
    assert_eq!(consumer.closed().await_now(), error);
}

#[test]
fn group_abort() {
    let (group, mut consumer) = Group::new(1).produce();
    let mut read = Probe::new(async move { consumer.read_frame().await });
    read.pending();
    group.abort(Error::Transport);
    assert_eq!(read.woken_ready(), Err(Error::Transport));
}

#[test]
fn unused_and_closed() {
    let (producer, consumer) = track("unused");
    let second = consumer.clone();
    let mut unused = Probe::new(producer.unused());
    unused.pending();
    assert_eq!(producer.stats().consumers, 2);
    drop(consumer);
    unused.pending();
    drop(second);
    unused.woken_ready();
    assert!(producer.is_unused());
    drop(unused);

    // The owned variant does not borrow the producer, which goes on writing meanwhile.
    let (mut writer, reader) = track("unused-owned");
    let mut owned = Probe::new(writer.unused_owned());
    owned.pending();
    writer.append_group().write_frame("still writing").unwrap();
    drop(reader);
    owned.woken_ready();

    // A new consumer makes it used again.
    let third = producer.consume();
    let mut unused = Probe::new(producer.unused());
    unused.pending();
    drop(third);
    unused.woken_ready();
}

#[test]
fn cache_stays_bounded_forever() {
    // Default settings: no expiry, so only the latest group stays.
    let (mut producer, _idle_consumer) = track("forever");
    let payload = Bytes::from(vec![0u8; 100]);
    for _ in 0..100_000 {
        let mut group = producer.append_group();
        group.write_frame(payload.clone()).unwrap();
        group.write_frame(payload.clone()).unwrap();
        let stats = producer.stats();
        assert_eq!(stats.groups, 1);
        assert_eq!(stats.bytes, 200);
    }
    assert_eq!(producer.latest(), Some(99_999));

    // A long expiry: the group cap and the byte cap bound it.
    let (mut producer, _idle_consumer) = Track::build(["capped"])
        .group_expires(Duration::from_secs(3600))
        .max_groups(16)
        .max_bytes(1000)
        .produce();
    let mut most = 0;
    for _ in 0..100_000 {
        let mut group = producer.append_group();
        group.write_frame(payload.clone()).unwrap();
        group.write_frame(payload.clone()).unwrap();
        let stats = producer.stats();
        assert!(stats.groups <= 16, "{stats:?}");
        // At most the cap plus the latest group (kept whatever its size).
        assert!(stats.bytes <= 1000 + 200, "{stats:?}");
        most = most.max(stats.groups);
    }
    assert!(most > 1);
    let stats = producer.stats();
    assert_eq!(stats.oldest, Some(99_999 - stats.groups as u64 + 1));
}

#[test]
fn get_group_by_sequence() {
    let (mut producer, consumer) = Track::build(["get"])
        .group_expires(Duration::from_secs(3600))
        .produce();
    for _ in 0..3 {
        producer.append_group().finish();
    }
    assert_eq!(consumer.group(1).map(|g| g.sequence()), Some(1));
    assert!(consumer.group(3).is_none());
}

/// Polls a future that must already be ready.
trait AwaitNow: std::future::Future + Sized + Send {
    fn await_now(self) -> Self::Output {
        match Probe::new(self).poll() {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("expected a ready future"),
        }
    }
}

impl<F: std::future::Future + Send> AwaitNow for F {}

#[test]
fn long_groups_mix_whole_and_chunked_frames() {
    let (mut group, consumer) = Group::new(0).produce();
    let mut whole_reader = consumer.clone();
    let mut frame_reader = consumer;
    let writer = std::thread::spawn(move || {
        for i in 0..100_000u32 {
            let payload = Bytes::from(i.to_be_bytes().to_vec());
            if i % 5 == 0 {
                let mut frame = group.create_frame(4).unwrap();
                frame.write(payload.slice(..1)).unwrap();
                frame.write(payload.slice(1..)).unwrap();
            } else {
                group.write_frame(payload).unwrap();
            }
        }
    });
    support::block_on(async {
        let mut i = 0u32;
        while let Some(frame) = whole_reader.read_frame().await.unwrap() {
            assert_eq!(frame, i.to_be_bytes().as_slice());
            i += 1;
        }
        assert_eq!(i, 100_000);
        let mut i = 0u32;
        while let Some(mut frame) = frame_reader.next_frame().await.unwrap() {
            assert_eq!(frame.read_all().await.unwrap(), i.to_be_bytes().as_slice());
            i += 1;
        }
        assert_eq!(i, 100_000);
    });
    writer.join().unwrap();
    // Thousands of list segments are dropped here (iteratively, see `Segment`'s Drop).
    drop((whole_reader, frame_reader));
}

#[test]
fn handles_and_futures_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: T) {}
    send_sync::<TrackProducer>();
    send_sync::<TrackConsumer>();
    send_sync::<moq_model::GroupProducer>();
    send_sync::<moq_model::GroupConsumer>();
    send_sync::<moq_model::FrameProducer>();
    send_sync::<moq_model::FrameConsumer>();
    send_sync::<moq_model::BroadcastProducer>();
    send_sync::<moq_model::BroadcastConsumer>();
    send_sync::<moq_model::AnnouncedProducer>();
    send_sync::<moq_model::AnnouncedConsumer>();
    send_sync::<moq_model::RouterProducer>();
    send_sync::<moq_model::RouterConsumer>();
    send_sync::<moq_model::RouterRequest>();
    send_sync::<Error>();

    let (mut producer, mut consumer) = track("send");
    let mut group = producer.append_group().consume();
    let (mut frame_producer, mut frame) = Frame::new(1).produce();
    send(producer.unused());
    send(producer.unused_owned());
    send(consumer.closed());
    send(group.closed());
    send(group.read_frame());
    send(group.next_frame());
    send(frame.read_chunk());
    send(frame.read_all());
    send(consumer.next_group());
    frame_producer.write("x").unwrap();
}

#[test]
fn dropping_a_waiting_future_loses_nothing() {
    let (mut producer, mut consumer) = track("cancel");
    let mut group = producer.append_group();
    let mut reader = consumer.clone();
    support::block_on(async {
        assert_eq!(reader.next_group().await.unwrap().unwrap().sequence(), 0);
    });
    let mut first = support::block_on(consumer.next_group()).unwrap().unwrap();

    // next_group: wait, give up, then the group is still there for the next call.
    let mut waiting = Probe::new(reader.next_group());
    waiting.pending();
    drop(waiting);
    producer.append_group().finish();
    let group_reader = support::block_on(reader.next_group()).unwrap().unwrap();
    assert_eq!(group_reader.sequence(), 1);

    // read_frame and next_frame: the same.
    let mut waiting = Probe::new(first.read_frame());
    waiting.pending();
    drop(waiting);
    let mut waiting = Probe::new(first.next_frame());
    waiting.pending();
    drop(waiting);
    group.write_frame("kept").unwrap();
    assert_eq!(
        support::block_on(first.read_frame()).unwrap().unwrap(),
        "kept"
    );
    assert_eq!(group_reader.frame_index(), 0);
}

#[test]
fn a_group_past_its_byte_limit_is_aborted_for_everyone() {
    support::block_on(async {
        let (mut track, mut consumer) = Track::build(["big"]).max_group_bytes(10).produce();
        let mut group = track.append_group();
        group.write_frame(vec![1u8; 6]).unwrap();
        let mut reader = consumer.next_group().await.unwrap().unwrap();
        assert_eq!(reader.read_frame().await.unwrap().unwrap().len(), 6);
        // 6 + 6 > 10: refused, and the group ends with the error for its readers.
        assert_eq!(group.write_frame(vec![1u8; 6]), Err(Error::BoundsExceeded));
        assert_eq!(reader.read_frame().await, Err(Error::BoundsExceeded));
        // A chunked frame that could never fit is refused when it is created.
        let mut next = track.append_group();
        assert_eq!(next.create_frame(11).unwrap_err(), Error::BoundsExceeded);
        // The track goes on with its next group.
        let mut third = track.append_group();
        third.write_frame(vec![1u8; 10]).unwrap();
        third.finish();
        let mut reader = consumer.next_group().await.unwrap().unwrap();
        assert_eq!(reader.sequence(), 2);
        assert_eq!(reader.read_frame().await.unwrap().unwrap().len(), 10);
    });
}

#[test]
fn a_shared_budget_bounds_many_tracks_and_is_given_back() {
    support::block_on(async {
        let budget = moq_model::MemoryBudget::new(100);
        let (mut a, consumer_a) = Track::build(["a"]).budget(budget.clone()).produce();
        let (mut b, consumer_b) = Track::build(["b"]).budget(budget.clone()).produce();
        let mut group_a = a.append_group();
        group_a.write_frame(vec![0u8; 60]).unwrap();
        let mut group_b = b.append_group();
        group_b.write_frame(vec![0u8; 30]).unwrap();
        assert_eq!(budget.used(), 90);
        // A frame written in chunks is charged as they come, not for what it declares.
        let mut chunked = group_b.create_frame(5).unwrap();
        assert_eq!(budget.used(), 90);
        chunked.write(vec![0u8; 2]).unwrap();
        assert_eq!(budget.used(), 92);
        chunked.write(vec![0u8; 3]).unwrap();
        drop(chunked);
        assert_eq!(budget.used(), 95);
        // Past the shared budget: the writer's group is aborted, the other goes on.
        assert_eq!(
            group_b.write_frame(vec![0u8; 20]),
            Err(Error::BoundsExceeded)
        );
        group_a.write_frame(vec![0u8; 5]).unwrap();
        assert_eq!(budget.used(), 100);
        // A group's bytes come back once the cache and every holder let it go: here when a
        // newer group pushes it out of the cache and its producer and readers are gone.
        let mut reader = consumer_a.clone();
        let held = reader.next_group().await.unwrap().unwrap();
        drop(group_a);
        let newer = a.append_group();
        assert_eq!(budget.used(), 100, "a reader still holds the old group");
        drop(held);
        assert_eq!(budget.used(), 35);
        drop((newer, a, consumer_a, reader));
        assert_eq!(budget.used(), 35, "track b's cache still holds its group");
        drop((b, group_b, consumer_b));
        assert_eq!(budget.used(), 0);
    });
}

#[test]
fn a_new_consumer_skips_a_latest_group_past_the_cache_limit() {
    support::block_on(async {
        let (mut track, _first) = Track::build(["huge"]).max_bytes(8).produce();
        let mut group = track.append_group();
        group.write_frame(vec![0u8; 9]).unwrap();
        // Those who have it keep it; a newcomer waits for the next group.
        let mut late = track.consume();
        assert_eq!(track.latest(), Some(0));
        let mut next = track.append_group();
        next.write_frame("small").unwrap();
        let mut reader = late.next_group().await.unwrap().unwrap();
        assert_eq!(reader.sequence(), 1);
        assert_eq!(reader.read_frame().await.unwrap().unwrap(), "small");
        assert_eq!(late.skipped(), 0);
    });
}
