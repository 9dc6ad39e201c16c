//! `moq bench` as a process against an in-process relay on 127.0.0.1: the JSON report is
//! sane (no speed assertions: the machine may be busy).

use std::process::Stdio;
use std::time::Duration;

use moq_relay::{Relay, RelayConfig};
use moq_transport_quinn::{Certificate, Server, ServerConfig};
use serde_json::Value;
use tokio::process::Command;

const MOQ: &str = env!("CARGO_BIN_EXE_moq");

/// Runs `moq --bind 127.0.0.1:0 [--fingerprint FP] bench ARGS --json` to completion
/// (bounded) and parses its stdout.
async fn bench(fingerprint: Option<&str>, args: &[&str]) -> Value {
    let mut command = Command::new(MOQ);
    command.args(["--bind", "127.0.0.1:0"]);
    if let Some(fingerprint) = fingerprint {
        command.args(["--fingerprint", fingerprint]);
    }
    command
        .arg("bench")
        .args(args)
        .arg("--json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("moq bench did not finish")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "moq bench failed: {stderr}");
    // Not a terminal and no --progress: no progress lines.
    assert!(!stderr.contains("bench:"), "{stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.trim_end().lines().count(), 1, "{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn number(report: &Value, key: &str) -> f64 {
    report[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {report}"))
}

/// What every report must satisfy.
fn check_sane(report: &Value) {
    let delivered = number(report, "frames_delivered");
    assert!(delivered > 0.0, "{report}");
    assert!(number(report, "bytes_delivered") >= delivered * number(report, "frame_size"));
    assert!(number(report, "frames_per_s") > 0.0);
    assert!(number(report, "mb_per_s") > 0.0);
    assert!(number(report, "seconds") >= 1.5, "{report}");
    let latency = &report["latency_us"];
    let at = |q: &str| {
        latency[q]
            .as_f64()
            .unwrap_or_else(|| panic!("latency {q} missing in {report}"))
    };
    let (p50, p90, p99, max) = (at("p50"), at("p90"), at("p99"), at("max"));
    assert!(p50 > 0.0, "{report}");
    assert!(
        p50 <= p90 && p90 <= p99 && p99 <= max,
        "latencies out of order: {latency}"
    );
    assert_eq!(latency["samples"].as_f64(), Some(delivered));
    for key in [
        "groups_received",
        "groups_skipped",
        "groups_dropped",
        "cpu_s",
    ] {
        assert!(number(report, key) >= 0.0, "{key}: {report}");
    }
    assert!(number(report, "groups_received") > 0.0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_through_a_relay_reports_sane_json() {
    let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).unwrap();
    let fingerprint = cert.fingerprint().to_string();
    let server =
        Server::new(ServerConfig::new(vec![cert]).with_bind("127.0.0.1:0".parse().unwrap()))
            .unwrap();
    let url = format!("moqf://127.0.0.1:{}/", server.local_addr().unwrap().port());
    let relay = Relay::new(RelayConfig::default());
    let serving = relay.clone();
    let task = tokio::spawn(async move { serving.serve(server).await });

    // A fixed rate: 2 tracks x 3 subscribers, with a group expiry (nothing is late here).
    let pid = std::process::id().to_string();
    let report = bench(
        Some(&fingerprint),
        &[
            &url,
            "--tracks",
            "2",
            "--subscribers",
            "3",
            "--rate",
            "200",
            "--frame-size",
            "2000",
            "--group-frames",
            "10",
            "--group-expires",
            "500",
            "--duration",
            "2",
            "--relay-pid",
            &pid,
        ],
    )
    .await;
    check_sane(&report);
    assert_eq!(number(&report, "subscribers"), 6.0, "{report}");
    assert_eq!(number(&report, "subscribers_connected"), 6.0, "{report}");
    assert_eq!(number(&report, "frame_size"), 2000.0);
    assert_eq!(report["max"], Value::Bool(false));
    assert_eq!(number(&report, "group_expires_ms"), 500.0, "{report}");
    // Each subscriber gets (about) every frame of its track.
    let sent = number(&report, "frames_sent");
    let delivered = number(&report, "frames_delivered");
    assert!(
        sent > 0.0 && delivered <= sent * 3.0 + 6.0 * 10.0,
        "{report}"
    );
    // The relay is this process: its CPU and memory were sampled.
    assert!(
        report["relay"]["rss_kib"].as_f64().unwrap() > 0.0,
        "{report}"
    );

    // As fast as the subscribers read, over WebTransport this time.
    let web = url.replace("moqf://", "https://");
    let report = bench(
        Some(&fingerprint),
        &[&web, "--subscribers", "2", "--max", "--duration", "2"],
    )
    .await;
    check_sane(&report);
    assert_eq!(number(&report, "subscribers_connected"), 2.0, "{report}");
    assert_eq!(report["max"], Value::Bool(true));
    assert_eq!(report["rate"], Value::Null);
    assert_eq!(number(&report, "groups_in_flight"), 1.0, "{report}");
    assert_eq!(report["group_expires_ms"], Value::Null, "{report}");

    // Several groups in flight: every subscriber still receives.
    let report = bench(
        Some(&fingerprint),
        &[
            &url,
            "--subscribers",
            "3",
            "--max",
            "--groups-in-flight",
            "4",
            "--group-frames",
            "5",
            "--duration",
            "2",
        ],
    )
    .await;
    check_sane(&report);
    assert_eq!(number(&report, "subscribers_connected"), 3.0, "{report}");
    assert_eq!(number(&report, "groups_in_flight"), 4.0, "{report}");
    // Several groups in flight keep older groups for 2 s unless told otherwise.
    assert_eq!(number(&report, "group_expires_ms"), 2000.0, "{report}");

    relay.shutdown(moq_proto::ErrorCode::CANCEL);
    task.await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), relay.idle())
        .await
        .expect("sessions left open after the bench");
}

#[tokio::test]
async fn raw_quic_mode_reports_sane_json() {
    let report = bench(
        None,
        &[
            "--raw-quic",
            "--frame-size",
            "65536",
            "--group-frames",
            "4",
            "--duration",
            "2",
        ],
    )
    .await;
    check_sane(&report);
    assert_eq!(report["mode"], Value::String("raw-quic".into()));
}

#[tokio::test]
async fn floor_mode_reports_the_sender_threads_cpu() {
    let report = bench(
        None,
        &[
            "--floor",
            "--subscribers",
            "5",
            "--rate",
            "200",
            "--group-frames",
            "10",
            "--duration",
            "2",
        ],
    )
    .await;
    check_sane(&report);
    assert_eq!(report["mode"], Value::String("floor".into()));
    assert_eq!(number(&report, "subscribers_connected"), 5.0, "{report}");
    // Every subscriber gets every frame sent in the window, give or take those in flight
    // at its edges (up to 200 ms of them, for a loaded machine).
    let sent = number(&report, "frames_sent");
    let delivered = number(&report, "frames_delivered");
    assert!(sent >= 200.0, "{report}");
    assert!((delivered - 5.0 * sent).abs() <= 5.0 * 40.0, "{report}");
    // The sender's thread is reported as the relay: its own id, its CPU time, per frame.
    let sender = &report["relay"];
    assert_ne!(sender["pid"].as_u64(), Some(std::process::id() as u64));
    assert!(number(sender, "cpu_s") > 0.0, "{report}");
    assert!(number(sender, "cpu_us_per_frame") > 0.0, "{report}");
}

#[tokio::test]
async fn nothing_listening_is_a_one_line_error() {
    let mut command = Command::new(MOQ);
    command
        .args([
            "--bind",
            "127.0.0.1:0",
            "--tls-disable-verify",
            "--timeout",
            "1",
        ])
        .args(["bench", "moqf://127.0.0.1:9/", "--duration", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("moq bench did not give up")
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("moq: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
