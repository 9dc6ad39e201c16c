//! Broadcasts, announcements and routing through the public API.

use moq_model::{Announced, AnnouncedProducer, Broadcast, Error, Path, Router, Track};

use crate::on_both_executors;
use crate::support::{self, Probe};

fn path(parts: &[&str]) -> Path {
    Path::from(parts)
}

on_both_executors!(routed_track_flows, announcements_flow);

async fn routed_track_flows() {
    let (mut router, requester) = Router::new(4).produce();
    let answer = std::thread::spawn(move || {
        support::block_on(async move {
            let request = router.requested().await.unwrap();
            assert_eq!(request.track().path, path(&["upstream", "video"]));
            let mut track = request.produce();
            let mut group = track.append_group();
            group.write_frame("from upstream").unwrap();
            group.finish();
            track.finish();
            assert!(router.requested().await.is_none(), "requester gone");
        })
    });
    let mut track = requester
        .subscribe(Track::new(["upstream", "video"]))
        .await
        .unwrap();
    drop(requester);
    let mut group = track.next_group().await.unwrap().unwrap();
    assert_eq!(group.read_frame().await.unwrap().unwrap(), "from upstream");
    answer.join().unwrap();
}

async fn announcements_flow() {
    let mut producer = AnnouncedProducer::new();
    producer.announce(path(&["room", "bob"]));
    producer.announce(path(&["room", "alice"]));
    producer.announce(path(&["other"]));
    let mut consumer = producer.consume(path(&["room"]));
    let (start, started) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        started.recv().unwrap();
        producer.unannounce(&path(&["room", "bob"]));
        producer.announce(path(&["room", "carol"]));
        producer.announce(path(&["elsewhere"]));
        // Dropping ends alice and carol.
    });
    // What was active at subscribe time comes first, in path order.
    assert_eq!(
        consumer.next().await,
        Ok(Some(Announced::Active(path(&["room", "alice"]))))
    );
    assert_eq!(
        consumer.next().await,
        Ok(Some(Announced::Active(path(&["room", "bob"]))))
    );
    start.send(()).unwrap();
    let mut events = Vec::new();
    while let Some(event) = consumer.next().await.unwrap() {
        events.push(event);
    }
    writer.join().unwrap();
    // "carol" may come and go before the consumer looks, and then is not reported at all.
    let carol = path(&["room", "carol"]);
    let (carol_events, others): (Vec<_>, Vec<_>) =
        events.into_iter().partition(|e| e.path() == &carol);
    assert!(
        carol_events.is_empty()
            || carol_events == vec![Announced::Active(carol.clone()), Announced::Ended(carol)],
        "{carol_events:?}"
    );
    assert_eq!(
        others,
        vec![
            Announced::Ended(path(&["room", "bob"])),
            Announced::Ended(path(&["room", "alice"])),
        ]
    );
}

#[test]
fn broadcast_tracks_by_name() {
    let (mut broadcast, consumer) = Broadcast::new(["room", "alice"]).produce();
    let mut video = broadcast.create_track(Track::new(["video"])).unwrap();
    assert_eq!(video.path(), &path(&["room", "alice", "video"]));
    assert_eq!(
        broadcast.create_track(Track::new(["video"])).err(),
        Some(Error::Duplicate)
    );
    let audio = broadcast
        .create_track(Track::build(["audio"]).priority(3).into_track())
        .unwrap();
    assert_eq!(
        consumer.track_names(),
        vec![path(&["audio"]), path(&["video"])]
    );

    video.append_group().write_frame("frame").unwrap();
    let mut track = consumer.track(&path(&["video"])).unwrap();
    assert_eq!(track.info().path, path(&["room", "alice", "video"]));
    assert_eq!(
        consumer.track(&path(&["audio"])).unwrap().info().priority,
        3
    );
    assert_eq!(
        consumer.track(&path(&["nope"])).err(),
        Some(Error::NotFound)
    );
    support::block_on(async {
        let mut group = track.next_group().await.unwrap().unwrap();
        assert_eq!(group.read_frame().await.unwrap().unwrap(), "frame");
    });

    // Holding a track in the broadcast does not count as consuming it.
    drop(track);
    assert!(video.is_unused());

    // An ended track is gone from the broadcast, and its name is free again.
    drop(audio);
    assert_eq!(
        consumer.track(&path(&["audio"])).err(),
        Some(Error::NotFound)
    );
    let _audio = broadcast.create_track(Track::new(["audio"])).unwrap();

    // Publishing an existing track under a name.
    let (_other, other_consumer) = Track::new(["x"]).produce();
    broadcast
        .insert_track(path(&["screen"]), other_consumer)
        .unwrap();
    assert!(consumer.track(&path(&["screen"])).is_ok());
    assert!(broadcast.remove_track(&path(&["screen"])));
    assert!(consumer.track(&path(&["screen"])).is_err());

    let mut closed = Probe::new(consumer.closed());
    closed.pending();
    drop(broadcast);
    closed.woken_ready();
    assert_eq!(
        consumer.track(&path(&["video"])).err(),
        Some(Error::NotFound)
    );
}

