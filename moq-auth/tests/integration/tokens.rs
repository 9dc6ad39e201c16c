//! Token verification: what is accepted, every classic attack refused, and keys and tokens
//! of the ecosystem's `moq-token` tool.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moq_auth::{Algorithm, Claims, Key, KeyError, KeySet, MAX_TOKEN_LEN, VerifyError};

fn claims(root: &str, put: &[&str], get: &[&str]) -> Claims {
    let mut claims = Claims::new(root);
    claims.put = put.iter().map(|s| s.to_string()).collect();
    claims.get = get.iter().map(|s| s.to_string()).collect();
    claims
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token from raw JSON parts and a raw signature.
fn forge(header: &str, payload: &str, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(payload.as_bytes()),
        b64(signature)
    )
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/moq-token")
}

#[test]
fn every_supported_algorithm_signs_and_verifies() {
    for alg in [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        let key = Key::generate(alg, Some(format!("k-{alg}"))).unwrap();
        let claims = claims("room", &["alice"], &[""]);
        let token = key.sign(&claims).unwrap();
        // The verifier gets the key through its JSON form, as from a file.
        let verifier = match key.public() {
            Ok(public) => public,
            Err(KeyError::Symmetric) => key.clone(),
            Err(err) => panic!("{alg}: {err}"),
        };
        let verifier = Key::parse(&verifier.to_json()).unwrap();
        assert!(
            !verifier.is_private() || alg.name().starts_with("HS"),
            "{alg}"
        );
        let keys = KeySet::from_keys([verifier]).unwrap();
        assert_eq!(keys.verify(&token, SystemTime::now()), Ok(claims), "{alg}");
    }
}

#[test]
fn public_keys_do_not_sign_and_hmac_keys_have_no_public_part() {
    let key = Key::generate(Algorithm::EdDSA, None).unwrap();
    assert!(key.kid().is_some_and(|kid| !kid.is_empty()));
    let public = key.public().unwrap();
    assert!(!public.to_json().contains("\"d\""));
    assert!(matches!(
        public.sign(&claims("", &[""], &[])),
        Err(KeyError::NotPrivate)
    ));
    let hs = Key::generate(Algorithm::HS256, None).unwrap();
    assert!(matches!(hs.public(), Err(KeyError::Symmetric)));
    assert!(matches!(
        Key::generate(Algorithm::RS256, None),
        Err(KeyError::UnsupportedAlgorithm(_))
    ));
    assert!(matches!(
        key.sign(&claims("room", &[], &[])),
        Err(KeyError::NoGrant)
    ));
}

#[test]
fn alg_none_is_refused() {
    let key = Key::generate(Algorithm::HS256, Some("k".into())).unwrap();
    let keys = KeySet::from_keys([key]).unwrap();
    let payload = r#"{"root":"","put":[""],"get":[""]}"#;
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"none","typ":"JWT","kid":"k"}"#,
        r#"{"alg":"None"}"#,
    ] {
        let token = forge(header, payload, b"");
        let err = keys.verify(&token, SystemTime::now()).unwrap_err();
        assert!(
            matches!(err, VerifyError::UnsupportedAlgorithm(ref alg) if alg.eq_ignore_ascii_case("none")),
            "{header}: {err:?}"
        );
        // Also without the trailing dot's empty signature.
        let bare = token.trim_end_matches('.').to_owned();
        assert!(keys.verify(&bare, SystemTime::now()).is_err());
    }
}

#[test]
fn algorithm_confusion_is_refused() {
    // An attacker knows the relay's ES256 public key and signs an HS256 token with it as
    // the HMAC secret, hoping the verifier uses the key's bytes as a secret.
    let es = Key::generate(Algorithm::ES256, Some("es".into())).unwrap();
    let public = es.public().unwrap();
    let keys = KeySet::from_keys([public.clone()]).unwrap();
    let payload = r#"{"root":"","put":[""],"get":[""]}"#;
    let header = r#"{"alg":"HS256","typ":"JWT","kid":"es"}"#;
    let public_json = public.to_json();
    let jwk: serde_json::Value = serde_json::from_str(&public_json).unwrap();
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
    let point = [&[4u8][..], &x, &y].concat();
    for secret in [public_json.as_bytes(), &point[..], &x[..]] {
        let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            signing_input.as_bytes(),
        );
        let token = format!("{signing_input}.{}", b64(mac.as_ref()));
        assert_eq!(
            keys.verify(&token, SystemTime::now()),
            Err(VerifyError::AlgorithmMismatch {
                token: "HS256".into(),
                key: "ES256".into()
            })
        );
    }
    // The same with an EdDSA key, and an ES256 token against an EdDSA key.
    let ed = Key::generate(Algorithm::EdDSA, Some("ed".into())).unwrap();
    let keys = KeySet::from_keys([ed.public().unwrap()]).unwrap();
    let mut other = Key::generate(Algorithm::ES256, Some("ed".into())).unwrap();
    let token = other.sign(&claims("", &[""], &[])).unwrap();
    assert!(matches!(
        keys.verify(&token, SystemTime::now()),
        Err(VerifyError::AlgorithmMismatch { .. })
    ));
    other = Key::generate(Algorithm::HS256, Some("ed".into())).unwrap();
    let token = other.sign(&claims("", &[""], &[])).unwrap();
    assert!(matches!(
        keys.verify(&token, SystemTime::now()),
        Err(VerifyError::AlgorithmMismatch { .. })
    ));
}

