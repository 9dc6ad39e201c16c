//! The cluster's registry in etcd: every relay's own paths, bound to its lease, watched by
//! every other relay.
//!
//! # Key layout
//!
//! Under a prefix (default [`DEFAULT_PREFIX`], `/moq/`), every value being the node's URL:
//!
//! ```text
//! /moq/nodes/{node}               a relay is a member (one key per relay)
//! /moq/origins/{node}/{path}      that relay's sessions announce path
//! ```
//!
//! `{node}` is the relay's `--cluster-node` URL and `{path}` the path's parts joined with
//! `/`, each escaped ([`escape`]: `%` is `%25`, `/` is `%2F`, an empty part is `%`), so keys
//! split unambiguously. Every key a relay writes is bound to its lease: when the relay stops
//! renewing it (killed, cut off from etcd) etcd deletes them all and every other relay's
//! watch sees the deletes. Remote routes are never written, so nothing loops.
//!
//! # Faults
//!
//! Unreachable at the start, or lost later: the relay logs it, keeps serving its own
//! sessions (and keeps the remote routes it knew, whose links end by themselves if their
//! relays are gone), and retries every second; on return it takes a new lease, writes its
//! node key and paths again (moving them to the new lease), deletes those of its keys it no
//! longer serves, reads the whole prefix and watches from there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Client, ConnectOptions, EventType, GetOptions, Identity, LeaseKeepAliveStream,
    LeaseKeeper, PutOptions, TlsOptions, Txn, TxnOp, WatchOptions,
};
use moq_model::Path;
use tokio::sync::mpsc;

use super::{ClusterConfig, ClusterError, NodeView, Peers};
use crate::Relay;
use crate::origins::OriginRegistry;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "/moq/";

/// How long the registry task waits between attempts to reach etcd.
pub const RETRY: Duration = Duration::from_secs(1);

/// Where the registry lives.
#[derive(Clone)]
#[non_exhaustive]
pub struct EtcdConfig {
    /// etcd's client URLs, all `http://host:2379` or all `https://host:2379` (then with
    /// [`ca`](Self::ca)); any one of them will do.
    pub endpoints: Vec<String>,
    /// The prefix of every key the cluster writes (ends with `/`).
    pub prefix: String,
    /// For `https://` endpoints: the PEM certificate(s) of the authority that signed
    /// etcd's (its `--trusted-ca-file` for clients, usually).
    pub ca: Option<Vec<u8>>,
    /// A client certificate chain and its private key (PEM), for an etcd that asks for one
    /// (`--client-cert-auth`).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// Says whether a CA and a client identity are set, never what they hold (the key is a
/// secret).
impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("ca", &self.ca.as_ref().map(|_| "PEM"))
            .field("identity", &self.identity.as_ref().map(|_| "PEM, redacted"))
            .finish()
    }
}

impl EtcdConfig {
    /// etcd at `endpoints`, keys under [`DEFAULT_PREFIX`].
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            prefix: DEFAULT_PREFIX.to_owned(),
            ca: None,
            identity: None,
        }
    }

    /// Sets [`ca`](Self::ca).
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(pem.into());
        self
    }

    /// Sets [`identity`](Self::identity).
    pub fn with_identity_pem(mut self, chain: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.identity = Some((chain.into(), key.into()));
        self
    }

    /// The TLS options the configuration asks for: with `https://` endpoints, trust in
    /// [`ca`](Self::ca) and the [`identity`](Self::identity) if any; with `http://` ones,
    /// none (and neither may be set).
    fn tls(&self) -> Result<Option<TlsOptions>, ClusterError> {
        let https = self.endpoints.iter().all(|e| e.starts_with("https://"));
        let http = self.endpoints.iter().all(|e| e.starts_with("http://"));
        let bad = |why: &str| Err(ClusterError::Registry(why.to_owned()));
        match (http, https, &self.ca) {
            (false, false, _) => bad("etcd endpoints are all http:// URLs or all https:// ones"),
            (true, _, _) if self.ca.is_some() || self.identity.is_some() => {
                bad("a CA or a client certificate for etcd needs https:// endpoints")
            }
            (true, _, _) => Ok(None),
            (_, true, None) => {
                bad("https:// etcd endpoints need the CA that signed etcd's certificate")
            }
            (_, true, Some(ca)) => {
                let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(ca));
                if let Some((chain, key)) = &self.identity {
                    tls = tls.identity(Identity::from_pem(chain, key));
                }
                Ok(Some(tls))
            }
        }
    }

    /// Sets [`prefix`](Self::prefix) (a `/` is appended if it has none at its end).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        if !self.prefix.ends_with('/') {
            self.prefix.push('/');
        }
        self
    }
}

