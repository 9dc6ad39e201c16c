//! [`Session`] (the handle) and [`SessionDriver`] (the future that runs it), and the state
//! they share.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use moq_model::{
    AnnouncedConsumer, AnnouncedProducer, AnnouncedSource, BroadcastConsumer, RouterConsumer,
    Track, TrackConsumer,
};
use moq_proto::{
    ErrorCode, Extensions, Fetch, Info, Path, SessionClient, SessionServer, StreamBi, Subscribe,
    SubscribeUpdate, Version,
};

use crate::state::{Published, Shared, Sub};
use crate::stream::{Reader, Sender, abort};
use crate::subscribe::{self, fetch};
use crate::transport::{Connection, RecvStream, TransportError};
use crate::{Error, Fetched, SessionConfig, publish};

/// A MoQ Transfork session: one connection, over which both sides may publish and
/// subscribe.
///
/// Created by [`connect`](Session::connect) (client) or [`accept`](Session::accept)
/// (server), together with its [`SessionDriver`], the future that does the work and that
/// the application runs on its executor. `Session` is a cheap handle: clones share the
/// session.
///
/// # Drop
///
/// Dropping the last handle closes the connection with code 0 ([`ErrorCode::CANCEL`]); the
/// driver then completes.
#[derive(Clone)]
pub struct Session {
    handle: Arc<Handle>,
}

/// Closes the session when the last [`Session`] clone goes.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared
            .close(Error::Closed(ErrorCode::CANCEL), ErrorCode::CANCEL, "");
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Counts of what a session holds right now, and totals of what it moved since it started
/// (for tests, metrics and leak checks).
///
/// The traffic totals (groups, frames, payload bytes) are kept per group stream and added
/// once, when the stream ends: the send and receive paths pay no shared write per frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Our subscriptions that are live (one per distinct path).
    pub subscriptions: usize,
    /// Subscriptions of the peer we are serving.
    pub serving: usize,
    /// Announce streams of the peer we are serving.
    pub announce_streams: usize,
    /// Our announce interests that are live.
    pub announced: usize,
    /// Group streams being received.
    pub group_streams_in: usize,
    /// Group streams being sent.
    pub group_streams_out: usize,
    /// Tracks and broadcasts published.
    pub published: usize,
    /// Futures the driver is running (streams, accept loops, watchers).
    pub tasks: usize,
    /// Subscribe ids used so far (the next id).
    pub next_subscribe_id: u64,
    /// `GroupDrop`s received on our subscriptions.
    pub group_drops_received: u64,
    /// `GroupDrop`s sent on subscriptions we serve.
    pub group_drops_sent: u64,
    /// Group streams received into our subscriptions since the session started.
    pub groups_received: u64,
    /// Frames received whole on those streams (a frame is counted when its group stream
    /// ends, so a group still arriving is not in it yet).
    pub frames_received: u64,
    /// Frame payload bytes received on those streams (counted when each stream ends).
    pub payload_bytes_received: u64,
    /// Group streams opened for subscriptions we serve since the session started (a group
    /// sent again counts again).
    pub groups_sent: u64,
    /// Frames written whole on those streams (counted when each stream ends).
    pub frames_sent: u64,
    /// Frame payload bytes written on those streams (counted when each stream ends).
    pub payload_bytes_sent: u64,
    /// Groups of subscriptions we serve that were never sent because they left the cache
    /// before their turn (a slow subscriber skips ahead); each range is reported in one
    /// `GroupDrop`.
    pub groups_skipped: u64,
    /// Groups of subscriptions we serve that were given up (expired, over the stream cap)
    /// or whose stream failed; each is reported in a `GroupDrop`.
    pub groups_dropped: u64,
}

