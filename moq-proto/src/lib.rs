//! The MoQ Transfork (`moqf-02`) wire codec: bytes in, bytes out.
//!
//! This crate turns every message and stream header of MoQ Transfork, wire version
//! `0xff0bad02` as spoken by `moq-transfork` 0.4 to 0.8, into plain Rust structs and back.
//! It is what a session implementation, a relay, a packet dissector or a fuzzer needs to
//! speak or inspect the protocol, and nothing more.
//!
//! # What it does
//!
//! * Encodes and decodes the primitives (varints, biased `i8` priorities, strings, paths,
//!   millisecond durations, offset-by-one optionals, [`Extensions`]), the stream types
//!   ([`StreamBi`], [`StreamUni`]) and every message: [`SessionClient`], [`SessionServer`],
//!   [`SessionUpdate`], [`AnnounceInterest`], [`Announce`], [`Subscribe`],
//!   [`SubscribeUpdate`], [`Info`], [`InfoRequest`], [`Fetch`], [`Group`], [`GroupDrop`],
//!   [`Frame`].
//! * Decodes incrementally: [`Decode::decode`] on a prefix of a message says
//!   [`DecodeError::Short`] ("need more bytes", with a hint) and consumes nothing; malformed
//!   bytes are a typed [`DecodeError`], which maps to [`ErrorCode::DECODE`].
//! * Checks every length and count the peer declares against the caps in [`limits`] before
//!   allocating anything.
//! * Reads whole streams as their chunks arrive: [`GroupReader`] for group streams (frame
//!   payloads are handed out as zero-copy slices of the chunks) and [`MessageReader`] for
//!   control streams.
//! * Names the protocol's [`ErrorCode`]s, [`Version`]s and the raw-QUIC [`ALPN`].
//!
//! # What it does not
//!
//! No IO, no async, no runtime, no clock, no logging: it never touches a socket or a QUIC
//! stream. It does not decide what a message means (which version to pick, what to do on a
//! `Subscribe`, when to reset a stream); that is the session's job.
//!
//! # Layering
//!
//! ```text
//!   QUIC / WebTransport streams        (a transport crate)
//!            | chunks of bytes
//!   GroupReader / MessageReader        moq_proto::reader   -- streams -> events, messages
//!            | byte slices
//!   Encode / Decode for messages       moq_proto::message  -- WIRE.md §5
//!            |
//!   varint, i8, string, path, ...      moq_proto::coding   -- WIRE.md §3
//! ```
//!
//! The wire, in our own words, is in `docs/protocol.md`; the authoritative description is
//! `WIRE.md` of the project's specification, whose sections the code cites.
//!
//! # Example
//!
//! A subscriber encodes a subscribe stream's opening bytes; the publisher decodes them; then
//! the publisher's group stream is read back as it arrives in two chunks.
//!
//! ```
//! use std::time::Duration;
//! use bytes::{Bytes, BytesMut};
//! use moq_proto::*;
//!
//! // Subscriber: stream type, then Subscribe.
//! let subscribe = Subscribe {
//!     id: 7,
//!     path: Path::from(["demo", "clock"]),
//!     priority: 0,
//!     group_order: GroupOrder::Descending,
//!     group_expires: Duration::ZERO,
//!     group_min: None,
//!     group_max: None,
//! };
//! let mut out = BytesMut::new();
//! StreamBi::Subscribe.encode(&mut out);
//! subscribe.encode(&mut out);
//! assert_eq!(out.len(), 1 + subscribe.encoded_len());
//!
//! // Publisher: decode what arrived, possibly in pieces.
//! let mut control = MessageReader::new();
//! control.push(&out);
//! assert_eq!(control.next::<StreamBi>()?, Some(StreamBi::Subscribe));
//! assert_eq!(control.next::<Subscribe>()?, Some(subscribe.clone()));
//!
//! // Publisher: a group stream with one frame "hello".
//! let mut stream = BytesMut::new();
//! StreamUni::Group.encode(&mut stream);
//! Group { subscribe: subscribe.id, sequence: 5 }.encode(&mut stream);
//! Frame { size: 5 }.encode(&mut stream);
//! stream.extend_from_slice(b"hello");
//! let mut stream = stream.freeze();
//!
//! // Subscriber: read it in two chunks; the payload comes back without copying.
//! let mut reader = GroupReader::new();
//! reader.push(stream.split_to(4));
//! reader.push(stream);
//! let mut payload = Vec::new();
//! while let Some(event) = reader.next()? {
//!     match event {
//!         GroupEvent::Header(group) => assert_eq!(group.sequence, 5),
//!         GroupEvent::FrameStart { size } => assert_eq!(size, 5),
//!         GroupEvent::Payload(chunk) => payload.extend_from_slice(&chunk),
//!         GroupEvent::FrameEnd => {}
//!     }
//! }
//! reader.finish()?; // the FIN came after a whole frame
//! assert_eq!(payload, b"hello");
//! # Ok::<(), ReadError>(())
//! ```
//!
//! # Integers above 2^62
//!
//! Integer fields are plain `u64` for ease of use. A QUIC varint holds at most
//! [`MAX_VARINT`] (2^62 - 1): encoding a larger value is a programming error and panics (see
//! [`Encode`]). Decoded values are always in range, so re-encoding what was decoded never
//! panics.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod coding;
mod error;
mod error_code;
mod extensions;
pub mod limits;
mod message;
mod order;
mod path;
mod reader;
mod stream;
mod version;

pub use coding::{Decode, Encode, Input, MAX_VARINT, encode_varint, varint_len};
pub use error::{DecodeError, Limit};
pub use error_code::ErrorCode;
pub use extensions::Extensions;
pub use message::*;
pub use order::GroupOrder;
pub use path::Path;
pub use reader::{GroupEvent, GroupReader, MessageReader, ReadError, ReaderConfig};
pub use stream::{StreamBi, StreamUni};
pub use version::{ALPN, Version};
