//! Relays in a cluster over a real etcd (started by each test on 127.0.0.1 with free ports
//! and a temporary data directory, killed at the end even if the test fails): routes,
//! announcements and shared upstream subscriptions across relays, and the faults (a relay
//! killed, a publisher moving, etcd lost and back, a partition between relays).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use moq_model::{Announced, Path, Track, TrackConsumer, TrackProducer};
use moq_relay::cluster::ClusterConfig;
use moq_relay::cluster::etcd::{EtcdCluster, EtcdConfig};
use moq_relay::metrics::Metrics;
use moq_transport_quinn::{Trust, Url};
use tokio::net::UdpSocket;

use crate::support::*;

/// The lease of the test relays: short, so that expiry is quick to observe, with room for
/// a loaded machine. The test etcd runs with a short election timeout, which lets it grant
/// leases down to 1 s (the relay process test uses 1 s).
const LEASE: Duration = Duration::from_secs(2);

/// A generous bound for anything that should take about a lease on a loaded machine.
const EXPIRY_BOUND: Duration = Duration::from_secs(15);

/// A free TCP port of 127.0.0.1 (the OS picks it).
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `etcd` executable on PATH; fails the test, naming the Debian package, if missing.
fn etcd_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no `etcd` on PATH: the cluster tests run a real etcd; install it (Debian: \
                 apt-get install etcd-server; scripts/test.sh does this in CI)"
            )
        })
}

/// A single-member etcd on 127.0.0.1, its data in a temporary directory; killed and the
/// directory removed on drop.
struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    /// Clients over TLS with a certificate (`--client-cert-auth`), from these files.
    tls: Option<Pki>,
}

/// A CA, etcd's certificate for 127.0.0.1 and a client's, all signed by the CA (PEM).
struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

impl Pki {
    fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "etcd test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        Self {
            ca: ca.pem(),
            server: leaf("127.0.0.1"),
            client: leaf("relay"),
        }
    }
}

impl Etcd {
    fn start() -> Self {
        let mut etcd = Self::not_started();
        etcd.run();
        etcd
    }

    /// An etcd whose clients connect over TLS and present a certificate `pki` signed.
    fn start_tls(pki: Pki) -> Self {
        let mut etcd = Self::not_started();
        etcd.tls = Some(pki);
        etcd.run();
        etcd
    }

