//! Loopback harness shared by the integration tests: a server and a client on 127.0.0.1
//! (port 0), a connected pair over either transport, and clean shutdown.

use std::net::SocketAddr;

use moq_transport_quinn::{
    Certificate, Client, ClientConfig, Connection, Server, ServerConfig, TransportKind,
    TransportSettings, Trust,
};

/// Both transports, for tests that run over each.
pub(crate) const KINDS: [TransportKind; 2] = [TransportKind::Quic, TransportKind::WebTransport];

/// The loopback address with port 0 (the system picks a free port).
pub(crate) fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The URL of a server on loopback for a transport.
pub(crate) fn url(kind: TransportKind, addr: SocketAddr, path: &str) -> String {
    match kind {
        TransportKind::Quic => format!("moqf://127.0.0.1:{}{path}", addr.port()),
        TransportKind::WebTransport => format!("https://127.0.0.1:{}{path}", addr.port()),
    }
}

/// A self-signed server on loopback.
pub(crate) fn server(settings: TransportSettings) -> Server {
    let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).unwrap();
    Server::new(
        ServerConfig::new(vec![cert])
            .with_bind(loopback())
            .with_transport(settings),
    )
    .unwrap()
}

/// A client on loopback that pins the server's certificate.
pub(crate) fn client(server: &Server, settings: TransportSettings) -> Client {
    Client::new(
        ClientConfig::default()
            .with_bind(loopback())
            .with_trust(Trust::Fingerprints(server.fingerprints().to_vec()))
            .with_transport(settings),
    )
    .unwrap()
}

/// A connected pair of endpoints and connections.
pub(crate) struct Pair {
    pub(crate) server: Server,
    pub(crate) client: Client,
    /// The connection as the server sees it.
    pub(crate) server_conn: Connection,
    /// The connection as the client sees it.
    pub(crate) client_conn: Connection,
}

impl Pair {
    /// Connects a new client to a new server over `kind`.
    pub(crate) async fn new(kind: TransportKind) -> Self {
        Self::with_settings(kind, TransportSettings::default()).await
    }

    /// Connects with these QUIC settings on both sides.
    pub(crate) async fn with_settings(kind: TransportKind, settings: TransportSettings) -> Self {
        let mut server = server(settings.clone());
        let client = client(&server, settings);
        let url = url(kind, server.local_addr().unwrap(), "/test");
        let (server_conn, client_conn) = tokio::join!(
            async {
                let request = server.accept().await.expect("server accepts");
                assert_eq!(request.kind(), kind);
                request.accept().await.expect("session accepted")
            },
            async { client.connect(&url).await.expect("client connects") }
        );
        assert_eq!(client_conn.kind(), kind);
        assert_eq!(server_conn.kind(), kind);
        Self {
            server,
            client,
            server_conn,
            client_conn,
        }
    }

    /// Closes everything and waits until both endpoints are idle.
    pub(crate) async fn finish(self) {
        use moq_session::transport::Connection as _;
        self.client_conn
            .close(moq_proto::ErrorCode::CANCEL, "test done");
        self.server_conn
            .close(moq_proto::ErrorCode::CANCEL, "test done");
        drop(self.client_conn);
        drop(self.server_conn);
        self.client.close();
        self.server.close();
        self.client.wait_idle().await;
        self.server.wait_idle().await;
    }
}

/// `len` bytes of a pattern that differs at every offset modulo 251.
pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed.wrapping_mul(31))
        .collect()
}

/// A bare quinn client configuration for `alpn` that accepts any server certificate, to
/// look at the wire as a plain QUIC peer would.
pub(crate) fn raw_client_config(alpn: &[u8]) -> quinn::ClientConfig {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    #[derive(Debug)]
    struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(rustls::Error::General("TLS 1.2".into()))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    quinn::ClientConfig::new(Arc::new(crypto))
}
