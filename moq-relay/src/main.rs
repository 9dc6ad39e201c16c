//! The `moq-relay` binary: see `docs/relay.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use moq_auth::KeySet;
use moq_model::Path;
use moq_proto::ErrorCode;
use moq_relay::{AuthConfig, Relay, RelayConfig, RelayLimits, http};
use moq_session::SessionConfig;
use moq_transport_quinn::{
    Certificate, Congestion, Server, ServerConfig, TransportSettings, token_safe_log_filter,
};
use tracing_subscriber::EnvFilter;

/// jemalloc, whose background thread returns freed memory to the system after a burst.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Starts jemalloc's background thread, which purges freed pages on a timer (by default
/// allocations alone trigger purging, so an idle relay kept its peak).
fn hand_memory_back() {
    #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
    if let Err(err) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(%err, "jemalloc's background thread did not start: freed memory is returned only as the relay allocates");
    }
}

/// A MoQ Transfork (moqf-02) relay over raw QUIC and WebTransport on one UDP port.
#[derive(Parser, Debug)]
#[command(name = "moq-relay", version)]
struct Args {
    /// Listen on this UDP address (and TCP, with --dev or --web: the HTTP listener).
    #[arg(long, default_value = "[::]:4443")]
    bind: SocketAddr,

    /// A certificate chain, PEM; repeat with --tls-key for each pair (chosen by SNI).
    #[arg(long = "tls-cert")]
    tls_cert: Vec<PathBuf>,

    /// The private key of the --tls-cert at the same position, PEM.
    #[arg(long = "tls-key")]
    tls_key: Vec<PathBuf>,

    /// Generate a self-signed certificate for these host names (comma-separated).
    #[arg(long = "tls-self-sign", value_delimiter = ',')]
    tls_self_sign: Vec<String>,

    /// Trust these roots (PEM) for the links to other relays of a cluster (repeatable;
    /// default: the system's trust store).
    #[arg(long = "tls-root")]
    tls_root: Vec<PathBuf>,

    /// Do not verify the certificates of other relays of a cluster (local development
    /// only: anyone on the path can impersonate them).
    #[arg(long = "tls-disable-verify")]
    tls_disable_verify: bool,

    /// Serve GET /fingerprint (and /info.json) over plain HTTP on TCP at the same port;
    /// without any certificate flag, also self-sign for localhost, 127.0.0.1 and ::1.
    #[arg(long)]
    dev: bool,

    /// Serve the static files of this directory over the same HTTP listener.
    #[arg(long, value_name = "DIR")]
    web: Option<PathBuf>,

    /// Serve GET /metrics (Prometheus text format) and GET /healthz over plain HTTP on
    /// this TCP address, e.g. 127.0.0.1:9090, kept apart from the public port. The HTTP
    /// listener of --dev or --web then serves /healthz only; without this flag it serves
    /// both.
    #[arg(long, value_name = "ADDR")]
    metrics_bind: Option<SocketAddr>,

    /// Seconds between the one-line stats logs (0: never).
    #[arg(long, default_value_t = 10)]
    stats_interval: u64,

    /// Subscriptions each peer may have open with the relay at once.
    #[arg(long, default_value_t = SessionConfig::DEFAULT_MAX_SUBSCRIPTIONS)]
    max_subscriptions: usize,

    /// Sessions at once, handshaking ones included; one more is closed with code 11.
    #[arg(long, default_value_t = RelayLimits::DEFAULT_MAX_SESSIONS)]
    max_sessions: usize,

    /// Sessions at once from one IP address.
    #[arg(long, value_name = "N", default_value_t = RelayLimits::DEFAULT_MAX_SESSIONS_PER_IP)]
    max_sessions_per_ip: usize,

    /// Distinct paths announced across all sessions; a session that would pass it is closed
    /// with code 11.
    #[arg(long, value_name = "N", default_value_t = RelayLimits::DEFAULT_MAX_ANNOUNCED)]
    max_announced: usize,

    /// Subscriptions served across all sessions; one more is refused with code 11.
    #[arg(long, value_name = "N", default_value_t = RelayLimits::DEFAULT_MAX_SUBSCRIPTIONS)]
    max_total_subscriptions: usize,

