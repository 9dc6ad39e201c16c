//! An in-memory transport: a connected pair of [`Connection`]s in one process.
//!
//! It behaves like QUIC where the session can tell the difference, and lets tests shape the
//! link and inject faults:
//!
//! * **Streams** get QUIC stream ids (client-initiated bidirectional `0, 4, 8, ...`, server
//!   bidirectional `1, 5, ...`, client unidirectional `2, 6, ...`, server unidirectional
//!   `3, 7, ...`). As in QUIC, the peer learns of a stream when the first data, FIN,
//!   RESET_STREAM or STOP_SENDING for it arrives, not when it is opened.
//! * **Flow control**: each direction of each stream has a receive window
//!   ([`Config::stream_window`]). Bytes written and not yet read by the peer (queued on the
//!   link, in flight, or waiting in the peer's receive buffer) never exceed it; a writer
//!   waits until the reader consumes. Credit returns as soon as the reader reads (no delay).
//! * **Stream limits**: each side may have at most [`Config::max_streams_bi`] /
//!   [`Config::max_streams_uni`] streams open at once (QUIC MAX_STREAMS); further opens wait.
//!   A stream stops counting when every direction of it is over at the receiver: read to
//!   the end, reset, or stopped.
//! * **The link** ([`Config::bandwidth`], [`Config::delay`]): each direction has a
//!   transmitter that sends packets of at most [`Config::packet_size`] bytes, one after the
//!   other, each taking `len / bandwidth`, and delivers them `delay` later, in order. When
//!   several streams have data waiting, the one with the highest priority
//!   ([`SendStream::set_priority`](crate::transport::SendStream::set_priority)) goes next;
//!   equal priorities take turns packet by packet. As in quinn, a stream waits in the
//!   transmitter's queue with the priority it had when it joined it (when data arrived for
//!   a stream with none queued, or after each of its packets): a priority change reaches
//!   data already queued only once the stream's next packet is sent.
//! * **A bloated bottleneck** ([`Config::buffer`]): the transmitter picks packets that much
//!   link time ahead of the wire, and the picked ones wait in a first-in, first-out queue.
//!   This is a congestion controller that keeps a deep queue at the bottleneck full (quinn
//!   behind a 200 ms drop-tail queue, `docs/benchmarks.md`): priorities decide only what
//!   enters the queue, not what leaves it, and every packet waits its turn in it.
//!   Control signals (RESET_STREAM, STOP_SENDING, CONNECTION_CLOSE) take effect at once,
//!   without delay, and may overtake data, as QUIC allows.
//! * **Zero-copy**: chunks move as [`Bytes`]; packets are slices of the written chunks.
//! * **Faults**: [`Connection::reset_stream`] and [`Connection::stop_stream`] act on a
//!   stream by id on behalf of one side (the test needs no stream handle, e.g. when a
//!   session owns it); [`Connection::lose`] drops the connection under both sides.
//!   [`Connection::stats`] counts what a side did.
//!
//! An unshaped link (no bandwidth limit, no delay: the default) delivers synchronously and
//! needs no runtime. A shaped link runs one tokio task per direction, so [`pair`] must then
//! be called inside a tokio runtime with the time driver enabled. Time is tokio's, so under
//! `#[tokio::test(start_paused = true)]` bandwidth and delay are exact and take no wall
//! time. (Tokio's timers tick in milliseconds: the schedule itself is exact, but a packet
//! due between two ticks is handed over at the next one.)
//!
//! Implicit ends: a dropped [`SendStream`] is finished, a [`RecvStream`] dropped before its
//! end stops the stream with [`ErrorCode::CANCEL`], and when every clone of one side's
//! [`Connection`] is dropped that side closes the connection with [`ErrorCode::CANCEL`] and
//! an empty reason, even if streams are still held.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::time::Duration;
//! use bytes::Bytes;
//! use moq_session::transport::memory::{self, Config};
//! use moq_session::transport::{Connection, RecvStream, SendStream};
//!
//! // 1 MB/s with 10 ms one-way delay.
//! let config = Config::default().bandwidth(1_000_000).delay(Duration::from_millis(10));
//! let (client, server) = memory::pair(config);
//!
//! let start = tokio::time::Instant::now();
//! let mut send = client.open_uni().await.unwrap();
//! send.write(Bytes::from(vec![0u8; 10_000])).await.unwrap();
//! send.finish().unwrap();
//!
//! let mut recv = server.accept_uni().await.unwrap();
//! let mut total = 0;
//! while let Some(chunk) = recv.read().await.unwrap() {
//!     total += chunk.len();
//! }
//! assert_eq!(total, 10_000);
//! // 10 ms to transmit, 10 ms to arrive (the clock is tokio's paused one).
//! assert_eq!(start.elapsed(), Duration::from_millis(20));
//! assert_eq!(client.stats().bytes_delivered, 10_000);
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use moq_proto::ErrorCode;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::TransportError;

/// The shape of a memory connection pair; the same in both directions.
///
/// ```
/// use std::time::Duration;
/// use moq_session::transport::memory::Config;
///
/// let config = Config::default()
///     .stream_window(64 * 1024)
///     .max_streams_uni(10)
///     .bandwidth(125_000) // 1 Mbit/s
///     .delay(Duration::from_millis(25));
/// assert_eq!(config.bandwidth, Some(125_000));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Bytes a stream direction may have written and not yet read by the receiver.
    /// Default 1 MiB. Must be at least 1.
    pub stream_window: usize,
    /// Bidirectional streams each side may have open at once. Default 100 (quinn's).
    pub max_streams_bi: u64,
    /// Unidirectional streams each side may have open at once. Default 100 (quinn's).
    pub max_streams_uni: u64,
    /// Link rate in bytes per second, per direction; `None` (the default) is unlimited.
    pub bandwidth: Option<u64>,
    /// One-way delay of the link. Default zero.
    pub delay: Duration,
    /// The largest packet the link sends at once: the unit of priority scheduling.
    /// Default 1200. Must be at least 1.
    pub packet_size: usize,
    /// Link time the transmitter may pick packets ahead of the wire (see the module docs,
    /// "A bloated bottleneck"); needs a [`bandwidth`](Self::bandwidth). Default zero: a
    /// packet is picked, by priority, when the wire is free.
    pub buffer: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            stream_window: 1 << 20,
            max_streams_bi: 100,
            max_streams_uni: 100,
            bandwidth: None,
            delay: Duration::ZERO,
            packet_size: 1200,
            buffer: Duration::ZERO,
        }
    }
}