/// The future that runs a session: the handshake is done, and it accepts the peer's
/// streams, serves them, and runs the streams our [`Session`] handles open.
///
/// Spawn it on the executor of your choice (`tokio::spawn(driver)`); the session does
/// nothing while it is not polled. It completes when the session ends: `Ok(())` when it was
/// closed locally ([`Session::close`] or dropping every handle), the reason otherwise.
/// Dropping it closes the session with code 0.
#[must_use = "a session does nothing unless its driver is polled"]
pub struct SessionDriver {
    shared: Arc<Shared>,
    tasks: FuturesUnordered<BoxFuture<'static, ()>>,
    done: bool,
}

impl fmt::Debug for SessionDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionDriver")
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

/// The operations that need the concrete connection type, behind a trait object so that
/// [`Session`] is not generic.
pub(crate) trait Ops: Send + Sync + 'static {
    fn close(&self, code: ErrorCode, reason: &str);
    fn subscribe(
        &self,
        shared: Arc<Shared>,
        message: Subscribe,
        unused: BoxFuture<'static, ()>,
    ) -> BoxFuture<'static, ()>;
    fn announced(
        &self,
        shared: Arc<Shared>,
        id: u64,
        prefix: Path,
        unused: BoxFuture<'static, ()>,
    ) -> BoxFuture<'static, ()>;
    fn info(&self, shared: Arc<Shared>, path: Path) -> BoxFuture<'static, Result<Info, Error>>;
    fn fetch(
        &self,
        shared: Arc<Shared>,
        request: Fetch,
    ) -> BoxFuture<'static, Result<Fetched, Error>>;
}

struct Ops_<C>(C);

impl<C: Connection> Ops for Ops_<C> {
    fn close(&self, code: ErrorCode, reason: &str) {
        self.0.close(code, reason);
    }

    fn subscribe(
        &self,
        shared: Arc<Shared>,
        message: Subscribe,
        unused: BoxFuture<'static, ()>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(subscribe::run_subscribe(
            self.0.clone(),
            shared,
            message,
            unused,
        ))
    }

    fn announced(
        &self,
        shared: Arc<Shared>,
        id: u64,
        prefix: Path,
        unused: BoxFuture<'static, ()>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(subscribe::run_announced(
            self.0.clone(),
            shared,
            id,
            prefix,
            unused,
        ))
    }

    fn info(&self, shared: Arc<Shared>, path: Path) -> BoxFuture<'static, Result<Info, Error>> {
        Box::pin(subscribe::request_info(self.0.clone(), shared, path))
    }

    fn fetch(
        &self,
        shared: Arc<Shared>,
        request: Fetch,
    ) -> BoxFuture<'static, Result<Fetched, Error>> {
        Box::pin(fetch::request_fetch(self.0.clone(), shared, request))
    }
}

impl Session {
    /// Connects as the client over `conn` with the default [`SessionConfig`]: opens the
    /// session stream and runs the handshake (WIRE.md §4.2).
    ///
    /// Fails if the server refuses the version (its reset, code 9, arrives as
    /// [`Error::Transport`]), answers with another version ([`Error::Version`]), or the
    /// connection fails. On failure the session stream is reset and stopped with the
    /// error's code; closing the connection is left to the caller.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropping the future abandons the handshake half-way (the session
    /// stream is reset); close the connection then.
    pub async fn connect<C: Connection>(conn: C) -> Result<(Session, SessionDriver), Error> {
        Self::connect_with(conn, SessionConfig::default()).await
    }

    /// [`connect`](Self::connect) with a configuration.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe, as [`connect`](Self::connect).
    pub async fn connect_with<C: Connection>(
        conn: C,
        config: SessionConfig,
    ) -> Result<(Session, SessionDriver), Error> {
        let (send, recv) = conn.open_bi().await?;
        let mut send = Sender::new(send);
        let mut reader = Reader::new(recv, config.reader());
        send.encode(&StreamBi::Session);
        send.encode(&SessionClient {
            versions: vec![Version::CURRENT],
            extensions: setup_extensions(&conn, &config),
        });
        let result = match send.flush().await {
            Ok(()) => reader.required::<SessionServer>().await,
            Err(err) => Err(err),
        };
        match result {
            Ok(server) if server.version == Version::CURRENT => {
                Ok(Self::start(conn, config, send, reader, server.extensions))
            }
            Ok(server) => {
                abort(&mut send, &mut reader, ErrorCode::VERSION);
                Err(Error::Version(vec![server.version]))
            }
            Err(err) => {
                abort(&mut send, &mut reader, err.code());
                Err(err)
            }
        }
    }

