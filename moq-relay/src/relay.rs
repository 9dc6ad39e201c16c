//! [`Relay`]: accepts sessions, learns what each announces, and routes subscriptions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use moq_auth::Permissions;
use moq_model::{
    CacheLimits, Error as ModelError, MemoryBudget, Path, Router, RouterProducer, RouterRequest,
};
use moq_proto::ErrorCode;
use moq_session::transport::Connection as _;
use moq_session::{Session, SessionConfig, SessionStats, SharedLimit};
use moq_transport_quinn::{Credentials, Request, Server, ServerStats, redact_url};
use tokio::sync::watch;
use tracing::Instrument;

use crate::auth::{Access, AuthConfig, Refusal};
use crate::cluster::{CLUSTER_LINK, ClusterStats, ClusterStatus};
use crate::limits::{Admission, RelayLimits};
use crate::origins::{Origins, SessionId};

/// How long a connected peer has to complete the MoQ session handshake.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a failed handshake waits for the client to close after the session stream's
/// reset, before the relay closes the connection itself.
const HANDSHAKE_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// How long [`Relay::serve`] waits for sessions to close, and then for the closes to be
/// sent, after a shutdown.
pub const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// How a [`Relay`] treats its sessions.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RelayConfig {
    /// The limits every accepted session puts on its peer.
    pub session: SessionConfig,
    /// How many routing requests (subscriptions, Info and Fetch requests) of one session
    /// may wait to be answered at once; one more is refused with code 11.
    pub router_capacity: usize,
    /// Who may connect, and what each session may publish and subscribe. Default: open.
    pub auth: AuthConfig,
    /// What the relay as a whole accepts: sessions, announced paths, subscriptions.
    pub limits: RelayLimits,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            router_capacity: 1024,
            auth: AuthConfig::default(),
            limits: RelayLimits::default(),
        }
    }
}

impl RelayConfig {
    /// Sets [`session`](Self::session).
    pub fn with_session(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }

    /// Sets [`limits`](Self::limits).
    pub fn with_limits(mut self, limits: RelayLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets [`auth`](Self::auth).
    pub fn with_auth(mut self, auth: AuthConfig) -> Self {
        self.auth = auth;
        self
    }
}

/// What the relay holds right now, summed over its sessions, and what it did since it
/// started (the totals: sessions that ended included, so they never go down).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Sessions accepted and not yet ended.
    pub sessions: usize,
    /// Connections admitted right now: the sessions and the connections still in their
    /// handshake (what [`RelayLimits::max_sessions`] bounds).
    pub connections: usize,
    /// Sessions accepted since the start (handshake done, access granted).
    pub accepted: u64,
    /// Distinct paths announced by sessions.
    pub announced: usize,
    /// Upstream subscriptions: tracks the relay subscribes to from their announcers.
    pub tracks: usize,
    /// Downstream subscriptions the relay serves.
    pub subscribers: usize,
    /// Group streams being sent and received right now.
    pub group_streams: usize,
    /// UDP bytes received since the start (sessions that ended included).
    pub bytes_in: u64,
    /// UDP bytes sent since the start (sessions that ended included).
    pub bytes_out: u64,
    /// Connections refused since the start because a relay-wide limit was reached.
    pub refused: u64,
    /// Sessions refused since the start by the access control (code 16) when they
    /// connected.
    pub unauthorized: u64,
    /// Group streams received from publishers since the start.
    pub groups_in: u64,
    /// Frames received whole on them (counted as each group stream ends).
    pub frames_in: u64,
    /// Frame payload bytes received on them (counted as each group stream ends).
    pub payload_bytes_in: u64,
    /// Group streams sent to subscribers since the start.
    pub groups_out: u64,
    /// Frames sent whole on them (counted as each group stream ends).
    pub frames_out: u64,
    /// Frame payload bytes sent on them (counted as each group stream ends).
    pub payload_bytes_out: u64,
    /// Groups never sent to a subscriber because they left the cache before their turn.
    pub groups_skipped: u64,
    /// Groups given up (expired, over the stream cap) or failed while sent to a subscriber.
    pub groups_dropped: u64,
    /// `GroupDrop` messages sent to subscribers.
    pub group_drops_sent: u64,
    /// `GroupDrop` messages received from publishers.
    pub group_drops_received: u64,
    /// Payload bytes held for the tracks the relay forwards (within
    /// [`RelayLimits::max_memory`]).
    pub memory: usize,
    /// What the relay's cluster membership looks like (all zero on a single relay).
    pub cluster: ClusterStats,
}

