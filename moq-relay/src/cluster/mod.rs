//! Clustering: several relays that behave as one.
//!
//! Each relay keeps its own [`Origins`] table. A registry shared by the cluster (etcd:
//! the `etcd` module, with the crate feature of that name) holds which relay serves which
//! path: every relay writes its own paths there (bound to a lease, so that they vanish with
//! the relay) and watches everyone else's. [`Peers`] turns that view into routes: for each
//! other relay that announces something it keeps one ordinary `moqf-02` session to it (a
//! *link*), and inserts that relay's paths into the local table as remote routes served by
//! the link. From there the relay's usual machinery does the rest: announcements reach every
//! local session, and a local subscription to a remote path is forwarded on the link, one
//! upstream subscription per track shared by all local subscribers.
//!
//! ```text
//!   relay A ── put origins/A/room/alice (lease A) ──▶ etcd ──watch──▶ relay B
//!      ▲                                                                │
//!      └──────────── link: a moqf-02 session B → A (subscribe) ◀────────┘
//! ```
//!
//! Links identify themselves with the [`CLUSTER_LINK`] setup extension: the relay that
//! accepts one routes its requests to its own publishers only, so stale routes can never
//! send a request around the cluster in a loop. Remote routes are never written to the
//! registry for the same reason. `docs/cluster.md` is the operator's guide.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use moq_auth::{Claims, Key};
use moq_model::Path;
use moq_proto::{ErrorCode, Extensions};
use moq_session::{Session, SessionConfig};
use moq_transport_quinn::{Client, ClientConfig, TransportSettings, Trust, Url, with_jwt};
use tokio::sync::watch;
use tracing::Instrument;

use crate::Relay;
use crate::origins::{Origins, SessionId};

#[cfg(feature = "etcd")]
pub mod etcd;

/// The setup extension a relay sends when it opens a link to another relay of its cluster
/// (its payload is ignored). The receiving relay answers that session's requests from its
/// own publishers only. A client that sends it only restricts itself, so it needs no
/// authentication of its own (the session's token still decides what it may do).
pub const CLUSTER_LINK: u64 = 0x6d63;

/// How long the token a relay presents to its peers is valid; a new one is signed for
/// every connection, so a link that reconnects never presents an expired one.
pub const LINK_TOKEN_VALIDITY: Duration = Duration::from_secs(3600);

/// The default lease: a relay that stops renewing it (killed, cut off) loses its routes in
/// the rest of the cluster within this time.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(3);

/// How a relay takes part in a cluster.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// The URL other relays dial to reach this one (`moqf://host:port/`): what this relay
    /// writes into the registry beside its paths.
    pub node: Url,
    /// The lease its registry entries are bound to. Also the idle timeout of its links:
    /// a link silent for that long is as dead as a relay whose lease expired.
    pub lease: Duration,
    /// Which certificates of other relays to accept.
    pub trust: Trust,
    /// A private key whose public half the other relays verify tokens with (their
    /// `--auth-key`): each link presents a token signed with it that lets it subscribe to
    /// everything. `None`: links present no token (peers without access control).
    pub key: Option<Key>,
    /// The local UDP address of the links' client endpoint.
    pub bind: SocketAddr,
}

