//! `moq demo` as a process: the page, `/info.json` and `/fingerprint` over HTTP on
//! 127.0.0.1 beside its relay.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

const MOQ: &str = env!("CARGO_BIN_EXE_moq");

/// A directory with an `index.html`, removed when dropped.
struct WebDir(PathBuf);

impl WebDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("moq-demo-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("index.html"),
            "<!doctype html><title>the demo page</title>\n",
        )
        .unwrap();
        Self(dir)
    }
}

impl Drop for WebDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn demo(args: &[&str]) -> Command {
    let mut command = Command::new(MOQ);
    command
        .args(["--bind", "127.0.0.1:0", "demo", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// `GET path` over HTTP/1.1 on 127.0.0.1:`port`: the status line and the body.
async fn get(port: u16, path: &str) -> (String, String) {
    let work = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    };
    // Bounded, so a hang fails instead of blocking the suite.
    let response = tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .expect("an HTTP response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_the_page_and_the_fingerprint_it_prints() {
    let web = WebDir::new("page");
    let mut child = demo(&["--web", web.0.to_str().unwrap()]).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut fingerprint = None;
    let page = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the demo printed its page");
        if let Some(hex) = line.trim().strip_prefix("fingerprint:") {
            fingerprint = Some(hex.trim().to_string());
        }
        if let Some(rest) = line.split_once("open ").map(|(_, rest)| rest)
            && let Some((url, _)) = rest.split_once(" in Chromium")
        {
            break url.to_string();
        }
    };
    let fingerprint = fingerprint.expect("a fingerprint line before the page");
    assert_eq!(fingerprint.len(), 64, "{fingerprint:?}");
    let port: u16 = page
        .strip_prefix("http://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix('/'))
        .expect("http://127.0.0.1:PORT/")
        .parse()
        .unwrap();

    let (status, body) = get(port, "/info.json").await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        body.contains(&format!("\"fingerprint\": \"{fingerprint}\"")),
        "{body}"
    );
    assert!(
        body.contains(&format!("\"url\": \"https://127.0.0.1:{port}/\"")),
        "{body}"
    );
    let (status, body) = get(port, "/fingerprint").await;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body.trim(), fingerprint);
    let (status, body) = get(port, "/").await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(body.contains("the demo page"), "{body}");

    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_dir_without_a_page_is_an_error() {
    let web = WebDir::new("empty");
    std::fs::remove_file(web.0.join("index.html")).unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        demo(&["--web", web.0.to_str().unwrap()]).output(),
    )
    .await
    .expect("the demo exits")
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("moq: --web "), "{stderr}");
    assert!(stderr.contains("moq-web/www"), "{stderr}");
}
