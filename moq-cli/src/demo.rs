//! `moq demo`: a relay, a clock publisher and a clock subscriber in one process.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use moq_model::Path;
use moq_proto::ErrorCode;
use moq_relay::{Relay, RelayConfig};
use moq_transport_quinn::{Certificate, Server, ServerConfig};

use crate::client::ClientArgs;
use crate::clock;

/// Runs until Ctrl-C (or until a part fails).
pub(crate) async fn run(listen: SocketAddr, client: &ClientArgs) -> anyhow::Result<()> {
    let cert = Certificate::self_signed(["localhost", "127.0.0.1", "::1"])
        .context("generating a certificate")?;
    let fingerprint = cert.fingerprint().to_string();
    let server = Server::new(ServerConfig::new(vec![cert]).with_bind(listen))
        .with_context(|| format!("starting the relay on {listen}"))?;
    let local = server.local_addr().context("reading the relay's address")?;
    let relay = Relay::new(RelayConfig::default());
    let serving = relay.clone();
    let relay_task = tokio::spawn(async move { serving.serve(server).await });

    let host = match local {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    };
    let quic_url = format!("moqf://{host}:{}/", local.port());
    let web_url = format!("https://{host}:{}/", local.port());
    eprintln!("moq demo: a relay on {local} (UDP) with a clock publisher and subscriber");
    eprintln!("  join it:      {quic_url}  or  {web_url}");
    eprintln!("  fingerprint:  {fingerprint}");
    eprintln!("  e.g.          moq --fingerprint {fingerprint} clock subscribe {quic_url}");
    eprintln!("  Ctrl-C stops it.");

    // The demo's own clients pin the generated certificate.
    let mut pinned = client.clone();
    pinned.fingerprint = vec![fingerprint];
    pinned.tls_disable_verify = false;
    let path = Path::from(["clock"]);

    let publisher = pinned.connect(&quic_url).await.context("clock publisher")?;
    let published = clock::publish(&publisher.session, path.clone());
    let subscribed = async {
        // Subscribe once the relay knows the publisher's path.
        while relay.origins().route(&path).is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let subscriber = pinned.connect(&web_url).await.context("clock subscriber")?;
        let result = clock::subscribe(&subscriber.session, path.clone()).await;
        subscriber.finish().await;
        result
    };
    let result = tokio::select! {
        result = published => result.and(Err(anyhow!("the clock publisher stopped"))),
        result = subscribed => result.and(Err(anyhow!("the clock subscriber stopped"))),
        _ = crate::shutdown_signal() => Ok(()),
    };
    publisher.finish().await;
    relay.shutdown(ErrorCode::CANCEL);
    let _ = relay_task.await;
    let _ = tokio::time::timeout(Duration::from_secs(2), relay.idle()).await;
    result
}
