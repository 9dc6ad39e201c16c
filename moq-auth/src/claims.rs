//! [`Claims`]: what a token says, with the claim names of the MoQ relay ecosystem.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moq_proto::Path;
use serde::{Deserialize, Deserializer, Serialize};

use crate::permissions::Grants;

/// The claims of an access token, as the MoQ relay ecosystem (`moq-token`) names them.
///
/// * `root`: the base path of the connection; a session's URL path must be the root or
///   below it.
/// * `put`: path suffixes under `root` the holder may publish; `get`: suffixes it may
///   subscribe to. Each is a string or a list of strings; `""` grants everything under
///   the root, an absent claim or `[]` grants nothing in that role. Suffixes are split on
///   `/` into path parts.
/// * `exp`, `iat`, `nbf`: expiry, issue time and not-before, in seconds since the Unix
///   epoch. A token without `exp` does not expire.
///
/// Other claims are ignored when verifying.
///
/// ```
/// use moq_auth::Claims;
///
/// let claims: Claims = serde_json::from_str(r#"{"root":"room","put":"alice","get":[""]}"#).unwrap();
/// assert_eq!(claims.put, ["alice"]);
/// let grants = claims.grants();
/// assert!(grants.may_publish(&["room", "alice", "cam"].into()));
/// assert!(grants.may_subscribe(&["room", "bob"].into()));
/// assert!(!grants.may_publish(&["room", "bob"].into()));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Claims {
    /// The base path of the connection (`""`: the relay's whole namespace).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub root: String,
    /// Path suffixes under the root the holder may publish.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub put: Vec<String>,
    /// Path suffixes under the root the holder may subscribe to.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub get: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Issue time, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not valid before this time, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl Claims {
    /// Claims with this root and no grant.
    pub fn new(root: impl Into<String>) -> Self {
        Self {
            root: root.into(),
            ..Self::default()
        }
    }

    /// The root as a path.
    pub fn root_path(&self) -> Path {
        path_of(&self.root)
    }

    /// What the token grants, as absolute paths: the root joined with each suffix.
    pub fn grants(&self) -> Grants {
        let root = self.root_path();
        let absolute = |suffixes: &[String]| -> Vec<Path> {
            suffixes
                .iter()
                .map(|suffix| root.join(&path_of(suffix)))
                .collect()
        };
        Grants {
            publish: absolute(&self.put),
            subscribe: absolute(&self.get),
        }
    }

    /// When the token expires, if it does.
    pub fn expires(&self) -> Option<SystemTime> {
        self.exp.map(|exp| UNIX_EPOCH + Duration::from_secs(exp))
    }
}

/// `text` split on `/` into path parts, empty parts dropped (`"a//b/"` is `a/b`).
pub(crate) fn path_of(text: &str) -> Path {
    text.split('/').filter(|part| !part.is_empty()).collect()
}

/// A claim that is a string or a list of strings.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_or_list_absent_or_empty() {
        let parse = |json: &str| serde_json::from_str::<Claims>(json).unwrap();
        assert_eq!(parse(r#"{"put":"a"}"#).put, ["a"]);
        assert_eq!(parse(r#"{"put":["a","b/c"]}"#).put, ["a", "b/c"]);
        assert!(parse(r#"{"put":[]}"#).grants().publish.is_empty());
        assert!(parse(r#"{}"#).grants().is_empty());
        // "" is everything under the root.
        let all = parse(r#"{"root":"r","get":""}"#).grants();
        assert_eq!(all.subscribe, [Path::from(["r"])]);
        // Wrong types are errors, not empty grants.
        assert!(serde_json::from_str::<Claims>(r#"{"put":5}"#).is_err());
        assert!(serde_json::from_str::<Claims>(r#"{"exp":"soon"}"#).is_err());
    }

    #[test]
    fn written_as_the_ecosystem_writes_them() {
        let mut claims = Claims::new("demo");
        claims.put = vec!["alice".into()];
        claims.get = vec!["".into()];
        assert_eq!(
            serde_json::to_string(&claims).unwrap(),
            r#"{"root":"demo","put":["alice"],"get":[""]}"#
        );
    }
}