/// One live session, as the relay's tables see it.
struct Entry {
    session: Session,
    quic: moq_transport_quinn::quinn::Connection,
}

/// The live sessions, and the totals of those that ended: one lock, so that a session
/// moves from one to the other at once and a snapshot never sees its counts twice or not
/// at all (the totals are counters and must never go down).
#[derive(Default)]
struct Sessions {
    live: HashMap<SessionId, Entry>,
    ended: Totals,
}

/// Counts since the start, summed over sessions.
#[derive(Clone, Copy, Default)]
struct Totals {
    udp_in: u64,
    udp_out: u64,
    groups_in: u64,
    frames_in: u64,
    payload_in: u64,
    groups_out: u64,
    frames_out: u64,
    payload_out: u64,
    skipped: u64,
    dropped: u64,
    drops_sent: u64,
    drops_received: u64,
}

impl Totals {
    /// Adds the counts of the session `entry`, whose [`SessionStats`] are `session`.
    fn add(&mut self, entry: &Entry, session: &SessionStats) {
        let quic = entry.quic.stats();
        self.udp_in += quic.udp_rx.bytes;
        self.udp_out += quic.udp_tx.bytes;
        self.groups_in += session.groups_received;
        self.frames_in += session.frames_received;
        self.payload_in += session.payload_bytes_received;
        self.groups_out += session.groups_sent;
        self.frames_out += session.frames_sent;
        self.payload_out += session.payload_bytes_sent;
        self.skipped += session.groups_skipped;
        self.dropped += session.groups_dropped;
        self.drops_sent += session.group_drops_sent;
        self.drops_received += session.group_drops_received;
    }
}

struct Inner {
    config: RelayConfig,
    origins: Origins,
    sessions: Mutex<Sessions>,
    next_id: AtomicU64,
    /// Sessions open or in their handshake, in all and by address.
    admission: Admission,
    /// What the forwarded tracks' groups charge their payload to.
    memory: MemoryBudget,
    /// Connections refused by a relay-wide limit, and by the access control.
    refused: AtomicU64,
    unauthorized: AtomicU64,
    /// Sessions accepted.
    accepted: AtomicU64,
    /// [`Relay::serve`] loops accepting right now.
    serving: AtomicUsize,
    /// `Some(code)` once the relay shuts down.
    shutdown: watch::Sender<Option<ErrorCode>>,
    /// The cluster's state, as its tasks update it (all zero on a single relay).
    cluster: Arc<ClusterStatus>,
    /// The counters of the servers [`Relay::serve`] was given, for the metrics.
    servers: Mutex<Vec<ServerStats>>,
}

impl Inner {
    fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes a session out of the relay's tables when it ends, or when its task is dropped.
struct Registered {
    inner: Arc<Inner>,
    id: SessionId,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.inner.origins.forget_session(self.id);
        // Its counts move to the totals under the same lock [`Relay::stats`] reads both with.
        let mut sessions = self.inner.sessions();
        if let Some(entry) = sessions.live.remove(&self.id) {
            sessions.ended.add(&entry, &entry.session.stats());
            drop(sessions);
            drop(entry);
        }
    }
}

/// Counts a [`Relay::serve`] loop while it runs.
struct Serving<'a>(&'a AtomicUsize);

