//! The relay through its public API and as a binary, on 127.0.0.1: one test binary, one
//! module per subject.

mod auth;
mod binary;
#[cfg(feature = "etcd")]
mod cluster;
mod hostile;
mod http;
mod relay;
mod support;
