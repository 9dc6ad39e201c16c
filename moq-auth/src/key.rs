//! [`Key`] and [`KeySet`]: JWK keys, generated or loaded, that sign and verify tokens.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use serde::{Deserialize, Serialize};

use crate::claims::Claims;
use crate::error::{KeyError, VerifyError};

/// The longest token accepted, in bytes: what a raw-QUIC setup extension can carry
/// ([`moq_proto::limits::MAX_EXTENSION_SIZE`]). Longer tokens are refused before any
/// parsing.
pub const MAX_TOKEN_LEN: usize = moq_proto::limits::MAX_EXTENSION_SIZE;

/// A signature algorithm of JWS (RFC 7518), by its JWT name.
///
/// Every one of them verifies; [`Key::generate`] and [`Key::sign`] support HS256, HS384,
/// HS512, ES256 and EdDSA (Ed25519).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(clippy::upper_case_acronyms)]
pub enum Algorithm {
    /// HMAC with SHA-256 (a shared secret).
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384 (verification only).
    ES384,
    /// Ed25519.
    EdDSA,
    /// RSA PKCS#1 v1.5 with SHA-256 (verification only).
    RS256,
    /// RSA PKCS#1 v1.5 with SHA-384 (verification only).
    RS384,
    /// RSA PKCS#1 v1.5 with SHA-512 (verification only).
    RS512,
    /// RSA-PSS with SHA-256 (verification only).
    PS256,
    /// RSA-PSS with SHA-384 (verification only).
    PS384,
    /// RSA-PSS with SHA-512 (verification only).
    PS512,
}

const ALGORITHMS: [(Algorithm, &str); 12] = [
    (Algorithm::HS256, "HS256"),
    (Algorithm::HS384, "HS384"),
    (Algorithm::HS512, "HS512"),
    (Algorithm::ES256, "ES256"),
    (Algorithm::ES384, "ES384"),
    (Algorithm::EdDSA, "EdDSA"),
    (Algorithm::RS256, "RS256"),
    (Algorithm::RS384, "RS384"),
    (Algorithm::RS512, "RS512"),
    (Algorithm::PS256, "PS256"),
    (Algorithm::PS384, "PS384"),
    (Algorithm::PS512, "PS512"),
];

impl Algorithm {
    /// The JWT name (`"ES256"`).
    pub fn name(self) -> &'static str {
        ALGORITHMS
            .iter()
            .find(|(alg, _)| *alg == self)
            .map_or("?", |(_, name)| name)
    }

    fn jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as J;
        match self {
            Self::HS256 => J::HS256,
            Self::HS384 => J::HS384,
            Self::HS512 => J::HS512,
            Self::ES256 => J::ES256,
            Self::ES384 => J::ES384,
            Self::EdDSA => J::EdDSA,
            Self::RS256 => J::RS256,
            Self::RS384 => J::RS384,
            Self::RS512 => J::RS512,
            Self::PS256 => J::PS256,
            Self::PS384 => J::PS384,
            Self::PS512 => J::PS512,
        }
    }

    fn of_jwt(alg: jsonwebtoken::Algorithm) -> Self {
        use jsonwebtoken::Algorithm as J;
        match alg {
            J::HS256 => Self::HS256,
            J::HS384 => Self::HS384,
            J::HS512 => Self::HS512,
            J::ES256 => Self::ES256,
            J::ES384 => Self::ES384,
            J::EdDSA => Self::EdDSA,
            J::RS256 => Self::RS256,
            J::RS384 => Self::RS384,
            J::RS512 => Self::RS512,
            J::PS256 => Self::PS256,
            J::PS384 => Self::PS384,
            J::PS512 => Self::PS512,
        }
    }

    /// The JWK key type this algorithm needs.
    fn kty(self) -> &'static str {
        match self {
            Self::HS256 | Self::HS384 | Self::HS512 => "oct",
            Self::ES256 | Self::ES384 => "EC",
            Self::EdDSA => "OKP",
            _ => "RSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = KeyError;

    /// By JWT name, case-insensitively (`es256`, `EdDSA`).
    fn from_str(name: &str) -> Result<Self, KeyError> {
        ALGORITHMS
            .iter()
            .find(|(_, known)| known.eq_ignore_ascii_case(name))
            .map(|(alg, _)| *alg)
            .ok_or_else(|| KeyError::UnsupportedAlgorithm(name.to_owned()))
    }
}

