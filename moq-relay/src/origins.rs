//! [`Origins`]: which session announced which path, and the relay-wide announcements.
//!
//! The table is in-process and complete for a single relay. A cluster adds two things
//! through one seam: an [`OriginRegistry`] that hears about this relay's own paths (to
//! publish them in a shared registry such as etcd), and remote routes (paths other relays
//! announce, served through a session to that relay) that the cluster code inserts with
//! [`Origins::announce_remote`]. Remote routes are never reported to the registry, so no
//! path loops back to where it came from.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use moq_model::{AnnouncedConsumer, AnnouncedProducer, AnnouncedSource, Path};
use moq_session::Session;

/// The id the relay gives each accepted session (for logs and the tables).
pub type SessionId = u64;

/// Hears when this relay starts and stops serving a path itself: the first of its own
/// sessions announces it, or the last of them ends it. Remote routes are not reported.
///
/// Called with the origin table locked: an implementation must only record or queue the
/// change (a channel send), never block or call back into [`Origins`].
pub trait OriginRegistry: Send + Sync + 'static {
    /// A session of this relay announces `path` (absolute), and none did before.
    fn register(&self, path: &Path);
    /// No session of this relay announces `path` any more.
    fn unregister(&self, path: &Path);
}

/// The announcers of every path, most recent last, and one [`AnnouncedProducer`] that
/// reports each path while at least one session announces it.
///
/// Routing picks the most recent announcer that is still announcing; when it ends, the one
/// before it (if still announcing) takes over, so a path stays reachable as long as anyone
/// announces it. Cheap to [`Clone`]: clones share the tables.
#[derive(Clone, Default)]
pub struct Origins {
    inner: Arc<Mutex<Tables>>,
}

#[derive(Default)]
struct Tables {
    routes: HashMap<Path, Vec<Announcer>>,
    /// The paths each session announces, so that its end costs its own paths only.
    by_session: HashMap<SessionId, HashSet<Path>>,
    announced: AnnouncedProducer,
    /// Paths with at least one remote announcer (another relay of the cluster).
    remote: usize,
    /// Told about this relay's own paths (a cluster's registry); `None` on a single relay.
    registry: Option<Arc<dyn OriginRegistry>>,
}

impl Tables {
    /// `id` no longer announces `path`; the path ends once nobody announces it.
    fn remove_owner(&mut self, path: &Path, id: SessionId) {
        let Some(owners) = self.routes.get_mut(path) else {
            return;
        };
        let (local_before, remote_before) = counts(owners);
        owners.retain(|owner| owner.id != id);
        let (local_after, remote_after) = counts(owners);
        let empty = owners.is_empty();
        if empty {
            self.routes.remove(path);
            self.announced.unannounce(path);
        }
        if remote_before && !remote_after {
            self.remote -= 1;
        }
        if local_before
            && !local_after
            && let Some(registry) = &self.registry
        {
            registry.unregister(path);
        }
    }
}

impl Tables {
    /// `id` (remote or not) becomes the most recent announcer of `path`.
    fn insert(&mut self, path: Path, id: SessionId, session: &Session, root: &Path, remote: bool) {
        self.by_session.entry(id).or_default().insert(path.clone());
        let owners = self.routes.entry(path.clone()).or_default();
        let (local_before, remote_before) = counts(owners);
        owners.retain(|owner| owner.id != id);
        owners.push(Announcer {
            id,
            session: session.clone(),
            root: root.clone(),
            remote,
        });
        let (local_after, remote_after) = counts(owners);
        let first = owners.len() == 1;
        if remote_after && !remote_before {
            self.remote += 1;
        }
        if !local_before
            && local_after
            && let Some(registry) = &self.registry
        {
            registry.register(&path);
        }
        if first {
            self.announced.announce(path);
        }
    }
}

/// Whether `owners` include a local announcer, and a remote one.
fn counts(owners: &[Announcer]) -> (bool, bool) {
    (
        owners.iter().any(|owner| !owner.remote),
        owners.iter().any(|owner| owner.remote),
    )
}

/// One session announcing a path, and the root its own paths are relative to.
#[derive(Clone)]
struct Announcer {
    id: SessionId,
    session: Session,
    root: Path,
    /// A route to another relay of the cluster (never reported to the registry).
    remote: bool,
}

/// Where to subscribe to a track: the announcing session, and the track's path as that
/// session names it (relative to its root).
#[derive(Clone, Debug)]
pub struct Route {
    /// The announcing session's id.
    pub id: SessionId,
    /// The announcing session.
    pub session: Session,
    /// The track's path relative to the announcing session's root.
    pub path: Path,
    /// True if the announcer is another relay of the cluster.
    pub remote: bool,
}