    /// Accepts a session as the server over `conn` with the default [`SessionConfig`]:
    /// takes the first bidirectional stream, which must be the session stream, and answers
    /// the handshake (WIRE.md §4.2).
    ///
    /// A client that does not offer version `0xff0bad02` gets its session stream reset and
    /// stopped with code 9, and this fails with [`Error::Version`]. A first stream of
    /// another type fails with [`Error::UnexpectedStream`] (nothing is sent).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe until the client's first stream is accepted; after that, dropping the
    /// future abandons the handshake (the stream is reset).
    pub async fn accept<C: Connection>(conn: C) -> Result<(Session, SessionDriver), Error> {
        Self::accept_with(conn, SessionConfig::default()).await
    }

    /// [`accept`](Self::accept) with a configuration.
    ///
    /// # Cancel safety
    ///
    /// As [`accept`](Self::accept).
    pub async fn accept_with<C: Connection>(
        conn: C,
        config: SessionConfig,
    ) -> Result<(Session, SessionDriver), Error> {
        let (send, recv) = conn.accept_bi().await?;
        let mut send = Sender::new(send);
        let mut reader = Reader::new(recv, config.reader());
        let client = async {
            match reader.required::<StreamBi>().await? {
                StreamBi::Session => reader.required::<SessionClient>().await,
                _ => Err(Error::UnexpectedStream),
            }
        }
        .await;
        let client = match client {
            Ok(client) => client,
            Err(Error::UnexpectedStream) => {
                // WIRE.md §4.2 step 2: nothing is written, the stream is just dropped.
                send.finish();
                return Err(Error::UnexpectedStream);
            }
            Err(err) => {
                abort(&mut send, &mut reader, err.code());
                return Err(err);
            }
        };
        if !client.versions.contains(&Version::CURRENT) {
            // WIRE.md §4.2 step 3: reset and stop the session stream with 9.
            abort(&mut send, &mut reader, ErrorCode::VERSION);
            return Err(Error::Version(client.versions));
        }
        let server = SessionServer {
            version: Version::CURRENT,
            extensions: setup_extensions(&conn, &config),
        };
        if let Err(err) = send.write_message(&server).await {
            abort(&mut send, &mut reader, err.code());
            return Err(err);
        }
        Ok(Self::start(conn, config, send, reader, client.extensions))
    }

