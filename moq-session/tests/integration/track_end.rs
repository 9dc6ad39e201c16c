//! The end of a subscription the publisher ended, on the subscriber side: before the track
//! ends, the group streams that have arrived get one more read, so that the last group is
//! not lost to a race with the end (`pubsub.rs`,
//! `the_last_group_reaches_the_subscriber_when_the_track_ends_at_once`), and nothing else
//! holds the end up. A raw peer plays the publisher: on the memory transport a stream is
//! visible once any byte arrives, so it writes the first byte of a group header only, as a
//! publisher that started a group and wrote nothing yet looks on WebTransport
//! (web-transport-quinn writes its own stream header at once) and on raw QUIC (quinn hands
//! out a stream opened before a later one, with no data).

use std::time::Duration;

use bytes::Bytes;
use moq_model::{Track, TrackConsumer};
use moq_proto::{GroupOrder, Info};
use moq_session::transport::memory;
use moq_session::transport::{Connection, SendStream};
use moq_session::{Session, SessionConfig};

use crate::support::*;

fn info() -> Info {
    Info {
        track_priority: 0,
        group_order: GroupOrder::Descending,
        group_expires: Duration::ZERO,
        group_latest: 0,
    }
}

/// The start of "b"'s group 0 (subscribe id 1): its header and the size of a 2-byte frame.
fn b_header() -> Bytes {
    group_stream_start(1, 0, 2)
}

/// Our session subscribed to "a" (id 0) and "b" (id 1) on a raw peer that answered both,
/// with a group stream for "b" whose header is on its way (first byte only).
struct Scene {
    session: Session,
    _client: memory::Connection,
    _server: memory::Connection,
    _stream: (memory::SendStream, memory::RecvStream),
    sub_a: TrackConsumer,
    sub_b: TrackConsumer,
    control_a: memory::SendStream,
    _control_b: (memory::SendStream, memory::RecvStream),
    _recv_a: memory::RecvStream,
    group_b: memory::SendStream,
}

impl Scene {
    async fn new(config: SessionConfig) -> Self {
        let (session, client, server, stream) = raw_client_with(config).await;
        let sub_a = session.subscribe(Track::new(["a"]));
        let sub_b = session.subscribe(Track::new(["b"]));
        let (mut control_a, recv_a) = soon(client.accept_bi()).await.unwrap();
        let (mut control_b, recv_b) = soon(client.accept_bi()).await.unwrap();
        control_a.write(encode(&[&info()])).await.unwrap();
        control_b.write(encode(&[&info()])).await.unwrap();
        settle().await;
        let mut group_b = client.open_uni().await.unwrap();
        group_b.write(b_header().slice(..1)).await.unwrap();
        settle().await;
        Self {
            session,
            _client: client,
            _server: server,
            _stream: stream,
            sub_a,
            sub_b,
            control_a,
            _control_b: (control_b, recv_b),
            _recv_a: recv_a,
            group_b,
        }
    }

    /// The publisher ends "a".
    fn end_a(&mut self) {
        self.control_a.finish().unwrap();
    }
}

/// "a" is ended by the publisher while the group stream for "b" is accepted and its header
/// is not complete: "a" ends at once.
#[tokio::test(start_paused = true)]
async fn a_track_end_is_not_held_up_by_another_tracks_idle_group_stream() {
    let mut scene = Scene::new(SessionConfig::default()).await;
    scene.end_a();
    let ended = tokio::time::timeout(Duration::from_secs(60), scene.sub_a.next_group()).await;
    assert!(
        matches!(ended, Ok(Ok(None))),
        "track a did not end within 60 s while b's group header was pending: {ended:?}"
    );
}

/// After the publisher ended "a", subscribing to "a" again sends a new Subscribe: the
/// ending subscription is no longer registered under the path.
#[tokio::test(start_paused = true)]
async fn a_resubscribe_after_the_end_gets_a_new_subscription() {
    let mut scene = Scene::new(SessionConfig::default()).await;
    scene.end_a();
    // Let the session read the end.
    settle().await;
    drop(scene.sub_a);
    let before = scene.session.stats().next_subscribe_id;
    let _again = scene.session.subscribe(Track::new(["a"]));
    settle().await;
    assert_eq!(
        scene.session.stats().next_subscribe_id,
        before + 1,
        "the new subscribe to a shared the subscription the publisher had ended"
    );
}

/// "b"'s group, whose header completes long after "a" ended, still reaches "b".
#[tokio::test(start_paused = true)]
async fn a_group_header_completed_after_another_track_ended_reaches_its_track() {
    let mut scene = Scene::new(SessionConfig::default()).await;
    scene.end_a();
    tokio::time::sleep(Duration::from_secs(600)).await;
    scene.group_b.write(b_header().slice(1..)).await.unwrap();
    scene
        .group_b
        .write(Bytes::from_static(b"hi"))
        .await
        .unwrap();
    assert!(soon(scene.sub_a.next_group()).await.unwrap().is_none());
    let mut g = soon(scene.sub_b.next_group()).await.unwrap().unwrap();
    assert_eq!(soon(g.read_frame()).await.unwrap().unwrap(), "hi");
}

/// A subscription the publisher ended frees its slot under `max_subscriptions`.
#[tokio::test(start_paused = true)]
async fn an_ended_subscription_frees_its_slot() {
    let mut scene = Scene::new(SessionConfig::default().max_subscriptions(2)).await;
    scene.end_a();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let mut c = scene.session.subscribe(Track::new(["c"]));
    let r = tokio::time::timeout(Duration::from_secs(1), c.next_group()).await;
    assert!(
        !matches!(r, Ok(Err(moq_model::Error::BoundsExceeded))),
        "the ended subscription a still holds a slot: {r:?}"
    );
}
