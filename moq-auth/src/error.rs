//! [`KeyError`] and [`VerifyError`].

use std::path::{Path, PathBuf};

/// Why a key could not be loaded, generated or used to sign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// A key file is not valid JSON (or its JSON is not a JWK).
    #[error("not a JWK: {0}")]
    Json(String),
    /// A JWK whose members are missing, malformed or inconsistent.
    #[error("invalid key: {0}")]
    Invalid(String),
    /// An algorithm this crate does not know, or cannot use for this operation.
    #[error(
        "unsupported algorithm {0:?} (verify: HS256/384/512, ES256, ES384, EdDSA, RS256/384/512, PS256/384/512; generate and sign: HS256/384/512, ES256, EdDSA)"
    )]
    UnsupportedAlgorithm(String),
    /// Signing needs a private key (or an HMAC secret).
    #[error("this is a public key: signing needs the private key")]
    NotPrivate,
    /// An HMAC key has no public part: its secret both signs and verifies.
    #[error("an HMAC (HS*) key has no public part: the relay needs the same secret")]
    Symmetric,
    /// Claims that grant neither publishing nor subscribing.
    #[error("the claims grant nothing: give at least one put or get path")]
    NoGrant,
    /// Two keys with the same id in one set.
    #[error("two keys with the id {0:?}")]
    DuplicateKid(String),
    /// A key directory without any `.jwk` file.
    #[error("{}: no .jwk files in this directory", .0.display())]
    NoKeys(PathBuf),
    /// The cryptographic library failed (no randomness, say).
    #[error("crypto: {0}")]
    Crypto(String),
    /// One of the errors above, in this file.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        source: Box<KeyError>,
    },
}

impl KeyError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// This error, said to be about `path` (unless it already names a file).
    pub(crate) fn in_file(self, path: &Path) -> Self {
        match self {
            Self::Io { .. } | Self::InFile { .. } | Self::NoKeys(_) => self,
            other => Self::InFile {
                path: path.to_owned(),
                source: Box::new(other),
            },
        }
    }
}

/// Why a token was refused. The text never contains the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Longer than [`MAX_TOKEN_LEN`](crate::MAX_TOKEN_LEN) bytes.
    #[error("the token is {len} bytes, more than the {max} accepted")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a compact JWT (three base64url parts with a JSON header).
    #[error("not a JWT: {0}")]
    Malformed(String),
    /// The header names an algorithm that is refused (`none`, or one unknown here).
    #[error("the token's algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    /// No key has the token's key id.
    #[error("no key with the token's key id {0:?}")]
    UnknownKid(String),
    /// The token names no key id and there are several keys.
    #[error("the token names no key id (kid), and there are several keys")]
    MissingKid,
    /// The token's algorithm is not its key's.
    #[error("the token is signed with {token}, its key is for {key}")]
    AlgorithmMismatch {
        /// The token header's algorithm.
        token: String,
        /// The key's algorithm.
        key: String,
    },
    /// The signature does not verify: tampered, or signed with another key.
    #[error("the signature does not verify")]
    BadSignature,
    /// The claims do not parse (a `put` that is a number, say).
    #[error("bad claims: {0}")]
    Claims(String),
    /// Past its `exp`.
    #[error("the token expired (exp {exp})")]
    Expired {
        /// The expiry, seconds since the Unix epoch.
        exp: u64,
    },
    /// Before its `nbf`.
    #[error("the token is not valid yet (nbf {nbf})")]
    NotYetValid {
        /// The start of validity, seconds since the Unix epoch.
        nbf: u64,
    },
    /// It grants neither `put` nor `get`.
    #[error("the token grants nothing (no put, no get)")]
    NoGrant,
}
