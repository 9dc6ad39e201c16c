//! MoQ Transfork over QUIC: the [`moq_session::transport`] traits implemented for raw QUIC
//! ([quinn]) and WebTransport over HTTP/3 ([web-transport-quinn]), and the client and server
//! endpoints that make such connections, with TLS.
//!
//! [quinn]: https://docs.rs/quinn
//! [web-transport-quinn]: https://docs.rs/web-transport-quinn
//!
//! ```text
//!   application (relay, cli)       Client::connect(url) / Server::accept()
//!        |                                    |  Connection (either transport)
//!   moq-session (protocol)         generic over moq_session::transport::Connection
//!        |  ErrorCode (plain codes)
//!   moq-transport-quinn            quic::Connection        webtransport::Connection
//!        |  wire codes (WIRE.md §2.4)       |                      |  web-transport-quinn
//!   quinn (QUIC + rustls/ring)     ALPN moqf-02             ALPN h3 (HTTP/3 CONNECT)
//! ```
//!
//! # What it does
//!
//! * **Two transports, one type.** `moqf://host:port/` URLs use raw QUIC with ALPN
//!   `moqf-02` (WIRE.md §2.1); `https://host:port/path` URLs use WebTransport with ALPN
//!   `h3` (WIRE.md §2.2), the path and query travelling in the CONNECT request. Both come
//!   back as one [`Connection`] enum implementing the session's transport trait, so an
//!   application handles either URL with one code path. The concrete types are in
//!   [`quic`] and [`webtransport`].
//! * **One server port for both.** A [`Server`] offers both ALPNs; each client's choice
//!   picks the transport. [`Server::accept`] yields a [`Request`] carrying the transport
//!   kind and (for WebTransport) the URL, to accept or reject.
//! * **Codes are translated here, once.** Stream resets and STOP_SENDING carry the
//!   WebTransport-mapped code on both transports; the connection close carries the plain
//!   code on raw QUIC and the mapped one on WebTransport; received codes are mapped back,
//!   and both forms are accepted for a close (WIRE.md §2.4, `docs/transport.md`).
//! * **TLS 1.3 only**, with rustls and the *ring* provider. Clients trust the system store,
//!   PEM roots, pinned SHA-256 fingerprints, or, for local development only, anything
//!   ([`Trust`]). Servers load PEM certificate/key pairs, chosen by SNI, or generate a
//!   short-lived self-signed certificate whose [`Fingerprint`] browsers can pin
//!   ([`Certificate`]).
//! * **QUIC settings sized for a stream per group** ([`TransportSettings`]): 1024
//!   concurrent unidirectional streams, windows for 16 MiB frames, BBR, 10 s idle timeout
//!   with a 4 s keep-alive, and MTU discovery up to 6000-byte datagrams where the path
//!   carries them (loopback, jumbo frames; Ethernet paths stay near 1452).
//!
//! # What it does not do
//!
//! No MoQ protocol logic (that is `moq-session`), no HTTP/3 beyond the WebTransport
//! CONNECT, no datagrams, no 0-RTT, no client certificates. Everything runs on tokio.
//!
//! # Example
//!
//! A server with a self-signed certificate, and a client that pins it, over either
//! transport (the network parts are not run as a doc test):
//!
//! ```no_run
//! use bytes::Bytes;
//! use moq_session::transport::{Connection as _, RecvStream as _, SendStream as _};
//! use moq_transport_quinn::{Certificate, Client, ClientConfig, Server, ServerConfig, Trust};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Server: one UDP port, both transports.
//! let cert = Certificate::self_signed(["localhost"])?;
//! println!("pin this certificate: {}", cert.fingerprint());
//! let mut server = Server::new(ServerConfig::new(vec![cert]).with_bind("[::]:4443".parse()?))?;
//! let fingerprints = server.fingerprints().to_vec();
//! tokio::spawn(async move {
//!     while let Some(request) = server.accept().await {
//!         println!("{} session for {:?}", request.kind(), request.url());
//!         let conn = request.accept().await.unwrap();
//!         tokio::spawn(async move {
//!             // Echo one bidirectional stream.
//!             let (mut send, mut recv) = conn.accept_bi().await?;
//!             while let Some(chunk) = recv.read().await? {
//!                 send.write(chunk).await?;
//!             }
//!             send.finish()?;
//!             conn.closed().await;
//!             Ok::<_, moq_session::transport::TransportError>(())
//!         });
//!     }
//! });
//!
//! // Client: the same code for raw QUIC (moqf://) and WebTransport (https://).
//! let client = Client::new(ClientConfig::default().with_trust(Trust::Fingerprints(fingerprints)))?;
//! for url in ["moqf://localhost:4443/", "https://localhost:4443/some/path?x=1"] {
//!     let conn = client.connect(url).await?;
//!     let (mut send, mut recv) = conn.open_bi().await?;
//!     send.write(Bytes::from_static(b"hello")).await?;
//!     send.finish()?;
//!     let echoed = recv.read().await?;
//!     assert_eq!(echoed.as_deref(), Some(&b"hello"[..]));
//!     conn.close(moq_proto::ErrorCode::CANCEL, "done");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! See `docs/transport.md` in the repository for URLs, TLS options, certificates and
//! fingerprints, the QUIC settings and why, and the code mapping table.
#![forbid(unsafe_code)]

mod client;
mod codes;
mod connection;
mod credentials;
mod credit;
mod error;
pub mod quic;
mod server;
mod settings;
mod socket;
mod spread;
mod tls;
pub mod webtransport;

pub use client::{Client, ClientConfig, DEFAULT_PORT};
pub use connection::{Connection, RecvStream, SendStream, TransportKind};
pub use credentials::{
    Credentials, CredentialsError, JWT_QUERY, redact_url, token_safe_log_filter, with_jwt,
};
pub use error::{AcceptError, ConfigError, ConnectError};
pub use server::{Request, Server, ServerConfig, ServerStats};
pub use settings::{Congestion, TransportSettings};
pub use tls::{Certificate, Fingerprint, SELF_SIGNED_VALIDITY, Trust};

/// Re-exported so applications can reach quinn's own types (statistics, addresses).
pub use quinn;
/// Re-exported so applications can name the URL type of [`Client::connect_url`] and
/// [`Request::url`].
pub use url::Url;
