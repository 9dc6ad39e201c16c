//! Several endpoints on one UDP port, so that receiving is spread over cores.
//!
//! A quinn endpoint has one driver task, which receives every datagram of every connection
//! of the endpoint (each ACK from each subscriber of a relay passes through it): on a
//! machine with many cores that task is the ceiling. With `SO_REUSEPORT` (Linux) several
//! sockets bind the same address and the kernel hands each datagram to one of them by a
//! hash of its addresses, so a client's packets keep reaching the same socket, and the
//! endpoint that owns its connection, for as long as its address stays the same.
//!
//! When a client's address changes (NAT rebinding, a phone changing network) its packets
//! may hash to another socket, whose endpoint does not know the connection. So every
//! endpoint issues connection IDs whose first byte is its index ([`OwnedCids`]), and each
//! socket passes a short-header datagram whose destination ID names another endpoint to
//! that endpoint's inbox ([`RoutedSocket`]). Long-header (handshake) packets stay where they
//! arrive: a connection starts on the endpoint that got its first packet, and QUIC forbids
//! a client to migrate before its handshake is confirmed.

use std::collections::VecDeque;
use std::fmt;
use std::hash::BuildHasher;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, ConnectionId, ConnectionIdGenerator, UdpPoller};

/// The length of the connection IDs the endpoints issue (as quinn's default generator).
pub(crate) const CID_LEN: usize = 8;

/// The most endpoints on one port: an endpoint's index is one byte of its connection IDs.
pub(crate) const MAX_ENDPOINTS: usize = 256;

/// Bytes of datagrams waiting in all the inboxes together at most, as much as one socket's
/// kernel buffer: beyond, new ones are dropped, as a full socket buffer would drop them
/// (QUIC resends what was lost), so a flood of datagrams naming other endpoints cannot
/// grow memory.
const FORWARD_LIMIT: usize = crate::socket::SOCKET_BUFFER;

/// The inboxes of the endpoints sharing a port.
pub(crate) struct Router {
    inboxes: Box<[Mutex<Inbox>]>,
    /// Bytes waiting in the inboxes, within [`FORWARD_LIMIT`].
    queued: AtomicUsize,
    forwarded: AtomicU64,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("endpoints", &self.inboxes.len())
            .field("forwarded", &self.forwarded())
            .finish()
    }
}

/// Datagrams other sockets received for this endpoint, and the waker of its driver.
#[derive(Default)]
struct Inbox {
    datagrams: VecDeque<(RecvMeta, Box<[u8]>)>,
    waker: Option<Waker>,
}

impl Router {
    /// Inboxes for `endpoints` endpoints (at most [`MAX_ENDPOINTS`]).
    pub(crate) fn new(endpoints: usize) -> Arc<Self> {
        debug_assert!(endpoints <= MAX_ENDPOINTS);
        Arc::new(Self {
            inboxes: (0..endpoints).map(|_| Mutex::default()).collect(),
            queued: AtomicUsize::new(0),
            forwarded: AtomicU64::new(0),
        })
    }

    /// Datagrams passed from the socket that received them to the endpoint owning their
    /// connection, since the start.
    pub(crate) fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    /// The endpoint owning a datagram's connection, if it says: a short header (first bit
    /// 0) followed by one of our connection IDs, whose first byte is the endpoint's index.
    fn owner(&self, datagram: &[u8]) -> Option<usize> {
        if datagram.len() < 1 + CID_LEN || datagram[0] & 0x80 != 0 {
            return None;
        }
        let owner = usize::from(datagram[1]);
        (owner < self.inboxes.len()).then_some(owner)
    }

