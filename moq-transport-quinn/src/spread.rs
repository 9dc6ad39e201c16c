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
//! endpoint issues connection IDs whose first byte is its index and whose last two are a
//! tag keyed by a secret the endpoints share ([`OwnedCids`]), and each socket passes a
//! short-header datagram whose destination ID names another endpoint, with a tag that
//! checks, to that endpoint's inbox ([`RoutedSocket`]). Long-header (handshake) packets stay
//! where they arrive: a connection starts on the endpoint that got its first packet, and
//! QUIC forbids a client to migrate before its handshake is confirmed.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, ConnectionId, ConnectionIdGenerator, UdpPoller};
use ring::hmac;

/// The length of the connection IDs the endpoints issue (as quinn's default generator):
/// the endpoint's index, five pseudo-random bytes, a two-byte tag.
pub(crate) const CID_LEN: usize = 8;

/// Where the tag starts in a connection ID.
const TAG_AT: usize = CID_LEN - 2;

/// The most endpoints on one port: an endpoint's index is one byte of its connection IDs.
pub(crate) const MAX_ENDPOINTS: usize = 256;

/// The smallest datagram passed on: a short header with our connection ID, a packet
/// number and the 16-byte sample header protection needs (RFC 9001 §5.4.2). Anything
/// shorter is not a packet, wherever it goes.
const MIN_FORWARDED: usize = 1 + CID_LEN + 4 + 16;

/// What one inbox may hold: datagrams whose bytes and allocations ([`ALLOCATION_COST`]
/// each) come to at most this, and at most [`INBOX_ENTRIES`] of them. Beyond, new ones are
/// dropped, as a full socket buffer would drop them (QUIC resends what was lost). Per inbox,
/// so that an endpoint slow to drain its own cannot stop what goes to the others. With the
/// queue's own slots, an inbox holds at most about 1.35 MiB.
const INBOX_LIMIT: usize = 1 << 20;

/// The most datagrams waiting in one inbox: its queue's slots stay within 4,096 of 88 bytes.
const INBOX_ENTRIES: usize = 4096;

/// A waiting datagram's allocation besides its bytes (the allocator's bookkeeping).
const ALLOCATION_COST: usize = 16;

/// An inbox whose queue grew past this many entries gives the room back once drained.
const INBOX_KEEP: usize = 64;

/// The secret the endpoints of one port share: it makes our connection IDs checkable, so
/// that neither the sockets nor quinn act on IDs that are not ours (junk, or a peer's
/// stateless reset, whose ID is random).
pub(crate) struct CidKey(hmac::Key);

impl CidKey {
    /// A fresh key from the operating system's randomness.
    pub(crate) fn generate() -> io::Result<Arc<Self>> {
        hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .map(|key| Arc::new(Self(key)))
            .map_err(|_| io::Error::other("no randomness for the connection ID key"))
    }

    /// The tag of a connection ID's first [`TAG_AT`] bytes.
    fn tag(&self, head: &[u8]) -> [u8; 2] {
        let tag = hmac::sign(&self.0, head);
        [tag.as_ref()[0], tag.as_ref()[1]]
    }

    /// Whether `cid` is one of ours: its tag checks.
    fn checks(&self, cid: &[u8]) -> bool {
        cid.len() == CID_LEN && self.tag(&cid[..TAG_AT]) == cid[TAG_AT..]
    }
}

/// The inboxes of the endpoints sharing a port.
pub(crate) struct Router {
    inboxes: Box<[Mutex<Inbox>]>,
    key: Arc<CidKey>,
    counters: Arc<RouterCounters>,
}

