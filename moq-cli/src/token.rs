//! `moq token`: make keys, sign tokens, and check them (docs/auth.md).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use clap::Subcommand;
use moq_auth::{Algorithm, Claims, Key, KeySet};

/// What `moq token` does.
#[derive(Subcommand, Debug)]
pub(crate) enum TokenCommand {
    /// Make a new key and write it as a JWK file (private, mode 0600).
    Generate {
        /// HS256, HS384, HS512 (a shared secret), ES256 or EdDSA (a key pair).
        #[arg(long, default_value = "EdDSA")]
        algorithm: String,
        /// The key id (kid) tokens name it by; random if not given.
        #[arg(long, value_name = "KID")]
        id: Option<String>,
        /// Where to write the key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Also write the public key here, for the relay's --auth-key (not for HS*).
        #[arg(long, value_name = "FILE")]
        public: Option<PathBuf>,
    },
    /// Sign a token with a private key (or an HS* secret) and print it.
    Sign {
        /// The key to sign with.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The base path of the connections the token is for ("" for everything).
        #[arg(long, default_value = "")]
        root: String,
        /// A path under the root the holder may publish under (repeatable; "" for all).
        #[arg(long, value_name = "SUFFIX")]
        put: Vec<String>,
        /// A path under the root the holder may subscribe under (repeatable; "" for all).
        #[arg(long, value_name = "SUFFIX")]
        get: Vec<String>,
        /// How long the token is valid, e.g. 90s, 30m, 12h, 7d; without it the token does
        /// not expire.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires: Option<Duration>,
    },
    /// Check a token with a key (file, JWK Set or directory) and print its claims.
    Verify {
        /// The key(s) to verify with.
        #[arg(long, value_name = "FILE|DIR", required = true)]
        key: Vec<PathBuf>,
        /// The token; read from stdin if not given.
        token: Option<String>,
    },
}

/// Runs a `moq token` command.
pub(crate) fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Generate {
            algorithm,
            id,
            out,
            public,
        } => {
            let algorithm: Algorithm = algorithm.parse()?;
            let key = Key::generate(algorithm, id)?;
            let public_key = match &public {
                Some(_) => Some(key.public().map_err(|e| anyhow!("--public: {e}"))?),
                None => None,
            };
            write_key(&out, &key.to_json(), true)?;
            eprintln!(
                "wrote the {algorithm} key {} to {}",
                key.kid().unwrap_or(""),
                out.display()
            );
            if let (Some(path), Some(public_key)) = (public, public_key) {
                write_key(&path, &public_key.to_json(), false)?;
                eprintln!(
                    "wrote its public key to {} (for moq-relay --auth-key)",
                    path.display()
                );
            }
            Ok(())
        }
        TokenCommand::Sign {
            key,
            root,
            put,
            get,
            expires,
        } => {
            let key = Key::load(&key).with_context(|| format!("--key {}", key.display()))?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let mut claims = Claims::new(root.trim_matches('/'));
            claims.put = put;
            claims.get = get;
            claims.iat = Some(now);
            claims.exp = expires.map(|d| now.saturating_add(d.as_secs().max(1)));
            let token = key.sign(&claims).map_err(|e| match e {
                moq_auth::KeyError::NoGrant => {
                    anyhow!("{e} (--put SUFFIX to publish, --get SUFFIX to subscribe; \"\" is all)")
                }
                other => anyhow!("{other}"),
            })?;
            println!("{token}");
            Ok(())
        }
        TokenCommand::Verify { key, token } => {
            let mut keys = KeySet::new();
            for path in &key {
                keys.load(path)
                    .with_context(|| format!("--key {}", path.display()))?;
            }
            let token = match token {
                Some(token) => token,
                None => {
                    let mut text = String::new();
                    std::io::stdin()
                        .take(64 * 1024)
                        .read_to_string(&mut text)
                        .context("reading the token from stdin")?;
                    text
                }
            };
            let claims = keys
                .verify(token.trim(), SystemTime::now())
                .map_err(|e| anyhow!("invalid token: {e}"))?;
            println!("{}", serde_json::to_string_pretty(&claims)?);
            Ok(())
        }
    }
}

/// Writes a key file; a private one readable by its owner only.
fn write_key(path: &Path, json: &str, private: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{json}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// `90s`, `30m`, `12h`, `7d`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 12h or 7d"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?} in {text:?} (s, m, h or d)")),
    };
    number
        .checked_mul(unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn unix_permissions_of_private_keys() {
        let dir = std::env::temp_dir().join(format!("moq-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.jwk");
        write_key(&path, "{}", true).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