impl Origins {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `session`, whose paths are relative to `root`, announced the absolute `path`: it
    /// becomes the path's owner (latest wins). False (and nothing changes) if `path` is new
    /// and `max` paths are announced already.
    pub fn announce(
        &self,
        path: Path,
        id: SessionId,
        session: &Session,
        root: &Path,
        max: usize,
    ) -> bool {
        let mut tables = self.lock();
        if !tables.routes.contains_key(&path) && tables.routes.len() >= max {
            return false;
        }
        tables.insert(path, id, session, root, false);
        true
    }

    /// Another relay of the cluster announces the absolute `path`, served through
    /// `session` (a session to that relay, whose root is the empty path). Remote routes
    /// are not bounded by the relay's announce limit (the other relay bounds its own) and
    /// are never reported to the [`OriginRegistry`].
    pub fn announce_remote(&self, path: Path, id: SessionId, session: &Session) {
        self.lock().insert(path, id, session, &Path::empty(), true);
    }

    /// Makes `registry` hear about this relay's own paths from now on, starting with every
    /// path its sessions announce right now (so it may be set after sessions arrived).
    pub fn set_registry(&self, registry: Arc<dyn OriginRegistry>) {
        let mut tables = self.lock();
        for (path, owners) in &tables.routes {
            if counts(owners).0 {
                registry.register(path);
            }
        }
        tables.registry = Some(registry);
    }

    /// The paths this relay's own sessions announce (not the remote routes), sorted.
    pub fn local_paths(&self) -> Vec<Path> {
        let mut paths: Vec<Path> = self
            .lock()
            .routes
            .iter()
            .filter(|(_, owners)| counts(owners).0)
            .map(|(path, _)| path.clone())
            .collect();
        paths.sort();
        paths
    }

    /// How many paths are announced by another relay of the cluster (some may be
    /// announced here too).
    pub fn remote_len(&self) -> usize {
        self.lock().remote
    }

    /// `session` no longer announces `path`. The path is reported ended once nobody
    /// announces it.
    pub fn unannounce(&self, path: &Path, id: SessionId) {
        let mut tables = self.lock();
        if let Some(paths) = tables.by_session.get_mut(&id) {
            paths.remove(path);
        }
        tables.remove_owner(path, id);
    }

    /// Forgets every path `id` announced (its session ended); returns how many.
    ///
    /// In batches, with the tables released and the task yielding in between: ending
    /// 65,000 paths takes a core about 150 ms, which must not keep the other sessions'
    /// tasks (queued on the same executor thread) waiting.
    pub async fn remove_session(&self, id: SessionId) -> usize {
        const BATCH: usize = 64;
        let mut removed = 0;
        loop {
            {
                // A batch at a time out of the index too: if this future is dropped between
                // batches, `forget_session` still finds the rest.
                let mut tables = self.lock();
                let Some(paths) = tables.by_session.get_mut(&id) else {
                    return removed;
                };
                let batch: Vec<Path> = paths.iter().take(BATCH).cloned().collect();
                for path in &batch {
                    paths.remove(path);
                }
                if paths.is_empty() {
                    tables.by_session.remove(&id);
                }
                for path in &batch {
                    tables.remove_owner(path, id);
                }
                removed += batch.len();
            }
            tokio::task::yield_now().await;
        }
    }

    /// [`remove_session`](Self::remove_session) at once, where waiting is not possible
    /// (a session task dropped half-way).
    pub fn forget_session(&self, id: SessionId) -> usize {
        let mut tables = self.lock();
        let paths = tables.by_session.remove(&id).unwrap_or_default();
        for path in &paths {
            tables.remove_owner(path, id);
        }
        paths.len()
    }

    /// Where to ask for the track at the absolute `path`: the most recent announcer of
    /// `path` itself, or else of its longest announced prefix (a broadcast announced by its
    /// path). Among the announcers of one path, this relay's own sessions come before
    /// other relays (no hop when the publisher is here).
    pub fn route(&self, path: &Path) -> Option<Route> {
        self.find(path, true)
    }

    /// [`route`](Self::route) among this relay's own sessions only: what a request from
    /// another relay of the cluster may reach (it asks only for paths this relay
    /// registered; forwarding it to a third relay could loop on stale routes).
    pub fn route_local(&self, path: &Path) -> Option<Route> {
        self.find(path, false)
    }

