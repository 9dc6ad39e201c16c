//! Behaviour of the in-memory transport, through the transport traits.
//!
//! Timing assertions use tokio's paused clock only: the clock advances exactly to the next
//! timer when every task is idle, so bandwidth and delay give exact, repeatable instants and
//! no test waits on wall time.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use moq_proto::ErrorCode;
use moq_session::transport::memory::{self, Config};
use moq_session::transport::{Connection, RecvStream, SendStream, TransportError};
use tokio::time::Instant;

use crate::support::read_all;

/// Polls a future once without a real waker: `Pending` proves it cannot complete yet.
fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// Fails the test instead of hanging when something is never woken. Only meaningful on
/// the paused clock, where the timeout fires as soon as every task is idle.
async fn soon<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(3600), future)
        .await
        .expect("never completed: a pending operation was not woken")
}

/// Runs a test on a single-threaded runtime with tokio's paused clock. The whole test is
/// under [`soon`], so a lost wakeup anywhere fails it at once instead of hanging.
fn paused<F: Future>(test: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
        .block_on(soon(test))
}

fn bytes(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

#[test]
fn open_and_accept_both_kinds_in_both_directions() {
    paused(async {
        let (client, server) = memory::pair(Config::default());
        for (opener, acceptor, name) in [(&client, &server, "client"), (&server, &client, "server")]
        {
            let mut uni = opener.open_uni().await.unwrap();
            uni.write(Bytes::from_static(b"uni")).await.unwrap();
            uni.finish().unwrap();
            let mut uni_recv = acceptor.accept_uni().await.unwrap();
            assert_eq!(uni_recv.id(), uni.id(), "{name}");
            assert_eq!(read_all(&mut uni_recv).await.unwrap(), b"uni", "{name}");

            let (mut send, mut recv) = opener.open_bi().await.unwrap();
            assert_eq!(send.id(), recv.id());
            send.write(Bytes::from_static(b"ping")).await.unwrap();
            let (mut peer_send, mut peer_recv) = acceptor.accept_bi().await.unwrap();
            assert_eq!(peer_send.id(), send.id(), "{name}");
            assert_eq!(
                peer_recv.read().await.unwrap().as_deref(),
                Some(&b"ping"[..])
            );
            peer_send.write(Bytes::from_static(b"pong")).await.unwrap();
            peer_send.finish().unwrap();
            assert_eq!(read_all(&mut recv).await.unwrap(), b"pong", "{name}");
            send.finish().unwrap();
            assert_eq!(peer_recv.read().await.unwrap(), None, "{name}");
        }
    })
}

#[test]
fn stream_ids_follow_quic() {
    paused(async {
        let (client, server) = memory::pair(Config::default());
        let ids = [
            client.open_bi().await.unwrap().0.id(),
            client.open_bi().await.unwrap().0.id(),
            client.open_uni().await.unwrap().id(),
            client.open_uni().await.unwrap().id(),
            server.open_bi().await.unwrap().0.id(),
            server.open_uni().await.unwrap().id(),
            server.open_uni().await.unwrap().id(),
        ];
        assert_eq!(ids, [0, 4, 2, 6, 1, 3, 7]);
    })
}

#[test]
fn peer_learns_of_a_stream_when_something_arrives() {
    paused(async {
        let (client, server) = memory::pair(Config::default());
        let (mut send, _recv) = client.open_bi().await.unwrap();

        let mut accept = pin!(server.accept_bi());
        assert!(poll_once(accept.as_mut()).is_pending(), "nothing sent yet");

        send.write(Bytes::from_static(b"x")).await.unwrap();
        let (_, mut recv) = soon(accept).await.unwrap();
        assert_eq!(recv.read().await.unwrap().as_deref(), Some(&b"x"[..]));
    })
}

#[test]
fn fin_reads_as_none_every_time() {
    paused(async {
        let (client, server) = memory::pair(Config::default());
        let mut send = client.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"abc")).await.unwrap();
        send.finish().unwrap();
        assert_eq!(send.finish(), Err(TransportError::ClosedStream));
        assert_eq!(
            send.write(Bytes::from_static(b"late")).await,
            Err(TransportError::ClosedStream)
        );
        // Everything was delivered: the sender's fate is known.
        assert_eq!(send.stopped().await, Ok(None));

        let mut recv = server.accept_uni().await.unwrap();
        assert_eq!(recv.read().await.unwrap().as_deref(), Some(&b"abc"[..]));
        assert_eq!(recv.read().await, Ok(None));
        assert_eq!(recv.read().await, Ok(None));
    })
}

