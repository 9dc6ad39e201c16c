//! The MoQ session (`moq-session`) over this transport, on real loopback QUIC (127.0.0.1,
//! port 0). Every test runs over raw QUIC (`moqf://`, ALPN `moqf-02`) and over WebTransport
//! (`https://`, ALPN `h3`): handshake, publish and subscribe both ways, announce, info,
//! fetch, a 16 MiB frame, 1000 groups, 50 sessions on one server, close codes both ways,
//! and a server that goes away in the middle of a group.
//!
//! Every step that waits on the network is bounded ([`within`]), so a bug fails the test
//! instead of hanging it.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moq_model::{Announced, AnnouncedProducer, Track};
use moq_proto::{Encode, ErrorCode, Fetch, Frame, GroupOrder, Info, Path};
use moq_session::transport::TransportError;
use moq_session::{Error, Session};
use moq_transport_quinn::{Client, ClientConfig, TransportKind, TransportSettings, Trust};
use tokio::task::JoinHandle;

use crate::support::{self, KINDS, Pair, pattern};

/// The longest one step may take before the test fails.
const STEP: Duration = Duration::from_secs(10);

/// The longest a whole test body may take on one transport.
const BODY: Duration = Duration::from_secs(40);

/// `future`'s output, or a panic naming the step if it takes longer than [`STEP`].
async fn within<F: Future>(kind: TransportKind, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(STEP, future).await {
        Ok(output) => output,
        Err(_) => panic!("{kind}: {what}: nothing after {STEP:?}"),
    }
}

/// Runs `body` over raw QUIC, then over WebTransport, each bounded by [`BODY`].
async fn over_both_transports<F, Fut>(body: F)
where
    F: Fn(TransportKind) -> Fut,
    Fut: Future<Output = ()>,
{
    for kind in KINDS {
        if tokio::time::timeout(BODY, body(kind)).await.is_err() {
            panic!("{kind}: the test did not finish within {BODY:?}");
        }
    }
}

/// A client and a server session over one loopback connection, their drivers running.
struct Sessions {
    kind: TransportKind,
    pair: Pair,
    client: Session,
    server: Session,
    client_driver: JoinHandle<Result<(), Error>>,
    server_driver: JoinHandle<Result<(), Error>>,
}

impl Sessions {
    async fn new(kind: TransportKind) -> Self {
        let pair = within(kind, "connect", Pair::new(kind)).await;
        let (connected, accepted) = within(kind, "session handshake", async {
            tokio::join!(
                Session::connect(pair.client_conn.clone()),
                Session::accept(pair.server_conn.clone())
            )
        })
        .await;
        let (client, driver) = connected.unwrap_or_else(|e| panic!("{kind}: connect: {e}"));
        let client_driver = tokio::spawn(driver);
        let (server, driver) = accepted.unwrap_or_else(|e| panic!("{kind}: accept: {e}"));
        let server_driver = tokio::spawn(driver);
        Self {
            kind,
            pair,
            client,
            server,
            client_driver,
            server_driver,
        }
    }