    /// Payload bytes held for all forwarded tracks together (cache and groups in flight); a
    /// group whose next frame would pass it is aborted (code 11 to its publisher).
    #[arg(long, value_name = "BYTES", default_value_t = RelayLimits::DEFAULT_MAX_MEMORY)]
    max_memory: usize,

    /// Payload bytes one group may hold; past it the group is aborted (code 11).
    #[arg(long, value_name = "BYTES", default_value_t = RelayLimits::DEFAULT_MAX_GROUP_BYTES)]
    max_group_bytes: usize,

    /// Group streams in flight per subscription.
    #[arg(long, default_value_t = SessionConfig::DEFAULT_MAX_GROUP_STREAMS)]
    max_group_streams: usize,

    /// Largest UDP datagram payload to send and accept, in bytes (1200 to 6550). MTU
    /// discovery starts at 1200 and probes up to it, so packets only grow as far as the path
    /// carries; 1452 stops at Ethernet's size without probing further.
    #[arg(long, value_name = "BYTES", default_value_t = TransportSettings::DEFAULT_MAX_UDP_PAYLOAD,
          value_parser = clap::value_parser!(u16).range(1200..=TransportSettings::MAX_UDP_PAYLOAD_LIMIT as i64))]
    max_udp_payload: u16,

    /// UDP sockets sharing the port, each with its own QUIC endpoint (Linux, SO_REUSEPORT;
    /// 1 to 256). An endpoint receives every packet of its clients on one task, so one
    /// endpoint receives on one core at a time; with several the kernel spreads clients
    /// over them by address, and a client whose address changes stays connected. Worth the
    /// number of cores on a relay whose receiving outgrows a core (docs/relay.md, "Cores").
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    endpoints: u16,

    /// Verify access tokens with the keys in FILE or DIR: a JWK, a JWK Set, or a
    /// directory of {kid}.jwk files (repeatable). Sessions then need a token (`?jwt=` in
    /// the URL) unless a public prefix covers their path. See docs/auth.md.
    #[arg(long = "auth-key", value_name = "FILE|DIR")]
    auth_key: Vec<PathBuf>,

    /// Anyone may publish and subscribe under PREFIX without a token (repeatable; "" is
    /// everything).
    #[arg(long = "auth-public", value_name = "PREFIX")]
    auth_public: Vec<String>,

    /// Anyone may subscribe under PREFIX without a token (repeatable).
    #[arg(long = "auth-public-subscribe", value_name = "PREFIX")]
    auth_public_subscribe: Vec<String>,

    /// Congestion controller of every connection: bbr or cubic.
    #[arg(long, value_name = "ALGORITHM", default_value_t = Congestion::Bbr)]
    congestion: Congestion,

    /// More logging (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Less logging (-q: warnings and errors only).
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    quiet: u8,

    #[cfg(feature = "etcd")]
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Clustering over etcd (docs/cluster.md).
#[cfg(feature = "etcd")]
#[derive(clap::Args, Debug)]
struct ClusterArgs {
    /// Join a cluster whose registry is etcd at this URL, e.g. http://127.0.0.1:2379, or
    /// https://... with --cluster-etcd-ca (comma-separated or repeated for several
    /// endpoints). Needs --cluster-node.
    #[arg(
        long = "cluster-etcd",
        value_name = "URL",
        value_delimiter = ',',
        requires = "node"
    )]
    etcd: Vec<String>,

    /// For https:// etcd URLs: the PEM certificate(s) of the authority that signed etcd's.
    #[arg(long = "cluster-etcd-ca", value_name = "PEM", requires = "etcd")]
    etcd_ca: Option<PathBuf>,

    /// A client certificate chain (PEM) to present to etcd, for one run with
    /// --client-cert-auth; with --cluster-etcd-key.
    #[arg(long = "cluster-etcd-cert", value_name = "PEM", requires_all = ["etcd_ca", "etcd_key"])]
    etcd_cert: Option<PathBuf>,

    /// The private key (PEM) of --cluster-etcd-cert.
    #[arg(long = "cluster-etcd-key", value_name = "PEM", requires = "etcd_cert")]
    etcd_key: Option<PathBuf>,

    /// The URL other relays dial to reach this one, e.g. moqf://relay-a.example:4443/.
    #[arg(long = "cluster-node", value_name = "URL", requires = "etcd")]
    node: Option<String>,

    /// Seconds of the lease this relay's registry entries are bound to: when it stops
    /// renewing it (killed, cut off from etcd), the other relays drop its routes within
    /// this time. Also the idle timeout of the links between relays.
    #[arg(long = "cluster-lease", value_name = "SECS", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    lease: u64,

    /// The prefix of every etcd key the cluster writes.
    #[arg(long = "cluster-prefix", value_name = "PREFIX", default_value = moq_relay::cluster::etcd::DEFAULT_PREFIX)]
    prefix: String,

    /// A private JWK that signs the token this relay presents to the other relays (their
    /// --auth-key must hold its public half); without it, links present no token.
    #[arg(long = "cluster-key", value_name = "FILE")]
    key: Option<PathBuf>,

    /// Trust the other relays' certificates with this SHA-256 fingerprint (hex;
    /// repeatable), e.g. self-signed ones; takes the place of --tls-root.
    #[arg(long = "cluster-fingerprint", value_name = "HEX")]
    fingerprint: Vec<String>,
}