#[test]
fn reset_reaches_the_reader_with_its_code() {
    paused(async {
        let (client, server) = memory::pair(Config::default());
        for code in [
            ErrorCode::NOT_FOUND,
            ErrorCode::app(7).unwrap(),
            ErrorCode(u32::MAX),
        ] {
            let mut send = client.open_uni().await.unwrap();
            send.write(Bytes::from_static(b"abc")).await.unwrap();
            let mut recv = server.accept_uni().await.unwrap();

            assert_eq!(recv.read().await.unwrap().as_deref(), Some(&b"abc"[..]));
            // A reader already waiting is woken.
            {
                let mut read = pin!(recv.read());
                assert!(poll_once(read.as_mut()).is_pending());
                send.reset(code);
                assert_eq!(soon(read).await, Err(TransportError::StreamReset(code)));
            }
            assert_eq!(recv.read().await, Err(TransportError::StreamReset(code)));

            assert_eq!(
                send.write(Bytes::from_static(b"x")).await,
                Err(TransportError::ClosedStream)
            );
            assert_eq!(send.stopped().await, Ok(None));
            assert_eq!(send.finish(), Err(TransportError::ClosedStream));
        }
        assert_eq!(client.stats().resets, 3);
    })
}

#[test]
fn reset_discards_unread_data() {
    paused(async {
        let (client, server) = memory::pair(Config::default());
        let mut send = client.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"unread")).await.unwrap();
        send.reset(ErrorCode::WRONG_SIZE);
        let mut recv = server.accept_uni().await.unwrap();
        assert_eq!(
            recv.read().await,
            Err(TransportError::StreamReset(ErrorCode::WRONG_SIZE))
        );
    })
}

#[test]
fn stop_reaches_the_writer_with_its_code() {
    paused(async {
        let (client, server) = memory::pair(Config::default().stream_window(4));
        let mut send = client.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"1234")).await.unwrap();
        let mut recv = server.accept_uni().await.unwrap();

        // One writer blocked on the window, one task waiting for `stopped`.
        {
            let mut write = pin!(send.write(Bytes::from_static(b"more")));
            assert!(poll_once(write.as_mut()).is_pending());

            recv.stop(ErrorCode::DECODE);
            assert_eq!(
                soon(write).await,
                Err(TransportError::StreamStopped(ErrorCode::DECODE))
            );
        }
        assert_eq!(send.stopped().await, Ok(Some(ErrorCode::DECODE)));
        // Finishing a stopped stream is harmless; `stopped` is where the stop is reported.
        assert_eq!(send.finish(), Ok(()));
        assert_eq!(
            send.write(Bytes::from_static(b"x")).await,
            Err(TransportError::StreamStopped(ErrorCode::DECODE))
        );
        assert_eq!(recv.read().await, Err(TransportError::ClosedStream));
        assert_eq!(server.stats().stops, 1);
    })
}

#[test]
fn stopped_wakes_an_idle_writer() {
    paused(async {
        let (client, server) = memory::pair(Config::default());
        let (mut send, _recv) = client.open_bi().await.unwrap();
        send.write(Bytes::from_static(b"subscribe")).await.unwrap();
        let (_, mut recv) = server.accept_bi().await.unwrap();

        let stopped = tokio::spawn(async move { send.stopped().await });
        tokio::task::yield_now().await;
        assert!(!stopped.is_finished());
        recv.stop(ErrorCode::app(3).unwrap());
        assert_eq!(stopped.await.unwrap(), Ok(Some(ErrorCode::app(3).unwrap())));
    })
}

#[test]
fn flow_control_blocks_the_writer_until_the_reader_reads() {
    paused(async {
        let window = 1000;
        let (client, server) = memory::pair(Config::default().stream_window(window));
        let mut send = client.open_uni().await.unwrap();

        let mut data = bytes(5000, 1);
        assert_eq!(send.write_some(&mut data).await, Ok(window));
        assert_eq!(data.len(), 4000);

        // The window is full: the next write waits, and leaves the buffer alone when cancelled.
        {
            let mut write = pin!(send.write_some(&mut data));
            assert!(poll_once(write.as_mut()).is_pending());
        }
        assert_eq!(data.len(), 4000);
        assert_eq!(client.stats().bytes_written, window as u64);

        let mut write = pin!(send.write_some(&mut data));
        assert!(poll_once(write.as_mut()).is_pending());

        let mut recv = server.accept_uni().await.unwrap();
        let first = recv.read().await.unwrap().unwrap();
        assert_eq!(first.len(), window);

        // Reading returned the credit: the writer goes on.
        assert_eq!(soon(write).await, Ok(window));
        assert_eq!(client.stats().max_stream_buffered, window);
    })
}

