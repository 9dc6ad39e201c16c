//! The subscriber side: our subscribe, announce, info and fetch streams, and the group
//! streams we receive.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use futures_util::future::{BoxFuture, Either, select};
use moq_model::FrameProducer;
use moq_proto::{
    Announce, AnnounceInterest, ErrorCode, GroupDrop, GroupEvent, GroupReader, Info, InfoRequest,
    Path, ReadError, StreamBi, Subscribe, SubscribeUpdate,
};

use crate::Error;
use crate::state::{HeaderWait, Shared};
use crate::stream::{Reader, abort, start_control};
use crate::transport::{Connection, RecvStream, TransportError};

pub(crate) mod fetch;

/// Runs one of our subscriptions (WIRE.md §4.4) until the publisher ends it, it fails, or
/// its last consumer goes; then removes it and ends its track (cleanly, or with the error).
pub(crate) async fn run_subscribe<C: Connection>(
    conn: C,
    shared: Arc<Shared>,
    message: Subscribe,
    unused: BoxFuture<'static, ()>,
) {
    let id = message.id;
    let result = subscribe(conn, &shared, message, unused).await;
    let sub = {
        let mut state = shared.lock();
        let sub = state.subscribe.subs.remove(&id);
        if let Some(sub) = &sub
            && state.subscribe.sub_paths.get(&sub.path) == Some(&id)
        {
            state.subscribe.sub_paths.remove(&sub.path);
        }
        sub
    };
    if let (Some(sub), Err(err)) = (sub, result) {
        sub.producer.abort(err.to_model());
    }
}

async fn subscribe<C: Connection>(
    conn: C,
    shared: &Arc<Shared>,
    message: Subscribe,
    mut unused: BoxFuture<'static, ()>,
) -> Result<(), Error> {
    let id = message.id;
    let open = std::pin::pin!(conn.open_bi());
    let (send, recv) = match select(unused.as_mut(), open).await {
        // Nobody wants the track any more: nothing was sent yet.
        Either::Left(((), _)) => return Ok(()),
        Either::Right((opened, _)) => opened?,
    };
    let mut send = start_control(send, StreamBi::Subscribe, &message).await?;
    let mut reader = Reader::new(recv, shared.config.reader());
    let mut got_info = false;
    loop {
        let event = {
            let info_phase = !got_info;
            let mut next = std::pin::pin!(async {
                if info_phase {
                    Ok(reader.next::<Info>().await?.map(Either::Left))
                } else {
                    Ok(reader.next::<GroupDrop>().await?.map(Either::Right))
                }
            });
            // `Reader::next` is cancel-safe: dropping `next` for an update loses nothing.
            poll_fn(|cx| {
                if unused.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                if let Some(update) = take_update(shared, id, cx) {
                    return Poll::Ready(Some(Either::Left(update)));
                }
                next.as_mut()
                    .poll(cx)
                    .map(|result| Some(Either::Right(result)))
            })
            .await
        };
        // Session::update_subscription (§5.7).
        let event = match event {
            Some(Either::Left(update)) => {
                send.write_message(&update).await?;
                continue;
            }
            Some(Either::Right(result)) => Some(result),
            None => None,
        };
        match event {
            // Unsubscribe (§4.4): FIN our side and stop theirs with 0.
            None => {
                send.finish();
                reader.stop(ErrorCode::CANCEL);
                return Ok(());
            }
            Some(result) => {
                let result: Result<_, Error> = result;
                match result {
                    Ok(Some(Either::Left(info))) => {
                        got_info = true;
                        if let Some(sub) = shared.lock().subscribe.subs.get_mut(&id) {
                            sub.info = Some(info);
                        }
                    }
                    Ok(Some(Either::Right(_drop))) => {
                        shared.lock().subscribe.group_drops_received += 1;
                    }
                    // The publisher ended the subscription: the track ends cleanly, once the
                    // group streams that arrived before the end are in it.
                    Ok(None) => {
                        send.finish();
                        {
                            // A new subscribe to the path starts a new subscription.
                            let mut state = shared.lock();
                            if state.subscribe.sub_paths.get(&message.path) == Some(&id) {
                                state.subscribe.sub_paths.remove(&message.path);
                            }
                        }
                        settle_group_streams(&conn, shared).await;
                        return Ok(());
                    }
                    Err(err) => {
                        if !matches!(err, Error::Transport(_)) {
                            abort(&mut send, &mut reader, err.code());
                        }
                        return Err(err);
                    }
                }
            }
        }
    }
}

