//! The MoQ Transfork object model: a runtime-agnostic, bounded cache of live tracks.
//!
//! A **track** (named by a [`Path`]) is a live sequence of **groups**; a group is an ordered
//! sequence of **frames**; a frame is a payload whose size is declared before it is written,
//! whole or in chunks. Every level has a synchronous producer and an asynchronous,
//! cloneable consumer:
//!
//! ```text
//!  Track  ─ TrackProducer::append_group ─▶ GroupProducer ─ write_frame / create_frame ─▶ FrameProducer
//!    │                                         │                                          │
//!    ▼ (shared cache, one lock per track,      ▼ (one lock per group holds every frame)   ▼
//!  TrackConsumer::next_group ────────────▶ GroupConsumer ─ read_frame / next_frame ────▶ FrameConsumer
//! ```
//!
//! Around tracks: a [`BroadcastProducer`] creates the tracks under one path prefix and a
//! [`BroadcastConsumer`] looks them up by name; an [`AnnouncedProducer`] says which paths are
//! available and [`AnnouncedConsumer`]s follow the changes under a prefix; a [`Router`]
//! answers requests for tracks nobody has published yet (a relay asking upstream).
//!
//! # What it guarantees
//! - **Producers never block.** Writing is a short critical section and a wake-up of the
//!   consumers that wait; data is cached even when nobody consumes it.
//! - **Every consumer gets every byte, stored once.** Payloads are [`bytes::Bytes`] shared by
//!   all consumers; a frame written in one piece is handed out without a copy.
//! - **Slow consumers skip, they do not hold anyone back.** A track's cache keeps the latest
//!   group plus the groups younger than [`Track::group_expires`], within [`CacheLimits`]; a
//!   consumer that falls behind continues with the oldest group still cached and can see how
//!   many it [`skipped`](TrackConsumer::skipped).
//! - **Finished is not aborted.** A clean end (finish, or dropping the producer) reads as
//!   `Ok(None)`; an abort reads as `Err(error)` at its level and every level below it; a frame
//!   cut short reads as [`Error::WrongSize`], never as a short frame.
//! - **Any executor.** No runtime, timer or task is used inside; futures are woken through
//!   their [`Waker`](std::task::Waker). Every `async` method documents its cancel safety.
//!
//! # Example
//! ```
//! use moq_model::{Error, Track};
//!
//! # fn main() -> Result<(), Error> {
//! let (mut track, mut consumer) = Track::new(["room", "alice", "clock"]).produce();
//!
//! // Produce: synchronous, never blocks.
//! let mut group = track.append_group();
//! group.write_frame("12:00")?;
//! let mut frame = group.create_frame(5)?; // a frame written in chunks
//! frame.write("12:")?;
//! frame.write("01")?;
//! group.finish();
//! track.finish();
//!
//! // Consume: asynchronous, on any executor (here a tiny one, see below).
//! block_on(async move {
//!     let mut group = consumer.next_group().await?.expect("a group");
//!     assert_eq!(group.sequence(), 0);
//!     assert_eq!(group.read_frame().await?.unwrap(), "12:00");
//!     assert_eq!(group.read_frame().await?.unwrap(), "12:01");
//!     assert_eq!(group.read_frame().await?, None); // the group finished
//!     assert!(consumer.next_group().await?.is_none()); // and so did the track
//!     Ok(())
//! })
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
//!
//! `docs/model.md` in the repository describes the design: the state behind each handle,
//! how waking works, the cache bounds, and how this API differs from the seed API.

mod announced;
mod broadcast;
mod budget;
mod error;
mod frame;
mod group;
mod notify;
mod router;
mod track;

pub use announced::{Announced, AnnouncedConsumer, AnnouncedProducer, AnnouncedSource};
pub use broadcast::{Broadcast, BroadcastConsumer, BroadcastProducer};
pub use budget::MemoryBudget;
pub use error::Error;
pub use frame::{Frame, FrameConsumer, FrameProducer};
pub use group::{Group, GroupConsumer, GroupProducer};
pub use moq_proto::{ErrorCode, GroupOrder, Path};
pub use router::{Router, RouterConsumer, RouterProducer, RouterRequest};
pub use track::{CacheLimits, Track, TrackBuilder, TrackConsumer, TrackProducer, TrackStats};
