//! The `moq` binary, run as a process against an in-process relay on 127.0.0.1.

use std::process::Stdio;
use std::time::Duration;

use moq_model::Path;
use moq_relay::{Relay, RelayConfig};
use moq_transport_quinn::{Certificate, Server, ServerConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const MOQ: &str = env!("CARGO_BIN_EXE_moq");

/// A relay on 127.0.0.1:0; its URL and certificate fingerprint.
struct TestRelay {
    relay: Relay,
    port: u16,
    fingerprint: String,
    task: tokio::task::JoinHandle<()>,
}

impl TestRelay {
    fn start() -> Self {
        Self::start_with(RelayConfig::default())
    }

    fn start_with(config: RelayConfig) -> Self {
        let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).unwrap();
        let fingerprint = cert.fingerprint().to_string();
        let server =
            Server::new(ServerConfig::new(vec![cert]).with_bind("127.0.0.1:0".parse().unwrap()))
                .unwrap();
        let port = server.local_addr().unwrap().port();
        let relay = Relay::new(config);
        let serving = relay.clone();
        let task = tokio::spawn(async move { serving.serve(server).await });
        Self {
            relay,
            port,
            fingerprint,
            task,
        }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// `moq --fingerprint FP --bind 127.0.0.1:0 ARGS...`
    fn moq(&self, args: &[&str]) -> Command {
        let mut command = Command::new(MOQ);
        command
            .args(["--bind", "127.0.0.1:0", "--fingerprint", &self.fingerprint])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    async fn stop(self) {
        self.relay.shutdown(moq_proto::ErrorCode::CANCEL);
        self.task.await.unwrap();
        self.relay.idle().await;
    }
}

/// Waits until `condition` holds; fails the test (rather than hang) after a generous bound.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// Runs a command to completion (bounded, so a hang fails instead of blocking the suite).
async fn finish(command: &mut Command) -> std::process::Output {
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the command did not finish")
        .unwrap()
}

fn moq() -> Command {
    let mut command = Command::new(MOQ);
    command
        .arg("--bind")
        .arg("127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A failure: non-zero exit, one line on stderr that starts with `moq:`, no panic.
fn assert_one_line_error(output: &std::process::Output, expect: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "succeeded: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr:?}"
    );
    assert!(stderr.starts_with("moq: "), "{stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr:?}");
    assert!(
        stderr.to_lowercase().contains(expect),
        "{stderr:?} does not mention {expect:?}"
    );
}

/// `YYYY-MM-DD HH:MM:SS`
fn is_clock_line(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() == 19
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b' ',
            13 | 16 => *b == b':',
            _ => b.is_ascii_digit(),
        })
}

#[test]
fn decode_every_vector() {
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("../../../moq-proto/tests/data/vectors.json")).unwrap();
    let mut checked = 0;
    for vector in vectors.as_array().unwrap() {
        let name = vector["message"].as_str().unwrap();
        let hex = vector["hex"].as_str().unwrap();
        let args: Vec<&str> = match name {
            "stream_type_bi" => vec!["--message", "StreamBi"],
            "stream_type_uni" => vec!["--message", "StreamUni"],
            "stream:group(pub->sub)" => vec!["--as", "group"],
            n if n.starts_with("stream:") => vec!["--as", "bidi"],
            n if n.chars().next().unwrap().is_ascii_uppercase() => vec!["--message", n],
            // Primitives (varint, path, ...) are not messages.
            _ => continue,
        };
        let output = std::process::Command::new(MOQ)
            .arg("decode")
            .arg(hex)
            .args(&args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        // The 0.5.0 encoder's SubscribeUpdate lacks a field: an incomplete message (WIRE.md
        // §5.7), which the decoder reports as such.
        let incomplete = name == "SubscribeUpdate";
        if vector.get("error").is_some() || incomplete {
            assert!(!output.status.success(), "{name} {hex}: decoded {stdout}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        } else {
            assert!(output.status.success(), "{name} {hex}: {stderr}");
            assert!(!stdout.trim().is_empty(), "{name} {hex}");
        }
        checked += 1;
    }
    assert!(checked > 40, "only {checked} vectors checked");

    // Auto-detection names what it found; stdin takes raw bytes.
    let output = std::process::Command::new(MOQ)
        .args(["decode", "00 07 05 05 68656c6c6f 00 01 78"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(stdout.starts_with("# as group stream"), "{stdout}");
    assert!(stdout.contains("hello"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_through_the_relay_to_sub_is_byte_exact() {
    let relay = TestRelay::start();
    let path = Path::from(["test", "lines"]);
    let mut publisher = relay
        .moq(&["pub", &relay.url("moqf"), "--path", "test/lines"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    until("announced", || relay.relay.origins().route(&path).is_some()).await;

    let mut subscriber = relay
        .moq(&[
            "sub",
            &relay.url("https"),
            "--path",
            "test/lines",
            "--groups",
        ])
        .spawn()
        .unwrap();
    until("routed upstream", || relay.relay.stats().tracks == 1).await;

    // Group by group: each is read back before the next is written, so no subscriber
    // falls behind (a live subscriber that does skips to the newest group).
    let mut stdin = publisher.stdin.take().unwrap();
    let mut lines = BufReader::new(subscriber.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let groups = [
        "line one\nline two\n",
        "h\u{e9}llo w\u{f6}rld\n  spaces  \n\ttab\n",
    ];
    for (i, group) in groups.iter().enumerate() {
        if i > 0 {
            stdin.write_all(b"\n").await.unwrap();
        }
        stdin.write_all(group.as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
        let wanted = group.lines().count() + usize::from(i > 0);
        for _ in 0..wanted {
            let line = lines.next_line().await.unwrap().expect("a line");
            seen.push_str(&line);
            seen.push('\n');
        }
    }
    drop(stdin);
    assert!(lines.next_line().await.unwrap().is_none());
    assert_eq!(seen, groups.join("\n"));
    assert_success("moq sub", &mut subscriber).await;
    assert_success("moq pub", &mut publisher).await;
    relay.stop().await;
}

/// Waits for `child` and fails with its stderr if it did not exit successfully.
async fn assert_success(name: &str, child: &mut Child) {
    let status = wait(child).await;
    if !status.success() {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr).await;
        }
        panic!("{name} exited with {status}: {stderr}");
    }
}

async fn wait(child: &mut Child) -> std::process::ExitStatus {
    tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the process did not exit")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_publish_and_subscribe_through_the_relay() {
    let relay = TestRelay::start();
    let _publisher = relay
        .moq(&["clock", "publish", &relay.url("moqf")])
        .spawn()
        .unwrap();
    until("announced", || {
        relay
            .relay
            .origins()
            .route(&Path::from(["clock"]))
            .is_some()
    })
    .await;
    let mut subscriber = relay
        .moq(&["clock", "subscribe", &relay.url("https")])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(subscriber.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        let line = lines.next_line().await.unwrap().expect("a clock line");
        assert!(is_clock_line(&line), "{line:?}");
    }
    subscriber.kill().await.unwrap();
    drop(_publisher);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_line_and_non_zero() {
    // Bad URLs.
    let output = finish(moq().args(["sub", "ftp://127.0.0.1:1/", "--path", "a"])).await;
    assert_one_line_error(&output, "scheme");
    let output = finish(moq().args(["sub", "not a url", "--path", "a"])).await;
    assert_one_line_error(&output, "url");

    // Nobody answers on this port (the socket is ours and silent).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let url = format!("moqf://127.0.0.1:{}/", silent.local_addr().unwrap().port());
    let output = finish(moq().args(["--timeout", "1", "sub", &url, "--path", "a"])).await;
    assert_one_line_error(&output, "timed out");

    let relay = TestRelay::start();
    // The wrong certificate.
    let wrong = "00".repeat(32);
    let output = finish(moq().args([
        "--fingerprint",
        &wrong,
        "sub",
        &relay.url("moqf"),
        "--path",
        "a",
    ]))
    .await;
    assert_one_line_error(&output, "tls");
    // A malformed fingerprint.
    let output = finish(moq().args([
        "--fingerprint",
        "abc",
        "sub",
        &relay.url("moqf"),
        "--path",
        "a",
    ]))
    .await;
    assert_one_line_error(&output, "fingerprint");
    // No such track, over both transports.
    for scheme in ["moqf", "https"] {
        let output =
            finish(&mut relay.moq(&["sub", &relay.url(scheme), "--path", "no/such"])).await;
        assert_one_line_error(&output, "no track");
        let output = finish(&mut relay.moq(&["clock", "subscribe", &relay.url(scheme)])).await;
        assert_one_line_error(&output, "no track");
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_clock_lines() {
    let mut demo = moq().args(["demo"]).spawn().unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let line = lines.next_line().await.unwrap().expect("a clock line");
        assert!(is_clock_line(&line), "{line:?}");
    }
    demo.kill().await.unwrap();
    let mut stderr = String::new();
    demo.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("moqf://127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("fingerprint"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_pub_and_raw_sub_are_byte_exact() {
    let relay = TestRelay::start();
    let path = Path::from(["test", "binary"]);
    let mut publisher = relay
        .moq(&[
            "pub",
            &relay.url("https"),
            "--path",
            "test/binary",
            "--frame-size",
            "1000",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    until("announced", || relay.relay.origins().route(&path).is_some()).await;
    let mut subscriber = relay
        .moq(&["sub", &relay.url("moqf"), "--path", "test/binary", "--raw"])
        .spawn()
        .unwrap();
    until("routed upstream", || relay.relay.stats().tracks == 1).await;

    // Every byte value, newlines included, in frames of 1000 bytes (one group). The first
    // frame is read back before the rest is written, so the subscription is in place
    // before the publisher reaches the end of its input and ends the track.
    let data: Vec<u8> = (0..10_500u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut stdin = publisher.stdin.take().unwrap();
    let mut stdout = subscriber.stdout.take().unwrap();
    stdin.write_all(&data[..1000]).await.unwrap();
    stdin.flush().await.unwrap();
    let mut received = vec![0u8; 1000];
    stdout.read_exact(&mut received).await.unwrap();
    stdin.write_all(&data[1000..]).await.unwrap();
    drop(stdin);
    stdout.read_to_end(&mut received).await.unwrap();
    let status = wait(&mut subscriber).await;
    let mut stderr = String::new();
    let _ = subscriber
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await;
    assert_eq!(received.len(), data.len(), "{status} {stderr}");
    assert!(received == data, "the bytes differ");
    assert!(status.success());
    assert!(wait(&mut publisher).await.success());
    relay.stop().await;
}

/// `moq token generate | sign | verify`, and clients with a token against a relay that
/// checks them: allowed over both transports (in the URL and with --jwt / MOQ_JWT), and
/// refused with one line that says why and a non-zero exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_moq_token_open_the_relay() {
    let dir = std::env::temp_dir().join(format!("moq-cli-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key.jwk");
    let public = dir.join("public.jwk");
    let text =
        |output: &std::process::Output| String::from_utf8_lossy(&output.stdout).trim().to_owned();

    let made = finish(
        moq()
            .args(["token", "generate", "--algorithm", "ES256", "--id", "k1"])
            .arg("--out")
            .arg(&key)
            .arg("--public")
            .arg(&public),
    )
    .await;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let sign = |root: &str, put: &str, get: &str| {
        let mut command = moq();
        command.args(["token", "sign", "--key"]).arg(&key).args([
            "--root",
            root,
            "--expires",
            "1h",
        ]);
        if !put.is_empty() {
            command.args(["--put", put]);
        }
        if !get.is_empty() {
            command.args(["--get", get]);
        }
        command
    };
    let publisher_token = text(&finish(&mut sign("room", "alice", "")).await);
    let viewer_token = text(&finish(&mut sign("room", "", "alice")).await);
    assert_eq!(publisher_token.split('.').count(), 3, "{publisher_token}");

    // verify prints the claims as JSON.
    let verified = finish(
        moq()
            .args(["token", "verify", "--key"])
            .arg(&public)
            .arg(&viewer_token),
    )
    .await;
    assert!(verified.status.success());
    let claims: serde_json::Value = serde_json::from_str(&text(&verified)).unwrap();
    assert_eq!(claims["root"], "room");
    assert_eq!(claims["get"], serde_json::json!(["alice"]));
    assert!(claims["exp"].as_u64().unwrap() > claims["iat"].as_u64().unwrap());
    // A public key cannot sign; a tampered token does not verify.
    let no_sign = finish(
        moq()
            .args(["token", "sign", "--key"])
            .arg(&public)
            .args(["--get", "x"]),
    )
    .await;
    assert_one_line_error(&no_sign, "private key");
    let tampered = finish(
        moq()
            .args(["token", "verify", "--key"])
            .arg(&public)
            .arg(format!("{viewer_token}x")),
    )
    .await;
    assert_one_line_error(&tampered, "invalid token");

    let mut keys = moq_auth::KeySet::new();
    keys.load(&public).unwrap();
    let mut auth = moq_relay::AuthConfig::default();
    auth.keys = Some(keys);
    let relay = TestRelay::start_with(RelayConfig::default().with_auth(auth));

    for scheme in ["moqf", "https"] {
        let room = format!("{}room", relay.url(scheme));
        let mut publisher = relay
            .moq(&[
                "pub",
                &format!("{room}?jwt={publisher_token}"),
                "--path",
                "alice/chat",
            ])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = publisher.stdin.take().unwrap();
        let path = Path::from(["room", "alice", "chat"]);
        until("announced", || relay.relay.origins().route(&path).is_some()).await;

        let mut viewer = relay.moq(&["sub", &room, "--path", "alice/chat"]);
        viewer.env("MOQ_JWT", &viewer_token);
        let mut viewer = viewer.spawn().unwrap();
        let mut lines = BufReader::new(viewer.stdout.take().unwrap()).lines();
        // Lines written until the subscriber has one (it joins at the latest group).
        let mut got = None;
        for i in 0..200 {
            stdin
                .write_all(format!("line {i}\n\n").as_bytes())
                .await
                .unwrap();
            if let Ok(Ok(Some(line))) =
                tokio::time::timeout(Duration::from_millis(100), lines.next_line()).await
            {
                got = Some(line);
                break;
            }
        }
        assert!(
            got.is_some_and(|line| line.starts_with("line ")),
            "{scheme}: nothing read"
        );
        drop(stdin);
        assert_success("moq pub", &mut publisher).await;
        let _ = viewer.kill().await;

        // Refused: no token, a token without get on the path, and a publisher outside put.
        let anonymous = finish(&mut relay.moq(&["sub", &room, "--path", "alice/chat"])).await;
        assert_one_line_error(&anonymous, "token is needed");
        let other =
            finish(&mut relay.moq(&["sub", &room, "--path", "bob/chat", "--jwt", &viewer_token]))
                .await;
        assert_one_line_error(&other, "not allowed to subscribe to \"bob/chat\"");
        let mut hijack = relay
            .moq(&[
                "pub",
                &room,
                "--path",
                "bob/chat",
                "--jwt",
                &publisher_token,
            ])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = hijack.stdin.take().unwrap();
        stdin.write_all(b"x\n").await.unwrap();
        let output = tokio::time::timeout(Duration::from_secs(30), hijack.wait_with_output())
            .await
            .expect("the refused publisher exits")
            .unwrap();
        drop(stdin);
        assert_one_line_error(&output, "not allowed to publish \"bob/chat\"");
    }
    relay.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One of moq-media's fixtures: 3 s of H.264 and AAC as ffmpeg writes fragmented MP4.
const MEDIA_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../moq-media/tests/data/h264_aac.mp4"
);

/// The catalog and every frame (track, timestamp, payload) of fragmented MP4.
fn demux(bytes: &[u8]) -> (moq_media::Catalog, Vec<(usize, u64, bytes::Bytes)>) {
    use moq_media::cmaf::{Demuxer, Event, ImportConfig};
    let mut demuxer = Demuxer::new(ImportConfig::default());
    demuxer.push(bytes);
    let mut catalog = None;
    let mut frames = Vec::new();
    while let Some(event) = demuxer.next().unwrap() {
        match event {
            Event::Catalog(c) => catalog = Some(c),
            Event::Frame { track, frame } => {
                frames.push((track, frame.timestamp.as_micros(), frame.payload))
            }
        }
    }
    (catalog.expect("a catalog"), frames)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_publish_through_the_relay_to_subscribe_and_info() {
    let relay = TestRelay::start();
    let url = relay.url("moqf");
    let input = std::fs::read(MEDIA_FIXTURE).unwrap();
    let (catalog, frames) = demux(&input);

    // The viewer first: it waits for a broadcast under the name.
    let mut viewer = relay
        .moq(&["media", "subscribe", &url, "--path", "live/cam"])
        .spawn()
        .unwrap();
    // Read as it comes: a full pipe would hold the viewer up.
    let mut viewer_out = viewer.stdout.take().unwrap();
    let reading = tokio::spawn(async move {
        let mut output = Vec::new();
        viewer_out.read_to_end(&mut output).await.unwrap();
        output
    });
    let mut publisher = relay.moq(&[
        "media", "publish", &url, "--path", "live/cam", "--linger", "5",
    ]);
    let mut publisher = publisher.stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = publisher.stdin.take().unwrap();
    // The init segment and the first fragments; the rest once the viewer follows the
    // catalog and both renditions (a viewer joins a live track at its latest group).
    let split = input.len() / 5;
    stdin.write_all(&input[..split]).await.unwrap();
    until(
        "the viewer subscribes to the catalog and both tracks",
        || relay.relay.stats().subscribers >= 3,
    )
    .await;

    // `moq media info` finds the same broadcast and prints its catalog.
    let info = finish(&mut relay.moq(&["media", "info", &url, "--path", "live/cam"])).await;
    assert!(
        info.status.success(),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&catalog.to_json()).unwrap();
    assert_eq!(printed, expected);

    // Each rendition's path is announced besides the broadcast's, as moq-karp's publisher
    // does, for relays that route by exact path (docs/media.md).
    let names: Vec<String> = catalog.tracks().map(|t| t.name.clone()).collect();
    until("the broadcast and each rendition announced", || {
        let paths = relay.relay.origins().paths();
        let under: Vec<&[String]> = paths
            .iter()
            .map(|p| p.parts())
            .filter(|parts| parts.starts_with(&["live".to_string(), "cam".to_string()]))
            .collect();
        under.iter().filter(|parts| parts.len() == 3).count() == 1
            && names
                .iter()
                .chain(["clock".to_string()].iter())
                .all(|name| {
                    under
                        .iter()
                        .any(|parts| parts.len() == 4 && parts[3] == *name)
                })
    })
    .await;

    // The clock track (moq_media::CLOCK_TRACK): a frame of the first rendition and when the
    // publisher read it.
    let broadcast = relay
        .relay
        .origins()
        .paths()
        .into_iter()
        .find(|p| p.parts().len() == 3 && p.parts()[..2] == ["live", "cam"])
        .unwrap();
    let clock_path = format!("{broadcast}/clock");
    let mut clock = relay
        .moq(&["sub", &url, "--path", &clock_path])
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut clock_out = BufReader::new(clock.stdout.take().unwrap());
    tokio::time::timeout(Duration::from_secs(20), clock_out.read_line(&mut line))
        .await
        .expect("no clock frame")
        .unwrap();
    let _ = clock.kill().await;
    let reference: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    let timestamp = reference["timestamp"].as_u64().unwrap();
    assert!(
        frames.iter().any(|f| f.0 == 0 && f.1 == timestamp),
        "the clock's timestamp {timestamp} is no frame of the first rendition"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let wall = reference["wall"].as_u64().unwrap();
    assert!(
        wall <= now && now - wall < 120_000_000,
        "the clock's wall clock {wall} is not within the test's run (now {now})"
    );

    stdin.write_all(&input[split..]).await.unwrap();
    drop(stdin);
    assert_success("moq media publish", &mut publisher).await;
    assert_success("moq media subscribe", &mut viewer).await;
    let output = reading.await.unwrap();

    // The viewer's fragmented MP4: the same catalog, and frames of the input.
    let (got_catalog, got) = demux(&output);
    assert_eq!(got_catalog, catalog);
    for track in 0..catalog.tracks().count() {
        let sent: Vec<_> = frames.iter().filter(|f| f.0 == track).collect();
        let received: Vec<_> = got.iter().filter(|f| f.0 == track).collect();
        assert!(!received.is_empty(), "track {track}: nothing received");
        // A live viewer may skip ahead to the newest group when it falls behind: what it
        // gets is frames of the input, in order, byte for byte, ending with the last.
        let mut rest = sent.iter();
        for frame in &received {
            assert!(
                rest.any(|sent| sent == frame),
                "track {track}: the frame at {} µs is not the input's next",
                frame.1
            );
        }
        assert_eq!(
            received.last(),
            sent.last(),
            "track {track}: the last frame"
        );
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_publish_writes_a_latency_log_line_per_frame() {
    let relay = TestRelay::start();
    let url = relay.url("moqf");
    let input = std::fs::read(MEDIA_FIXTURE).unwrap();
    let (catalog, frames) = demux(&input);
    let log = std::env::temp_dir().join(format!("moq-cli-latency-{}.log", std::process::id()));
    let log_arg = log.to_str().unwrap().to_string();
    let before = std::time::SystemTime::now();
    let mut publisher = relay.moq(&[
        "media",
        "publish",
        &url,
        "--path",
        "live/log",
        "--linger",
        "0",
        "--latency-log",
        &log_arg,
    ]);
    let mut publisher = publisher.stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = publisher.stdin.take().unwrap();
    // In two pieces: each frame's time is that of the read that completed it.
    let split = input.len() / 2;
    stdin.write_all(&input[..split]).await.unwrap();
    stdin.flush().await.unwrap();
    // The pause starts once a frame was read (the publisher connects first, which may take
    // longer than the pause on a loaded machine).
    until("the publisher logs a frame of the first piece", || {
        std::fs::read_to_string(&log).is_ok_and(|text| text.lines().count() > 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stdin.write_all(&input[split..]).await.unwrap();
    drop(stdin);
    assert_success("moq media publish --latency-log", &mut publisher).await;
    let after = std::time::SystemTime::now();

    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("# track timestamp_us wall_us"));
    let micros = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
    };
    let names: Vec<&str> = catalog.tracks().map(|t| t.name.as_str()).collect();
    let logged: Vec<(String, u64, u64)> = lines
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts.len(), 3, "{line}");
            (
                parts[0].to_string(),
                parts[1].parse().unwrap(),
                parts[2].parse().unwrap(),
            )
        })
        .collect();
    // Every frame of the input, in order, under its track's name.
    let expected: Vec<(String, u64)> = frames
        .iter()
        .map(|(track, ts, _)| (names[*track].to_string(), *ts))
        .collect();
    let got: Vec<(String, u64)> = logged.iter().map(|(n, ts, _)| (n.clone(), *ts)).collect();
    assert_eq!(got, expected);
    // Wall clocks within the run, never going back, and two reads 300 ms apart.
    let walls: Vec<u64> = logged.iter().map(|l| l.2).collect();
    assert!(walls.windows(2).all(|w| w[0] <= w[1]));
    assert!(walls[0] >= micros(before) && *walls.last().unwrap() <= micros(after));
    assert!(walls.last().unwrap() - walls[0] >= 250_000, "{walls:?}");
    relay.stop().await;
}
