//! The `moq-proto` codec, and its group stream reader against the published `moq-transfork`
//! 0.5.0 decoder on the same input in the same run.
//!
//! - `proto/encode/<Message>`, `proto/decode/<Message>`: one message into a reused buffer, and
//!   from a byte slice (`proto/decode/Subscribe/moq-transfork-0.5.0`: the same bytes through
//!   the 0.5.0 decoder, for scale).
//! - `proto/group_stream/{moq-proto,moq-transfork-0.5.0}`: a group stream of 1000 frames of
//!   1 KiB, cut into 1200-byte chunks (slices of one buffer, handed over by value as a QUIC
//!   stream hands out chunks) and read to the end, payloads dropped as they come; throughput
//!   in bytes of stream. Ours pushes each chunk into a `GroupReader` and pulls events. The
//!   baseline uses only 0.5.0's public `coding::Decode` and `message` types, driven the way
//!   its session reader drives them over `web-transport-quinn`: stream bytes are copied into
//!   the spare capacity of a `BytesMut` (`read_buf`), a message is decoded from the start of
//!   that buffer and "more" means read again, and frame payloads come from that buffer first,
//!   then straight from the stream without copying (`read(max)`).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::io::Cursor;
use std::num::NonZeroU64;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use moq_proto::{
    Announce, AnnounceInterest, Decode, Encode, ErrorCode, Extensions, Fetch, Frame, Group,
    GroupDrop, GroupEvent, GroupOrder, GroupReader, Info, InfoRequest, Path, SessionClient,
    SessionServer, SessionUpdate, StreamUni, Subscribe, SubscribeUpdate, Version,
};
use moq_transfork::coding::{Decode as BaselineDecode, DecodeError as BaselineError};
use moq_transfork::message as baseline;

const FRAMES: usize = 1000;
const FRAME_SIZE: usize = 1024;
const CHUNK: usize = 1200;

fn path() -> Path {
    Path::from(["meeting", "1234", "alice"])
}

fn bench_message<T: Encode + Decode>(c: &mut Criterion, name: &str, msg: T) {
    let bytes = msg.to_bytes();
    let mut buf = BytesMut::with_capacity(256);
    c.bench_function(&format!("proto/encode/{name}"), |b| {
        b.iter(|| {
            buf.clear();
            black_box(&msg).encode(&mut buf);
            black_box(buf.len())
        })
    });
    c.bench_function(&format!("proto/decode/{name}"), |b| {
        b.iter(|| T::decode(black_box(&bytes)).expect("valid"))
    });
}

fn messages(c: &mut Criterion) {
    bench_message(
        c,
        "SessionClient",
        SessionClient {
            versions: vec![Version::CURRENT],
            extensions: Extensions::new(),
        },
    );
    bench_message(
        c,
        "SessionServer",
        SessionServer {
            version: Version::CURRENT,
            extensions: Extensions::new(),
        },
    );
    bench_message(
        c,
        "SessionUpdate",
        SessionUpdate {
            bitrate: NonZeroU64::new(2_500_000),
        },
    );
    bench_message(c, "AnnounceInterest", AnnounceInterest { prefix: path() });
    bench_message(c, "Announce", Announce::Active { suffix: path() });
    let subscribe = Subscribe {
        id: 300,
        path: path(),
        priority: -2,
        group_order: GroupOrder::Descending,
        group_expires: Duration::from_millis(1500),
        group_min: None,
        group_max: Some(99),
    };
    bench_message(c, "Subscribe", subscribe.clone());
    bench_message(
        c,
        "SubscribeUpdate",
        SubscribeUpdate {
            priority: 3,
            group_order: GroupOrder::Ascending,
            group_expires: Duration::from_millis(250),
            group_min: Some(10),
            group_max: None,
        },
    );
    bench_message(
        c,
        "Info",
        Info {
            track_priority: 1,
            group_order: GroupOrder::Descending,
            group_expires: Duration::from_millis(2000),
            group_latest: 16384,
        },
    );
    bench_message(c, "InfoRequest", InfoRequest { path: path() });
    bench_message(
        c,
        "Fetch",
        Fetch {
            path: path(),
            priority: 5,
            group: 42,
            offset: 1200,
        },
    );
    bench_message(
        c,
        "Group",
        Group {
            subscribe: 300,
            sequence: 70000,
        },
    );
    bench_message(
        c,
        "GroupDrop",
        GroupDrop {
            sequence: 1_000_000,
            count: 3,
            code: ErrorCode::WRONG_SIZE,
        },
    );
    bench_message(c, "Frame", Frame { size: 1500 });

    // The same Subscribe bytes through the 0.5.0 decoder, for scale.
    let bytes = subscribe.to_bytes();
    c.bench_function("proto/decode/Subscribe/moq-transfork-0.5.0", |b| {
        b.iter(|| {
            let mut cursor = Cursor::new(black_box(&bytes[..]));
            baseline::Subscribe::decode(&mut cursor).expect("valid")
        })
    });
}

