//! The transport over real loopback QUIC (127.0.0.1, port 0), each test on both raw QUIC and
//! WebTransport where it applies: one test binary, one module per subject.

mod endpoints;
mod interop;
mod loopback;
mod session;
mod support;
