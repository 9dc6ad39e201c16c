//! Interop with the published `moq-transfork` 0.5.0 (on its own transport stack,
//! web-transport-quinn 0.3.4) over real loopback QUIC: our session on our transport on one
//! side, theirs on the other, over raw QUIC and WebTransport, publishing both ways.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::loopback;
use moq_model::Track;
use moq_proto::ErrorCode;
use moq_session::Session;
use moq_transport_quinn::{Certificate, Client, ClientConfig, Server, ServerConfig, Trust};

/// A 0.5.0 path from parts.
fn their_path(parts: &[&str]) -> moq_transfork::Path {
    parts.iter().collect()
}

/// Publishes both ways between our session and theirs, then closes ours.
async fn exchange(ours: Session, mut theirs: moq_transfork::Session) {
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
    let client = common::client(&server, Default::default());
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
    let mut server = common::server(Default::default());
    let addr = server.local_addr().unwrap();
    let endpoint = quinn::Endpoint::client(loopback()).unwrap();

    for webtransport in [false, true] {
        let theirs = async {
            let alpn: &[u8] = if webtransport { b"h3" } else { b"moqf-02" };
            let conn = endpoint
                .connect_with(common::raw_client_config(alpn), addr, "localhost")
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