impl<'a> Serving<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The relay: every accepted session may publish (announce) and subscribe; a subscription
/// to a path this session does not publish itself is forwarded to the session that
/// announced the path most recently, and the upstream track is shared by every downstream
/// subscriber (the session de-duplicates identical subscriptions, the model fans out and
/// caches). Cheap to [`Clone`].
///
/// Must be created inside a tokio runtime (it spawns its routing task).
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay with no sessions.
    pub fn new(mut config: RelayConfig) -> Self {
        let (shutdown, _) = watch::channel(None);
        // One count of served subscriptions, shared by every session's config.
        config.session.shared_subscriptions =
            Some(SharedLimit::new(config.limits.max_subscriptions));
        let memory = MemoryBudget::new(config.limits.max_memory);
        Self {
            inner: Arc::new(Inner {
                config,
                origins: Origins::new(),
                admission: Admission::default(),
                memory,
                refused: AtomicU64::new(0),
                unauthorized: AtomicU64::new(0),
                accepted: AtomicU64::new(0),
                serving: AtomicUsize::new(0),
                sessions: Mutex::new(Sessions::default()),
                next_id: AtomicU64::new(0),
                shutdown,
                cluster: Arc::default(),
                servers: Mutex::default(),
            }),
        }
    }

    /// The announcement and routing tables.
    pub fn origins(&self) -> &Origins {
        &self.inner.origins
    }

    /// A session id no session of this relay has (for a cluster's links to other relays).
    pub(crate) fn next_session_id(&self) -> SessionId {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The counters of every server [`serve`](Self::serve) was given (they stay after it
    /// returns: their totals are since the start).
    pub fn server_stats(&self) -> Vec<ServerStats> {
        self.inner
            .servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The cluster state its tasks update and the metrics read.
    pub(crate) fn cluster_status(&self) -> &Arc<ClusterStatus> {
        &self.inner.cluster
    }

    /// Accepts sessions from `server` until it is closed or [`shutdown`](Self::shutdown)
    /// is called; each session runs on its own task. After a shutdown it waits (at most
    /// [`CLOSE_TIMEOUT`] twice) until the sessions are closed and the closes sent.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future stops accepting; running sessions go on.
    pub async fn serve(&self, mut server: Server) {
        self.inner
            .servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(server.stats());
        let mut shutdown = self.inner.shutdown.subscribe();
        let serving = Serving::new(&self.inner.serving);
        loop {
            let request = tokio::select! {
                request = server.accept() => request,
                _ = shutdown.wait_for(Option::is_some) => None,
            };
            let Some(request) = request else { break };
            let relay = self.clone();
            tokio::spawn(async move { relay.handle(request).await });
        }
        drop(serving);
        // Let the sessions close with the shutdown code, then make sure every close has
        // been sent before the endpoint goes (so peers do not wait for an idle timeout).
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.idle()).await;
        server.close();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, server.wait_idle()).await;
    }

    /// Runs one session from its connection request until it ends.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the session and forgets it.
    pub async fn handle(&self, request: Request) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!(
            "session",
            id,
            remote = %request.remote_address(),
            transport = %request.kind(),
        );
        self.run(id, request).instrument(span).await;
    }

    async fn run(&self, id: SessionId, request: Request) {
        let kind = request.kind();
        let remote: SocketAddr = request.remote_address();
        // Counted from before the handshake, so idle handshakes are bounded too.
        let _admitted = match self
            .inner
            .admission
            .admit(remote.ip(), &self.inner.config.limits)
        {
            Ok(admitted) => admitted,
            Err(reason) => {
                // At debug: under a flood, a line per refusal would be a flood of its own.
                tracing::debug!("refused: {reason}");
                self.inner.refused.fetch_add(1, Ordering::Relaxed);
                return request.reject(ErrorCode::BOUNDS_EXCEEDED, &reason);
            }
        };
        let url = request.url().map(|url| redact_url(url.as_str()));
        // The handshake's futures are boxed: they are large and short-lived, and this task
        // lives as long as the session (held inline, they would make its every byte count
        // per connection for the session's life).
        let conn = match Box::pin(request.accept()).await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::debug!(%err, "connection not accepted");
                return;
            }
        };
        // WebTransport carries the credentials in its URL. A refused session is closed
        // before the MoQ handshake, with a session close that carries the code and reason
        // (browsers show those; a CONNECT answered with an error would only say "failed").
        let early = match conn.url().map(Credentials::from_url) {
            Some(credentials) => match self.authorize(&credentials) {
                Ok(access) => Some(access),
                Err(refusal) => {
                    tracing::info!(?url, %refusal, "refused ({kind} from {remote})");
                    self.inner.unauthorized.fetch_add(1, Ordering::Relaxed);
                    conn.close(ErrorCode::UNAUTHORIZED, &refusal.0);
                    let _ =
                        tokio::time::timeout(HANDSHAKE_CLOSE_WAIT, Box::pin(conn.closed())).await;
                    return;
                }
            },
            None => None,
        };
        let quic = conn.quic().clone();
        let transport = conn.clone();
        // A peer that connects but never completes the MoQ handshake is dropped.
        let accept = Box::pin(Session::accept_with(
            conn,
            self.inner.config.session.clone(),
        ));
        let (session, driver) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(err)) => {
                // The session stream was reset and stopped with the error's code (9 for a
                // version mismatch, WIRE.md §4.2). A close sent at once would overtake the
                // reset, so the client gets a moment to read it and close first; then the
                // connection is closed with the same code.
                tracing::info!(%err, "handshake failed");
                let _ =
                    tokio::time::timeout(HANDSHAKE_CLOSE_WAIT, Box::pin(transport.closed())).await;
                transport.close(err.code(), &format!("handshake failed: {err}"));
                return;
            }
            Err(_) => {
                tracing::info!("no MoQ handshake within {HANDSHAKE_TIMEOUT:?}");
                quic.close(0u32.into(), b"handshake timeout");
                return;
            }
        };
        // Raw QUIC carries the credentials in the client's setup extensions.
        let access = match early {
            Some(access) => Ok(access),
            None => Credentials::from_extensions(session.peer_extensions())
                .map_err(|err| Refusal(err.to_string()))
                .and_then(|credentials| self.authorize(&credentials)),
        };
        let access = match access {
            Ok(access) => access,
            Err(refusal) => {
                tracing::info!(%refusal, "refused ({kind} from {remote})");
                self.inner.unauthorized.fetch_add(1, Ordering::Relaxed);
                session.close_with_reason(ErrorCode::UNAUTHORIZED, &refusal.0);
                let _ = driver.await;
                return;
            }
        };
        let root = access.permissions.root().clone();
        tracing::info!(?url, %root, "session started ({kind} from {remote})");
        self.inner.accepted.fetch_add(1, Ordering::Relaxed);
        self.inner.sessions().live.insert(
            id,
            Entry {
                session: session.clone(),
                quic: quic.clone(),
            },
        );
        let registered = Registered {
            inner: self.inner.clone(),
            id,
        };
        // Whatever this session subscribes to comes to its own router, which checks it
        // against the session's permissions; every path it may subscribe to is announced
        // to it as it comes and goes (WIRE.md §7.8), relative to its root.
        let router = Router::new(self.inner.config.router_capacity).produce();
        session.route(router.1);
        // Another relay of the cluster asks only for paths this relay registered: its
        // requests go to this relay's own publishers, never on to a third relay (stale
        // routes could otherwise send a request around in a loop).
        let link = session.peer_extensions().get(CLUSTER_LINK).is_some();
        if link {
            tracing::info!("a cluster link from another relay");
        }
        tokio::spawn(
            route(
                router.0,
                self.inner.origins.clone(),
                access.permissions.clone(),
                self.cache_limits(),
                link,
            )
            .in_current_span(),
        );
        // Sources, not consumers: nothing is queued for a session whose peer never asks.
        let table = self.inner.origins.source().rooted(&root);
        for prefix in access.permissions.subscribe_prefixes() {
            if let Some(source) = table.under(prefix) {
                session.announce(source);
            }
        }
        // Run only now: a request the peer sent right after the handshake finds the router.
        let driver = tokio::spawn(driver.in_current_span());

        let mut announced = session.announced(Path::empty());
        let mut shutdown = self.inner.shutdown.subscribe();
        let mut announcing = true;
        let mut unannounced = 0;
        let expiry = expiry_sleep(access.expires);
        tokio::pin!(expiry);
        let end = loop {
            tokio::select! {
                event = announced.next(), if announcing => match event {
                    Ok(Some(moq_model::Announced::Active(path))) => {
                        if !access.permissions.may_publish(&path) {
                            let reason = format!("not allowed to publish \"{path}\"");
                            break End::Refused(ErrorCode::UNAUTHORIZED, reason);
                        }
                        tracing::debug!(%path, "announced");
                        let path = access.permissions.absolute(&path);
                        let max = self.inner.config.limits.max_announced;
                        if !self.inner.origins.announce(path, id, &session, &root, max) {
                            let reason = format!("the relay holds the most announced paths it allows ({max})");
                            break End::Refused(ErrorCode::BOUNDS_EXCEEDED, reason);
                        }
                    }
                    Ok(Some(moq_model::Announced::Ended(path))) => {
                        tracing::debug!(%path, "unannounced");
                        self.inner.origins.unannounce(&access.permissions.absolute(&path), id);
                    }
                    // The peer ended its announcements (or refused the stream): it may
                    // still subscribe, so wait for the session's end.
                    Ok(None) | Err(_) => {
                        announcing = false;
                        unannounced += self.inner.origins.remove_session(id).await;
                    }
                },
                err = session.closed() => break End::Closed(err),
                () = &mut expiry => break End::Refused(ErrorCode::UNAUTHORIZED, "token expired".into()),
                // The borrow `wait_for` returns is dropped at once: an arm above awaits.
                () = async { let _ = shutdown.wait_for(Option::is_some).await; } => break End::Shutdown,
            }
        };
        // Close first (a refused session must not be served a moment longer), then end its
        // paths for everyone; one line says how many (each is at debug).
        let shutdown_code = (*shutdown.borrow()).unwrap_or(ErrorCode::CANCEL);
        match &end {
            End::Closed(_) => {}
            End::Refused(code, reason) => session.close_with_reason(*code, reason),
            End::Shutdown => session.close(shutdown_code),
        }
        unannounced += self.inner.origins.remove_session(id).await;
        match end {
            End::Closed(err) => tracing::info!(%err, unannounced, "session ended"),
            End::Refused(code, reason) => {
                tracing::info!(%code, unannounced, "closed the session: {reason}")
            }
            End::Shutdown => tracing::info!(
                code = %shutdown_code,
                unannounced,
                "closed the session: the relay shuts down"
            ),
        }
        // The session is closed: its driver ends once its streams are dropped, and only
        // then are its counts final (a group stream counts its frames when it ends).
        drop(announced);
        drop(session);
        let _ = driver.await;
        drop(registered);
    }

    /// The memory limits of the tracks the relay subscribes to upstream.
    pub(crate) fn cache_limits(&self) -> CacheLimits {
        CacheLimits {
            max_group_bytes: self.inner.config.limits.max_group_bytes,
            budget: Some(self.inner.memory.clone()),
            ..CacheLimits::default()
        }
    }

    /// Checks `credentials` against the relay's access control.
    fn authorize(&self, credentials: &Credentials) -> Result<Access, Refusal> {
        self.inner
            .config
            .auth
            .authorize(credentials, std::time::SystemTime::now())
    }

    /// Closes every session with `code` and stops [`serve`](Self::serve) loops.
    pub fn shutdown(&self, code: ErrorCode) {
        self.inner.shutdown.send_replace(Some(code));
    }

    /// Waits until no session is left (after [`shutdown`](Self::shutdown), for example).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only observes.
    pub async fn idle(&self) {
        while !self.inner.sessions().live.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// True while a [`serve`](Self::serve) loop accepts sessions and no
    /// [`shutdown`](Self::shutdown) was asked for: what `/healthz` reports.
    pub fn is_accepting(&self) -> bool {
        !self.is_shutting_down() && self.inner.serving.load(Ordering::Relaxed) > 0
    }

    /// True once [`shutdown`](Self::shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.borrow().is_some()
    }

    /// The relay's memory budget for forwarded tracks ([`RelayLimits::max_memory`]).
    pub fn max_memory(&self) -> usize {
        self.inner.config.limits.max_memory
    }

    /// The sessions and their counters, summed: one pass over the sessions, each asked for
    /// its [`SessionStats`] (one lock each), under the relay's table lock.
    pub fn stats(&self) -> RelayStats {
        let sessions = self.inner.sessions();
        let mut stats = RelayStats {
            sessions: sessions.live.len(),
            connections: self.inner.admission.total(),
            accepted: self.inner.accepted.load(Ordering::Relaxed),
            announced: self.inner.origins.len(),
            refused: self.inner.refused.load(Ordering::Relaxed),
            unauthorized: self.inner.unauthorized.load(Ordering::Relaxed),
            memory: self.inner.memory.used(),
            cluster: self.inner.cluster.stats(self.inner.origins.remote_len()),
            ..RelayStats::default()
        };
        let mut totals = sessions.ended;
        for entry in sessions.live.values() {
            let session = entry.session.stats();
            stats.tracks += session.subscriptions;
            stats.subscribers += session.serving;
            stats.group_streams += session.group_streams_in + session.group_streams_out;
            totals.add(entry, &session);
        }
        drop(sessions);
        // The links to other relays of a cluster are sessions the relay opened itself: their
        // subscriptions are upstream ones too.
        stats.tracks += stats.cluster.link_subscriptions;
        stats.group_streams += stats.cluster.link_group_streams;
        stats.bytes_in = totals.udp_in;
        stats.bytes_out = totals.udp_out;
        stats.groups_in = totals.groups_in;
        stats.frames_in = totals.frames_in;
        stats.payload_bytes_in = totals.payload_in;
        stats.groups_out = totals.groups_out;
        stats.frames_out = totals.frames_out;
        stats.payload_bytes_out = totals.payload_out;
        stats.groups_skipped = totals.skipped;
        stats.groups_dropped = totals.dropped;
        stats.group_drops_sent = totals.drops_sent;
        stats.group_drops_received = totals.drops_received;
        stats
    }
}

