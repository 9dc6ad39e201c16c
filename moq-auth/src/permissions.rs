//! [`Grants`] (what a token or the relay's public prefixes allow, as absolute paths) and
//! [`Permissions`] (the same, seen from one session's root).

use moq_proto::Path;

/// Path prefixes one may publish under and subscribe under, as absolute paths of the
/// relay's namespace. An empty prefix covers everything.
///
/// Prefixes match part by part: `room` covers `room/a`, not `roomy`.
///
/// ```
/// use moq_auth::Grants;
/// use moq_proto::Path;
///
/// let mut grants = Grants::default();
/// grants.publish.push(Path::from(["room", "alice"]));
/// grants.subscribe.push(Path::from(["room"]));
/// assert!(grants.may_subscribe(&Path::from(["room", "bob", "video"])));
/// assert!(!grants.may_publish(&Path::from(["room", "bob"])));
/// assert!(!grants.may_subscribe(&Path::from(["roomy"])));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// Prefixes of the paths one may announce and publish.
    pub publish: Vec<Path>,
    /// Prefixes of the paths one may subscribe to (and ask Info or Fetch of), and learn
    /// of through announcements.
    pub subscribe: Vec<Path>,
}

impl Grants {
    /// Everything, for publishing and subscribing.
    pub fn everything() -> Self {
        Self {
            publish: vec![Path::empty()],
            subscribe: vec![Path::empty()],
        }
    }

    /// True if nothing is granted in either role.
    pub fn is_empty(&self) -> bool {
        self.publish.is_empty() && self.subscribe.is_empty()
    }

    /// Adds `other`'s prefixes to these.
    pub fn extend(&mut self, other: &Grants) {
        self.publish.extend(other.publish.iter().cloned());
        self.subscribe.extend(other.subscribe.iter().cloned());
    }

    /// True if `path` is under a publish prefix.
    pub fn may_publish(&self, path: &Path) -> bool {
        covered(&self.publish, path)
    }

    /// True if `path` is under a subscribe prefix.
    pub fn may_subscribe(&self, path: &Path) -> bool {
        covered(&self.subscribe, path)
    }

    /// These grants as a session rooted at `root` sees them: every prefix made relative to
    /// `root`. A prefix under the root keeps its part below it; a prefix the root is under
    /// grants the whole root; any other prefix is out of the session's reach and dropped.
    ///
    /// ```
    /// use moq_auth::Grants;
    /// use moq_proto::Path;
    ///
    /// let grants = Grants {
    ///     publish: vec![Path::from(["room", "alice"])],
    ///     subscribe: vec![Path::from(["room"]), Path::from(["lobby"])],
    /// };
    /// let session = grants.scope(&Path::from(["room"]));
    /// assert_eq!(session.publish_prefixes(), &[Path::from(["alice"])]);
    /// assert_eq!(session.subscribe_prefixes(), &[Path::empty()]); // lobby is out of reach
    /// ```
    pub fn scope(&self, root: &Path) -> Permissions {
        Permissions {
            root: root.clone(),
            publish: relative(&self.publish, root),
            subscribe: relative(&self.subscribe, root),
        }
    }
}

/// What one session may do, with paths relative to its root (the paths the session itself
/// names on the wire). Prefixes are kept minimal: none is covered by another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permissions {
    root: Path,
    publish: Vec<Path>,
    subscribe: Vec<Path>,
}

impl Permissions {
    /// Everything under `root`, in both roles (a relay without access control).
    pub fn everything(root: Path) -> Self {
        Grants::everything().scope(&root)
    }

    /// The session's root: the absolute path its own paths are relative to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of the session's relative `path`.
    pub fn absolute(&self, path: &Path) -> Path {
        self.root.join(path)
    }

    /// True if nothing is granted in either role.
    pub fn is_empty(&self) -> bool {
        self.publish.is_empty() && self.subscribe.is_empty()
    }

    /// True if the session may publish its relative `path`.
    pub fn may_publish(&self, path: &Path) -> bool {
        covered(&self.publish, path)
    }

    /// True if the session may subscribe to its relative `path` (or ask Info or Fetch).
    pub fn may_subscribe(&self, path: &Path) -> bool {
        covered(&self.subscribe, path)
    }

    /// The relative prefixes the session may publish under, none covering another.
    pub fn publish_prefixes(&self) -> &[Path] {
        &self.publish
    }

    /// The relative prefixes the session may subscribe under (and hear announcements of),
    /// none covering another.
    pub fn subscribe_prefixes(&self) -> &[Path] {
        &self.subscribe
    }
}

fn covered(prefixes: &[Path], path: &Path) -> bool {
    prefixes.iter().any(|prefix| path.starts_with(prefix))
}

/// `prefixes` relative to `root`, minimal: sorted, none covered by another.
fn relative(prefixes: &[Path], root: &Path) -> Vec<Path> {
    let mut out: Vec<Path> = prefixes
        .iter()
        .filter_map(|prefix| {
            if let Some(below) = prefix.strip_prefix(root) {
                Some(below)
            } else if root.starts_with(prefix) {
                Some(Path::empty())
            } else {
                None
            }
        })
        .collect();
    // Shorter first, so that a prefix is kept only if no kept one covers it.
    out.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    let mut minimal: Vec<Path> = Vec::with_capacity(out.len());
    for prefix in out {
        if !covered(&minimal, &prefix) {
            minimal.push(prefix);
        }
    }
    minimal.sort();
    minimal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Path {
        text.split('/').filter(|s| !s.is_empty()).collect()
    }

    #[test]
    fn matching_is_by_part() {
        let grants = Grants {
            publish: vec![p("room")],
            subscribe: vec![],
        };
        assert!(grants.may_publish(&p("room")));
        assert!(grants.may_publish(&p("room/a/b")));
        assert!(!grants.may_publish(&p("roomy")));
        assert!(!grants.may_publish(&p("roo")));
        assert!(!grants.may_publish(&Path::empty()));
        // A part that contains a slash is one part, not two.
        assert!(!grants.may_publish(&Path::from(["room/a"])));
        assert!(!grants.may_subscribe(&p("room")));
    }

    #[test]
    fn the_empty_prefix_covers_everything() {
        let grants = Grants::everything();
        assert!(grants.may_publish(&Path::empty()));
        assert!(grants.may_subscribe(&p("any/thing")));
    }

    #[test]
    fn scope_keeps_what_is_under_the_root() {
        let grants = Grants {
            publish: vec![p("room/alice"), p("other")],
            subscribe: vec![p("room"), p("room/bob")],
        };
        let session = grants.scope(&p("room"));
        assert_eq!(session.root(), &p("room"));
        assert_eq!(session.publish_prefixes(), &[p("alice")]);
        // room covers room/bob: one prefix remains, the whole root.
        assert_eq!(session.subscribe_prefixes(), &[Path::empty()]);
        assert!(session.may_publish(&p("alice/cam")));
        assert!(!session.may_publish(&p("bob")));
        assert_eq!(session.absolute(&p("alice/cam")), p("room/alice/cam"));

        // A narrower root than the grant gets the whole root.
        let narrow = grants.scope(&p("room/alice/cam"));
        assert_eq!(narrow.publish_prefixes(), &[Path::empty()]);
        // A sibling root gets nothing.
        assert!(grants.scope(&p("lobby")).is_empty());
        // A broader root keeps the grants below it.
        let broad = grants.scope(&Path::empty());
        assert_eq!(broad.publish_prefixes(), &[p("other"), p("room/alice")]);
    }
}
