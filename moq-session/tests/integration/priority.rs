//! Priorities and group order on a bandwidth-limited link, end to end (WIRE.md §7.4), and
//! independence of subscribers.

use std::collections::HashMap;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use moq_model::{Track, TrackConsumer};
use moq_proto::GroupOrder;
use moq_session::transport::memory::Config;
use tokio::time::Instant;

use crate::support::*;

const EXPIRES: Duration = Duration::from_secs(60);

/// Polls the subscriber's cache every millisecond and records when each group of `seqs`
/// has been received completely (its stream finished).
async fn completion_times(track: &TrackConsumer, seqs: &[u64]) -> HashMap<u64, Instant> {
    let mut done = HashMap::new();
    let start = Instant::now();
    while done.len() < seqs.len() {
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "groups missing: {done:?}"
        );
        for &seq in seqs {
            if done.contains_key(&seq) {
                continue;
            }
            if let Some(group) = track.group(seq) {
                let closed = pin!(group.closed());
                if let Poll::Ready(result) = closed.poll(&mut Context::from_waker(Waker::noop())) {
                    result.unwrap();
                    done.insert(seq, Instant::now());
                }
            }
        }
    }
    done
}

fn order_of(times: &HashMap<u64, Instant>) -> Vec<u64> {
    let mut order: Vec<_> = times.iter().map(|(s, t)| (*t, *s)).collect();
    order.sort();
    order.into_iter().map(|(_, s)| s).collect()
}

async fn subscribe_and_send(order: GroupOrder) -> Vec<u64> {
    let config = Config::default().bandwidth(1_000_000);
    let (client, server, _c, _s) = sessions(config).await;
    let (mut track, consumer) = Track::build(["vod"]).group_expires(EXPIRES).produce();
    client.publish(consumer).unwrap();
    let sub = server.subscribe(
        Track::build(["vod"])
            .group_order(order)
            .group_expires(EXPIRES)
            .into_track(),
    );
    until(|| client.stats().serving == 1).await;
    // Five groups of 20 kB at once: 100 ms of link time.
    let groups: Vec<_> = (0..5u8)
        .map(|g| {
            let mut group = track.append_group();
            group.write_frame(Bytes::from(vec![g; 20_000])).unwrap();
            group
        })
        .collect();
    drop(groups);
    let times = completion_times(&sub, &[0, 1, 2, 3, 4]).await;
    order_of(&times)
}

#[tokio::test(start_paused = true)]
async fn descending_sends_the_newest_group_first() {
    assert_eq!(
        subscribe_and_send(GroupOrder::Descending).await,
        [4, 3, 2, 1, 0]
    );
}

#[tokio::test(start_paused = true)]
async fn ascending_sends_the_oldest_group_first() {
    assert_eq!(
        subscribe_and_send(GroupOrder::Ascending).await,
        [0, 1, 2, 3, 4]
    );
}

#[tokio::test(start_paused = true)]
async fn the_higher_priority_track_goes_first() {
    let config = Config::default().bandwidth(1_000_000);
    let (client, server, _c, _s) = sessions(config).await;
    let (mut low, consumer) = Track::build(["low"]).group_expires(EXPIRES).produce();
    client.publish(consumer).unwrap();
    let (mut high, consumer) = Track::build(["high"]).group_expires(EXPIRES).produce();
    client.publish(consumer).unwrap();
    // The subscriber's priorities decide the last hop.
    let low_sub = server.subscribe(
        Track::build(["low"])
            .priority(-1)
            .group_expires(EXPIRES)
            .into_track(),
    );
    let high_sub = server.subscribe(
        Track::build(["high"])
            .priority(1)
            .group_expires(EXPIRES)
            .into_track(),
    );
    until(|| client.stats().serving == 2).await;
    // The low track's groups are written first, and are newer on their track.
    let mut keep = Vec::new();
    for g in 0..3u8 {
        let mut group = low.append_group();
        group.write_frame(Bytes::from(vec![g; 30_000])).unwrap();
        keep.push(group);
    }
    for g in 0..3u8 {
        let mut group = high.append_group();
        group.write_frame(Bytes::from(vec![g; 30_000])).unwrap();
        keep.push(group);
    }
    drop(keep);
    let (low_times, high_times) = tokio::join!(
        completion_times(&low_sub, &[0, 1, 2]),
        completion_times(&high_sub, &[0, 1, 2])
    );
    let last_high = high_times.values().max().unwrap();
    let first_low = low_times.values().min().unwrap();
    assert!(
        last_high < first_low,
        "every high-priority group must arrive before any low-priority one: \
         high {high_times:?} low {low_times:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_subscriber_does_not_slow_a_fast_one() {
    // One publishing application, two subscribers: one on a fast link, one on a slow one.
    let (fast_pub, fast_sub, _a, _b) =
        sessions(Config::default().delay(Duration::from_millis(5))).await;
    let (slow_pub, slow_sub, _c, _d) = sessions(
        Config::default()
            .bandwidth(20_000)
            .delay(Duration::from_millis(5)),
    )
    .await;
    let (mut track, consumer) = Track::new(["live"]).produce();
    fast_pub.publish(consumer.clone()).unwrap();
    slow_pub.publish(consumer).unwrap();
    let mut fast = fast_sub.subscribe(Track::new(["live"]));
    let mut slow = slow_sub.subscribe(Track::new(["live"]));
    until(|| fast_pub.stats().serving == 1 && slow_pub.stats().serving == 1).await;

    // 100 groups of 10 kB, one every 10 ms: 0.5 MB/s, 25 times the slow link.
    let start = Instant::now();
    let reader = tokio::spawn(async move {
        let mut latencies = Vec::new();
        while let Some(mut group) = fast.next_group().await.unwrap() {
            let frame = group.read_frame().await.unwrap().unwrap();
            let sent_ms = u64::from_be_bytes(frame[..8].try_into().unwrap());
            let now_ms = start.elapsed().as_millis() as u64;
            latencies.push(now_ms - sent_ms);
        }
        latencies
    });
    for _ in 0..100u64 {
        let mut group = track.append_group();
        let mut payload = vec![0u8; 10_000];
        let sent_ms = start.elapsed().as_millis() as u64;
        payload[..8].copy_from_slice(&sent_ms.to_be_bytes());
        group.write_frame(Bytes::from(payload)).unwrap();
        drop(group);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(track);
    let latencies = soon(reader).await.unwrap();
    // The fast subscriber got every group, each within a few ms of the 5 ms link delay.
    assert_eq!(latencies.len(), 100);
    let worst = latencies.iter().max().unwrap();
    assert!(*worst <= 8, "fast subscriber lagged {worst} ms");
    // The slow one is far behind but does not hold anything back: it skipped groups.
    let mut slow_count = 0;
    while let Ok(Some(_)) = soon(slow.next_group()).await {
        slow_count += 1;
    }
    assert!(slow_count < 50, "slow subscriber got {slow_count} groups");
}