fn init_logging(verbose: u8, quiet: u8) {
    let level = match (verbose, quiet) {
        (0, 0) => "info",
        (1, _) => "debug",
        (v, _) if v >= 2 => "trace",
        (_, 1) => "warn",
        _ => "error",
    };
    // The WebTransport library logs each CONNECT request, token included, at debug: it stays
    // at info unless the filter (RUST_LOG or the flags) names it.
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_owned());
    let filter = EnvFilter::try_new(token_safe_log_filter(&spec))
        .unwrap_or_else(|_| EnvFilter::new(token_safe_log_filter(level)));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The access control the `--auth-*` flags ask for.
fn auth(args: &Args) -> anyhow::Result<AuthConfig> {
    let mut auth = AuthConfig::default();
    if !args.auth_key.is_empty() {
        let mut keys = KeySet::new();
        for path in &args.auth_key {
            keys.load(path)
                .with_context(|| format!("--auth-key {}", path.display()))?;
        }
        auth.keys = Some(keys);
    }
    let prefix =
        |text: &String| -> Path { text.split('/').filter(|part| !part.is_empty()).collect() };
    auth.public = args.auth_public.iter().map(prefix).collect();
    auth.public_subscribe = args.auth_public_subscribe.iter().map(prefix).collect();
    Ok(auth)
}