/// A relay's membership in an etcd cluster; dropping it (or [`leave`](Self::leave)) ends
/// the registry task and every link.
#[derive(Debug)]
pub struct EtcdCluster {
    task: tokio::task::JoinHandle<()>,
    leave: Option<tokio::sync::oneshot::Sender<()>>,
    peers: Peers,
}

impl EtcdCluster {
    /// Makes `relay` a member: its paths are registered in etcd and the other members'
    /// paths routed to them. Returns at once; reaching etcd happens on a task of its own,
    /// which logs and retries while etcd is unreachable (the relay serves its own sessions
    /// meanwhile).
    ///
    /// # Errors
    ///
    /// An invalid configuration (see [`ClusterError`]); never an unreachable etcd.
    pub fn join(
        relay: &Relay,
        config: ClusterConfig,
        etcd: EtcdConfig,
    ) -> Result<Self, ClusterError> {
        if etcd.endpoints.is_empty() {
            return Err(ClusterError::Registry("no endpoint".into()));
        }
        let tls = etcd.tls()?;
        let lease = config.lease;
        let peers = Peers::new(relay, config)?;
        let (changes, receiver) = mpsc::unbounded_channel();
        relay
            .origins()
            .set_registry(Arc::new(ChangeSender(changes)));
        let (leave, left) = tokio::sync::oneshot::channel();
        let registry = Registry {
            peers: peers.clone(),
            keys: Keys::new(&etcd.prefix, &peers.own_node()),
            node: peers.own_node(),
            endpoints: etcd.endpoints,
            tls,
            lease,
            changes: receiver,
            local: BTreeSet::new(),
            registered: false,
        };
        let span = tracing::info_span!("cluster", node = %peers.own_node());
        let task = tokio::spawn(tracing::Instrument::instrument(registry.run(left), span));
        Ok(Self {
            task,
            leave: Some(leave),
            peers,
        })
    }

    /// The other members and their links.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// Leaves the cluster cleanly: revokes the lease (the other relays drop this relay's
    /// routes at once instead of after the lease), waits at most 5 s for that (etcd may be
    /// gone), and ends the links.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future ends the membership without waiting.
    pub async fn leave(mut self) {
        if let Some(leave) = self.leave.take() {
            let _ = leave.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }

    /// Stops at once, as a crash would: no revocation (the routes expire with the lease),
    /// links closed. For tests and for shutting down without a reachable etcd.
    pub fn abort(self) {}
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.task.abort();
        self.peers.clear();
    }
}

/// A change of this relay's own paths, as [`Origins`](crate::Origins) reports it.
enum Change {
    Register(Path),
    Unregister(Path),
}

/// The [`OriginRegistry`] the origin table calls: queues each change for the task (never
/// blocks; the table is locked meanwhile).
struct ChangeSender(mpsc::UnboundedSender<Change>);

impl OriginRegistry for ChangeSender {
    fn register(&self, path: &Path) {
        let _ = self.0.send(Change::Register(path.clone()));
    }

    fn unregister(&self, path: &Path) {
        let _ = self.0.send(Change::Unregister(path.clone()));
    }
}

/// The key names of one cluster prefix and node.
struct Keys {
    prefix: String,
    /// `{prefix}nodes/{node}`
    node: String,
    /// `{prefix}origins/{node}/`
    own_origins: String,
}