/// A JSON Web Key (RFC 7517) as written to and read from files: the members this crate
/// uses; others (e.g. a `scope`) are ignored when reading.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_ops: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<String>,
}

/// A JWK Set (RFC 7517 §5).
#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

/// One key: an algorithm, an optional key id (`kid`), the public part that verifies and,
/// for a private (or shared-secret) key, the part that signs.
///
/// Its `Debug` form shows the algorithm and id, never key material.
///
/// ```
/// use moq_auth::{Algorithm, Claims, Key, KeySet};
/// use std::time::SystemTime;
///
/// let key = Key::generate(Algorithm::EdDSA, Some("k1".into())).unwrap();
/// let mut claims = Claims::new("room");
/// claims.get = vec!["".into()];
/// let token = key.sign(&claims).unwrap();
///
/// // The relay holds only the public key.
/// let public = Key::parse(&key.public().unwrap().to_json()).unwrap();
/// let keys = KeySet::from_keys([public]).unwrap();
/// assert_eq!(keys.verify(&token, SystemTime::now()).unwrap(), claims);
/// ```
#[derive(Clone)]
pub struct Key {
    jwk: Jwk,
    alg: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("alg", &self.alg)
            .field("kid", &self.jwk.kid)
            .field("private", &self.is_private())
            .finish()
    }
}

