//! The server endpoint: one UDP port for raw QUIC and WebTransport.

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use moq_proto::ErrorCode;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use url::Url;

use crate::codes::close_code_to_wire;
use crate::connection::{Connection, TransportKind};
use crate::credit::StreamCredit;
use crate::error::{AcceptError, ConfigError};
use crate::settings::TransportSettings;
use crate::spread::{MAX_ENDPOINTS, RouterCounters};
use crate::tls::{self, Certificate, Fingerprint};
use crate::{quic, webtransport};

/// How a [`Server`] listens.
///
/// ```
/// use moq_transport_quinn::{Certificate, ServerConfig};
///
/// let cert = Certificate::self_signed(["localhost"]).unwrap();
/// let config = ServerConfig::new(vec![cert]).with_bind("127.0.0.1:0".parse().unwrap());
/// assert_eq!(config.certificates.len(), 1);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The local UDP address. Default `[::]:443`.
    pub bind: SocketAddr,
    /// The certificates, chosen by the SNI of each connection: the first whose leaf is
    /// valid for the requested name, else the last one.
    pub certificates: Vec<Certificate>,
    /// The bound on a connection's handshake (QUIC and TLS, and for WebTransport the
    /// HTTP/3 SETTINGS and CONNECT request). Default 10 s.
    pub handshake_timeout: Duration,
    /// QUIC transport settings.
    pub transport: TransportSettings,
    /// How many UDP sockets, each with its own quinn endpoint, share [`bind`](Self::bind).
    /// Default 1.
    ///
    /// Each endpoint receives on one task, so one endpoint receives on one core at a time;
    /// with several (Linux, `SO_REUSEPORT`, at most 256) the kernel spreads clients over
    /// them by address, and a client whose address changes mid-connection is followed:
    /// its packets are passed to the endpoint that owns its connection, named in the first
    /// byte of the connection IDs the server issues. Worth setting to the number of cores
    /// on a relay whose endpoint receives more than a core can; no gain on a small machine.
    pub endpoints: usize,
}

impl ServerConfig {
    /// A configuration serving these certificates (see [`Certificate::from_pem_files`] and
    /// [`Certificate::self_signed`]).
    pub fn new(certificates: Vec<Certificate>) -> Self {
        Self {
            bind: SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 443),
            certificates,
            handshake_timeout: Duration::from_secs(10),
            transport: TransportSettings::default(),
            endpoints: 1,
        }
    }

    /// Sets [`bind`](Self::bind).
    pub fn with_bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }

    /// Sets [`handshake_timeout`](Self::handshake_timeout).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`transport`](Self::transport).
    pub fn with_transport(mut self, transport: TransportSettings) -> Self {
        self.transport = transport;
        self
    }

    /// Sets [`endpoints`](Self::endpoints).
    pub fn with_endpoints(mut self, endpoints: usize) -> Self {
        self.endpoints = endpoints;
        self
    }
}

/// A server endpoint accepting raw QUIC (ALPN `moqf-02`) and WebTransport (ALPN `h3`) on
/// one UDP port; the ALPN each client negotiates picks the transport (WIRE.md §2.3).
///
/// Handshakes run concurrently in background tasks; [`accept`](Self::accept) yields the
/// connections whose handshake completed, as [`Request`]s to accept or reject. Dropping the
/// server abandons handshakes in progress; established connections live on.
#[derive(Debug)]
pub struct Server {
    /// One, or several sharing the port (`ServerConfig::endpoints`).
    endpoints: Vec<quinn::Endpoint>,
    arrivals: Arrivals,
    stats: ServerStats,
    /// Set by [`Server::close`]: an endpoint that stops after it is no failure.
    closed: Arc<AtomicBool>,
    fingerprints: Vec<Fingerprint>,
    handshakes: JoinSet<Option<Request>>,
    timeout: Duration,
    /// The transport settings, for each connection's stream credit.
    transport: TransportSettings,
}