impl Keys {
    fn new(prefix: &str, node: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            node: format!("{prefix}nodes/{}", escape(node)),
            own_origins: format!("{prefix}origins/{}/", escape(node)),
        }
    }

    fn origin(&self, path: &Path) -> String {
        format!("{}{}", self.own_origins, encode_path(path))
    }

    /// What a key under the prefix says.
    fn parse(&self, key: &[u8]) -> Result<Entry, KeyError> {
        let key = std::str::from_utf8(key).map_err(|_| KeyError::NotText)?;
        let rest = key.strip_prefix(&self.prefix).ok_or(KeyError::Foreign)?;
        if let Some(node) = rest.strip_prefix("nodes/") {
            return Ok(Entry::Node(unescape(node)?));
        }
        if let Some(rest) = rest.strip_prefix("origins/") {
            let (node, path) = rest.split_once('/').ok_or(KeyError::Malformed)?;
            return Ok(Entry::Origin(unescape(node)?, decode_path(path)?));
        }
        Err(KeyError::Foreign)
    }
}

/// A key of the layout.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Node(String),
    Origin(String, Path),
}

/// A key under the prefix that is not of the layout (written by something else, or
/// corrupted): ignored with a warning, never a panic.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not UTF-8.
    #[error("not UTF-8 text")]
    NotText,
    /// Neither `nodes/` nor `origins/`.
    #[error("not a key of the cluster's layout")]
    Foreign,
    /// An `origins/` key without a node and path, or a bad escape.
    #[error("malformed")]
    Malformed,
}

