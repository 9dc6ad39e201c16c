//! [`Path`]: the name of a track, a tuple of strings compared part by part.

use std::fmt;
use std::sync::Arc;

/// The name of a track or a broadcast: an ordered tuple of UTF-8 strings (WIRE.md §3.7).
///
/// Prefix matching is part-wise, never on a concatenated string: `["a", "bc"]` does not start
/// with `["a", "b"]`. Zero parts is legal (the empty prefix matches everything), and so are
/// empty parts. Paths order part by part, byte-wise, with a shorter path first on a common
/// prefix (the order the announce stream reports in, WIRE.md §4.3).
///
/// Cloning is cheap (a reference count): paths are copied into every announcement and route.
///
/// ```
/// use moq_proto::Path;
///
/// let track = Path::from(["room1", "alice", "video"]);
/// let room = Path::from(["room1"]);
/// assert!(track.starts_with(&room));
/// assert_eq!(track.strip_prefix(&room), Some(Path::from(["alice", "video"])));
/// assert!(!track.starts_with(&Path::from(["room"])));
/// assert_eq!(room.join(&Path::from(["bob"])), Path::from(["room1", "bob"]));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path(Arc<[String]>);

impl Path {
    /// The empty path (zero parts); as a prefix it matches every path.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The number of parts.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if the path has no parts.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[String] {
        &self.0
    }

    /// The part at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.0.get(index).map(String::as_str)
    }

    /// The sum of the parts' lengths in bytes (what the path limits of the codec count).
    pub fn byte_len(&self) -> usize {
        self.0.iter().map(String::len).sum()
    }

    /// True if the first parts of `self` are exactly the parts of `prefix`.
    pub fn starts_with(&self, prefix: &Path) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// The parts after `prefix`, or `None` if `self` does not start with it.
    pub fn strip_prefix(&self, prefix: &Path) -> Option<Path> {
        self.0
            .strip_prefix(&*prefix.0)
            .map(|rest| rest.iter().cloned().collect())
    }

    /// The parts of `self` followed by the parts of `suffix`.
    pub fn join(&self, suffix: &Path) -> Path {
        if suffix.is_empty() {
            return self.clone();
        }
        self.0.iter().chain(suffix.0.iter()).cloned().collect()
    }

    /// A new path with one more part at the end.
    pub fn push(&self, part: impl Into<String>) -> Path {
        self.0
            .iter()
            .cloned()
            .chain(std::iter::once(part.into()))
            .collect()
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

/// Shows the parts joined by `/`, for people (and logs): control characters are shown
/// escaped (`\n`), so that a path from a peer cannot forge a line of a log. Parts may
/// themselves contain `/`, so this is not a unique encoding; use [`Path::parts`] when that
/// matters.
///
/// ```
/// use moq_proto::Path;
///
/// assert_eq!(Path::from(["room", "alice"]).to_string(), "room/alice");
/// assert_eq!(Path::from(["a\nINFO forged"]).to_string(), "a\\nINFO forged");
/// ```
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            if part.chars().any(char::is_control) {
                for c in part.chars() {
                    if c.is_control() {
                        write!(f, "{}", c.escape_default())?;
                    } else {
                        write!(f, "{c}")?;
                    }
                }
            } else {
                f.write_str(part)?;
            }
        }
        Ok(())
    }
}

impl<S: Into<String>> FromIterator<S> for Path {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self(iter.into_iter().map(Into::into).collect())
    }
}

impl From<Vec<String>> for Path {
    fn from(parts: Vec<String>) -> Self {
        Self(parts.into())
    }
}

impl<S: Into<String>, const N: usize> From<[S; N]> for Path {
    fn from(parts: [S; N]) -> Self {
        parts.into_iter().collect()
    }
}

impl From<&[&str]> for Path {
    fn from(parts: &[&str]) -> Self {
        parts.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_part_wise() {
        let p = Path::from(["a", "bc"]);
        assert!(!p.starts_with(&Path::from(["a", "b"])));
        assert!(p.starts_with(&Path::from(["a"])));
        assert!(p.starts_with(&Path::empty()));
        assert!(p.starts_with(&p));
        assert_eq!(p.strip_prefix(&p), Some(Path::empty()));
        assert_eq!(p.strip_prefix(&Path::from(["b"])), None);
    }

    #[test]
    fn ordering_matches_announce_order() {
        let mut paths = vec![
            Path::from(["b"]),
            Path::from(["a", "z"]),
            Path::from(["a"]),
            Path::from(["", "x"]),
            Path::empty(),
        ];
        paths.sort();
        assert_eq!(
            paths,
            vec![
                Path::empty(),
                Path::from(["", "x"]),
                Path::from(["a"]),
                Path::from(["a", "z"]),
                Path::from(["b"]),
            ]
        );
    }

    #[test]
    fn display_and_debug() {
        let p = Path::from(["room", "alice"]);
        assert_eq!(p.to_string(), "room/alice");
        assert_eq!(format!("{p:?}"), r#"["room", "alice"]"#);
        assert_eq!(p.byte_len(), 9);
        assert_eq!(p.push("video").get(2), Some("video"));
    }
}
