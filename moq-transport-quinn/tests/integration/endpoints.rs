//! Client and server endpoints over loopback: URLs, TLS trust, certificates, SNI,
//! accepting and rejecting sessions, timeouts.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use moq_proto::ErrorCode;
use moq_session::transport::{Connection as _, RecvStream as _, SendStream as _, TransportError};
use moq_transport_quinn::{
    Certificate, Client, ClientConfig, ConfigError, ConnectError, Fingerprint, Server,
    ServerConfig, TransportKind, Trust,
};

use crate::support::{self, KINDS, loopback, url};

/// Runs one connection attempt against `server` with `trust`; returns the outcome, after
/// serving the server side (any accepted session is accepted and kept until the end).
async fn attempt(
    server: &mut Server,
    kind: TransportKind,
    trust: Trust,
    host_url: Option<String>,
) -> Result<(), ConnectError> {
    let client = Client::new(
        ClientConfig::default()
            .with_bind(loopback())
            .with_trust(trust),
    )
    .expect("client");
    let url = host_url.unwrap_or_else(|| url(kind, server.local_addr().unwrap(), "/"));
    let result = tokio::select! {
        result = client.connect(&url) => result,
        // A failed handshake never reaches accept; successful ones (including any left
        // from an earlier attempt) are accepted and kept here.
        _ = async {
            let mut accepted = Vec::new();
            loop {
                let request = server.accept().await.unwrap();
                accepted.push(request.accept().await);
            }
        } => unreachable!(),
    };
    let outcome = match result {
        Ok(conn) => {
            // Prove the connection works end to end.
            let mut send = conn.open_uni().await.unwrap();
            send.write(Bytes::from_static(b"hi")).await.unwrap();
            send.finish().unwrap();
            conn.close(ErrorCode::CANCEL, "");
            Ok(())
        }
        Err(err) => Err(err),
    };
    client.close();
    client.wait_idle().await;
    outcome
}

fn self_signed_server() -> Server {
    let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).unwrap();
    Server::new(ServerConfig::new(vec![cert]).with_bind(loopback())).unwrap()
}

async fn shutdown(server: Server) {
    server.close();
    server.wait_idle().await;
}

#[tokio::test]
async fn pinned_fingerprint_connects_and_a_wrong_one_is_a_tls_error() {
    for kind in KINDS {
        let mut server = self_signed_server();
        let pinned = Trust::Fingerprints(server.fingerprints().to_vec());
        attempt(&mut server, kind, pinned, None)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));

        let wrong = Trust::Fingerprints(vec![Fingerprint([0x42; 32])]);
        let err = attempt(&mut server, kind, wrong, None).await.unwrap_err();
        assert!(matches!(err, ConnectError::Tls { .. }), "{kind}: {err}");
        shutdown(server).await;
    }
}

#[tokio::test]
async fn system_roots_do_not_trust_a_self_signed_certificate() {
    let mut server = self_signed_server();
    match Client::new(ClientConfig::default().with_bind(loopback())) {
        // A machine without a system store: the error says so.
        Err(err) => {
            assert!(matches!(err, ConfigError::NoSystemRoots(_)), "{err}");
            assert!(err.to_string().contains("system store"));
        }
        Ok(client) => {
            client.close();
            for kind in KINDS {
                let err = attempt(&mut server, kind, Trust::System, None)
                    .await
                    .unwrap_err();
                assert!(matches!(err, ConnectError::Tls { .. }), "{kind}: {err}");
                assert!(err.to_string().contains("certificate"), "{kind}: {err}");
            }
        }
    }
    shutdown(server).await;
}

#[tokio::test]
async fn dangerous_disable_verify_accepts_any_certificate() {
    for kind in KINDS {
        let mut server = self_signed_server();
        attempt(&mut server, kind, Trust::DangerousDisableVerify, None)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        shutdown(server).await;
    }
}

/// Files in the temporary directory, removed on drop.
struct TempFiles(Vec<PathBuf>);