#[test]
fn buffered_bytes_never_exceed_the_window() {
    paused(async {
        let window = 1500;
        let (client, server) = memory::pair(Config::default().stream_window(window));
        let data = bytes(200_000, 7);

        let mut send = client.open_uni().await.unwrap();
        let expected = data.clone();
        let writer = tokio::spawn(async move {
            // Uneven writes, so the window boundary falls inside chunks.
            let mut rest = data;
            while !rest.is_empty() {
                let chunk = rest.split_to(rest.len().min(3333));
                send.write(chunk).await.unwrap();
            }
            send.finish().unwrap();
        });

        let mut recv = server.accept_uni().await.unwrap();
        let mut received = Vec::new();
        while let Some(chunk) = recv.read().await.unwrap() {
            assert!(chunk.len() <= window);
            received.extend_from_slice(&chunk);
            // A slow reader: let the writer run as far as it can.
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
        }
        writer.await.unwrap();
        assert_eq!(received, expected);

        let stats = client.stats();
        assert_eq!(stats.bytes_written, 200_000);
        // The writer did fill the window, and never went past it.
        assert_eq!(stats.max_stream_buffered, window);
    })
}

#[test]
fn stream_limits_block_opens() {
    paused(async {
        let config = Config::default().max_streams_uni(2).max_streams_bi(1);
        let (client, server) = memory::pair(config);

        let mut first = client.open_uni().await.unwrap();
        let _second = client.open_uni().await.unwrap();
        let mut third = pin!(client.open_uni());
        assert!(poll_once(third.as_mut()).is_pending());

        // Finishing is not enough: the stream counts until the peer has read it to the end.
        first.write(Bytes::from_static(b"a")).await.unwrap();
        first.finish().unwrap();
        assert!(poll_once(third.as_mut()).is_pending());
        let mut recv = server.accept_uni().await.unwrap();
        assert_eq!(read_all(&mut recv).await.unwrap(), b"a");
        let third = soon(third).await.unwrap();
        assert_eq!(third.id(), 10);

        // Bidirectional: both directions must be over.
        let (mut send, mut recv) = client.open_bi().await.unwrap();
        let mut next = pin!(client.open_bi());
        assert!(poll_once(next.as_mut()).is_pending());
        send.write(Bytes::from_static(b"q")).await.unwrap();
        send.finish().unwrap();
        let (mut peer_send, mut peer_recv) = server.accept_bi().await.unwrap();
        assert_eq!(read_all(&mut peer_recv).await.unwrap(), b"q");
        assert!(poll_once(next.as_mut()).is_pending());
        peer_send.reset(ErrorCode::NOT_FOUND);
        assert_eq!(
            recv.read().await,
            Err(TransportError::StreamReset(ErrorCode::NOT_FOUND))
        );
        let (next, _) = soon(next).await.unwrap();
        assert_eq!(next.id(), 4);

        // The server's own limit is separate.
        let _ = server.open_bi().await.unwrap();
        assert_eq!(client.stats().bi_opened, 2);
        assert_eq!(client.stats().uni_opened, 3);
    })
}

#[test]
fn stopping_or_dropping_releases_a_stream_slot() {
    paused(async {
        let (client, server) = memory::pair(Config::default().max_streams_uni(1));
        let mut send = client.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"a")).await.unwrap();
        let mut next = pin!(client.open_uni());
        assert!(poll_once(next.as_mut()).is_pending());
        let recv = server.accept_uni().await.unwrap();
        drop(recv);
        let mut next = soon(next).await.unwrap();
        assert_eq!(send.stopped().await, Ok(Some(ErrorCode::CANCEL)));

        next.write(Bytes::from_static(b"b")).await.unwrap();
        let mut recv = server.accept_uni().await.unwrap();
        recv.stop(ErrorCode::DECODE);
        let _third = soon(client.open_uni()).await.unwrap();
    })
}

/// Reads a stream to the end, logging `(stream id, bytes, arrival)` for each chunk.
fn record(
    mut recv: memory::RecvStream,
    log: Arc<Mutex<Vec<(u64, usize, Duration)>>>,
    start: Instant,
) {
    tokio::spawn(async move {
        let id = recv.id();
        while let Some(chunk) = recv.read().await.unwrap() {
            log.lock().unwrap().push((id, chunk.len(), start.elapsed()));
        }
        log.lock().unwrap().push((id, 0, start.elapsed()));
    });
}

/// When each stream's end (FIN) arrived, from a log made by [`record`].
fn fin_at(log: &[(u64, usize, Duration)], id: u64) -> Duration {
    log.iter()
        .find(|(i, len, _)| *i == id && *len == 0)
        .map(|(_, _, at)| *at)
        .expect("stream never ended")
}

/// Accepts `streams` unidirectional streams as they come and records each (in tasks).
fn accept_and_record(
    server: &memory::Connection,
    streams: usize,
    start: Instant,
) -> Arc<Mutex<Vec<(u64, usize, Duration)>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = server.clone();
    let recording = log.clone();
    tokio::spawn(async move {
        for _ in 0..streams {
            record(server.accept_uni().await.unwrap(), recording.clone(), start);
        }
    });
    log
}

