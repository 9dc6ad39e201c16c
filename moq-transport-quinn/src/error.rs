//! Errors of setting up endpoints and connections. Errors of an established connection are
//! [`moq_session::transport::TransportError`]s.

use std::path::PathBuf;
use std::time::Duration;

/// Building a client or server configuration failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The system trust store yielded no usable certificate.
    #[error(
        "no trust roots could be loaded from the system store (install ca-certificates, or \
         configure roots or fingerprints){}",
        if .0.is_empty() { String::new() } else { format!(": {}", .0) }
    )]
    NoSystemRoots(String),
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A fingerprint is not 64 hex digits.
    #[error("invalid certificate fingerprint {0:?}: expected 64 hex digits (SHA-256)")]
    InvalidFingerprint(String),
    /// The TLS configuration is unusable (bad key, empty chain, ...).
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// [`ServerConfig::endpoints`](crate::ServerConfig::endpoints) is 0 or above 256.
    #[error("{0} endpoints: a server has 1 to 256")]
    Endpoints(usize),
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP socket {addr}: {message}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        message: String,
    },
}

/// Connecting to a server failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL does not parse or has no host.
    #[error("invalid URL {url:?}: {message}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The URL scheme is neither `moqf` (raw QUIC) nor `https` (WebTransport).
    #[error(
        "unsupported URL scheme {0:?}: use moqf://host:port/ for raw QUIC or \
         https://host:port/path for WebTransport"
    )]
    UnsupportedScheme(String),
    /// The host name did not resolve to an address this client can reach.
    #[error("cannot resolve {host}: {message}")]
    Resolve {
        /// The host name.
        host: String,
        /// Why.
        message: String,
    },
    /// The TLS handshake failed: the certificate was not trusted, or no common parameters.
    #[error("TLS handshake with {host} failed: {message}")]
    Tls {
        /// The host name.
        host: String,
        /// What the TLS stack reported.
        message: String,
    },
    /// The QUIC connection failed (refused, reset, timed out at the QUIC level, ...).
    #[error("QUIC connection to {host} failed: {message}")]
    Quic {
        /// The host name.
        host: String,
        /// What quinn reported.
        message: String,
    },
    /// The WebTransport (HTTP/3 CONNECT) handshake failed or was rejected.
    #[error("WebTransport handshake with {host} failed: {message}")]
    WebTransport {
        /// The host name.
        host: String,
        /// What went wrong, e.g. the HTTP status of a rejection.
        message: String,
    },
    /// The whole connect (QUIC, TLS and for WebTransport the CONNECT request) took longer
    /// than the configured timeout.
    #[error("connecting to {host} timed out after {timeout:?}")]
    Timeout {
        /// The host name.
        host: String,
        /// The configured bound.
        timeout: Duration,
    },
}

/// Accepting a session on the server failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The WebTransport CONNECT exchange failed.
    #[error("WebTransport handshake failed: {0}")]
    WebTransport(String),
}
