//! [`Credentials`]: the root path and access token a client presents, from its URL.
//!
//! One convention for both transports: the URL path is the session's root and the `jwt`
//! query parameter its token, `https://relay:4443/room?jwt=TOKEN` or
//! `moqf://relay:4443/room?jwt=TOKEN`. WebTransport carries the URL in its CONNECT request;
//! raw QUIC has no request, so the client puts the two into its `SessionClient` extensions
//! ([`Extensions::ROOT`], [`Extensions::JWT`]) and the server reads them back from there.

use std::fmt;

use bytes::Bytes;
use moq_proto::{Extensions, Path};
use url::Url;

/// The name of the URL query parameter that carries the access token.
pub const JWT_QUERY: &str = "jwt";

/// What a client presents to a server: the root path of its session and, optionally, an
/// access token. Its `Debug` form hides the token.
///
/// ```
/// use moq_transport_quinn::Credentials;
/// use url::Url;
///
/// let url = Url::parse("moqf://relay.example:4443/room/alice?jwt=eyJ.x.y").unwrap();
/// let credentials = Credentials::from_url(&url);
/// assert_eq!(credentials.root.to_string(), "room/alice");
/// assert_eq!(credentials.jwt.as_deref(), Some("eyJ.x.y"));
/// assert!(!format!("{credentials:?}").contains("eyJ"));
///
/// // Raw QUIC carries them in the setup extensions.
/// let back = Credentials::from_extensions(&credentials.to_extensions()).unwrap();
/// assert_eq!(back, credentials);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credentials {
    /// The session's root path: the URL path, percent-decoded, empty segments dropped.
    pub root: Path,
    /// The access token, from the `jwt` query parameter.
    pub jwt: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("root", &self.root.to_string())
            .field("jwt", &self.jwt.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Setup extensions that do not hold credentials of the expected form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The root or token extension is not UTF-8 text.
    #[error("the {0} setup extension is not UTF-8 text")]
    NotText(&'static str),
}

impl Credentials {
    /// Credentials with this root and token.
    pub fn new(root: Path, jwt: Option<String>) -> Self {
        Self { root, jwt }
    }

    /// The root (URL path) and token (`jwt` query parameter) of `url`. A URL without a
    /// path has the empty root; an empty `jwt=` is no token.
    pub fn from_url(url: &Url) -> Self {
        Self {
            root: root_of(url),
            jwt: jwt_of(url),
        }
    }

    /// The credentials a raw-QUIC client sent in its setup extensions; none sent reads as
    /// the empty root and no token.
    ///
    /// # Errors
    ///
    /// An extension that is not UTF-8 text.
    pub fn from_extensions(extensions: &Extensions) -> Result<Self, CredentialsError> {
        let text = |id, name| {
            extensions
                .get(id)
                .map(|bytes| {
                    std::str::from_utf8(bytes)
                        .map(str::to_owned)
                        .map_err(|_| CredentialsError::NotText(name))
                })
                .transpose()
        };
        let root = text(Extensions::ROOT, "root")?.unwrap_or_default();
        let jwt = text(Extensions::JWT, "jwt")?.filter(|jwt| !jwt.is_empty());
        Ok(Self {
            root: parse_root(root.split('/')),
            jwt,
        })
    }

    /// The setup extensions that carry these credentials over raw QUIC: the root (when not
    /// empty) and the token (when there is one).
    pub fn to_extensions(&self) -> Extensions {
        let mut extensions = Extensions::new();
        if !self.root.is_empty() {
            extensions.insert(Extensions::ROOT, Bytes::from(self.root.parts().join("/")));
        }
        if let Some(jwt) = &self.jwt {
            extensions.insert(Extensions::JWT, Bytes::from(jwt.clone()));
        }
        extensions
    }
}

/// `url` with the value of its `jwt` query parameter replaced by `<redacted>`, for logs
/// and error messages: tokens are credentials and never printed.
///
/// ```
/// use moq_transport_quinn::redact_url;
///
/// assert_eq!(
///     redact_url("https://relay:4443/room?jwt=eyJ.x.y&x=1"),
///     "https://relay:4443/room?jwt=<redacted>&x=1"
/// );
/// assert_eq!(redact_url("moqf://relay:4443/"), "moqf://relay:4443/");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    // Names are compared percent-decoded, as `Url::query_pairs` reads them (`%6Awt` is
    // `jwt` too).
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _))
                if percent_encoding::percent_decode_str(&name.replace('+', " "))
                    .decode_utf8_lossy()
                    == JWT_QUERY =>
            {
                format!("{name}=<redacted>")
            }
            _ => pair.to_owned(),
        })
        .collect();
    let mut out = format!("{base}?{}", query.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// `spec`, a log filter (tracing's env-filter syntax, as in `RUST_LOG`), with
/// web-transport-quinn's own logs kept at info unless `spec` names that crate: at debug it
/// logs every CONNECT request whole, URL and token included.
///
/// ```
/// use moq_transport_quinn::token_safe_log_filter;
///
/// assert_eq!(token_safe_log_filter("debug"), "debug,web_transport_quinn=info");
/// assert_eq!(token_safe_log_filter("web_transport_quinn=debug"), "web_transport_quinn=debug");
/// ```
pub fn token_safe_log_filter(spec: &str) -> String {
    if spec.contains("web_transport_quinn") {
        spec.to_owned()
    } else if spec.trim().is_empty() {
        "web_transport_quinn=info".to_owned()
    } else {
        format!("{spec},web_transport_quinn=info")
    }
}

/// `url` with its `jwt` query parameter set to `jwt` (replacing one it had).
pub fn with_jwt(url: &Url, jwt: &str) -> Url {
    let mut url = url.clone();
    let others: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(name, _)| name != JWT_QUERY)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(others)
        .append_pair(JWT_QUERY, jwt);
    url
}