#[test]
fn announce_merges_unread_changes_and_filters_by_prefix() {
    let mut producer = AnnouncedProducer::new();
    let mut all = producer.consume(Path::empty());
    let mut room = producer.consume(path(&["room"]));
    let mut next = Probe::new(async move {
        let first = room.next().await;
        (first, room)
    });
    next.pending();

    assert!(producer.announce(path(&["room", "a"])));
    assert!(!producer.announce(path(&["room", "a"])), "already active");
    let (first, mut room) = next.woken_ready();
    assert_eq!(first, Ok(Some(Announced::Active(path(&["room", "a"])))));

    // Announced and unannounced before `all` looked: nothing to report for "b".
    producer.announce(path(&["room", "b"]));
    assert!(producer.unannounce(&path(&["room", "b"])));
    assert!(!producer.unannounce(&path(&["room", "b"])), "not active");
    producer.announce(path(&["roomy"])); // part-wise prefix: not under "room"
    assert!(producer.is_active(&path(&["roomy"])));
    assert_eq!(
        producer.active(),
        vec![path(&["room", "a"]), path(&["roomy"])]
    );

    let clone = all.clone();
    support::block_on(async {
        assert_eq!(
            all.next().await,
            Ok(Some(Announced::Active(path(&["room", "a"]))))
        );
        assert_eq!(
            all.next().await,
            Ok(Some(Announced::Active(path(&["roomy"]))))
        );
        // `room` saw "a" already; "b" came and went while it was not looking.
        let mut room_events = Vec::new();
        let mut probe = Probe::new(room.next());
        assert!(probe.poll().is_pending());
        drop(probe);
        producer.unannounce(&path(&["room", "a"]));
        room_events.push(room.next().await.unwrap().unwrap());
        assert_eq!(room_events, vec![Announced::Ended(path(&["room", "a"]))]);
    });

    // The clone has its own copy of the unread events.
    let mut clone = clone;
    support::block_on(async {
        // "room/a" was activated and ended while the clone was not looking.
        assert_eq!(
            clone.next().await,
            Ok(Some(Announced::Active(path(&["roomy"]))))
        );
    });

    let mut unused = Probe::new(producer.unused());
    unused.pending();
    drop((all, room, clone));
    unused.woken_ready();
}

#[test]
fn announce_abort_is_an_error() {
    let mut producer = AnnouncedProducer::new();
    producer.announce(path(&["a"]));
    let mut consumer = producer.consume(Path::empty());
    producer.abort(Error::Transport);
    support::block_on(async {
        assert_eq!(consumer.next().await, Err(Error::Transport));
    });
}

