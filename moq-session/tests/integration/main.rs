//! The session's behaviour through its public API, over the in-memory transport: one test
//! binary, one module per subject.

mod control;
mod expiry;
mod handshake;
mod hostile;
mod memory;
mod overload;
mod priority;
mod pubsub;
mod support;
mod track_end;
mod transport_memory;
mod update;