impl Server {
    /// Binds the socket (or sockets). Must be called within a tokio runtime.
    pub fn new(config: ServerConfig) -> Result<Self, ConfigError> {
        if !(1..=MAX_ENDPOINTS).contains(&config.endpoints) {
            return Err(ConfigError::Endpoints(config.endpoints));
        }
        let tls = tls::server_config(&config.certificates)?;
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| ConfigError::Tls(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(Arc::new(config.transport.to_quinn_growing()));
        let (endpoints, router) = crate::socket::endpoints(
            config.bind,
            server,
            config.transport.udp_payload(),
            config.endpoints,
        )
        .map_err(|e| ConfigError::Bind {
            addr: config.bind,
            message: e.to_string(),
        })?;
        let stats = ServerStats {
            connections: endpoints.iter().map(|_| AtomicU64::new(0)).collect(),
            router: router.as_ref().map(|router| router.counters()),
        };
        let closed = Arc::new(AtomicBool::new(false));
        Ok(Self {
            arrivals: Arrivals::new(&endpoints, &stats, &closed),
            endpoints,
            stats,
            closed,
            fingerprints: config
                .certificates
                .iter()
                .map(Certificate::fingerprint)
                .collect(),
            handshakes: JoinSet::new(),
            timeout: config.handshake_timeout,
            transport: config.transport,
        })
    }

    /// The local address of the socket (with the port chosen if the bind said 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoints[0].local_addr()
    }

    /// The connections open on each endpoint now (one entry per
    /// [`endpoints`](ServerConfig::endpoints)): how the kernel spread the clients.
    pub fn open_connections_per_endpoint(&self) -> Vec<usize> {
        self.endpoints
            .iter()
            .map(quinn::Endpoint::open_connections)
            .collect()
    }

    /// The server's counters, as a handle that stays readable while the server is in use
    /// elsewhere (a metrics endpoint, while [`accept`](Self::accept) runs).
    pub fn stats(&self) -> ServerStats {
        self.stats.clone()
    }

    /// The SHA-256 fingerprints of the certificates' leaves, in configuration order: what a
    /// browser pins with `serverCertificateHashes`, or a client with
    /// [`Trust::Fingerprints`](crate::Trust::Fingerprints).
    pub fn fingerprints(&self) -> &[Fingerprint] {
        &self.fingerprints
    }

    /// The next connection whose handshake completed, or `None` once the endpoint is
    /// closed. Connections whose handshake fails are logged and skipped.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a completed handshake is kept for the next call.
    pub async fn accept(&mut self) -> Option<Request> {
        loop {
            tokio::select! {
                incoming = self.arrivals.next(&self.endpoints, &self.stats) => {
                    let incoming = incoming?;
                    let timeout = self.timeout;
                    let credit = self.transport.stream_credit();
                    self.handshakes.spawn(async move {
                        match tokio::time::timeout(timeout, handshake(incoming, credit)).await {
                            Ok(request) => request,
                            Err(_) => {
                                tracing::debug!("handshake timed out");
                                None
                            }
                        }
                    });
                }
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(request)) = done {
                        return Some(request);
                    }
                }
            }
        }
    }

    /// Closes every connection at once (code 0) and stops accepting.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        for endpoint in &self.endpoints {
            endpoint.close(0u32.into(), b"");
        }
    }

    /// Waits until every connection of this endpoint is closed and its close was sent.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe; it only observes.
    pub async fn wait_idle(&self) {
        for endpoint in &self.endpoints {
            endpoint.wait_idle().await;
        }
    }
}

/// Where [`Server::accept`] takes the connections that arrive.
#[derive(Debug)]
enum Arrivals {
    /// One endpoint, asked directly.
    One,
    /// Several: a task per endpoint accepts and sends here, so that each is asked as
    /// often as the others. The tasks end with their endpoints, or when this is dropped.
    Many {
        receiver: mpsc::Receiver<quinn::Incoming>,
        _tasks: JoinSet<()>,
    },
}

impl Arrivals {
    fn new(endpoints: &[quinn::Endpoint], stats: &ServerStats, closed: &Arc<AtomicBool>) -> Self {
        if endpoints.len() == 1 {
            return Self::One;
        }
        let (sender, receiver) = mpsc::channel(16);
        let mut tasks = JoinSet::new();
        let all: Arc<[quinn::Endpoint]> = endpoints.into();
        for index in 0..endpoints.len() {
            let (all, sender, stats, closed) =
                (all.clone(), sender.clone(), stats.clone(), closed.clone());
            tasks.spawn(async move {
                while let Some(incoming) = all[index].accept().await {
                    stats.connections[index].fetch_add(1, Ordering::Relaxed);
                    if sender.send(incoming).await.is_err() {
                        return;
                    }
                }
                // An endpoint that stops unasked (its driver failed) would leave its socket
                // in the port's group, taking its share of new clients to nobody: stop the
                // whole server instead, so that whoever runs it sees it end.
                if !closed.swap(true, Ordering::Relaxed) {
                    tracing::error!(endpoint = index, "an endpoint stopped: closing the server");
                    for endpoint in all.iter() {
                        endpoint.close(0u32.into(), b"");
                    }
                }
            });
        }
        Self::Many {
            receiver,
            _tasks: tasks,
        }
    }