impl TempFiles {
    fn write(&mut self, name: &str, contents: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("moq-transport-quinn-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        self.0.push(path.clone());
        path
    }
}

impl Drop for TempFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A CA and a leaf it signed, as PEM files: the server loads the leaf, the client trusts
/// the CA.
#[tokio::test]
async fn pem_files_for_server_certificates_and_client_roots() {
    let mut files = TempFiles(Vec::new());

    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

    let ca_path = files.write("ca.pem", &ca_cert.pem());
    let chain_path = files.write("chain.pem", &format!("{}{}", leaf.pem(), ca_cert.pem()));
    let key_path = files.write("key.pem", &leaf_key.serialize_pem());

    let cert = Certificate::from_pem_files(&chain_path, &key_path).unwrap();
    assert_eq!(cert.chain().len(), 2);
    assert_eq!(cert.fingerprint(), Fingerprint::of(leaf.der()));
    let mut server = Server::new(ServerConfig::new(vec![cert]).with_bind(loopback())).unwrap();
    let trust = Trust::roots_from_pem_files([&ca_path]).unwrap();
    for kind in KINDS {
        attempt(&mut server, kind, trust.clone(), None)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
    }

    // Unreadable or empty files are clear errors.
    let missing = std::env::temp_dir().join("moq-transport-quinn-does-not-exist.pem");
    let err = Trust::roots_from_pem_files([&missing]).unwrap_err();
    assert!(matches!(err, ConfigError::Pem { .. }), "{err}");
    let empty = files.write("empty.pem", "");
    let err = Certificate::from_pem_files(&empty, &key_path).unwrap_err();
    assert!(err.to_string().contains("no certificate"), "{err}");
    // A key that is not the leaf's is refused up front.
    let other_key = files.write(
        "other-key.pem",
        &rcgen::KeyPair::generate().unwrap().serialize_pem(),
    );
    assert!(Certificate::from_pem_files(&chain_path, &other_key).is_err());

    shutdown(server).await;
}

/// The certificate is chosen by SNI; without a usable name the last one is served.
#[tokio::test]
async fn certificate_is_chosen_by_sni_with_the_last_as_fallback() {
    let named = Certificate::self_signed(["localhost"]).unwrap();
    let fallback = Certificate::self_signed(["fallback.invalid"]).unwrap();
    let named_fp = named.fingerprint();
    let fallback_fp = fallback.fingerprint();
    let mut server =
        Server::new(ServerConfig::new(vec![named, fallback]).with_bind(loopback())).unwrap();
    assert_eq!(server.fingerprints(), &[named_fp, fallback_fp]);
    let port = server.local_addr().unwrap().port();

    // "localhost" is sent as SNI and matches the first certificate.
    let by_name = Some(format!("moqf://localhost:{port}/"));
    attempt(
        &mut server,
        TransportKind::Quic,
        Trust::Fingerprints(vec![named_fp]),
        by_name.clone(),
    )
    .await
    .unwrap();
    let err = attempt(
        &mut server,
        TransportKind::Quic,
        Trust::Fingerprints(vec![fallback_fp]),
        by_name,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectError::Tls { .. }), "{err}");

    // An IP address sends no SNI: the last certificate.
    attempt(
        &mut server,
        TransportKind::Quic,
        Trust::Fingerprints(vec![fallback_fp]),
        None,
    )
    .await
    .unwrap();
    shutdown(server).await;
}

#[tokio::test]
async fn the_server_sees_kind_url_and_server_name_and_can_reject() {
    let mut server = self_signed_server();
    let client = support::client(&server, Default::default());
    let port = server.local_addr().unwrap().port();
    let connect = |url: String| {
        let client = client.clone();
        tokio::spawn(async move { client.connect(&url).await })
    };

    // WebTransport: the path and query of the URL reach the server, before it answers.
    let wt_url = format!("https://localhost:{port}/room/42?token=abc");
    let connecting = connect(wt_url.clone());
    let request = server.accept().await.unwrap();
    assert_eq!(request.kind(), TransportKind::WebTransport);
    let url = request.url().unwrap();
    assert_eq!(url.path(), "/room/42");
    assert_eq!(url.query(), Some("token=abc"));
    assert_eq!(request.server_name(), Some("localhost"));
    assert!(request.remote_address().ip().is_loopback());
    let server_conn = request.accept().await.unwrap();
    let client_conn = connecting.await.unwrap().unwrap();
    assert_eq!(server_conn.url().unwrap().path(), "/room/42");
    assert_eq!(client_conn.url().unwrap().as_str(), wt_url);
    client_conn.close(ErrorCode::CANCEL, "");
    server_conn.close(ErrorCode::CANCEL, "");

    // WebTransport, rejected: the client's connect fails and says why.
    let connecting = connect(format!("https://localhost:{port}/private"));
    let request = server.accept().await.unwrap();
    request.reject(ErrorCode::NOT_FOUND, "no such room");
    let err = connecting.await.unwrap().unwrap_err();
    assert!(matches!(err, ConnectError::WebTransport { .. }), "{err}");
    assert!(err.to_string().contains("no such room"), "{err}");

    // Raw QUIC has no URL; a rejection is a close with the plain code.
    let connecting = connect(format!("moqf://localhost:{port}/ignored"));
    let request = server.accept().await.unwrap();
    assert_eq!(request.kind(), TransportKind::Quic);
    assert_eq!(request.url(), None);
    assert_eq!(request.server_name(), Some("localhost"));
    request.reject(ErrorCode::NOT_FOUND, "nope");
    let client_conn = connecting.await.unwrap().unwrap();
    assert_eq!(client_conn.url(), None);
    assert_eq!(
        client_conn.closed().await,
        TransportError::ClosedByPeer {
            code: ErrorCode::NOT_FOUND,
            reason: "nope".into()
        }
    );

    client.close();
    client.wait_idle().await;
    shutdown(server).await;
}

