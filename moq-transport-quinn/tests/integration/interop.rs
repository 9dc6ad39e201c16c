//! Interop with the published `moq-transfork` 0.5.0 (on its own transport stack,
//! web-transport-quinn 0.3.4) over real loopback QUIC: our session on our transport on one
//! side, theirs on the other, over raw QUIC and WebTransport: announce, subscribe,
//! unsubscribe and not-found both ways, then groups and frames byte-exact both ways
//! (docs/interop.md, "Sessions").

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moq_model::{Announced, Path, Track};
use moq_proto::ErrorCode;
use moq_session::Session;
use moq_transport_quinn::{Certificate, Client, ClientConfig, Server, ServerConfig, Trust};

use crate::support::{self, loopback};

/// A 0.5.0 path from parts.
fn their_path(parts: &[&str]) -> moq_transfork::Path {
    parts.iter().collect()
}

/// The bound on every wait for the peer: generous for a loaded machine, finite so a
/// failure fails instead of hanging.
const WAIT: Duration = Duration::from_secs(10);

/// Awaits `future` within [`WAIT`], failing the test with `what` otherwise.
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?} waiting for {what}"))
}

/// Polls `check` until it holds, within [`WAIT`].
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    within(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// Announce, unsubscribe and not-found both ways between our session and theirs; leaves
/// both sessions open and idle.
async fn discovery_and_teardown(ours: &Session, theirs: &mut moq_transfork::Session) {
    // Announce, theirs to ours: publishing a track announces it in 0.5.0, and dropping its
    // producer announces it ended.
    let mut announced = ours.announced(["ann"]);
    let (writer, reader) = moq_transfork::Track::new(their_path(&["ann", "theirs"])).produce();
    theirs.publish(reader).unwrap();
    let path = Path::from(["ann", "theirs"]);
    match within("their announce", announced.next()).await {
        Ok(Some(Announced::Active(p))) => assert_eq!(p, path),
        other => panic!("expected their track active, got {other:?}"),
    }
    drop(writer);
    match within("their unannounce", announced.next()).await {
        Ok(Some(Announced::Ended(p))) => assert_eq!(p, path),
        other => panic!("expected their track ended, got {other:?}"),
    }
    drop(announced);

    // Announce, ours to theirs.
    let mut their_announced = theirs.announced_prefix(their_path(&["mine"]));
    let (track, consumer) = Track::new(["mine", "track"]).produce();
    ours.publish(consumer).unwrap();
    let path = their_path(&["mine", "track"]);
    match within("our announce", their_announced.next()).await {
        Some(moq_transfork::Announced::Active(p)) => assert_eq!(p, path),
        other => panic!("expected our track active, got {other:?}"),
    }
    drop(track);
    match within("our unannounce", their_announced.next()).await {
        Some(moq_transfork::Announced::Ended(p)) => assert_eq!(p, path),
        other => panic!("expected our track ended, got {other:?}"),
    }
    drop(their_announced);

    // Unsubscribe, ours from theirs: once our last consumer is gone our subscription
    // ends; the 0.5.0 publisher keeps opening group streams until a write fails
    // (WIRE.md §4.4), which we stop; the session stays usable and a new subscription to
    // the same track starts from their latest group.
    let (mut writer, reader) =
        moq_transfork::Track::new(their_path(&["unsub", "theirs"])).produce();
    theirs.publish(reader).unwrap();
    let mut group = writer.append_group();
    group.write_frame(Bytes::from_static(b"one"));
    drop(group);
    let mut sub = ours.subscribe(Track::new(["unsub", "theirs"]));
    let mut group = within("their first group", sub.next_group())
        .await
        .unwrap()
        .expect("their first group");
    assert_eq!(
        within("a frame", group.read_frame())
            .await
            .unwrap()
            .unwrap(),
        "one"
    );
    assert_eq!(ours.stats().subscriptions, 1);
    drop((group, sub));
    until("our subscription to end", || {
        ours.stats().subscriptions == 0
    })
    .await;
    for payload in [&b"two"[..], b"three"] {
        let mut group = writer.append_group();
        group.write_frame(Bytes::from_static(payload));
        drop(group);
    }
    let mut sub = ours.subscribe(Track::new(["unsub", "theirs"]));
    let mut group = within("their latest group", sub.next_group())
        .await
        .unwrap()
        .expect("their latest group");
    assert_eq!(
        within("a frame", group.read_frame())
            .await
            .unwrap()
            .unwrap(),
        "three"
    );
    drop((group, sub));
    until("our second subscription to end", || {
        ours.stats().subscriptions == 0
    })
    .await;
    drop(writer);

    // Unsubscribe, theirs from ours: when their last consumer is gone the 0.5.0
    // subscriber ends the subscribe stream, and we stop serving it: the consumer our
    // serving held goes away.
    let (mut track, consumer) = Track::new(["unsub", "ours"]).produce();
    ours.publish(consumer).unwrap();
    let published = track.stats().consumers;
    let mut group = track.append_group();
    group.write_frame(Bytes::from_static(b"x")).unwrap();
    group.finish();
    let their_sub = theirs.subscribe(moq_transfork::Track::new(their_path(&["unsub", "ours"])));
    // Serving holds a consumer of its own.
    until("us to serve their subscription", || {
        ours.stats().serving == 1 && track.stats().consumers == published + 1
    })
    .await;
    drop(their_sub);
    until("us to stop serving their subscription", || {
        ours.stats().serving == 0 && track.stats().consumers == published
    })
    .await;
    drop(track);

    // Not found, ours: they reset the subscribe stream with NotFound (13).
    let mut missing = ours.subscribe(Track::new(["no", "such", "track"]));
    match within("their not-found", missing.next_group()).await {
        Err(err) => assert_eq!(err.code(), ErrorCode::NOT_FOUND, "{err}"),
        Ok(group) => panic!("expected not found, got {:?}", group.is_some()),
    }
    drop(missing);

    // Not found, theirs: we reset with 13; 0.5.0 never decodes stream codes (WIRE.md
    // §2.4), so what its consumer sees is only that the track ended without a group.
    let mut missing = theirs.subscribe(moq_transfork::Track::new(their_path(&["no", "such"])));
    let result = within("our not-found", missing.next_group()).await;
    let result = result.map(|group| group.is_some());
    assert!(
        matches!(result, Ok(false)),
        "0.5.0 consumer of a missing track: {result:?}"
    );
    drop(missing);
    until("all subscriptions to end", || {
        let stats = ours.stats();
        stats.subscriptions == 0 && stats.serving == 0
    })
    .await;
}

/// Publishes both ways between our session and theirs, then closes ours.
async fn exchange(ours: Session, mut theirs: moq_transfork::Session) {
    discovery_and_teardown(&ours, &mut theirs).await;

    // They publish, we subscribe.
    let (mut writer, reader) = moq_transfork::Track::new(their_path(&["demo", "clock"])).produce();
    theirs.publish(reader).unwrap();
    let mut group = writer.append_group();
    group.write_frame(Bytes::from_static(b"hello"));
    group.write_frame(Bytes::new());
    drop(group);

    let mut sub = ours.subscribe(Track::new(["demo", "clock"]));
    let mut group = sub.next_group().await.unwrap().expect("their group");
    assert_eq!(group.read_frame().await.unwrap().unwrap(), "hello");
    assert_eq!(group.read_frame().await.unwrap().unwrap(), "");
    assert_eq!(group.read_frame().await.unwrap(), None);

    let big: Bytes = (0..1 << 20)
        .map(|i: u32| (i % 253) as u8)
        .collect::<Vec<_>>()
        .into();
    let mut group = writer.append_group();
    group.write_frame(big.clone());
    drop(group);
    let mut group = sub.next_group().await.unwrap().expect("their second group");
    assert!(group.read_frame().await.unwrap().unwrap() == big);

    // We publish, they subscribe. A 0.5.0 subscriber drops a group stream that arrives
    // before it has read the subscription's Info (WIRE.md §7.3), which over real QUIC
    // happens to the first group now and then; so groups keep coming, paced, until one
    // gets through (a session-level matter, not the transport's).
    let (mut track, consumer) = Track::new(["ours", "track"]).produce();
    ours.publish(consumer).unwrap();
    let mut their_sub = theirs.subscribe(moq_transfork::Track::new(their_path(&["ours", "track"])));
    let mut group = None;
    for _ in 0..100 {
        let mut writer = track.append_group();
        writer.write_frame(Bytes::from_static(b"from us")).unwrap();
        writer.write_frame(big.clone()).unwrap();
        writer.finish();
        tokio::select! {
            next = their_sub.next_group() => {
                group = Some(next.unwrap().expect("our group"));
                break;
            }
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
        }
    }
    let mut group = group.expect("none of 100 groups reached the 0.5.0 subscriber");
    assert_eq!(group.read_frame().await.unwrap().unwrap(), "from us");
    assert!(group.read_frame().await.unwrap().unwrap() == big);

    ours.close(ErrorCode::CANCEL);
    // Their session sees the end (0.5.0 reports any transport end as one error).
    let _ = theirs.closed().await;
    drop(writer);
}

/// Raw QUIC (moqf-02): their server session on a connection our endpoint accepted, our
/// client session through our client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_quic_with_a_moq_transfork_0_5_server() {
    let cert = Certificate::self_signed(["localhost"]).unwrap();
    let mut server = Server::new(ServerConfig::new(vec![cert]).with_bind(loopback())).unwrap();
    let client = support::client(&server, Default::default());
    let url = format!("moqf://127.0.0.1:{}/", server.local_addr().unwrap().port());

    let theirs = async {
        let request = server.accept().await.unwrap();
        let conn = request.accept().await.unwrap();
        // Hand the bare quinn connection to their stack, as their native endpoint does.
        let session = web_transport_quinn_03::Session::from(conn.quic().clone());
        moq_transfork::Session::accept(session.into())
            .await
            .unwrap()
    };
    let ours = async {
        let conn = client.connect(&url).await.unwrap();
        let (session, driver) = Session::connect(conn).await.unwrap();
        tokio::spawn(driver);
        session
    };
    let (theirs, ours) = tokio::join!(theirs, ours);
    exchange(ours, theirs).await;

    client.close();
    server.close();
    client.wait_idle().await;
    server.wait_idle().await;
}

