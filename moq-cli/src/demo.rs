//! `moq demo`: a relay, a clock publisher and a clock subscriber in one process, and the
//! browser page over HTTP.

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use moq_model::Path;
use moq_proto::ErrorCode;
use moq_relay::{Relay, RelayConfig, http};
use moq_transport_quinn::{Certificate, Server, ServerConfig};
use tokio::net::TcpListener;

use crate::client::ClientArgs;
use crate::clock;

/// Where the built page is looked for without `--web`: under the current directory, then in
/// the workspace the binary was built from.
const WEB_DEFAULTS: [&str; 2] = [
    "moq-web/www",
    concat!(env!("CARGO_MANIFEST_DIR"), "/../moq-web/www"),
];

/// Where the page is: it is committed, built, in the repository (`npm run build` in moq-web
/// remakes it, and scripts/test.sh checks that the committed files are what it makes).
const WEB_WHERE: &str = "the page is moq-web/www in the repository; pass --web DIR";

/// The page's directory: `web`, or the first default that holds an `index.html`.
fn web_root(web: Option<PathBuf>) -> anyhow::Result<Option<PathBuf>> {
    if let Some(dir) = web {
        if !dir.join("index.html").is_file() {
            bail!("--web {}: no index.html there ({WEB_WHERE})", dir.display());
        }
        return Ok(Some(dir));
    }
    Ok(WEB_DEFAULTS
        .iter()
        .map(FsPath::new)
        .find(|dir| dir.join("index.html").is_file())
        .map(|dir| dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())))
}

/// How many ports a demo on port 0 tries for one whose TCP side is free too.
const PORT_ATTEMPTS: usize = 20;

/// The relay's UDP server and, on the same port number, the TCP listener for HTTP (`None`
/// if that TCP port is taken on a port the user chose).
fn bind(listen: SocketAddr) -> anyhow::Result<(Server, String, Option<TcpListener>)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let cert = Certificate::self_signed(["localhost", "127.0.0.1", "::1"])
            .context("generating a certificate")?;
        let fingerprint = cert.fingerprint().to_string();
        let server = Server::new(ServerConfig::new(vec![cert]).with_bind(listen))
            .with_context(|| format!("starting the relay on {listen}"))?;
        let local = server.local_addr().context("reading the relay's address")?;
        match std::net::TcpListener::bind(local).and_then(|tcp| {
            tcp.set_nonblocking(true)?;
            TcpListener::from_std(tcp)
        }) {
            Ok(tcp) => return Ok((server, fingerprint, Some(tcp))),
            // A free UDP port whose TCP twin is taken: try another one.
            Err(_) if listen.port() == 0 && attempt < PORT_ATTEMPTS => continue,
            Err(err) => {
                eprintln!("moq demo: no HTTP (TCP {local}: {err})");
                return Ok((server, fingerprint, None));
            }
        }
    }
}

/// Runs until Ctrl-C (or until a part fails).
pub(crate) async fn run(
    listen: SocketAddr,
    web: Option<PathBuf>,
    client: &ClientArgs,
) -> anyhow::Result<()> {
    let web = web_root(web)?;
    let (server, fingerprint, tcp) = bind(listen)?;
    let local = server.local_addr().context("reading the relay's address")?;
    let relay = Relay::new(RelayConfig::default());
    let serving = relay.clone();
    let relay_task = tokio::spawn(async move { serving.serve(server).await });
    // The page, /info.json and /fingerprint over plain HTTP at the relay's port number.
    let http_task = tcp.map(|tcp| {
        let config =
            http::HttpConfig::new(fingerprint.clone(), local.port()).with_web_root(web.clone());
        tokio::spawn(http::serve(tcp, config))
    });

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
    if http_task.is_some() {
        let page = format!("http://{host}:{}/", local.port());
        match &web {
            Some(dir) => {
                eprintln!(
                    "  web page:     open {page} in Chromium ({})",
                    dir.display()
                );
                // The page plays a broadcast given as ?play=NAME (README.md has a whole command).
                eprintln!(
                    "  media:        ffmpeg ... | moq --fingerprint {fingerprint} media publish \
                     {quic_url} --path live/test  then  {page}?play=live/test"
                );
            }
            None => eprintln!("  web page:     not found ({WEB_WHERE}; {page}info.json is served)"),
        }
    }
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
        _ = moq_relay::shutdown_signal() => Ok(()),
    };
    publisher.finish().await;
    if let Some(task) = http_task {
        task.abort();
    }
    relay.shutdown(ErrorCode::CANCEL);
    let _ = relay_task.await;
    let _ = tokio::time::timeout(Duration::from_secs(2), relay.idle()).await;
    result
}
