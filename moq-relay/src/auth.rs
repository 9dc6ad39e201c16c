//! [`AuthConfig`]: who may connect to the relay, and what each session may do.
//!
//! A session presents [`Credentials`]: the root path of its URL and, optionally, a JWT
//! (`?jwt=` in a WebTransport URL, setup extensions on raw QUIC). The relay verifies the
//! token with its keys, checks that the root is the token's root or under it, and turns the
//! token's `put` and `get` claims, plus the relay's public prefixes, into the session's
//! [`Permissions`]. `docs/auth.md` in the repository is the user's guide.

use std::time::SystemTime;

use moq_auth::{Grants, KeySet, Permissions};
use moq_proto::Path;
use moq_transport_quinn::Credentials;

/// The relay's access control: the keys tokens are verified with, and the path prefixes
/// open to everyone. The default is an open relay (no keys, no public prefix): every
/// session may publish and subscribe anything under its root, tokens are ignored.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct AuthConfig {
    /// The keys that verify tokens; `None`: tokens are not accepted.
    pub keys: Option<KeySet>,
    /// Prefixes anyone may publish and subscribe under, without a token.
    pub public: Vec<Path>,
    /// Prefixes anyone may subscribe under, without a token.
    pub public_subscribe: Vec<Path>,
}

/// What an accepted session may do, and until when.
#[derive(Clone, Debug)]
pub struct Access {
    /// Its permissions, relative to its root.
    pub permissions: Permissions,
    /// When its token expires (the relay closes the session then); `None`: never.
    pub expires: Option<SystemTime>,
}

/// Why a session was refused: the reason the relay closes it with (code 16,
/// Unauthorized). Never contains the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

impl AuthConfig {
    /// True if nothing is configured: every session may do everything under its root.
    pub fn is_open(&self) -> bool {
        self.keys.is_none() && self.public.is_empty() && self.public_subscribe.is_empty()
    }

    /// The grants everyone has without a token.
    fn public_grants(&self) -> Grants {
        Grants {
            publish: self.public.clone(),
            subscribe: self
                .public
                .iter()
                .chain(&self.public_subscribe)
                .cloned()
                .collect(),
        }
    }

    /// Decides whether a session presenting `credentials` may connect, and what it may
    /// do: with a token, what the token grants (plus the public prefixes); without one,
    /// the public prefixes. A session that would be granted nothing under its root is
    /// refused.
    ///
    /// # Errors
    ///
    /// [`Refusal`] with a reason for the client: an invalid or expired token, a root
    /// outside the token's root, or nothing granted.
    pub fn authorize(&self, credentials: &Credentials, now: SystemTime) -> Result<Access, Refusal> {
        let root = &credentials.root;
        if self.is_open() {
            return Ok(Access {
                permissions: Permissions::everything(root.clone()),
                expires: None,
            });
        }
        let mut grants = self.public_grants();
        let mut expires = None;
        if let Some(jwt) = &credentials.jwt {
            let Some(keys) = &self.keys else {
                return Err(Refusal(
                    "this relay accepts no tokens (it has no keys); connect without one".into(),
                ));
            };
            let claims = keys
                .verify(jwt, now)
                .map_err(|err| Refusal(format!("invalid token: {err}")))?;
            let token_root = claims.root_path();
            if !root.starts_with(&token_root) {
                return Err(Refusal(format!(
                    "the URL path \"/{root}\" is outside the token's root \"/{token_root}\""
                )));
            }
            grants.extend(&claims.grants());
            expires = claims.expires();
        }
        let permissions = grants.scope(root);
        if permissions.is_empty() {
            return Err(Refusal(match credentials.jwt {
                Some(_) => format!("the token grants nothing under \"/{root}\""),
                None => format!("a token is needed for \"/{root}\" (pass ?jwt=TOKEN)"),
            }));
        }
        Ok(Access {
            permissions,
            expires,
        })
    }
}
