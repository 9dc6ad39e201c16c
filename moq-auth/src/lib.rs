//! Access tokens for MoQ Transfork relays: who may publish and subscribe where.
//!
//! A relay gives each session a **root** (the path of its URL) and **permissions** from a
//! JWT the client presents: the claims `root`, `put` and `get` of the MoQ relay ecosystem
//! (`moq-token`), so that tokens minted by its tools verify here and ours there.
//!
//! * [`Claims`]: the token's contents; [`Grants`]: what they allow, as absolute paths;
//!   [`Permissions`]: the same, relative to a session's root.
//! * [`Key`]: a JWK (HS256/384/512, ES256, EdDSA to generate and sign; those and ES384,
//!   RS*, PS* to verify); [`KeySet`]: the keys a relay verifies with, chosen by the token's
//!   key id, loaded from JWK files, JWK Sets or a directory of `{kid}.jwk` files.
//! * [`KeySet::verify`]: size, header, key, algorithm, signature, claims and time checks,
//!   each failure a [`VerifyError`] that never quotes the token.
//!
//! # What it does not do
//!
//! No IO besides reading key files, no clock of its own (verification takes `now`), no
//! network. The signatures are *ring*'s, through `jsonwebtoken`.
//!
//! # Example
//!
//! ```
//! use std::time::SystemTime;
//! use moq_auth::{Algorithm, Claims, Key, KeySet};
//! use moq_proto::Path;
//!
//! // The operator makes a key pair and gives the relay the public half.
//! let key = Key::generate(Algorithm::ES256, Some("2026-12".into()))?;
//! let relay_keys = KeySet::from_keys([key.public()?])?;
//!
//! // A token for publishing under room/alice and watching the whole room.
//! let mut claims = Claims::new("room");
//! claims.put = vec!["alice".into()];
//! claims.get = vec!["".into()];
//! let token = key.sign(&claims)?;
//!
//! // The relay verifies it and scopes it to the session's root (its URL path).
//! let verified = relay_keys.verify(&token, SystemTime::now())?;
//! let session = verified.grants().scope(&Path::from(["room"]));
//! assert!(session.may_publish(&Path::from(["alice", "camera"])));
//! assert!(session.may_subscribe(&Path::from(["bob", "camera"])));
//! assert!(!session.may_publish(&Path::from(["bob", "camera"])));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `docs/auth.md` in the repository is the operator's guide.
#![forbid(unsafe_code)]

mod claims;
mod error;
mod key;
mod permissions;

pub use claims::Claims;
pub use error::{KeyError, VerifyError};
pub use key::{Algorithm, Key, KeySet, MAX_TOKEN_LEN};
pub use permissions::{Grants, Permissions};