#[test]
fn higher_priority_drains_first_on_a_short_link() {
    paused(async {
        // 10 kB/s in 1000-byte packets: one packet per 100 ms.
        let config = Config::default().bandwidth(10_000).packet_size(1000);
        let (client, server) = memory::pair(config);
        let start = Instant::now();
        let log = accept_and_record(&server, 2, start);

        let mut low = client.open_uni().await.unwrap();
        low.write(bytes(10_000, 1)).await.unwrap();
        low.finish().unwrap();
        // Let the low-priority stream start on the link and build a backlog.
        tokio::time::sleep(Duration::from_millis(150)).await;

        let mut high = client.open_uni().await.unwrap();
        high.set_priority(1);
        high.write(bytes(3000, 2)).await.unwrap();
        high.finish().unwrap();

        tokio::time::sleep(Duration::from_secs(10)).await;
        let log = log.lock().unwrap();

        // Low had sent packets 1 and 2 (the second one in flight at 150 ms); from 200 ms the
        // link carries the high-priority stream only, then the rest of the low one.
        assert_eq!(fin_at(&log, high.id()), Duration::from_millis(500));
        assert_eq!(fin_at(&log, low.id()), Duration::from_millis(1300));
        let low_before_high: usize = log
            .iter()
            .filter(|(id, _, at)| *id == low.id() && *at <= Duration::from_millis(500))
            .map(|(_, len, _)| len)
            .sum();
        assert_eq!(low_before_high, 2000);
        assert_eq!(client.stats().bytes_delivered, 13_000);
    })
}

#[test]
fn equal_priorities_take_turns() {
    paused(async {
        let config = Config::default().bandwidth(10_000).packet_size(1000);
        let (client, server) = memory::pair(config);
        let start = Instant::now();
        let log = accept_and_record(&server, 2, start);

        let mut a = client.open_uni().await.unwrap();
        let mut b = client.open_uni().await.unwrap();
        // One large write each: the link splits them into packets and alternates.
        a.write(bytes(4000, 1)).await.unwrap();
        b.write(bytes(4000, 2)).await.unwrap();
        a.finish().unwrap();
        b.finish().unwrap();

        tokio::time::sleep(Duration::from_secs(10)).await;
        let log = log.lock().unwrap();

        let order: Vec<u64> = log
            .iter()
            .filter(|(_, len, _)| *len > 0)
            .map(|(id, _, _)| *id)
            .collect();
        assert_eq!(order, [a.id(), b.id()].repeat(4));
        let arrivals: Vec<Duration> = log
            .iter()
            .filter(|(_, len, _)| *len > 0)
            .map(|(_, _, at)| *at)
            .collect();
        let expected: Vec<Duration> = (1..=8).map(|n| Duration::from_millis(100 * n)).collect();
        assert_eq!(arrivals, expected);
    })
}

#[test]
fn a_priority_change_reaches_queued_data_after_the_streams_next_packet() {
    paused(async {
        let config = Config::default().bandwidth(10_000).packet_size(1000);
        let (client, server) = memory::pair(config);
        let start = Instant::now();
        let log = accept_and_record(&server, 2, start);

        let mut a = client.open_uni().await.unwrap();
        let mut b = client.open_uni().await.unwrap();
        a.write(bytes(5000, 1)).await.unwrap();
        b.write(bytes(5000, 2)).await.unwrap();
        a.finish().unwrap();
        b.finish().unwrap();

        // At 150 ms: a's first packet arrived, b's first is on the wire. Raise b.
        tokio::time::sleep(Duration::from_millis(150)).await;
        b.set_priority(10);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let log = log.lock().unwrap();

        // As in quinn, b waits in the queue with the priority it was queued with (after its
        // first packet, at 100 ms): a's second packet goes first (200..300 ms), then b's
        // second (300..400 ms), after which b is queued with its new priority: its last
        // three go next (400..700 ms), then a's last three (700..1000 ms). Applied at once,
        // b would end at 600 ms; not applied, packets would alternate and b end at 1000.
        assert_eq!(fin_at(&log, b.id()), Duration::from_millis(700));
        assert_eq!(fin_at(&log, a.id()), Duration::from_millis(1000));
    })
}