/// WebTransport (h3): their server (web-transport-quinn 0.3.4 answering the CONNECT), our
/// client session through our client with a path in the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webtransport_with_a_moq_transfork_0_5_server() {
    // Their endpoint: a plain quinn server with ALPN h3.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let fingerprint = moq_transport_quinn::Fingerprint::of(cert.der());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let endpoint = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(crypto)),
        loopback(),
    )
    .unwrap();
    let port = endpoint.local_addr().unwrap().port();

    let client = Client::new(
        ClientConfig::default()
            .with_bind(loopback())
            .with_trust(Trust::Fingerprints(vec![fingerprint])),
    )
    .unwrap();
    let url = format!("https://localhost:{port}/any/path?x=1");

    let theirs = async {
        let conn = endpoint.accept().await.unwrap().await.unwrap();
        let request = web_transport_quinn_03::accept(conn).await.unwrap();
        assert_eq!(request.url().path(), "/any/path");
        let session = request.ok().await.unwrap();
        moq_transfork::Session::accept(session.into())
            .await
            .unwrap()
    };
    let ours = async {
        let conn = client.connect(&url).await.unwrap();
        let (session, driver) = Session::connect(conn).await.unwrap();
        tokio::spawn(driver);
        session
    };
    let (theirs, ours) = tokio::join!(theirs, ours);
    exchange(ours, theirs).await;

    client.close();
    endpoint.close(0u32.into(), b"");
    client.wait_idle().await;
    endpoint.wait_idle().await;
}