impl Config {
    /// Sets [`stream_window`](Self::stream_window) (clamped to at least 1).
    pub fn stream_window(mut self, bytes: usize) -> Self {
        self.stream_window = bytes.max(1);
        self
    }

    /// Sets [`max_streams_bi`](Self::max_streams_bi).
    pub fn max_streams_bi(mut self, streams: u64) -> Self {
        self.max_streams_bi = streams;
        self
    }

    /// Sets [`max_streams_uni`](Self::max_streams_uni).
    pub fn max_streams_uni(mut self, streams: u64) -> Self {
        self.max_streams_uni = streams;
        self
    }

    /// Sets [`bandwidth`](Self::bandwidth) in bytes per second (clamped to at least 1).
    pub fn bandwidth(mut self, bytes_per_second: u64) -> Self {
        self.bandwidth = Some(bytes_per_second.max(1));
        self
    }

    /// Sets [`delay`](Self::delay).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets [`packet_size`](Self::packet_size) (clamped to at least 1).
    pub fn packet_size(mut self, bytes: usize) -> Self {
        self.packet_size = bytes.max(1);
        self
    }

    /// Sets [`buffer`](Self::buffer).
    pub fn buffer(mut self, ahead: Duration) -> Self {
        self.buffer = ahead;
        self
    }

    fn shaped(&self) -> bool {
        self.bandwidth.is_some() || !self.delay.is_zero()
    }
}

/// What one side of a memory connection did, as counted so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Bytes accepted by writes on this side's send streams.
    pub bytes_written: u64,
    /// Of those, bytes that reached the peer's receive buffers.
    pub bytes_delivered: u64,
    /// Bidirectional streams this side opened.
    pub bi_opened: u64,
    /// Unidirectional streams this side opened.
    pub uni_opened: u64,
    /// RESET_STREAMs this side sent (explicit or injected).
    pub resets: u64,
    /// STOP_SENDINGs this side sent (explicit, injected, or by dropping a receive stream).
    pub stops: u64,
    /// The most bytes any one of this side's send streams ever had written and not yet read
    /// by the peer; never more than [`Config::stream_window`].
    pub max_stream_buffered: usize,
}

/// Creates a connected pair: `(client, server)`.
///
/// The client opens even-numbered streams, the server odd ones.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use bytes::Bytes;
/// use moq_session::transport::memory::{self, Config};
/// use moq_session::transport::{Connection, RecvStream, SendStream};
///
/// let (client, server) = memory::pair(Config::default());
/// let (mut request, mut response) = client.open_bi().await.unwrap();
/// request.write(Bytes::from_static(b"ping")).await.unwrap();
///
/// let (mut reply, mut incoming) = server.accept_bi().await.unwrap();
/// assert_eq!(incoming.read().await.unwrap().as_deref(), Some(&b"ping"[..]));
/// reply.write(Bytes::from_static(b"pong")).await.unwrap();
/// drop(reply); // dropping a send stream finishes it
///
/// assert_eq!(response.read().await.unwrap().as_deref(), Some(&b"pong"[..]));
/// assert_eq!(response.read().await.unwrap(), None);
/// assert_eq!((request.id(), client.stats().bi_opened), (0, 1));
/// # }
/// ```
///
/// # Panics
///
/// If the link is shaped ([`Config::bandwidth`] or [`Config::delay`] set) and this is
/// called outside a tokio runtime (the link runs as tasks). The runtime also needs its
/// time driver, or the link tasks panic when they first sleep.
pub fn pair(config: Config) -> (Connection, Connection) {
    let shaped = config.shaped();
    let shared = Arc::new(Shared {
        config,
        state: Mutex::new(State {
            shaped,
            ..State::default()
        }),
        links: [Notify::new(), Notify::new()],
    });
    if shaped {
        for side in [CLIENT, SERVER] {
            tokio::spawn(run_link(shared.clone(), side));
        }
    }
    let connect = |side| Connection {
        inner: Arc::new(ConnectionInner {
            shared: shared.clone(),
            side,
        }),
    };
    (connect(CLIENT), connect(SERVER))
}

/// One side of an in-memory connection. Cheap to clone; clones share the side.
///
/// Besides the [`transport::Connection`](crate::transport::Connection) trait, it has test
/// hooks: [`stats`](Self::stats), [`lose`](Self::lose), [`reset_stream`](Self::reset_stream)
/// and [`stop_stream`](Self::stop_stream).
///
/// # Drop
///
/// Dropping the last clone closes the connection with [`ErrorCode::CANCEL`] and an empty
/// reason; the peer's [`closed`](crate::transport::Connection::closed) sees
/// [`TransportError::ClosedByPeer`].
///
/// # Example
///
/// Faults injected from the test side, by stream id:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use bytes::Bytes;
/// use moq_proto::ErrorCode;
/// use moq_session::transport::memory::{self, Config};
/// use moq_session::transport::{Connection, RecvStream, SendStream, TransportError};
///
/// let (client, server) = memory::pair(Config::default());
/// let mut send = client.open_uni().await.unwrap();
/// send.write(Bytes::from_static(b"group")).await.unwrap();
/// let mut recv = server.accept_uni().await.unwrap();
///
/// // The server stops the stream (as if whoever holds `recv` had called `stop`).
/// assert!(server.stop_stream(send.id(), ErrorCode::NOT_FOUND));
/// assert_eq!(send.stopped().await, Ok(Some(ErrorCode::NOT_FOUND)));
/// assert_eq!(server.stats().stops, 1);
///
/// // Then the network goes away under both sides.
/// client.lose("unplugged");
/// let lost = TransportError::ConnectionLost("unplugged".into());
/// assert_eq!(server.closed().await, lost);
/// assert_eq!(recv.read().await, Err(lost));
/// # }
/// ```
#[derive(Clone)]
pub struct Connection {
    inner: Arc<ConnectionInner>,
}