#[test]
fn router_queue_is_bounded_and_requests_cancel() {
    let (mut router, requester) = Router::new(2).produce();

    let mut first = Probe::new(requester.subscribe(Track::new(["a"])));
    let mut second = Probe::new(requester.subscribe(Track::new(["b"])));
    first.pending();
    second.pending();
    // The queue is full.
    let mut third = Probe::new(requester.subscribe(Track::new(["c"])));
    assert_eq!(
        third.poll().map(|r| r.err()),
        std::task::Poll::Ready(Some(Error::BoundsExceeded))
    );
    assert_eq!(router.queued(), 2);

    // The first requester goes away before anyone answers: its request is skipped.
    drop(first);
    let request = support::block_on(router.requested()).unwrap();
    assert_eq!(request.track().path, path(&["b"]));
    assert!(!request.is_cancelled());
    let mut cancelled = Probe::new(request.cancelled());
    cancelled.pending();
    drop(second);
    cancelled.woken_ready();
    drop(cancelled);
    assert!(request.is_cancelled());
    request.reject(Error::NotFound); // answering a cancelled request is harmless

    // Rejected, and dropped unanswered.
    let mut rejected = Probe::new(requester.subscribe(Track::new(["d"])));
    rejected.pending();
    support::block_on(router.requested())
        .unwrap()
        .reject(Error::App(9));
    assert_eq!(rejected.woken_ready().err(), Some(Error::App(9)));

    let mut dropped = Probe::new(requester.subscribe(Track::new(["e"])));
    dropped.pending();
    drop(support::block_on(router.requested()).unwrap());
    assert_eq!(dropped.woken_ready().err(), Some(Error::NotFound));

    // Served with an existing track.
    let (_existing, existing_consumer) = Track::new(["f"]).produce();
    let mut served = Probe::new(requester.subscribe(Track::new(["f"])));
    served.pending();
    support::block_on(router.requested())
        .unwrap()
        .serve(existing_consumer);
    assert_eq!(served.woken_ready().unwrap().path(), &path(&["f"]));

    // The producer goes: queued requests and later ones fail with NotFound.
    let mut queued = Probe::new(requester.subscribe(Track::new(["g"])));
    queued.pending();
    let mut closed = Probe::new(requester.closed());
    closed.pending();
    drop(router);
    assert_eq!(queued.woken_ready().err(), Some(Error::NotFound));
    closed.woken_ready();
    let late = support::block_on(requester.subscribe(Track::new(["h"])));
    assert_eq!(late.err(), Some(Error::NotFound));
}

#[test]
fn router_producer_learns_requesters_are_gone() {
    let (mut router, requester) = Router::new(1).produce();
    let clone = requester.clone();
    let mut next = Probe::new(async move { router.requested().await.is_none() });
    next.pending();
    drop(requester);
    next.pending();
    drop(clone);
    assert!(next.woken_ready());
}

#[test]
fn sources_queue_nothing_and_make_rooted_consumers_on_demand() {
    support::block_on(async {
        let mut table = AnnouncedProducer::new();
        table.announce(["room", "alice", "cam"]);
        table.announce(["room", "bob", "cam"]);
        table.announce(["lobby", "x"]);
        let room = table.source().rooted(&path(&["room"]));
        let alice = room.under(&path(&["alice"])).unwrap();
        // Sources are not consumers: changes are queued for nobody.
        assert_eq!(table.consumer_count(), 0);
        for i in 0..1000 {
            table.announce(["room", "carol", &i.to_string()]);
        }
        assert_eq!(table.consumer_count(), 0);
        assert_eq!(alice.prefix(), Some(path(&["alice"])));

        // A consumer of a source reports paths without the root, within both prefixes.
        let mut all = alice.consume(Path::empty()).unwrap();
        assert_eq!(all.prefix(), path(&["alice"]));
        assert_eq!(
            all.next().await,
            Ok(Some(Announced::Active(path(&["alice", "cam"]))))
        );
        table.unannounce(&path(&["room", "alice", "cam"]));
        assert_eq!(
            all.next().await,
            Ok(Some(Announced::Ended(path(&["alice", "cam"]))))
        );
        // Disjoint prefixes cover nothing; a wider one is narrowed to the source's.
        assert!(alice.consume(path(&["bob"])).is_none());
        assert!(
            room.under(&path(&["lobby"]))
                .unwrap()
                .consume(Path::empty())
                .is_some()
        );
        assert!(
            table
                .source()
                .rooted(&path(&["room"]))
                .rooted(&path(&["bob"]))
                .prefix()
                == Some(Path::empty())
        );
        let outside = table
            .source()
            .under(&path(&["room", "bob"]))
            .unwrap()
            .rooted(&path(&["lobby"]));
        assert_eq!(outside.prefix(), None);
        assert!(outside.consume(Path::empty()).is_none());
        // A consumer converts into the source of what it follows.
        let mut lobby: moq_model::AnnouncedSource = table.consume(path(&["lobby"])).into();
        lobby = lobby.rooted(&path(&["lobby"]));
        let mut x = lobby.consume(Path::empty()).unwrap();
        assert_eq!(x.next().await, Ok(Some(Announced::Active(path(&["x"])))));
        // The producer's end reaches consumers made from sources.
        drop(table);
        assert_eq!(x.next().await, Ok(Some(Announced::Ended(path(&["x"])))));
        assert_eq!(x.next().await, Ok(None));
    });
}