/// The group stream, cut into `CHUNK`-byte pieces of one buffer (as a QUIC stream hands out).
fn group_stream_chunks() -> (Vec<Bytes>, usize) {
    let mut out = BytesMut::new();
    StreamUni::Group.encode(&mut out);
    Group {
        subscribe: 0,
        sequence: 7,
    }
    .encode(&mut out);
    for i in 0..FRAMES {
        Frame {
            size: FRAME_SIZE as u64,
        }
        .encode(&mut out);
        out.extend((0..FRAME_SIZE).map(|j| (i + j) as u8));
    }
    let stream = out.freeze();
    let chunks = stream.chunks(CHUNK).map(|c| stream.slice_ref(c)).collect();
    (chunks, stream.len())
}

/// Ours: push each chunk as the stream hands it out, pull events. Returns payload bytes seen.
/// Not inlined, so instruction counters can attribute its cost (see docs/benchmarks.md).
#[inline(never)]
fn read_ours(chunks: Vec<Bytes>) -> usize {
    let mut reader = GroupReader::new();
    let mut payload = 0;
    let mut frames = 0;
    for chunk in chunks {
        reader.push(chunk);
        while let Some(event) = reader.next().expect("valid") {
            match event {
                GroupEvent::Payload(data) => payload += black_box(data).len(),
                GroupEvent::FrameEnd => frames += 1,
                GroupEvent::Header(_) | GroupEvent::FrameStart { .. } => {}
            }
        }
    }
    reader.finish().expect("clean end");
    assert_eq!(frames, FRAMES);
    payload
}

/// A stand-in for a QUIC receive stream with all the chunks already received, with the two
/// reads 0.5.0 uses (through `web-transport-quinn`): `read(max)`, which hands out (part of) the
/// next chunk without copying, and `read_buf(buf)`, which copies into the spare capacity of
/// `buf` (`BufMut::chunk_mut`, which reserves 64 bytes when the buffer is full), across chunks,
/// until that capacity is full or the data runs out.
///
/// With `COUNT` it also counts its reads and the bytes it copies, for the report; the timed
/// runs do not count, as neither a real stream nor our reader does.
struct ChunkStream<const COUNT: bool> {
    chunks: std::vec::IntoIter<Bytes>,
    current: Bytes,
    /// Calls that would each be a `quinn` stream read (and bytes copied), for the report.
    reads: usize,
    copied: usize,
}

impl<const COUNT: bool> ChunkStream<COUNT> {
    fn new(chunks: Vec<Bytes>) -> Self {
        Self {
            chunks: chunks.into_iter(),
            current: Bytes::new(),
            reads: 0,
            copied: 0,
        }
    }

    fn read(&mut self, max: usize) -> Option<Bytes> {
        if COUNT {
            self.reads += 1;
        }
        if self.current.is_empty() {
            self.current = self.chunks.next()?;
        }
        if max >= self.current.len() {
            return Some(std::mem::take(&mut self.current));
        }
        // What `split_to` does (quinn cuts its chunk the same way), written so that the handle
        // is built inline: through the `split_to` call, the compiler copied the returned handle
        // with a 16-byte load over two 8-byte stores, a store-forwarding stall on every read
        // that cost the baseline a quarter of its time here and that a real stream need not
        // have.
        let data = self.current.slice(..max);
        self.current.advance(max);
        Some(data)
    }

    fn read_buf(&mut self, buf: &mut BytesMut) -> Option<usize> {
        // What `chunk_mut` does before handing out the spare capacity.
        if buf.capacity() == buf.len() {
            buf.reserve(64);
        }
        let spare = buf.capacity() - buf.len();
        let mut read = 0;
        while read < spare {
            let Some(data) = self.read(spare - read) else {
                break;
            };
            // Fits in the spare capacity: copies without reallocating.
            buf.extend_from_slice(&data);
            if COUNT {
                self.copied += data.len();
            }
            read += data.len();
        }
        (read > 0).then_some(read)
    }
}