struct ConnectionInner {
    shared: Arc<Shared>,
    side: Side,
}

impl Drop for ConnectionInner {
    fn drop(&mut self) {
        // WIRE.md §2.4: all connection handles dropped → close with code 0, empty reason.
        self.shared
            .with_state(|state| state.close(self.side, ErrorCode::CANCEL, String::new()));
        self.shared.notify_links();
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("memory::Connection")
            .field("side", &side_name(self.inner.side))
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// What this side did so far.
    pub fn stats(&self) -> Stats {
        let side = self.inner.side;
        self.inner
            .shared
            .with_state(|state| state.sides[side].stats.clone())
    }

    /// Loses the connection: every pending and later operation on both sides fails with
    /// [`TransportError::ConnectionLost`] carrying `reason`. Does nothing if the connection
    /// already ended.
    pub fn lose(&self, reason: &str) {
        self.inner
            .shared
            .with_state(|state| state.end(End::Lost(reason.to_owned())));
        self.inner.shared.notify_links();
    }

    /// Resets this side's sending half of stream `id` with `code`, as if its
    /// [`SendStream::reset`](crate::transport::SendStream::reset) had been called (whoever
    /// holds the handle). Returns whether such a stream half exists.
    pub fn reset_stream(&self, id: u64, code: ErrorCode) -> bool {
        let key = HalfKey {
            id,
            from: self.inner.side,
        };
        self.inner
            .shared
            .with_state(|state| state.halves.contains_key(&key) && state.reset(key, code))
    }

    /// Stops this side's receiving half of stream `id` with `code`, as if its
    /// [`RecvStream::stop`](crate::transport::RecvStream::stop) had been called (whoever
    /// holds the handle). Returns whether such a stream half exists.
    pub fn stop_stream(&self, id: u64, code: ErrorCode) -> bool {
        let key = HalfKey {
            id,
            from: peer(self.inner.side),
        };
        self.inner
            .shared
            .with_state(|state| state.halves.contains_key(&key) && state.stop(key, code))
    }

    async fn open(&self, uni: bool) -> Result<u64, TransportError> {
        let side = self.inner.side;
        let shared = &self.inner.shared;
        poll_fn(|cx| {
            shared.with_state(|state| {
                if let Some(end) = &state.end {
                    return Poll::Ready(Err(end.error(side)));
                }
                let limit = match uni {
                    true => shared.config.max_streams_uni,
                    false => shared.config.max_streams_bi,
                };
                let me = &mut state.sides[side];
                let (open, next) = match uni {
                    true => (&mut me.open_uni, &mut me.next_uni),
                    false => (&mut me.open_bi, &mut me.next_bi),
                };
                if *open >= limit {
                    register(&mut me.open_wakers, cx.waker());
                    return Poll::Pending;
                }
                // QUIC stream ids: bit 0 = initiator, bit 1 = unidirectional.
                let id = (*next << 2) | (u64::from(uni) << 1) | side as u64;
                *next += 1;
                *open += 1;
                match uni {
                    true => me.stats.uni_opened += 1,
                    false => me.stats.bi_opened += 1,
                }
                state.streams.insert(
                    id,
                    Stream {
                        opener: side,
                        uni,
                        visible: false,
                        released: false,
                    },
                );
                state
                    .halves
                    .insert(HalfKey { id, from: side }, Half::default());
                if !uni {
                    let back = HalfKey {
                        id,
                        from: peer(side),
                    };
                    state.halves.insert(back, Half::default());
                }
                Poll::Ready(Ok(id))
            })
        })
        .await
    }

    async fn accept(&self, uni: bool) -> Result<u64, TransportError> {
        let side = self.inner.side;
        poll_fn(|cx| {
            self.inner.shared.with_state(|state| {
                if let Some(end) = &state.end {
                    return Poll::Ready(Err(end.error(side)));
                }
                let me = &mut state.sides[side];
                let incoming = match uni {
                    true => &mut me.incoming_uni,
                    false => &mut me.incoming_bi,
                };
                match incoming.pop_front() {
                    Some(id) => Poll::Ready(Ok(id)),
                    None => {
                        register(&mut me.accept_wakers, cx.waker());
                        Poll::Pending
                    }
                }
            })
        })
        .await
    }

    fn send_stream(&self, id: u64) -> SendStream {
        SendStream {
            shared: self.inner.shared.clone(),
            key: HalfKey {
                id,
                from: self.inner.side,
            },
        }
    }

    fn recv_stream(&self, id: u64) -> RecvStream {
        RecvStream {
            shared: self.inner.shared.clone(),
            key: HalfKey {
                id,
                from: peer(self.inner.side),
            },
            side: self.inner.side,
            read_to_end: false,
        }
    }
}

impl super::Connection for Connection {
    type SendStream = SendStream;
    type RecvStream = RecvStream;

    async fn open_bi(&self) -> Result<(SendStream, RecvStream), TransportError> {
        let id = self.open(false).await?;
        Ok((self.send_stream(id), self.recv_stream(id)))
    }

    async fn open_uni(&self) -> Result<SendStream, TransportError> {
        let id = self.open(true).await?;
        Ok(self.send_stream(id))
    }

    async fn accept_bi(&self) -> Result<(SendStream, RecvStream), TransportError> {
        let id = self.accept(false).await?;
        Ok((self.send_stream(id), self.recv_stream(id)))
    }

    async fn accept_uni(&self) -> Result<RecvStream, TransportError> {
        let id = self.accept(true).await?;
        Ok(self.recv_stream(id))
    }

    fn close(&self, code: ErrorCode, reason: &str) {
        let side = self.inner.side;
        self.inner
            .shared
            .with_state(|state| state.close(side, code, reason.to_owned()));
        self.inner.shared.notify_links();
    }

    async fn closed(&self) -> TransportError {
        let side = self.inner.side;
        poll_fn(|cx| {
            self.inner.shared.with_state(|state| match &state.end {
                Some(end) => Poll::Ready(end.error(side)),
                None => {
                    register(&mut state.closed_wakers, cx.waker());
                    Poll::Pending
                }
            })
        })
        .await
    }
}

/// The sending half of a memory stream.
///
/// # Drop
///
/// Finishes the stream unless it was finished, reset or stopped.
pub struct SendStream {
    shared: Arc<Shared>,
    key: HalfKey,
}

impl fmt::Debug for SendStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("memory::SendStream")
            .field("id", &self.key.id)
            .finish_non_exhaustive()
    }
}