/// The update [`Session::update_subscription`](crate::Session::update_subscription) left for
/// subscription `id`, if any; otherwise `cx` is woken when one comes.
fn take_update(shared: &Shared, id: u64, cx: &mut Context<'_>) -> Option<SubscribeUpdate> {
    let mut state = shared.lock();
    let sub = state.subscribe.subs.get_mut(&id)?;
    if let Some(update) = sub.update.take() {
        return Some(update);
    }
    match &mut sub.update_waker {
        Some(waker) => waker.clone_from(cx.waker()),
        None => sub.update_waker = Some(cx.waker().clone()),
    }
    None
}

/// Accepts a group stream: reads it on its own task, counted as pending until its header
/// is read (see [`settle_group_streams`]).
pub(crate) fn spawn_group<R: RecvStream + 'static>(shared: &Arc<Shared>, recv: R) {
    let number = {
        let mut state = shared.lock();
        state.subscribe.groups_accepted += 1;
        let number = state.subscribe.groups_accepted;
        state
            .subscribe
            .headers_pending
            .insert(number, HeaderWait::default());
        number
    };
    let pending = HeaderPending(shared.clone(), number);
    shared.spawn(Box::pin(run_group(shared.clone(), recv, pending)));
}

/// A group stream whose header is not read yet, by the number of its accept: in
/// `headers_pending` until dropped.
struct HeaderPending(Arc<Shared>, u64);

impl HeaderPending {
    /// The stream's reader found no data: noted, with its waker, for the settles waiting.
    fn starved(&self, waker: &Waker) {
        let mut state = self.0.lock();
        if let Some(wait) = state.subscribe.headers_pending.get_mut(&self.1) {
            wait.starved += 1;
            match &mut wait.waker {
                Some(kept) => kept.clone_from(waker),
                None => wait.waker = Some(waker.clone()),
            }
        }
        let waiters = std::mem::take(&mut state.subscribe.header_waiters);
        drop(state);
        waiters.into_iter().for_each(Waker::wake);
    }

    /// `recv.read()`, noting each time it finds no data (see [`settle_group_streams`]).
    async fn read<R: RecvStream>(&self, recv: &mut R) -> Result<Option<Bytes>, TransportError> {
        let mut read = std::pin::pin!(recv.read());
        poll_fn(|cx| {
            let polled = read.as_mut().poll(cx);
            if polled.is_pending() {
                self.starved(cx.waker());
            }
            polled
        })
        .await
    }
}

impl Drop for HeaderPending {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.subscribe.headers_pending.remove(&self.1);
        let waiters = std::mem::take(&mut state.subscribe.header_waiters);
        drop(state);
        waiters.into_iter().for_each(Waker::wake);
    }
}

/// Before a subscription the publisher ended goes: the group streams that have arrived
/// are taken into their tracks. Our publisher ends a subscription only once its group
/// streams are delivered, so they are all here by then, but this task may see the end
/// before the acceptor has taken them, and a group stream for a subscription that is gone
/// is stopped with 13: the last groups would be lost. So: accept what has arrived (without
/// waiting), then give each group stream whose header is not read yet one more read of
/// what it has: the streams of this subscription have all their bytes here, so they reach
/// their track, and a stream of another one that has no data yet (a group started and not
/// written) holds nothing up. Streams accepted later do not count. (A publisher that ends a
/// subscription before its group streams are delivered, as 0.5.0 does, can still lose a
/// group whose header arrives after the end: see `docs/session.md`, "Subscriber side".)
async fn settle_group_streams<C: Connection>(conn: &C, shared: &Arc<Shared>) {
    loop {
        // `accept_uni` is cancel-safe: a fresh future per poll loses nothing.
        let ready = poll_fn(|cx| Poll::Ready(std::pin::pin!(conn.accept_uni()).poll(cx))).await;
        match ready {
            Poll::Ready(Ok(recv)) => spawn_group(shared, recv),
            _ => break,
        }
    }
    // Each stream waiting for data is woken to read again; done once each has either read
    // its header or found no data since.
    let (snapshot, wakers): (Vec<(u64, u64)>, Vec<Waker>) = {
        let mut state = shared.lock();
        let snapshot = state
            .subscribe
            .headers_pending
            .iter()
            .map(|(number, wait)| (*number, wait.starved))
            .collect();
        let wakers = state
            .subscribe
            .headers_pending
            .values_mut()
            .filter_map(|wait| wait.waker.take())
            .collect();
        (snapshot, wakers)
    };
    wakers.into_iter().for_each(Waker::wake);
    poll_fn(|cx| {
        let mut state = shared.lock();
        let read_again = snapshot.iter().all(|(number, starved)| {
            state
                .subscribe
                .headers_pending
                .get(number)
                .is_none_or(|wait| wait.starved > *starved)
        });
        if read_again {
            return Poll::Ready(());
        }
        if !state
            .subscribe
            .header_waiters
            .iter()
            .any(|w| w.will_wake(cx.waker()))
        {
            state.subscribe.header_waiters.push(cx.waker().clone());
        }
        Poll::Pending
    })
    .await;
}