/// One line on what the access control lets through.
fn describe(auth: &AuthConfig) -> String {
    if auth.is_open() {
        return "access control: none (anyone may publish and subscribe anything; pass \
                --auth-key to require tokens)"
            .into();
    }
    let list = |prefixes: &[Path]| -> String {
        prefixes
            .iter()
            .map(|p| format!("\"/{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if let Some(keys) = &auth.keys {
        parts.push(format!("tokens verified with {} key(s)", keys.len()));
    } else {
        parts.push("no tokens accepted (no --auth-key)".into());
    }
    if !auth.public.is_empty() {
        parts.push(format!("public: {}", list(&auth.public)));
    }
    if !auth.public_subscribe.is_empty() {
        parts.push(format!(
            "public to subscribe: {}",
            list(&auth.public_subscribe)
        ));
    }
    format!("access control: {}", parts.join("; "))
}

fn certificates(args: &Args) -> anyhow::Result<Vec<Certificate>> {
    if args.tls_cert.len() != args.tls_key.len() {
        bail!(
            "--tls-cert and --tls-key come in pairs ({} certificates, {} keys)",
            args.tls_cert.len(),
            args.tls_key.len()
        );
    }
    let mut certs = Vec::new();
    for (cert, key) in args.tls_cert.iter().zip(&args.tls_key) {
        certs.push(
            Certificate::from_pem_files(cert, key)
                .with_context(|| format!("loading {}", cert.display()))?,
        );
    }
    let mut hosts = args.tls_self_sign.clone();
    if certs.is_empty() && hosts.is_empty() && args.dev {
        hosts = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    }
    if !hosts.is_empty() {
        certs.push(Certificate::self_signed(hosts).context("generating a certificate")?);
    }
    if certs.is_empty() {
        bail!(
            "no certificate: pass --tls-cert FILE --tls-key FILE, or --tls-self-sign localhost, \
             or --dev"
        );
    }
    Ok(certs)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging(args.verbose, args.quiet);
    hand_memory_back();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("moq-relay: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let certs = certificates(&args)?;
    let auth = auth(&args)?;
    let fingerprint = certs[0].fingerprint().to_string();
    let mut transport = TransportSettings::default();
    transport.max_udp_payload = args.max_udp_payload;
    transport.congestion = args.congestion;
    let server = Server::new(
        ServerConfig::new(certs)
            .with_bind(args.bind)
            .with_transport(transport)
            .with_endpoints(args.endpoints.into()),
    )
    .with_context(|| format!("starting the QUIC server on {}", args.bind))?;
    let local = server.local_addr().context("reading the bound address")?;

    let session = SessionConfig::default()
        .max_subscriptions(args.max_subscriptions)
        .max_group_streams(args.max_group_streams);
    tracing::info!("{}", describe(&auth));
    let limits = RelayLimits::default()
        .max_sessions(args.max_sessions)
        .max_sessions_per_ip(args.max_sessions_per_ip)
        .max_announced(args.max_announced)
        .max_subscriptions(args.max_total_subscriptions)
        .max_memory(args.max_memory)
        .max_group_bytes(args.max_group_bytes);
    let relay = Relay::new(
        RelayConfig::default()
            .with_session(session)
            .with_auth(auth)
            .with_limits(limits),
    );

    // Accepting before anything is printed: whoever reads the banner (a test, a script)
    // finds /healthz answering 200 at once.
    let serving = relay.clone();
    let mut accept = tokio::spawn(async move { serving.serve(server).await });
    for _ in 0..1000 {
        if relay.is_accepting() || accept.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let host = if local.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        match local {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        }
    };
    say(format_args!("moq-relay listening on {local} (UDP)"));
    say(format_args!(
        "  raw QUIC:     moqf://{host}:{}/",
        local.port()
    ));
    say(format_args!(
        "  WebTransport: https://{host}:{}/",
        local.port()
    ));
    say(format_args!(
        "  certificate fingerprint (SHA-256): {fingerprint}"
    ));

    #[cfg(feature = "etcd")]
    let cluster = join_cluster(&args, &relay)?;

    let http_task = if args.dev || args.web.is_some() {
        let listener = http::bind(local)
            .await
            .with_context(|| format!("binding TCP {local} for HTTP"))?;
        say(format_args!(
            "  HTTP:         http://{host}:{}/fingerprint",
            local.port()
        ));
        // Metrics go where the operator asked for them: with --metrics-bind, off this
        // public listener (which keeps /healthz, for load balancers).
        let config = http::HttpConfig::new(fingerprint.clone(), local.port())
            .with_web_root(args.web.clone())
            .with_relay(Some(relay.clone()))
            .with_metrics(args.metrics_bind.is_none());
        Some(tokio::spawn(http::serve(listener, config)))
    } else {
        None
    };

    let metrics_task = match args.metrics_bind {
        Some(addr) => {
            let listener = http::bind(addr)
                .await
                .with_context(|| format!("binding TCP {addr} for --metrics-bind"))?;
            let bound = listener
                .local_addr()
                .context("reading the metrics address")?;
            say(format_args!("  metrics:      http://{bound}/metrics"));
            Some(tokio::spawn(http::serve(
                listener,
                http::HttpConfig::for_metrics(relay.clone()),
            )))
        }
        None => None,
    };

    let stats_task = (args.stats_interval > 0).then(|| {
        let relay = relay.clone();
        let every = Duration::from_secs(args.stats_interval);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let s = relay.stats();
                tracing::info!(
                    "stats: sessions={} announced={} tracks={} subscribers={} bytes_in={} bytes_out={} refused={} memory={}",
                    s.sessions,
                    s.announced,
                    s.tracks,
                    s.subscribers,
                    s.bytes_in,
                    s.bytes_out,
                    s.refused,
                    s.memory
                );
            }
        })
    });

    tokio::select! {
        _ = moq_relay::shutdown_signal() => tracing::info!("shutting down"),
        _ = &mut accept => bail!("the QUIC endpoint stopped"),
    }
    // Out of the cluster first: the lease is revoked, so the other relays stop routing
    // here at once rather than after the lease.
    #[cfg(feature = "etcd")]
    if let Some(cluster) = cluster {
        cluster.leave().await;
    }
    // Closes every session with code 0 (Cancel); `serve` returns once the closes are sent
    // (or after a bounded wait).
    relay.shutdown(ErrorCode::CANCEL);
    let _ = accept.await;
    if relay.stats().sessions > 0 {
        tracing::warn!("sessions still open after the shutdown wait; exiting anyway");
    }
    if let Some(task) = http_task {
        task.abort();
    }
    if let Some(task) = metrics_task {
        task.abort();
    }
    if let Some(task) = stats_task {
        task.abort();
    }
    Ok(())
}

