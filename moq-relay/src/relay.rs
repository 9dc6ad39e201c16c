//! [`Relay`]: accepts sessions, learns what each announces, and routes subscriptions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use moq_model::{Error as ModelError, Path, Router, RouterConsumer, RouterProducer, RouterRequest};
use moq_proto::ErrorCode;
use moq_session::{Session, SessionConfig};
use moq_transport_quinn::{Request, Server};
use tokio::sync::watch;
use tracing::Instrument;

use crate::origins::{Origins, SessionId};

/// How long a connected peer has to complete the MoQ session handshake.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long [`Relay::serve`] waits for sessions to close, and then for the closes to be
/// sent, after a shutdown.
pub const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// How a [`Relay`] treats its sessions.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RelayConfig {
    /// The limits every accepted session puts on its peer.
    pub session: SessionConfig,
    /// How many routing requests (subscriptions to paths a session does not publish itself)
    /// may wait to be answered at once; one more is refused with code 11.
    pub router_capacity: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            router_capacity: 1024,
        }
    }
}

impl RelayConfig {
    /// Sets [`session`](Self::session).
    pub fn with_session(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }
}

/// What the relay holds right now, summed over its sessions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Sessions accepted and not yet ended.
    pub sessions: usize,
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
}

/// One live session, as the relay's tables see it.
struct Entry {
    session: Session,
    quic: moq_transport_quinn::quinn::Connection,
}

struct Inner {
    config: RelayConfig,
    origins: Origins,
    router: RouterConsumer,
    sessions: Mutex<HashMap<SessionId, Entry>>,
    next_id: AtomicU64,
    /// Bytes of sessions that ended.
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// `Some(code)` once the relay shuts down.
    shutdown: watch::Sender<Option<ErrorCode>>,
}