impl Key {
    /// A new random key for `alg` (HS256, HS384, HS512, ES256 or EdDSA) with key id `kid`
    /// (a random one if `None`).
    ///
    /// # Errors
    ///
    /// [`KeyError::UnsupportedAlgorithm`] for the other algorithms.
    pub fn generate(alg: Algorithm, kid: Option<String>) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let random = |len: usize| -> Result<Vec<u8>, KeyError> {
            let mut bytes = vec![0; len];
            rng.fill(&mut bytes)
                .map_err(|_| KeyError::Crypto("no randomness".into()))?;
            Ok(bytes)
        };
        let kid = match kid {
            Some(kid) => kid,
            None => URL_SAFE_NO_PAD.encode(random(9)?),
        };
        let mut jwk = Jwk {
            kty: alg.kty().into(),
            alg: Some(alg.name().into()),
            kid: Some(kid),
            key_ops: Some(vec!["sign".into(), "verify".into()]),
            ..Jwk::default()
        };
        match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                // As long as the hash's output (RFC 7518 §3.2 asks at least that much).
                let len = match alg {
                    Algorithm::HS256 => 32,
                    Algorithm::HS384 => 48,
                    _ => 64,
                };
                jwk.k = Some(URL_SAFE_NO_PAD.encode(random(len)?));
            }
            Algorithm::ES256 => {
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError::Crypto("generating a P-256 key".into()))?;
                let [d, x, y] = p256_parts(pkcs8.as_ref())?;
                jwk.crv = Some("P-256".into());
                jwk.d = Some(URL_SAFE_NO_PAD.encode(d));
                jwk.x = Some(URL_SAFE_NO_PAD.encode(x));
                jwk.y = Some(URL_SAFE_NO_PAD.encode(y));
            }
            Algorithm::EdDSA => {
                let seed = random(32)?;
                let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
                    .map_err(|_| KeyError::Crypto("generating an Ed25519 key".into()))?;
                jwk.crv = Some("Ed25519".into());
                jwk.d = Some(URL_SAFE_NO_PAD.encode(&seed));
                jwk.x = Some(URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()));
            }
            other => return Err(KeyError::UnsupportedAlgorithm(other.name().into())),
        }
        Self::from_jwk(jwk)
    }

    /// One key from its text: a JWK as JSON, or base64url of that JSON (the form the
    /// `moq-token` tool writes), or a JWK Set holding exactly one key.
    ///
    /// # Errors
    ///
    /// Text that is not such a key, or a key this crate cannot use.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut keys = parse_keys(text)?;
        match keys.len() {
            1 => Ok(keys.remove(0)),
            n => Err(KeyError::Invalid(format!("expected one key, found {n}"))),
        }
    }

    /// [`parse`](Self::parse) of a file's contents.
    ///
    /// # Errors
    ///
    /// The file cannot be read, or [`parse`](Self::parse) fails.
    pub fn load(path: impl AsRef<FsPath>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        Self::parse(&read(path)?).map_err(|err| err.in_file(path))
    }

    fn from_jwk(jwk: Jwk) -> Result<Self, KeyError> {
        let alg = algorithm_of(&jwk)?;
        if jwk.kty != alg.kty() {
            return Err(KeyError::Invalid(format!(
                "a {} key cannot be used with {alg}",
                jwk.kty
            )));
        }
        let bytes = |name: &str, value: &Option<String>| -> Result<Vec<u8>, KeyError> {
            let value = value
                .as_deref()
                .ok_or_else(|| KeyError::Invalid(format!("a {} key needs \"{name}\"", jwk.kty)))?;
            decode_b64(value)
                .ok_or_else(|| KeyError::Invalid(format!("\"{name}\" is not base64url")))
        };
        let sized = |name: &str, value: &Option<String>, len: usize| -> Result<Vec<u8>, KeyError> {
            let decoded = bytes(name, value)?;
            if decoded.len() != len {
                return Err(KeyError::Invalid(format!(
                    "\"{name}\" has {} bytes, {alg} needs {len}",
                    decoded.len()
                )));
            }
            Ok(decoded)
        };
        let (decoding, encoding) = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let secret = bytes("k", &jwk.k)?;
                if secret.len() < 32 {
                    return Err(KeyError::Invalid(format!(
                        "the secret has {} bytes; at least 32 are needed",
                        secret.len()
                    )));
                }
                (
                    DecodingKey::from_secret(&secret),
                    Some(EncodingKey::from_secret(&secret)),
                )
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let (curve, len) = match alg {
                    Algorithm::ES256 => ("P-256", 32),
                    _ => ("P-384", 48),
                };
                if jwk.crv.as_deref() != Some(curve) {
                    return Err(KeyError::Invalid(format!(
                        "{alg} needs \"crv\": \"{curve}\""
                    )));
                }
                let x = sized("x", &jwk.x, len)?;
                let y = sized("y", &jwk.y, len)?;
                let point = [&[4u8][..], &x, &y].concat();
                let decoding = DecodingKey::from_ec_der(&point);
                let encoding = match (&jwk.d, alg) {
                    (None, _) => None,
                    (Some(_), Algorithm::ES256) => {
                        let d = sized("d", &jwk.d, 32)?;
                        let pkcs8 = p256_pkcs8(&d, &point);
                        // Checks that d and the public point belong together.
                        EcdsaKeyPair::from_pkcs8(
                            &ECDSA_P256_SHA256_FIXED_SIGNING,
                            &pkcs8,
                            &SystemRandom::new(),
                        )
                        .map_err(|_| {
                            KeyError::Invalid("\"d\" does not match \"x\", \"y\"".into())
                        })?;
                        Some(EncodingKey::from_ec_der(&pkcs8))
                    }
                    // Verification only: the private part is not kept.
                    (Some(_), _) => None,
                };
                (decoding, encoding)
            }
            Algorithm::EdDSA => {
                if jwk.crv.as_deref() != Some("Ed25519") {
                    return Err(KeyError::Invalid("EdDSA needs \"crv\": \"Ed25519\"".into()));
                }
                let x = sized("x", &jwk.x, 32)?;
                let decoding = DecodingKey::from_ed_der(&x);
                let encoding = match &jwk.d {
                    None => None,
                    Some(_) => {
                        let seed = sized("d", &jwk.d, 32)?;
                        Ed25519KeyPair::from_seed_and_public_key(&seed, &x)
                            .map_err(|_| KeyError::Invalid("\"d\" does not match \"x\"".into()))?;
                        Some(EncodingKey::from_ed_der(&ed25519_pkcs8(&seed)))
                    }
                };
                (decoding, encoding)
            }
            _ => {
                let n = bytes("n", &jwk.n)?;
                let e = bytes("e", &jwk.e)?;
                (DecodingKey::from_rsa_raw_components(&n, &e), None)
            }
        };
        Ok(Self {
            jwk,
            alg,
            decoding,
            encoding,
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id (`kid`), if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.jwk.kid.as_deref()
    }

    /// True if the key can sign: a private key, or an HMAC secret.
    pub fn is_private(&self) -> bool {
        self.encoding.is_some()
    }

    /// The public part, to give to a relay: the same key without its private parts.
    ///
    /// # Errors
    ///
    /// [`KeyError::Symmetric`] for an HMAC key, whose secret both signs and verifies.
    pub fn public(&self) -> Result<Self, KeyError> {
        if self.jwk.kty == "oct" {
            return Err(KeyError::Symmetric);
        }
        let mut jwk = self.jwk.clone();
        jwk.d = None;
        jwk.key_ops = Some(vec!["verify".into()]);
        Ok(Self {
            jwk,
            alg: self.alg,
            decoding: self.decoding.clone(),
            encoding: None,
        })
    }

    /// The key as JWK JSON (pretty-printed), private parts included if it has them.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.jwk).unwrap_or_default()
    }

    /// Signs `claims` into a compact JWT whose header names this key's algorithm and id.
    ///
    /// # Errors
    ///
    /// [`KeyError::NotPrivate`] for a public key; [`KeyError::NoGrant`] for claims that
    /// grant neither publishing nor subscribing (no verifier would accept them).
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let Some(encoding) = &self.encoding else {
            return Err(KeyError::NotPrivate);
        };
        if claims.put.is_empty() && claims.get.is_empty() {
            return Err(KeyError::NoGrant);
        }
        let mut header = Header::new(self.alg.jwt());
        header.kid = self.jwk.kid.clone();
        jsonwebtoken::encode(&header, claims, encoding)
            .map_err(|err| KeyError::Crypto(err.to_string()))
    }

    /// Verifies `token` with this key alone; see [`KeySet::verify`].
    ///
    /// # Errors
    ///
    /// As [`KeySet::verify`].
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, VerifyError> {
        let header = header_of(token)?;
        self.verify_with(token, &header, now)
    }

    fn verify_with(
        &self,
        token: &str,
        header: &Header,
        now: SystemTime,
    ) -> Result<Claims, VerifyError> {
        // Only this key's algorithm: a token naming another (HS256 against an ES256 key,
        // the classic confusion) is refused before any signature check.
        let alg = Algorithm::of_jwt(header.alg);
        if alg != self.alg {
            return Err(VerifyError::AlgorithmMismatch {
                token: alg.name().into(),
                key: self.alg.name().into(),
            });
        }
        let mut validation = Validation::new(self.alg.jwt());
        // Time claims are checked below against `now`, with no leeway.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|err| {
                use jsonwebtoken::errors::ErrorKind;
                match err.kind() {
                    ErrorKind::InvalidSignature => VerifyError::BadSignature,
                    ErrorKind::Json(err) => VerifyError::Claims(err.to_string()),
                    ErrorKind::InvalidAlgorithm => VerifyError::AlgorithmMismatch {
                        token: alg.name().into(),
                        key: self.alg.name().into(),
                    },
                    _ => VerifyError::Malformed(err.to_string()),
                }
            })?
            .claims;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if let Some(exp) = claims.exp
            && now >= exp
        {
            return Err(VerifyError::Expired { exp });
        }
        if let Some(nbf) = claims.nbf
            && now < nbf
        {
            return Err(VerifyError::NotYetValid { nbf });
        }
        if claims.put.is_empty() && claims.get.is_empty() {
            return Err(VerifyError::NoGrant);
        }
        Ok(claims)
    }
}