/// Joins the cluster the `--cluster-*` flags name, if any.
#[cfg(feature = "etcd")]
fn join_cluster(
    args: &Args,
    relay: &Relay,
) -> anyhow::Result<Option<moq_relay::cluster::etcd::EtcdCluster>> {
    use moq_relay::cluster::ClusterConfig;
    use moq_relay::cluster::etcd::{EtcdCluster, EtcdConfig};
    use moq_transport_quinn::{Fingerprint, Trust, Url};

    let flags = &args.cluster;
    if flags.etcd.is_empty() {
        return Ok(None);
    }
    let Some(node) = &flags.node else {
        bail!("--cluster-etcd needs --cluster-node URL (the address other relays dial)");
    };
    let node = Url::parse(node).with_context(|| format!("--cluster-node {node}"))?;
    let trust = if !flags.fingerprint.is_empty() {
        let pins = flags
            .fingerprint
            .iter()
            .map(|hex| {
                hex.parse::<Fingerprint>()
                    .with_context(|| format!("--cluster-fingerprint {hex}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Trust::Fingerprints(pins)
    } else if args.tls_disable_verify {
        Trust::DangerousDisableVerify
    } else if !args.tls_root.is_empty() {
        Trust::roots_from_pem_files(&args.tls_root).context("--tls-root")?
    } else {
        Trust::System
    };
    let key = match &flags.key {
        Some(path) => Some(
            moq_auth::Key::load(path)
                .with_context(|| format!("--cluster-key {}", path.display()))?,
        ),
        None => None,
    };
    let config = ClusterConfig::new(node)
        .with_lease(Duration::from_secs(flags.lease))
        .with_trust(trust)
        .with_key(key);
    let read = |flag: &str, path: &PathBuf| {
        std::fs::read(path).with_context(|| format!("{flag} {}", path.display()))
    };
    let mut etcd = EtcdConfig::new(flags.etcd.clone()).with_prefix(flags.prefix.clone());
    if let Some(ca) = &flags.etcd_ca {
        etcd = etcd.with_ca_pem(read("--cluster-etcd-ca", ca)?);
    }
    if let (Some(cert), Some(key)) = (&flags.etcd_cert, &flags.etcd_key) {
        etcd = etcd.with_identity_pem(
            read("--cluster-etcd-cert", cert)?,
            read("--cluster-etcd-key", key)?,
        );
    }
    let endpoints = flags.etcd.join(",");
    let cluster = EtcdCluster::join(relay, config, etcd)?;
    say(format_args!(
        "  cluster:      etcd {endpoints}, node {}",
        flags.node.as_deref().unwrap_or_default()
    ));
    Ok(Some(cluster))
}

/// Prints a line of the start banner. A closed stdout (`moq-relay | head -1`) is not an
/// error worth dying for: the relay goes on serving, and the line is dropped.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
