//! Long runs leave nothing behind: caches, the session's maps and the driver's task set stay
//! flat (checked through the stats, not the process's memory).

use std::time::Duration;

use bytes::Bytes;
use moq_model::Track;
use moq_session::transport::memory::Config;

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn ten_thousand_groups_leave_memory_flat() {
    let (client, server, client_conn, _s) = sessions(Config::default()).await;
    let (mut track, consumer) = Track::new(["flat"]).produce();
    client.publish(consumer.clone()).unwrap();
    let mut sub = server.subscribe(Track::new(["flat"]));
    until(|| client.stats().serving == 1).await;
    let baseline = (client.stats(), server.stats());

    let mut received = 0u64;
    let mut peak_tasks = 0;
    let mut peak_streams = 0;
    for g in 0..10_000u64 {
        let mut group = track.append_group();
        group.write_frame(Bytes::from(vec![g as u8; 100])).unwrap();
        group.write_frame(Bytes::from_static(b"end")).unwrap();
        drop(group);
        let mut got = soon(sub.next_group()).await.unwrap().unwrap();
        assert_eq!(got.sequence(), g);
        assert_eq!(soon(got.read_frame()).await.unwrap().unwrap().len(), 100);
        assert_eq!(soon(got.read_frame()).await.unwrap().unwrap(), "end");
        received += 1;
        let (c, s) = (client.stats(), server.stats());
        peak_tasks = peak_tasks.max(c.tasks).max(s.tasks);
        peak_streams = peak_streams
            .max(c.group_streams_out)
            .max(s.group_streams_in);
    }
    assert_eq!(received, 10_000);
    settle().await;
    // Everything that is per group is gone again.
    let (c, s) = (client.stats(), server.stats());
    assert_eq!(c.group_streams_out, 0);
    assert_eq!(s.group_streams_in, 0);
    assert_eq!(c.tasks, baseline.0.tasks);
    assert_eq!(s.tasks, baseline.1.tasks);
    assert_eq!((c.serving, s.subscriptions), (1, 1));
    assert!(
        peak_tasks <= baseline.0.tasks.max(baseline.1.tasks) + 4,
        "{peak_tasks}"
    );
    assert!(peak_streams <= 2, "{peak_streams}");
    // The caches hold the latest group only (no expiry), on both sides.
    assert_eq!(consumer.stats().groups, 1);
    assert_eq!(sub.stats().groups, 1);
    assert_eq!(client_conn.stats().uni_opened, 10_000);
}

#[tokio::test(start_paused = true)]
async fn subscribing_and_unsubscribing_leaves_nothing_behind() {
    let (client, server, _c, _s) = sessions(Config::default()).await;
    let (mut track, consumer) = Track::new(["churn"]).produce();
    client.publish(consumer).unwrap();
    until(|| client.stats().tasks > 0).await;
    let baseline = (client.stats(), server.stats());
    for round in 0..1_000u64 {
        let mut sub = server.subscribe(Track::new(["churn"]));
        track.append_group().write_frame("x").unwrap();
        let mut group = soon(sub.next_group()).await.unwrap().unwrap();
        assert_eq!(soon(group.read_frame()).await.unwrap().unwrap(), "x");
        drop((group, sub));
        until(|| client.stats().serving == 0 && server.stats().subscriptions == 0).await;
        assert_eq!(server.stats().next_subscribe_id, round + 1);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (c, s) = (client.stats(), server.stats());
    assert_eq!(c.tasks, baseline.0.tasks);
    assert_eq!(s.tasks, baseline.1.tasks);
    assert_eq!((c.group_streams_out, s.group_streams_in), (0, 0));
}
