//! Connecting to a relay: the client flags every subcommand shares, and errors that say
//! what to do.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;
use moq_model::Path;
use moq_session::Session;
use moq_transport_quinn::{
    Client, ClientConfig, Congestion, ConnectError, Fingerprint, TransportSettings, Trust, Url,
    redact_url, with_jwt,
};

/// Client flags shared by every subcommand that connects.
#[derive(Args, Debug, Clone)]
pub(crate) struct ClientArgs {
    /// The local UDP address to send from.
    #[arg(long, global = true, default_value = "[::]:0")]
    pub bind: SocketAddr,

    /// Trust these root certificates (PEM) instead of the system's.
    #[arg(long = "tls-root", global = true)]
    pub tls_root: Vec<PathBuf>,

    /// Accept any server certificate (local development only).
    #[arg(long = "tls-disable-verify", global = true)]
    pub tls_disable_verify: bool,

    /// Accept exactly the certificate with this SHA-256 fingerprint (64 hex digits, as the
    /// relay prints it); repeatable.
    #[arg(long, global = true, value_name = "HEX")]
    pub fingerprint: Vec<String>,

    /// Give up connecting after this many seconds.
    #[arg(long, global = true, default_value_t = 10.0, value_name = "SECS")]
    pub timeout: f64,

    /// Largest UDP datagram payload to send and accept, in bytes (1200 to 6550); MTU
    /// discovery probes up to it. 1452 stops at Ethernet's size.
    #[arg(long, global = true, value_name = "BYTES",
          default_value_t = TransportSettings::DEFAULT_MAX_UDP_PAYLOAD,
          value_parser = clap::value_parser!(u16).range(1200..=TransportSettings::MAX_UDP_PAYLOAD_LIMIT as i64))]
    pub max_udp_payload: u16,

    /// Congestion controller of the connections: bbr or cubic.
    #[arg(long, global = true, value_name = "ALGORITHM", default_value_t = Congestion::Bbr)]
    pub congestion: Congestion,

    /// The access token to present (instead of `?jwt=TOKEN` in the URL, which it
    /// replaces); also read from MOQ_JWT.
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "MOQ_JWT",
        hide_env_values = true
    )]
    pub jwt: Option<String>,
}

impl ClientArgs {
    fn trust(&self) -> anyhow::Result<Trust> {
        if !self.fingerprint.is_empty() {
            let pins = self
                .fingerprint
                .iter()
                .map(|hex| {
                    hex.parse::<Fingerprint>().map_err(|_| {
                        anyhow!("--fingerprint {hex:?} is not 64 hex digits (a SHA-256)")
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            return Ok(Trust::Fingerprints(pins));
        }
        if self.tls_disable_verify {
            return Ok(Trust::DangerousDisableVerify);
        }
        if !self.tls_root.is_empty() {
            return Trust::roots_from_pem_files(&self.tls_root).context("--tls-root");
        }
        Ok(Trust::System)
    }

    /// The QUIC settings these flags ask for.
    pub(crate) fn transport(&self) -> TransportSettings {
        let mut transport = TransportSettings::default();
        transport.max_udp_payload = self.max_udp_payload;
        transport.congestion = self.congestion;
        transport
    }

    /// `--timeout`, within 50 ms and an hour.
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout.clamp(0.05, 3600.0))
    }

    /// The client endpoint configuration these flags ask for (bind, trust, timeout, QUIC
    /// settings).
    pub(crate) fn config(&self) -> anyhow::Result<ClientConfig> {
        Ok(ClientConfig::default()
            .with_bind(self.bind)
            .with_trust(self.trust()?)
            .with_connect_timeout(self.timeout())
            .with_transport(self.transport()))
    }

    /// `url` with the `--jwt` token in its query, if one was given.
    pub(crate) fn url(&self, url: &str) -> anyhow::Result<Url> {
        let parsed = Url::parse(url).map_err(|e| {
            anyhow!(
                "invalid URL {}: {e} (expected moqf://HOST:PORT/ for raw QUIC or \
                 https://HOST:PORT/ for WebTransport)",
                redact_url(url)
            )
        })?;
        Ok(match self.jwt.as_deref().filter(|jwt| !jwt.is_empty()) {
            Some(jwt) => with_jwt(&parsed, jwt),
            None => parsed,
        })
    }

    /// Connects to `url` (with the `--jwt` token, if any) and runs the session handshake;
    /// the driver runs on its own task.
    pub(crate) async fn connect(&self, url: &str) -> anyhow::Result<Connected> {
        let url = self.url(url)?;
        let shown = redact_url(url.as_str());
        let client = Client::new(self.config()?).map_err(|e| anyhow!("{e}"))?;
        let conn = client.connect_url(&url).await.map_err(explain)?;
        let quic = conn.quic().clone();
        let (session, driver) = tokio::time::timeout(self.timeout(), Session::connect(conn))
            .await
            .map_err(|_| {
                anyhow!(
                    "{shown} accepted the connection but not the MoQ handshake in time: is it a \
                     moqf-02 relay?"
                )
            })?
            .map_err(|e| anyhow!("MoQ handshake with {shown} failed: {}", session_error(&e)))?;
        let driver = tokio::spawn(driver);
        Ok(Connected {
            session,
            client,
            driver,
            quic,
        })
    }
}

/// A session and the endpoint it runs on.
pub(crate) struct Connected {
    pub session: Session,
    client: Client,
    driver: tokio::task::JoinHandle<Result<(), moq_session::Error>>,
    quic: moq_transport_quinn::quinn::Connection,
}

impl Connected {
    /// A few round trips of the connection (at least 50 ms): time enough for the relay to
    /// answer what we just sent.
    pub(crate) fn round_trips(&self) -> Duration {
        (self.quic.rtt() * 3).max(Duration::from_millis(50))
    }

    /// Closes the session and waits (briefly) until the close has been sent, so the relay
    /// does not have to wait for an idle timeout.
    pub(crate) async fn finish(self) {
        self.session.close(moq_proto::ErrorCode::CANCEL);
        drop(self.session);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.driver).await;
        self.client.close();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.client.wait_idle()).await;
    }
}

