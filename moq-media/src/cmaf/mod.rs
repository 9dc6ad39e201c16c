//! Fragmented MP4 (CMAF) in and out: [`Import`] publishes what an encoder writes,
//! [`Muxer`] turns a broadcast back into a file a player reads.
//!
//! ```text
//!  bytes ─▶ Demuxer ─▶ Event::Catalog / Event::Frame ─▶ Import ─▶ BroadcastProducer
//!  Catalog ─▶ Muxer::new ─▶ init segment;  Frame ─▶ Muxer::fragment ─▶ moof + mdat
//! ```
//!
//! Boxes are decoded and encoded with the [`mp4-atom`](https://docs.rs/mp4-atom) crate
//! (0.17). It was chosen over `mp4` (alfg's mp4-rust) and `re_mp4`: it both reads and
//! writes every box needed here (`moov`, `trak`, `mvex`/`trex`, `moof`, `tfhd`, `tfdt`,
//! `trun` v0 and v1, `avcC`, `hvcC`, `vpcC`, `av1C`, `esds`, `dOps`), works on byte slices
//! without IO, bounds its allocations by the input (a `trun`'s sample count is not trusted),
//! and is maintained by the author of moq-karp (whose successors use it). `re_mp4` (0.5)
//! only reads; `mp4` (0.14) has no AV1 or Opus sample entries, reads composition offsets as
//! unsigned, and reserves memory by a `trun`'s declared sample count. The framing
//! of the stream itself (box headers, the size limit, partial input) is done here, so that
//! mp4-atom only ever sees one whole box.

mod demux;
mod entry;
mod error;
mod import;
mod mux;

pub use demux::{Demuxer, Event, ImportConfig};
pub use error::{BoxType, ExportError, ImportError};
pub use import::Import;
pub use mux::Muxer;
