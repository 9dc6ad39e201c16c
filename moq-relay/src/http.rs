//! A small HTTP/1.1 GET responder on TCP, beside the relay's UDP port: the certificate
//! fingerprint (`--dev`), a JSON description for the browser page, and static files
//! (`--web DIR`).
//!
//! Deliberately small: one request per connection (`Connection: close`), requests of at
//! most [`MAX_REQUEST`] bytes read within [`REQUEST_TIMEOUT`], only `GET` and `HEAD`, file
//! names restricted to plain path segments under the web root.

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The largest request head accepted (request line and headers).
pub const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request, and the response to be written.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest file served from the web root.
pub const MAX_FILE: u64 = 64 * 1024 * 1024;

/// What the HTTP side serves.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HttpConfig {
    /// The certificate fingerprint (lowercase hex SHA-256) served at `/fingerprint`.
    pub fingerprint: String,
    /// The relay's UDP port, for the URL in `/info.json`.
    pub port: u16,
    /// Serve static files from here (`/` is `index.html`).
    pub web_root: Option<PathBuf>,
}

impl HttpConfig {
    /// Serves `fingerprint` and `/info.json` for a relay on UDP `port`, no files.
    pub fn new(fingerprint: impl Into<String>, port: u16) -> Self {
        Self {
            fingerprint: fingerprint.into(),
            port,
            web_root: None,
        }
    }

    /// Sets [`web_root`](Self::web_root).
    pub fn with_web_root(mut self, root: Option<PathBuf>) -> Self {
        self.web_root = root;
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
    let config = Arc::new(config);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::debug!(%err, "http accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let config = config.clone();
        tokio::spawn(async move {
            let answer = tokio::time::timeout(REQUEST_TIMEOUT, respond(stream, &config)).await;
            if let Ok(Err(err)) = answer {
                tracing::debug!(%peer, %err, "http request failed");
            }
        });
    }
}

/// A response: status line, content type and body.
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Response {
    fn text(status: &'static str, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }
}

async fn respond(mut stream: TcpStream, config: &HttpConfig) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let complete = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break false;
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break true;
        }
        if head.len() > MAX_REQUEST {
            break false;
        }
    };
    let (method, response) = if !complete {
        (
            "GET",
            Response::text("431 Request Header Fields Too Large", "bad request\n"),
        )
    } else {
        let text = String::from_utf8_lossy(&head);
        let mut lines = text.lines();
        let request_line = lines.next().unwrap_or_default();
        let mut words = request_line.split_whitespace();
        let method = words.next().unwrap_or_default().to_owned();
        let target = words.next().unwrap_or_default().to_owned();
        let host = lines
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("host"))
            .map(|(_, value)| value.trim().to_owned());
        let response = match method.as_str() {
            "GET" | "HEAD" => answer(&target, host.as_deref(), config).await,
            _ => Response::text("405 Method Not Allowed", "only GET\n"),
        };
        (if method == "HEAD" { "HEAD" } else { "GET" }, response)
    };
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Access-Control-Allow-Origin: *\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(&response.body);
    }
    stream.write_all(&out).await?;
    stream.shutdown().await
}

async fn answer(target: &str, host: Option<&str>, config: &HttpConfig) -> Response {
    let path = target.split(['?', '#']).next().unwrap_or("/");
    match path {
        "/fingerprint" => Response::text("200 OK", config.fingerprint.clone()),
        "/info.json" => {
            let host = host.map(host_name).unwrap_or("127.0.0.1".into());
            let body = format!(
                "{{\"url\": \"https://{host}:{}/\", \"fingerprint\": \"{}\"}}\n",
                config.port, config.fingerprint
            );
            Response {
                status: "200 OK",
                content_type: "application/json",
                body: body.into_bytes(),
            }
        }
        _ => match &config.web_root {
            Some(root) => file(root, path).await,
            None => Response::text("404 Not Found", "not found\n"),
        },
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

/// A file under `root` named by plain path segments; `index.html` for directories.
async fn file(root: &FsPath, path: &str) -> Response {
    let mut full = root.to_path_buf();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let safe = !segment.starts_with('.')
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !safe {
            return Response::text("404 Not Found", "not found\n");
        }
        full.push(segment);
    }
    if path.ends_with('/') || tokio::fs::metadata(&full).await.is_ok_and(|m| m.is_dir()) {
        full.push("index.html");
    }
    match tokio::fs::metadata(&full).await {
        Ok(meta) if meta.is_file() && meta.len() <= MAX_FILE => {}
        _ => return Response::text("404 Not Found", "not found\n"),
    }
    match tokio::fs::read(&full).await {
        Ok(body) => Response {
            status: "200 OK",
            content_type: content_type(&full),
            body,
        },
        Err(_) => Response::text("404 Not Found", "not found\n"),
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
