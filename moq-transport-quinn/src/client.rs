//! The client endpoint: connect to `moqf://` (raw QUIC) and `https://` (WebTransport) URLs.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use url::{Host, Url};

use crate::connection::{Connection, TransportKind};
use crate::credentials::{Credentials, redact_url};
use crate::error::{ConfigError, ConnectError};
use crate::settings::TransportSettings;
use crate::tls::{self, Trust};
use crate::{quic, webtransport};

/// The port of a URL that names none (WIRE.md §2.3).
pub const DEFAULT_PORT: u16 = 443;

/// How a [`Client`] connects.
///
/// ```
/// use std::time::Duration;
/// use moq_transport_quinn::{ClientConfig, Trust};
///
/// let config = ClientConfig::default()
///     .with_bind("127.0.0.1:0".parse().unwrap())
///     .with_trust(Trust::Fingerprints(vec!["00".repeat(32).parse().unwrap()]))
///     .with_connect_timeout(Duration::from_secs(5));
/// assert_eq!(config.connect_timeout, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The local UDP address. Default `[::]:0` (dual-stack where the system allows; if
    /// IPv6 is unavailable, `0.0.0.0:0` is used instead).
    pub bind: SocketAddr,
    /// Which server certificates to accept. Default: the system trust store.
    pub trust: Trust,
    /// The bound on a whole connect: QUIC and TLS handshake, and for WebTransport the
    /// HTTP/3 CONNECT exchange. Default 10 s.
    pub connect_timeout: Duration,
    /// QUIC transport settings.
    pub transport: TransportSettings,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            trust: Trust::System,
            connect_timeout: Duration::from_secs(10),
            transport: TransportSettings::default(),
        }
    }
}

impl ClientConfig {
    /// Sets [`bind`](Self::bind).
    pub fn with_bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }

    /// Sets [`trust`](Self::trust).
    pub fn with_trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`transport`](Self::transport).
    pub fn with_transport(mut self, transport: TransportSettings) -> Self {
        self.transport = transport;
        self
    }
}

/// A client endpoint: one UDP socket from which any number of connections are made.
///
/// Cheap to clone; clones share the socket.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: quinn::Endpoint,
    /// The transport settings, for each connection's stream credit.
    transport: TransportSettings,
    quic: quinn::ClientConfig,
    webtransport: quinn::ClientConfig,
    timeout: Duration,
}

impl Client {
    /// Binds the socket and prepares TLS. Must be called within a tokio runtime.
    ///
    /// Fails if the socket cannot be bound, or with [`Trust::System`] if the system store
    /// has no usable root.
    pub fn new(config: ClientConfig) -> Result<Self, ConfigError> {
        if matches!(config.trust, Trust::DangerousDisableVerify) {
            tracing::warn!(
                "TLS certificate verification is disabled: anyone can impersonate the server \
                 (use only for local development)"
            );
        }
        let transport = Arc::new(config.transport.to_quinn_growing());
        let quinn_config = |alpn: &[u8]| -> Result<quinn::ClientConfig, ConfigError> {
            let tls = tls::client_config(&config.trust, alpn)?;
            let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
                .map_err(|e| ConfigError::Tls(e.to_string()))?;
            let mut client = quinn::ClientConfig::new(Arc::new(crypto));
            client.transport_config(transport.clone());
            Ok(client)
        };
        let quic = quinn_config(moq_proto::ALPN)?;
        let webtransport = quinn_config(web_transport_quinn::ALPN.as_bytes())?;

        let endpoint =
            match crate::socket::endpoint(config.bind, None, config.transport.udp_payload()) {
                Ok(endpoint) => endpoint,
                // The default `[::]:0` on a host without IPv6.
                Err(_) if config.bind == ClientConfig::default().bind => {
                    let v4 = SocketAddr::from(([0, 0, 0, 0], 0));
                    crate::socket::endpoint(v4, None, config.transport.udp_payload()).map_err(
                        |e| ConfigError::Bind {
                            addr: v4,
                            message: e.to_string(),
                        },
                    )?
                }
                Err(e) => {
                    return Err(ConfigError::Bind {
                        addr: config.bind,
                        message: e.to_string(),
                    });
                }
            };
        Ok(Self {
            endpoint,
            quic,
            webtransport,
            timeout: config.connect_timeout,
            transport: config.transport,
        })
    }