#[tokio::test]
async fn unsupported_schemes_and_bad_urls_are_rejected() {
    let client = Client::new(
        ClientConfig::default()
            .with_bind(loopback())
            .with_trust(Trust::DangerousDisableVerify),
    )
    .unwrap();
    for url in ["http://localhost/", "wss://localhost/", "moq://localhost/"] {
        let err = client.connect(url).await.unwrap_err();
        assert!(
            matches!(err, ConnectError::UnsupportedScheme(_)),
            "{url}: {err}"
        );
        assert!(err.to_string().contains("moqf://"), "{err}");
    }
    let err = client.connect("not a url").await.unwrap_err();
    assert!(matches!(err, ConnectError::InvalidUrl { .. }), "{err}");
    client.close();
    client.wait_idle().await;
}

/// Nobody answers: the connect gives up after the configured timeout with a clear error.
#[tokio::test]
async fn connect_times_out_when_nobody_answers() {
    // A bound UDP socket that never reads keeps the port from being reused meanwhile.
    let silent = std::net::UdpSocket::bind(loopback()).unwrap();
    let port = silent.local_addr().unwrap().port();
    let client = Client::new(
        ClientConfig::default()
            .with_bind(loopback())
            .with_trust(Trust::DangerousDisableVerify)
            .with_connect_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    for kind in KINDS {
        let url = url(kind, ([127, 0, 0, 1], port).into(), "/");
        let err = client.connect(&url).await.unwrap_err();
        assert!(matches!(err, ConnectError::Timeout { .. }), "{kind}: {err}");
        assert!(err.to_string().contains("timed out"), "{err}");
    }
    client.close();
    client.wait_idle().await;
    drop(silent);
}

#[test]
fn default_connect_timeout_is_ten_seconds() {
    assert_eq!(
        ClientConfig::default().connect_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(moq_transport_quinn::DEFAULT_PORT, 443);
}

#[tokio::test]
async fn closed_connection_errors_are_connection_level() {
    let pair = support::Pair::new(TransportKind::Quic).await;
    pair.client_conn.close(ErrorCode::DECODE, "bad");
    let err = pair.server_conn.closed().await;
    assert!(err.is_connection());
    assert!(matches!(err, TransportError::ClosedByPeer { .. }));
    pair.finish().await;
}

/// Reads a stream to its end.
async fn read_all(recv: &mut moq_transport_quinn::RecvStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = recv.read().await.unwrap() {
        out.extend_from_slice(&chunk);
    }
    out
}

/// Answers each bidirectional stream of `conn` with what it carried, until the connection
/// ends.
async fn echo(conn: moq_transport_quinn::Connection) {
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let data = read_all(&mut recv).await;
        if send.write(Bytes::from(data)).await.is_err() {
            return;
        }
        let _ = send.finish();
    }
}

/// One request and its echo over `conn`, within 5 s.
async fn round_trip(conn: &moq_transport_quinn::Connection, message: &'static [u8]) {
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write(Bytes::from_static(message)).await.unwrap();
        send.finish().unwrap();
        read_all(&mut recv).await
    };
    let echoed = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .expect("the echo comes back");
    assert_eq!(echoed, message);
}

/// A server on loopback with four endpoints on its port.
fn four_endpoints() -> Server {
    let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).unwrap();
    Server::new(
        ServerConfig::new(vec![cert])
            .with_bind(loopback())
            .with_endpoints(4),
    )
    .unwrap()
}

