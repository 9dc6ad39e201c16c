//! The relay's HTTP side on TCP, beside its UDP port: the certificate fingerprint (`--dev`),
//! a JSON description for the browser page, static files (`--web DIR`), and the relay's
//! health and metrics (`/healthz`, `/metrics`, also alone on a listener of their own with
//! `--metrics-bind`), served by hyper's HTTP/1.1 server.
//!
//! Deliberately small: one request per connection (`Connection: close`), a request head of
//! at most [`MAX_REQUEST`] bytes (larger ones get 431) read within the request timeout
//! ([`REQUEST_TIMEOUT`] by default; a slower client is cut off), the response written within
//! the same time again, only `GET` and `HEAD` (others get 405), file names restricted to
//! plain path segments under the web root, files of at most [`MAX_FILE`] bytes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::Relay;
use crate::metrics::{self, Metrics};

/// The largest request head accepted (request line and headers); a larger one is answered
/// 431 and the connection closed.
pub const MAX_REQUEST: usize = 8 * 1024;
/// The default [`HttpConfig::request_timeout`].
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest file served from the web root.
pub const MAX_FILE: u64 = 64 * 1024 * 1024;

/// What the HTTP side serves.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HttpConfig {
    /// The certificate fingerprint (lowercase hex SHA-256) served at `/fingerprint`, and
    /// with [`port`](Self::port) at `/info.json`; `None`: neither route.
    pub fingerprint: Option<String>,
    /// The relay's UDP port, for the URL in `/info.json`.
    pub port: u16,
    /// The relay whose `GET /healthz` (200 while it accepts sessions, else 503) and
    /// `GET /metrics` are served; `None`: neither route.
    pub relay: Option<Relay>,
    /// Whether `/metrics` is served (with a [`relay`](Self::relay)); default true.
    pub metrics: bool,
    /// Serve static files from here (`/` is `index.html`).
    pub web_root: Option<PathBuf>,
    /// How long a client may take to send its request head, and then how long writing the
    /// response may take; past either the connection is closed. Default [`REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
}

impl HttpConfig {
    /// Serves `fingerprint` and `/info.json` for a relay on UDP `port`, no files.
    pub fn new(fingerprint: impl Into<String>, port: u16) -> Self {
        Self {
            fingerprint: Some(fingerprint.into()),
            port,
            relay: None,
            metrics: true,
            web_root: None,
            request_timeout: REQUEST_TIMEOUT,
        }
    }

    /// Serves only `/healthz` and `/metrics` of `relay` (the `--metrics-bind` listener).
    pub fn for_metrics(relay: Relay) -> Self {
        Self {
            fingerprint: None,
            port: 0,
            relay: Some(relay),
            metrics: true,
            web_root: None,
            request_timeout: REQUEST_TIMEOUT,
        }
    }

    /// Sets [`relay`](Self::relay).
    pub fn with_relay(mut self, relay: Option<Relay>) -> Self {
        self.relay = relay;
        self
    }