/// `text` with `%` and `/` percent-escaped, so that it is one key segment.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`escape`].
///
/// # Errors
///
/// [`KeyError::Malformed`] for a `%` not followed by `25` or `2F`.
pub fn unescape(text: &str) -> Result<String, KeyError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escaped = rest.get(at..at + 3).ok_or(KeyError::Malformed)?;
        match escaped {
            "%25" => out.push('%'),
            "%2F" | "%2f" => out.push('/'),
            _ => return Err(KeyError::Malformed),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A path as key segments: its parts escaped and joined with `/`; an empty part is `%`
/// (which no escape starts with), the empty path the empty string.
pub fn encode_path(path: &Path) -> String {
    path.parts()
        .iter()
        .map(|part| {
            if part.is_empty() {
                "%".to_owned()
            } else {
                escape(part)
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The inverse of [`encode_path`].
///
/// # Errors
///
/// [`KeyError::Malformed`] for a bad escape.
pub fn decode_path(text: &str) -> Result<Path, KeyError> {
    if text.is_empty() {
        return Ok(Path::empty());
    }
    text.split('/')
        .map(|part| {
            if part == "%" {
                Ok(String::new())
            } else {
                unescape(part)
            }
        })
        .collect::<Result<Vec<String>, KeyError>>()
        .map(|parts| parts.into_iter().collect())
}

/// Why a registration ended (the task retries).
#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error("{0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("the lease expired")]
    Expired,
    #[error("no keep-alive answer within {0:?}")]
    Silent(Duration),
    #[error("etcd closed the {0} stream")]
    Closed(&'static str),
    #[error("the watch was cancelled: {0}")]
    Cancelled(String),
    /// The relay asked to leave.
    #[error("leaving")]
    Leaving,
}

/// The registry task's state.
struct Registry {
    peers: Peers,
    keys: Keys,
    node: String,
    endpoints: Vec<String>,
    /// For `https://` endpoints.
    tls: Option<TlsOptions>,
    lease: Duration,
    changes: mpsc::UnboundedReceiver<Change>,
    /// This relay's own paths, as the origin table reported them.
    local: BTreeSet<Path>,
    /// The current attempt got as far as registering.
    registered: bool,
}

impl Registry {
    async fn run(mut self, mut leave: tokio::sync::oneshot::Receiver<()>) {
        let mut first = true;
        // One line per outage at error/warn; the retries that fail during it at debug.
        let mut failing = false;
        loop {
            self.registered = false;
            let lost = self.register(&mut leave).await;
            self.peers.set_registered(false);
            if self.registered {
                failing = false;
            }
            match lost {
                Lost::Leaving => return,
                lost if failing => tracing::debug!("etcd still unreachable: {lost}"),
                lost if first => tracing::error!(
                    "cannot register in etcd at {}: {lost}; the relay serves its own sessions \
                     and retries every {RETRY:?}",
                    self.endpoints.join(",")
                ),
                lost => tracing::warn!(
                    "etcd lost: {lost}; the relay serves its own sessions and known routes, \
                     and retries every {RETRY:?}"
                ),
            }
            failing = true;
            first = false;
            // Keep following the table's changes while waiting, so the next registration
            // writes what is true then.
            let wait = tokio::time::sleep(RETRY);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    change = self.changes.recv() => match change {
                        Some(change) => self.apply_local(change),
                        None => return,
                    },
                    _ = &mut leave => return,
                }
            }
        }
    }

    /// Writing `path`'s key, bound to `lease`.
    fn put_op(&self, path: &Path, lease: i64) -> TxnOp {
        let options = PutOptions::new().with_lease(lease);
        TxnOp::put(self.keys.origin(path), self.node.clone(), Some(options))
    }

    fn apply_local(&mut self, change: Change) {
        match change {
            Change::Register(path) => self.local.insert(path),
            Change::Unregister(path) => self.local.remove(&path),
        };
    }

    /// One registration: connect, lease, write, read, watch, until something fails.
    async fn register(&mut self, leave: &mut tokio::sync::oneshot::Receiver<()>) -> Lost {
        let timeout = self.lease.max(Duration::from_secs(1));
        let mut options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout);
        if let Some(tls) = &self.tls {
            options = options.with_tls(tls.clone());
        }
        let mut client = match Client::connect(&self.endpoints, Some(options)).await {
            Ok(client) => client,
            Err(err) => return err.into(),
        };
        match self.session(&mut client, leave).await {
            Ok(never) => match never {},
            Err(lost) => lost,
        }
    }

    async fn session(
        &mut self,
        client: &mut Client,
        leave: &mut tokio::sync::oneshot::Receiver<()>,
    ) -> Result<std::convert::Infallible, Lost> {
        let ttl = i64::try_from(self.lease.as_secs().max(1)).unwrap_or(i64::MAX);
        let granted = client.lease_grant(ttl, None).await?;
        let lease = granted.id();
        // etcd may grant a longer TTL than asked (its minimum depends on its election
        // timeout): renew by what it granted.
        let granted_ttl = Duration::from_secs(u64::try_from(granted.ttl()).unwrap_or(1).max(1));
        // Renewed from now on, on a task of its own: the writes below must not let a short
        // lease expire on a slow etcd, and a long write later must not either.
        let (keeper, acks) = client.lease_keep_alive(lease).await?;
        let mut renewing = AbortOnDrop(tokio::spawn(keep_alive(keeper, acks, granted_ttl)));
        let put = || Some(PutOptions::new().with_lease(lease));
        client
            .put(self.keys.node.clone(), self.node.clone(), put())
            .await?;
        // Changes queued until now are part of what is written.
        while let Ok(change) = self.changes.try_recv() {
            self.apply_local(change);
        }
        // What an earlier registration of this node left (under a lease not yet expired)
        // and the relay no longer serves goes; what it still serves is written over below,
        // moving to the new lease without a delete (the others' routes do not flap).
        let left = client
            .get(
                self.keys.own_origins.clone(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await?;
        let stale: Vec<TxnOp> = left
            .kvs()
            .iter()
            .filter(|kv| match self.keys.parse(kv.key()) {
                Ok(Entry::Origin(node, path)) => node != self.node || !self.local.contains(&path),
                _ => true,
            })
            .map(|kv| TxnOp::delete(kv.key(), None))
            .collect();
        write(client, stale).await?;
        let puts = self.local.iter().map(|path| self.put_op(path, lease));
        write(client, puts.collect()).await?;
        let listed = client
            .get(
                self.keys.prefix.clone(),
                Some(GetOptions::new().with_prefix()),
            )
            .await?;
        let revision = listed.header().map_or(0, |header| header.revision());
        let mut view: HashMap<String, NodeView> = HashMap::new();
        for kv in listed.kvs() {
            match self.keys.parse(kv.key()) {
                Ok(Entry::Node(node)) => view.entry(node).or_default().alive = true,
                Ok(Entry::Origin(node, path)) => {
                    view.entry(node).or_default().paths.insert(path);
                }
                Err(err) => tracing::warn!(%err, key = ?kv.key_str(), "ignoring a registry key"),
            }
        }
        self.peers.replace(view);
        let mut watch = client
            .watch(
                self.keys.prefix.clone(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await?;
        self.peers.set_registered(true);
        self.registered = true;
        tracing::info!(
            lease = format_args!("{lease:x}"),
            ttl = ?granted_ttl,
            paths = self.local.len(),
            "registered in etcd"
        );

        loop {
            tokio::select! {
                lost = &mut renewing.0 => {
                    return Err(lost.unwrap_or(Lost::Closed("keep-alive")));
                }
                change = self.changes.recv() => {
                    let Some(change) = change else { return Err(Lost::Leaving) };
                    // With what queued meanwhile, written in as few round trips as it takes.
                    // Recorded first: if the write fails, the next registration writes it.
                    let batch = take_batch(change, &mut self.changes, &mut self.local);
                    let ops = batch.iter().map(|(path, &registered)| {
                        if registered {
                            self.put_op(path, lease)
                        } else {
                            TxnOp::delete(self.keys.origin(path), None)
                        }
                    });
                    write(client, ops.collect()).await?;
                }
                event = watch.message() => {
                    let Some(response) = event? else { return Err(Lost::Closed("watch")) };
                    if response.canceled() {
                        return Err(Lost::Cancelled(response.cancel_reason().to_owned()));
                    }
                    for event in response.events() {
                        let Some(kv) = event.kv() else { continue };
                        let entry = match self.keys.parse(kv.key()) {
                            Ok(entry) => entry,
                            Err(err) => {
                                tracing::warn!(%err, key = ?kv.key_str(), "ignoring a registry key");
                                continue;
                            }
                        };
                        let put = event.event_type() == EventType::Put;
                        match entry {
                            Entry::Node(node) => {
                                tracing::info!(%node, "{}", if put { "peer joined" } else { "peer left" });
                                self.peers.set_alive(&node, put);
                            }
                            Entry::Origin(node, path) if put => self.peers.add_path(&node, path),
                            Entry::Origin(node, path) => self.peers.remove_path(&node, &path),
                        }
                    }
                }
                _ = &mut *leave => {
                    // Revoked: etcd deletes the keys now, and every watcher hears at once.
                    let _ = tokio::time::timeout(granted_ttl, client.lease_revoke(lease)).await;
                    return Err(Lost::Leaving);
                }
            }
        }
    }
}

/// Writes per etcd transaction: half of etcd's default `--max-txn-ops` (128), so that one
/// configured lower, down to 64, still takes them.
const OPS_PER_TXN: usize = 64;

/// Changes taken from the queue for one round of writes (a few transactions).
const CHANGES_PER_ROUND: usize = 16 * OPS_PER_TXN;

/// `first` and what queued after it (at most [`CHANGES_PER_ROUND`] changes), applied to
/// `local` and gathered for one round of writes: each path once, with its last change (true:
/// registered). A transaction may not name a key twice, and a path registered and ended in
/// one round needs only its end written.
fn take_batch(
    first: Change,
    queue: &mut mpsc::UnboundedReceiver<Change>,
    local: &mut BTreeSet<Path>,
) -> BTreeMap<Path, bool> {
    let mut batch = BTreeMap::new();
    let mut next = Some(first);
    let mut taken = 0;
    while let Some(change) = next {
        taken += 1;
        match change {
            Change::Register(path) => {
                local.insert(path.clone());
                batch.insert(path, true);
            }
            Change::Unregister(path) => {
                local.remove(&path);
                batch.insert(path, false);
            }
        }
        next = if taken < CHANGES_PER_ROUND {
            queue.try_recv().ok()
        } else {
            None
        };
    }
    batch
}

/// Writes `ops` (puts and deletes of distinct keys) in transactions of [`OPS_PER_TXN`]: a
/// round trip per batch rather than per key (65,000 paths of a relay re-registering were
/// 65,000 round trips, each a disk sync on etcd's side).
async fn write(client: &mut Client, mut ops: Vec<TxnOp>) -> Result<(), etcd_client::Error> {
    while !ops.is_empty() {
        let rest = ops.split_off(ops.len().min(OPS_PER_TXN));
        client.txn(Txn::new().and_then(ops)).await?;
        ops = rest;
    }
    Ok(())
}

/// Renews the lease every third of its TTL until that fails, etcd says it expired, or no
/// answer came for a whole TTL; returns why.
async fn keep_alive(
    mut keeper: LeaseKeeper,
    mut acks: LeaseKeepAliveStream,
    ttl: Duration,
) -> Lost {
    let mut ticker = tokio::time::interval(ttl / 3);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut acked = Instant::now();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if acked.elapsed() > ttl {
                    return Lost::Silent(ttl);
                }
                // Bounded: a stalled stream must not stop the checks above.
                match tokio::time::timeout(ttl, keeper.keep_alive()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => return err.into(),
                    Err(_) => return Lost::Silent(ttl),
                }
            }
            ack = acks.message() => match ack {
                Ok(Some(ack)) if ack.ttl() > 0 => acked = Instant::now(),
                Ok(Some(_)) => return Lost::Expired,
                Ok(None) => return Lost::Closed("keep-alive"),
                Err(err) => return err.into(),
            },
        }
    }
}

/// Aborts the task when dropped (the registration it belongs to ended).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_holds_each_path_once_with_its_last_change() {
        let (sender, mut queue) = mpsc::unbounded_channel();
        let p = |name: &str| Path::from([name]);
        let mut local = BTreeSet::from([p("kept"), p("ended")]);
        for change in [
            Change::Register(p("flicker")),
            Change::Unregister(p("flicker")),
            Change::Unregister(p("ended")),
            Change::Unregister(p("back")),
            Change::Register(p("back")),
        ] {
            sender.send(change).unwrap();
        }
        let batch = take_batch(Change::Register(p("new")), &mut queue, &mut local);
        assert_eq!(
            batch.into_iter().collect::<Vec<_>>(),
            [
                (p("back"), true),
                (p("ended"), false),
                (p("flicker"), false),
                (p("new"), true)
            ]
        );
        assert_eq!(local, BTreeSet::from([p("back"), p("kept"), p("new")]));

        // At most a round's worth; the rest waits for the next.
        for i in 0..CHANGES_PER_ROUND + 5 {
            sender.send(Change::Register(p(&i.to_string()))).unwrap();
        }
        let first = queue.try_recv().unwrap();
        assert_eq!(
            take_batch(first, &mut queue, &mut local).len(),
            CHANGES_PER_ROUND
        );
        assert_eq!(queue.len(), 5);
    }

    #[test]
    fn a_config_never_shows_its_key() {
        let config = EtcdConfig::new(vec!["https://127.0.0.1:2379".into()])
            .with_ca_pem("CA PEM")
            .with_identity_pem("CHAIN PEM", "SECRET KEY PEM");
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("83, 69, 67"),
            "{shown}"
        );
        assert!(shown.contains("https://127.0.0.1:2379"), "{shown}");
    }

    #[test]
    fn keys_round_trip_and_bad_keys_are_errors() {
        let keys = Keys::new("/moq/", "moqf://relay-a:4443/");
        assert_eq!(keys.node, "/moq/nodes/moqf:%2F%2Frelay-a:4443%2F");
        let path = Path::from(["room", "a/b", "", "50%"]);
        let key = keys.origin(&path);
        assert_eq!(
            key,
            "/moq/origins/moqf:%2F%2Frelay-a:4443%2F/room/a%2Fb/%/50%25"
        );
        assert_eq!(
            keys.parse(key.as_bytes()),
            Ok(Entry::Origin("moqf://relay-a:4443/".into(), path))
        );
        assert_eq!(
            keys.parse(keys.origin(&Path::empty()).as_bytes()),
            Ok(Entry::Origin("moqf://relay-a:4443/".into(), Path::empty()))
        );
        assert_eq!(
            keys.parse(keys.node.as_bytes()),
            Ok(Entry::Node("moqf://relay-a:4443/".into()))
        );
        assert_eq!(keys.parse(b"/moq/other"), Err(KeyError::Foreign));
        assert_eq!(keys.parse(b"/elsewhere"), Err(KeyError::Foreign));
        assert_eq!(
            keys.parse(b"/moq/origins/node-only"),
            Err(KeyError::Malformed)
        );
        assert_eq!(keys.parse(b"/moq/nodes/bad%zz"), Err(KeyError::Malformed));
        assert_eq!(keys.parse(b"/moq/nodes/cut%2"), Err(KeyError::Malformed));
        assert_eq!(keys.parse(b"/moq/nodes/\xff"), Err(KeyError::NotText));
    }
}