impl Drop for SendStream {
    fn drop(&mut self) {
        let key = self.key;
        self.shared.with_state(|state| {
            if state.end.is_some() {
                return;
            }
            // WIRE.md §2.4: send side dropped without an explicit reset → FIN.
            state.finish(key);
            if let Some(half) = state.halves.get_mut(&key) {
                half.send_handle_dropped = true;
            }
            state.collect(key.id);
        });
        self.shared.notify_link(key.from);
    }
}

impl super::SendStream for SendStream {
    fn id(&self) -> u64 {
        self.key.id
    }

    async fn write_some(&mut self, buf: &mut Bytes) -> Result<usize, TransportError> {
        let key = self.key;
        let window = self.shared.config.stream_window;
        let written = poll_fn(|cx| {
            self.shared.with_state(|state| {
                if let Some(end) = &state.end {
                    return Poll::Ready(Err(end.error(key.from)));
                }
                let Some(half) = state.halves.get_mut(&key) else {
                    return Poll::Ready(Err(TransportError::ClosedStream));
                };
                match half.send {
                    SendState::Open => {}
                    SendState::Stopped(code) => {
                        return Poll::Ready(Err(TransportError::StreamStopped(code)));
                    }
                    SendState::Finished | SendState::Reset => {
                        return Poll::Ready(Err(TransportError::ClosedStream));
                    }
                }
                if buf.is_empty() {
                    return Poll::Ready(Ok(0));
                }
                let room = window.saturating_sub(half.outstanding);
                if room == 0 {
                    register(&mut half.send_wakers, cx.waker());
                    return Poll::Pending;
                }
                let chunk = buf.split_to(room.min(buf.len()));
                let len = chunk.len();
                half.outstanding += len;
                let buffered = half.outstanding;
                let stats = &mut state.sides[key.from].stats;
                stats.bytes_written += len as u64;
                stats.max_stream_buffered = stats.max_stream_buffered.max(buffered);
                state.send(key, Packet::Data(chunk));
                Poll::Ready(Ok(len))
            })
        })
        .await;
        self.shared.notify_link(key.from);
        written
    }

    fn set_priority(&self, priority: i32) {
        self.shared.with_state(|state| {
            if let Some(half) = state.halves.get_mut(&self.key) {
                half.priority = priority;
            }
        });
    }

    fn finish(&mut self) -> Result<(), TransportError> {
        let key = self.key;
        let finished = self.shared.with_state(|state| {
            if let Some(end) = &state.end {
                return Err(end.error(key.from));
            }
            if state.finish(key) {
                return Ok(());
            }
            match state.halves.get(&key).map(|half| half.send) {
                // Like quinn: a peer's STOP_SENDING is reported by `stopped`, not here.
                Some(SendState::Stopped(_)) => Ok(()),
                _ => Err(TransportError::ClosedStream),
            }
        });
        self.shared.notify_link(key.from);
        finished
    }

    fn reset(&mut self, code: ErrorCode) {
        self.shared.with_state(|state| state.reset(self.key, code));
    }

    async fn stopped(&self) -> Result<Option<ErrorCode>, TransportError> {
        send_stopped(&self.shared, self.key).await
    }

    fn stop_watch(&self) -> Option<super::StopWatch> {
        let shared = self.shared.clone();
        let key = self.key;
        Some(Box::pin(async move { send_stopped(&shared, key).await }))
    }
}

/// [`SendStream::stopped`] of the send half `key`.
async fn send_stopped(shared: &Shared, key: HalfKey) -> Result<Option<ErrorCode>, TransportError> {
    poll_fn(|cx| {
        shared.with_state(|state| {
            if let Some(half) = state.halves.get_mut(&key) {
                match half.send {
                    SendState::Stopped(code) => return Poll::Ready(Ok(Some(code))),
                    SendState::Reset => return Poll::Ready(Ok(None)),
                    SendState::Finished if half.fin_delivered => {
                        return Poll::Ready(Ok(None));
                    }
                    _ => {}
                }
                if state.end.is_none() {
                    register(&mut half.send_wakers, cx.waker());
                    return Poll::Pending;
                }
            }
            Poll::Ready(Err(match &state.end {
                Some(end) => end.error(key.from),
                None => TransportError::ClosedStream,
            }))
        })
    })
    .await
}

/// The receiving half of a memory stream.
///
/// # Drop
///
/// Stops the stream with [`ErrorCode::CANCEL`] unless it was read to the end, reset, or
/// stopped.
pub struct RecvStream {
    shared: Arc<Shared>,
    key: HalfKey,
    /// The receiving side.
    side: Side,
    read_to_end: bool,
}

impl fmt::Debug for RecvStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("memory::RecvStream")
            .field("id", &self.key.id)
            .finish_non_exhaustive()
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        let key = self.key;
        self.shared.with_state(|state| {
            if state.end.is_some() {
                return;
            }
            // WIRE.md §2.4: stream dropped without reading to the end → STOP_SENDING 0.
            state.stop(key, ErrorCode::CANCEL);
            if let Some(half) = state.halves.get_mut(&key) {
                half.recv_handle_dropped = true;
            }
            state.collect(key.id);
        });
    }
}

impl super::RecvStream for RecvStream {
    fn id(&self) -> u64 {
        self.key.id
    }