/// A new client connected to `server` over raw QUIC, whose connection the server answers
/// with [`echo`].
async fn echoed_client(server: &mut Server) -> (Client, moq_transport_quinn::Connection) {
    let client = Client::new(
        ClientConfig::default()
            .with_bind(loopback())
            .with_trust(Trust::Fingerprints(server.fingerprints().to_vec())),
    )
    .unwrap();
    let url = url(TransportKind::Quic, server.local_addr().unwrap(), "/");
    let (served, conn) = tokio::join!(
        async { server.accept().await.unwrap().accept().await.unwrap() },
        async { client.connect(&url).await.unwrap() }
    );
    tokio::spawn(echo(served));
    (client, conn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_endpoints_share_a_port_and_follow_a_client_that_moves() {
    const CLIENTS: usize = 16;
    let mut server = four_endpoints();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (client, conn) = echoed_client(&mut server).await;
        round_trip(&conn, b"before").await;
        clients.push((client, conn));
    }
    // Sixteen clients on one socket of four would be a chance of 4^-15.
    let spread = server.open_connections_per_endpoint();
    assert_eq!(spread.len(), 4);
    let arrived = server.stats().connections_per_endpoint();
    assert_eq!(
        arrived,
        spread.iter().map(|&n| n as u64).collect::<Vec<_>>()
    );
    assert_eq!(spread.iter().sum::<usize>(), CLIENTS, "{spread:?}");
    assert!(spread.iter().filter(|&&n| n > 0).count() > 1, "{spread:?}");
    assert_eq!(server.stats().forwarded_datagrams(), 0);

    // Each client moves to a new port: most now hash to another socket, whose endpoint
    // passes their packets to the one that owns the connection.
    for (client, conn) in &clients {
        let before = client.local_addr().unwrap();
        client.rebind(loopback()).unwrap();
        assert_ne!(client.local_addr().unwrap(), before);
        round_trip(conn, b"after moving").await;
    }
    assert!(server.stats().forwarded_datagrams() > 0);
    assert_eq!(
        server.open_connections_per_endpoint(),
        spread,
        "no connection moved or ended"
    );

    for (client, _) in &clients {
        client.close();
        client.wait_idle().await;
    }
    shutdown(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_is_never_passed_on_and_harms_nothing() {
    let mut server = four_endpoints();
    let addr = server.local_addr().unwrap();
    // From 64 sockets, so that every endpoint gets some (all but a chance of 4 (3/4)^64):
    // empty datagrams, long and short headers whose connection ID starts with the index
    // of every endpoint and of one that does not exist, of every size. No tag checks, so
    // nothing is passed on, and quinn drops it all without an answer.
    let junk: Vec<_> = (0..64)
        .map(|_| std::net::UdpSocket::bind(loopback()).unwrap())
        .collect();
    for i in 0..5000usize {
        let mut datagram = vec![i as u8; i * 7 % 1400];
        if let [first, owner, ..] = &mut datagram[..] {
            *first = if i % 3 == 0 { 0xc0 } else { 0x40 };
            *owner = (i % 5) as u8;
        }
        junk[i % junk.len()].send_to(&datagram, addr).unwrap();
    }

    // No endpoint went down: clients are served until each endpoint has had one.
    for tried in 1.. {
        let arrived = server.stats().connections_per_endpoint();
        if arrived.iter().all(|&n| n > 0) {
            break;
        }
        assert!(tried < 100, "{arrived:?}");
        let (client, conn) = echoed_client(&mut server).await;
        round_trip(&conn, b"still served").await;
        client.close();
        client.wait_idle().await;
    }
    assert_eq!(server.stats().forwarded_datagrams(), 0);
    shutdown(server).await;
}

#[tokio::test]
async fn endpoint_counts_out_of_range_are_refused() {
    for count in [0, 257] {
        let cert = Certificate::self_signed(["localhost"]).unwrap();
        let config = ServerConfig::new(vec![cert])
            .with_bind(loopback())
            .with_endpoints(count);
        assert_eq!(
            Server::new(config).unwrap_err(),
            ConfigError::Endpoints(count)
        );
    }
}

#[tokio::test]
async fn several_endpoints_refuse_a_port_already_taken() {
    let taken = std::net::UdpSocket::bind(loopback()).unwrap();
    let addr = taken.local_addr().unwrap();
    let cert = Certificate::self_signed(["localhost"]).unwrap();
    let config = ServerConfig::new(vec![cert])
        .with_bind(addr)
        .with_endpoints(2);
    assert!(matches!(
        Server::new(config).unwrap_err(),
        ConfigError::Bind { addr: a, .. } if a == addr
    ));
}
