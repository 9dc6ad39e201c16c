//! The `moq` binary, run as a process on 127.0.0.1: one test binary, one module per subject.

mod bench;
mod cli;
mod demo;