    async fn read(&mut self) -> Result<Option<Bytes>, TransportError> {
        if self.read_to_end {
            return Ok(None);
        }
        let key = self.key;
        let side = self.side;
        let read = poll_fn(|cx| {
            self.shared.with_state(|state| {
                if let Some(end) = &state.end {
                    return Poll::Ready(Err(end.error(side)));
                }
                let Some(half) = state.halves.get_mut(&key) else {
                    return Poll::Ready(Err(TransportError::ClosedStream));
                };
                match half.recv {
                    RecvState::Open => {}
                    RecvState::Reset(code) => {
                        return Poll::Ready(Err(TransportError::StreamReset(code)));
                    }
                    RecvState::Stopped => return Poll::Ready(Err(TransportError::ClosedStream)),
                    RecvState::ReadToEnd => return Poll::Ready(Ok(None)),
                }
                if let Some(chunk) = half.readable.pop_front() {
                    // Flow control: reading returns the credit to the writer at once.
                    half.outstanding -= chunk.len();
                    state.pending_wakes.append(&mut half.send_wakers);
                    return Poll::Ready(Ok(Some(chunk)));
                }
                if half.fin_arrived {
                    half.recv = RecvState::ReadToEnd;
                    state.release(key.id);
                    return Poll::Ready(Ok(None));
                }
                register(&mut half.recv_wakers, cx.waker());
                Poll::Pending
            })
        })
        .await;
        if let Ok(None) = read {
            self.read_to_end = true;
        }
        read
    }

    fn stop(&mut self, code: ErrorCode) {
        self.shared.with_state(|state| state.stop(self.key, code));
    }
}

/// 0 = client, 1 = server; also the low bit of the stream ids a side opens.
type Side = usize;
const CLIENT: Side = 0;
const SERVER: Side = 1;

fn peer(side: Side) -> Side {
    1 - side
}

fn side_name(side: Side) -> &'static str {
    match side {
        CLIENT => "client",
        _ => "server",
    }
}

/// Adds a waker to a list unless an equivalent one is there (a future polled repeatedly
/// registers once).
fn register(wakers: &mut Vec<Waker>, waker: &Waker) {
    if !wakers.iter().any(|w| w.will_wake(waker)) {
        wakers.push(waker.clone());
    }
}

/// Everything about one connection pair.
struct Shared {
    config: Config,
    state: Mutex<State>,
    /// Wakes the link task carrying data sent by side `i`.
    links: [Notify; 2],
}

impl Shared {
    /// Runs `f` under the lock, then wakes what it asked to wake (never under the lock, and
    /// wakers are never dropped under it either).
    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (result, wakes) = {
            let mut state = self.lock();
            let result = f(&mut state);
            (result, std::mem::take(&mut state.pending_wakes))
        };
        for waker in wakes {
            waker.wake();
        }
        result
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn notify_link(&self, from: Side) {
        if self.config.shaped() {
            self.links[from].notify_one();
        }
    }

    fn notify_links(&self) {
        self.notify_link(CLIENT);
        self.notify_link(SERVER);
    }
}

/// How the connection ended.
enum End {
    Closed {
        by: Side,
        code: ErrorCode,
        reason: String,
    },
    Lost(String),
}

impl End {
    fn error(&self, side: Side) -> TransportError {
        match self {
            End::Closed { by, code, reason } if *by == side => TransportError::ClosedLocally {
                code: *code,
                reason: reason.clone(),
            },
            End::Closed { code, reason, .. } => TransportError::ClosedByPeer {
                code: *code,
                reason: reason.clone(),
            },
            End::Lost(reason) => TransportError::ConnectionLost(reason.clone()),
        }
    }
}

/// One direction of one stream: `from` is the sending side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct HalfKey {
    id: u64,
    from: Side,
}

struct Stream {
    opener: Side,
    uni: bool,
    /// The peer has learned of the stream (it is or was in its accept queue).
    visible: bool,
    /// No longer counted against the opener's stream limit.
    released: bool,
}