#[test]
fn a_tampered_token_is_refused() {
    for alg in [Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA] {
        let key = Key::generate(alg, Some("k".into())).unwrap();
        let keys = KeySet::from_keys([key.public().unwrap_or_else(|_| key.clone())]).unwrap();
        let token = key.sign(&claims("room", &["alice"], &[])).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        // A payload granting more, with the original header and signature.
        let payload = b64(br#"{"root":"room","put":[""],"get":[""]}"#);
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(
            keys.verify(&tampered, SystemTime::now()),
            Err(VerifyError::BadSignature),
            "{alg}"
        );
        // A flipped bit in the signature.
        let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        signature[0] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(&signature));
        assert_eq!(
            keys.verify(&flipped, SystemTime::now()),
            Err(VerifyError::BadSignature),
            "{alg}"
        );
        // A header that names another kid (the header is signed too).
        let header = b64(format!(r#"{{"typ":"JWT","alg":"{alg}","kid":"k","x":1}}"#).as_bytes());
        let reheaded = format!("{header}.{}.{}", parts[1], parts[2]);
        assert_eq!(
            keys.verify(&reheaded, SystemTime::now()),
            Err(VerifyError::BadSignature),
            "{alg}"
        );
    }
}

#[test]
fn keys_are_chosen_by_kid() {
    let old = Key::generate(Algorithm::ES256, Some("old".into())).unwrap();
    let new = Key::generate(Algorithm::EdDSA, Some("new".into())).unwrap();
    let keys = KeySet::from_keys([old.public().unwrap(), new.public().unwrap()]).unwrap();
    let grant = claims("", &[""], &[]);
    // Both verify during a rotation.
    assert!(
        keys.verify(&old.sign(&grant).unwrap(), SystemTime::now())
            .is_ok()
    );
    assert!(
        keys.verify(&new.sign(&grant).unwrap(), SystemTime::now())
            .is_ok()
    );
    // An unknown kid.
    let stranger = Key::generate(Algorithm::EdDSA, Some("stranger".into())).unwrap();
    assert_eq!(
        keys.verify(&stranger.sign(&grant).unwrap(), SystemTime::now()),
        Err(VerifyError::UnknownKid("stranger".into()))
    );
    // A known kid, but signed by another key.
    let impostor = Key::generate(Algorithm::EdDSA, Some("new".into())).unwrap();
    assert_eq!(
        keys.verify(&impostor.sign(&grant).unwrap(), SystemTime::now()),
        Err(VerifyError::BadSignature)
    );
    // No kid: refused with several keys, accepted with exactly one.
    let anonymous = Key::parse(
        &new.to_json()
            .replace("\"kid\": \"new\",", "")
            .replace(",\n  \"kid\": \"new\"", ""),
    )
    .unwrap();
    assert_eq!(anonymous.kid(), None);
    let token = anonymous.sign(&grant).unwrap();
    assert_eq!(
        keys.verify(&token, SystemTime::now()),
        Err(VerifyError::MissingKid)
    );
    let single = KeySet::from_keys([new.public().unwrap()]).unwrap();
    assert!(single.verify(&token, SystemTime::now()).is_ok());
    // Two keys with one kid cannot be loaded together.
    assert!(matches!(
        KeySet::from_keys([old.clone(), old]),
        Err(KeyError::DuplicateKid(_))
    ));
}

#[test]
fn time_claims_are_checked_without_leeway() {
    let key = Key::generate(Algorithm::EdDSA, Some("k".into())).unwrap();
    let keys = KeySet::from_keys([key.public().unwrap()]).unwrap();
    let mut timed = claims("", &[""], &[]);
    timed.exp = Some(1_000);
    timed.nbf = Some(500);
    let token = key.sign(&timed).unwrap();
    assert!(keys.verify(&token, at(500)).is_ok());
    assert!(keys.verify(&token, at(999)).is_ok());
    assert_eq!(
        keys.verify(&token, at(1_000)),
        Err(VerifyError::Expired { exp: 1_000 })
    );
    assert_eq!(
        keys.verify(&token, at(5_000)),
        Err(VerifyError::Expired { exp: 1_000 })
    );
    assert_eq!(
        keys.verify(&token, at(499)),
        Err(VerifyError::NotYetValid { nbf: 500 })
    );
    // No exp: valid whenever.
    let forever = key.sign(&claims("", &[""], &[])).unwrap();
    assert!(keys.verify(&forever, at(u32::MAX as u64)).is_ok());
}

#[test]
fn malformed_oversized_and_useless_tokens_are_refused() {
    let key = Key::generate(Algorithm::HS256, Some("k".into())).unwrap();
    let keys = KeySet::from_keys([key.clone()]).unwrap();
    let now = SystemTime::now();
    for garbage in ["", "a", "a.b", "a.b.c", "....", "eyJ.eyJ.eyJ", "\u{0}\u{1}"] {
        assert!(
            matches!(keys.verify(garbage, now), Err(VerifyError::Malformed(_))),
            "{garbage:?}"
        );
    }
    // Oversized: refused by length, before anything is parsed.
    let mut big = claims("", &[""], &[]);
    big.root = "r".repeat(MAX_TOKEN_LEN);
    let token = key.sign(&big).unwrap();
    assert!(matches!(
        keys.verify(&token, now),
        Err(VerifyError::TooLong { .. })
    ));
    assert!(matches!(
        keys.verify(&"x".repeat(MAX_TOKEN_LEN + 1), now),
        Err(VerifyError::TooLong { .. })
    ));
    // Claims of the wrong type, and claims that grant nothing, signed correctly.
    let sign_raw = |payload: &str| {
        let header = b64(br#"{"typ":"JWT","alg":"HS256","kid":"k"}"#);
        let input = format!("{header}.{}", b64(payload.as_bytes()));
        let secret = URL_SAFE_NO_PAD
            .decode(
                serde_json::from_str::<serde_json::Value>(&key.to_json()).unwrap()["k"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        format!("{input}.{}", b64(mac.as_ref()))
    };
    assert!(matches!(
        keys.verify(&sign_raw(r#"{"put":7}"#), now),
        Err(VerifyError::Claims(_))
    ));
    assert!(matches!(
        keys.verify(&sign_raw(r#"{"exp":"tomorrow","get":""}"#), now),
        Err(VerifyError::Claims(_))
    ));
    assert_eq!(
        keys.verify(&sign_raw(r#"{"root":"a","put":[],"get":[]}"#), now),
        Err(VerifyError::NoGrant)
    );
    assert_eq!(
        keys.verify(&sign_raw(r#"{"root":"a"}"#), now),
        Err(VerifyError::NoGrant)
    );
    // The errors never quote the token.
    let token = key.sign(&claims("secret-root", &["x"], &[])).unwrap();
    let other =
        KeySet::from_keys([Key::generate(Algorithm::HS256, Some("k".into())).unwrap()]).unwrap();
    let message = other.verify(&token, now).unwrap_err().to_string();
    assert!(!message.contains(&token[..20]), "{message}");
}

#[test]
fn bad_keys_are_refused_when_loaded() {
    let cases = [
        (
            r#"{"kty":"oct","alg":"HS256","k":"c2hvcnQ"}"#,
            "32 are needed",
        ),
        (
            r#"{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
            "no \"alg\"",
        ),
        (
            r#"{"kty":"EC","alg":"HS256","crv":"P-256"}"#,
            "cannot be used",
        ),
        (
            r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}"#,
            "needs 32",
        ),
        (r#"{"kty":"OKP","crv":"X25519","x":"AA"}"#, "no \"alg\""),
        (
            r#"{"kty":"OKP","alg":"EdDSA","crv":"X25519","x":"AA"}"#,
            "Ed25519",
        ),
        (
            r#"{"kty":"OKP","alg":"none","crv":"Ed25519"}"#,
            "unsupported",
        ),
        (r#"{"keys":[]}"#, "found 0"),
        ("not a key", "neither JSON"),
        ("{", "not a JWK"),
    ];
    for (text, expected) in cases {
        let err = Key::parse(text).unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
    // A private part that does not match the public one.
    let a = Key::generate(Algorithm::EdDSA, None).unwrap();
    let b = Key::generate(Algorithm::EdDSA, None).unwrap();
    let mut mixed: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
    let b_json: serde_json::Value = serde_json::from_str(&b.to_json()).unwrap();
    mixed["d"] = b_json["d"].clone();
    assert!(
        Key::parse(&mixed.to_string())
            .unwrap_err()
            .to_string()
            .contains("does not match")
    );
}

#[test]
fn key_files_sets_and_directories() {
    let dir = std::env::temp_dir().join(format!("moq-auth-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let a = Key::generate(Algorithm::ES256, Some("a".into())).unwrap();
    let b = Key::generate(Algorithm::EdDSA, None).unwrap();
    // A directory of {kid}.jwk files; a key without a kid takes its file's name.
    std::fs::write(dir.join("a.jwk"), a.public().unwrap().to_json()).unwrap();
    let b_public: serde_json::Value = serde_json::from_str(&b.public().unwrap().to_json()).unwrap();
    let mut b_nokid = b_public.clone();
    b_nokid.as_object_mut().unwrap().remove("kid");
    std::fs::write(dir.join("rotated.jwk"), b_nokid.to_string()).unwrap();
    std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
    let mut keys = KeySet::new();
    keys.load(&dir).unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.keys()[1].kid(), Some("rotated"));
    assert!(
        keys.verify(&a.sign(&claims("", &[""], &[])).unwrap(), SystemTime::now())
            .is_ok()
    );

    // A JWK Set in one file.
    let set = serde_json::json!({"keys": [
        serde_json::from_str::<serde_json::Value>(&a.public().unwrap().to_json()).unwrap(),
        b_public,
    ]});
    let set_file = dir.join("set.json");
    std::fs::write(&set_file, set.to_string()).unwrap();
    let mut from_set = KeySet::new();
    from_set.load(&set_file).unwrap();
    assert_eq!(from_set.len(), 2);
    // Loading the same kid twice is an error that names the file.
    let err = from_set.load(&set_file).unwrap_err().to_string();
    assert!(
        err.contains("set.json") && err.contains("two keys"),
        "{err}"
    );

    // Missing files and empty directories say so.
    assert!(KeySet::new().load(dir.join("missing.jwk")).is_err());
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(matches!(
        KeySet::new().load(&empty),
        Err(KeyError::NoKeys(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_ecosystem_tools_tokens_verify_here() {
    let dir = fixtures();
    let now = SystemTime::now();
    let expected = claims("demo", &["alice"], &[""]);
    for (key, token) in [
        ("hs256.jwk", "hs256.jwt"),
        ("es256.pub.jwk", "es256.jwt"),
        ("eddsa.pub.jwk", "eddsa.jwt"),
    ] {
        let mut keys = KeySet::new();
        keys.load(dir.join(key)).unwrap();
        let token = std::fs::read_to_string(dir.join(token)).unwrap();
        assert_eq!(
            keys.verify(token.trim(), now),
            Ok(expected.clone()),
            "{key}"
        );
    }
    let mut keys = KeySet::new();
    keys.load(dir.join("hs256.jwk")).unwrap();
    let token = std::fs::read_to_string(dir.join("hs256-exp.jwt")).unwrap();
    let mut timed = expected.clone();
    timed.exp = Some(4_102_444_800);
    timed.iat = Some(1_700_000_000);
    assert_eq!(keys.verify(token.trim(), now), Ok(timed));
    assert_eq!(
        keys.verify(token.trim(), at(4_102_444_800)),
        Err(VerifyError::Expired { exp: 4_102_444_800 })
    );

    // Their private keys sign tokens that their public keys verify, through us.
    for (private, public) in [
        ("es256.jwk", "es256.pub.jwk"),
        ("eddsa.jwk", "eddsa.pub.jwk"),
    ] {
        let key = Key::load(dir.join(private)).unwrap();
        assert!(key.is_private());
        let token = key.sign(&expected).unwrap();
        let keys = KeySet::from_keys([Key::load(dir.join(public)).unwrap()]).unwrap();
        assert_eq!(keys.verify(&token, now), Ok(expected.clone()), "{private}");
    }
}