impl ClusterConfig {
    /// A cluster member reached at `node`, with the default lease, the system's trust
    /// store, no token, and links from any local address.
    pub fn new(node: Url) -> Self {
        Self {
            node,
            lease: DEFAULT_LEASE,
            trust: Trust::System,
            key: None,
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    /// Sets [`lease`](Self::lease).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets [`trust`](Self::trust).
    pub fn with_trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// Sets [`key`](Self::key).
    pub fn with_key(mut self, key: Option<Key>) -> Self {
        self.key = key;
        self
    }

    /// Sets [`bind`](Self::bind).
    pub fn with_bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }

    /// The node name written in the registry: the URL as text.
    pub fn node_name(&self) -> String {
        self.node.as_str().to_owned()
    }
}

/// Why a cluster could not be joined. Losing the registry later is not an error: the relay
/// goes on serving and retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The node URL is not one other relays can dial.
    #[error("--cluster-node {0}: must be a moqf:// or https:// URL with a host")]
    Node(String),
    /// The lease is outside 1 s to 1 hour.
    #[error("--cluster-lease {0:?}: must be between 1 s and 1 h")]
    Lease(Duration),
    /// The links' client endpoint could not be made.
    #[error("the client endpoint for links to other relays: {0}")]
    Client(#[from] moq_transport_quinn::ConfigError),
    /// The key cannot sign tokens.
    #[error("--cluster-key: {0}")]
    Key(#[from] moq_auth::KeyError),
    /// The registry's endpoints are not usable.
    #[error("--cluster-etcd: {0}")]
    Registry(String),
}

impl ClusterConfig {
    /// Checks what can be checked before joining.
    fn validate(&self) -> Result<(), ClusterError> {
        let scheme_ok = matches!(self.node.scheme(), "moqf" | "https");
        if !scheme_ok || self.node.host_str().is_none_or(str::is_empty) {
            return Err(ClusterError::Node(self.node.to_string()));
        }
        if self.lease < Duration::from_secs(1) || self.lease > Duration::from_secs(3600) {
            return Err(ClusterError::Lease(self.lease));
        }
        if let Some(key) = &self.key {
            // Signing once now turns a public-only key into an error at start, not at the
            // first link.
            key.sign(&link_claims())?;
        }
        Ok(())
    }
}

/// The cluster's counters, updated by its tasks and read by [`Relay::stats`].
#[derive(Debug, Default)]
pub(crate) struct ClusterStatus {
    enabled: AtomicBool,
    registered: AtomicBool,
    peers: AtomicUsize,
    /// The established links, for their counts in the relay's stats.
    links: Mutex<HashMap<SessionId, Session>>,
    registrations: AtomicU64,
    link_failures: AtomicU64,
}

impl ClusterStatus {
    /// A snapshot, with `remote_routes` from the origin table.
    pub(crate) fn stats(&self, remote_routes: usize) -> ClusterStats {
        let links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let (mut link_subscriptions, mut link_group_streams) = (0, 0);
        for session in links.values() {
            let stats = session.stats();
            link_subscriptions += stats.subscriptions;
            link_group_streams += stats.group_streams_in + stats.group_streams_out;
        }
        ClusterStats {
            enabled: self.enabled.load(Ordering::Relaxed),
            registered: self.registered.load(Ordering::Relaxed),
            peers: self.peers.load(Ordering::Relaxed),
            links: links.len(),
            link_subscriptions,
            link_group_streams,
            remote_routes,
            registrations: self.registrations.load(Ordering::Relaxed),
            link_failures: self.link_failures.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn set_registered(&self, registered: bool) {
        self.registered.store(registered, Ordering::Relaxed);
        if registered {
            self.registrations.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A relay's cluster membership at one moment ([`crate::RelayStats::cluster`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// The relay is a cluster member (it was started with a registry).
    pub enabled: bool,
    /// Its lease is held and its paths are written in the registry right now.
    pub registered: bool,
    /// Other relays the registry lists right now.
    pub peers: usize,
    /// Links (sessions to other relays) established right now.
    pub links: usize,
    /// Subscriptions this relay holds on its links (one per remote track with local
    /// subscribers); also counted in [`crate::RelayStats::tracks`].
    pub link_subscriptions: usize,
    /// Group streams being received on the links; also counted in
    /// [`crate::RelayStats::group_streams`].
    pub link_group_streams: usize,
    /// Paths routed to another relay.
    pub remote_routes: usize,
    /// Times the relay registered (a new lease, its paths written): 1 after the start,
    /// one more after every return of the registry.
    pub registrations: u64,
    /// Link connections that failed or broke.
    pub link_failures: u64,
}

/// The claims of the token a link presents: subscribe to everything, publish nothing.
fn link_claims() -> Claims {
    let mut claims = Claims::new("");
    claims.get = vec![String::new()];
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    claims.iat = Some(now);
    claims.exp = Some(now + LINK_TOKEN_VALIDITY.as_secs());
    claims
}

/// Another relay as the registry describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    /// Its membership entry is present (its lease is alive).
    pub alive: bool,
    /// The paths it registered.
    pub paths: BTreeSet<Path>,
}

/// The other relays of the cluster, and a link to each that announces something. Fed by a
/// registry ([`replace`](Self::replace), [`set_alive`](Self::set_alive),
/// [`add_path`](Self::add_path), [`remove_path`](Self::remove_path)); each call returns at
/// once, the links connect on tasks of their own. Cheap to [`Clone`].
#[derive(Clone)]
pub struct Peers {
    shared: Arc<PeersShared>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("nodes", &self.lock().len())
            .finish_non_exhaustive()
    }
}

struct PeersShared {
    relay: Relay,
    client: Client,
    config: ClusterConfig,
    nodes: Mutex<HashMap<String, Node>>,
}

/// One other relay: what the registry says, and the link while it announces something.
#[derive(Default)]
struct Node {
    view: NodeView,
    link: Option<Link>,
}

/// A link task and the paths it should route; dropping it ends the task (the session is
/// closed, its routes leave the table).
struct Link {
    paths: watch::Sender<BTreeSet<Path>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Peers {
    /// The peers of `relay`'s cluster: no node yet. Must be called in a tokio runtime.
    ///
    /// # Errors
    ///
    /// An invalid [`ClusterConfig`], or a client endpoint that cannot be bound.
    pub fn new(relay: &Relay, config: ClusterConfig) -> Result<Self, ClusterError> {
        config.validate()?;
        // A link silent for a lease is dead: the same bound as the registry's, so a cut-off
        // peer's subscriptions end about when its routes would expire.
        let idle = config.lease.max(Duration::from_secs(1));
        let mut transport = TransportSettings::default();
        transport.idle_timeout = idle;
        transport.keep_alive = Some(idle / 4);
        let client = Client::new(
            ClientConfig::default()
                .with_bind(config.bind)
                .with_trust(config.trust.clone())
                .with_connect_timeout(idle)
                .with_transport(transport),
        )?;
        relay
            .cluster_status()
            .enabled
            .store(true, Ordering::Relaxed);
        Ok(Self {
            shared: Arc::new(PeersShared {
                relay: relay.clone(),
                client,
                config,
                nodes: Mutex::new(HashMap::new()),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Node>> {
        self.shared.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A registry reports whether it holds this relay's registration right now (its
    /// lease, its paths written): the `moq_relay_cluster_registered` gauge; each new
    /// registration counts in `moq_relay_cluster_registrations_total`.
    pub fn set_registered(&self, registered: bool) {
        self.shared
            .relay
            .cluster_status()
            .set_registered(registered);
    }

    /// This relay's node name (its own entries are not peers).
    pub fn own_node(&self) -> String {
        self.shared.config.node_name()
    }

    /// The registry's whole view at once (after a (re)connection to it): nodes missing
    /// from `view` are forgotten, with their links.
    pub fn replace(&self, mut view: HashMap<String, NodeView>) {
        view.remove(&self.own_node());
        let mut nodes = self.lock();
        nodes.retain(|name, _| view.contains_key(name));
        for (name, node) in view {
            let entry = nodes.entry(name.clone()).or_default();
            entry.view = node;
            self.sync(&name, &mut nodes);
        }
        self.count(&nodes);
    }

    /// `node`'s membership entry appeared (`true`) or vanished (`false`: the relay left or
    /// its lease expired; its paths and link go with it).
    pub fn set_alive(&self, node: &str, alive: bool) {
        if node == self.own_node() {
            return;
        }
        let mut nodes = self.lock();
        if alive {
            nodes.entry(node.to_owned()).or_default().view.alive = true;
        } else {
            nodes.remove(node);
        }
        self.count(&nodes);
    }

    /// `node` registered `path`.
    pub fn add_path(&self, node: &str, path: Path) {
        if node == self.own_node() {
            return;
        }
        let mut nodes = self.lock();
        nodes
            .entry(node.to_owned())
            .or_default()
            .view
            .paths
            .insert(path);
        self.sync(node, &mut nodes);
        self.count(&nodes);
    }

    /// `node` no longer registers `path`.
    pub fn remove_path(&self, node: &str, path: &Path) {
        let mut nodes = self.lock();
        if let Some(entry) = nodes.get_mut(node) {
            entry.view.paths.remove(path);
            self.sync(node, &mut nodes);
        }
        self.count(&nodes);
    }

    /// What the registry said about every other relay, by node name.
    pub fn view(&self) -> HashMap<String, NodeView> {
        self.lock()
            .iter()
            .map(|(name, node)| (name.clone(), node.view.clone()))
            .collect()
    }

    /// Starts, updates or ends `name`'s link after its view changed; forgets a node with
    /// neither membership nor paths.
    fn sync(&self, name: &str, nodes: &mut HashMap<String, Node>) {
        let Some(node) = nodes.get_mut(name) else {
            return;
        };
        if node.view.paths.is_empty() {
            // Nothing to route there: no link (an idle link would only cost keep-alives).
            node.link = None;
            if !node.view.alive {
                nodes.remove(name);
            }
            return;
        }
        match &node.link {
            Some(link) => {
                link.paths.send_replace(node.view.paths.clone());
            }
            None => {
                let (paths, receiver) = watch::channel(node.view.paths.clone());
                let span = tracing::info_span!("link", node = %name);
                let task = tokio::spawn(
                    run_link(self.shared.clone(), name.to_owned(), receiver).instrument(span),
                );
                node.link = Some(Link { paths, task });
            }
        }
    }

    fn count(&self, nodes: &HashMap<String, Node>) {
        let alive = nodes.values().filter(|node| node.view.alive).count();
        self.shared
            .relay
            .cluster_status()
            .peers
            .store(alive, Ordering::Relaxed);
    }

    /// Ends every link and forgets every node.
    pub fn clear(&self) {
        let nodes = std::mem::take(&mut *self.lock());
        drop(nodes);
        self.count(&HashMap::new());
    }
}

/// Removes a link's routes from the table when its task ends or is aborted.
struct LinkRoutes {
    origins: Origins,
    id: SessionId,
}

impl Drop for LinkRoutes {
    fn drop(&mut self) {
        self.origins.forget_session(self.id);
    }
}

/// Lists an established link in the cluster's status while it lasts.
struct Connected<'a> {
    status: &'a ClusterStatus,
    id: SessionId,
}

impl<'a> Connected<'a> {
    fn new(status: &'a ClusterStatus, id: SessionId, session: &Session) -> Self {
        status
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, session.clone());
        Self { status, id }
    }
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        let session = self
            .status
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        // Dropped outside the lock: the last handle of a session closes it.
        drop(session);
    }
}

/// Keeps a link to `node` while its [`Link`] lives: connects (retrying with a backoff up to
/// the lease), routes the node's paths through the session, and on a lost session removes
/// them and reconnects (a partition heals by itself).
async fn run_link(
    shared: Arc<PeersShared>,
    node: String,
    mut paths: watch::Receiver<BTreeSet<Path>>,
) {
    let status = shared.relay.cluster_status().clone();
    let routes = LinkRoutes {
        origins: shared.relay.origins().clone(),
        id: shared.relay.next_session_id(),
    };
    let url = match Url::parse(&node) {
        Ok(url) => url,
        Err(err) => {
            // The registry holds something that is not a URL: nothing to dial, ever.
            tracing::warn!(%err, "a node name that is not a URL; not linking");
            return;
        }
    };
    let mut backoff = Duration::from_millis(100);
    let max_backoff = shared.config.lease.min(Duration::from_secs(2));
    loop {
        match connect(&shared, &url).await {
            Ok(session) => {
                tracing::info!("link up");
                let up = std::time::Instant::now();
                let connected = Connected::new(&status, routes.id, &session);
                let gone = route_through(&routes, &session, &mut paths).await;
                // Only a link that lasted starts the backoff over: one closed at once (its
                // token refused, say) is retried ever more slowly, like a failed connect.
                if up.elapsed() >= shared.config.lease {
                    backoff = Duration::from_millis(100);
                }
                routes.origins.remove_session(routes.id).await;
                session.close(ErrorCode::CANCEL);
                drop(connected);
                if gone {
                    return;
                }
                status.link_failures.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                status.link_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("link to {node} failed: {err}; retrying in {backoff:?}");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            changed = paths.changed() => if changed.is_err() { return },
        }
        backoff = (backoff * 2).min(max_backoff);
    }
}

/// Why a link could not be established.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("{0}")]
    Connect(#[from] moq_transport_quinn::ConnectError),
    #[error("handshake: {0}")]
    Session(#[from] moq_session::Error),
    #[error("signing the link token: {0}")]
    Token(#[from] moq_auth::KeyError),
    #[error("no MoQ handshake within {0:?}")]
    Timeout(Duration),
}

/// One connection and MoQ handshake to `url`, presenting the link extension and (with a
/// key) a freshly signed token.
async fn connect(shared: &PeersShared, url: &Url) -> Result<Session, LinkError> {
    let url = match &shared.config.key {
        Some(key) => with_jwt(url, &key.sign(&link_claims())?),
        None => url.clone(),
    };
    let conn = shared.client.connect_url(&url).await?;
    let mut extensions = Extensions::new();
    extensions.insert(CLUSTER_LINK, Bytes::from_static(b"1"));
    let config = SessionConfig::default().extensions(extensions);
    let handshake = Session::connect_with(conn, config);
    let bound = shared.config.lease.max(Duration::from_secs(1));
    let (session, driver) = tokio::time::timeout(bound, handshake)
        .await
        .map_err(|_| LinkError::Timeout(bound))??;
    tokio::spawn(driver.in_current_span());
    Ok(session)
}

/// Keeps the table's remote routes of this link equal to `paths` until the session ends
/// (false) or the link is dropped (true).
async fn route_through(
    routes: &LinkRoutes,
    session: &Session,
    paths: &mut watch::Receiver<BTreeSet<Path>>,
) -> bool {
    let mut routed = BTreeSet::new();
    loop {
        let wanted = paths.borrow_and_update().clone();
        for path in routed.difference(&wanted) {
            routes.origins.unannounce(path, routes.id);
        }
        for path in wanted.difference(&routed) {
            routes
                .origins
                .announce_remote(path.clone(), routes.id, session);
        }
        routed = wanted;
        tokio::select! {
            changed = paths.changed() => if changed.is_err() { return true },
            err = session.closed() => {
                tracing::warn!(%err, "link lost; its routes are withdrawn, reconnecting");
                return false;
            }
        }
    }
}