/// The 0.5.0 way of driving its decoders over a stream.
struct BaselineReader<const COUNT: bool> {
    stream: ChunkStream<COUNT>,
    buffer: BytesMut,
}

impl<const COUNT: bool> BaselineReader<COUNT> {
    fn decode<T: BaselineDecode>(&mut self) -> T {
        loop {
            let mut cursor = Cursor::new(&self.buffer[..]);
            let required = match T::decode(&mut cursor) {
                Ok(msg) => {
                    let used = cursor.position() as usize;
                    self.buffer.advance(used);
                    return msg;
                }
                Err(BaselineError::More(n)) => self.buffer.len() + n,
                Err(err) => panic!("decode: {err}"),
            };
            loop {
                self.stream
                    .read_buf(&mut self.buffer)
                    .expect("stream ended early");
                if self.buffer.len() >= required {
                    break;
                }
            }
        }
    }

    /// A message where the stream may also end cleanly instead.
    fn decode_maybe<T: BaselineDecode>(&mut self) -> Option<T> {
        if self.buffer.is_empty() && self.stream.read_buf(&mut self.buffer).is_none() {
            return None;
        }
        Some(self.decode())
    }

    /// Payload bytes: from the buffer first, then straight from the stream.
    fn read(&mut self, max: usize) -> Option<Bytes> {
        if !self.buffer.is_empty() {
            let n = max.min(self.buffer.len());
            return Some(self.buffer.split_to(n).freeze());
        }
        self.stream.read(max)
    }
}

/// The baseline's read of the stream. Returns payload bytes seen. Not inlined, like
/// `read_ours`.
#[inline(never)]
fn read_baseline(chunks: Vec<Bytes>) -> usize {
    read_baseline_with::<false>(chunks).0
}

/// Also returns the stream reads made and the bytes copied.
fn read_baseline_counted(chunks: Vec<Bytes>) -> (usize, usize, usize) {
    read_baseline_with::<true>(chunks)
}

#[inline(always)]
fn read_baseline_with<const COUNT: bool>(chunks: Vec<Bytes>) -> (usize, usize, usize) {
    let mut reader = BaselineReader::<COUNT> {
        stream: ChunkStream::new(chunks),
        buffer: BytesMut::new(),
    };
    let _kind: baseline::StreamUni = reader.decode();
    let _group: baseline::Group = reader.decode();
    let mut payload = 0;
    let mut frames = 0;
    while let Some(frame) = reader.decode_maybe::<baseline::Frame>() {
        let mut remain = frame.size;
        while remain > 0 {
            let data = reader.read(remain).expect("wrong size");
            remain -= data.len();
            payload += black_box(data).len();
        }
        frames += 1;
    }
    assert_eq!(frames, FRAMES);
    (payload, reader.stream.reads, reader.stream.copied)
}

fn group_stream(c: &mut Criterion) {
    let (chunks, total) = group_stream_chunks();
    assert_eq!(read_ours(chunks.clone()), FRAMES * FRAME_SIZE);
    assert_eq!(read_baseline(chunks.clone()), FRAMES * FRAME_SIZE);
    let (payload, reads, copied) = read_baseline_counted(chunks.clone());
    assert_eq!(payload, FRAMES * FRAME_SIZE);
    // Deterministic context for the timings: ours takes each chunk once and copies nothing.
    println!(
        "proto/group_stream: {} chunks; moq-proto: {} stream reads, 0 bytes copied; \
         moq-transfork-0.5.0: {reads} stream reads, {copied} bytes copied",
        chunks.len(),
        chunks.len()
    );

    let mut group = c.benchmark_group("proto/group_stream");
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function(BenchmarkId::from_parameter("moq-proto"), |b| {
        b.iter_batched(|| chunks.clone(), read_ours, BatchSize::SmallInput)
    });
    group.bench_function(BenchmarkId::from_parameter("moq-transfork-0.5.0"), |b| {
        b.iter_batched(|| chunks.clone(), read_baseline, BatchSize::SmallInput)
    });
    group.finish();
}

criterion_group!(benches, group_stream, messages);
criterion_main!(benches);
