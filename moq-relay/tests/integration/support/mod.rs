//! The relay in-process on 127.0.0.1, and clients for it, shared by the integration tests.

use std::time::Duration;

use moq_model::{Announced, AnnouncedConsumer, TrackConsumer};
use moq_relay::{Relay, RelayConfig};
use moq_session::Session;
use moq_transport_quinn::{
    Certificate, Client, ClientConfig, ConnectError, Fingerprint, Server, ServerConfig, Trust,
};

/// Why [`Harness::connect_to`] failed: at the transport (a WebTransport session refused
/// before its CONNECT was answered) or in the MoQ handshake.
#[derive(Debug)]
pub(crate) enum ConnectFailure {
    /// The connection or the WebTransport CONNECT failed.
    Connect(ConnectError),
    /// The MoQ handshake failed.
    Session(moq_session::Error),
}

/// A relay on 127.0.0.1:0 with a self-signed certificate.
pub(crate) struct Harness {
    pub(crate) relay: Relay,
    pub(crate) port: u16,
    fingerprint: Fingerprint,
    task: tokio::task::JoinHandle<()>,
}

/// A client session and its endpoint.
pub(crate) struct Peer {
    pub(crate) session: Session,
    pub(crate) client: Client,
}

impl Peer {
    pub(crate) async fn leave(self) {
        self.session.close(moq_proto::ErrorCode::CANCEL);
        drop(self.session);
        self.client.close();
        self.client.wait_idle().await;
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Via {
    Quic,
    WebTransport,
}

impl Harness {
    pub(crate) async fn start() -> Self {
        Self::start_with(RelayConfig::default()).await
    }

    /// A relay with this configuration.
    pub(crate) async fn start_with(config: RelayConfig) -> Self {
        Self::start_on_endpoints(config, 1).await
    }

    /// A relay with this configuration, serving from `endpoints` endpoints on its port.
    pub(crate) async fn start_on_endpoints(config: RelayConfig, endpoints: usize) -> Self {
        let cert = Certificate::self_signed(["localhost"]).unwrap();
        let fingerprint = cert.fingerprint();
        let server = Server::new(
            ServerConfig::new(vec![cert])
                .with_bind("127.0.0.1:0".parse().unwrap())
                .with_endpoints(endpoints),
        )
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let relay = Relay::new(config);
        let serving = relay.clone();
        let task = tokio::spawn(async move { serving.serve(server).await });
        Self {
            relay,
            port,
            fingerprint,
            task,
        }
    }

    /// The relay's certificate fingerprint.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub(crate) async fn connect(&self, via: Via) -> Peer {
        self.connect_to(via, "").await.unwrap()
    }

    /// The relay's URL for `via`, with `rest` (a path and query) after the port's `/`.
    pub(crate) fn url(&self, via: Via, rest: &str) -> String {
        match via {
            Via::Quic => format!("moqf://127.0.0.1:{}/{rest}", self.port),
            Via::WebTransport => format!("https://127.0.0.1:{}/{rest}", self.port),
        }
    }

    /// A client endpoint that trusts the relay's certificate.
    pub(crate) fn client(&self) -> Client {
        Client::new(
            ClientConfig::default()
                .with_bind("127.0.0.1:0".parse().unwrap())
                .with_trust(Trust::Fingerprints(vec![self.fingerprint])),
        )
        .unwrap()
    }

    /// Connects with `rest` (a path and query) after the port, and runs the handshake.
    pub(crate) async fn connect_to(&self, via: Via, rest: &str) -> Result<Peer, ConnectFailure> {
        let client = self.client();
        let conn = client
            .connect(&self.url(via, rest))
            .await
            .map_err(ConnectFailure::Connect)?;
        let (session, driver) = Session::connect(conn)
            .await
            .map_err(ConnectFailure::Session)?;
        tokio::spawn(driver);
        Ok(Peer { session, client })
    }

    pub(crate) async fn stop(self) {
        self.relay.shutdown(moq_proto::ErrorCode::CANCEL);
        self.task.await.unwrap();
        self.relay.idle().await;
    }
}

/// A UDP port of 127.0.0.1 that is free now (the OS picks it), for a relay process to bind.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
pub(crate) fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `condition` holds; fails the test (rather than hang) after a generous bound.
pub(crate) async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

pub(crate) async fn read_group(track: &mut TrackConsumer) -> (u64, Vec<Vec<u8>>) {
    let mut group = track.next_group().await.unwrap().expect("a group");
    let mut frames = Vec::new();
    while let Some(frame) = group.read_frame().await.unwrap() {
        frames.push(frame.to_vec());
    }
    (group.sequence(), frames)
}

pub(crate) async fn next_announced(consumer: &mut AnnouncedConsumer) -> Announced {
    tokio::time::timeout(Duration::from_secs(20), consumer.next())
        .await
        .expect("an announcement")
        .unwrap()
        .expect("not ended")
}