/// The keys a relay verifies tokens with, found by the token's key id (`kid`), so that a
/// new key can be added beside the old one and the old one removed later.
///
/// A token without a `kid` is accepted only when the set holds exactly one key.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A set of these keys.
    ///
    /// # Errors
    ///
    /// [`KeyError::DuplicateKid`] if two keys have the same id.
    pub fn from_keys(keys: impl IntoIterator<Item = Key>) -> Result<Self, KeyError> {
        let mut set = Self::new();
        for key in keys {
            set.add(key)?;
        }
        Ok(set)
    }

    /// Adds a key.
    ///
    /// # Errors
    ///
    /// [`KeyError::DuplicateKid`] if a key with the same id (or, for keys without one,
    /// another key without one) is in the set.
    pub fn add(&mut self, key: Key) -> Result<(), KeyError> {
        if self.keys.iter().any(|have| have.kid() == key.kid()) {
            return Err(KeyError::DuplicateKid(key.kid().unwrap_or("").to_owned()));
        }
        self.keys.push(key);
        Ok(())
    }

    /// Adds the keys of `path`: a file holding a JWK (JSON, or base64url of it) or a JWK
    /// Set, or a directory, whose every `*.jwk` file is read (a key without a `kid` takes
    /// the file's name without `.jwk`).
    ///
    /// # Errors
    ///
    /// A file that cannot be read or parsed, a directory without `.jwk` files, or a
    /// duplicate key id.
    pub fn load(&mut self, path: impl AsRef<FsPath>) -> Result<(), KeyError> {
        let path = path.as_ref();
        let metadata = std::fs::metadata(path).map_err(|err| KeyError::io(path, err))?;
        if !metadata.is_dir() {
            for key in parse_keys(&read(path)?).map_err(|err| err.in_file(path))? {
                self.add(key).map_err(|err| err.in_file(path))?;
            }
            return Ok(());
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|err| KeyError::io(path, err))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|file| file.extension().is_some_and(|ext| ext == "jwk") && file.is_file())
            .collect();
        if files.is_empty() {
            return Err(KeyError::NoKeys(path.to_owned()));
        }
        files.sort();
        for file in files {
            let stem = file
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned());
            for mut key in parse_keys(&read(&file)?).map_err(|err| err.in_file(&file))? {
                if key.jwk.kid.is_none() {
                    key.jwk.kid = stem.clone();
                }
                self.add(key).map_err(|err| err.in_file(&file))?;
            }
        }
        Ok(())
    }

    /// The keys, in the order they were added.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True if the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies `token` at time `now` and returns its claims.
    ///
    /// In order: the token is at most [`MAX_TOKEN_LEN`] bytes; its header parses and
    /// names a supported algorithm (`none` is refused); the key is the one with the
    /// header's `kid`; the header's algorithm is that key's (no algorithm confusion); the
    /// signature verifies; the claims parse; `exp` (if any) is after `now` and `nbf` (if
    /// any) not after it, with no leeway; the token grants something (`put` or `get`).
    ///
    /// # Errors
    ///
    /// The first check that fails, as a [`VerifyError`].
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, VerifyError> {
        let header = header_of(token)?;
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|key| key.kid() == Some(kid.as_str()))
                .ok_or_else(|| VerifyError::UnknownKid(kid.clone()))?,
            None => match self.keys.as_slice() {
                [only] => only,
                _ => return Err(VerifyError::MissingKid),
            },
        };
        key.verify_with(token, &header, now)
    }
}