#[test]
fn delay_and_bandwidth_are_exact_on_the_paused_clock() {
    paused(async {
        // 1 MB/s, 30 ms one way.
        let config = Config::default()
            .bandwidth(1_000_000)
            .delay(Duration::from_millis(30));
        let (client, server) = memory::pair(config);
        let start = Instant::now();

        let (mut send, mut recv) = client.open_bi().await.unwrap();
        send.write(bytes(100_000, 3)).await.unwrap();
        send.finish().unwrap();
        let (mut reply, mut peer_recv) = server.accept_bi().await.unwrap();
        // First packet: 1.2 ms on the wire + 30 ms of delay (seen at the next ms tick).
        assert_eq!(start.elapsed(), Duration::from_millis(32));
        assert_eq!(client.stats().bytes_written, 100_000);
        assert!(client.stats().bytes_delivered < 100_000);

        assert_eq!(read_all(&mut peer_recv).await.unwrap(), bytes(100_000, 3));
        assert_eq!(start.elapsed(), Duration::from_millis(130));
        assert_eq!(client.stats().bytes_delivered, 100_000);

        // The reply: 1 byte, so 30 ms (plus a microsecond, seen at the next tick).
        reply.write(Bytes::from_static(b"k")).await.unwrap();
        assert_eq!(recv.read().await.unwrap().as_deref(), Some(&b"k"[..]));
        assert_eq!(start.elapsed(), Duration::from_millis(161));
    })
}

#[test]
fn a_reset_overtakes_data_in_flight() {
    paused(async {
        let config = Config::default().delay(Duration::from_millis(100));
        let (client, server) = memory::pair(config);
        let mut send = client.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"lost")).await.unwrap();
        send.reset(ErrorCode::app(1).unwrap());
        let start = Instant::now();
        let mut recv = server.accept_uni().await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(
            recv.read().await,
            Err(TransportError::StreamReset(ErrorCode::app(1).unwrap()))
        );
        assert_eq!(client.stats().bytes_delivered, 0);
    })
}

