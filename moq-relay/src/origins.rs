//! [`Origins`]: which session announced which path, and the relay-wide announcements.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use moq_model::{AnnouncedConsumer, AnnouncedProducer, AnnouncedSource, Path};
use moq_session::Session;

/// The id the relay gives each accepted session (for logs and the tables).
pub type SessionId = u64;

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
}

impl Tables {
    /// `id` no longer announces `path`; the path ends once nobody announces it.
    fn remove_owner(&mut self, path: &Path, id: SessionId) {
        let Some(owners) = self.routes.get_mut(path) else {
            return;
        };
        owners.retain(|owner| owner.id != id);
        if owners.is_empty() {
            self.routes.remove(path);
            self.announced.unannounce(path);
        }
    }
}

/// One session announcing a path, and the root its own paths are relative to.
#[derive(Clone)]
struct Announcer {
    id: SessionId,
    session: Session,
    root: Path,
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
        tables
            .by_session
            .entry(id)
            .or_default()
            .insert(path.clone());
        let owners = tables.routes.entry(path.clone()).or_default();
        owners.retain(|owner| owner.id != id);
        owners.push(Announcer {
            id,
            session: session.clone(),
            root: root.clone(),
        });
        if owners.len() == 1 {
            tables.announced.announce(path);
        }
        true
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
    /// path).
    pub fn route(&self, path: &Path) -> Option<Route> {
        let tables = self.lock();
        let parts = path.parts();
        let owner = (0..=parts.len()).rev().find_map(|n| {
            let prefix: Path = parts[..n].iter().cloned().collect();
            tables
                .routes
                .get(&prefix)
                .and_then(|owners| owners.last().cloned())
        })?;
        // An announcer's paths are under its root, so the strip cannot fail.
        let relative = path.strip_prefix(&owner.root)?;
        Some(Route {
            id: owner.id,
            session: owner.session,
            path: relative,
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
