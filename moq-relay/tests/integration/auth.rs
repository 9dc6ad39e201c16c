//! Access control on the relay, over raw QUIC and WebTransport: roots, tokens, public
//! prefixes, refusals with code 16, expiry during a session, and the published 0.5.0
//! client on public and private paths.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moq_auth::{Algorithm, Claims, Key, KeySet};
use moq_model::{Announced, Error as ModelError, Path, Track, TrackConsumer};
use moq_proto::{ErrorCode, Fetch};
use moq_relay::{AuthConfig, RelayConfig};
use moq_session::Error;
use moq_session::transport::TransportError;

use crate::support::*;

const BOTH: [Via; 2] = [Via::Quic, Via::WebTransport];

/// The operator's key (private; the relay holds its public half).
struct Issuer {
    key: Key,
}

impl Issuer {
    fn new() -> Self {
        Self {
            key: Key::generate(Algorithm::ES256, Some("relay-key".into())).unwrap(),
        }
    }

    fn keys(&self) -> KeySet {
        KeySet::from_keys([self.key.public().unwrap()]).unwrap()
    }

    fn token(&self, root: &str, put: &[&str], get: &[&str]) -> String {
        self.token_until(root, put, get, None)
    }

    fn token_until(&self, root: &str, put: &[&str], get: &[&str], exp: Option<u64>) -> String {
        let mut claims = Claims::new(root);
        claims.put = put.iter().map(|s| s.to_string()).collect();
        claims.get = get.iter().map(|s| s.to_string()).collect();
        claims.exp = exp;
        self.key.sign(&claims).unwrap()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn paths(list: &[&str]) -> Vec<Path> {
    list.iter()
        .map(|p| p.split('/').filter(|s| !s.is_empty()).collect())
        .collect()
}

async fn relay_with(keys: Option<KeySet>, public: &[&str], public_subscribe: &[&str]) -> Harness {
    let mut auth = AuthConfig::default();
    auth.keys = keys;
    auth.public = paths(public);
    auth.public_subscribe = paths(public_subscribe);
    Harness::start_with(RelayConfig::default().with_auth(auth)).await
}

/// A path from `a/b/c`.
fn p(text: &str) -> Path {
    text.split('/').filter(|s| !s.is_empty()).collect()
}

/// Connects with `rest` after the port; expects the relay to refuse the session with
/// code 16, and returns its reason.
async fn refused(relay: &Harness, via: Via, rest: &str) -> String {
    let (code, reason) = match relay.connect_to(via, rest).await {
        // Refused before the MoQ handshake completes (WebTransport: right after the
        // CONNECT, by its URL).
        Err(ConnectFailure::Session(Error::Transport(TransportError::ClosedByPeer {
            code,
            reason,
        }))) => (code, reason),
        // Raw QUIC: refused once the handshake has carried the token.
        Ok(peer) => match tokio::time::timeout(Duration::from_secs(10), peer.session.closed())
            .await
            .expect("refused in time")
        {
            Error::Transport(TransportError::ClosedByPeer { code, reason }) => (code, reason),
            other => panic!("{rest:.60}: {other:?}"),
        },
        Err(other) => panic!("{rest:.60}: {other:?}"),
    };
    assert_eq!(code, ErrorCode::UNAUTHORIZED, "{rest:.60}: {reason}");
    reason
}

/// Waits for the session's end by the relay with code 16; returns the reason.
async fn closed_unauthorized(peer: &Peer) -> String {
    match tokio::time::timeout(Duration::from_secs(10), peer.session.closed())
        .await
        .expect("closed in time")
    {
        Error::Transport(TransportError::ClosedByPeer { code, reason }) => {
            assert_eq!(code, ErrorCode::UNAUTHORIZED, "{reason}");
            reason
        }
        other => panic!("{other:?}"),
    }
}

async fn first_frame(track: &mut TrackConsumer) -> Result<Vec<u8>, ModelError> {
    let next = tokio::time::timeout(Duration::from_secs(20), track.next_group())
        .await
        .expect("a group in time");
    let mut group = next?.expect("a group");
    Ok(group.read_frame().await?.expect("a frame").to_vec())
}

/// Publishes one group with one frame at `path` on `peer`; keep the producer.
fn publish(peer: &Peer, path: &str, frame: &'static str) -> moq_model::TrackProducer {
    let (mut track, consumer) = Track::new(p(path)).produce();
    peer.session.publish(consumer).unwrap();
    track.append_group().write_frame(frame).unwrap();
    track
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_path_is_the_sessions_root() {
    let relay = Harness::start().await;
    for via in BOTH {
        let room = relay.connect_to(via, "room").await.unwrap();
        let lobby = relay.connect(via).await;
        let _alice = publish(&room, "alice", "from room");
        let _x = publish(&lobby, "lobby/x", "from lobby");
        until("announced", || {
            relay.relay.origins().route(&p("room/alice")).is_some()
        })
        .await;
        until("announced", || {
            relay.relay.origins().route(&p("lobby/x")).is_some()
        })
        .await;

        // A session at the relay's root names the track by its absolute path.
        let mut whole = lobby.session.subscribe(Track::new(p("room/alice")));
        assert_eq!(first_frame(&mut whole).await.unwrap(), b"from room");
        // A session rooted at "room" names it relative to its root, and cannot name
        // anything outside it.
        let watcher = relay.connect_to(via, "room").await.unwrap();
        let mut relative = watcher.session.subscribe(Track::new(p("alice")));
        assert_eq!(first_frame(&mut relative).await.unwrap(), b"from room");
        let mut outside = watcher.session.subscribe(Track::new(p("lobby/x")));
        assert_eq!(first_frame(&mut outside).await, Err(ModelError::NotFound));
        // Its announcements are the paths under its root, relative.
        let mut announced = watcher.session.announced(Path::empty());
        assert_eq!(
            next_announced(&mut announced).await,
            Announced::Active(p("alice"))
        );
        drop(announced);

        for peer in [room, lobby, watcher] {
            peer.leave().await;
        }
        until("routes gone", || relay.relay.origins().paths().is_empty()).await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_grant_publishing_and_subscribing_by_path() {
    let issuer = Issuer::new();
    let relay = relay_with(Some(issuer.keys()), &[], &[]).await;
    for via in BOTH {
        let alice_token = issuer.token("room", &["alice"], &[""]);
        let bob_token = issuer.token("room", &["bob"], &[]);
        let viewer_token = issuer.token("room", &[], &["alice"]);
        let alice = relay
            .connect_to(via, &format!("room?jwt={alice_token}"))
            .await
            .unwrap();
        let bob = relay
            .connect_to(via, &format!("room?jwt={bob_token}"))
            .await
            .unwrap();
        let _cam = publish(&alice, "alice/cam", "alice's");
        let _bob_cam = publish(&bob, "bob/cam", "bob's");
        until("announced", || {
            relay.relay.origins().route(&p("room/bob/cam")).is_some()
        })
        .await;
        until("announced", || {
            relay.relay.origins().route(&p("room/alice/cam")).is_some()
        })
        .await;

        let viewer = relay
            .connect_to(via, &format!("room?jwt={viewer_token}"))
            .await
            .unwrap();
        // Allowed: under "alice".
        let mut cam = viewer.session.subscribe(Track::new(p("alice/cam")));
        assert_eq!(first_frame(&mut cam).await.unwrap(), b"alice's");
        // Not allowed: subscribe, Info and Fetch each get code 16.
        let mut other = viewer.session.subscribe(Track::new(p("bob/cam")));
        assert_eq!(first_frame(&mut other).await, Err(ModelError::Unauthorized));
        assert_eq!(
            viewer.session.info(p("bob/cam")).await.unwrap_err(),
            Error::Transport(TransportError::StreamReset(ErrorCode::UNAUTHORIZED))
        );
        let fetch = Fetch {
            path: p("bob/cam"),
            priority: 0,
            group: 0,
            offset: 0,
        };
        let mut reply = viewer.session.fetch(fetch).await.unwrap();
        assert_eq!(
            reply.read_all(1024).await.unwrap_err(),
            Error::Transport(TransportError::StreamReset(ErrorCode::UNAUTHORIZED))
        );
        // The allowed track's latest group through Fetch, from the relay's cache.
        let fetch = Fetch {
            path: p("alice/cam"),
            priority: 0,
            group: 0,
            offset: 0,
        };
        let mut reply = viewer.session.fetch(fetch).await.unwrap();
        assert_eq!(reply.read_all(1024).await.unwrap(), b"\x07alice's"[..]);
        // Announcements: only what it may subscribe to; bob's path is never named.
        let mut announced = viewer.session.announced(Path::empty());
        assert_eq!(
            next_announced(&mut announced).await,
            Announced::Active(p("alice/cam"))
        );
        let quiet = tokio::time::timeout(Duration::from_millis(500), announced.next()).await;
        assert!(quiet.is_err(), "announced more: {quiet:?}");

        // Bob, who may only publish, cannot subscribe even to what he publishes.
        let mut own = bob.session.subscribe(Track::new(p("alice/cam")));
        assert_eq!(first_frame(&mut own).await, Err(ModelError::Unauthorized));

        for peer in [alice, bob, viewer] {
            peer.leave().await;
        }
        until("routes gone", || relay.relay.origins().paths().is_empty()).await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcing_outside_the_token_ends_the_session() {
    let issuer = Issuer::new();
    let relay = relay_with(Some(issuer.keys()), &[], &[]).await;
    for via in BOTH {
        let token = issuer.token("room", &["alice"], &[""]);
        let owner = relay.connect_to(via, "room?jwt=").await;
        assert!(owner.is_err(), "no token, no public prefix: refused");
        let hijacker = relay
            .connect_to(via, &format!("room?jwt={token}"))
            .await
            .unwrap();
        let _track = publish(&hijacker, "bob/cam", "hijacked");
        let reason = closed_unauthorized(&hijacker).await;
        assert!(
            reason.contains("not allowed to publish \"bob/cam\""),
            "{reason}"
        );
        assert!(relay.relay.origins().route(&p("room/bob/cam")).is_none());
        hijacker.leave().await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sessions_say_why() {
    let issuer = Issuer::new();
    let stranger = Key::generate(Algorithm::ES256, Some("relay-key".into())).unwrap();
    let relay = relay_with(Some(issuer.keys()), &[], &[]).await;
    let valid = issuer.token("room", &["alice"], &["alice"]);
    let cases: Vec<(String, &str)> = vec![
        ("room".into(), "a token is needed"),
        ("room?jwt=not.a.token".into(), "invalid token"),
        (
            format!(
                "room?jwt={}",
                issuer.token_until("room", &[""], &[], Some(now_secs() - 1))
            ),
            "expired",
        ),
        (
            format!("room?jwt={}", {
                let mut claims = Claims::new("room");
                claims.get = vec!["".into()];
                stranger.sign(&claims).unwrap()
            }),
            "signature",
        ),
        // A token for root A used under root B.
        (format!("lobby?jwt={valid}"), "outside the token's root"),
        (format!("?jwt={valid}"), "outside the token's root"),
        // Narrowed to a root where the token grants nothing.
        (format!("room/bob?jwt={valid}"), "grants nothing"),
        // Tampered: the payload swapped for one that grants everything.
        (
            {
                let parts: Vec<&str> = valid.split('.').collect();
                let forged = issuer.token("", &[""], &[""]);
                let forged: Vec<&str> = forged.split('.').collect();
                format!("?jwt={}.{}.{}", parts[0], forged[1], parts[2])
            },
            "signature",
        ),
    ];
    // Oversized: refused as one (16) in a WebTransport URL; over raw QUIC it does not fit
    // the setup message (a 4096-byte extension), so the handshake fails with 5 (decode).
    let oversized = format!("room?jwt={}", "x".repeat(5000));
    assert!(
        refused(&relay, Via::WebTransport, &oversized)
            .await
            .contains("bytes")
    );
    match relay.connect_to(Via::Quic, &oversized).await {
        Err(ConnectFailure::Session(Error::Transport(TransportError::StreamReset(code)))) => {
            assert_eq!(code, ErrorCode::DECODE)
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("an oversized token was accepted"),
    }
    for via in BOTH {
        for (rest, expected) in &cases {
            let reason = refused(&relay, via, rest).await;
            assert!(reason.contains(expected), "{rest:.40}: {reason}");
            // The reason never echoes the token.
            if let Some((_, token)) = rest.split_once("jwt=") {
                assert!(token.len() < 8 || !reason.contains(token), "{reason}");
            }
        }
        // A narrower root than the token's is fine: paths are relative to it.
        let narrow = relay
            .connect_to(via, &format!("room/alice?jwt={valid}"))
            .await
            .unwrap();
        let _track = publish(&narrow, "cam", "narrow");
        until("announced", || {
            relay.relay.origins().route(&p("room/alice/cam")).is_some()
        })
        .await;
        narrow.leave().await;
    }
    assert_eq!(relay.relay.stats().sessions, 0);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_when_its_token_expires() {
    let issuer = Issuer::new();
    let relay = relay_with(Some(issuer.keys()), &[], &[]).await;
    // Both sessions at once: each expires about two seconds from now.
    let mut peers = Vec::new();
    for via in BOTH {
        let token = issuer.token_until("room", &[""], &[""], Some(now_secs() + 2));
        let peer = relay
            .connect_to(via, &format!("room?jwt={token}"))
            .await
            .unwrap();
        peers.push(peer);
    }
    let started = std::time::Instant::now();
    for peer in &peers {
        let reason = closed_unauthorized(peer).await;
        assert_eq!(reason, "token expired");
    }
    assert!(
        started.elapsed() <= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    for peer in peers {
        peer.leave().await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_prefixes_need_no_token() {
    let issuer = Issuer::new();
    let relay = relay_with(Some(issuer.keys()), &["anon"], &["watch"]).await;
    for via in BOTH {
        let anonymous = relay.connect(via).await;
        let _mine = publish(&anonymous, "anon/chat", "hello");
        until("announced", || {
            relay.relay.origins().route(&p("anon/chat")).is_some()
        })
        .await;
        let token = issuer.token("watch", &[""], &[]);
        let broadcaster = relay
            .connect_to(via, &format!("watch?jwt={token}"))
            .await
            .unwrap();
        let _show = publish(&broadcaster, "show", "on air");

        let viewer = relay.connect(via).await;
        let mut chat = viewer.session.subscribe(Track::new(p("anon/chat")));
        assert_eq!(first_frame(&mut chat).await.unwrap(), b"hello");
        let mut show = viewer.session.subscribe(Track::new(p("watch/show")));
        assert_eq!(first_frame(&mut show).await.unwrap(), b"on air");
        let mut private = viewer.session.subscribe(Track::new(p("private/x")));
        assert_eq!(
            first_frame(&mut private).await,
            Err(ModelError::Unauthorized)
        );
        // Read-only prefix: publishing there ends the anonymous session.
        let _fake = publish(&viewer, "watch/fake", "no");
        let reason = closed_unauthorized(&viewer).await;
        assert!(
            reason.contains("not allowed to publish \"watch/fake\""),
            "{reason}"
        );
        // A session rooted inside a public prefix needs no token either.
        let rooted = relay.connect_to(via, "anon").await.unwrap();
        let mut relative = rooted.session.subscribe(Track::new(p("chat")));
        assert_eq!(first_frame(&mut relative).await.unwrap(), b"hello");
        // Elsewhere it does.
        assert!(
            refused(&relay, via, "private")
                .await
                .contains("token is needed")
        );

        for peer in [anonymous, broadcaster, viewer, rooted] {
            peer.leave().await;
        }
        until("routes gone", || relay.relay.origins().paths().is_empty()).await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_authorized_publishers_of_one_path_the_latest_wins() {
    let issuer = Issuer::new();
    let relay = relay_with(Some(issuer.keys()), &[], &[]).await;
    let token = issuer.token("room", &["stage"], &["stage"]);
    let first = relay
        .connect_to(Via::Quic, &format!("room?jwt={token}"))
        .await
        .unwrap();
    let _a = publish(&first, "stage", "first");
    until("first announced", || {
        relay.relay.origins().route(&p("room/stage")).is_some()
    })
    .await;
    let first_id = relay.relay.origins().route(&p("room/stage")).unwrap().id;
    let second = relay
        .connect_to(Via::WebTransport, &format!("room?jwt={token}"))
        .await
        .unwrap();
    let _b = publish(&second, "stage", "second");
    until("second takes over", || {
        relay.relay.origins().route(&p("room/stage")).unwrap().id != first_id
    })
    .await;
    let viewer = relay
        .connect_to(Via::Quic, &format!("room?jwt={token}"))
        .await
        .unwrap();
    let mut stage = viewer.session.subscribe(Track::new(p("stage")));
    assert_eq!(first_frame(&mut stage).await.unwrap(), b"second");
    // When the latest leaves, the path goes back to the one before.
    second.leave().await;
    until("first again", || {
        relay.relay.origins().route(&p("room/stage")).map(|r| r.id) == Some(first_id)
    })
    .await;
    for peer in [first, viewer] {
        peer.leave().await;
    }
    relay.stop().await;
}

/// The published 0.5.0 client library (what moq-clock 0.5 is built on), over raw QUIC
/// with no token: it works under a public prefix, and a publisher outside it sees its
/// session end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_client_on_public_and_private_paths() {
    let issuer = Issuer::new();
    let relay = relay_with(Some(issuer.keys()), &["anon"], &[]).await;
    let their_session = || async {
        let client = relay.client();
        let conn = client.connect(&relay.url(Via::Quic, "")).await.unwrap();
        let session = web_transport_quinn_03::Session::from(conn.quic().clone());
        (
            moq_transfork::Session::connect(session.into())
                .await
                .unwrap(),
            client,
        )
    };
    let their_path = |parts: &[&str]| {
        parts
            .iter()
            .fold(moq_transfork::Path::default(), |p, s| p.push(*s))
    };

    // Public: they publish, we read.
    let (mut theirs, _client) = their_session().await;
    let (mut writer, reader) = moq_transfork::Track::new(their_path(&["anon", "clock"])).produce();
    theirs.publish(reader).unwrap();
    let mut group = writer.append_group();
    group.write_frame(bytes::Bytes::from_static(b"tick"));
    until("announced", || {
        relay.relay.origins().route(&p("anon/clock")).is_some()
    })
    .await;
    let ours = relay.connect(Via::Quic).await;
    let mut clock = ours.session.subscribe(Track::new(p("anon/clock")));
    assert_eq!(first_frame(&mut clock).await.unwrap(), b"tick");

    // Private: their publisher's session is closed (it sees an error, not silence).
    let (mut outside, _client2) = their_session().await;
    let (_writer2, reader2) = moq_transfork::Track::new(their_path(&["clock"])).produce();
    outside.publish(reader2).unwrap();
    tokio::time::timeout(Duration::from_secs(10), outside.closed())
        .await
        .expect("their private publisher is closed");
    assert!(relay.relay.origins().route(&p("clock")).is_none());
    drop(group);
    ours.leave().await;
    relay.stop().await;
}

/// The binary: `--auth-*` flags, the start line that says what is protected, and no token
/// in its logs even at the most verbose level.
#[test]
fn the_binary_checks_tokens_and_never_logs_them() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    let dir = std::env::temp_dir().join(format!("moq-relay-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let issuer = Issuer::new();
    let key_file = dir.join("relay.jwk");
    std::fs::write(&key_file, issuer.key.public().unwrap().to_json()).unwrap();

    let mut relay = Command::new(env!("CARGO_BIN_EXE_moq-relay"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--tls-self-sign",
            "localhost",
            "-vv",
        ])
        .args(["--auth-public", "anon", "--auth-key"])
        .arg(&key_file)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = relay.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut lines = BufReader::new(relay.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port: u16 = first
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {first}"));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let good = issuer.token("room", &["a"], &[""]);
    let bad = format!("{}x", issuer.token("room", &["a"], &[""]));
    runtime.block_on(async {
        let client = moq_transport_quinn::Client::new(
            moq_transport_quinn::ClientConfig::default()
                .with_bind("127.0.0.1:0".parse().unwrap())
                .with_trust(moq_transport_quinn::Trust::DangerousDisableVerify),
        )
        .unwrap();
        for scheme in ["moqf", "https"] {
            let url = format!("{scheme}://localhost:{port}/room?jwt={good}");
            let conn = client.connect(&url).await.unwrap();
            let (session, driver) = moq_session::Session::connect(conn).await.unwrap();
            tokio::spawn(driver);
            let mut track = session.subscribe(Track::new(p("nobody/here")));
            assert_eq!(
                tokio::time::timeout(Duration::from_secs(10), track.next_group())
                    .await
                    .unwrap()
                    .unwrap_err(),
                ModelError::NotFound
            );
            session.close(ErrorCode::CANCEL);
            // Refused: a tampered token.
            let url = format!("{scheme}://localhost:{port}/room?jwt={bad}");
            if let Ok(conn) = client.connect(&url).await
                && let Ok((session, driver)) = moq_session::Session::connect(conn).await
            {
                tokio::spawn(driver);
                let _ = tokio::time::timeout(Duration::from_secs(10), session.closed()).await;
            }
        }
        client.close();
        client.wait_idle().await;
    });
    let _ = relay.kill();
    let _ = relay.wait();
    let logs = logs.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    assert!(
        logs.contains("access control: tokens verified with 1 key(s); public: \"/anon\""),
        "{logs:.2000}"
    );
    assert!(logs.contains("refused"), "no refusal logged");
    assert!(logs.contains("session started"), "no session logged");
    // Neither token, nor any of its three parts, appears anywhere in the logs.
    for token in [&good, &bad] {
        for part in token.split('.') {
            assert!(!logs.contains(part), "a token part is in the logs");
        }
    }
}