/// What a [`Router`] counted since the start, apart from it so that reading them does not
/// keep the inboxes.
#[derive(Debug, Default)]
pub(crate) struct RouterCounters {
    /// Datagrams passed from the socket that received them to the endpoint owning their
    /// connection.
    pub(crate) forwarded: AtomicU64,
    /// Datagrams for another endpoint dropped instead: its inbox full, or its socket gone.
    pub(crate) dropped: AtomicU64,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("endpoints", &self.inboxes.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// Datagrams other sockets received for this endpoint, and the waker of its driver.
#[derive(Default)]
struct Inbox {
    datagrams: VecDeque<(RecvMeta, Box<[u8]>)>,
    /// What they cost, within [`INBOX_LIMIT`].
    cost: usize,
    waker: Option<Waker>,
    /// The endpoint's socket is gone: nothing is queued any more.
    closed: bool,
}

impl Router {
    /// Inboxes for `endpoints` endpoints (at most [`MAX_ENDPOINTS`]) whose connection IDs
    /// are tagged with `key`.
    pub(crate) fn new(endpoints: usize, key: Arc<CidKey>) -> Arc<Self> {
        debug_assert!(endpoints <= MAX_ENDPOINTS);
        Arc::new(Self {
            inboxes: (0..endpoints).map(|_| Mutex::default()).collect(),
            key,
            counters: Arc::default(),
        })
    }

    /// What it counted, as a handle that does not keep the inboxes.
    pub(crate) fn counters(&self) -> Arc<RouterCounters> {
        self.counters.clone()
    }

    #[cfg(test)]
    fn forwarded(&self) -> u64 {
        self.counters.forwarded.load(Ordering::Relaxed)
    }

    /// The endpoint other than `index` that a datagram's first bytes name, unchecked: a
    /// short header (first bit 0) whose destination ID starts with that endpoint's index.
    /// Cheap, for every datagram.
    fn names_other(&self, index: usize, datagram: &[u8]) -> Option<usize> {
        if datagram.len() < MIN_FORWARDED || datagram[0] & 0x80 != 0 {
            return None;
        }
        let owner = usize::from(datagram[1]);
        (owner != index && owner < self.inboxes.len()).then_some(owner)
    }

    /// [`names_other`](Self::names_other), with the ID's tag checked: one of our IDs, owned
    /// by that endpoint. A keyed hash, only for the datagrams that name another endpoint.
    fn elsewhere(&self, index: usize, datagram: &[u8]) -> Option<usize> {
        let owner = self.names_other(index, datagram)?;
        self.key.checks(&datagram[1..1 + CID_LEN]).then_some(owner)
    }

    fn inbox(&self, index: usize) -> std::sync::MutexGuard<'_, Inbox> {
        self.inboxes[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a datagram for endpoint `to` and wakes its driver.
    fn forward(&self, to: usize, meta: &RecvMeta, datagram: &[u8]) {
        let cost = datagram.len() + ALLOCATION_COST;
        let waker = {
            let mut inbox = self.inbox(to);
            if inbox.closed
                || inbox.cost + cost > INBOX_LIMIT
                || inbox.datagrams.len() >= INBOX_ENTRIES
            {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let mut meta = *meta;
            meta.len = datagram.len();
            meta.stride = datagram.len();
            inbox.datagrams.push_back((meta, datagram.into()));
            inbox.cost += cost;
            inbox.waker.take()
        };
        self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
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
            inbox.cost -= datagram.len() + ALLOCATION_COST;
            // A buffer holds the largest datagram the endpoint accepts; a larger one is
            // dropped, as its own socket would have.
            if let Some(buf) = bufs[taken].get_mut(..datagram.len()) {
                buf.copy_from_slice(&datagram);
                meta[taken] = m;
                taken += 1;
            }
        }
        if inbox.datagrams.is_empty() && inbox.datagrams.capacity() > INBOX_KEEP {
            inbox.datagrams.shrink_to(INBOX_KEEP);
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
            // The tags are checked below, once, only if a datagram names another endpoint.
            let len = if !buf
                .chunks(stride)
                .any(|d| self.names_other(index, d).is_some())
            {
                m.len
            } else {
                let (mut read, mut write) = (0, 0);
                while read < m.len {
                    let end = (read + stride).min(m.len);
                    match self.elsewhere(index, &buf[read..end]) {
                        Some(owner) => self.forward(owner, &m, &buf[read..end]),
                        None => {
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

/// The endpoint is gone (quinn drops its socket with it): what waits in its inbox, and
/// whatever would come, is dropped instead of kept for nobody.
impl Drop for RoutedSocket {
    fn drop(&mut self) {
        let mut inbox = self.router.inbox(self.index);
        inbox.closed = true;
        inbox.datagrams = VecDeque::new();
        inbox.cost = 0;
        inbox.waker = None;
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
        let n = bufs.len().min(meta.len());
        // At most half of quinn's batch (32 on Linux) from the inbox, the rest from the
        // socket: what others pass on never starves the socket's own datagrams.
        let half = (n / 2).max(1).min(n);
        let taken = self
            .router
            .take(self.index, cx, &mut bufs[..half], &mut meta[..half]);
        if taken == n {
            return Poll::Ready(Ok(taken));
        }
        let (bufs, meta) = (&mut bufs[taken..n], &mut meta[taken..n]);
        loop {
            match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(received)) => {
                    let kept = self.router.sort(self.index, bufs, meta, received);
                    if taken + kept > 0 {
                        return Poll::Ready(Ok(taken + kept));
                    }
                    // Everything was passed on: read again.
                }
                // quinn ignores a reset (an ICMP error an attacker can forge); any other
                // error ends the endpoint, and what was taken with it no longer matters.
                Poll::Ready(Err(e)) if taken == 0 || e.kind() != io::ErrorKind::ConnectionReset => {
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Err(_)) | Poll::Pending if taken > 0 => {
                    return Poll::Ready(Ok(taken));
                }
                Poll::Ready(Err(_)) | Poll::Pending => return Poll::Pending,
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

/// Connection IDs of [`CID_LEN`] bytes for one endpoint: its index, five bytes of a keyed
/// hash of a count (unpredictable without the key, and distinct), and the tag.
pub(crate) struct OwnedCids {
    owner: u8,
    key: Arc<CidKey>,
    issued: u64,
}

impl OwnedCids {
    pub(crate) fn new(owner: u8, key: Arc<CidKey>) -> Self {
        Self {
            owner,
            key,
            issued: 0,
        }
    }
}

impl ConnectionIdGenerator for OwnedCids {
    fn generate_cid(&mut self) -> ConnectionId {
        self.issued += 1;
        let mut input = [0; 9];
        input[0] = self.owner;
        input[1..].copy_from_slice(&self.issued.to_le_bytes());
        let nonce = hmac::sign(&self.key.0, &input);
        let mut cid = [0; CID_LEN];
        cid[0] = self.owner;
        cid[1..TAG_AT].copy_from_slice(&nonce.as_ref()[..TAG_AT - 1]);
        let tag = self.key.tag(&cid[..TAG_AT]);
        cid[TAG_AT..].copy_from_slice(&tag);
        ConnectionId::new(&cid)
    }

    /// Lets quinn drop, instead of answering with a stateless reset, short-header packets
    /// whose ID is not ours.
    fn validate(&self, cid: &ConnectionId) -> Result<(), quinn_proto::InvalidCid> {
        if self.key.checks(cid) {
            Ok(())
        } else {
            Err(quinn_proto::InvalidCid)
        }
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

    fn key() -> Arc<CidKey> {
        CidKey::generate().unwrap()
    }

    /// A short-header packet of `len` bytes (filled with `fill`) for a connection ID that
    /// endpoint `owner` issued under `key`.
    fn short(key: &Arc<CidKey>, owner: u8, fill: u8, len: usize) -> Vec<u8> {
        let cid = OwnedCids::new(owner, key.clone()).generate_cid();
        let mut packet = vec![fill; len];
        packet[0] = 0x40;
        packet[1..1 + CID_LEN].copy_from_slice(&cid);
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
    fn ids_name_their_endpoint_check_and_differ() {
        let key = key();
        let mut cids = OwnedCids::new(3, key.clone());
        let a = cids.generate_cid();
        let b = cids.generate_cid();
        assert_eq!(a.len(), CID_LEN);
        assert_eq!((a[0], b[0]), (3, 3));
        assert_ne!(a[1..], b[1..]);
        assert!(cids.validate(&a).is_ok() && cids.validate(&b).is_ok());
        // Another endpoint of the port checks them too; a changed byte or another key not.
        assert!(OwnedCids::new(0, key.clone()).validate(&a).is_ok());
        let mut forged = a.to_vec();
        forged[2] ^= 1;
        assert!(cids.validate(&ConnectionId::new(&forged)).is_err());
        assert!(OwnedCids::new(3, self::key()).validate(&a).is_err());
    }

    #[test]
    fn only_tagged_short_headers_for_other_endpoints_leave() {
        let key = key();
        let router = Router::new(2, key.clone());
        assert_eq!(router.elsewhere(0, &short(&key, 1, 0, 40)), Some(1));
        assert_eq!(router.elsewhere(1, &short(&key, 1, 0, 40)), None, "its own");
        let mut long = short(&key, 1, 0, 40);
        long[0] = 0xc0;
        assert_eq!(router.elsewhere(0, &long), None, "handshake packets stay");
        let too_short = short(&key, 1, 0, MIN_FORWARDED - 1);
        assert_eq!(
            router.elsewhere(0, &too_short),
            None,
            "too short for a packet"
        );
        let mut junk = short(&key, 1, 0, 40);
        junk[7] ^= 0xff;
        assert_eq!(router.elsewhere(0, &junk), None, "the tag does not check");
        let stranger = short(&self::key(), 1, 0, 40);
        assert_eq!(router.elsewhere(0, &stranger), None, "another port's ID");
        let beyond = short(&key, 7, 0, 40);
        assert_eq!(router.elsewhere(0, &beyond), None, "no such endpoint");
    }

    #[test]
    fn foreign_segments_are_passed_on_and_the_rest_compacted() {
        let key = key();
        let router = Router::new(3, key.clone());
        // Entry 0: one datagram for endpoint 2. Entry 1: three GRO segments of 40 bytes
        // (ours, endpoint 1's, ours with a short last one). Entry 2: one of ours.
        let mine = [short(&key, 0, 0xb1, 40), short(&key, 0, 0xb3, 32)];
        let theirs = short(&key, 1, 0xb2, 40);
        let mut b0 = short(&key, 2, 0xa0, 40);
        let mut b1 = [mine[0].clone(), theirs.clone(), mine[1].clone()].concat();
        let lone = short(&key, 0, 0xc0, 45);
        let mut b2 = lone.clone();
        let lens = [b0.len(), b1.len(), b2.len()];
        b0.resize(128, 0);
        b1.resize(128, 0);
        b2.resize(128, 0);
        let mut bufs = [
            IoSliceMut::new(&mut b0),
            IoSliceMut::new(&mut b1),
            IoSliceMut::new(&mut b2),
        ];
        let mut metas = [meta(lens[0], 40), meta(lens[1], 40), meta(lens[2], 45)];

        let kept = router.sort(0, &mut bufs, &mut metas, 3);

        assert_eq!(kept, 2);
        assert_eq!((metas[0].len, metas[0].stride), (72, 40));
        assert_eq!(bufs[0][..72], mine.concat());
        assert_eq!(metas[1].len, 45);
        assert_eq!(bufs[1][..45], lone);
        assert_eq!((inbox_len(&router, 1), inbox_len(&router, 2)), (1, 1));
        assert_eq!(router.forwarded(), 2);
        let (m, datagram) = router.inbox(1).datagrams.pop_front().unwrap();
        assert_eq!((m.len, m.stride, &*datagram), (40, 40, &theirs[..]));
    }

    #[test]
    fn an_empty_datagram_is_dropped() {
        let key = key();
        let router = Router::new(2, key.clone());
        let mut storage = [[0u8; 64]; 2];
        let [a, b] = &mut storage;
        let ours = short(&key, 0, 5, 30);
        b[..30].copy_from_slice(&ours);
        let mut bufs = [IoSliceMut::new(a), IoSliceMut::new(b)];
        let mut metas = [meta(0, 0), meta(30, 30)];
        assert_eq!(router.sort(0, &mut bufs, &mut metas, 2), 1);
        assert_eq!(metas[0].len, 30);
        assert_eq!(bufs[0][..30], ours);
        assert_eq!(router.forwarded(), 0);
    }

    #[test]
    fn each_inbox_is_bounded_drains_in_order_and_gives_its_room_back() {
        const SIZE: usize = 1000;
        let fit = INBOX_LIMIT / (SIZE + ALLOCATION_COST);
        let key = key();
        let router = Router::new(3, key.clone());
        for i in 0..fit + 10 {
            router.forward(1, &meta(0, 0), &short(&key, 1, i as u8, SIZE));
        }
        assert_eq!(inbox_len(&router, 1), fit);
        // A full inbox does not stop what goes to another.
        router.forward(2, &meta(0, 0), &short(&key, 2, 0, SIZE));
        assert_eq!(inbox_len(&router, 2), 1);
        assert_eq!(router.forwarded(), fit as u64 + 1);
        assert_eq!(router.counters().dropped.load(Ordering::Relaxed), 10);

        let cx = Context::from_waker(Waker::noop());
        let mut storage = vec![[0u8; SIZE]; 4];
        let mut bufs: Vec<_> = storage.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let mut metas = [RecvMeta::default(); 4];
        assert_eq!(router.take(1, &cx, &mut bufs, &mut metas), 4);
        for (i, m) in metas.iter().enumerate() {
            assert_eq!(m.len, SIZE);
            assert_eq!(bufs[i][20], i as u8, "in the order they came");
        }
        // Room again for what was taken; drained, the queue shrinks.
        router.forward(1, &meta(0, 0), &short(&key, 1, 0, SIZE));
        assert_eq!(inbox_len(&router, 1), fit - 3);
        while router.take(1, &cx, &mut bufs, &mut metas) > 0 {}
        let inbox = router.inbox(1);
        assert_eq!(inbox.cost, 0);
        assert!(inbox.datagrams.capacity() <= INBOX_KEEP);
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
        let key = key();
        let router = Router::new(2, key.clone());
        let mut storage = [0u8; 64];
        let mut bufs = [IoSliceMut::new(&mut storage)];
        let mut metas = [RecvMeta::default()];
        assert_eq!(router.take(0, &cx, &mut bufs, &mut metas), 0);
        router.forward(0, &meta(0, 0), &short(&key, 0, 1, 30));
        assert!(flag.0.load(Ordering::SeqCst));
        assert_eq!(router.take(0, &cx, &mut bufs, &mut metas), 1);
    }

    /// A socket that always has datagrams of its own: 30-byte packets filled with 0xee.
    #[derive(Debug)]
    struct Busy(Vec<u8>);

    impl AsyncUdpSocket for Busy {
        fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
            unimplemented!("not sent on")
        }
        fn try_send(&self, _: &Transmit<'_>) -> io::Result<()> {
            unimplemented!("not sent on")
        }
        fn poll_recv(
            &self,
            _: &mut Context<'_>,
            bufs: &mut [IoSliceMut<'_>],
            metas: &mut [RecvMeta],
        ) -> Poll<io::Result<usize>> {
            for (buf, m) in bufs.iter_mut().zip(metas.iter_mut()) {
                buf[..self.0.len()].copy_from_slice(&self.0);
                *m = meta(self.0.len(), self.0.len());
            }
            Poll::Ready(Ok(bufs.len().min(metas.len())))
        }
        fn local_addr(&self) -> io::Result<SocketAddr> {
            Ok("127.0.0.1:9".parse().unwrap())
        }
    }

    #[test]
    fn what_others_pass_on_never_starves_the_socket() {
        let key = key();
        let router = Router::new(2, key.clone());
        let socket = RoutedSocket::new(Arc::new(Busy(short(&key, 0, 0xee, 30))), 0, router.clone());
        for _ in 0..100 {
            router.forward(0, &meta(0, 0), &short(&key, 0, 0xff, 30));
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut storage = vec![[0u8; 64]; 32];
        let mut bufs: Vec<_> = storage.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let mut metas = [RecvMeta::default(); 32];
        let Poll::Ready(Ok(32)) = socket.poll_recv(&mut cx, &mut bufs, &mut metas) else {
            panic!("a full batch")
        };
        let passed_on = bufs.iter().filter(|b| b[20] == 0xff).count();
        let own = bufs.iter().filter(|b| b[20] == 0xee).count();
        assert_eq!((passed_on, own), (16, 16));
    }

    #[test]
    fn small_datagrams_are_bounded_by_count() {
        let key = key();
        let router = Router::new(2, key.clone());
        for _ in 0..INBOX_ENTRIES + 5 {
            router.forward(1, &meta(0, 0), &short(&key, 1, 0, MIN_FORWARDED));
        }
        assert_eq!(inbox_len(&router, 1), INBOX_ENTRIES);
        assert_eq!(router.counters().dropped.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn a_gone_socket_empties_its_inbox_and_takes_no_more() {
        let key = key();
        let router = Router::new(2, key.clone());
        let socket = RoutedSocket::new(Arc::new(Busy(short(&key, 1, 0, 30))), 1, router.clone());
        router.forward(1, &meta(0, 0), &short(&key, 1, 0, 40));
        assert_eq!(inbox_len(&router, 1), 1);
        drop(socket);
        assert_eq!(inbox_len(&router, 1), 0);
        router.forward(1, &meta(0, 0), &short(&key, 1, 0, 40));
        assert_eq!(inbox_len(&router, 1), 0);
        assert_eq!(router.counters().dropped.load(Ordering::Relaxed), 1);
        assert_eq!(router.inbox(1).datagrams.capacity(), 0);
    }
}