/// Answers one session's requests for tracks (subscriptions, Info and Fetch requests it
/// sends for paths relative to its root): refuse a path its permissions do not cover with
/// Unauthorized (16), forward the rest to the announcer of the absolute path, or refuse
/// with NotFound. Each request is answered on its own task ([`forward`]), so a slow
/// upstream holds up nobody else. Ends with the session (its router consumer goes).
async fn route(
    mut router: RouterProducer,
    origins: Origins,
    permissions: Permissions,
    cache: CacheLimits,
    local_only: bool,
) {
    while let Some(request) = router.requested().await {
        let path = request.track().path.clone();
        if !permissions.may_subscribe(&path) {
            tracing::debug!(%path, "not allowed to subscribe");
            request.reject(ModelError::Unauthorized);
            continue;
        }
        let absolute = permissions.absolute(&path);
        let found = if local_only {
            origins.route_local(&absolute)
        } else {
            origins.route(&absolute)
        };
        match found {
            Some(upstream) => {
                tracing::debug!(path = %absolute, upstream = upstream.id, "routed");
                let span =
                    tracing::debug_span!("forward", path = %absolute, upstream = upstream.id);
                tokio::spawn(
                    forward(request, upstream.session, upstream.path, cache.clone())
                        .instrument(span),
                );
            }
            None => {
                tracing::debug!(path = %absolute, "no announcer");
                request.reject(ModelError::NotFound);
            }
        }
    }
}