    fn start<C: Connection>(
        conn: C,
        config: SessionConfig,
        send: Sender<C::SendStream>,
        reader: Reader<C::RecvStream>,
        peer_extensions: Extensions,
    ) -> (Session, SessionDriver) {
        let shared = Arc::new(Shared::new(
            config,
            peer_extensions,
            Box::new(Ops_(conn.clone())),
            Box::new(send),
        ));
        let tasks = FuturesUnordered::new();
        tasks.push(Box::pin(run_session_stream(shared.clone(), reader)) as BoxFuture<'static, ()>);
        tasks.push(Box::pin(accept_bi(conn.clone(), shared.clone())));
        tasks.push(Box::pin(accept_uni(conn.clone(), shared.clone())));
        tasks.push(Box::pin(watch_closed(conn, shared.clone())));
        let session = Session {
            handle: Arc::new(Handle {
                shared: shared.clone(),
            }),
        };
        let driver = SessionDriver {
            shared,
            tasks,
            done: false,
        };
        (session, driver)
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Publishes a track: the peer can subscribe to it by its path, and it is announced
    /// (WIRE.md §7.7) until its producer ends, when it is announced as ended and no longer
    /// found.
    ///
    /// [`moq_model::Error::Duplicate`] if a track with that path is published and live;
    /// the session's error if it is closed.
    pub fn publish(&self, track: TrackConsumer) -> Result<(), Error> {
        let shared = self.shared();
        let path = track.path().clone();
        let generation = {
            let mut state = shared.lock();
            if let Some(err) = &state.closed {
                return Err(err.clone());
            }
            // A track whose producer already ended may still be listed (its watcher has not
            // run yet): it can be replaced.
            if state
                .publish
                .tracks
                .get(&path)
                .is_some_and(|published| !published.value.is_closed())
            {
                return Err(moq_model::Error::Duplicate.into());
            }
            let generation = state.publish.next_generation;
            state.publish.next_generation += 1;
            state.publish.tracks.insert(
                path.clone(),
                Published {
                    generation,
                    value: track.clone(),
                },
            );
            state.publish.announced.announce(path.clone());
            generation
        };
        let watcher = shared.clone();
        shared.spawn(Box::pin(async move {
            let _ = track.closed().await;
            drop(track);
            let mut state = watcher.lock();
            if state
                .publish
                .tracks
                .get(&path)
                .is_some_and(|p| p.generation == generation)
            {
                state.publish.tracks.remove(&path);
                state.publish.announced.unannounce(&path);
            }
        }));
        Ok(())
    }

    /// Publishes a broadcast: the peer can subscribe to any of its tracks (the broadcast's
    /// path joined with the track's name). The broadcast's own path is announced while its
    /// producer lives (its tracks are not announced one by one).
    ///
    /// [`moq_model::Error::Duplicate`] if a broadcast with that path is published.
    pub fn publish_broadcast(&self, broadcast: BroadcastConsumer) -> Result<(), Error> {
        let shared = self.shared();
        let path = broadcast.path().clone();
        let generation = {
            let mut state = shared.lock();
            if let Some(err) = &state.closed {
                return Err(err.clone());
            }
            if state.publish.broadcasts.contains_key(&path) {
                return Err(moq_model::Error::Duplicate.into());
            }
            let generation = state.publish.next_generation;
            state.publish.next_generation += 1;
            state.publish.broadcasts.insert(
                path.clone(),
                Published {
                    generation,
                    value: broadcast.clone(),
                },
            );
            state.publish.announced.announce(path.clone());
            generation
        };
        let watcher = shared.clone();
        shared.spawn(Box::pin(async move {
            broadcast.closed().await;
            let mut state = watcher.lock();
            if state
                .publish
                .broadcasts
                .get(&path)
                .is_some_and(|p| p.generation == generation)
            {
                state.publish.broadcasts.remove(&path);
                state.publish.announced.unannounce(&path);
            }
        }));
        Ok(())
    }

    /// Announces the paths `source` covers (e.g. what a relay can route) to the peer's
    /// announce streams, as they change, besides what [`publish`](Self::publish) announces.
    /// A path several of them announce is reported once, until the last of them ends it.
    /// When the source's producer ends, its paths end.
    ///
    /// Nothing is queued for a peer that does not ask: each announce stream the peer opens
    /// makes its own consumers of the sources, under its prefix ([`AnnouncedSource`]). An
    /// [`AnnouncedConsumer`] converts into the source of what it follows.
    pub fn announce(&self, source: impl Into<AnnouncedSource>) {
        let mut state = self.shared().lock();
        state.publish.announce_sources.push(source.into());
        let wakers: Vec<Waker> = state.publish.source_waiters.values().cloned().collect();
        drop(state);
        for waker in wakers {
            waker.wake();
        }
    }

    /// Answers the peer's subscriptions to paths nobody published here by asking `router`
    /// (WIRE.md §4.4 step 3): the request carries the path and the subscriber's priority,
    /// order and expiry; a rejection resets the peer's subscription with the error's code.
    /// Replaces a router set before.
    pub fn route(&self, router: RouterConsumer) {
        self.shared().lock().publish.router = Some(router);
    }

    /// Subscribes to `track` (its path, and our priority, group order and expiry), and
    /// returns a consumer at once; groups arrive as the publisher sends them.
    ///
    /// Subscribing to a path we already subscribe to shares that subscription (a new
    /// consumer of it, from its latest group). When the last consumer of a subscription is
    /// dropped, it ends (WIRE.md §4.4: FIN and STOP_SENDING 0). Failures (the publisher
    /// does not know the path: [`moq_model::Error::NotFound`]; a reset with its code; the
    /// session closed) reach the consumers as errors. Past
    /// [`SessionConfig::max_subscriptions`] the track is aborted with
    /// [`moq_model::Error::BoundsExceeded`]. A shared subscription keeps the priority, order
    /// and expiry of the first `track`; [`update_subscription`](Self::update_subscription)
    /// changes them.
    pub fn subscribe(&self, track: Track) -> TrackConsumer {
        let shared = self.shared();
        let mut state = shared.lock();
        if let Some(err) = &state.closed {
            let error = err.to_model();
            drop(state);
            let (producer, consumer) = track.produce();
            producer.abort(error);
            return consumer;
        }
        if let Some(sub) = state
            .subscribe
            .sub_paths
            .get(&track.path)
            .and_then(|id| state.subscribe.subs.get(id))
        {
            return sub.producer.consume();
        }
        if state.subscribe.subs.len() >= shared.config.max_subscriptions {
            drop(state);
            let (producer, consumer) = track.produce();
            producer.abort(moq_model::Error::BoundsExceeded);
            return consumer;
        }
        // WIRE.md §7.1: ids from 0 upward, never reused; registered before Subscribe is
        // sent, so group streams that overtake the Info are accepted (§7.3).
        let id = state.subscribe.next_id;
        state.subscribe.next_id += 1;
        let message = Subscribe {
            id,
            path: track.path.clone(),
            priority: track.priority,
            group_order: track.group_order,
            group_expires: track.group_expires,
            group_min: None,
            group_max: None,
        };
        let (producer, consumer) = track.produce();
        let unused = Box::pin(producer.unused_owned());
        state.subscribe.sub_paths.insert(message.path.clone(), id);
        state.subscribe.subs.insert(
            id,
            Sub {
                path: message.path.clone(),
                producer,
                groups: 0,
                info: None,
                update: None,
                update_waker: None,
            },
        );
        drop(state);
        let task = shared.ops.subscribe(shared.clone(), message, unused);
        shared.spawn(task);
        consumer
    }

    /// Follows the paths the peer announces under `prefix` (the empty path for all): opens
    /// an announce stream (WIRE.md §4.3) and returns its consumer at once.
    ///
    /// The stream ends when the last consumer is dropped. A peer that repeats an active
    /// path or ends an unknown one fails the consumers with
    /// [`moq_model::Error::Duplicate`] / [`moq_model::Error::NotFound`] (the stream is reset
    /// with 12 / 13); one that announces more than [`SessionConfig::max_announced`] paths,
    /// with [`moq_model::Error::BoundsExceeded`].
    pub fn announced(&self, prefix: impl Into<Path>) -> AnnouncedConsumer {
        let prefix = prefix.into();
        let shared = self.shared();
        let producer = AnnouncedProducer::new();
        let consumer = producer.consume(prefix.clone());
        let mut state = shared.lock();
        if let Some(err) = &state.closed {
            let error = err.to_model();
            drop(state);
            producer.abort(error);
            return consumer;
        }
        let id = state.subscribe.next_announced;
        state.subscribe.next_announced += 1;
        let unused = Box::pin(producer.unused_owned());
        state.subscribe.announced_in.insert(id, producer);
        drop(state);
        let task = shared.ops.announced(shared.clone(), id, prefix, unused);
        shared.spawn(task);
        consumer
    }

    /// Asks the peer for its description of the track at `path` (WIRE.md §4.6): priority,
    /// group order, expiry and latest group. [`Error::Transport`] with a reset code 13 if
    /// the peer does not know it.
    ///
    /// Only send this to peers of this implementation or that answer Info requests
    /// (0.5.0 answers them).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe in that dropping the future abandons the request (its stream is reset).
    pub async fn info(&self, path: impl Into<Path>) -> Result<Info, Error> {
        let shared = self.shared().clone();
        let request = shared.ops.info(shared.clone(), path.into());
        request.await
    }

    /// Asks the peer for part of one group (WIRE.md §4.7, with the draft-02 meaning): opens
    /// a Fetch stream, sends `request` (track path, the priority of the reply, group
    /// sequence, byte offset), finishes our side, and returns the reply to read.
    ///
    /// The reply is the group's stream contents after its Group header, i.e. its frame
    /// headers and payloads, from byte `offset` on: a caller that received `offset` bytes of
    /// a group after its header (e.g. on a group stream that was cut short) can resume it
    /// there. A group that is still live is followed until it ends; then the reply ends
    /// ([`Fetched::read_chunk`] returns `None`). A peer that knows no such track or group
    /// resets the stream with 13, which [`Fetched::read_chunk`] reports as
    /// [`Error::Transport`] with [`TransportError::StreamReset`] and
    /// [`ErrorCode::NOT_FOUND`], as [`info`](Self::info) does. The publisher of this crate
    /// answers from what its track still holds; a path it does not publish itself is asked
    /// of its router, as a subscription would be (a relay answers from its cache).
    ///
    /// Only send this to peers of this implementation: the published `moq-transfork`
    /// releases 0.4 to 0.8 do not implement Fetch (0.5.0 answers with FIN and no data,
    /// which reads as an empty reply, WIRE.md §4.7).
    ///
    #[cfg_attr(
        feature = "memory",
        doc = r#"
With the in-memory transport (feature `memory`):

```
# #[tokio::main(flavor = "current_thread")]
# async fn main() -> Result<(), Box<dyn std::error::Error>> {
# use moq_model::Track;
# use moq_session::transport::memory;
# let (client, server) = memory::pair(memory::Config::default());
# let (connected, accepted) = tokio::join!(Session::connect(client), Session::accept(server));
# let (publisher, driver) = connected?;
# tokio::spawn(driver);
# let (session, driver) = accepted?;
# tokio::spawn(driver);
use moq_proto::Fetch;
use moq_session::Session;

// The peer publishes ["room", "clock"] and wrote group 0: one frame, "12:00".
# let (mut track, consumer) = Track::new(["room", "clock"]).produce();
# publisher.publish(consumer)?;
# let mut group = track.append_group();
# group.write_frame("12:00")?;
# group.finish();
let request = Fetch { path: ["room", "clock"].into(), priority: 0, group: 0, offset: 2 };
let mut reply = session.fetch(request).await?;
// The frame header (size 5) and "1" were skipped.
assert_eq!(reply.read_all(1024).await?, "2:00");
# Ok(())
# }
```
"#
    )]
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe in that dropping the future abandons the request (its stream is reset).
    pub async fn fetch(&self, request: Fetch) -> Result<Fetched, Error> {
        let shared = self.shared().clone();
        let request = shared.ops.fetch(shared.clone(), request);
        request.await
    }