#[test]
fn connection_loss_wakes_everything_on_both_sides() {
    paused(async {
        let config = Config::default()
            .stream_window(10)
            .max_streams_uni(1)
            .delay(Duration::from_millis(5));
        let (client, server) = memory::pair(config);

        let mut blocked_send = client.open_uni().await.unwrap();
        blocked_send.write(bytes(10, 0)).await.unwrap();
        let _blocked_recv = server.accept_uni().await.unwrap();
        let (mut bi_send, mut bi_recv) = client.open_bi().await.unwrap();
        bi_send.write(Bytes::from_static(b"hi")).await.unwrap();
        let (_peer_bi_send, mut peer_bi_recv) = server.accept_bi().await.unwrap();
        assert_eq!(
            peer_bi_recv.read().await.unwrap().as_deref(),
            Some(&b"hi"[..])
        );

        let lost = TransportError::ConnectionLost("cable cut".into());
        let mut waiting = Vec::new();
        {
            let c = client.clone();
            waiting.push(tokio::spawn(async move { c.open_uni().await.map(|_| ()) }));
            let s = server.clone();
            waiting.push(tokio::spawn(
                async move { s.accept_uni().await.map(|_| ()) },
            ));
            let s = server.clone();
            waiting.push(tokio::spawn(async move { s.accept_bi().await.map(|_| ()) }));
            let c = client.clone();
            waiting.push(tokio::spawn(async move { Err::<(), _>(c.closed().await) }));
            let s = server.clone();
            waiting.push(tokio::spawn(async move { Err::<(), _>(s.closed().await) }));
            waiting.push(tokio::spawn(async move {
                blocked_send.write(bytes(10, 1)).await
            }));
            waiting.push(tokio::spawn(
                async move { bi_recv.read().await.map(|_| ()) },
            ));
            waiting.push(tokio::spawn(async move {
                peer_bi_recv.read().await.map(|_| ())
            }));
            waiting.push(tokio::spawn(
                async move { bi_send.stopped().await.map(|_| ()) },
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(waiting.iter().all(|task| !task.is_finished()));

        client.lose("cable cut");
        for task in waiting {
            assert_eq!(soon(task).await.unwrap(), Err(lost.clone()));
        }
        assert_eq!(server.open_bi().await.err(), Some(lost.clone()));
        assert_eq!(client.closed().await, lost);
    })
}

#[test]
fn close_carries_code_and_reason_to_the_peer() {
    paused(async {
        let (client, server) = memory::pair(Config::default());
        let code = ErrorCode::app(42).unwrap();

        let s = server.clone();
        let accept = tokio::spawn(async move { s.accept_uni().await.map(|_| ()) });
        tokio::task::yield_now().await;

        client.close(code, "shutting down");
        client.close(ErrorCode::DECODE, "second close is ignored");
        assert_eq!(
            server.closed().await,
            TransportError::ClosedByPeer {
                code,
                reason: "shutting down".into()
            }
        );
        assert_eq!(
            client.closed().await,
            TransportError::ClosedLocally {
                code,
                reason: "shutting down".into()
            }
        );
        assert_eq!(accept.await.unwrap(), Err(server.closed().await));
        assert_eq!(client.open_uni().await.err(), Some(client.closed().await));
        assert_eq!(server.closed().await.code(), code);
    })
}

#[test]
fn a_stream_read_to_the_end_stays_ended_after_close() {
    paused(async {
        let (client, server) = memory::pair(Config::default());
        let mut send = client.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"a")).await.unwrap();
        send.finish().unwrap();
        let mut done = server.accept_uni().await.unwrap();
        assert_eq!(read_all(&mut done).await.unwrap(), b"a");

        let mut open = client.open_uni().await.unwrap();
        open.write(Bytes::from_static(b"b")).await.unwrap();
        let mut pending = server.accept_uni().await.unwrap();

        client.close(ErrorCode::CANCEL, "");
        assert_eq!(done.read().await, Ok(None));
        assert_eq!(
            pending.read().await,
            Err(TransportError::ClosedByPeer {
                code: ErrorCode::CANCEL,
                reason: String::new()
            })
        );
        assert!(open.finish().unwrap_err().is_connection());
    })
}

#[test]
fn a_fate_learnt_before_the_end_survives_it() {
    paused(async {
        let (client, server) = memory::pair(Config::default());
        let mut stopped = client.open_uni().await.unwrap();
        stopped.write(Bytes::from_static(b"a")).await.unwrap();
        let mut delivered = client.open_uni().await.unwrap();
        delivered.write(Bytes::from_static(b"b")).await.unwrap();
        delivered.finish().unwrap();
        let (open, _open_recv) = client.open_bi().await.unwrap();

        server
            .accept_uni()
            .await
            .unwrap()
            .stop(ErrorCode::NOT_FOUND);
        server.close(ErrorCode::app(1).unwrap(), "bye");

        assert_eq!(stopped.stopped().await, Ok(Some(ErrorCode::NOT_FOUND)));
        assert_eq!(delivered.stopped().await, Ok(None));
        assert_eq!(
            open.stopped().await,
            Err(TransportError::ClosedByPeer {
                code: ErrorCode::app(1).unwrap(),
                reason: "bye".into()
            })
        );
        // Operations fail with the connection error, whatever the stream's state.
        assert!(
            stopped
                .write(Bytes::from_static(b"c"))
                .await
                .unwrap_err()
                .is_connection()
        );
    })
}

#[test]
fn dropping_a_recv_stream_stops_it_with_code_zero() {
    paused(async {
        let (client, server) = memory::pair(Config::default());
        let mut send = client.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"half")).await.unwrap();
        drop(server.accept_uni().await.unwrap());
        assert_eq!(send.stopped().await, Ok(Some(ErrorCode::CANCEL)));
        assert_eq!(
            send.write(Bytes::from_static(b"more")).await,
            Err(TransportError::StreamStopped(ErrorCode::CANCEL))
        );
        assert_eq!(server.stats().stops, 1);

        // Read to the end first: dropping sends nothing.
        let mut send = client.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"all")).await.unwrap();
        send.finish().unwrap();
        let mut recv = server.accept_uni().await.unwrap();
        assert_eq!(read_all(&mut recv).await.unwrap(), b"all");
        drop(recv);
        assert_eq!(send.stopped().await, Ok(None));
        assert_eq!(server.stats().stops, 1);
    })
}

#[test]
fn a_stop_after_full_delivery_is_not_reported_to_the_sender() {
    paused(async {
        // As in QUIC: once everything up to the FIN has arrived, the sender is done.
        let (client, server) = memory::pair(Config::default());
        let mut send = client.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"complete")).await.unwrap();
        send.finish().unwrap();
        let mut recv = server.accept_uni().await.unwrap();
        recv.stop(ErrorCode::NOT_FOUND);
        assert_eq!(send.stopped().await, Ok(None));
        assert_eq!(recv.read().await, Err(TransportError::ClosedStream));
    })
}

#[test]
fn dropping_a_send_stream_finishes_it() {
    paused(async {
        let (client, server) = memory::pair(Config::default());
        let mut send = client.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"last words")).await.unwrap();
        drop(send);
        let mut recv = server.accept_uni().await.unwrap();
        assert_eq!(read_all(&mut recv).await, Ok(b"last words".to_vec()));

        // Even one never written to: the peer sees an empty stream.
        let (send, _recv) = client.open_bi().await.unwrap();
        drop(send);
        let (_, mut recv) = server.accept_bi().await.unwrap();
        assert_eq!(recv.read().await, Ok(None));
        assert_eq!(client.stats().resets, 0);
    })
}

