//! [`Origins`]: which session announced which path, and the relay-wide announcements.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use moq_model::{AnnouncedConsumer, AnnouncedProducer, Path};
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
    announced: AnnouncedProducer,
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
        let Some(owners) = tables.routes.get_mut(path) else {
            return;
        };
        owners.retain(|owner| owner.id != id);
        if owners.is_empty() {
            tables.routes.remove(path);
            tables.announced.unannounce(path);
        }
    }

    /// Forgets every path `id` announced (its session ended).
    pub fn remove_session(&self, id: SessionId) {
        let mut tables = self.lock();
        let mut ended = Vec::new();
        tables.routes.retain(|path, owners| {
            owners.retain(|owner| owner.id != id);
            if owners.is_empty() {
                ended.push(path.clone());
                false
            } else {
                true
            }
        });
        for path in ended {
            tables.announced.unannounce(&path);
        }
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

    /// Follows the announced paths under `prefix`.
    pub fn consume(&self, prefix: impl Into<Path>) -> AnnouncedConsumer {
        self.lock().announced.consume(prefix)
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
            .field("paths", &self.paths())
            .finish()
    }
}
