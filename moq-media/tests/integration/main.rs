//! moq-media through its public API: one test binary, one module per subject.

// The properties the fuzz targets check, shared with the fuzz crate.
#[path = "../../fuzz/src/checks.rs"]
mod checks;

mod broadcast;
mod cmaf;
mod ffmpeg;
mod fuzz_corpus;
mod karp;
mod support;