/// Their client (moq-transfork 0.5.0 on web-transport-quinn 0.3.4) against our server, on
/// both transports through one port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moq_transfork_0_5_clients_on_our_server() {
    let mut server = support::server(Default::default());
    let addr = server.local_addr().unwrap();
    let endpoint = quinn::Endpoint::client(loopback()).unwrap();

    for webtransport in [false, true] {
        let theirs = async {
            let alpn: &[u8] = if webtransport { b"h3" } else { b"moqf-02" };
            let conn = endpoint
                .connect_with(support::raw_client_config(alpn), addr, "localhost")
                .unwrap()
                .await
                .unwrap();
            let session = if webtransport {
                let url = url::Url::parse(&format!("https://localhost:{}/their/path", addr.port()))
                    .unwrap();
                web_transport_quinn_03::connect_with(conn, &url)
                    .await
                    .unwrap()
            } else {
                web_transport_quinn_03::Session::from(conn)
            };
            moq_transfork::Session::connect(session.into())
                .await
                .unwrap()
        };
        let ours = async {
            let request = server.accept().await.unwrap();
            if webtransport {
                assert_eq!(request.url().unwrap().path(), "/their/path");
            } else {
                assert_eq!(request.url(), None);
            }
            let conn = request.accept().await.unwrap();
            let (session, driver) = Session::accept(conn).await.unwrap();
            tokio::spawn(driver);
            session
        };
        let (theirs, ours) = tokio::join!(theirs, ours);
        exchange(ours, theirs).await;
    }

    endpoint.close(0u32.into(), b"");
    server.close();
    endpoint.wait_idle().await;
    server.wait_idle().await;
}
