//! The codec through its public API: one test binary, one module per subject.

// The properties the fuzz targets check, shared with the fuzz crate.
#[path = "../../fuzz/src/checks.rs"]
mod checks;

mod fuzz_corpus;
mod reader;
mod roundtrip;
mod vectors;
