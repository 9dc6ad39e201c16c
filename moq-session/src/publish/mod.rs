//! The publisher side: the peer's control streams (announce, subscribe, fetch, info) and
//! the group streams we send (`subscription`, scheduled by `scheduler`).

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use futures_util::future::{Either, select};
use moq_model::{Announced, Track, TrackConsumer};
use moq_proto::{Announce, AnnounceInterest, ErrorCode, Fetch, Frame, Info, InfoRequest, StreamBi};

use crate::state::Shared;
use crate::stream::{CONTROL_PRIORITY, Reader, Sender, abort};
use crate::transport::{Connection, RecvStream, SendStream};
use announce::Merged;
pub use scheduler::group_priority;

mod announce;
mod scheduler;
mod subscription;

/// Serves one bidirectional stream the peer opened, by its type (WIRE.md §4.1).
///
/// A plain function around an `async move` block, here and in the subscription it serves:
/// an `async fn` keeps its arguments in its state twice (as taken and as moved into its
/// body), and this future lives as long as the stream (a subscription: as long as it is
/// served).
pub(crate) fn run_bi<C: Connection>(
    conn: C,
    shared: Arc<Shared>,
    send: C::SendStream,
    recv: C::RecvStream,
) -> impl Future<Output = ()> + Send {
    let mut send = Sender::new(send);
    let mut reader = Reader::new(recv, shared.config.reader());
    async move {
        send.set_priority(CONTROL_PRIORITY);
        let kind = match reader.next::<StreamBi>().await {
            Ok(Some(kind)) => kind,
            Ok(None) => return send.finish(),
            // An unknown type is a decode error: reset+stop 5, the session goes on (§4.1).
            Err(err) => return abort(&mut send, &mut reader, err.code()),
        };
        match kind {
            // §4.2: a second session stream is reset+stopped with 10; the session continues.
            StreamBi::Session => abort(&mut send, &mut reader, ErrorCode::UNEXPECTED_STREAM),
            StreamBi::Announce => serve_announce(shared, send, reader).await,
            StreamBi::Subscribe => subscription::serve_subscribe(conn, shared, send, reader).await,
            StreamBi::Fetch => serve_fetch(shared, send, reader).await,
            StreamBi::Info => serve_info(shared, send, reader).await,
        }
    }
}

/// Decrements a counter of the shared state when dropped.
struct Counted {
    shared: Arc<Shared>,
    which: fn(&mut crate::state::State) -> &mut usize,
}