impl Stream {
    fn halves(&self, id: u64) -> impl Iterator<Item = HalfKey> + use<> {
        let opener = self.opener;
        let back = (!self.uni).then(|| HalfKey {
            id,
            from: peer(opener),
        });
        std::iter::once(HalfKey { id, from: opener }).chain(back)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendState {
    Open,
    Finished,
    Reset,
    Stopped(ErrorCode),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvState {
    Open,
    ReadToEnd,
    Reset(ErrorCode),
    Stopped,
}

enum Packet {
    Data(Bytes),
    Fin,
}

struct Half {
    priority: i32,
    send: SendState,
    /// Written and not yet read by the receiver (or discarded): the flow-control usage.
    outstanding: usize,
    /// Waiting for the link's transmitter (shaped links only).
    queued: VecDeque<Bytes>,
    fin_queued: bool,
    fin_delivered: bool,
    /// Writers and `stopped()` callers.
    send_wakers: Vec<Waker>,
    send_handle_dropped: bool,

    recv: RecvState,
    readable: VecDeque<Bytes>,
    fin_arrived: bool,
    recv_wakers: Vec<Waker>,
    recv_handle_dropped: bool,
}

impl Default for Half {
    fn default() -> Self {
        Self {
            priority: 0,
            send: SendState::Open,
            outstanding: 0,
            queued: VecDeque::new(),
            fin_queued: false,
            fin_delivered: false,
            send_wakers: Vec::new(),
            send_handle_dropped: false,
            recv: RecvState::Open,
            readable: VecDeque::new(),
            fin_arrived: false,
            recv_wakers: Vec::new(),
            recv_handle_dropped: false,
        }
    }
}

impl Half {
    fn has_queued(&self) -> bool {
        !self.queued.is_empty() || self.fin_queued
    }
}

#[derive(Default)]
struct SideState {
    next_bi: u64,
    next_uni: u64,
    /// Streams this side opened that still count against its limit.
    open_bi: u64,
    open_uni: u64,
    open_wakers: Vec<Waker>,
    /// Streams the peer opened, waiting for this side to accept them.
    incoming_bi: VecDeque<u64>,
    incoming_uni: VecDeque<u64>,
    accept_wakers: Vec<Waker>,
    /// The link carrying what this side sends.
    link: Link,
    stats: Stats,
}

#[derive(Default)]
struct Link {
    /// Halves with queued data, in round-robin order, each with the priority it had when it
    /// joined the queue (quinn's scheduler keeps that one too, see the module docs).
    active: VecDeque<(HalfKey, i32)>,
    /// Transmitted packets, in order, with the time they arrive.
    in_flight: VecDeque<(Instant, HalfKey, Packet)>,
    /// When the transmitter finishes the packet it is sending.
    busy_until: Option<Instant>,
    /// The transmitter found nothing to pick while the wire was still busy (with a
    /// [`Config::buffer`]): the wire goes idle at `busy_until`.
    drained: bool,
}

#[derive(Default)]
struct State {
    /// Packets go through the link tasks (else they are delivered at once).
    shaped: bool,
    end: Option<End>,
    streams: HashMap<u64, Stream>,
    halves: HashMap<HalfKey, Half>,
    sides: [SideState; 2],
    closed_wakers: Vec<Waker>,
    /// Wakers to wake once the lock is released.
    pending_wakes: Vec<Waker>,
}

impl State {
    /// Hands a packet to the link: delivered at once on an unshaped link, else queued for
    /// the transmitter (the caller notifies the link task).
    fn send(&mut self, key: HalfKey, packet: Packet) {
        if !self.shaped {
            self.deliver(key, packet);
            return;
        }
        let Some(half) = self.halves.get_mut(&key) else {
            return;
        };
        match packet {
            Packet::Data(chunk) => half.queued.push_back(chunk),
            Packet::Fin => half.fin_queued = true,
        }
        let priority = half.priority;
        let active = &mut self.sides[key.from].link.active;
        if !active.iter().any(|(queued, _)| *queued == key) {
            active.push_back((key, priority));
        }
    }

    /// A packet arrives at the receiver.
    fn deliver(&mut self, key: HalfKey, packet: Packet) {
        let Some(half) = self.halves.get_mut(&key) else {
            return;
        };
        if half.recv != RecvState::Open {
            // Reset or stopped meanwhile: the data is discarded.
            return;
        }
        match packet {
            Packet::Data(chunk) => {
                self.sides[key.from].stats.bytes_delivered += chunk.len() as u64;
                half.readable.push_back(chunk);
            }
            Packet::Fin => {
                half.fin_arrived = true;
                half.fin_delivered = true;
                self.pending_wakes.append(&mut half.send_wakers);
            }
        }
        self.pending_wakes.append(&mut half.recv_wakers);
        self.make_visible(key.id);
    }

    /// The peer learns of a stream when something for it arrives.
    fn make_visible(&mut self, id: u64) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if stream.visible {
            return;
        }
        stream.visible = true;
        let acceptor = &mut self.sides[peer(stream.opener)];
        match stream.uni {
            true => acceptor.incoming_uni.push_back(id),
            false => acceptor.incoming_bi.push_back(id),
        }
        self.pending_wakes.append(&mut acceptor.accept_wakers);
    }

    /// FIN after the written data. Returns false if the half was not open.
    fn finish(&mut self, key: HalfKey) -> bool {
        let Some(half) = self.halves.get_mut(&key) else {
            return false;
        };
        if half.send != SendState::Open {
            return false;
        }
        half.send = SendState::Finished;
        self.send(key, Packet::Fin);
        true
    }

    /// RESET_STREAM from the sender of `key`. Returns false if there was nothing to reset.
    fn reset(&mut self, key: HalfKey, code: ErrorCode) -> bool {
        if self.end.is_some() {
            return false;
        }
        let Some(half) = self.halves.get_mut(&key) else {
            return false;
        };
        let delivered = half.send == SendState::Finished && half.fin_delivered;
        if delivered || matches!(half.send, SendState::Reset | SendState::Stopped(_)) {
            // Nothing left to abort (as in QUIC once all data is acknowledged).
            return false;
        }
        half.send = SendState::Reset;
        half.queued.clear();
        half.fin_queued = false;
        half.outstanding = 0;
        self.pending_wakes.append(&mut half.send_wakers);
        if half.recv == RecvState::Open {
            half.recv = RecvState::Reset(code);
            half.readable.clear();
            self.pending_wakes.append(&mut half.recv_wakers);
        }
        self.sides[key.from].stats.resets += 1;
        self.make_visible(key.id);
        self.release(key.id);
        true
    }

    /// STOP_SENDING from the receiver of `key`. Returns false if there was nothing to stop.
    fn stop(&mut self, key: HalfKey, code: ErrorCode) -> bool {
        if self.end.is_some() {
            return false;
        }
        let Some(half) = self.halves.get_mut(&key) else {
            return false;
        };
        if half.recv != RecvState::Open {
            return false;
        }
        half.recv = RecvState::Stopped;
        half.readable.clear();
        half.outstanding = 0;
        self.pending_wakes.append(&mut half.recv_wakers);
        // Once everything was delivered the sender is done; a late STOP_SENDING changes
        // nothing for it (as in QUIC, where the data was acknowledged).
        let delivered = half.send == SendState::Finished && half.fin_delivered;
        if !delivered && half.send != SendState::Reset {
            half.send = SendState::Stopped(code);
            half.queued.clear();
            half.fin_queued = false;
        }
        self.pending_wakes.append(&mut half.send_wakers);
        self.sides[peer(key.from)].stats.stops += 1;
        self.make_visible(key.id);
        self.release(key.id);
        true
    }

    /// Stops counting a stream against its opener's limit once every direction of it is
    /// over at the receiver.
    fn release(&mut self, id: u64) {
        let Some(stream) = self.streams.get(&id) else {
            return;
        };
        if stream.released {
            return;
        }
        let over = stream.halves(id).all(|key| {
            self.halves
                .get(&key)
                .is_none_or(|half| half.recv != RecvState::Open)
        });
        if !over {
            return;
        }
        let (opener, uni) = (stream.opener, stream.uni);
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.released = true;
        }
        let side = &mut self.sides[opener];
        match uni {
            true => side.open_uni -= 1,
            false => side.open_bi -= 1,
        }
        self.pending_wakes.append(&mut side.open_wakers);
        self.collect(id);
    }

    /// Forgets a stream once it is released and no handle refers to it any more.
    fn collect(&mut self, id: u64) {
        let Some(stream) = self.streams.get(&id) else {
            return;
        };
        if !stream.released {
            return;
        }
        let unused = stream.halves(id).all(|key| {
            self.halves.get(&key).is_none_or(|half| {
                half.send_handle_dropped && half.recv_handle_dropped && !half.has_queued()
            })
        });
        if !unused {
            return;
        }
        let keys: Vec<HalfKey> = stream.halves(id).collect();
        for key in keys {
            if let Some(mut half) = self.halves.remove(&key) {
                self.pending_wakes.append(&mut half.send_wakers);
                self.pending_wakes.append(&mut half.recv_wakers);
            }
        }
        self.streams.remove(&id);
    }

    fn close(&mut self, by: Side, code: ErrorCode, reason: String) {
        self.end(End::Closed { by, code, reason });
    }

    /// Ends the connection: wakes everything and drops all buffered data. The stream
    /// states stay, so that a fate learnt before the end (a stop, a full delivery) is still
    /// what `stopped` reports.
    fn end(&mut self, end: End) {
        if self.end.is_some() {
            return;
        }
        self.end = Some(end);
        for half in self.halves.values_mut() {
            self.pending_wakes.append(&mut half.send_wakers);
            self.pending_wakes.append(&mut half.recv_wakers);
            half.queued = VecDeque::new();
            half.fin_queued = false;
            half.readable = VecDeque::new();
        }
        self.streams.clear();
        for side in &mut self.sides {
            self.pending_wakes.append(&mut side.open_wakers);
            self.pending_wakes.append(&mut side.accept_wakers);
            side.incoming_bi.clear();
            side.incoming_uni.clear();
            side.link = Link::default();
        }
        self.pending_wakes.append(&mut self.closed_wakers);
    }

    /// The next packet the transmitter of side `from` sends: from the highest-priority half
    /// with queued data, taking turns among equal priorities.
    fn next_packet(&mut self, from: Side, packet_size: usize) -> Option<(HalfKey, Packet)> {
        let halves = &mut self.halves;
        let active = &mut self.sides[from].link.active;
        active.retain(|(key, _)| halves.get(key).is_some_and(Half::has_queued));
        // The first of the highest priority in round-robin order, by the priority each had
        // when it joined the queue.
        let mut best: Option<(usize, i32)> = None;
        for (index, &(_, priority)) in active.iter().enumerate() {
            if best.is_none_or(|(_, p)| priority > p) {
                best = Some((index, priority));
            }
        }
        let (index, _) = best?;
        let (key, _) = active.remove(index)?;
        let half = halves.get_mut(&key)?;
        let packet = match half.queued.front_mut() {
            Some(front) if front.len() > packet_size => Packet::Data(front.split_to(packet_size)),
            Some(_) => Packet::Data(half.queued.pop_front()?),
            None => {
                half.fin_queued = false;
                Packet::Fin
            }
        };
        if half.has_queued() {
            active.push_back((key, half.priority));
        }
        Some((key, packet))
    }

    /// Runs the link of side `from` up to `now`: delivers what has arrived and starts
    /// transmitting what can be. Returns when it next has something to do, or `None` if it
    /// waits for data.
    fn pump(&mut self, from: Side, now: Instant, config: &Config) -> Option<Instant> {
        loop {
            // Deliveries first, so that a packet arriving now is readable now.
            while let Some((at, _, _)) = self.sides[from].link.in_flight.front() {
                if *at > now {
                    break;
                }
                let Some((_, key, packet)) = self.sides[from].link.in_flight.pop_front() else {
                    break;
                };
                self.deliver(key, packet);
            }
            let link = &self.sides[from].link;
            if link
                .busy_until
                .is_some_and(|until| until > now + config.buffer)
            {
                break;
            }
            // A transmitter that stayed busy goes on where it left off, so that timer
            // granularity does not add up; an idle one starts now. (With a buffer the wire
            // may still be busy with packets picked earlier: this one follows them, or
            // starts now if the wire has gone idle since.)
            let start = match link.busy_until {
                Some(until) if link.drained => until.max(now),
                Some(until) => until,
                None => now,
            };
            let Some((key, packet)) = self.next_packet(from, config.packet_size) else {
                // Idle once the wire is done with what was picked ahead.
                let link = &mut self.sides[from].link;
                link.busy_until = link.busy_until.filter(|until| *until > now);
                link.drained = true;
                break;
            };
            let len = match &packet {
                Packet::Data(chunk) => chunk.len() as u64,
                Packet::Fin => 0,
            };
            let transmit = match config.bandwidth {
                Some(rate) => Duration::from_nanos(
                    (u128::from(len) * 1_000_000_000 / u128::from(rate))
                        .try_into()
                        .unwrap_or(u64::MAX),
                ),
                None => Duration::ZERO,
            };
            let done = start + transmit;
            let link = &mut self.sides[from].link;
            link.busy_until = Some(done);
            link.drained = false;
            link.in_flight.push_back((done + config.delay, key, packet));
        }
        let link = &self.sides[from].link;
        let arrival = link.in_flight.front().map(|(at, _, _)| *at);
        // The transmitter picks again once the packets picked ahead are within the buffer.
        let transmitter = link
            .busy_until
            .filter(|_| !link.active.is_empty())
            .map(|until| until.checked_sub(config.buffer).unwrap_or(now).max(now));
        match (arrival, transmitter) {
            (Some(a), Some(t)) => Some(a.min(t)),
            (a, t) => a.or(t),
        }
    }
}

/// The link task for data sent by side `from`: runs until the connection ends.
async fn run_link(shared: Arc<Shared>, from: Side) {
    loop {
        let next = shared.with_state(|state| {
            if state.end.is_some() {
                return Err(());
            }
            Ok(state.pump(from, Instant::now(), &shared.config))
        });
        let Ok(next) = next else {
            return;
        };
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = shared.links[from].notified() => {}
                }
            }
            None => shared.links[from].notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(halves: &[(u64, i32, &[usize])]) -> State {
        let mut state = State {
            shaped: true,
            ..State::default()
        };
        for &(id, priority, chunks) in halves {
            let key = HalfKey { id, from: CLIENT };
            state.halves.insert(
                key,
                Half {
                    priority,
                    ..Half::default()
                },
            );
            for &len in chunks {
                state.send(key, Packet::Data(Bytes::from(vec![0; len])));
            }
        }
        state
    }

