//! Live media over MoQ Transfork, in the format of moq-karp 0.10: what a broadcast's tracks
//! are called, the catalog that describes them, and how frames are laid out in groups; plus
//! fragmented MP4 (CMAF) import and export. On [`moq_model`]; no IO, no runtime.
//!
//! # The format
//! ```text
//!  <name>/<id>            catalog track: one group per catalog version, one frame of JSON
//!  <name>/<id>/video1     a media track per rendition (named after the MP4 track id):
//!  <name>/<id>/audio2       one group per keyframe; frame = varint(µs) ++ codec payload
//! ```
//! - A broadcast lives at a name plus an id part, the publisher's start time in
//!   milliseconds ([`broadcast_id`], [`broadcast_path`]); a restarted publisher gets a
//!   larger id, and viewers follow the largest ([`LiveBroadcast`], [`live_broadcast`]).
//! - The catalog track is the broadcast's own path ([`catalog_track`]); each group holds
//!   the whole [`Catalog`] as compact JSON.
//! - A media track is the broadcast's path plus the rendition's name ([`media_track`]). A
//!   group starts at each keyframe; each [`Frame`] is its presentation time in
//!   microseconds as a QUIC varint followed by the codec payload.
//!
//! `docs/media.md` in the repository describes every field, and how each was checked
//! against moq-karp 0.10.
//!
//! # The API
//! - [`BroadcastProducer`] creates the catalog track and a [`TrackProducer`] per rendition
//!   on a [`moq_model::BroadcastProducer`]; [`TrackProducer::write`] starts groups at
//!   keyframes.
//! - [`BroadcastConsumer`] reads catalogs and subscribes to renditions through any
//!   `Fn(Track) -> TrackConsumer` (a session's `subscribe`, or a local broadcast);
//!   [`TrackConsumer::read`] returns frames, skipping to newer groups when behind;
//!   [`TracksConsumer`] reads several tracks at once.
//! - [`cmaf::Import`] publishes fragmented MP4 fed in chunks of any size;
//!   [`cmaf::Muxer`] writes a catalog and frames as fragmented MP4.
//!
//! # Example
//! Publishing fragmented MP4 read from a reader, and writing a broadcast as fragmented MP4
//! to a writer. With a session, publish with `session.publish_broadcast(consumer)` and read
//! with `BroadcastConsumer::new(path, move |track| session.subscribe(track))`; here both
//! ends are in one process.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::SystemTime;
//!
//! use moq_media::cmaf::{Demuxer, Event, Import, ImportConfig, Muxer};
//! use moq_media::{BroadcastConsumer, BroadcastProducer, broadcast_id, broadcast_path};
//! use moq_model::{Broadcast, Path};
//!
//! type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
//!
//! /// `moq media subscribe`: a broadcast in, fMP4 out.
//! async fn subscribe(mut broadcast: BroadcastConsumer, mut output: impl Write) -> Result<()> {
//!     let catalog = broadcast.catalog().await?.ok_or("no catalog")?;
//!     let mut muxer = Muxer::new(&catalog)?;
//!     output.write_all(&muxer.init_segment())?;
//!     let mut tracks = broadcast.tracks(&catalog);
//!     while let Some((track, frame)) = tracks.read().await? {
//!         output.write_all(&muxer.fragment(track, &frame)?)?;
//!     }
//!     Ok(())
//! }
//!
//! # fn main() -> Result<()> {
//! let path = broadcast_path(&Path::from(["live", "cam"]), &broadcast_id(SystemTime::now()));
//! let (producer, consumer) = Broadcast::new(path).produce();
//! let producer = BroadcastProducer::new(producer)?;
//!
//! // A viewer (in its own task, normally).
//! let mut output = Vec::new();
//! let mut viewer = Box::pin(subscribe(BroadcastConsumer::local(&consumer), &mut output));
//!
//! // `moq media publish`: fMP4 in (here 3 s of H.264 and AAC from ffmpeg, see
//! // tests/data/README.md), a live broadcast out.
//! let mut input: &[u8] = include_bytes!("../tests/data/h264_aac.mp4");
//! let mut import = Import::new(producer);
//! let mut buf = vec![0; 4096];
//! loop {
//!     let n = input.read(&mut buf)?;
//!     if n == 0 {
//!         break;
//!     }
//!     import.push(&buf[..n])?;
//!     poll_once(viewer.as_mut()); // let the viewer keep up
//! }
//! let producer = import.finish()?; // the tracks end; the viewer's loop ends too
//! block_on(viewer)?;
//! drop(producer);
//!
//! // The viewer wrote the whole stream back as fMP4.
//! let mut demuxer = Demuxer::new(ImportConfig::default());
//! demuxer.push(&output);
//! assert!(matches!(demuxer.next()?, Some(Event::Catalog(_))));
//! let mut frames = 0;
//! while let Some(Event::Frame { .. }) = demuxer.next()? {
//!     frames += 1;
//! }
//! assert_eq!(frames, 45 + 142);
//! # Ok(())
//! # }
//! # fn poll_once<F: std::future::Future>(future: std::pin::Pin<&mut F>) {
//! #     let _ = future.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
//! # }
//! # fn block_on<F: std::future::Future>(future: F) -> F::Output {
//! #     struct Unpark(std::thread::Thread);
//! #     impl std::task::Wake for Unpark {
//! #         fn wake(self: std::sync::Arc<Self>) { self.0.unpark() }
//! #     }
//! #     let waker = std::sync::Arc::new(Unpark(std::thread::current())).into();
//! #     let mut cx = std::task::Context::from_waker(&waker);
//! #     let mut future = std::pin::pin!(future);
//! #     loop {
//! #         match future.as_mut().poll(&mut cx) {
//! #             std::task::Poll::Ready(output) => return output,
//! #             std::task::Poll::Pending => std::thread::park(),
//! #         }
//! #     }
//! # }
//! ```
#![forbid(unsafe_code)]

mod broadcast;
mod catalog;
pub mod cmaf;
mod codec;
mod error;
mod frame;
mod live;
mod track;

pub use broadcast::{
    BroadcastConsumer, BroadcastProducer, CATALOG_PRIORITY, CLOCK_TRACK, catalog_track,
    clock_track, media_track,
};
pub use catalog::{Audio, Catalog, Dimensions, TrackInfo, Video};
pub use codec::{Aac, AudioCodec, Av1, CodecStringError, H264, H265, VideoCodec, Vp9};
pub use error::Error;
pub use frame::{Frame, Timestamp};
pub use live::{LiveBroadcast, broadcast_id, broadcast_path, live_broadcast};
pub use track::{TrackConsumer, TrackProducer, TracksConsumer};
