//! Broadcast ids, and which broadcast under a name is the live one.
//!
//! moq-karp 0.10 puts a broadcast at `<name>/<id>`, the id being the publisher's start time
//! in milliseconds since the Unix epoch, in decimal. A publisher that restarts gets a new,
//! larger id, so a viewer that follows the announcements under `<name>` moves to the
//! broadcast with the largest id. These are plain functions over paths; the caller feeds
//! them the announcements (e.g. from a session's `announced(name)`).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use moq_model::{Announced, Path};

/// The id of a broadcast started at `time`: milliseconds since the Unix epoch, in decimal
/// (zero for a time before the epoch).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let time = UNIX_EPOCH + Duration::from_millis(1_732_600_000_123);
/// assert_eq!(moq_media::broadcast_id(time), "1732600000123");
/// ```
pub fn broadcast_id(time: SystemTime) -> String {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis())
        .to_string()
}

/// The path of the broadcast `id` under `name`: `name` with `id` as one more part.
pub fn broadcast_path(name: &Path, id: &str) -> Path {
    name.push(id)
}

/// An id's place in the order: numbers by value, above anything that is not a number,
/// ties broken by the string.
#[derive(Clone, Debug, PartialEq, Eq)]
struct IdKey(String);

impl IdKey {
    fn number(&self) -> Option<u128> {
        let digits = self.0.trim_start_matches('0');
        if self.0.is_empty() || !self.0.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 38 {
            return None;
        }
        Some(digits.parse().unwrap_or(0))
    }
}

impl Ord for IdKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.number(), other.number()) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            (None, None) => Ordering::Equal,
        }
        .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for IdKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Follows the announcements under a broadcast name and says which broadcast is live: the
/// one with the largest id that has an announced path. Each announced path `name/<id>/...`
/// counts for `<id>` (moq-karp 0.10 announces the catalog at `name/<id>` and every track
/// below it; a session publishing a whole broadcast announces `name/<id>` once).
///
/// ```
/// use moq_media::LiveBroadcast;
/// use moq_model::{Announced, Path};
///
/// let name = Path::from(["live", "karp"]);
/// let mut live = LiveBroadcast::new(name.clone());
/// assert!(live.update(&Announced::Active(name.push("1000"))));
/// assert!(live.update(&Announced::Active(name.push("1000").push("video1"))) == false);
/// assert!(live.update(&Announced::Active(name.push("2000"))));
/// assert_eq!(live.live(), Some(name.push("2000")));
/// // The newer publisher went away: the older one is live again.
/// assert!(live.update(&Announced::Ended(name.push("2000"))));
/// assert_eq!(live.live(), Some(name.push("1000")));
/// ```
#[derive(Clone, Debug)]
pub struct LiveBroadcast {
    name: Path,
    /// Active paths per id.
    ids: BTreeMap<IdKey, usize>,
}

impl LiveBroadcast {
    /// Follows the broadcasts under `name`.
    pub fn new(name: Path) -> Self {
        Self {
            name,
            ids: BTreeMap::new(),
        }
    }

    /// The name the broadcasts are under.
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// Applies one announcement (of a full path; paths not below the name are ignored).
    /// Returns whether [`live`](Self::live) changed.
    pub fn update(&mut self, event: &Announced) -> bool {
        let Some(id) = event
            .path()
            .strip_prefix(&self.name)
            .and_then(|rest| rest.get(0).map(str::to_owned))
        else {
            return false;
        };
        let before = self.live_id().cloned();
        let id = IdKey(id);
        match event {
            Announced::Active(_) => *self.ids.entry(id).or_default() += 1,
            Announced::Ended(_) => {
                if let Some(count) = self.ids.get_mut(&id) {
                    *count -= 1;
                    if *count == 0 {
                        self.ids.remove(&id);
                    }
                }
            }
        }
        self.live_id() != before.as_ref()
    }

    /// The path of the live broadcast, if any is announced.
    pub fn live(&self) -> Option<Path> {
        self.live_id().map(|id| broadcast_path(&self.name, &id.0))
    }

    fn live_id(&self) -> Option<&IdKey> {
        self.ids.keys().next_back()
    }
}

/// The live broadcast under `name`, given every path announced now (full paths).
///
/// ```
/// use moq_model::Path;
///
/// let name = Path::from(["live", "karp"]);
/// let active = [name.push("999"), name.push("1000").push("audio2"), Path::from(["other"])];
/// assert_eq!(moq_media::live_broadcast(&name, &active), Some(name.push("1000")));
/// ```
pub fn live_broadcast<'a>(name: &Path, active: impl IntoIterator<Item = &'a Path>) -> Option<Path> {
    let mut live = LiveBroadcast::new(name.clone());
    for path in active {
        live.update(&Announced::Active(path.clone()));
    }
    live.live()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_numerically_then_as_text() {
        let mut ids: Vec<IdKey> = [
            "999",
            "1000",
            "abc",
            "0999",
            "",
            "1000000000000000000000000000000000000000000",
        ]
        .into_iter()
        .map(|s| IdKey(s.to_owned()))
        .collect();
        ids.sort();
        let sorted: Vec<&str> = ids.iter().map(|id| id.0.as_str()).collect();
        assert_eq!(
            sorted,
            [
                "",
                "1000000000000000000000000000000000000000000",
                "abc",
                "0999",
                "999",
                "1000"
            ]
        );
    }

    #[test]
    fn paths_outside_the_name_and_the_name_itself_are_ignored() {
        let name = Path::from(["live"]);
        let mut live = LiveBroadcast::new(name.clone());
        assert!(!live.update(&Announced::Active(Path::from(["other", "1"]))));
        assert!(!live.update(&Announced::Active(name.clone())));
        assert!(!live.update(&Announced::Ended(name.push("5"))));
        assert_eq!(live.live(), None);
        assert!(live.update(&Announced::Active(name.push("5").push("video1"))));
        assert!(!live.update(&Announced::Active(name.push("5"))));
        assert!(!live.update(&Announced::Ended(name.push("5").push("video1"))));
        assert!(live.update(&Announced::Ended(name.push("5"))));
        assert_eq!(live.live(), None);
    }
}