    /// Closes the session with `code` (reason text: the code's name). Every subscription
    /// ends with the matching error; the driver completes.
    pub fn close(&self, code: ErrorCode) {
        let reason = code.name().unwrap_or("closed");
        self.close_with_reason(code, reason);
    }

    /// [`close`](Self::close) with a reason text of our own, which the peer receives with
    /// the code in the connection close (e.g. why access was refused).
    pub fn close_with_reason(&self, code: ErrorCode, reason: &str) {
        self.shared().close(Error::Closed(code), code, reason);
    }

    /// The extensions the peer sent in its setup message (`SessionClient` when we
    /// accepted, `SessionServer` when we connected), e.g. a raw-QUIC client's root path
    /// and token ([`Extensions::ROOT`], [`Extensions::JWT`]).
    pub fn peer_extensions(&self) -> &Extensions {
        &self.shared().peer_extensions
    }

    /// Waits until the session has ended and returns why: [`Error::Closed`] when it was
    /// closed locally, otherwise the peer's close, the lost connection, or the session
    /// stream's end.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only observes.
    pub async fn closed(&self) -> Error {
        let shared = self.shared();
        poll_fn(|cx| {
            let mut state = shared.lock();
            match &state.closed {
                Some(err) => Poll::Ready(err.clone()),
                None => {
                    if !state.closed_wakers.iter().any(|w| w.will_wake(cx.waker())) {
                        state.closed_wakers.push(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// What the session holds right now.
    pub fn stats(&self) -> SessionStats {
        let shared = self.shared();
        let state = shared.lock();
        SessionStats {
            subscriptions: state.subscribe.subs.len(),
            serving: state.publish.serving,
            announce_streams: state.publish.announce_streams,
            announced: state.subscribe.announced_in.len(),
            group_streams_in: state.subscribe.group_streams_in,
            group_streams_out: state.publish.group_streams_out,
            published: state.publish.tracks.len() + state.publish.broadcasts.len(),
            tasks: shared.tasks.load(Ordering::Relaxed),
            next_subscribe_id: state.subscribe.next_id,
            group_drops_received: state.subscribe.group_drops_received,
            group_drops_sent: state.publish.group_drops_sent,
            groups_received: state.subscribe.groups_received,
            frames_received: state.subscribe.frames_received,
            payload_bytes_received: state.subscribe.payload_bytes_received,
            groups_sent: state.publish.groups_sent,
            frames_sent: state.publish.frames_sent,
            payload_bytes_sent: state.publish.payload_bytes_sent,
            groups_skipped: state.publish.groups_skipped,
            groups_dropped: state.publish.groups_dropped,
        }
    }

    /// Changes our subscription at `track.path` to `track`'s priority, group order and expiry
    /// by sending a SubscribeUpdate (WIRE.md §5.7); `false` if we have no subscription there.
    ///
    /// The subscription is shared by every consumer [`subscribe`](Self::subscribe) handed
    /// out for that path on this session, so the change is for all of them: the last call
    /// wins, and only the latest of calls made before the task gets to write is sent.
    /// Our publisher applies it to the groups it sends from then on and to those in flight.
    ///
    /// The message has the five fields 0.5.0's decoder reads (`group_min` and `group_max`
    /// none). 0.4 to 0.8 publishers read it and ignore it: a change only takes effect with
    /// publishers that apply updates, like ours.
    pub fn update_subscription(&self, track: &Track) -> bool {
        let mut state = self.shared().lock();
        let Some(sub) = state
            .subscribe
            .sub_paths
            .get(&track.path)
            .copied()
            .and_then(|id| state.subscribe.subs.get_mut(&id))
        else {
            return false;
        };
        sub.update = Some(SubscribeUpdate {
            priority: SubscribeUpdate::priority_of(track.priority),
            group_order: track.group_order,
            group_expires: track.group_expires,
            group_min: None,
            group_max: None,
        });
        if let Some(waker) = sub.update_waker.take() {
            waker.wake();
        }
        true
    }

    /// The publisher's description of the track we subscribe to at `path` (its Info), once
    /// it arrived; `None` before, or if there is no such subscription.
    pub fn subscription_info(&self, path: &Path) -> Option<Info> {
        let state = self.shared().lock();
        let id = state.subscribe.sub_paths.get(path)?;
        state.subscribe.subs.get(id)?.info.clone()
    }
}

/// What this side sends in its setup message: the transport's extensions, then the
/// configured ones (which replace the transport's with the same id).
fn setup_extensions<C: Connection>(conn: &C, config: &SessionConfig) -> Extensions {
    let mut extensions = conn.setup_extensions();
    for (id, payload) in config.extensions.iter() {
        extensions.insert(id, payload.clone());
    }
    extensions
}

impl SessionDriver {
    /// Ends every subscription with the session's error and drops every stream.
    fn shutdown(&mut self, error: &Error) {
        let (subs, announced, spawn) = {
            let mut state = self.shared.lock();
            state.subscribe.sub_paths.clear();
            state.publish.tracks.clear();
            state.publish.broadcasts.clear();
            state.publish.router = None;
            state.publish.announce_sources.clear();
            state.publish.source_waiters.clear();
            (
                std::mem::take(&mut state.subscribe.subs),
                std::mem::take(&mut state.subscribe.announced_in),
                std::mem::take(&mut state.spawn),
            )
        };
        let model = error.to_model();
        // Abort the tracks before dropping the tasks, so that groups being received end
        // with the error rather than cleanly.
        for (_, sub) in subs {
            sub.producer.abort(model);
        }
        for (_, producer) in announced {
            producer.abort(model);
        }
        drop(spawn);
        self.tasks.clear();
        self.shared.tasks.store(0, Ordering::Relaxed);
    }
}

impl Future for SessionDriver {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(match this.shared.closed_error() {
                Some(Error::Closed(_)) | None => Ok(()),
                Some(err) => Err(err),
            });
        }
        this.shared.driver.register(cx.waker());
        loop {
            let (closed, spawn) = {
                let mut state = this.shared.lock();
                (state.closed.clone(), std::mem::take(&mut state.spawn))
            };
            if let Some(error) = closed {
                drop(spawn);
                this.shutdown(&error);
                this.done = true;
                return Poll::Ready(match error {
                    Error::Closed(_) => Ok(()),
                    err => Err(err),
                });
            }
            for task in spawn {
                this.tasks.push(task);
            }
            this.shared.tasks.store(this.tasks.len(), Ordering::Relaxed);
            match this.tasks.poll_next_unpin(cx) {
                Poll::Ready(Some(())) => continue,
                Poll::Ready(None) | Poll::Pending => {
                    let idle = {
                        let state = this.shared.lock();
                        state.spawn.is_empty() && state.closed.is_none()
                    };
                    if idle {
                        this.shared.tasks.store(this.tasks.len(), Ordering::Relaxed);
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

impl Drop for SessionDriver {
    fn drop(&mut self) {
        if !self.done {
            self.shared
                .close(Error::Closed(ErrorCode::CANCEL), ErrorCode::CANCEL, "");
            let error = Error::Closed(ErrorCode::CANCEL);
            self.shutdown(&error);
        }
    }
}

/// The session stream after the handshake (WIRE.md §4.2): we never write on it again (0.4
/// to 0.8 peers parse anything there as Info and die on most bytes), read and ignore
/// well-formed Info messages, and close the session when it ends: FIN → code 0, reset → 4,
/// decode error → 5. The send half is held, unfinished, in [`Shared`].
async fn run_session_stream<R: RecvStream>(shared: Arc<Shared>, mut reader: Reader<R>) {
    let error = loop {
        match reader.next::<Info>().await {
            Ok(Some(_)) => continue,
            Ok(None) => break Error::Cancelled,
            Err(err) => break err,
        }
    };
    match error {
        Error::Cancelled => shared.close(Error::Cancelled, ErrorCode::CANCEL, "cancelled"),
        err => shared.fail(err),
    }
}

/// Accepts the peer's bidirectional streams and serves each as a task.
async fn accept_bi<C: Connection>(conn: C, shared: Arc<Shared>) {
    while let Ok((send, recv)) = conn.accept_bi().await {
        let task = publish::run_bi(conn.clone(), shared.clone(), send, recv);
        shared.spawn(Box::pin(task));
    }
}

/// Accepts the peer's unidirectional (group) streams and reads each as a task.
async fn accept_uni<C: Connection>(conn: C, shared: Arc<Shared>) {
    while let Ok(recv) = conn.accept_uni().await {
        subscribe::spawn_group(&shared, recv);
    }
}

/// Ends the session when the connection ends.
async fn watch_closed<C: Connection>(conn: C, shared: Arc<Shared>) {
    let err: TransportError = conn.closed().await;
    let error = match &err {
        TransportError::ClosedLocally { code, .. } => Error::Closed(*code),
        _ => Error::Transport(err),
    };
    let code = error.code();
    shared.close(error, code, "");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Session>();
        send::<SessionDriver>();
    }
}