impl Inner {
    fn sessions(&self) -> MutexGuard<'_, HashMap<SessionId, Entry>> {
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
        self.inner.origins.remove_session(self.id);
        let entry = self.inner.sessions().remove(&self.id);
        if let Some(entry) = entry {
            let stats = entry.quic.stats();
            self.inner
                .bytes_in
                .fetch_add(stats.udp_rx.bytes, Ordering::Relaxed);
            self.inner
                .bytes_out
                .fetch_add(stats.udp_tx.bytes, Ordering::Relaxed);
        }
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
    /// A relay with no sessions. Spawns the routing task on the current tokio runtime; it
    /// ends when the relay and all its sessions are gone.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new(config: RelayConfig) -> Self {
        let (producer, router) = Router::new(config.router_capacity).produce();
        let origins = Origins::new();
        tokio::spawn(route(producer, origins.clone()).instrument(tracing::info_span!("router")));
        let (shutdown, _) = watch::channel(None);
        Self {
            inner: Arc::new(Inner {
                config,
                origins,
                router,
                sessions: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                bytes_in: AtomicU64::new(0),
                bytes_out: AtomicU64::new(0),
                shutdown,
            }),
        }
    }

    /// The announcement and routing tables.
    pub fn origins(&self) -> &Origins {
        &self.inner.origins
    }

    /// Accepts sessions from `server` until it is closed or [`shutdown`](Self::shutdown)
    /// is called; each session runs on its own task. After a shutdown it waits (at most
    /// [`CLOSE_TIMEOUT`] twice) until the sessions are closed and the closes sent.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future stops accepting; running sessions go on.
    pub async fn serve(&self, mut server: Server) {
        let mut shutdown = self.inner.shutdown.subscribe();
        loop {
            let request = tokio::select! {
                request = server.accept() => request,
                _ = shutdown.wait_for(Option::is_some) => None,
            };
            let Some(request) = request else { break };
            let relay = self.clone();
            tokio::spawn(async move { relay.handle(request).await });
        }
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
        let url = request.url().map(|url| url.to_string());
        let conn = match request.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::debug!(%err, "connection not accepted");
                return;
            }
        };
        let quic = conn.quic().clone();
        // A peer that connects but never completes the MoQ handshake is dropped.
        let accept = Session::accept_with(conn, self.inner.config.session.clone());
        let (session, driver) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(err)) => {
                tracing::info!(%err, "handshake failed");
                quic.close(0u32.into(), b"handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!("no MoQ handshake within {HANDSHAKE_TIMEOUT:?}");
                quic.close(0u32.into(), b"handshake timeout");
                return;
            }
        };
        let driver = tokio::spawn(driver.in_current_span());
        tracing::info!(?url, "session started ({kind} from {remote})");
        self.inner.sessions().insert(
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
        // Whatever this session does not publish itself comes to the relay's router, and
        // every path any session announces is announced to it (WIRE.md §7.8).
        session.route(self.inner.router.clone());
        session.announce(self.inner.origins.consume(Path::empty()));

        let mut announced = session.announced(Path::empty());
        let mut shutdown = self.inner.shutdown.subscribe();
        let mut announcing = true;
        let end = loop {
            tokio::select! {
                event = announced.next(), if announcing => match event {
                    Ok(Some(moq_model::Announced::Active(path))) => {
                        tracing::info!(%path, "announced");
                        self.inner.origins.announce(path, id, &session);
                    }
                    Ok(Some(moq_model::Announced::Ended(path))) => {
                        tracing::info!(%path, "unannounced");
                        self.inner.origins.unannounce(&path, id);
                    }
                    // The peer ended its announcements (or refused the stream): it may
                    // still subscribe, so wait for the session's end.
                    Ok(None) | Err(_) => {
                        announcing = false;
                        self.inner.origins.remove_session(id);
                    }
                },
                err = session.closed() => break Some(err),
                _ = shutdown.wait_for(Option::is_some) => break None,
            }
        };
        match end {
            Some(err) => tracing::info!(%err, "session ended"),
            None => {
                let code = (*shutdown.borrow()).unwrap_or(ErrorCode::CANCEL);
                tracing::info!(%code, "closing session: the relay shuts down");
                session.close(code);
            }
        }
        drop(announced);
        drop(registered);
        drop(session);
        let _ = driver.await;
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
        while !self.inner.sessions().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The sessions and their counters, summed.
    pub fn stats(&self) -> RelayStats {
        let sessions = self.inner.sessions();
        let mut stats = RelayStats {
            sessions: sessions.len(),
            announced: self.inner.origins.paths().len(),
            bytes_in: self.inner.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.inner.bytes_out.load(Ordering::Relaxed),
            ..RelayStats::default()
        };
        for entry in sessions.values() {
            let session = entry.session.stats();
            stats.tracks += session.subscriptions;
            stats.subscribers += session.serving;
            stats.group_streams += session.group_streams_in + session.group_streams_out;
            let quic = entry.quic.stats();
            stats.bytes_in += quic.udp_rx.bytes;
            stats.bytes_out += quic.udp_tx.bytes;
        }
        stats
    }
}

/// Answers the sessions' requests for tracks they do not publish themselves: forward to
/// the announcer of the path, or refuse with NotFound. Each request is answered on its own
/// task ([`forward`]), so a slow upstream holds up nobody else.
async fn route(mut router: RouterProducer, origins: Origins) {
    while let Some(request) = router.requested().await {
        let track = request.track().clone();
        match origins.route(&track.path) {
            Some((id, session)) => {
                tracing::debug!(path = %track.path, upstream = id, "routed");
                let span = tracing::debug_span!("forward", path = %track.path, upstream = id);
                tokio::spawn(forward(request, session).instrument(span));
            }
            None => {
                tracing::debug!(path = %track.path, "no announcer");
                request.reject(ModelError::NotFound);
            }
        }
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
async fn forward(request: RouterRequest, upstream: Session) {
    let wanted = request.track().clone();
    let path = wanted.path.clone();
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