#[test]
fn dropping_every_connection_handle_closes_with_code_zero() {
    paused(async {
        let (client, server) = memory::pair(Config::default());
        let clone = client.clone();
        let (mut send, mut recv) = client.open_bi().await.unwrap();
        send.write(Bytes::from_static(b"x")).await.unwrap();
        let (_peer_send, mut peer_recv) = server.accept_bi().await.unwrap();
        peer_recv.read().await.unwrap();

        drop(client);
        // A clone keeps the connection open.
        let mut closed = pin!(server.closed());
        assert!(poll_once(closed.as_mut()).is_pending());

        drop(clone);
        let expected = TransportError::ClosedByPeer {
            code: ErrorCode::CANCEL,
            reason: String::new(),
        };
        assert_eq!(soon(closed).await, expected);
        assert_eq!(peer_recv.read().await, Err(expected));
        // The dropped side's own streams see a local close.
        assert_eq!(
            recv.read().await,
            Err(TransportError::ClosedLocally {
                code: ErrorCode::CANCEL,
                reason: String::new()
            })
        );
    })
}

#[test]
fn faults_are_injected_by_stream_id() {
    paused(async {
        let (client, server) = memory::pair(Config::default());
        let mut send = client.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"a")).await.unwrap();
        let mut recv = server.accept_uni().await.unwrap();
        recv.read().await.unwrap();

        // Reset on behalf of the client, who owns the sending half.
        assert!(!server.reset_stream(send.id(), ErrorCode::NOT_FOUND));
        assert!(client.reset_stream(send.id(), ErrorCode::NOT_FOUND));
        assert_eq!(
            recv.read().await,
            Err(TransportError::StreamReset(ErrorCode::NOT_FOUND))
        );

        // Stop on behalf of the server, who owns the receiving half.
        let mut send = client.open_uni().await.unwrap();
        send.write(Bytes::from_static(b"b")).await.unwrap();
        let _recv = server.accept_uni().await.unwrap();
        assert!(!client.stop_stream(send.id(), ErrorCode::WRONG_SIZE));
        assert!(server.stop_stream(send.id(), ErrorCode::WRONG_SIZE));
        assert_eq!(
            send.write(Bytes::from_static(b"c")).await,
            Err(TransportError::StreamStopped(ErrorCode::WRONG_SIZE))
        );

        assert!(!client.reset_stream(1000, ErrorCode::CANCEL));
    })
}

#[test]
fn chunks_are_not_copied() {
    paused(async {
        for config in [
            Config::default(),
            Config::default().bandwidth(1_000_000).packet_size(1000),
        ] {
            let (client, server) = memory::pair(config);
            let data = bytes(4096, 9);
            let mut send = client.open_uni().await.unwrap();
            send.write(data.clone()).await.unwrap();
            send.finish().unwrap();
            let mut recv = server.accept_uni().await.unwrap();
            let mut offset = 0;
            while let Some(chunk) = recv.read().await.unwrap() {
                // Every chunk is a slice of the written buffer.
                assert_eq!(chunk.as_ptr(), data[offset..].as_ptr());
                offset += chunk.len();
            }
            assert_eq!(offset, data.len());
        }
    })
}

