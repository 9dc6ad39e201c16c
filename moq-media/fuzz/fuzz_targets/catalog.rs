//! Catalog JSON on arbitrary bytes: no panic, and what parses prints and parses back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moq_media_fuzz::checks;

fuzz_target!(|data: &[u8]| checks::catalog(data));
