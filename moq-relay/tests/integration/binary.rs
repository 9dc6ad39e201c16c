//! The `moq-relay` binary: what it prints, its HTTP side (with `--metrics-bind`, a listener
//! of its own for the metrics), a session, and a clean SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use moq_session::Session;
use moq_transport_quinn::{Client, ClientConfig, Trust};

/// Kills the relay if the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port`; the whole response.
fn http(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn prints_urls_serves_http_and_stops_on_sigterm() {
    let web = std::env::temp_dir().join(format!("moq-relay-web-{}", std::process::id()));
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("index.html"), "<p>relay page</p>").unwrap();

    let mut relay = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_moq-relay"))
            .args([
                "--bind",
                "127.0.0.1:0",
                "--dev",
                "--stats-interval",
                "1",
                "-q",
                // Two endpoints on the port: served, and stopped cleanly, the same.
                "--endpoints",
                "2",
            ])
            .arg("--web")
            .arg(&web)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(relay.0.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while printed.len() < 5 {
        printed.push(lines.next().expect("a line").unwrap());
    }
    let text = printed.join("\n");
    let port: u16 = printed[0]
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {text}"));
    assert!(
        text.contains(&format!("moqf://127.0.0.1:{port}/")),
        "{text}"
    );
    assert!(
        text.contains(&format!("https://127.0.0.1:{port}/")),
        "{text}"
    );
    let fingerprint = printed
        .iter()
        .find_map(|line| line.split("(SHA-256): ").nth(1))
        .unwrap_or_else(|| panic!("no fingerprint in {text}"))
        .to_owned();
    assert_eq!(fingerprint.len(), 64);

    // --dev: the fingerprint over plain HTTP on the same port number; --web: the files.
    let response = http(port, "GET /fingerprint HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(&fingerprint), "{response}");
    let response = http(port, "GET /info.json HTTP/1.1\r\nHost: localhost:9\r\n\r\n");
    assert!(
        response.contains(&format!("\"url\": \"https://localhost:{port}/\"")),
        "{response}"
    );
    let response = http(port, "GET / HTTP/1.1\r\n\r\n");
    assert!(response.ends_with("<p>relay page</p>"), "{response}");
    let response = http(port, "GET /../secret HTTP/1.1\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    let response = http(port, "POST /fingerprint HTTP/1.1\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 405"), "{response}");
    let response = http(
        port,
        &format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(10_000)),
    );
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");

    // A session, pinned to the printed fingerprint.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = Client::new(
            ClientConfig::default()
                .with_bind("127.0.0.1:0".parse().unwrap())
                .with_trust(Trust::Fingerprints(vec![fingerprint.parse().unwrap()])),
        )
        .unwrap();
        let conn = client
            .connect(&format!("moqf://127.0.0.1:{port}/"))
            .await
            .unwrap();
        let (session, driver) = Session::connect(conn).await.unwrap();
        let driver = tokio::spawn(driver);

        // SIGTERM: the relay closes the session and exits 0.
        let killed = Command::new("kill")
            .args(["-TERM", &relay.0.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let closed = tokio::time::timeout(Duration::from_secs(30), session.closed())
            .await
            .expect("the relay closed the session");
        assert!(closed.to_string().contains("cancel"), "{closed}");
        let _ = driver.await;
        client.close();
    });
    let status = relay.0.wait().unwrap();
    assert!(status.success(), "{status}");
    // Nothing went wrong on the way (-q: warnings and errors only), and no endpoint was
    // taken for failed when the server closed them.
    let mut errors = String::new();
    relay
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut errors)
        .unwrap();
    assert!(errors.is_empty(), "{errors}");
    std::fs::remove_dir_all(&web).unwrap();
}

#[test]
fn metrics_bind_serves_metrics_and_health_apart_from_the_public_port() {
    let mut relay = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_moq-relay"))
            .args([
                "--bind",
                "127.0.0.1:0",
                "--dev",
                "--metrics-bind",
                "127.0.0.1:0",
                "-q",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(relay.0.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while printed.len() < 6 {
        printed.push(lines.next().expect("a line").unwrap());
    }
    let text = printed.join("\n");
    let port = |line: &str| -> u16 {
        line.split("127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {text}"))
    };
    let public = port(&printed[0]);
    let metrics_line = printed
        .iter()
        .find(|line| line.contains("metrics:"))
        .unwrap_or_else(|| panic!("no metrics address in {text}"));
    assert!(metrics_line.ends_with("/metrics"), "{text}");
    let metrics = port(metrics_line);
    assert_ne!(metrics, public);

    let response = http(metrics, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{response}"
    );
    assert!(response.contains("\nmoq_relay_sessions 0\n"), "{response}");
    assert!(
        response.contains("\nmoq_relay_memory_limit_bytes 1073741824\n"),
        "{response}"
    );
    let response = http(metrics, "GET /healthz HTTP/1.1\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("\r\n\r\nok\n"), "{response}");
    let response = http(metrics, "GET /fingerprint HTTP/1.1\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    // The public listener keeps the health check and leaves the metrics to the other.
    let response = http(public, "GET /healthz HTTP/1.1\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let response = http(public, "GET /metrics HTTP/1.1\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");

    let killed = Command::new("kill")
        .args(["-TERM", &relay.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = relay.0.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// A relay whose stdout is closed before it prints its banner (`moq-relay | head -1`) goes
/// on serving.
#[test]
fn a_closed_stdout_does_not_stop_the_relay() {
    // A port that was free a moment ago: the banner that would name it is not readable.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut relay = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_moq-relay"))
            .args(["--bind", &format!("127.0.0.1:{port}"), "--dev", "-q"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    drop(relay.0.stdout.take());
    let mut healthy = false;
    for _ in 0..300 {
        if let Some(status) = relay.0.try_wait().unwrap() {
            panic!("the relay exited with {status} when its stdout closed");
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            healthy = http(
                port,
                "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .starts_with("HTTP/1.1 200");
            if healthy {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(healthy, "the relay never answered /healthz");
    // Still there after it printed (or failed to print) everything.
    std::thread::sleep(Duration::from_millis(300));
    assert!(relay.0.try_wait().unwrap().is_none(), "the relay exited");
}