    /// Connects to `moqf://host[:port][/path]` over raw QUIC, or `https://host[:port]/path`
    /// over WebTransport (the path and query go in the CONNECT request). The port defaults
    /// to 443; other schemes are rejected.
    ///
    /// Bounded by the configured connect timeout ([`ConnectError::Timeout`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future abandons the attempt (a half-open connection is
    /// closed).
    pub async fn connect(&self, url: &str) -> Result<Connection, ConnectError> {
        let url = Url::parse(url).map_err(|e| ConnectError::InvalidUrl {
            url: redact_url(url),
            message: e.to_string(),
        })?;
        self.connect_url(&url).await
    }

    /// [`connect`](Self::connect) with a parsed URL.
    ///
    /// # Cancel safety
    ///
    /// As for [`connect`](Self::connect).
    pub async fn connect_url(&self, url: &Url) -> Result<Connection, ConnectError> {
        let target = Target::of(url)?;
        match tokio::time::timeout(self.timeout, self.connect_inner(url, &target)).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Timeout {
                host: target.display,
                timeout: self.timeout,
            }),
        }
    }

    async fn connect_inner(
        &self,
        url: &Url,
        target: &Target<'_>,
    ) -> Result<Connection, ConnectError> {
        let host_text = target.display.as_str();
        let addr = self.resolve(&target.host, target.port, host_text).await?;
        let config = match target.kind {
            TransportKind::Quic => self.quic.clone(),
            TransportKind::WebTransport => self.webtransport.clone(),
        };
        let connecting = self
            .endpoint
            .connect_with(config, addr, &target.server_name)
            .map_err(|e| ConnectError::Quic {
                host: host_text.to_owned(),
                message: e.to_string(),
            })?;
        let conn = connecting
            .await
            .map_err(|e| handshake_error(&e, host_text))?;
        match target.kind {
            // Raw QUIC has no request: the URL's root and token go in the setup message.
            TransportKind::Quic => Ok(Connection::Quic(
                quic::Connection::new(conn)
                    .with_credit(self.transport.stream_credit())
                    .with_setup_extensions(Credentials::from_url(url).to_extensions()),
            )),
            TransportKind::WebTransport => {
                let request = web_transport_quinn::proto::ConnectRequest::new(url.clone());
                match web_transport_quinn::Session::connect(conn.clone(), request).await {
                    Ok(session) => Ok(Connection::WebTransport(
                        webtransport::Connection::with_credit(
                            session,
                            Some(self.transport.stream_credit()),
                        ),
                    )),
                    Err(e) => {
                        let message = match conn.close_reason() {
                            Some(quinn::ConnectionError::ApplicationClosed(close)) => format!(
                                "closed by the server: {}: {:?}",
                                crate::codes::close_code_from_wire(close.error_code),
                                String::from_utf8_lossy(&close.reason)
                            ),
                            _ => e.to_string(),
                        };
                        conn.close(0u32.into(), b"");
                        Err(ConnectError::WebTransport {
                            host: host_text.to_owned(),
                            message,
                        })
                    }
                }
            }
        }
    }

    /// The first address of `host` this endpoint can reach.
    async fn resolve(
        &self,
        host: &Host<&str>,
        port: u16,
        host_text: &str,
    ) -> Result<SocketAddr, ConnectError> {
        let resolve_error = |message: String| ConnectError::Resolve {
            host: host_text.to_owned(),
            message,
        };
        let ipv4_only = self
            .endpoint
            .local_addr()
            .map(|addr| addr.is_ipv4())
            .unwrap_or(false);
        let candidates: Vec<SocketAddr> = match host {
            Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), port)],
            Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), port)],
            Host::Domain(domain) => tokio::net::lookup_host((*domain, port))
                .await
                .map_err(|e| resolve_error(e.to_string()))?
                .collect(),
        };
        candidates
            .into_iter()
            .find(|addr| !ipv4_only || addr.is_ipv4())
            .ok_or_else(|| {
                resolve_error(if ipv4_only {
                    "no IPv4 address (the client is bound to IPv4)".into()
                } else {
                    "no address".into()
                })
            })
    }

    /// The local address of the socket.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Moves this client's connections to a new UDP socket bound at `bind`, as when the
    /// host's network changes: QUIC migrates each of them to the new address (the server
    /// sees packets from a new port and checks the path before it sends much there).
    pub fn rebind(&self, bind: SocketAddr) -> Result<(), ConfigError> {
        crate::socket::bind(bind)
            .and_then(|socket| self.endpoint.rebind(socket))
            .map_err(|e| ConfigError::Bind {
                addr: bind,
                message: e.to_string(),
            })
    }

    /// Closes every connection of this endpoint at once (code 0) and stops it.
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"");
    }

    /// Waits until every connection of this endpoint is closed and its close has been
    /// sent, so the process can exit without leaving the peer to time out.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe; it only observes.
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }
}