    /// The next connection to arrive; `None` once every endpoint is closed. Cancel-safe:
    /// quinn's `accept` and a channel's `recv` are.
    async fn next(
        &mut self,
        endpoints: &[quinn::Endpoint],
        stats: &ServerStats,
    ) -> Option<quinn::Incoming> {
        match self {
            Self::One => {
                let incoming = endpoints[0].accept().await?;
                stats.connections[0].fetch_add(1, Ordering::Relaxed);
                Some(incoming)
            }
            Self::Many { receiver, .. } => receiver.recv().await,
        }
    }
}

/// A [`Server`]'s counters ([`Server::stats`]): cheap to clone, and it holds no socket.
#[derive(Debug, Clone)]
pub struct ServerStats {
    /// Connections that arrived at each endpoint.
    connections: Arc<[AtomicU64]>,
    /// What passing datagrams between several endpoints counted.
    router: Option<Arc<RouterCounters>>,
}

impl ServerStats {
    /// Connections that arrived at each endpoint since the start, counted as the endpoint
    /// hands them over, before their handshake (one entry per
    /// [`endpoints`](ServerConfig::endpoints)): how the kernel spreads clients over them.
    /// Not counted: what quinn refuses by itself (after a close, or over its own limits).
    pub fn connections_per_endpoint(&self) -> Vec<u64> {
        self.connections
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect()
    }

    /// Datagrams that reached another endpoint's socket and were passed to the endpoint
    /// owning their connection (a client whose address changed), since the start; always 0
    /// with one endpoint.
    pub fn forwarded_datagrams(&self) -> u64 {
        self.router
            .as_ref()
            .map_or(0, |counters| counters.forwarded.load(Ordering::Relaxed))
    }

    /// Datagrams for another endpoint dropped instead, its inbox being full (or its
    /// endpoint gone), since the start.
    pub fn forward_drops(&self) -> u64 {
        self.router
            .as_ref()
            .map_or(0, |counters| counters.dropped.load(Ordering::Relaxed))
    }
}

/// Runs one connection's handshake: QUIC and TLS, then for `h3` the HTTP/3 SETTINGS and
/// the CONNECT request (not yet answered).
async fn handshake(incoming: quinn::Incoming, credit: Arc<StreamCredit>) -> Option<Request> {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::debug!(%remote, "QUIC handshake failed: {e}");
            return None;
        }
    };
    let data = conn
        .handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?;
    let server_name = data.server_name;
    let inner = match data.protocol.as_deref() {
        Some(alpn) if alpn == moq_proto::ALPN => RequestInner::Quic(conn),
        Some(alpn) if alpn == web_transport_quinn::ALPN.as_bytes() => {
            match web_transport_quinn::Request::accept(conn.clone()).await {
                Ok(request) => RequestInner::WebTransport(Box::new(request)),
                Err(e) => {
                    tracing::debug!(%remote, "WebTransport CONNECT failed: {e}");
                    conn.close(0u32.into(), b"bad WebTransport handshake");
                    return None;
                }
            }
        }
        _ => {
            conn.close(0u32.into(), b"unsupported ALPN");
            return None;
        }
    };
    Some(Request {
        inner,
        server_name,
        credit,
    })
}

/// A connection whose handshake completed, waiting to be accepted or rejected.
///
/// For WebTransport the client's CONNECT request has arrived but is not yet answered, so
/// the application can decide by [`url`](Self::url). Dropping the request closes the
/// connection.
#[derive(Debug)]
pub struct Request {
    inner: RequestInner,
    server_name: Option<String>,
    credit: Arc<StreamCredit>,
}

enum RequestInner {
    Quic(quinn::Connection),
    WebTransport(Box<web_transport_quinn::Request>),
}

impl std::fmt::Debug for RequestInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Quic(conn) => f.debug_tuple("Quic").field(&conn.remote_address()).finish(),
            Self::WebTransport(request) => f
                .debug_tuple("WebTransport")
                .field(&crate::redact_url(request.url.as_str()))
                .finish(),
        }
    }
}