    fn inbox(&self, index: usize) -> std::sync::MutexGuard<'_, Inbox> {
        self.inboxes[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a datagram for endpoint `to` and wakes its driver.
    fn forward(&self, to: usize, meta: &RecvMeta, datagram: &[u8]) {
        let reserved = self.queued.fetch_add(datagram.len(), Ordering::Relaxed);
        if reserved + datagram.len() > FORWARD_LIMIT {
            self.queued.fetch_sub(datagram.len(), Ordering::Relaxed);
            return;
        }
        let waker = {
            let mut inbox = self.inbox(to);
            let mut meta = *meta;
            meta.len = datagram.len();
            meta.stride = datagram.len();
            inbox.datagrams.push_back((meta, datagram.into()));
            inbox.waker.take()
        };
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Moves datagrams from endpoint `index`'s inbox into quinn's receive buffers; with
    /// none, leaves the driver's waker for [`forward`](Self::forward). Returns how many.
    fn take(
        &self,
        index: usize,
        cx: &Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> usize {
        let mut inbox = self.inbox(index);
        let mut taken = 0;
        while taken < bufs.len().min(meta.len()) {
            let Some((m, datagram)) = inbox.datagrams.pop_front() else {
                break;
            };
            self.queued.fetch_sub(datagram.len(), Ordering::Relaxed);
            // A buffer holds the largest datagram the endpoint accepts; a larger one is
            // dropped, as its own socket would have.
            if let Some(buf) = bufs[taken].get_mut(..datagram.len()) {
                buf.copy_from_slice(&datagram);
                meta[taken] = m;
                taken += 1;
            }
        }
        if taken == 0
            && !inbox
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            inbox.waker = Some(cx.waker().clone());
        }
        taken
    }

    /// Passes on the datagrams among the first `received` that belong to other endpoints
    /// and compacts the rest (what endpoint `index` keeps) to the front. Returns how many
    /// entries are kept. A received entry may hold several datagrams of `stride` bytes
    /// (GRO); those kept stay in order, so only the last can be shorter than the stride.
    fn sort(
        &self,
        index: usize,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
        received: usize,
    ) -> usize {
        let mut kept = 0;
        for i in 0..received {
            let m = meta[i];
            // An empty datagram (UDP allows them) names nobody: dropped below, as quinn would.
            let stride = if m.stride == 0 { m.len } else { m.stride }.max(1);
            let buf = &mut bufs[i][..m.len];
            let foreign = |d: &[u8]| self.owner(d).is_some_and(|owner| owner != index);
            let len = if !buf.chunks(stride).any(foreign) {
                m.len
            } else {
                let (mut read, mut write) = (0, 0);
                while read < m.len {
                    let end = (read + stride).min(m.len);
                    match self.owner(&buf[read..end]) {
                        Some(owner) if owner != index => self.forward(owner, &m, &buf[read..end]),
                        _ => {
                            buf.copy_within(read..end, write);
                            write += end - read;
                        }
                    }
                    read = end;
                }
                write
            };
            if len == 0 {
                continue;
            }
            if kept != i {
                let (front, back) = bufs.split_at_mut(i);
                front[kept][..len].copy_from_slice(&back[0][..len]);
            }
            meta[kept] = m;
            meta[kept].len = len;
            kept += 1;
        }
        kept
    }
}

/// One endpoint's socket: quinn's own, whose received datagrams are sorted by owner, plus
/// the inbox of what the other sockets passed on.
pub(crate) struct RoutedSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    index: usize,
    router: Arc<Router>,
}

impl RoutedSocket {
    pub(crate) fn new(inner: Arc<dyn AsyncUdpSocket>, index: usize, router: Arc<Router>) -> Self {
        Self {
            inner,
            index,
            router,
        }
    }
}

impl fmt::Debug for RoutedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutedSocket")
            .field("index", &self.index)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl AsyncUdpSocket for RoutedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let taken = self.router.take(self.index, cx, bufs, meta);
        if taken > 0 {
            return Poll::Ready(Ok(taken));
        }
        loop {
            let received = ready!(self.inner.poll_recv(cx, bufs, meta))?;
            let kept = self.router.sort(self.index, bufs, meta, received);
            if kept > 0 {
                return Poll::Ready(Ok(kept));
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// Connection IDs of [`CID_LEN`] bytes: the endpoint's index, then random bytes.
pub(crate) struct OwnedCids {
    owner: u8,
    issued: u64,
}

impl OwnedCids {
    pub(crate) fn new(owner: u8) -> Self {
        Self { owner, issued: 0 }
    }
}

impl ConnectionIdGenerator for OwnedCids {
    fn generate_cid(&mut self) -> ConnectionId {
        // A SipHash under a fresh key from the operating system's randomness (std's
        // `RandomState`): unpredictable to an observer, and it cannot fail.
        self.issued += 1;
        let random = std::hash::RandomState::new().hash_one(self.issued);
        let mut bytes = [0; CID_LEN];
        bytes[0] = self.owner;
        bytes[1..].copy_from_slice(&random.to_le_bytes()[..CID_LEN - 1]);
        ConnectionId::new(&bytes)
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short-header packet for a connection ID starting with `owner`.
    fn short(owner: u8, fill: u8, len: usize) -> Vec<u8> {
        let mut packet = vec![fill; len];
        packet[0] = 0x40;
        packet[1] = owner;
        packet
    }

    fn meta(len: usize, stride: usize) -> RecvMeta {
        RecvMeta {
            addr: "127.0.0.1:9".parse().unwrap(),
            len,
            stride,
            ..RecvMeta::default()
        }
    }

    fn inbox_len(router: &Router, index: usize) -> usize {
        router.inbox(index).datagrams.len()
    }

    #[test]
    fn ids_name_their_endpoint_and_differ() {
        let mut cids = OwnedCids::new(3);
        let a = cids.generate_cid();
        let b = cids.generate_cid();
        assert_eq!(a.len(), CID_LEN);
        assert_eq!((a[0], b[0]), (3, 3));
        assert_ne!(a[1..], b[1..]);
    }

    #[test]
    fn long_headers_short_packets_and_unknown_owners_stay() {
        let router = Router::new(2);
        assert_eq!(router.owner(&short(1, 0, 30)), Some(1));
        let mut long = short(1, 0, 30);
        long[0] = 0xc0;
        assert_eq!(
            router.owner(&long),
            None,
            "handshake packets stay where they land"
        );
        assert_eq!(
            router.owner(&short(1, 0, CID_LEN)),
            None,
            "too short for an ID"
        );
        assert_eq!(router.owner(&short(7, 0, 30)), None, "not one of ours");
    }

    #[test]
    fn foreign_segments_are_passed_on_and_the_rest_compacted() {
        let router = Router::new(3);
        // Entry 0: one datagram for endpoint 2. Entry 1: three GRO segments of 20 bytes
        // (ours, endpoint 1's, ours with a short last one). Entry 2: one of ours.
        let mut b0 = short(2, 0xa0, 20);
        let mut b1 = [short(0, 0xb1, 20), short(1, 0xb2, 20), short(0, 0xb3, 12)].concat();
        let mut b2 = short(0, 0xc0, 25);
        let lens = [b0.len(), b1.len(), b2.len()];
        b0.resize(64, 0);
        b1.resize(64, 0);
        b2.resize(64, 0);
        let mut bufs = [
            IoSliceMut::new(&mut b0),
            IoSliceMut::new(&mut b1),
            IoSliceMut::new(&mut b2),
        ];
        let mut metas = [meta(lens[0], 20), meta(lens[1], 20), meta(lens[2], 25)];

        let kept = router.sort(0, &mut bufs, &mut metas, 3);

        assert_eq!(kept, 2);
        assert_eq!((metas[0].len, metas[0].stride), (32, 20));
        assert_eq!(
            bufs[0][..32],
            [short(0, 0xb1, 20), short(0, 0xb3, 12)].concat()
        );
        assert_eq!(metas[1].len, 25);
        assert_eq!(bufs[1][..25], short(0, 0xc0, 25));
        assert_eq!((inbox_len(&router, 1), inbox_len(&router, 2)), (1, 1));
        assert_eq!(router.forwarded(), 2);
        let (m, datagram) = router.inbox(1).datagrams.pop_front().unwrap();
        assert_eq!(
            (m.len, m.stride, &*datagram),
            (20, 20, &short(1, 0xb2, 20)[..])
        );
    }

    #[test]
    fn an_empty_datagram_is_dropped() {
        let router = Router::new(2);
        let mut storage = [[0u8; 64]; 2];
        let [a, b] = &mut storage;
        b[..30].copy_from_slice(&short(0, 5, 30));
        let mut bufs = [IoSliceMut::new(a), IoSliceMut::new(b)];
        let mut metas = [meta(0, 0), meta(30, 30)];
        assert_eq!(router.sort(0, &mut bufs, &mut metas, 2), 1);
        assert_eq!(metas[0].len, 30);
        assert_eq!(bufs[0][..30], short(0, 5, 30));
        assert_eq!(router.forwarded(), 0);
    }

    #[test]
    fn the_inboxes_are_bounded_and_deliver_in_order() {
        const SIZE: usize = 1000;
        let fit = FORWARD_LIMIT / SIZE;
        let router = Router::new(3);
        for i in 0..fit + 10 {
            router.forward(1 + i % 2, &meta(0, 0), &short(1, i as u8, SIZE));
        }
        assert_eq!(inbox_len(&router, 1) + inbox_len(&router, 2), fit);
        assert_eq!(router.forwarded(), fit as u64);

        let waker = Waker::noop();
        let cx = Context::from_waker(waker);
        let mut storage = [[0u8; SIZE]; 4];
        let mut bufs = storage.each_mut().map(|b| IoSliceMut::new(b));
        let mut metas = [RecvMeta::default(); 4];
        assert_eq!(router.take(1, &cx, &mut bufs, &mut metas), 4);
        for (i, m) in metas.iter().enumerate() {
            assert_eq!(m.len, SIZE);
            assert_eq!(
                bufs[i][2],
                (2 * i) as u8,
                "endpoint 1 got every other one, in order"
            );
        }
        // Room again for what was taken.
        router.forward(2, &meta(0, 0), &short(1, 0, SIZE));
        assert_eq!(router.forwarded(), fit as u64 + 1);
    }

    #[test]
    fn an_empty_inbox_keeps_the_waker_and_forward_wakes_it() {
        use std::sync::atomic::AtomicBool;
        use std::task::Wake;

        struct Flag(AtomicBool);
        impl Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let cx = Context::from_waker(&waker);
        let router = Router::new(2);
        let mut storage = [0u8; 64];
        let mut bufs = [IoSliceMut::new(&mut storage)];
        let mut metas = [RecvMeta::default()];
        assert_eq!(router.take(0, &cx, &mut bufs, &mut metas), 0);
        router.forward(0, &meta(0, 0), &short(0, 1, 30));
        assert!(flag.0.load(Ordering::SeqCst));
        assert_eq!(router.take(0, &cx, &mut bufs, &mut metas), 1);
    }
}