impl Counted {
    /// Counts one more unless the counter is at `max`.
    fn acquire(
        shared: &Arc<Shared>,
        max: usize,
        which: fn(&mut crate::state::State) -> &mut usize,
    ) -> Option<Self> {
        let mut state = shared.lock();
        let count = which(&mut state);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Self {
            shared: shared.clone(),
            which,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let count = (self.which)(&mut state);
        *count = count.saturating_sub(1);
    }
}

/// §4.3: write Active for every current match, then the changes, until the subscriber
/// ends the stream. The matches are the session's own published paths and those of its
/// announce sources ([`Merged`]).
async fn serve_announce<S: SendStream, R: RecvStream>(
    shared: Arc<Shared>,
    mut send: Sender<S>,
    mut reader: Reader<R>,
) {
    let Some(_count) = Counted::acquire(&shared, shared.config.max_announce_streams, |s| {
        &mut s.publish.announce_streams
    }) else {
        return abort(&mut send, &mut reader, ErrorCode::BOUNDS_EXCEEDED);
    };
    let interest = match reader.required::<AnnounceInterest>().await {
        Ok(interest) => interest,
        Err(err) => return abort(&mut send, &mut reader, err.code()),
    };
    let prefix = interest.prefix;
    let mut merged = Merged::new(&shared, prefix.clone());
    loop {
        let event = {
            let next = std::pin::pin!(poll_fn(|cx| merged.poll_next(cx)));
            let closed = std::pin::pin!(reader.closed());
            match select(next, closed).await {
                Either::Left((event, _)) => event,
                // The subscriber ended its side (or reset it): we are done too.
                Either::Right((Ok(()), _)) => return send.finish(),
                Either::Right((Err(_), _)) => return send.reset(ErrorCode::CANCEL),
            }
        };
        let message = match event {
            Ok(Some(Announced::Active(path))) => path
                .strip_prefix(&prefix)
                .map(|suffix| Announce::Active { suffix }),
            Ok(Some(Announced::Ended(path))) => path
                .strip_prefix(&prefix)
                .map(|suffix| Announce::Ended { suffix }),
            Ok(None) => return send.finish(),
            Err(err) => return abort(&mut send, &mut reader, err.code()),
        };
        if let Some(message) = message
            && send.write_message(&message).await.is_err()
        {
            return abort(&mut send, &mut reader, ErrorCode::TRANSPORT);
        }
    }
}

/// §4.6: Info then FIN; unknown → reset+stop 13.
///
/// A path nobody published here is asked of the router, as a subscription would be (§12: a
/// relay forwards the request upstream): the Info describes the track the router serves,
/// and the track is dropped once the Info is written. A router rejection resets the stream
/// with its code.
async fn serve_info<S: SendStream, R: RecvStream>(
    shared: Arc<Shared>,
    mut send: Sender<S>,
    mut reader: Reader<R>,
) {
    let request = match reader.required::<InfoRequest>().await {
        Ok(request) => request,
        Err(err) => return abort(&mut send, &mut reader, err.code()),
    };
    let Ok(_shared_count) = shared_permit(&shared) else {
        return abort(&mut send, &mut reader, ErrorCode::BOUNDS_EXCEEDED);
    };
    let track = match resolve(&shared, Track::new(request.path)).await {
        Ok(track) => track,
        Err(code) => return abort(&mut send, &mut reader, code),
    };
    if send.write_message(&info(&track)).await.is_ok() {
        send.finish();
    }
}

fn info(track: &TrackConsumer) -> Info {
    let description = track.info();
    Info {
        track_priority: description.priority,
        group_order: description.group_order,
        group_expires: description.group_expires,
        // §5.8: 0 when there is no group yet.
        group_latest: track.latest().unwrap_or(0),
    }
}

/// §4.7 with the draft-02 meaning: the cached group's stream contents after the Group
/// header (frame headers and payloads), from byte `offset`, then FIN. Unknown track or
/// group → reset+stop 13; a router's rejection → reset+stop with its code.
async fn serve_fetch<S: SendStream, R: RecvStream>(
    shared: Arc<Shared>,
    mut send: Sender<S>,
    mut reader: Reader<R>,
) {
    let fetch = match reader.required::<Fetch>().await {
        Ok(fetch) => fetch,
        Err(err) => return abort(&mut send, &mut reader, err.code()),
    };
    let Ok(_shared_count) = shared_permit(&shared) else {
        return abort(&mut send, &mut reader, ErrorCode::BOUNDS_EXCEEDED);
    };
    // A path nobody published here is asked of the router, as Info is (a relay serves the
    // group from its cache of the upstream track, or refuses with its own code).
    let track = match resolve(&shared, Track::new(fetch.path.clone())).await {
        Ok(track) => track,
        Err(code) => return abort(&mut send, &mut reader, code),
    };
    let Some(mut group) = track.group(fetch.group) else {
        return abort(&mut send, &mut reader, ErrorCode::NOT_FOUND);
    };
    // `track` lives until the reply ends: a routed track's last consumer going would end
    // its subscription upstream, and with it a group still being received.
    send.set_priority(i32::from(fetch.priority) << 24);
    let mut skip = fetch.offset;
    let result: Result<(), ErrorCode> = async {
        // A live group may keep us waiting: a subscriber that stops the stream meanwhile
        // ends the reply at once, not at the next write.
        while let Some(mut frame) = unless_stopped(&mut send, group.next_frame())
            .await?
            .map_err(|e| e.code())?
        {
            let header = Frame {
                size: frame.size() as u64,
            };
            let header = moq_proto::Encode::to_bytes(&header);
            write_skipping(&mut send, header, &mut skip).await?;
            while let Some(chunk) = unless_stopped(&mut send, frame.read_chunk())
                .await?
                .map_err(|e| e.code())?
            {
                write_skipping(&mut send, chunk, &mut skip).await?;
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => send.finish(),
        Err(code) => abort(&mut send, &mut reader, code),
    }
}

async fn write_skipping<S: SendStream>(
    send: &mut Sender<S>,
    mut bytes: bytes::Bytes,
    skip: &mut u64,
) -> Result<(), ErrorCode> {
    let len = bytes.len() as u64;
    if *skip >= len {
        *skip -= len;
        return Ok(());
    }
    let _ = bytes.split_to(*skip as usize);
    *skip = 0;
    send.write(bytes).await.map_err(|_| ErrorCode::TRANSPORT)
}

/// `wait`'s value, or the subscriber's STOP_SENDING code if it stops the stream first.
async fn unless_stopped<S: SendStream, T>(
    send: &mut Sender<S>,
    wait: impl Future<Output = T>,
) -> Result<T, ErrorCode> {
    let mut wait = std::pin::pin!(wait);
    // Most waits are over at once (the frame's bytes are there): then no stop watch, which
    // costs the connection's lock and a waiter registration (quinn) for each one.
    let ready = poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx))).await;
    if let Poll::Ready(value) = ready {
        return Ok(value);
    }
    let stop = std::pin::pin!(send.stop_code());
    match select(wait, stop).await {
        Either::Left((value, _)) => Ok(value),
        Either::Right((code, _)) => Err(code),
    }
}

/// A permit of [`SessionConfig::shared_subscriptions`], held while a subscription, an Info or
/// a Fetch request is served (each may hold a track, and a relay's router an upstream
/// subscription); `Ok(None)` without a shared limit, `Err` when it is reached.
fn shared_permit(shared: &Shared) -> Result<Option<crate::SharedPermit>, ()> {
    match &shared.config.shared_subscriptions {
        Some(limit) => limit.try_acquire().map(Some).ok_or(()),
        None => Ok(None),
    }
}

/// Finds a track: published tracks and broadcasts, then the router (asked for `track`, which
/// carries what the subscriber wants).
async fn resolve(shared: &Shared, track: Track) -> Result<TrackConsumer, ErrorCode> {
    if let Some(published) = shared.published(&track.path) {
        return Ok(published);
    }
    let router = shared.lock().publish.router.clone();
    let Some(router) = router else {
        return Err(ErrorCode::NOT_FOUND);
    };
    router.subscribe(track).await.map_err(|e| e.code())
}
