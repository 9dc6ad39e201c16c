//! A MoQ Transfork (`moqf-02`) relay, as a library and as the `moq-relay` binary.
//!
//! Sessions arrive over raw QUIC (`moqf://`, ALPN `moqf-02`) and WebTransport (`https://`,
//! ALPN `h3`) on one UDP port. Every session may publish and subscribe:
//!
//! * **Announcements.** The relay follows each session's announcements (an announce
//!   stream with the empty prefix) and keeps a table path → announcing sessions, the most
//!   recent last ([`Origins`]). Every session is told, through its own announce streams,
//!   about every path any session announces, under whatever prefix it asked for; when
//!   the last announcer of a path ends it (or its session goes), the path is reported
//!   ended.
//! * **Routing.** A subscription to a path a session does not publish itself goes to the
//!   relay's router, which subscribes at the most recent announcer of the path (or of its
//!   longest announced prefix) and serves that track. The upstream session shares one
//!   subscription among all identical requests, the model's cache fans it out to every
//!   downstream subscriber and serves late joiners the latest group from its first frame,
//!   and each downstream session sends with its own subscriber's priority and group order.
//!   When the last downstream subscriber leaves, the upstream subscription ends.
//! * **Info.** Every downstream subscriber's Info describes the track as the publisher sees
//!   it: for the first subscriber of a track the relay asks the announcer for its Info,
//!   subscribes upstream with the publisher's priority, order and expiry, and answers once
//!   the latest group has arrived (bounded by [`INFO_TIMEOUT`]); a path the announcer does
//!   not know is refused with NotFound (13).
//! * **No leftovers.** A session's routes, announcements and subscriptions go with it.
//! * **Clusters.** Several relays behave as one ([`cluster`]): each writes its own paths
//!   into a shared registry (etcd, feature `etcd`) and routes the others' paths over
//!   `moqf-02` sessions to the relays that serve them.
//!
//! ```text
//!  publisher session ──announce──▶ Origins (path → sessions) ──announce──▶ every session
//!        ▲                              │
//!        └──── subscribe (shared) ◀── router ◀── subscribe ── subscriber sessions
//! ```
//!
//! # Example
//!
//! ```no_run
//! use moq_relay::{Relay, RelayConfig};
//! use moq_transport_quinn::{Certificate, Server, ServerConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cert = Certificate::self_signed(["localhost"])?;
//! let server = Server::new(ServerConfig::new(vec![cert]).with_bind("[::]:4443".parse()?))?;
//! let relay = Relay::new(RelayConfig::default());
//! relay.serve(server).await;
//! # Ok(())
//! # }
//! ```
//!
//! `docs/relay.md` in the repository documents the binary's flags and behaviour.
#![forbid(unsafe_code)]

mod auth;
pub mod cluster;
pub mod http;
mod limits;
pub mod metrics;
mod origins;
mod relay;

pub use auth::{Access, AuthConfig, Refusal};
pub use limits::RelayLimits;
pub use origins::{OriginRegistry, Origins, Route, SessionId};
pub use relay::{CLOSE_TIMEOUT, HANDSHAKE_TIMEOUT, INFO_TIMEOUT, Relay, RelayConfig, RelayStats};

/// Resolves on Ctrl-C, or on SIGTERM on Unix: what the relay binary, and the `moq` tool's
/// long-running commands, wait for before closing their sessions cleanly.
///
/// # Cancel safety
///
/// Cancel-safe: dropping the future only stops waiting. Once called, tokio keeps its signal
/// handlers installed for the life of the process, so Ctrl-C no longer ends the process by
/// itself; whoever calls this must exit when it resolves.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(term) => { term.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