/// Reads one group stream (WIRE.md §4.5) into the track of its subscription.
///
/// Unknown subscribe id → STOP_SENDING 13; too many streams in flight for the subscription
/// → 11; malformed → 5; FIN inside a payload → 14 and the group fails with
/// [`moq_model::Error::WrongSize`] (never a short frame); a reset reaches the group's
/// consumers as the reset's code.
async fn run_group<R: RecvStream>(shared: Arc<Shared>, mut recv: R, pending: HeaderPending) {
    let mut reader = GroupReader::with_config(shared.config.reader());
    let header = loop {
        match reader.next() {
            Ok(Some(GroupEvent::Header(header))) => break header,
            Ok(Some(_)) => unreachable!("the header comes first"),
            Ok(None) => {}
            Err(err) => return recv.stop(err.code()),
        }
        match pending.read(&mut recv).await {
            Ok(Some(chunk)) => reader.push(chunk),
            Ok(None) => {
                let _ = reader.finish();
                return;
            }
            Err(_) => return,
        }
    };
    let group = {
        let mut state = shared.lock();
        let max = shared.config.max_group_streams;
        let Some(sub) = state.subscribe.subs.get_mut(&header.subscribe) else {
            drop(state);
            // §4.5: unknown id (0.5.0 uses 13).
            return recv.stop(ErrorCode::NOT_FOUND);
        };
        if sub.groups >= max {
            drop(state);
            return recv.stop(ErrorCode::BOUNDS_EXCEEDED);
        }
        match sub.producer.create_group(header.sequence) {
            Ok(group) => {
                sub.groups += 1;
                state.subscribe.group_streams_in += 1;
                state.subscribe.groups_received += 1;
                group
            }
            Err(err) => {
                drop(state);
                return recv.stop(err.code());
            }
        }
    };
    // In its subscription's track (or stopped): no longer pending. Not while the lock is
    // held, which the drop takes.
    drop(pending);
    let mut count = GroupCount {
        shared: shared.clone(),
        id: header.subscribe,
        frames: 0,
        bytes: 0,
    };
    let mut group = Some(group);
    let mut frame: Option<FrameProducer> = None;
    // Payload chunks of the current frame that arrived together, written as one.
    let mut pending = Pieces::default();
    // What a read that did not wait returned, other than a chunk: taken at the next read.
    let mut next_read: Option<Result<Option<Bytes>, TransportError>> = None;
    let result: Result<(), moq_model::Error> = async {
        loop {
            while let Some(event) = reader.next().map_err(|e| read_error(&mut recv, e))? {
                let current = group.as_mut().expect("group is live");
                match event {
                    GroupEvent::FrameStart { size } => {
                        // `size` is at most `max_frame_size`, checked by the reader.
                        let producer = current
                            .create_frame(size as usize)
                            .inspect_err(|err| recv.stop(write_refused(*err)))?;
                        frame = Some(producer);
                    }
                    GroupEvent::Payload(chunk) => {
                        count.bytes += chunk.len() as u64;
                        pending.push(chunk);
                    }
                    GroupEvent::FrameEnd => {
                        write_pending(&mut pending, frame.as_mut(), &mut recv)?;
                        frame = None;
                        count.frames += 1;
                    }
                    GroupEvent::Header(_) => unreachable!("one header per stream"),
                }
            }
            write_pending(&mut pending, frame.as_mut(), &mut recv)?;
            let read = match next_read.take() {
                Some(read) => read,
                None => recv.read().await,
            };
            match read {
                Ok(Some(chunk)) => reader.push(chunk),
                Ok(None) => {
                    return reader.finish().map_err(|e| read_error(&mut recv, e));
                }
                Err(err) => return Err(Error::Transport(err).to_model()),
            }
            // Whatever else has arrived already, without waiting (`read` is cancel-safe).
            for _ in 0..READY_CHUNKS {
                let ready = poll_fn(|cx| Poll::Ready(std::pin::pin!(recv.read()).poll(cx))).await;
                match ready {
                    Poll::Ready(Ok(Some(chunk))) => reader.push(chunk),
                    Poll::Ready(other) => {
                        next_read = Some(other);
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
    }
    .await;
    let group = group.take().expect("group is live");
    match result {
        Ok(()) => group.finish(),
        Err(err) => {
            // Abort the group first: its unfinished frame fails with the group's error.
            group.abort(err);
            drop(frame);
        }
    }
}

/// Chunks a group stream reader takes in one go when they have already arrived.
const READY_CHUNKS: usize = 64;

/// Writes the payload chunks of the current frame that arrived together as one chunk.
///
/// A transport hands over stream data as it arrived, about a packet per chunk (quinn: a
/// slice of each datagram, 1.2 to 1.5 KB). Stored as they are, every subscriber's send of a
/// 64 KB frame is some 45 chunks, and quinn's send buffer looks a stream's data up by
/// walking its list of unacknowledged chunks, once per packet: the relay's CPU per byte
/// grew with the number of chunks in flight. One copy here, once per byte whatever the
/// fan-out, makes the chunks as large as what arrived together.
fn write_pending<R: RecvStream>(
    pending: &mut Pieces,
    frame: Option<&mut FrameProducer>,
    recv: &mut R,
) -> Result<(), moq_model::Error> {
    let Some(chunk) = pending.take() else {
        return Ok(());
    };
    if let Some(producer) = frame {
        producer
            .write(chunk)
            .inspect_err(|err| recv.stop(write_refused(*err)))?;
    }
    Ok(())
}

/// Payload chunks that arrived together, handed on as one: a lone chunk as it is (no
/// allocation, the common case for small frames), several joined with one copy into a
/// buffer of their exact total size.
#[derive(Default)]
struct Pieces {
    first: Option<Bytes>,
    /// Chunks after the first; its buffer is reused from one frame to the next.
    more: Vec<Bytes>,
    len: usize,
}

impl Pieces {
    fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        match self.first {
            None => self.first = Some(chunk),
            Some(_) => self.more.push(chunk),
        }
    }

    /// The chunks pushed since the last call, as one; `None` if there were none.
    fn take(&mut self) -> Option<Bytes> {
        let first = self.first.take()?;
        let len = std::mem::take(&mut self.len);
        if self.more.is_empty() {
            return Some(first);
        }
        let mut joined = BytesMut::with_capacity(len);
        joined.extend_from_slice(&first);
        for chunk in self.more.drain(..) {
            joined.extend_from_slice(&chunk);
        }
        Some(joined.freeze())
    }
}

/// The code a group stream is stopped with when the model refuses what arrived on it: 11
/// when the track's memory limits refuse it (the publisher learns why), else 0 (the group
/// was aborted from above, e.g. the subscription went away).
fn write_refused(err: moq_model::Error) -> ErrorCode {
    match err {
        moq_model::Error::BoundsExceeded => ErrorCode::BOUNDS_EXCEEDED,
        _ => ErrorCode::CANCEL,
    }
}

fn read_error<R: RecvStream>(recv: &mut R, err: ReadError) -> moq_model::Error {
    recv.stop(err.code());
    Error::Read(err).to_model()
}

/// Counts a group stream against its subscription while it is read, and the frames and
/// payload bytes read from it, added to the session's totals when it ends (in plain fields
/// until then: no shared write per frame).
struct GroupCount {
    shared: Arc<Shared>,
    id: u64,
    frames: u64,
    bytes: u64,
}

impl Drop for GroupCount {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.subscribe.frames_received += self.frames;
        state.subscribe.payload_bytes_received += self.bytes;
        state.subscribe.group_streams_in = state.subscribe.group_streams_in.saturating_sub(1);
        if let Some(sub) = state.subscribe.subs.get_mut(&self.id) {
            sub.groups = sub.groups.saturating_sub(1);
        }
    }
}

/// Runs one of our announce interests (WIRE.md §4.3) until the publisher ends it, it
/// fails, or its last consumer goes.
pub(crate) async fn run_announced<C: Connection>(
    conn: C,
    shared: Arc<Shared>,
    id: u64,
    prefix: Path,
    unused: BoxFuture<'static, ()>,
) {
    let result = announced(conn, &shared, id, prefix, unused).await;
    let producer = shared.lock().subscribe.announced_in.remove(&id);
    if let (Some(producer), Err(err)) = (producer, result) {
        producer.abort(err.to_model());
    }
}

async fn announced<C: Connection>(
    conn: C,
    shared: &Shared,
    id: u64,
    prefix: Path,
    mut unused: BoxFuture<'static, ()>,
) -> Result<(), Error> {
    // The opening is scoped and the first write boxed: this future lives as long as the
    // interest (one per session on a relay), and they would size it for all that time.
    let (send, recv) = {
        let open = std::pin::pin!(conn.open_bi());
        match select(unused.as_mut(), open).await {
            Either::Left(((), _)) => return Ok(()),
            Either::Right((opened, _)) => opened?,
        }
    };
    let interest = AnnounceInterest {
        prefix: prefix.clone(),
    };
    let mut send = Box::pin(start_control(send, StreamBi::Announce, &interest)).await?;
    let mut reader = Reader::new(recv, shared.config.reader());
    let mut active = 0usize;
    loop {
        let event = {
            let next = std::pin::pin!(reader.next::<Announce>());
            match select(unused.as_mut(), next).await {
                Either::Left(((), _)) => None,
                Either::Right((result, _)) => Some(result),
            }
        };
        let message = match event {
            None => {
                send.finish();
                reader.stop(ErrorCode::CANCEL);
                return Ok(());
            }
            Some(Ok(Some(message))) => message,
            Some(Ok(None)) => {
                send.finish();
                return Ok(());
            }
            Some(Err(err)) => {
                if !matches!(err, Error::Transport(_)) {
                    abort(&mut send, &mut reader, err.code());
                }
                return Err(err);
            }
        };
        // §4.3 subscriber checks: Duplicate (12) for an active path announced again,
        // NotFound (13) for ending a path that is not active.
        let code = {
            let mut state = shared.lock();
            let Some(producer) = state.subscribe.announced_in.get_mut(&id) else {
                return Ok(());
            };
            match message {
                Announce::Active { suffix } => {
                    let path = prefix.join(&suffix);
                    if producer.is_active(&path) {
                        Some(ErrorCode::DUPLICATE)
                    } else if active >= shared.config.max_announced {
                        Some(ErrorCode::BOUNDS_EXCEEDED)
                    } else {
                        producer.announce(path);
                        active += 1;
                        None
                    }
                }
                Announce::Ended { suffix } => {
                    let path = prefix.join(&suffix);
                    if producer.unannounce(&path) {
                        active -= 1;
                        None
                    } else {
                        Some(ErrorCode::NOT_FOUND)
                    }
                }
                // Status 2 (0.7+ "live"): nothing to do.
                Announce::Live => None,
            }
        };
        if let Some(code) = code {
            abort(&mut send, &mut reader, code);
            return Err(moq_model::Error::from_code(code).into());
        }
    }
}

/// Sends an InfoRequest and reads the Info (WIRE.md §4.6).
pub(crate) async fn request_info<C: Connection>(
    conn: C,
    shared: Arc<Shared>,
    path: Path,
) -> Result<Info, Error> {
    if let Some(err) = shared.closed_error() {
        return Err(err);
    }
    let (send, recv) = conn.open_bi().await?;
    let mut send = start_control(send, StreamBi::Info, &InfoRequest { path }).await?;
    let mut reader = Reader::new(recv, shared.config.reader());
    match reader.required::<Info>().await {
        Ok(info) => {
            send.finish();
            Ok(info)
        }
        Err(err) => {
            if !matches!(err, Error::Transport(_)) {
                abort(&mut send, &mut reader, err.code());
            }
            Err(err)
        }
    }
}