    fn find(&self, path: &Path, remote: bool) -> Option<Route> {
        let tables = self.lock();
        let parts = path.parts();
        let owner = (0..=parts.len()).rev().find_map(|n| {
            let prefix: Path = parts[..n].iter().cloned().collect();
            let owners = tables.routes.get(&prefix)?;
            owners
                .iter()
                .rev()
                .find(|owner| !owner.remote)
                .or_else(|| owners.last().filter(|_| remote))
                .cloned()
        })?;
        // An announcer's paths are under its root, so the strip cannot fail.
        let relative = path.strip_prefix(&owner.root)?;
        Some(Route {
            id: owner.id,
            session: owner.session,
            path: relative,
            remote: owner.remote,
        })
    }

    /// The announced paths, to follow on demand ([`AnnouncedSource`]).
    pub fn source(&self) -> AnnouncedSource {
        self.lock().announced.source()
    }

    /// Follows the announced paths under `prefix`.
    pub fn consume(&self, prefix: impl Into<Path>) -> AnnouncedConsumer {
        self.lock().announced.consume(prefix)
    }

    /// How many paths are announced right now.
    pub fn len(&self) -> usize {
        self.lock().routes.len()
    }

    /// True if no path is announced.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The paths announced right now, sorted.
    pub fn paths(&self) -> Vec<Path> {
        let mut paths: Vec<Path> = self.lock().routes.keys().cloned().collect();
        paths.sort();
        paths
    }
}

impl std::fmt::Debug for Origins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origins")
            .field("paths", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moq_session::transport::memory::{self, Config};

    /// Records what the table reports to a cluster registry.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl OriginRegistry for Recorder {
        fn register(&self, path: &Path) {
            self.0.lock().unwrap().push(format!("+{path}"));
        }
        fn unregister(&self, path: &Path) {
            self.0.lock().unwrap().push(format!("-{path}"));
        }
    }

    impl Recorder {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    /// A session over an in-memory connection (its peer kept alive by the returned one).
    async fn session() -> (Session, Session) {
        let (client, server) = memory::pair(Config::default());
        let accept = tokio::spawn(Session::accept(server));
        let (ours, driver) = Session::connect(client).await.unwrap();
        tokio::spawn(driver);
        let (theirs, driver) = accept.await.unwrap().unwrap();
        tokio::spawn(driver);
        (ours, theirs)
    }

    #[tokio::test]
    async fn the_registry_hears_of_local_paths_only_and_routes_prefer_local() {
        let origins = Origins::new();
        let (local, _l) = session().await;
        let (link, _k) = session().await;
        let path = Path::from(["room", "a"]);
        let early = Path::from(["early"]);
        // A path announced before the registry is set is reported when it is set.
        assert!(origins.announce(early.clone(), 1, &local, &Path::empty(), 10));
        let recorder = Arc::new(Recorder::default());
        origins.set_registry(recorder.clone());
        assert_eq!(recorder.take(), ["+early"]);

        // A remote route: routed (no local announcer), counted, never registered.
        origins.announce_remote(path.clone(), 100, &link);
        assert_eq!(recorder.take(), Vec::<String>::new());
        assert_eq!(origins.remote_len(), 1);
        assert!(origins.route(&path).unwrap().remote);
        assert!(origins.route_local(&path).is_none());
        // A local announcer of the same path: registered once, and preferred even though
        // the remote one came first.
        assert!(origins.announce(path.clone(), 2, &local, &Path::empty(), 10));
        assert!(origins.announce(path.clone(), 3, &local, &Path::empty(), 10));
        assert_eq!(recorder.take(), ["+room/a"]);
        origins.announce_remote(path.clone(), 100, &link);
        let route = origins.route(&path).unwrap();
        assert!(!route.remote);
        assert_eq!(route.id, 3);
        assert_eq!(
            origins
                .route_local(&Path::from(["room", "a", "video"]))
                .unwrap()
                .id,
            3
        );
        assert_eq!(origins.local_paths(), [early.clone(), path.clone()]);

        // The local announcers leave: unregistered once, at the last; the remote route
        // serves again.
        origins.unannounce(&path, 3);
        assert_eq!(recorder.take(), Vec::<String>::new());
        origins.forget_session(2);
        assert_eq!(recorder.take(), ["-room/a"]);
        assert!(origins.route(&path).unwrap().remote);
        // The link goes: the path ends, nothing registered or unregistered.
        assert_eq!(origins.remove_session(100).await, 1);
        assert_eq!(origins.remote_len(), 0);
        assert!(origins.route(&path).is_none());
        assert_eq!(recorder.take(), Vec::<String>::new());
        assert_eq!(origins.paths(), [early]);
    }
}