fn root_of(url: &Url) -> Path {
    // Decoded, then split on `/` again: `room%2Falice` is the root `room/alice` as on raw
    // QUIC, whose extension carries the root as text joined by `/`.
    let decoded: Vec<String> = url
        .path_segments()
        .into_iter()
        .flatten()
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    parse_root(decoded.iter().flat_map(|segment| segment.split('/')))
}

fn jwt_of(url: &Url) -> Option<String> {
    url.query_pairs()
        .find(|(name, _)| name == JWT_QUERY)
        .map(|(_, value)| value.into_owned())
        .filter(|jwt| !jwt.is_empty())
}

fn parse_root<S: AsRef<str>>(segments: impl Iterator<Item = S>) -> Path {
    segments
        .filter(|segment| !segment.as_ref().is_empty())
        .map(|segment| segment.as_ref().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_and_tokens_from_urls() {
        let cases = [
            ("https://h:1/", "", None),
            ("https://h:1", "", None),
            ("moqf://h:1/room", "room", None),
            ("moqf://h:1//room//alice/", "room/alice", None),
            ("https://h:1/my%20room/a?jwt=abc", "my room/a", Some("abc")),
            ("https://h:1/r?x=1&jwt=t.u.v&y=2", "r", Some("t.u.v")),
            ("https://h:1/r?jwt=", "r", None),
            ("https://h:1/room%2Falice?jwt=t", "room/alice", Some("t")),
        ];
        for (url, root, jwt) in cases {
            let credentials = Credentials::from_url(&Url::parse(url).unwrap());
            assert_eq!(credentials.root.to_string(), root, "{url}");
            assert_eq!(credentials.jwt.as_deref(), jwt, "{url}");
        }
    }

    #[test]
    fn extensions_round_trip_and_reject_bad_text() {
        let credentials = Credentials::new(Path::from(["a", "b"]), Some("t".into()));
        assert_eq!(
            Credentials::from_extensions(&credentials.to_extensions()),
            Ok(credentials)
        );
        assert_eq!(
            Credentials::from_extensions(&Extensions::new()),
            Ok(Credentials::default())
        );
        let mut bad = Extensions::new();
        bad.insert(Extensions::JWT, Bytes::from_static(&[0xff, 0xfe]));
        assert_eq!(
            Credentials::from_extensions(&bad),
            Err(CredentialsError::NotText("jwt"))
        );
    }

    #[test]
    fn a_token_is_set_once_and_redacted() {
        let url = Url::parse("https://h:1/room?jwt=old&x=1").unwrap();
        let url = with_jwt(&url, "new");
        assert_eq!(Credentials::from_url(&url).jwt.as_deref(), Some("new"));
        assert_eq!(url.query_pairs().filter(|(k, _)| k == "jwt").count(), 1);
        assert!(!redact_url(url.as_str()).contains("new"));
        // A name spelled with percent-escapes is the same parameter.
        let sneaky = "https://h/?%6Awt=secret";
        assert_eq!(
            Credentials::from_url(&Url::parse(sneaky).unwrap())
                .jwt
                .as_deref(),
            Some("secret")
        );
        assert!(!redact_url(sneaky).contains("secret"));
        assert_eq!(
            redact_url("https://h/?jwt=a#frag"),
            "https://h/?jwt=<redacted>#frag"
        );
    }
}