/// The header of `token`, after the size check.
fn header_of(token: &str) -> Result<Header, VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::TooLong {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    jsonwebtoken::decode_header(token).map_err(|err| {
        // Name the algorithm when the header parsed but named one we refuse (`none`).
        let alg = token
            .split('.')
            .next()
            .and_then(decode_b64)
            .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
            .and_then(|header| {
                header
                    .get("alg")
                    .and_then(|alg| alg.as_str())
                    .map(str::to_owned)
            });
        match alg {
            Some(alg) if alg.parse::<Algorithm>().is_err() => {
                VerifyError::UnsupportedAlgorithm(alg)
            }
            _ => VerifyError::Malformed(match err.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidToken => {
                    "expected three base64url parts, header.payload.signature".into()
                }
                _ => err.to_string(),
            }),
        }
    })
}

/// The algorithm of a JWK: its `alg`, or what its curve implies.
fn algorithm_of(jwk: &Jwk) -> Result<Algorithm, KeyError> {
    if let Some(alg) = &jwk.alg {
        return alg.parse();
    }
    match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("EC", Some("P-256")) => Ok(Algorithm::ES256),
        ("EC", Some("P-384")) => Ok(Algorithm::ES384),
        ("OKP", Some("Ed25519")) => Ok(Algorithm::EdDSA),
        (kty, _) => Err(KeyError::Invalid(format!(
            "the {kty} key has no \"alg\" (which algorithm it is for)"
        ))),
    }
}

