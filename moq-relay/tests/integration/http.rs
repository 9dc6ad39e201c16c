//! The relay's HTTP side through its public API (`http::bind`, `http::serve`): the routes,
//! the files and their path rules, the limits (head size, slow clients, methods), and the
//! relay's `/metrics` and `/healthz` with a real relay and real sessions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::{Harness, Via, read_group, until};
use moq_model::{Path, Track};
use moq_relay::http::{self, HttpConfig, MAX_FILE, MAX_REQUEST};
use moq_relay::{AuthConfig, Relay, RelayConfig, RelayLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FINGERPRINT: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A web root in the temp directory with a page, a script, a sub-directory with its own
/// index, a hidden file, and a secret file beside the root (never to be served); removed on
/// drop.
struct WebRoot {
    dir: PathBuf,
}

impl WebRoot {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("moq-relay-http-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("www");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("index.html"), "<p>relay page</p>").unwrap();
        std::fs::write(root.join("app.js"), "export {};").unwrap();
        std::fs::write(root.join("sub/index.html"), "<p>sub</p>").unwrap();
        std::fs::write(root.join(".hidden"), "hidden").unwrap();
        std::fs::write(dir.join("secret"), "secret").unwrap();
        Self { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("www")
    }
}

impl Drop for WebRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Serves `config` on 127.0.0.1 on a task of its own; its address.
async fn start(config: HttpConfig) -> SocketAddr {
    let listener = http::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(http::serve(listener, config));
    addr
}

/// Writes `request` and reads until the server closes (or resets) the connection, at most
/// 10 s; everything read.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_all(&mut stream).await
}

async fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf))
            .await
            .expect("the server closed the connection in time");
        match read {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A response split into its status line, lowercased header lines and body.
struct Parsed {
    status: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Parsed {
    fn new(raw: &[u8]) -> Self {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(raw)));
        let head = std::str::from_utf8(&raw[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().to_owned();
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        Self {
            status,
            headers,
            body: raw[end + 4..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn code(&self) -> u16 {
        self.status.split(' ').nth(1).unwrap().parse().unwrap()
    }
}

async fn get(addr: SocketAddr, target: &str) -> Parsed {
    let request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    Parsed::new(&exchange(addr, request.as_bytes()).await)
}

#[tokio::test]
async fn serves_the_fingerprint_info_and_files() {
    let web = WebRoot::new("routes");
    let addr = start(HttpConfig::new(FINGERPRINT, 4443).with_web_root(Some(web.root()))).await;

    let response = get(addr, "/fingerprint").await;
    assert_eq!(response.status, "HTTP/1.1 200 OK");
    assert_eq!(response.body, FINGERPRINT.as_bytes());
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(response.header("content-length"), Some("64"));
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert_eq!(response.header("cache-control"), Some("no-cache"));
    assert_eq!(response.header("connection"), Some("close"));

    // /info.json: the host of the Host header (without its port), the relay's UDP port.
    for (host, expected) in [
        ("localhost:9", "localhost"),
        ("[::1]:80", "[::1]"),
        ("bad\"host", "127.0.0.1"),
    ] {
        let request = format!("GET /info.json?x=1 HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let response = Parsed::new(&exchange(addr, request.as_bytes()).await);
        assert_eq!(response.code(), 200);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(
            String::from_utf8(response.body).unwrap(),
            format!(
                "{{\"url\": \"https://{expected}:4443/\", \"fingerprint\": \"{FINGERPRINT}\"}}\n"
            )
        );
    }
    // No Host header (HTTP/1.0): 127.0.0.1.
    let response = Parsed::new(&exchange(addr, b"GET /info.json HTTP/1.0\r\n\r\n").await);
    assert_eq!(response.code(), 200);
    assert!(
        String::from_utf8(response.body)
            .unwrap()
            .contains("https://127.0.0.1:4443/")
    );

    // Files: `/` and directories are index.html; content types by extension.
    let response = get(addr, "/").await;
    assert_eq!(response.code(), 200);
    assert_eq!(response.body, b"<p>relay page</p>");
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let response = get(addr, "/app.js").await;
    assert_eq!(response.body, b"export {};");
    assert_eq!(
        response.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(get(addr, "/sub").await.body, b"<p>sub</p>");
    assert_eq!(get(addr, "/sub/").await.body, b"<p>sub</p>");
    assert_eq!(get(addr, "/missing.html").await.code(), 404);

    // Without --web only the two routes.
    let bare = start(HttpConfig::new(FINGERPRINT, 4443)).await;
    assert_eq!(get(bare, "/").await.code(), 404);
    assert_eq!(get(bare, "/fingerprint").await.code(), 200);
}

#[tokio::test]
async fn refuses_paths_outside_plain_segments() {
    let web = WebRoot::new("paths");
    let addr = start(HttpConfig::new(FINGERPRINT, 4443).with_web_root(Some(web.root()))).await;
    for target in [
        "/../secret",
        "/sub/../../secret",
        "/%2e%2e/secret",
        "/..%2fsecret",
        "/sub/..",
        "/.hidden",
        "/sub/%00",
        "/a%20b",
    ] {
        let response = get(addr, target).await;
        assert_eq!(response.code(), 404, "{target}");
        assert_eq!(response.body, b"not found\n", "{target}");
    }
    // Even a path whose `..` would stay inside the root is refused.
    assert_eq!(get(addr, "/sub/../index.html").await.code(), 404);
    // Something not a path at all is a bad request (hyper's parser) or not found.
    let response = Parsed::new(&exchange(addr, b"GET ../secret HTTP/1.1\r\n\r\n").await);
    assert!([400, 404].contains(&response.code()), "{}", response.status);
}

#[tokio::test]
async fn serves_no_file_above_max_file() {
    let web = WebRoot::new("large");
    // Sparse: no disk space used.
    let large = std::fs::File::create(web.root().join("large.bin")).unwrap();
    large.set_len(MAX_FILE + 1).unwrap();
    let addr = start(HttpConfig::new(FINGERPRINT, 4443).with_web_root(Some(web.root()))).await;
    assert_eq!(get(addr, "/large.bin").await.code(), 404);
}

#[tokio::test]
async fn head_has_headers_and_no_body() {
    let web = WebRoot::new("head");
    let addr = start(HttpConfig::new(FINGERPRINT, 4443).with_web_root(Some(web.root()))).await;
    for (target, length, content_type) in [
        ("/", "17", "text/html; charset=utf-8"),
        ("/app.js", "10", "text/javascript; charset=utf-8"),
        ("/fingerprint", "64", "text/plain; charset=utf-8"),
    ] {
        let request = format!("HEAD {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        let response = Parsed::new(&exchange(addr, request.as_bytes()).await);
        assert_eq!(response.code(), 200, "{target}");
        assert_eq!(response.header("content-length"), Some(length), "{target}");
        assert_eq!(
            response.header("content-type"),
            Some(content_type),
            "{target}"
        );
        assert!(response.body.is_empty(), "{target}");
    }
    let response = Parsed::new(&exchange(addr, b"HEAD /missing HTTP/1.1\r\n\r\n").await);
    assert_eq!(response.code(), 404);
    assert!(response.body.is_empty());
}

#[tokio::test]
async fn other_methods_get_405() {
    let addr = start(HttpConfig::new(FINGERPRINT, 4443)).await;
    for request in [
        "POST /fingerprint HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".to_string(),
        "PUT /index.html HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_string(),
        "DELETE / HTTP/1.1\r\n\r\n".to_string(),
        "OPTIONS * HTTP/1.1\r\n\r\n".to_string(),
    ] {
        let response = Parsed::new(&exchange(addr, request.as_bytes()).await);
        assert_eq!(response.code(), 405, "{request}");
        assert_eq!(response.header("allow"), Some("GET, HEAD"), "{request}");
        assert_eq!(response.body, b"only GET\n", "{request}");
    }
}

#[tokio::test]
async fn refuses_an_oversized_head() {
    let addr = start(HttpConfig::new(FINGERPRINT, 4443)).await;
    // A long target, and many headers: both over the limit.
    let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST + 100));
    let many_headers = format!(
        "GET /fingerprint HTTP/1.1\r\n{}\r\n",
        "X-Filler: 0123456789abcdef0123456789abcdef\r\n".repeat(MAX_REQUEST / 40 + 10)
    );
    for request in [long_target, many_headers] {
        assert!(request.len() > MAX_REQUEST);
        let response = exchange(addr, request.as_bytes()).await;
        let response = String::from_utf8_lossy(&response);
        assert!(
            response.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
            "{response}"
        );
    }
    // Just under the limit is fine.
    let request = format!(
        "GET /fingerprint HTTP/1.1\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(MAX_REQUEST - 100)
    );
    assert!(request.len() < MAX_REQUEST);
    let response = Parsed::new(&exchange(addr, request.as_bytes()).await);
    assert_eq!(response.code(), 200);
}

#[tokio::test]
async fn cuts_off_a_slow_request_head() {
    let timeout = Duration::from_millis(300);
    let addr = start(HttpConfig::new(FINGERPRINT, 4443).with_request_timeout(timeout)).await;

    // Half a head, then nothing; and nothing at all: closed without an answer.
    for partial in [&b"GET /fingerprint HTTP/1.1\r\nHost: loc"[..], b""] {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(partial).await.unwrap();
        let response = read_all(&mut stream).await;
        let took = started.elapsed();
        assert!(
            response.is_empty(),
            "{}",
            String::from_utf8_lossy(&response)
        );
        assert!(took >= timeout - Duration::from_millis(50), "{took:?}");
        assert!(took < timeout + Duration::from_secs(3), "{took:?}");
    }

    // A head that trickles in, a byte every 20 ms, is cut off too, however steady.
    let started = Instant::now();
    let (mut read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
    let trickle = tokio::spawn(async move {
        let head = b"GET /fingerprint HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
        for byte in head.iter().chain(std::iter::repeat(&b'a')).take(250) {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut buf = [0; 1024];
    let read = tokio::time::timeout(Duration::from_secs(4), read.read(&mut buf))
        .await
        .expect("the trickling client was not cut off");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let took = started.elapsed();
    assert!(took >= timeout - Duration::from_millis(50), "{took:?}");
    trickle.abort();
}

#[tokio::test]
async fn cuts_off_a_client_that_does_not_read_the_response() {
    let web = WebRoot::new("slow-reader");
    // Larger than loopback's socket buffers, so writing it must wait for the client.
    let size = 48 << 20;
    std::fs::write(web.root().join("big.bin"), vec![7u8; size]).unwrap();
    let timeout = Duration::from_millis(300);
    let addr = start(
        HttpConfig::new(FINGERPRINT, 4443)
            .with_web_root(Some(web.root()))
            .with_request_timeout(timeout),
    )
    .await;

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(timeout * 4).await;
    let response = read_all(&mut stream).await;
    assert!(
        response.starts_with(b"HTTP/1.1 200 OK"),
        "{:?}",
        String::from_utf8_lossy(&response[..response.len().min(100)])
    );
    assert!(
        response.len() < size,
        "the whole {} bytes arrived",
        response.len()
    );

    // A client that reads is served the whole file (with the default timeout).
    let patient = start(HttpConfig::new(FINGERPRINT, 4443).with_web_root(Some(web.root()))).await;
    let response = get(patient, "/big.bin").await;
    assert_eq!(response.body.len(), size);
}

/// The samples of a Prometheus text exposition (`name{labels}` → value). Checks the
/// format's rules on the way: every sample's metric has a `# HELP` and a `# TYPE` line
/// before it, counters end in `_total`, and values are numbers.
fn samples(text: &str) -> HashMap<String, f64> {
    let mut helped = Vec::new();
    let mut typed = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(!help.is_empty(), "{line}");
            helped.push(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            assert!((kind == "counter") == name.ends_with("_total"), "{line}");
            typed.insert(name.to_owned(), kind.to_owned());
        } else if !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            assert!(name.starts_with("moq_relay_"), "{line}");
            assert!(helped.iter().any(|h| h == name), "no HELP before {line}");
            assert!(typed.contains_key(name), "no TYPE before {line}");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            assert!(samples.insert(series.to_owned(), value).is_none(), "{line}");
        }
    }
    samples
}

/// `GET /metrics`, checked and parsed.
async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let response = get(addr, "/metrics").await;
    assert_eq!(response.code(), 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    samples(std::str::from_utf8(&response.body).unwrap())
}

/// `samples[name]`, which must be there.
fn value(samples: &HashMap<String, f64>, name: &str) -> f64 {
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {samples:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_sessions_subscriptions_and_traffic() {
    // Room for two sessions; anyone may publish and subscribe under /demo, nothing else.
    let max_memory = 8 << 20;
    let mut auth = AuthConfig::default();
    auth.public = vec![Path::from_iter(["demo"])];
    let limits = RelayLimits::default()
        .max_sessions(2)
        .max_memory(max_memory);
    let relay =
        Harness::start_with(RelayConfig::default().with_auth(auth).with_limits(limits)).await;
    let addr = start(HttpConfig::for_metrics(relay.relay.clone())).await;

    let before = scrape(addr).await;
    for name in [
        "moq_relay_sessions",
        "moq_relay_sessions_accepted_total",
        "moq_relay_upstream_subscriptions",
        "moq_relay_downstream_subscriptions",
        "moq_relay_frames_sent_total",
        "moq_relay_payload_sent_bytes_total",
        "moq_relay_sessions_refused_total{reason=\"limit\"}",
        "moq_relay_sessions_refused_total{reason=\"unauthorized\"}",
    ] {
        assert_eq!(value(&before, name), 0.0, "{name}");
    }
    assert_eq!(
        value(&before, "moq_relay_memory_limit_bytes"),
        max_memory as f64
    );

    // A publisher and a subscriber under /demo; groups of frames of known sizes, each
    // read before the next is written (nothing is skipped).
    let publisher = relay.connect_to(Via::Quic, "demo").await.unwrap();
    let subscriber = relay.connect_to(Via::WebTransport, "demo").await.unwrap();
    let (mut track, consumer) = Track::new(["clock"]).produce();
    publisher.session.publish(consumer).unwrap();
    until("announced", || relay.relay.stats().announced == 1).await;
    let mut sub = subscriber.session.subscribe(Track::new(["clock"]));
    until("subscribed upstream and downstream", || {
        let stats = relay.relay.stats();
        stats.tracks == 1 && stats.subscribers == 1
    })
    .await;
    const GROUPS: u64 = 3;
    const FRAMES: u64 = 4;
    let mut payload = 0;
    for g in 0..GROUPS {
        let mut group = track.append_group();
        for f in 0..FRAMES {
            let frame = vec![g as u8; (1000 * f + g) as usize];
            payload += frame.len() as u64;
            group.write_frame(frame).unwrap();
        }
        group.finish();
        let (sequence, frames) = read_group(&mut sub).await;
        assert_eq!((sequence, frames.len() as u64), (g, FRAMES));
    }
    // Counted as each group stream ends (the relay's send ends once it is acknowledged).
    until("the frames counted both ways", || {
        let stats = relay.relay.stats();
        stats.frames_in == GROUPS * FRAMES && stats.frames_out == GROUPS * FRAMES
    })
    .await;

    let during = scrape(addr).await;
    for (name, expected) in [
        ("moq_relay_sessions", 2),
        ("moq_relay_connections", 2),
        ("moq_relay_sessions_accepted_total", 2),
        ("moq_relay_announced_paths", 1),
        ("moq_relay_upstream_subscriptions", 1),
        ("moq_relay_downstream_subscriptions", 1),
        ("moq_relay_groups_received_total", GROUPS),
        ("moq_relay_groups_sent_total", GROUPS),
        ("moq_relay_frames_received_total", GROUPS * FRAMES),
        ("moq_relay_frames_sent_total", GROUPS * FRAMES),
        ("moq_relay_payload_received_bytes_total", payload),
        ("moq_relay_payload_sent_bytes_total", payload),
        ("moq_relay_groups_skipped_total", 0),
        ("moq_relay_groups_dropped_total", 0),
        ("moq_relay_group_drops_sent_total", 0),
        ("moq_relay_group_drops_received_total", 0),
        ("moq_relay_sessions_refused_total{reason=\"limit\"}", 0),
        ("moq_relay_endpoint_connections_total{endpoint=\"0\"}", 2),
        ("moq_relay_forwarded_datagrams_total", 0),
        ("moq_relay_forward_drops_total", 0),
    ] {
        assert_eq!(value(&during, name), expected as f64, "{name}");
    }
    // UDP bytes carry the payload and more (headers, control streams, acknowledgements).
    assert!(value(&during, "moq_relay_udp_received_bytes_total") > payload as f64);
    assert!(value(&during, "moq_relay_udp_sent_bytes_total") > payload as f64);
    // The latest group stays in the relay's cache while the track is subscribed.
    let memory = value(&during, "moq_relay_memory_used_bytes");
    assert!(memory > 0.0 && memory <= max_memory as f64, "{memory}");

    // A third session passes the relay-wide limit.
    assert!(relay.connect_to(Via::Quic, "demo").await.is_err());
    until("refused", || relay.relay.stats().refused == 1).await;

    // The subscriber leaves; a session outside /demo is refused with 16 (the place is free).
    drop(sub);
    subscriber.leave().await;
    until("the subscriber gone", || {
        let stats = relay.relay.stats();
        stats.connections == 1 && stats.tracks == 0
    })
    .await;
    let outsider = relay.connect_to(Via::WebTransport, "other").await;
    assert!(outsider.is_err());
    until("refused by the access control", || {
        relay.relay.stats().unauthorized == 1
    })
    .await;
    until("its place given back", || {
        relay.relay.stats().connections == 1
    })
    .await;

    let after = scrape(addr).await;
    for (name, expected) in [
        ("moq_relay_sessions", 1),
        ("moq_relay_sessions_accepted_total", 2),
        ("moq_relay_upstream_subscriptions", 0),
        ("moq_relay_downstream_subscriptions", 0),
        ("moq_relay_sessions_refused_total{reason=\"limit\"}", 1),
        (
            "moq_relay_sessions_refused_total{reason=\"unauthorized\"}",
            1,
        ),
        // Counters keep what the ended session counted.
        ("moq_relay_frames_sent_total", GROUPS * FRAMES),
        ("moq_relay_payload_sent_bytes_total", payload),
        ("moq_relay_groups_sent_total", GROUPS),
        // Refused connections arrived too.
        ("moq_relay_endpoint_connections_total{endpoint=\"0\"}", 4),
    ] {
        assert_eq!(value(&after, name), expected as f64, "{name}");
    }
    for name in [
        "moq_relay_udp_received_bytes_total",
        "moq_relay_udp_sent_bytes_total",
    ] {
        assert!(value(&after, name) >= value(&during, name), "{name}");
    }

    drop(track);
    publisher.leave().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_says_whether_the_relay_accepts_sessions() {
    // A relay nobody runs an accept loop for is not healthy.
    let idle = Relay::new(RelayConfig::default());
    let addr = start(HttpConfig::for_metrics(idle)).await;
    let response = get(addr, "/healthz").await;
    assert_eq!(response.code(), 503);
    assert_eq!(response.body, b"not accepting sessions\n");

    let relay = Harness::start().await;
    let addr = start(HttpConfig::for_metrics(relay.relay.clone())).await;
    until("accepting", || relay.relay.is_accepting()).await;
    let response = get(addr, "/healthz").await;
    assert_eq!(response.code(), 200);
    assert_eq!(response.body, b"ok\n");
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let response = Parsed::new(&exchange(addr, b"HEAD /healthz HTTP/1.1\r\n\r\n").await);
    assert_eq!(response.code(), 200);
    assert!(response.body.is_empty());

    // Shutting down: 503 at once, while the sessions are still being closed.
    let peer = relay.connect(Via::Quic).await;
    relay.relay.shutdown(moq_proto::ErrorCode::CANCEL);
    let response = get(addr, "/healthz").await;
    assert_eq!(response.code(), 503);
    assert_eq!(response.body, b"shutting down\n");
    peer.leave().await;
    relay.stop().await;
    assert_eq!(get(addr, "/healthz").await.code(), 503);
}

#[tokio::test]
async fn each_listener_serves_the_routes_it_was_given() {
    let relay = Relay::new(RelayConfig::default());
    // Without a relay: neither route.
    let bare = start(HttpConfig::new(FINGERPRINT, 4443)).await;
    assert_eq!(get(bare, "/metrics").await.code(), 404);
    assert_eq!(get(bare, "/healthz").await.code(), 404);
    // The --dev / --web listener: everything.
    let both = start(HttpConfig::new(FINGERPRINT, 4443).with_relay(Some(relay.clone()))).await;
    assert_eq!(get(both, "/fingerprint").await.code(), 200);
    assert!(!scrape(both).await.is_empty());
    assert_eq!(get(both, "/healthz").await.code(), 503);
    // The same with --metrics-bind: no metrics there.
    let public = start(
        HttpConfig::new(FINGERPRINT, 4443)
            .with_relay(Some(relay.clone()))
            .with_metrics(false),
    )
    .await;
    assert_eq!(get(public, "/metrics").await.code(), 404);
    assert_eq!(get(public, "/healthz").await.code(), 503);
    assert_eq!(get(public, "/fingerprint").await.code(), 200);
    // The --metrics-bind listener: only the two, with the same limits as the others.
    let metrics = start(HttpConfig::for_metrics(relay)).await;
    assert!(!scrape(metrics).await.is_empty());
    assert_eq!(get(metrics, "/healthz").await.code(), 503);
    for target in ["/fingerprint", "/info.json", "/", "/metrics/", "/healthz/x"] {
        assert_eq!(get(metrics, target).await.code(), 404, "{target}");
    }
    let response = Parsed::new(&exchange(metrics, b"POST /metrics HTTP/1.1\r\n\r\n").await);
    assert_eq!(response.code(), 405);
    let long = format!(
        "GET /metrics HTTP/1.1\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(MAX_REQUEST)
    );
    let response = exchange(metrics, long.as_bytes()).await;
    assert!(response.starts_with(b"HTTP/1.1 431"));
}

#[tokio::test]
async fn the_docs_list_every_metric() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/relay.md")).unwrap();
    let addr = start(HttpConfig::for_metrics(Relay::new(RelayConfig::default()))).await;
    let response = get(addr, "/metrics").await;
    let text = String::from_utf8(response.body).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| rest.split(' ').next().unwrap())
        .collect();
    assert_eq!(names.len(), 32);
    for name in names {
        // By its name alone, or with its labels.
        assert!(
            docs.contains(&format!("`{name}`")) || docs.contains(&format!("`{name}{{")),
            "docs/relay.md does not list {name}"
        );
    }
}