    /// The ids and sizes the transmitter would send, in order, until nothing is queued.
    fn drain(state: &mut State, packet_size: usize) -> Vec<(u64, usize)> {
        std::iter::from_fn(|| state.next_packet(CLIENT, packet_size))
            .map(|(key, packet)| match packet {
                Packet::Data(chunk) => (key.id, chunk.len()),
                Packet::Fin => (key.id, 0),
            })
            .collect()
    }

    #[test]
    fn highest_priority_first_then_turns() {
        let mut state = state_with(&[(2, 0, &[1500]), (6, 5, &[700]), (10, 0, &[300, 300])]);
        state.finish(HalfKey {
            id: 6,
            from: CLIENT,
        });
        assert_eq!(
            drain(&mut state, 1000),
            [(6, 700), (6, 0), (2, 1000), (10, 300), (2, 500), (10, 300)]
        );
        assert!(state.sides[CLIENT].link.active.is_empty());
    }

    #[test]
    fn packets_are_slices_of_the_written_chunk() {
        let mut state = state_with(&[]);
        let key = HalfKey {
            id: 2,
            from: CLIENT,
        };
        state.halves.insert(key, Half::default());
        let chunk = Bytes::from(vec![7; 2500]);
        state.send(key, Packet::Data(chunk.clone()));
        let mut offset = 0;
        while let Some((_, Packet::Data(packet))) = state.next_packet(CLIENT, 1000) {
            assert_eq!(packet.as_ptr(), chunk[offset..].as_ptr());
            offset += packet.len();
        }
        assert_eq!(offset, 2500);
    }

