//! The MoQ Transfork session, over any QUIC-like transport.
//!
//! The session itself is in progress. What exists is the [`transport`] module: the traits a
//! QUIC-like connection implements for the session, and (feature `memory`) an in-memory
//! connection pair for tests and benches.
#![forbid(unsafe_code)]

pub mod transport;