/// Why a session's loop ended.
enum End {
    /// The session ended by itself (the peer closed it, the connection was lost).
    Closed(moq_session::Error),
    /// The relay ends it with this code and reason: an announce outside its permissions
    /// or past a relay-wide limit, or its token expired.
    Refused(ErrorCode, String),
    /// The relay shuts down.
    Shutdown,
}

/// Completes when a token that expires at `expires` has expired; never without one.
async fn expiry_sleep(expires: Option<std::time::SystemTime>) {
    match expires {
        Some(at) => {
            // A day at a time: tokio caps one sleep at about two years, and the wall clock
            // may be adjusted meanwhile.
            const STEP: std::time::Duration = std::time::Duration::from_secs(86_400);
            while let Ok(left) = at.duration_since(std::time::SystemTime::now()) {
                if left.is_zero() {
                    break;
                }
                tokio::time::sleep(left.min(STEP)).await;
            }
        }
        None => std::future::pending().await,
    }
}

/// How long the relay waits for the upstream publisher's description of a track (its
/// answer to an Info request, then the group it called the latest) before it serves the
/// first downstream subscriber of the track without it.
pub const INFO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves one routed request from `upstream`.
///
/// The Info every downstream subscriber receives is built from the served track's
/// description and its latest group (WIRE.md §4.4 step 4: the track *as the publisher sees
/// it*). So, when the upstream session does not subscribe to the track yet, the relay first
/// asks the publisher for its Info (§12: "a relay without an active subscription should
/// forward an INFO request upstream"), subscribes upstream with the publisher's priority,
/// order and expiry (they break the tie between downstream subscribers who disagree), and
/// waits until the group the publisher called the latest has arrived. Unknown upstream
/// (reset 13), or an upstream subscription that fails meanwhile: the request is rejected
/// with that error (NotFound: the downstream subscription is reset with 13). A publisher
/// that does not answer Info requests within [`INFO_TIMEOUT`] (or refuses them otherwise)
/// is subscribed to with the downstream subscriber's values, as before.
async fn forward(request: RouterRequest, upstream: Session, path: Path, cache: CacheLimits) {
    // The track as the upstream session names it (relative to its root), cached within the
    // relay's memory limits.
    let mut wanted = request.track().clone();
    wanted.path = path.clone();
    wanted.cache = cache;
    // Shared with a subscription whose Info arrived: the cached track already describes
    // the publisher's view.
    if upstream.subscription_info(&path).is_some() {
        return request.serve(upstream.subscribe(wanted));
    }
    let asked = tokio::select! {
        asked = tokio::time::timeout(INFO_TIMEOUT, upstream.info(path.clone())) => asked,
        () = request.cancelled() => return,
    };
    let (track, latest) = match asked {
        Ok(Ok(info)) => {
            let mut track = wanted;
            track.priority = info.track_priority;
            track.group_order = info.group_order;
            track.group_expires = info.group_expires;
            (track, info.group_latest)
        }
        Ok(Err(err)) => match err.to_model() {
            ModelError::NotFound => {
                tracing::debug!("unknown upstream");
                return request.reject(ModelError::NotFound);
            }
            err => {
                tracing::debug!(%err, "no Info from upstream; serving without it");
                (wanted, 0)
            }
        },
        Err(_) => {
            tracing::debug!("no Info from upstream within {INFO_TIMEOUT:?}; serving without it");
            (wanted, 0)
        }
    };
    let consumer = upstream.subscribe(track);
    // Wait (bounded) for the group the publisher called the latest, or for the upstream
    // subscription to fail (its error goes downstream).
    let mut probe = consumer.clone();
    let arrived = async {
        // 0 is also "no group yet" (§5.8): nothing to wait for then.
        while latest > 0 && probe.latest().is_none_or(|have| have < latest) {
            match probe.next_group().await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(err) => return Err(err),
            }
        }
        Ok(())
    };
    let arrived = tokio::select! {
        arrived = tokio::time::timeout(INFO_TIMEOUT, arrived) => arrived,
        () = request.cancelled() => return,
    };
    drop(probe);
    match arrived {
        Ok(Err(err)) => {
            tracing::debug!(%err, "upstream subscription failed");
            request.reject(err);
        }
        Ok(Ok(())) => request.serve(consumer),
        Err(_) => {
            tracing::debug!(
                latest,
                "the latest group did not arrive within {INFO_TIMEOUT:?}"
            );
            request.serve(consumer);
        }
    }
}