/// One line that says what went wrong and what to do.
fn explain(err: ConnectError) -> anyhow::Error {
    match err {
        ConnectError::InvalidUrl { .. } | ConnectError::UnsupportedScheme(_) => anyhow!(
            "{err} (expected moqf://HOST:PORT/ for raw QUIC or https://HOST:PORT/ for WebTransport)"
        ),
        ConnectError::Timeout { .. } => anyhow!(
            "{err}: is a relay running at that host and port? (check the URL, or raise --timeout)"
        ),
        ConnectError::Tls { .. } => anyhow!(
            "{err}: pass --fingerprint HEX (the relay prints it), --tls-root FILE, or \
             --tls-disable-verify for a local test relay"
        ),
        other => anyhow!("{other}"),
    }
}

/// What to do about a refusal by access control.
const TOKEN_HINT: &str = "the relay wants a token that grants this: pass --jwt TOKEN, \
                          MOQ_JWT, or ?jwt=TOKEN in the URL (docs/auth.md)";

/// One line for a session that ended: a refusal by access control (code 16) says so and
/// what to do; anything else as it is.
pub(crate) fn session_error(err: &moq_session::Error) -> String {
    use moq_session::transport::TransportError;
    match err {
        moq_session::Error::Transport(TransportError::ClosedByPeer { code, reason })
            if *code == moq_proto::ErrorCode::UNAUTHORIZED =>
        {
            format!("refused by the relay: {reason} ({code}; {TOKEN_HINT})")
        }
        other => other.to_string(),
    }
}

/// `--path` values: each is split on `/`, and repeated values are joined, so
/// `--path room/clock` and `--path room --path clock` name the same path.
pub(crate) fn parse_path(parts: &[String]) -> Path {
    parts
        .iter()
        .flat_map(|part| part.split('/'))
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One line for a track that failed.
pub(crate) fn track_error(err: moq_model::Error, path: &Path) -> anyhow::Error {
    match err {
        moq_model::Error::NotFound => anyhow!(
            "no track at path \"{path}\" on that relay: is a publisher running? (paths are exact \
             and case-sensitive, and relative to the URL's path)"
        ),
        moq_model::Error::Unauthorized => anyhow!(
            "not allowed to subscribe to \"{path}\": {TOKEN_HINT} (its get claim must cover the \
             path)"
        ),
        other => anyhow!("track \"{path}\" failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_on_slashes() {
        let path = parse_path(&["room/alice".into(), "clock".into()]);
        assert_eq!(path, Path::from(["room", "alice", "clock"]));
        assert_eq!(parse_path(&["clock".into()]), Path::from(["clock"]));
    }
}