    #[test]
    fn stale_halves_leave_the_schedule() {
        let mut state = state_with(&[(2, 0, &[100]), (6, 0, &[100])]);
        state.halves.remove(&HalfKey {
            id: 2,
            from: CLIENT,
        });
        assert_eq!(drain(&mut state, 1000), [(6, 100)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_buffer_picks_packets_ahead_and_keeps_their_order() {
        // 100-byte packets take 100 ms; the transmitter picks up to 300 ms ahead.
        let config = Config::default()
            .bandwidth(1000)
            .packet_size(100)
            .buffer(Duration::from_millis(300));
        let mut state = state_with(&[(2, 0, &[500])]);
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let queued = |state: &State| -> Vec<u64> {
            let link = &state.sides[CLIENT].link;
            link.in_flight.iter().map(|(_, key, _)| key.id).collect()
        };

        // Four packets picked at once (the wire is busy until 400 ms), the next at 100 ms.
        assert_eq!(state.pump(CLIENT, start, &config), Some(ms(100)));
        assert_eq!(queued(&state), [2, 2, 2, 2]);
        // A stream of higher priority gets the next pick, behind the four already picked.
        let urgent = HalfKey {
            id: 6,
            from: CLIENT,
        };
        state.halves.insert(
            urgent,
            Half {
                priority: 5,
                ..Half::default()
            },
        );
        state.send(urgent, Packet::Data(Bytes::from(vec![0; 100])));
        // At 100 ms the first packet arrives, and it is picked behind the three left.
        assert_eq!(state.pump(CLIENT, ms(100), &config), Some(ms(200)));
        assert_eq!(queued(&state), [2, 2, 2, 6]);
        // Then the rest of the first stream, behind it.
        assert_eq!(state.pump(CLIENT, ms(200), &config), Some(ms(300)));
        assert_eq!(queued(&state), [2, 2, 6, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_buffer_gives_no_credit_for_idle_wire_time() {
        // 100-byte packets take 100 ms, arrive 1 s later; the transmitter picks 300 ms ahead.
        let config = Config::default()
            .bandwidth(1000)
            .packet_size(100)
            .delay(Duration::from_secs(1))
            .buffer(Duration::from_millis(300));
        let mut state = state_with(&[(2, 0, &[100])]);
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        assert_eq!(state.pump(CLIENT, start, &config), Some(ms(1100)));
        // The wire is idle from 100 ms; the next packet is written at 500 ms and cannot
        // have left before then: on the wire until 600 ms, it arrives at 1600 ms.
        let key = HalfKey {
            id: 2,
            from: CLIENT,
        };
        state.send(key, Packet::Data(Bytes::from(vec![0; 100])));
        assert_eq!(state.pump(CLIENT, ms(500), &config), Some(ms(1100)));
        let link = &state.sides[CLIENT].link;
        let arrivals: Vec<Instant> = link.in_flight.iter().map(|(at, _, _)| *at).collect();
        assert_eq!(arrivals, [ms(1100), ms(1600)]);
    }

    #[tokio::test(start_paused = true)]
    async fn pump_paces_packets_and_delays_arrival() {
        let config = Config::default()
            .bandwidth(1000)
            .packet_size(100)
            .delay(Duration::from_millis(50));
        let mut state = state_with(&[(2, 0, &[250])]);
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);

        // 100 bytes at 1000 B/s: 100 ms on the wire, then 50 ms of delay.
        assert_eq!(state.pump(CLIENT, start, &config), Some(ms(100)));
        assert_eq!(state.pump(CLIENT, ms(100), &config), Some(ms(150)));
        assert_eq!(state.pump(CLIENT, ms(150), &config), Some(ms(200)));
        let half = &state.halves[&HalfKey {
            id: 2,
            from: CLIENT,
        }];
        assert_eq!(half.readable.len(), 1);
        // The last 50 bytes take 50 ms; nothing is left to send once they arrive.
        assert_eq!(state.pump(CLIENT, ms(200), &config), Some(ms(250)));
        assert_eq!(state.pump(CLIENT, ms(250), &config), Some(ms(300)));
        assert_eq!(state.pump(CLIENT, ms(300), &config), None);
        let half = &state.halves[&HalfKey {
            id: 2,
            from: CLIENT,
        }];
        let sizes: Vec<usize> = half.readable.iter().map(Bytes::len).collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert_eq!(state.sides[CLIENT].stats.bytes_delivered, 250);
    }

    #[test]
    fn config_clamps_to_usable_values() {
        let config = Config::default()
            .stream_window(0)
            .packet_size(0)
            .bandwidth(0);
        assert_eq!(config.stream_window, 1);
        assert_eq!(config.packet_size, 1);
        assert_eq!(config.bandwidth, Some(1));
        assert!(config.shaped());
        assert!(!Config::default().shaped());
    }
}
