//! The MoQ session (`moq-session`) over this transport, on real loopback QUIC, over both
//! transports: handshake, publish and subscribe, close.

mod common;

use bytes::Bytes;
use common::{KINDS, Pair};
use moq_model::Track;
use moq_proto::ErrorCode;
use moq_session::transport::{Connection as _, TransportError};
use moq_session::{Error, Session};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_handshake_publish_subscribe_and_close() {
    for kind in KINDS {
        let pair = Pair::new(kind).await;
        let (connected, accepted) = tokio::join!(
            Session::connect(pair.client_conn.clone()),
            Session::accept(pair.server_conn.clone())
        );
        let (client, driver) = connected.unwrap_or_else(|e| panic!("{kind}: connect: {e}"));
        let client_driver = tokio::spawn(driver);
        let (server, driver) = accepted.unwrap_or_else(|e| panic!("{kind}: accept: {e}"));
        let server_driver = tokio::spawn(driver);

        // The client publishes; the server subscribes. Group 0 is written before the
        // subscription arrives: a late joiner gets the latest group from its first frame.
        let (mut track, consumer) = Track::new(["room", "alice", "video"]).produce();
        client.publish(consumer).unwrap();
        let mut group = track.append_group();
        group.write_frame(Bytes::from_static(b"hello")).unwrap();
        group.write_frame(Bytes::new()).unwrap();
        group.finish();

        let mut sub = server.subscribe(Track::new(["room", "alice", "video"]));
        let mut group = sub.next_group().await.unwrap().expect("group 0");
        assert_eq!(group.sequence(), 0, "{kind}");
        assert_eq!(group.read_frame().await.unwrap().unwrap(), "hello");
        assert_eq!(group.read_frame().await.unwrap().unwrap(), "");
        assert_eq!(group.read_frame().await.unwrap(), None);

        // Then a large frame on its own group stream.
        let big: Bytes = (0..4 << 20)
            .map(|i: u32| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let mut writer = track.append_group();
        writer.write_frame(big.clone()).unwrap();
        writer.finish();
        let mut group = sub.next_group().await.unwrap().expect("group 1");
        assert_eq!(group.sequence(), 1, "{kind}");
        assert!(group.read_frame().await.unwrap().unwrap() == big, "{kind}");
        assert_eq!(group.read_frame().await.unwrap(), None);

        // The publisher ends the track: the subscriber's consumer ends cleanly.
        drop(track);
        assert!(sub.next_group().await.unwrap().is_none(), "{kind}");

        // Closing the session closes the connection with the code.
        let code = ErrorCode::app(3).unwrap();
        client.close(code);
        assert_eq!(client.closed().await, Error::Closed(code), "{kind}");
        match pair.server_conn.closed().await {
            TransportError::ClosedByPeer { code: got, .. } => assert_eq!(got, code, "{kind}"),
            other => panic!("{kind}: {other:?}"),
        }
        assert!(
            matches!(server.closed().await, Error::Transport(_)),
            "{kind}"
        );
        client_driver.await.unwrap().unwrap();
        let _ = server_driver.await.unwrap();
        pair.finish().await;
    }
}