/// The keys in `text`: a JWK or a JWK Set, as JSON or base64url of JSON.
fn parse_keys(text: &str) -> Result<Vec<Key>, KeyError> {
    let text = text.trim();
    let json: serde_json::Value = if text.starts_with('{') {
        serde_json::from_str(text).map_err(|err| KeyError::Json(err.to_string()))?
    } else {
        let bytes = decode_b64(text)
            .ok_or_else(|| KeyError::Invalid("neither JSON nor base64url-encoded JSON".into()))?;
        serde_json::from_slice(&bytes).map_err(|err| KeyError::Json(err.to_string()))?
    };
    let jwks = if json.get("keys").is_some() {
        serde_json::from_value::<JwkSet>(json)
            .map_err(|err| KeyError::Json(err.to_string()))?
            .keys
    } else {
        vec![json]
    };
    jwks.into_iter()
        .map(|jwk| {
            let jwk: Jwk =
                serde_json::from_value(jwk).map_err(|err| KeyError::Json(err.to_string()))?;
            Key::from_jwk(jwk)
        })
        .collect()
}

fn read(path: &FsPath) -> Result<String, KeyError> {
    // Key files are small; a huge one is a mistake, not a key.
    const MAX_KEY_FILE: u64 = 1024 * 1024;
    let metadata = std::fs::metadata(path).map_err(|err| KeyError::io(path, err))?;
    if metadata.len() > MAX_KEY_FILE {
        return Err(KeyError::Invalid(format!(
            "{} is {} bytes: not a key file",
            path.display(),
            metadata.len()
        )));
    }
    std::fs::read_to_string(path).map_err(|err| KeyError::io(path, err))
}

/// base64url, with or without padding.
fn decode_b64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}

/// The start of ring's PKCS#8 document for a P-256 key, up to the private scalar; then
/// come the 32 bytes of `d`, [`P256_MIDDLE`] and the 65-byte public point.
const P256_PREFIX: &[u8] = &[
    0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
    0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30, 0x6b, 0x02,
    0x01, 0x01, 0x04, 0x20,
];
const P256_MIDDLE: &[u8] = &[0xa1, 0x44, 0x03, 0x42, 0x00];

/// `d`, `x` and `y` of a P-256 PKCS#8 document as ring writes it.
fn p256_parts(pkcs8: &[u8]) -> Result<[&[u8]; 3], KeyError> {
    let point_at = P256_PREFIX.len() + 32 + P256_MIDDLE.len();
    if pkcs8.len() != point_at + 65 || !pkcs8.starts_with(P256_PREFIX) || pkcs8[point_at] != 4 {
        return Err(KeyError::Crypto("unexpected P-256 key layout".into()));
    }
    let d = &pkcs8[P256_PREFIX.len()..P256_PREFIX.len() + 32];
    Ok([
        d,
        &pkcs8[point_at + 1..point_at + 33],
        &pkcs8[point_at + 33..],
    ])
}

/// The PKCS#8 document of a P-256 key from its scalar and uncompressed public point.
fn p256_pkcs8(d: &[u8], point: &[u8]) -> Vec<u8> {
    [P256_PREFIX, d, P256_MIDDLE, point].concat()
}

/// The PKCS#8 (v1) document of an Ed25519 key from its 32-byte seed.
fn ed25519_pkcs8(seed: &[u8]) -> Vec<u8> {
    const PREFIX: &[u8] = &[
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    [PREFIX, seed].concat()
}