impl Request {
    /// Which transport the client chose (by ALPN).
    pub fn kind(&self) -> TransportKind {
        match self.inner {
            RequestInner::Quic(_) => TransportKind::Quic,
            RequestInner::WebTransport(_) => TransportKind::WebTransport,
        }
    }

    /// The URL of a WebTransport CONNECT request (any path is accepted; what it means is
    /// up to the application); `None` on raw QUIC, which carries no URL.
    pub fn url(&self) -> Option<&Url> {
        match &self.inner {
            RequestInner::Quic(_) => None,
            RequestInner::WebTransport(request) => Some(&request.url),
        }
    }

    /// The host name the client asked for in TLS (SNI), if it sent one.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The client's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.quic().remote_address()
    }

    fn quic(&self) -> &quinn::Connection {
        match &self.inner {
            RequestInner::Quic(conn) => conn,
            RequestInner::WebTransport(request) => request.conn(),
        }
    }

    /// Accepts the session: for WebTransport, answers the CONNECT request with 200.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the request, which closes the connection.
    pub async fn accept(self) -> Result<Connection, AcceptError> {
        match self.inner {
            RequestInner::Quic(conn) => Ok(Connection::Quic(
                quic::Connection::new(conn).with_credit(self.credit),
            )),
            RequestInner::WebTransport(request) => {
                let conn = request.conn().clone();
                match request.ok().await {
                    Ok(session) => Ok(Connection::WebTransport(
                        webtransport::Connection::with_credit(session, Some(self.credit)),
                    )),
                    Err(e) => {
                        conn.close(close_code_to_wire(ErrorCode::TRANSPORT, true), b"");
                        Err(AcceptError::WebTransport(e.to_string()))
                    }
                }
            }
        }
    }

    /// Rejects the session: closes the connection with this protocol code and reason
    /// (plain on raw QUIC, mapped on WebTransport, WIRE.md §2.4).
    pub fn reject(self, code: ErrorCode, reason: &str) {
        let webtransport = self.kind() == TransportKind::WebTransport;
        self.quic()
            .close(close_code_to_wire(code, webtransport), reason.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, IoSliceMut};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use quinn::udp::{RecvMeta, Transmit};
    use quinn::{AsyncUdpSocket, UdpPoller};

    use super::*;

    /// A socket whose receive fails at once, as a broken socket would: its endpoint's
    /// driver ends.
    #[derive(Debug)]
    struct Broken;

    #[derive(Debug)]
    struct Writable;

    impl UdpPoller for Writable {
        fn poll_writable(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncUdpSocket for Broken {
        fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
            Box::pin(Writable)
        }
        fn try_send(&self, _: &Transmit<'_>) -> io::Result<()> {
            Ok(())
        }
        fn poll_recv(
            &self,
            _: &mut Context<'_>,
            _: &mut [IoSliceMut<'_>],
            _: &mut [RecvMeta],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::Error::other("broken")))
        }
        fn local_addr(&self) -> io::Result<SocketAddr> {
            Ok("127.0.0.1:9".parse().unwrap())
        }
    }

    #[tokio::test]
    async fn an_endpoint_that_fails_closes_them_all() {
        let cert = Certificate::self_signed(["localhost"]).unwrap();
        let tls = tls::server_config(&[cert]).unwrap();
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
        let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let runtime = quinn::default_runtime().unwrap();
        let healthy =
            crate::socket::endpoint("127.0.0.1:0".parse().unwrap(), Some(config.clone()), 1452)
                .unwrap();
        let broken = quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            Some(config),
            Arc::new(Broken),
            runtime,
        )
        .unwrap();
        let endpoints = vec![healthy.clone(), broken];
        let stats = ServerStats {
            connections: endpoints.iter().map(|_| AtomicU64::new(0)).collect(),
            router: None,
        };
        let closed = Arc::new(AtomicBool::new(false));
        let mut arrivals = Arrivals::new(&endpoints, &stats, &closed);
        let next = tokio::time::timeout(Duration::from_secs(10), arrivals.next(&endpoints, &stats));
        assert!(next.await.expect("accepting ends").is_none());
        assert!(closed.load(Ordering::Relaxed));
        // The healthy endpoint was closed too: it takes no connection.
        assert!(healthy.accept().await.is_none());
    }
}