    /// Ports and a data directory, nothing listening yet ([`run`](Self::run) starts it).
    fn not_started() -> Self {
        // In memory where there is /dev/shm: etcd syncs every write to disk, which on a
        // busy disk can take longer than a short lease.
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "moq-relay-etcd-{}-{}",
            std::process::id(),
            free_tcp_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            child: None,
            dir,
            client_port: free_tcp_port(),
            peer_port: free_tcp_port(),
            tls: None,
        }
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// Starts (or restarts) the process on the same ports and data directory, and waits
    /// until it accepts TCP connections.
    fn run(&mut self) {
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .unwrap();
        let mut command = Command::new(etcd_binary());
        if let Some(pki) = &self.tls {
            let file = |name: &str, pem: &str| {
                let path = self.dir.join(name);
                std::fs::write(&path, pem).unwrap();
                path
            };
            command
                .arg("--cert-file")
                .arg(file("server.pem", &pki.server.0))
                .arg("--key-file")
                .arg(file("server-key.pem", &pki.server.1))
                .arg("--trusted-ca-file")
                .arg(file("ca.pem", &pki.ca))
                .arg("--client-cert-auth");
        }
        let child = command
            .args(["--name", "test", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            // A short election timeout lowers etcd's minimum lease to 1 s (its minimum is
            // 1.5 election timeouts, rounded up to seconds).
            .args(["--heartbeat-interval", "50", "--election-timeout", "250"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.client_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "etcd did not listen within 30 s; see {}",
                self.dir.join("etcd.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process (the data stays, for [`run`](Self::run)).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A relay in-process and its cluster membership.
struct Member {
    harness: Harness,
    cluster: Option<EtcdCluster>,
}

/// Ends each relay's membership (dropped, as a crash would: no revocation) and stops it.
async fn stop_all(members: impl IntoIterator<Item = Member>) {
    for member in members {
        drop(member.cluster);
        member.harness.stop().await;
    }
}

impl Member {
    fn relay(&self) -> &moq_relay::Relay {
        &self.harness.relay
    }

    fn stats(&self) -> moq_relay::cluster::ClusterStats {
        self.relay().stats().cluster
    }

    /// The text of this relay's /metrics.
    fn metric(&self, name: &str) -> u64 {
        let text = Metrics::new(self.relay().clone()).render();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .parse()
            .unwrap()
    }
}

/// Starts `n` relays and joins them to the cluster at `etcd`, each trusting the others'
/// certificates by fingerprint; `node` maps a relay's port to the URL it registers (a
/// forwarder in front of it, say).
async fn cluster(etcd: &Etcd, n: usize, node: impl Fn(usize, u16) -> String) -> Vec<Member> {
    let mut harnesses = Vec::new();
    for _ in 0..n {
        harnesses.push(Harness::start().await);
    }
    let pins: Vec<_> = harnesses.iter().map(Harness::fingerprint).collect();
    let mut members = Vec::new();
    for (i, harness) in harnesses.into_iter().enumerate() {
        let url = Url::parse(&node(i, harness.port)).unwrap();
        let member = Member {
            cluster: Some(join(&harness, url, etcd, pins.clone())),
            harness,
        };
        members.push(member);
    }
    for member in &members {
        until("registered", || member.stats().registered).await;
    }
    members
}

fn join(
    harness: &Harness,
    node: Url,
    etcd: &Etcd,
    pins: Vec<moq_transport_quinn::Fingerprint>,
) -> EtcdCluster {
    let config = ClusterConfig::new(node)
        .with_lease(LEASE)
        .with_trust(Trust::Fingerprints(pins))
        .with_bind("127.0.0.1:0".parse().unwrap());
    EtcdCluster::join(&harness.relay, config, EtcdConfig::new(vec![etcd.url()])).unwrap()
}

fn node_url(_: usize, port: u16) -> String {
    format!("moqf://127.0.0.1:{port}/")
}

/// Publishes a track at `path` from a new session to `member`'s relay.
async fn publish(member: &Member, path: &Path) -> (Peer, TrackProducer) {
    let peer = member.harness.connect(Via::Quic).await;
    let (track, consumer) = Track::new(path.clone()).produce();
    peer.session.publish(consumer).unwrap();
    until("announced locally", || {
        member.relay().origins().route(path).is_some()
    })
    .await;
    (peer, track)
}

/// Writes a group of one frame, `text`.
fn write(track: &mut TrackProducer, text: &str) {
    let mut group = track.append_group();
    group.write_frame(text.to_owned()).unwrap();
    group.finish();
}

/// Reads groups until one holds `text` (earlier groups may be skipped or cached).
async fn expect(track: &mut TrackConsumer, text: &str) {
    let read = async {
        loop {
            let (_, frames) = read_group(track).await;
            if frames.iter().any(|frame| frame == text.as_bytes()) {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .unwrap_or_else(|_| panic!("no group with {text:?}"));
}

/// Subscribes on `member` to `path` and waits for `text`, writing it again and again (a
/// subscription that arrives after a group was written sees only later ones).
async fn subscribe_and_receive(
    peer: &Peer,
    path: &Path,
    track: &mut TrackProducer,
    text: &str,
) -> TrackConsumer {
    let mut sub = peer.session.subscribe(Track::new(path.clone()));
    write(track, text);
    let mut reading = Box::pin(expect(&mut sub, text));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        tokio::select! {
            () = &mut reading => break,
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                assert!(Instant::now() < deadline, "never received {text:?}");
                write(track, text);
            }
        }
    }
    drop(reading);
    sub
}

/// Waits until the remote path is routable on `member` (its registry watch saw it and the
/// link is up).
async fn until_routed(member: &Member, path: &Path) {
    until("routed to another relay", || {
        member
            .relay()
            .origins()
            .route(path)
            .is_some_and(|route| route.remote)
    })
    .await;
}

/// Waits (at most [`EXPIRY_BOUND`]) for the track to end, cleanly or with an error.
async fn ends(track: &mut TrackConsumer) -> Duration {
    let start = Instant::now();
    let end = async {
        loop {
            match track.next_group().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    };
    tokio::time::timeout(EXPIRY_BOUND, end)
        .await
        .expect("the track ended, not hung");
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_b_receives_from_a_publisher_on_a_and_announcements_cross() {
    let etcd = Etcd::start();
    let members = cluster(&etcd, 2, node_url).await;
    let (a, b) = (&members[0], &members[1]);
    let watcher = b.harness.connect(Via::Quic).await;
    let mut announced = watcher.session.announced(Path::from(["room"]));

    let path = Path::from(["room", "alice", "video"]);
    let (publisher, mut track) = publish(a, &path).await;
    assert_eq!(
        next_announced(&mut announced).await,
        Announced::Active(path.clone())
    );
    until_routed(b, &path).await;
    let subscriber = b.harness.connect(Via::WebTransport).await;
    let mut sub = subscribe_and_receive(&subscriber, &path, &mut track, "hello").await;
    write(&mut track, "second");
    expect(&mut sub, "second").await;

    // The metrics of both sides.
    assert_eq!(b.metric("moq_relay_cluster_enabled"), 1);
    assert_eq!(b.metric("moq_relay_cluster_registered"), 1);
    assert_eq!(b.metric("moq_relay_cluster_peers"), 1);
    assert_eq!(b.metric("moq_relay_cluster_links"), 1);
    assert_eq!(b.metric("moq_relay_cluster_remote_routes"), 1);
    assert_eq!(b.metric("moq_relay_cluster_registrations_total"), 1);
    assert_eq!(a.metric("moq_relay_cluster_remote_routes"), 0);
    // A has nothing to route to B: no link from A.
    assert_eq!(a.metric("moq_relay_cluster_links"), 0);
    // The local table of A never learns its own path as remote, and B never registers it.
    assert!(!a.relay().origins().route(&path).unwrap().remote);
    assert!(b.relay().origins().local_paths().is_empty());

    // The publisher ends its track and leaves: the path ends on B too.
    track.finish();
    ends(&mut sub).await;
    publisher.leave().await;
    assert_eq!(
        next_announced(&mut announced).await,
        Announced::Ended(path.clone())
    );
    until("no remote route", || b.stats().remote_routes == 0).await;
    until("no link", || b.stats().links == 0).await;

    drop((sub, announced));
    subscriber.leave().await;
    watcher.leave().await;
    stop_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_paths_and_quick_changes_reach_the_other_relays() {
    let etcd = Etcd::start();
    let members = cluster(&etcd, 2, node_url).await;
    let (a, b) = (&members[0], &members[1]);
    let publisher = a.harness.connect(Via::Quic).await;
    let path = |i: usize| Path::from(["many".to_owned(), i.to_string()]);

    // A thousand paths at once, and two hundred that come and go among them: queued while
    // the first writes are under way, written in batches, a path's last change winning
    // (a path registered and ended in one batch is one write, not two of the same key,
    // which etcd refuses in a transaction).
    let mut tracks = Vec::new();
    for i in 0..1000 {
        let (track, consumer) = Track::new(path(i)).produce();
        publisher.session.publish(consumer).unwrap();
        tracks.push(track);
        if i % 5 == 0 {
            let (flicker, consumer) = Track::new(path(2000 + i / 5)).produce();
            publisher.session.publish(consumer).unwrap();
            flicker.finish();
        }
    }
    until("all routed on B", || b.stats().remote_routes == 1000).await;

    // Then four hundred end at once.
    for track in tracks.drain(..400) {
        track.finish();
    }
    until("the rest routed on B", || {
        b.stats().remote_routes == 600
            && (400..1000).all(|i| b.relay().origins().route(&path(i)).is_some())
    })
    .await;
    assert!((0..400).all(|i| b.relay().origins().route(&path(i)).is_none()));
    assert!((2000..2200).all(|i| b.relay().origins().route(&path(i)).is_none()));
    // All of it in A's first registration: no write failed.
    assert_eq!(a.stats().registrations, 1);

    drop(tracks);
    publisher.leave().await;
    stop_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_on_b_share_one_upstream_subscription_to_a() {
    let etcd = Etcd::start();
    let members = cluster(&etcd, 2, node_url).await;
    let (a, b) = (&members[0], &members[1]);
    let path = Path::from(["shared"]);
    let (publisher, mut track) = publish(a, &path).await;
    until_routed(b, &path).await;

    let first = b.harness.connect(Via::Quic).await;
    let second = b.harness.connect(Via::Quic).await;
    let mut sub_1 = subscribe_and_receive(&first, &path, &mut track, "one").await;
    let mut sub_2 = subscribe_and_receive(&second, &path, &mut track, "two").await;
    // B serves two subscribers; A serves one subscription (B's link), its publisher one.
    until("B serves two", || b.relay().stats().subscribers == 2).await;
    // B holds one upstream subscription, on its link to A.
    assert_eq!(b.relay().stats().cluster.link_subscriptions, 1);
    assert_eq!(b.metric("moq_relay_upstream_subscriptions"), 1);
    assert_eq!(a.relay().stats().subscribers, 1);
    assert_eq!(a.metric("moq_relay_downstream_subscriptions"), 1);
    assert_eq!(publisher.session.stats().serving, 1);
    // Each frame goes once from A to B: A's frames sent grow by one per frame. (Counts
    // are added as group streams end: read them with no group in flight.)
    until("A quiet", || a.relay().stats().group_streams == 0).await;
    let before = a.relay().stats();
    for i in 0..5 {
        let text = format!("frame {i}");
        write(&mut track, &text);
        expect(&mut sub_1, &text).await;
        expect(&mut sub_2, &text).await;
    }
    until("A quiet again", || a.relay().stats().group_streams == 0).await;
    let after = a.relay().stats();
    assert_eq!(after.frames_out - before.frames_out, 5);

    drop((sub_1, sub_2));
    first.leave().await;
    second.leave().await;
    publisher.leave().await;
    stop_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_moving_to_another_relay_is_routed_to_there() {
    let etcd = Etcd::start();
    let mut members = cluster(&etcd, 3, node_url).await;
    let path = Path::from(["mover"]);
    let (publisher, mut track) = publish(&members[0], &path).await;
    until_routed(&members[2], &path).await;
    let subscriber = members[2].harness.connect(Via::Quic).await;
    let mut sub = subscribe_and_receive(&subscriber, &path, &mut track, "on A").await;

    // A stops as a crash would (no lease revoked; its sessions go): C's subscriber sees
    // the track end rather than hang.
    let a = members.remove(0);
    if let Some(cluster) = a.cluster {
        cluster.abort();
    }
    a.harness.stop().await;
    drop(publisher);
    ends(&mut sub).await;

    // The publisher reconnects to B; C routes there from now on.
    let b = &members[0];
    let (publisher, mut track) = publish(b, &path).await;
    until("routed to B", || {
        members[1]
            .relay()
            .origins()
            .route(&path)
            .is_some_and(|route| route.remote)
            && members[1].stats().links == 1
    })
    .await;
    let mut sub = subscribe_and_receive(&subscriber, &path, &mut track, "on B").await;
    write(&mut track, "still B");
    expect(&mut sub, "still B").await;
    // A's lease expires: C forgets A, keeps B.
    until("A expired", || members[1].stats().peers == 1).await;

    drop(sub);
    subscriber.leave().await;
    publisher.leave().await;
    stop_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_lost_keeps_local_traffic_and_registers_again_on_return() {
    let mut etcd = Etcd::start();
    let members = cluster(&etcd, 2, node_url).await;
    let (a, b) = (&members[0], &members[1]);
    let path = Path::from(["before"]);
    let (publisher, mut track) = publish(a, &path).await;
    until_routed(b, &path).await;
    let remote = b.harness.connect(Via::Quic).await;
    let mut remote_sub = subscribe_and_receive(&remote, &path, &mut track, "x").await;
    let local = a.harness.connect(Via::Quic).await;
    let mut local_sub = subscribe_and_receive(&local, &path, &mut track, "y").await;

    etcd.kill();
    until("A unregistered", || !a.stats().registered).await;
    until("B unregistered", || !b.stats().registered).await;
    assert_eq!(a.metric("moq_relay_cluster_registered"), 0);
    // Local traffic goes on, and so does the link already up.
    for i in 0..3 {
        let text = format!("during {i}");
        write(&mut track, &text);
        expect(&mut local_sub, &text).await;
        expect(&mut remote_sub, &text).await;
    }
    // A path published while etcd is away is registered when it returns.
    let later = Path::from(["during", "outage"]);
    let (late_publisher, mut late_track) = publish(a, &later).await;

    let registrations = a.stats().registrations;
    etcd.run();
    until("A registered again", || {
        a.stats().registered && a.stats().registrations > registrations
    })
    .await;
    until("B registered again", || b.stats().registered).await;
    until_routed(b, &later).await;
    until_routed(b, &path).await;
    let mut late_sub = subscribe_and_receive(&remote, &later, &mut late_track, "late").await;
    write(&mut late_track, "late 2");
    expect(&mut late_sub, "late 2").await;
    write(&mut track, "after");
    expect(&mut local_sub, "after").await;
    expect(&mut remote_sub, "after").await;

    drop((remote_sub, local_sub, late_sub));
    remote.leave().await;
    local.leave().await;
    publisher.leave().await;
    late_publisher.leave().await;
    stop_all(members).await;
}

/// A UDP forwarder on 127.0.0.1 to `target`, one upstream socket per client address, that
/// drops every datagram while cut.
struct Forwarder {
    port: u16,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    async fn start(target: SocketAddr) -> Self {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let port = socket.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(forward(socket, target, cut.clone()));
        Self { port, cut, task }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(front: Arc<UdpSocket>, target: SocketAddr, cut: Arc<AtomicBool>) {
    let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut tasks = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok((n, from)) = front.recv_from(&mut buf).await {
        if cut.load(Ordering::SeqCst) {
            continue;
        }
        let upstream = match upstreams.get(&from) {
            Some(upstream) => upstream.clone(),
            None => {
                let upstream = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
                upstream.connect(target).await.unwrap();
                // Replies go back to the client through the front socket.
                let (back, front, cut) = (upstream.clone(), front.clone(), cut.clone());
                tasks.push(AbortOnDrop(tokio::spawn(async move {
                    let mut buf = vec![0u8; 65_536];
                    while let Ok(n) = back.recv(&mut buf).await {
                        if !cut.load(Ordering::SeqCst) {
                            let _ = front.send_to(&buf[..n], from).await;
                        }
                    }
                })));
                upstreams.insert(from, upstream.clone());
                upstream
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_between_relays_heals_by_itself() {
    let etcd = Etcd::start();
    // A registers the forwarder's address: B's link to A crosses it.
    let a_harness = Harness::start().await;
    let b_harness = Harness::start().await;
    let forwarder = Forwarder::start(SocketAddr::from(([127, 0, 0, 1], a_harness.port))).await;
    let pins = vec![a_harness.fingerprint(), b_harness.fingerprint()];
    let a_url = Url::parse(&format!("moqf://127.0.0.1:{}/", forwarder.port)).unwrap();
    let b_url = Url::parse(&node_url(1, b_harness.port)).unwrap();
    let a = Member {
        cluster: Some(join(&a_harness, a_url, &etcd, pins.clone())),
        harness: a_harness,
    };
    let b = Member {
        cluster: Some(join(&b_harness, b_url, &etcd, pins)),
        harness: b_harness,
    };
    let path = Path::from(["across"]);
    let (publisher, mut track) = publish(&a, &path).await;
    until_routed(&b, &path).await;
    let subscriber = b.harness.connect(Via::Quic).await;
    let mut sub = subscribe_and_receive(&subscriber, &path, &mut track, "before").await;

    // Cut: the link goes silent, and within its idle timeout (the lease) B withdraws A's
    // routes and the subscriber's track ends. Both stay registered in etcd.
    forwarder.set_cut(true);
    ends(&mut sub).await;
    until("route withdrawn", || {
        b.relay().origins().route(&path).is_none()
    })
    .await;
    assert!(a.stats().registered && b.stats().registered);

    // Healed: the link reconnects by itself and routes again; the same client session
    // subscribes again (its ended subscription is not reused).
    forwarder.set_cut(false);
    until_routed(&b, &path).await;
    let mut sub = subscribe_and_receive(&subscriber, &path, &mut track, "after").await;
    write(&mut track, "after 2");
    expect(&mut sub, "after 2").await;
    assert!(b.stats().link_failures >= 1);

    drop(sub);
    subscriber.leave().await;
    publisher.leave().await;
    stop_all([a, b]).await;
}

/// Kills the relay process if the test fails half-way.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The relay binary on a free port of 127.0.0.1 in the cluster at `etcd` with a lease of
/// `lease` seconds; its UDP port, its metrics port, and its certificate fingerprint, read
/// from what it prints.
async fn relay_process(
    etcd: &Etcd,
    lease: u64,
    extra: &[&std::ffi::OsStr],
) -> (KillOnDrop, u16, u16, moq_transport_quinn::Fingerprint) {
    use std::io::BufRead;

    let port = crate::support::free_udp_port();
    // Its /metrics on a TCP port of its own.
    let metrics_port = free_tcp_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_moq-relay"))
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--tls-self-sign", "localhost,127.0.0.1"])
            .args(["--cluster-etcd", &etcd.url()])
            .args(["--cluster-node", &format!("moqf://127.0.0.1:{port}/")])
            .args(["--cluster-lease", &lease.to_string(), "-q"])
            .args(["--metrics-bind", &metrics])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let fingerprint = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.split("(SHA-256): ").nth(1).map(str::to_owned))
            .expect("a fingerprint line")
    })
    .await
    .unwrap();
    (child, port, metrics_port, fingerprint.parse().unwrap())
}

/// The body of `GET /metrics` from 127.0.0.1:`port` (TCP).
async fn scrape(port: u16) -> String {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
    })
    .await
    .unwrap()
}

/// Relay B in-process, in the cluster at `etcd`, trusting `pin`; a publisher of `path` on
/// the relay process at `port`; a subscriber on B receiving it.
async fn publish_across(
    etcd: &Etcd,
    port: u16,
    pin: moq_transport_quinn::Fingerprint,
    path: &Path,
) -> (
    Member,
    moq_session::Session,
    moq_transport_quinn::Client,
    TrackProducer,
    Peer,
    TrackConsumer,
) {
    let b_harness = Harness::start().await;
    let b_url = Url::parse(&node_url(1, b_harness.port)).unwrap();
    let b = Member {
        cluster: Some(join(&b_harness, b_url, etcd, vec![pin])),
        harness: b_harness,
    };
    until("B registered", || b.stats().registered).await;
    let client = moq_transport_quinn::Client::new(
        moq_transport_quinn::ClientConfig::default()
            .with_bind("127.0.0.1:0".parse().unwrap())
            .with_trust(Trust::Fingerprints(vec![pin])),
    )
    .unwrap();
    let conn = client
        .connect(&format!("moqf://127.0.0.1:{port}/"))
        .await
        .unwrap();
    let (publisher, driver) = moq_session::Session::connect(conn).await.unwrap();
    tokio::spawn(driver);
    let (mut track, consumer) = Track::new(path.clone()).produce();
    publisher.publish(consumer).unwrap();
    until("B sees A", || b.stats().peers == 1).await;
    until_routed(&b, path).await;
    let subscriber = b.harness.connect(Via::Quic).await;
    let sub = subscribe_and_receive(&subscriber, path, &mut track, "alive").await;
    (b, publisher, client, track, subscriber, sub)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_process_killed_loses_its_routes_within_the_lease() {
    let etcd = Etcd::start();
    // Relay A: the binary, killed with SIGKILL below; a publisher there, a subscriber on B.
    let (mut child, port, metrics_port, pin) = relay_process(&etcd, 1, &[]).await;
    let path = Path::from(["process", "track"]);
    let (b, publisher, client, _track, subscriber, mut sub) =
        publish_across(&etcd, port, pin, &path).await;

    // A's /metrics over HTTP: a member, registered, serving B's link one subscription.
    let text = scrape(metrics_port).await;
    for line in [
        "moq_relay_cluster_enabled 1",
        "moq_relay_cluster_registered 1",
        "moq_relay_cluster_registrations_total 1",
        "moq_relay_downstream_subscriptions 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }

    // SIGKILL: nothing is revoked or closed; the lease runs out.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let took = ends(&mut sub).await;
    until("A's routes gone", || {
        b.relay().origins().route(&path).is_none() && b.stats().peers == 0
    })
    .await;
    // Lease (1 s, kept alive a third of it at a time) plus etcd's expiry check and the
    // watch: well within the bound `ends` enforces; printed for the record.
    println!("track ended {took:?} after SIGKILL");

    drop(sub);
    subscriber.leave().await;
    drop(publisher);
    client.close();
    drop(b.cluster);
    b.harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_process_stopped_with_sigterm_revokes_its_lease() {
    let etcd = Etcd::start();
    // A 60 s lease: the routes can only go before it runs out if A revokes it.
    let (mut child, port, _, pin) = relay_process(&etcd, 60, &[]).await;
    let path = Path::from(["leaving"]);
    let (b, publisher, client, _track, subscriber, mut sub) =
        publish_across(&etcd, port, pin, &path).await;

    let pid = child.0.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let start = Instant::now();
    ends(&mut sub).await;
    until("A left the registry", || {
        b.stats().peers == 0 && b.relay().origins().route(&path).is_none()
    })
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert!(child.0.wait().unwrap().success());

    drop(sub);
    subscriber.leave().await;
    drop(publisher);
    client.close();
    drop(b.cluster);
    b.harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_is_retried_and_the_relay_serves_meanwhile() {
    // A port nobody listens on yet; etcd starts there later.
    let mut etcd = Etcd::not_started();
    let harness = Harness::start().await;
    let url = Url::parse(&node_url(0, harness.port)).unwrap();
    let member = Member {
        cluster: Some(join(&harness, url, &etcd, vec![harness.fingerprint()])),
        harness,
    };
    // Serving meanwhile: a local publisher and subscriber.
    let path = Path::from(["local"]);
    let (publisher, mut track) = publish(&member, &path).await;
    let subscriber = member.harness.connect(Via::Quic).await;
    let mut sub = subscribe_and_receive(&subscriber, &path, &mut track, "local").await;
    assert!(!member.stats().registered);
    assert_eq!(member.metric("moq_relay_cluster_registered"), 0);

    etcd.run();
    until("registered once etcd is up", || member.stats().registered).await;
    write(&mut track, "still");
    expect(&mut sub, "still").await;

    drop(sub);
    subscriber.leave().await;
    publisher.leave().await;
    drop(member.cluster);
    member.harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_over_tls_takes_the_relays_that_present_a_certificate_it_trusts() {
    let pki = Pki::new();
    let (ca, (chain, key)) = (pki.ca.clone(), pki.client.clone());
    let (ca_pem, client_chain, client_key) = (ca.clone(), chain.clone(), key.clone());
    let etcd = Etcd::start_tls(pki);
    assert!(etcd.url().starts_with("https://"));
    let join_with = |harness: &Harness, config: EtcdConfig| {
        let node = Url::parse(&node_url(0, harness.port)).unwrap();
        let cluster = ClusterConfig::new(node)
            .with_lease(LEASE)
            .with_trust(Trust::Fingerprints(vec![harness.fingerprint()]))
            .with_bind("127.0.0.1:0".parse().unwrap());
        EtcdCluster::join(&harness.relay, cluster, config).unwrap()
    };

    // The CA and a client certificate it signed: registered, and its path written.
    let good = Harness::start().await;
    let member = Member {
        cluster: Some(join_with(
            &good,
            EtcdConfig::new(vec![etcd.url()])
                .with_ca_pem(ca.clone())
                .with_identity_pem(chain, key),
        )),
        harness: good,
    };
    until("registered over TLS", || member.stats().registered).await;
    let path = Path::from(["tls", "clock"]);
    let (publisher, _track) = publish(&member, &path).await;

    // Without a client certificate etcd refuses the connection; trusting another CA the
    // relay refuses etcd's certificate: neither ever registers (each retries every second).
    let bare = Harness::start().await;
    let without_identity = join_with(&bare, EtcdConfig::new(vec![etcd.url()]).with_ca_pem(ca));
    let stranger = Harness::start().await;
    let other_ca = join_with(
        &stranger,
        EtcdConfig::new(vec![etcd.url()]).with_ca_pem(Pki::new().ca),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    for refused in [&bare, &stranger] {
        let stats = refused.relay.stats().cluster;
        assert!(!stats.registered);
        assert_eq!(stats.registrations, 0);
    }
    // The relay that got in sees nothing wrong.
    assert_eq!(member.stats().registrations, 1);

    // The binary, with the flags.
    let file = |name: &str, pem: &str| {
        let path = etcd.dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path.into_os_string()
    };
    let flags = [
        "--cluster-etcd-ca".into(),
        file("client-ca.pem", &ca_pem),
        "--cluster-etcd-cert".into(),
        file("client.pem", &client_chain),
        "--cluster-etcd-key".into(),
        file("client-key.pem", &client_key),
    ];
    let flags: Vec<&std::ffi::OsStr> = flags.iter().map(|f| f.as_os_str()).collect();
    let (process, _, metrics_port, _) = relay_process(&etcd, 2, &flags).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    // Its metrics listener comes up just after the line read above.
    while std::net::TcpStream::connect(("127.0.0.1", metrics_port)).is_err() {
        assert!(Instant::now() < deadline, "no metrics listener");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while !scrape(metrics_port)
        .await
        .contains("\nmoq_relay_cluster_registered 1\n")
    {
        assert!(
            Instant::now() < deadline,
            "the relay process never registered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(process);

    drop((without_identity, other_ca));
    publisher.leave().await;
    for harness in [bare, stranger] {
        harness.stop().await;
    }
    stop_all([member]).await;
}

#[test]
fn a_bad_cluster_configuration_is_an_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let relay = moq_relay::Relay::new(moq_relay::RelayConfig::default());
        let etcd = EtcdConfig::new(vec!["http://127.0.0.1:1".into()]);
        let bad_node = ClusterConfig::new(Url::parse("file:///tmp").unwrap());
        assert!(EtcdCluster::join(&relay, bad_node, etcd.clone()).is_err());
        let node = Url::parse("moqf://127.0.0.1:1/").unwrap();
        let bad_lease = ClusterConfig::new(node.clone()).with_lease(Duration::ZERO);
        assert!(EtcdCluster::join(&relay, bad_lease, etcd).is_err());
        let no_scheme = EtcdConfig::new(vec!["127.0.0.1:2379".into()]);
        assert!(EtcdCluster::join(&relay, ClusterConfig::new(node.clone()), no_scheme).is_err());
        // https:// without a CA; a CA or a client certificate for http://; both schemes.
        let tls = EtcdConfig::new(vec!["https://127.0.0.1:2379".into()]);
        assert!(EtcdCluster::join(&relay, ClusterConfig::new(node.clone()), tls).is_err());
        let pki = Pki::new();
        let plain_ca = EtcdConfig::new(vec!["http://127.0.0.1:2379".into()]).with_ca_pem(pki.ca);
        assert!(EtcdCluster::join(&relay, ClusterConfig::new(node.clone()), plain_ca).is_err());
        let plain_identity = EtcdConfig::new(vec!["http://127.0.0.1:2379".into()])
            .with_identity_pem(pki.client.0, pki.client.1);
        let joined = EtcdCluster::join(&relay, ClusterConfig::new(node.clone()), plain_identity);
        assert!(joined.is_err());
        let mixed = EtcdConfig::new(vec![
            "http://127.0.0.1:2379".into(),
            "https://127.0.0.1:2380".into(),
        ]);
        assert!(EtcdCluster::join(&relay, ClusterConfig::new(node.clone()), mixed).is_err());
        let none = EtcdConfig::new(Vec::new());
        assert!(EtcdCluster::join(&relay, ClusterConfig::new(node), none).is_err());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_present_a_token_signed_with_the_cluster_key() {
    use moq_auth::{Algorithm, Key, KeySet};

    let etcd = Etcd::start();
    let key = Key::generate(Algorithm::ES256, Some("cluster".into())).unwrap();
    let key_for_publisher = key.clone();
    // A requires tokens; B signs its links' tokens with the cluster key, C has no key.
    let mut auth = moq_relay::AuthConfig::default();
    auth.keys = Some(KeySet::from_keys([key.public().unwrap()]).unwrap());
    let a = Harness::start_with(moq_relay::RelayConfig::default().with_auth(auth)).await;
    let b = Harness::start().await;
    let c = Harness::start().await;
    let pins = vec![a.fingerprint(), b.fingerprint(), c.fingerprint()];
    let config = |harness: &Harness, key: Option<Key>| {
        ClusterConfig::new(Url::parse(&node_url(0, harness.port)).unwrap())
            .with_lease(LEASE)
            .with_trust(Trust::Fingerprints(pins.clone()))
            .with_bind("127.0.0.1:0".parse().unwrap())
            .with_key(key)
    };
    let etcd_config = EtcdConfig::new(vec![etcd.url()]);
    let members: Vec<Member> = [(a, None), (b, Some(key)), (c, None)]
        .into_iter()
        .map(|(harness, key)| Member {
            cluster: Some(
                EtcdCluster::join(&harness.relay, config(&harness, key), etcd_config.clone())
                    .unwrap(),
            ),
            harness,
        })
        .collect();
    for member in &members {
        until("registered", || member.stats().registered).await;
    }
    let path = Path::from(["secret", "stream"]);
    let mut claims = moq_auth::Claims::new("");
    claims.put = vec!["secret".into()];
    let token = key_for_publisher.sign(&claims).unwrap();
    let publisher = members[0]
        .harness
        .connect_to(Via::Quic, &format!("?jwt={token}"))
        .await
        .unwrap();
    let (mut track, consumer) = Track::new(path.clone()).produce();
    publisher.session.publish(consumer).unwrap();

    // B's link is accepted: B's subscriber gets the track.
    until_routed(&members[1], &path).await;
    let subscriber = members[1].harness.connect(Via::Quic).await;
    let mut sub = subscribe_and_receive(&subscriber, &path, &mut track, "signed").await;
    // C's links are refused with 16 (no token) and retried: A counts them refused.
    until("C refused at A", || {
        members[0].relay().stats().unauthorized >= 2 && members[2].stats().link_failures >= 2
    })
    .await;
    write(&mut track, "signed 2");
    expect(&mut sub, "signed 2").await;

    drop(sub);
    subscriber.leave().await;
    publisher.leave().await;
    stop_all(members).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_published_on_two_relays_is_served_locally_by_each() {
    let etcd = Etcd::start();
    let members = cluster(&etcd, 2, node_url).await;
    let (a, b) = (&members[0], &members[1]);
    let path = Path::from(["both"]);
    let (on_a, mut track_a) = publish(a, &path).await;
    until_routed(b, &path).await;
    let (on_b, mut track_b) = publish(b, &path).await;
    // Each relay prefers its own publisher; each knows the other's as a remote route too.
    until("both registered", || {
        a.stats().remote_routes == 1 && b.stats().remote_routes == 1
    })
    .await;
    let mut subs = Vec::new();
    for (member, mine) in [(a, &mut track_a), (b, &mut track_b)] {
        let route = member.relay().origins().route(&path).unwrap();
        assert!(!route.remote);
        assert_eq!(member.relay().origins().local_paths(), vec![path.clone()]);
        let subscriber = member.harness.connect(Via::Quic).await;
        let text = format!("local to {}", member.harness.port);
        let sub = subscribe_and_receive(&subscriber, &path, mine, &text).await;
        subs.push((subscriber, sub));
    }
    // No subscription crossed: each relay serves only its own subscriber (a link's would
    // make two), and each publisher only its own relay.
    assert_eq!(a.relay().stats().subscribers, 1);
    assert_eq!(b.relay().stats().subscribers, 1);
    assert_eq!(on_a.session.stats().serving, 1);
    assert_eq!(on_b.session.stats().serving, 1);
    assert_eq!(a.stats().links + b.stats().links, 2);
    for (subscriber, sub) in subs {
        drop(sub);
        subscriber.leave().await;
    }

    on_a.leave().await;
    on_b.leave().await;
    stop_all(members).await;
}
