//! The CMAF demuxer on arbitrary bytes, fed whole and in pieces: no panic, the same events
//! and end either way, and whatever it accepts exports and imports back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moq_media_fuzz::checks;

fuzz_target!(|data: &[u8]| checks::cmaf_import(data));