    /// Closes both sessions, waits for both drivers, closes the endpoints and waits until
    /// they are idle.
    async fn finish(self) {
        let kind = self.kind;
        self.client.close(ErrorCode::CANCEL);
        self.server.close(ErrorCode::CANCEL);
        drop(self.client);
        drop(self.server);
        let client = within(kind, "client driver", self.client_driver).await;
        let server = within(kind, "server driver", self.server_driver).await;
        // A panic in a driver fails the test; how the session ended is each test's business.
        let _ = client.expect("client driver panicked");
        let _ = server.expect("server driver panicked");
        within(kind, "endpoints idle", self.pair.finish()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_then_publish_and_subscribe_both_ways() {
    over_both_transports(|kind| async move {
        let s = Sessions::new(kind).await;

        // The client publishes; the server subscribes. Group 0 is written before the
        // subscription arrives: a late joiner gets the latest group from its first frame.
        let (mut track, consumer) = Track::new(["room", "alice", "video"]).produce();
        s.client.publish(consumer).unwrap();
        let mut group = track.append_group();
        group.write_frame(Bytes::from_static(b"hello")).unwrap();
        group.write_frame(Bytes::new()).unwrap();
        group.finish();

        let mut sub = s.server.subscribe(Track::new(["room", "alice", "video"]));
        let mut group = within(kind, "group 0", sub.next_group())
            .await
            .unwrap()
            .expect("group 0");
        assert_eq!(group.sequence(), 0, "{kind}");
        assert_eq!(
            group.read_frame().await.unwrap().unwrap(),
            "hello",
            "{kind}"
        );
        assert_eq!(group.read_frame().await.unwrap().unwrap(), "", "{kind}");
        assert_eq!(group.read_frame().await.unwrap(), None, "{kind}");

        // Then a 4 MiB frame on its own group stream.
        let big = Bytes::from(pattern(4 << 20, 1));
        let mut writer = track.append_group();
        writer.write_frame(big.clone()).unwrap();
        writer.finish();
        let mut group = within(kind, "group 1", sub.next_group())
            .await
            .unwrap()
            .expect("group 1");
        assert_eq!(group.sequence(), 1, "{kind}");
        let frame = within(kind, "4 MiB frame", group.read_frame())
            .await
            .unwrap()
            .unwrap();
        assert!(frame == big, "{kind}: the 4 MiB frame differs");
        assert_eq!(group.read_frame().await.unwrap(), None, "{kind}");

        // The other way: the server publishes, the client subscribes.
        let (mut chat, consumer) = Track::new(["room", "server", "chat"]).produce();
        s.server.publish(consumer).unwrap();
        let mut down = s.client.subscribe(Track::new(["room", "server", "chat"]));
        let mut group = chat.append_group();
        group.write_frame(Bytes::from_static(b"welcome")).unwrap();
        let mut received = within(kind, "server group", down.next_group())
            .await
            .unwrap()
            .expect("a group from the server");
        assert_eq!(received.sequence(), 0, "{kind}");
        assert_eq!(
            within(kind, "server frame", received.read_frame())
                .await
                .unwrap()
                .unwrap(),
            "welcome",
            "{kind}"
        );
        // The subscription's Info carries the publisher's view of the track. (It travels on
        // the subscribe stream, the group on its own stream; nothing signals which the
        // session has read first, so poll for it.)
        let path = Path::from(["room", "server", "chat"]);
        let info = within(kind, "the subscription's Info", async {
            loop {
                if let Some(info) = s.client.subscription_info(&path) {
                    break info;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        assert_eq!(
            info,
            Info {
                track_priority: 0,
                group_order: GroupOrder::Descending,
                group_expires: Duration::ZERO,
                group_latest: 0,
            },
            "{kind}"
        );

        // A publisher that ends its track ends the subscriber's consumer cleanly (after the
        // group already received).
        group.finish();
        assert_eq!(received.read_frame().await.unwrap(), None, "{kind}");
        drop(chat);
        assert!(
            within(kind, "end of the server's track", down.next_group())
                .await
                .unwrap()
                .is_none(),
            "{kind}"
        );
        drop(track);
        assert!(
            within(kind, "end of the client's track", sub.next_group())
                .await
                .unwrap()
                .is_none(),
            "{kind}"
        );

        s.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_reach_the_server() {
    over_both_transports(|kind| async move {
        let s = Sessions::new(kind).await;
        // Published tracks are announced by path; the server follows a prefix.
        let (alice, consumer) = Track::new(["room", "alice"]).produce();
        s.client.publish(consumer).unwrap();
        let (_lobby, consumer) = Track::new(["lobby", "x"]).produce();
        s.client.publish(consumer).unwrap();
        let mut room = s.server.announced(["room"]);
        let active = |parts: &[&str]| Some(Announced::Active(Path::from(parts)));
        let ended = |parts: &[&str]| Some(Announced::Ended(Path::from(parts)));
        assert_eq!(
            within(kind, "room/alice", room.next()).await.unwrap(),
            active(&["room", "alice"]),
            "{kind}"
        );

        // Announcements forwarded from elsewhere (what a relay does) reach it too.
        let mut source = AnnouncedProducer::new();
        source.announce(["room", "relay", "feed"]);
        s.client.announce(source.consume(Path::empty()));
        assert_eq!(
            within(kind, "room/relay/feed", room.next()).await.unwrap(),
            active(&["room", "relay", "feed"]),
            "{kind}"
        );

        // The track's producer goes away: its path ends.
        drop(alice);
        assert_eq!(
            within(kind, "room/alice ended", room.next()).await.unwrap(),
            ended(&["room", "alice"]),
            "{kind}"
        );
        // The announcer withdraws a path: it ends.
        source.unannounce(&Path::from(["room", "relay", "feed"]));
        assert_eq!(
            within(kind, "room/relay/feed ended", room.next())
                .await
                .unwrap(),
            ended(&["room", "relay", "feed"]),
            "{kind}"
        );
        // The announcer goes away: the paths it announced end.
        source.announce(["room", "carol"]);
        assert_eq!(
            within(kind, "room/carol", room.next()).await.unwrap(),
            active(&["room", "carol"]),
            "{kind}"
        );
        drop(source);
        assert_eq!(
            within(kind, "room/carol ended", room.next()).await.unwrap(),
            ended(&["room", "carol"]),
            "{kind}"
        );

        // A new interest in everything starts with what is active now.
        let mut all = s.server.announced(Path::empty());
        assert_eq!(
            within(kind, "everything", all.next()).await.unwrap(),
            active(&["lobby", "x"]),
            "{kind}"
        );

        // The client session goes away: the server's announcements fail with the code of
        // the close (0, Cancel), they do not end cleanly.
        s.client.close(ErrorCode::CANCEL);
        assert_eq!(
            within(kind, "announcements after the close", room.next()).await,
            Err(moq_model::Error::Cancel),
            "{kind}"
        );
        assert_eq!(
            within(kind, "announcements after the close", all.next()).await,
            Err(moq_model::Error::Cancel),
            "{kind}"
        );

        s.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_describes_a_published_track() {
    over_both_transports(|kind| async move {
        let s = Sessions::new(kind).await;
        let (mut track, consumer) = Track::build(["demo", "clock"])
            .priority(1)
            .group_order(GroupOrder::Ascending)
            .group_expires(Duration::from_millis(2000))
            .produce();
        s.server.publish(consumer).unwrap();
        for _ in 0..6 {
            track.append_group();
        }
        assert_eq!(
            within(kind, "info", s.client.info(["demo", "clock"]))
                .await
                .unwrap(),
            Info {
                track_priority: 1,
                group_order: GroupOrder::Ascending,
                group_expires: Duration::from_millis(2000),
                group_latest: 5,
            },
            "{kind}"
        );
        // The latest group is read at the time of the request.
        track.append_group();
        assert_eq!(
            within(kind, "info again", s.client.info(["demo", "clock"]))
                .await
                .unwrap()
                .group_latest,
            6,
            "{kind}"
        );
        // A track without groups: the defaults, latest 0 (WIRE.md §5.8).
        let (_empty, consumer) = Track::new(["demo", "empty"]).produce();
        s.server.publish(consumer).unwrap();
        assert_eq!(
            within(
                kind,
                "info of an empty track",
                s.client.info(["demo", "empty"])
            )
            .await
            .unwrap(),
            Info {
                track_priority: 0,
                group_order: GroupOrder::Descending,
                group_expires: Duration::ZERO,
                group_latest: 0,
            },
            "{kind}"
        );
        // Unknown: the request stream is reset with 13 (WIRE.md §4.6).
        assert_eq!(
            within(kind, "info of an unknown track", s.client.info(["nope"])).await,
            Err(Error::Transport(TransportError::StreamReset(
                ErrorCode::NOT_FOUND
            ))),
            "{kind}"
        );
        // The session is still fine afterwards.
        assert_eq!(
            within(
                kind,
                "info after the error",
                s.client.info(["demo", "clock"])
            )
            .await
            .unwrap()
            .group_latest,
            6,
            "{kind}"
        );
        s.finish().await;
    })
    .await;
}

/// Fetch (WIRE.md §4.7, draft-02 meaning) through `Session::fetch`: the client asks the
/// server for a group's bytes from an offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_returns_group_bytes_from_an_offset() {
    over_both_transports(|kind| async move {
        let s = Sessions::new(kind).await;
        // A cached, finished group 0 and a newer group 1 still being written.
        let (mut track, consumer) = Track::build(["vod", "movie"])
            .group_expires(Duration::from_secs(60))
            .produce();
        s.server.publish(consumer).unwrap();
        let payload = pattern(100_000, 3);
        let mut group = track.append_group();
        group.write_frame(Bytes::from_static(b"hello")).unwrap();
        group.write_frame(Bytes::new()).unwrap();
        group.write_frame(Bytes::from(payload.clone())).unwrap();
        group.finish();
        let mut live = track.append_group();
        live.write_frame(Bytes::from_static(b"live-1")).unwrap();

        // Group 0 as it travels on a group stream after its header: frame headers and
        // payloads (WIRE.md §4.7, draft-02 meaning).
        let mut expected = Vec::new();
        expected.extend_from_slice(&Frame { size: 5 }.to_bytes());
        expected.extend_from_slice(b"hello");
        expected.extend_from_slice(&Frame { size: 0 }.to_bytes());
        expected.extend_from_slice(&Frame { size: 100_000 }.to_bytes());
        expected.extend_from_slice(&payload);
        assert_eq!(expected.len(), 1 + 5 + 1 + 4 + 100_000);

        let fetch = |group: u64, offset: u64| Fetch {
            path: ["vod", "movie"].into(),
            priority: 0,
            group,
            offset,
        };
        // From the start, inside a header, inside a payload, the last byte, the end.
        for offset in [
            0,
            1,
            6,
            7,
            8,
            11,
            50_000,
            expected.len() - 1,
            expected.len(),
        ] {
            let mut reply = within(kind, "fetch", s.client.fetch(fetch(0, offset as u64)))
                .await
                .unwrap();
            let got = within(kind, "fetch reply", reply.read_all(expected.len()))
                .await
                .unwrap();
            assert_eq!(
                got.len(),
                expected.len() - offset,
                "{kind}: offset {offset}"
            );
            assert!(
                got == expected[offset..],
                "{kind}: offset {offset}: bytes differ"
            );
        }

        // The group still being written: what is there now, then the rest as it is written,
        // then FIN when the group is finished.
        let mut reply = within(kind, "fetch live group", s.client.fetch(fetch(1, 0)))
            .await
            .unwrap();
        let mut first = Vec::new();
        while first.len() < 7 {
            let chunk = within(kind, "fetch live group", reply.read_chunk()).await;
            first.extend_from_slice(&chunk.unwrap().expect("the reply ended early"));
        }
        assert_eq!(first, b"\x06live-1", "{kind}");
        live.write_frame(Bytes::from_static(b"then more")).unwrap();
        live.finish();
        let rest = within(kind, "fetch live group rest", reply.read_all(1024))
            .await
            .unwrap();
        assert_eq!(&rest[..], b"\x09then more", "{kind}");

        // An unknown group or track: reset with 13, as `info` reports an unknown track.
        let unknown = [
            fetch(48, 0),
            Fetch {
                path: ["nope"].into(),
                priority: 0,
                group: 0,
                offset: 0,
            },
        ];
        for request in unknown {
            let mut reply = within(kind, "fetch of something unknown", s.client.fetch(request))
                .await
                .unwrap();
            assert_eq!(
                within(kind, "fetch of something unknown", reply.read_all(1024)).await,
                Err(Error::Transport(TransportError::StreamReset(
                    ErrorCode::NOT_FOUND
                ))),
                "{kind}"
            );
        }
        s.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixteen_mebibyte_frame_arrives_byte_exact() {
    const SIZE: usize = 16 * 1024 * 1024;
    over_both_transports(|kind| async move {
        let s = Sessions::new(kind).await;
        let (mut track, consumer) = Track::new(["big"]).produce();
        s.client.publish(consumer).unwrap();
        let mut sub = s.server.subscribe(Track::new(["big"]));

        // Written in uneven chunks, then a small frame after it in the same group.
        let data = Bytes::from(pattern(SIZE, 5));
        let mut group = track.append_group();
        let mut frame = group.create_frame(SIZE).unwrap();
        let mut offset = 0;
        let mut size = 1;
        while offset < SIZE {
            let end = (offset + size).min(SIZE);
            frame.write(data.slice(offset..end)).unwrap();
            offset = end;
            size = (size * 7 + 13) % 1_500_000 + 1;
        }
        frame.finish().unwrap();
        group.write_frame(Bytes::from_static(b"after")).unwrap();
        group.finish();

        let mut received = within(kind, "the group", sub.next_group())
            .await
            .unwrap()
            .expect("a group");
        let frame = within(kind, "16 MiB", received.read_frame())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(frame.len(), SIZE, "{kind}");
        assert!(frame == data, "{kind}: the 16 MiB frame differs");
        assert_eq!(
            received.read_frame().await.unwrap().unwrap(),
            "after",
            "{kind}"
        );
        assert_eq!(received.read_frame().await.unwrap(), None, "{kind}");
        s.finish().await;
    })
    .await;
}

/// 1000 groups, each delivered in order. Deterministic by construction: the producer
/// creates group `n + 1` only after the subscriber has read group `n` to its end, so no
/// group can be skipped (the subscriber's cache keeps only the latest group by default,
/// `docs/model.md` "Cache bounds") and no two group streams race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_groups_arrive_in_order() {
    const GROUPS: u64 = 1000;
    over_both_transports(|kind| async move {
        let s = Sessions::new(kind).await;
        let (mut track, consumer) = Track::build(["count"])
            .group_order(GroupOrder::Ascending)
            .produce();
        s.server.publish(consumer).unwrap();
        let mut sub = s.client.subscribe(
            Track::build(["count"])
                .group_order(GroupOrder::Ascending)
                .into_track(),
        );
        let mut received = 0u64;
        for n in 0..GROUPS {
            let mut group = track.append_group();
            group
                .write_frame(Bytes::from(n.to_be_bytes().to_vec()))
                .unwrap();
            group
                .write_frame(Bytes::from(format!("group {n}")))
                .unwrap();
            group.finish();
            let mut got = within(kind, "the next group", sub.next_group())
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{kind}: the track ended at group {n}"));
            assert_eq!(got.sequence(), n, "{kind}");
            let first = within(kind, "frame 1", got.read_frame()).await.unwrap();
            assert_eq!(first.as_deref(), Some(&n.to_be_bytes()[..]), "{kind}");
            let second = within(kind, "frame 2", got.read_frame()).await.unwrap();
            assert_eq!(second, Some(Bytes::from(format!("group {n}"))), "{kind}");
            assert_eq!(
                within(kind, "group end", got.read_frame()).await.unwrap(),
                None,
                "{kind}"
            );
            received += 1;
        }
        drop(track);
        assert!(
            within(kind, "end of the track", sub.next_group())
                .await
                .unwrap()
                .is_none(),
            "{kind}"
        );
        assert_eq!(received, GROUPS, "{kind}");
        assert_eq!(sub.skipped(), 0, "{kind}");
        assert_eq!(s.server.stats().group_drops_sent, 0, "{kind}");
        assert_eq!(s.client.stats().group_drops_received, 0, "{kind}");
        s.finish().await;
    })
    .await;
}

/// 50 clients on one server at once. Each client publishes its own track and subscribes to
/// the server's echo of it (server-side: announced, subscribe, publish again) and to one
/// track the server shares with every session; the server writes the second group of that
/// track only once every client has the first. Then each client closes with its own code,
/// which the server's side of that session reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_sessions_on_one_server() {
    const SESSIONS: usize = 50;
    over_both_transports(|kind| async move {
        let mut server = support::server(TransportSettings::default());
        let client = support::client(&server, TransportSettings::default());
        let url = support::url(kind, server.local_addr().unwrap(), "/many");
        let (mut shared, shared_consumer) = Track::new(["shared"]).produce();
        let first = Bytes::from(pattern(64 << 10, 9));
        shared.append_group().write_frame(first.clone()).unwrap();

        // The server: one task per session; each returns the client number it echoed.
        let serving = tokio::spawn(async move {
            let mut tasks = Vec::new();
            for _ in 0..SESSIONS {
                let request = server.accept().await.expect("a session");
                let shared = shared_consumer.clone();
                tasks.push(tokio::spawn(async move {
                    let conn = request.accept().await.expect("accept the connection");
                    let (session, driver) = Session::accept(conn).await.expect("accept");
                    let driver = tokio::spawn(driver);
                    session.publish(shared).unwrap();
                    let mut announced = session.announced(["client"]);
                    let Ok(Some(Announced::Active(path))) = announced.next().await else {
                        panic!("no announcement");
                    };
                    let number: u32 = path.get(1).unwrap().parse().unwrap();
                    // Copy the client's group into a track of our own: the client reads
                    // back what it wrote, through both directions of its own session.
                    let mut theirs = session.subscribe(Track::new(path));
                    let (mut echo, consumer) = Track::new(["echo", &number.to_string()]).produce();
                    session.publish(consumer).unwrap();
                    let mut group = theirs.next_group().await.unwrap().expect("a group");
                    let mut copy = echo.append_group();
                    while let Some(frame) = group.read_frame().await.unwrap() {
                        copy.write_frame(frame).unwrap();
                    }
                    copy.finish();
                    let closed = session.closed().await;
                    assert_eq!(
                        closed,
                        Error::Transport(TransportError::ClosedByPeer {
                            code: ErrorCode::app(number).unwrap(),
                            reason: "closed".into()
                        })
                    );
                    drop((theirs, echo, session));
                    let _ = driver.await.unwrap();
                    number
                }));
            }
            let mut numbers = Vec::new();
            for task in tasks {
                numbers.push(task.await.unwrap());
            }
            (server, numbers)
        });

        let (got_first, mut got_first_rx) = tokio::sync::mpsc::channel::<()>(SESSIONS);
        let second = Bytes::from(pattern(64 << 10, 10));
        let mut clients = Vec::new();
        for i in 0..SESSIONS as u32 {
            let client = client.clone();
            let url = url.clone();
            let got_first = got_first.clone();
            let first = first.clone();
            let second = second.clone();
            clients.push(tokio::spawn(async move {
                let conn = client.connect(&url).await.expect("connect");
                let (session, driver) = Session::connect(conn).await.expect("session");
                let driver = tokio::spawn(driver);
                let mine = format!("client {i}");
                let (mut track, consumer) = Track::new(["client", &i.to_string()]).produce();
                session.publish(consumer).unwrap();
                track.append_group().write_frame(mine.clone()).unwrap();

                let mut sub = session.subscribe(Track::new(["shared"]));
                let mut group = sub.next_group().await.unwrap().unwrap();
                assert_eq!(group.sequence(), 0);
                assert!(group.read_frame().await.unwrap().unwrap() == first);
                got_first.send(()).await.unwrap();

                let mut announced = session.announced(["echo"]);
                let Ok(Some(Announced::Active(path))) = announced.next().await else {
                    panic!("client {i}: no echo announced");
                };
                assert_eq!(path, Path::from(["echo".to_string(), i.to_string()]));
                let mut echo = session.subscribe(Track::new(path));
                let mut group = echo.next_group().await.unwrap().unwrap();
                assert_eq!(group.read_frame().await.unwrap().unwrap(), mine);

                let mut group = sub.next_group().await.unwrap().unwrap();
                assert_eq!(group.sequence(), 1);
                assert!(group.read_frame().await.unwrap().unwrap() == second);

                let code = ErrorCode::app(i).unwrap();
                session.close(code);
                assert_eq!(session.closed().await, Error::Closed(code));
                driver.await.unwrap().unwrap();
            }));
        }
        drop(got_first);
        for _ in 0..SESSIONS {
            within(kind, "every client has group 0", got_first_rx.recv())
                .await
                .expect("a client failed before group 0");
        }
        let mut group = shared.append_group();
        group.write_frame(second.clone()).unwrap();
        group.finish();

        for task in clients {
            within(kind, "a client", task).await.unwrap();
        }
        let (server, mut numbers) = within(kind, "the server", serving).await.unwrap();
        numbers.sort_unstable();
        assert_eq!(numbers, (0..SESSIONS as u32).collect::<Vec<_>>(), "{kind}");
        client.close();
        server.close();
        within(kind, "client idle", client.wait_idle()).await;
        within(kind, "server idle", server.wait_idle()).await;
    })
    .await;
}

/// The QUIC-level application close code that reached one side of `pair`: the side that
/// received the CONNECTION_CLOSE reports it as `ApplicationClosed`.
fn wire_close_code(pair: &Pair) -> u64 {
    let sides = [
        pair.client_conn.quic().close_reason(),
        pair.server_conn.quic().close_reason(),
    ];
    for reason in sides.iter().flatten() {
        if let quinn::ConnectionError::ApplicationClosed(close) = reason {
            return close.error_code.into_inner();
        }
    }
    panic!("no side received an application close: {sides:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_codes_reach_the_other_side() {
    over_both_transports(|kind| async move {
        for client_closes in [true, false] {
            let s = Sessions::new(kind).await;
            let code = ErrorCode::app(42).unwrap();
            let who = if client_closes { "client" } else { "server" };
            let (closer, peer) = if client_closes {
                (&s.client, &s.server)
            } else {
                (&s.server, &s.client)
            };
            closer.close(code);
            assert_eq!(
                within(kind, "closer closed", closer.closed()).await,
                Error::Closed(code),
                "{kind}: {who} closes"
            );
            // The peer's session reports the plain code on both transports, with the reason
            // text of `Session::close` (the code's name, or "closed" for application codes).
            assert_eq!(
                within(kind, "peer closed", peer.closed()).await,
                Error::Transport(TransportError::ClosedByPeer {
                    code,
                    reason: "closed".into()
                }),
                "{kind}: {who} closes"
            );
            // On the wire (WIRE.md §2.4): the plain code on raw QUIC, the mapped one on
            // WebTransport.
            let wire = match kind {
                TransportKind::Quic => u64::from(code.0),
                TransportKind::WebTransport => code.to_webtransport(),
            };
            // (On WebTransport the QUIC connection closes after the session close, once the
            // peer has read the capsule and closed it with the mapped code.)
            within(kind, "both QUIC connections closed", async {
                s.pair.client_conn.quic().closed().await;
                s.pair.server_conn.quic().closed().await;
            })
            .await;
            assert_eq!(wire_close_code(&s.pair), wire, "{kind}: {who} closes");
            s.finish().await;
        }
    })
    .await;
}

/// The server closes its endpoint (as it does when it shuts down) while a frame is half
/// written: the client's consumers fail at once, not with a clean end, with the code of the
/// CONNECTION_CLOSE the endpoint sends: 0 (plain on both transports), read as
/// `moq_model::Error::Cancel` ("the other side is gone without saying why").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_closing_mid_group_fails_the_consumer() {
    over_both_transports(|kind| async move {
        let s = Sessions::new(kind).await;
        let (mut track, consumer) = Track::new(["live"]).produce();
        s.server.publish(consumer).unwrap();
        let mut sub = s.client.subscribe(Track::new(["live"]));
        let mut group = track.append_group();
        group.write_frame(Bytes::from_static(b"whole")).unwrap();
        let mut frame = group.create_frame(1000).unwrap();
        frame.write(Bytes::from(vec![7u8; 100])).unwrap();

        let mut received = within(kind, "the group", sub.next_group())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(received.read_frame().await.unwrap().unwrap(), "whole");
        let mut partial = within(kind, "the half frame", received.next_frame())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(partial.size(), 1000, "{kind}");
        let mut got = 0;
        while got < 100 {
            got += within(kind, "the first 100 bytes", partial.read_chunk())
                .await
                .unwrap()
                .unwrap()
                .len();
        }
        assert_eq!(got, 100, "{kind}");

        s.pair.server.close();
        let started = Instant::now();
        assert_eq!(
            within(kind, "the rest of the frame", partial.read_chunk()).await,
            Err(moq_model::Error::Cancel),
            "{kind}"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "{kind}");
        assert_eq!(
            within(kind, "the next group", sub.next_group()).await.err(),
            Some(moq_model::Error::Cancel),
            "{kind}"
        );
        assert_eq!(
            within(kind, "client closed", s.client.closed()).await,
            Error::Transport(TransportError::ClosedByPeer {
                code: ErrorCode::CANCEL,
                reason: String::new()
            }),
            "{kind}"
        );
        drop((frame, group, track));
        s.finish().await;
    })
    .await;
}

/// The server vanishes while a frame is half written, without a word: its runtime is shut
/// down, so no CONNECTION_CLOSE goes out and its socket goes away. The client notices at its
/// idle timeout (shortened to 1 s here, default 10 s) and its consumers fail with
/// `moq_model::Error::Transport` (a lost connection: no code from the peer), not with a
/// clean end; the session reports `TransportError::ConnectionLost`. Over WebTransport this
/// needs the adapter to tell a lost connection from a peer's close (see its `webtransport`
/// module docs): before that, it read now and then as the peer's close with code 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_vanishing_mid_group_fails_the_consumer_at_the_idle_timeout() {
    const IDLE: Duration = Duration::from_secs(1);
    over_both_transports(|kind| async move {
        // The server runs on a runtime of its own, which the test shuts down.
        let server_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (ready, ready_rx) = tokio::sync::oneshot::channel();
        let (written, written_rx) = tokio::sync::oneshot::channel();
        server_runtime.spawn(async move {
            let mut server = support::server(TransportSettings::default());
            let _ = ready.send((server.local_addr().unwrap(), server.fingerprints().to_vec()));
            let request = server.accept().await.expect("a session");
            let conn = request.accept().await.expect("accept the connection");
            let (session, driver) = Session::accept(conn).await.expect("accept");
            let driver = tokio::spawn(driver);
            let (mut track, consumer) = Track::new(["live"]).produce();
            session.publish(consumer).unwrap();
            let mut group = track.append_group();
            group.write_frame(Bytes::from_static(b"whole")).unwrap();
            let mut frame = group.create_frame(1000).unwrap();
            frame.write(Bytes::from(vec![7u8; 100])).unwrap();
            let _ = written.send(());
            // Hold everything until the runtime goes.
            let _alive = (server, session, driver, track, group, frame);
            std::future::pending::<()>().await;
        });
        let (addr, fingerprints) = within(kind, "server ready", ready_rx).await.unwrap();

        let mut settings = TransportSettings::default();
        settings.idle_timeout = IDLE;
        settings.keep_alive = None;
        let client = Client::new(
            ClientConfig::default()
                .with_bind(support::loopback())
                .with_trust(Trust::Fingerprints(fingerprints))
                .with_transport(settings),
        )
        .unwrap();
        let conn = within(
            kind,
            "connect",
            client.connect(&support::url(kind, addr, "/")),
        )
        .await
        .unwrap();
        let (session, driver) = within(kind, "session", Session::connect(conn.clone()))
            .await
            .unwrap();
        let driver = tokio::spawn(driver);
        within(kind, "server wrote", written_rx).await.unwrap();
        let mut sub = session.subscribe(Track::new(["live"]));
        let mut received = within(kind, "the group", sub.next_group())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(received.read_frame().await.unwrap().unwrap(), "whole");
        let mut partial = within(kind, "the half frame", received.next_frame())
            .await
            .unwrap()
            .unwrap();
        let mut got = 0;
        while got < 100 {
            got += within(kind, "the first 100 bytes", partial.read_chunk())
                .await
                .unwrap()
                .unwrap()
                .len();
        }
        assert_eq!(got, 100, "{kind}");

        server_runtime.shutdown_background();
        let started = Instant::now();
        assert_eq!(
            within(kind, "the rest of the frame", partial.read_chunk()).await,
            Err(moq_model::Error::Transport),
            "{kind}"
        );
        let waited = started.elapsed();
        assert!(waited < IDLE * 3, "{kind}: noticed after {waited:?}");
        assert_eq!(
            within(kind, "the next group", sub.next_group()).await.err(),
            Some(moq_model::Error::Transport),
            "{kind}"
        );
        match within(kind, "client closed", session.closed()).await {
            Error::Transport(TransportError::ConnectionLost(_)) => {}
            other => panic!("{kind}: {other:?}"),
        }
        // quinn saw the idle timeout. (On WebTransport, web-transport-quinn closes the
        // connection locally when its CONNECT stream fails, which overwrites quinn's reason;
        // the adapter still reports the loss, see its `webtransport` module docs.)
        let quic = conn.quic().close_reason();
        match kind {
            TransportKind::Quic => {
                assert_eq!(quic, Some(quinn::ConnectionError::TimedOut), "{kind}")
            }
            TransportKind::WebTransport => assert!(
                matches!(
                    quic,
                    Some(quinn::ConnectionError::TimedOut | quinn::ConnectionError::LocallyClosed)
                ),
                "{kind}: {quic:?}"
            ),
        }
        drop(session);
        let _ = within(kind, "client driver", driver).await.unwrap();
        drop(conn);
        client.close();
        within(kind, "client idle", client.wait_idle()).await;
    })
    .await;
}

/// A track that ends while another track of the session has a group started and nothing
/// written yet (an encoder that has not made the first frame, a sparse event track). The
/// subscriber, before it ends a track, gives the group streams that have arrived one more
/// read; the idle one (opened by the publisher, accepted here with no data, on both
/// transports) must not hold the end up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_track_ends_while_another_has_a_group_with_nothing_written() {
    over_both_transports(|kind| async move {
        let s = Sessions::new(kind).await;
        let (mut idle, idle_consumer) = Track::new(["idle"]).produce();
        let (mut ends, ends_consumer) = Track::new(["ends"]).produce();
        s.server.publish(idle_consumer).unwrap();
        s.server.publish(ends_consumer).unwrap();
        let _sub_idle = s.client.subscribe(Track::new(["idle"]));
        let mut sub_ends = s.client.subscribe(Track::new(["ends"]));
        within(kind, "both served", async {
            while s.server.stats().serving < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;

        let _idle_group = idle.append_group();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut group = ends.append_group();
        group.write_frame(Bytes::from_static(b"last")).unwrap();
        group.finish();
        ends.finish();
        let mut got = within(kind, "the last group", sub_ends.next_group())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{kind}: the track ended without its last group"));
        let frame = within(kind, "its frame", got.read_frame()).await.unwrap();
        assert_eq!(frame, Some(Bytes::from_static(b"last")), "{kind}");
        assert!(
            within(kind, "the end of the track", sub_ends.next_group())
                .await
                .unwrap()
                .is_none(),
            "{kind}"
        );
        drop(idle);
        s.finish().await;
    })
    .await;
}