/// Where a URL points (WIRE.md §2.3).
#[derive(Debug, PartialEq)]
struct Target<'a> {
    kind: TransportKind,
    host: Host<&'a str>,
    port: u16,
    /// The TLS server name: the host without brackets.
    server_name: String,
    /// The host as written in URLs, for messages.
    display: String,
}

impl<'a> Target<'a> {
    fn of(url: &'a Url) -> Result<Self, ConnectError> {
        let kind = match url.scheme() {
            "moqf" => TransportKind::Quic,
            "https" => TransportKind::WebTransport,
            other => return Err(ConnectError::UnsupportedScheme(other.to_owned())),
        };
        let host = url.host().ok_or_else(|| ConnectError::InvalidUrl {
            url: redact_url(url.as_str()),
            message: "no host".into(),
        })?;
        let (server_name, display) = match &host {
            Host::Domain(domain) => (domain.to_string(), domain.to_string()),
            Host::Ipv4(ip) => (ip.to_string(), ip.to_string()),
            Host::Ipv6(ip) => (ip.to_string(), format!("[{ip}]")),
        };
        Ok(Self {
            kind,
            host,
            port: url.port().unwrap_or(DEFAULT_PORT),
            server_name,
            display,
        })
    }
}

/// Classifies a failed QUIC handshake: TLS alerts are [`ConnectError::Tls`].
fn handshake_error(err: &quinn::ConnectionError, host: &str) -> ConnectError {
    let tls = match err {
        quinn::ConnectionError::TransportError(e) => is_crypto(e.code).then(|| e.to_string()),
        quinn::ConnectionError::ConnectionClosed(close) => {
            is_crypto(close.error_code).then(|| close.to_string())
        }
        _ => None,
    };
    match tls {
        Some(message) => ConnectError::Tls {
            host: host.to_owned(),
            message,
        },
        None => ConnectError::Quic {
            host: host.to_owned(),
            message: err.to_string(),
        },
    }
}

/// Whether a QUIC transport error code carries a TLS alert (RFC 9001 §4.8: 0x0100-0x01ff).
fn is_crypto(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Result<(TransportKind, String, u16), ConnectError> {
        let url = Url::parse(url).unwrap();
        let target = Target::of(&url)?;
        Ok((target.kind, target.server_name, target.port))
    }

    #[test]
    fn schemes_hosts_and_default_port() {
        use TransportKind::*;
        assert_eq!(
            target("moqf://relay.example/").unwrap(),
            (Quic, "relay.example".into(), 443)
        );
        assert_eq!(
            target("moqf://relay.example:4443").unwrap(),
            (Quic, "relay.example".into(), 4443)
        );
        assert_eq!(
            target("https://relay.example/room?x=1").unwrap(),
            (WebTransport, "relay.example".into(), 443)
        );
        assert_eq!(
            target("https://127.0.0.1:8443/").unwrap(),
            (WebTransport, "127.0.0.1".into(), 8443)
        );
        assert_eq!(
            target("moqf://[::1]:4443/").unwrap(),
            (Quic, "::1".into(), 4443)
        );
        for bad in [
            "http://relay.example/",
            "wss://relay.example/",
            "moq-lite://x/",
        ] {
            assert!(
                matches!(target(bad), Err(ConnectError::UnsupportedScheme(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            target("moqf:no-host"),
            Err(ConnectError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn tls_alerts_are_tls_errors() {
        assert!(is_crypto(quinn::TransportErrorCode::crypto(42)));
        assert!(!is_crypto(quinn::TransportErrorCode::PROTOCOL_VIOLATION));
    }
}