/// Generic code over the trait: the futures are `Send`, so it can run in spawned tasks.
async fn echo<C: Connection>(conn: C) -> Result<(), TransportError> {
    loop {
        let (mut send, mut recv) = match conn.accept_bi().await {
            Ok(stream) => stream,
            Err(err) if err.is_connection() => return Ok(()),
            Err(err) => return Err(err),
        };
        tokio::spawn(async move {
            while let Some(chunk) = recv.read().await? {
                send.write(chunk).await?;
            }
            send.finish()
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_streams_across_threads() {
    // A guard against a lost wakeup (real time: this runtime cannot pause its clock).
    tokio::time::timeout(Duration::from_secs(60), async {
        let config = Config::default().stream_window(4096).max_streams_bi(8);
        let (client, server) = memory::pair(config);
        let server_task = tokio::spawn(echo(server));

        let mut tasks = Vec::new();
        for n in 0..40u8 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let data = bytes(50_000 + usize::from(n) * 100, n);
                let (mut send, mut recv) = client.open_bi().await?;
                let expected = data.clone();
                let writer = tokio::spawn(async move {
                    let mut rest = data;
                    while !rest.is_empty() {
                        let chunk = rest.split_to(rest.len().min(1000));
                        send.write(chunk).await?;
                    }
                    send.finish()
                });
                let echoed = read_all(&mut recv).await?;
                writer.await.unwrap()?;
                assert_eq!(echoed, expected);
                Ok::<_, TransportError>(())
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let stats = client.stats();
        assert_eq!(stats.bi_opened, 40);
        assert!(stats.max_stream_buffered <= 4096);

        client.close(ErrorCode::CANCEL, "done");
        server_task.await.unwrap().unwrap();
    })
    .await
    .expect("stalled: a pending operation was not woken");
}

#[test]
fn handles_are_send_sync_static() {
    fn connection<C: Connection + Send + Sync + 'static>() {}
    fn stream<S: Send + 'static>() {}
    connection::<memory::Connection>();
    stream::<memory::SendStream>();
    stream::<memory::RecvStream>();
}

/// A small deterministic generator, so that the soak test repeats exactly.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Clone, Copy, Debug)]
enum Fate {
    Finish,
    /// The writer resets after writing this many bytes.
    Reset(usize),
    /// The reader stops after reading at least this many bytes.
    Stop(usize),
}

#[test]
fn soak_many_streams_with_random_fates_on_a_shaped_link() {
    paused(async {
        let window = 3000;
        let config = Config::default()
            .bandwidth(1_000_000)
            .delay(Duration::from_millis(5))
            .packet_size(500)
            .stream_window(window)
            .max_streams_uni(5);
        let (client, server) = memory::pair(config);
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let plans: Arc<Mutex<std::collections::HashMap<u64, (Bytes, Fate)>>> = Arc::default();

        let streams = 60;
        let mut writers = Vec::new();
        for n in 0..streams {
            let data = bytes(rng.below(20_000) as usize, n as u8);
            let cut = rng.below(data.len() as u64 + 1) as usize;
            let fate = match rng.below(10) {
                0..=6 => Fate::Finish,
                7 | 8 => Fate::Reset(cut),
                _ => Fate::Stop(cut),
            };
            let priority = rng.below(3) as i32;
            let step = 1 + rng.below(4000) as usize;
            let client = client.clone();
            let plans = plans.clone();
            writers.push(tokio::spawn(async move {
                let mut send = client.open_uni().await.unwrap();
                send.set_priority(priority);
                plans
                    .lock()
                    .unwrap()
                    .insert(send.id(), (data.clone(), fate));
                let end = match fate {
                    Fate::Reset(cut) => cut,
                    _ => data.len(),
                };
                let mut rest = data.slice(..end);
                while !rest.is_empty() {
                    let chunk = rest.split_to(rest.len().min(step));
                    match send.write(chunk).await {
                        Ok(()) => {}
                        Err(TransportError::StreamStopped(code)) => {
                            assert!(matches!(fate, Fate::Stop(_)), "{fate:?}");
                            assert_eq!(code, ErrorCode::app(n).unwrap());
                            return;
                        }
                        Err(err) => panic!("{fate:?}: {err}"),
                    }
                }
                match fate {
                    Fate::Reset(_) => send.reset(ErrorCode::app(n).unwrap()),
                    _ => send.finish().unwrap(),
                }
                let stopped = send.stopped().await.unwrap();
                match fate {
                    Fate::Stop(_) => assert!(
                        stopped.is_none() || stopped == ErrorCode::app(n),
                        "{stopped:?}"
                    ),
                    _ => assert_eq!(stopped, None),
                }
            }));
        }

        let mut readers = Vec::new();
        for _ in 0..streams {
            let mut recv = server.accept_uni().await.unwrap();
            let (data, fate) = plans.lock().unwrap()[&recv.id()].clone();
            let n = ErrorCode(((recv.id() - 2) / 4) as u32 + ErrorCode::APP_BASE);
            readers.push(tokio::spawn(async move {
                let mut received = Vec::new();
                let result = loop {
                    if let Fate::Stop(at) = fate
                        && received.len() >= at
                    {
                        recv.stop(n);
                        break Ok(None);
                    }
                    match recv.read().await {
                        Ok(Some(chunk)) => received.extend_from_slice(&chunk),
                        Ok(None) => break Ok(Some(())),
                        Err(err) => break Err(err),
                    }
                };
                // Whatever happened, what arrived is a prefix of what was written.
                assert_eq!(received, data[..received.len()], "{fate:?}");
                match fate {
                    Fate::Finish => {
                        assert_eq!(result, Ok(Some(())));
                        assert_eq!(received.len(), data.len());
                    }
                    Fate::Reset(cut) => {
                        assert!(received.len() <= cut);
                        // A reset after a complete delivery may still be seen as the end.
                        assert!(
                            result == Err(TransportError::StreamReset(n))
                                || (result == Ok(Some(())) && received.len() == cut),
                            "{result:?}"
                        );
                    }
                    Fate::Stop(_) => assert!(result.is_ok(), "{result:?}"),
                }
            }));
        }
        for task in writers.into_iter().chain(readers) {
            task.await.unwrap();
        }

        let stats = client.stats();
        assert_eq!(stats.uni_opened, u64::from(streams));
        assert!(stats.max_stream_buffered <= window);
        // Every stream was released: a full set of new ones opens at once.
        for _ in 0..5 {
            let mut open = pin!(client.open_uni());
            assert!(poll_once(open.as_mut()).is_ready());
        }
    })
}