    /// Sets [`metrics`](Self::metrics).
    pub fn with_metrics(mut self, metrics: bool) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sets [`web_root`](Self::web_root).
    pub fn with_web_root(mut self, root: Option<PathBuf>) -> Self {
        self.web_root = root;
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

/// Binds `addr` (TCP) for [`serve`].
///
/// # Errors
///
/// The socket cannot be bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Answers requests on `listener` until the future is dropped; each connection on its own
/// task, bounded in size and time.
///
/// # Cancel safety
///
/// Cancel-safe: dropping it stops accepting (connections in progress finish on their own).
pub async fn serve(listener: TcpListener, config: HttpConfig) {
    let metrics = match &config.relay {
        Some(relay) if config.metrics => Some(Metrics::new(relay.clone())),
        _ => None,
    };
    let config = Arc::new(Site { config, metrics });
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::debug!(%err, "http accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(connection(stream, peer, config.clone()));
    }
}

/// What one listener serves: its configuration, and the metrics built once for it.
struct Site {
    config: HttpConfig,
    metrics: Option<Metrics>,
}

/// One connection: one request head within the timeout (hyper's header read timeout, which
/// closes the connection without an answer), then the response within the timeout again.
async fn connection(stream: TcpStream, peer: SocketAddr, config: Arc<Site>) {
    let timeout = config.config.request_timeout;
    let requested = Arc::new(Notify::new());
    let service = {
        let requested = requested.clone();
        hyper::service::service_fn(move |request| {
            requested.notify_one();
            let config = config.clone();
            async move { Ok::<_, Infallible>(respond(request, &config).await) }
        })
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_header_size(MAX_REQUEST)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = requested.notified() => match tokio::time::timeout(timeout, connection).await {
            Ok(served) => served,
            Err(_) => {
                tracing::debug!(%peer, "http response timed out");
                return;
            }
        },
    };
    if let Err(err) = served {
        tracing::debug!(%peer, %err, "http connection failed");
    }
}

/// The answer to one request: `GET` and `HEAD` only, every response uncached and open to
/// any origin.
async fn respond(request: Request<Incoming>, config: &Site) -> Response<Full<Bytes>> {
    let head = request.method() == Method::HEAD;
    let mut response = if request.method() == Method::GET || head {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|value| value.to_str().ok());
        answer(request.uri().path(), host, head, config).await
    } else {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        response
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A response with `body` of `content_type`.
fn body(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn text(status: StatusCode, text: impl Into<String>) -> Response<Full<Bytes>> {
    body(status, "text/plain; charset=utf-8", text.into())
}

fn not_found() -> Response<Full<Bytes>> {
    text(StatusCode::NOT_FOUND, "not found\n")
}

async fn answer(path: &str, host: Option<&str>, head: bool, site: &Site) -> Response<Full<Bytes>> {
    let config = &site.config;
    match (path, &config.fingerprint, &config.relay, &site.metrics) {
        ("/fingerprint", Some(fingerprint), _, _) => text(StatusCode::OK, fingerprint.clone()),
        ("/info.json", Some(fingerprint), _, _) => {
            let host = host.map(host_name).unwrap_or("127.0.0.1".into());
            let json = format!(
                "{{\"url\": \"https://{host}:{}/\", \"fingerprint\": \"{fingerprint}\"}}\n",
                config.port
            );
            body(StatusCode::OK, "application/json", json)
        }
        ("/healthz", _, Some(relay), _) => health(relay),
        ("/metrics", _, _, Some(metrics)) => {
            body(StatusCode::OK, metrics::CONTENT_TYPE, metrics.render())
        }
        _ => match &config.web_root {
            Some(root) => file(root, path, head).await,
            None => not_found(),
        },
    }
}

/// `/healthz`: 200 while the relay accepts sessions; 503 once it shuts down (a load
/// balancer stops sending new clients while it drains) or when no accept loop runs.
fn health(relay: &Relay) -> Response<Full<Bytes>> {
    if relay.is_accepting() {
        text(StatusCode::OK, "ok\n")
    } else if relay.is_shutting_down() {
        text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "not accepting sessions\n")
    }
}

/// The host part of a `Host` header (without the port), or `127.0.0.1` if it looks odd.
fn host_name(header: &str) -> String {
    let host = if let Some(rest) = header.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, _)) => format!("[{v6}]"),
            None => String::new(),
        }
    } else {
        header.split(':').next().unwrap_or_default().to_owned()
    };
    let plain = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c));
    if host.is_empty() || !plain {
        "127.0.0.1".into()
    } else {
        host
    }
}

/// A file under `root` named by plain path segments; `index.html` for directories. For
/// `HEAD` (`head`) only its length, not its bytes.
async fn file(root: &FsPath, path: &str, head: bool) -> Response<Full<Bytes>> {
    let mut full = root.to_path_buf();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let safe = !segment.starts_with('.')
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !safe {
            return not_found();
        }
        full.push(segment);
    }
    if path.ends_with('/') || tokio::fs::metadata(&full).await.is_ok_and(|m| m.is_dir()) {
        full.push("index.html");
    }
    let len = match tokio::fs::metadata(&full).await {
        Ok(meta) if meta.is_file() && meta.len() <= MAX_FILE => meta.len(),
        _ => return not_found(),
    };
    let content_type = content_type(&full);
    if head {
        let mut response = body(StatusCode::OK, content_type, Bytes::new());
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        return response;
    }
    match tokio::fs::read(&full).await {
        Ok(bytes) => body(StatusCode::OK, content_type, bytes),
        Err(_) => not_found(),
    }
}

fn content_type(path: &FsPath) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("example.com:4443"), "example.com");
        assert_eq!(host_name("[::1]:4443"), "[::1]");
        assert_eq!(host_name("bad\"host"), "127.0.0.1");
        assert_eq!(host_name(""), "127.0.0.1");
    }
}
