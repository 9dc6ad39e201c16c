//! `GroupReader` on a whole group stream, fed whole, in small chunks and byte by byte: same
//! events and end; payloads are slices of the input; a clean read re-encodes to the same events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moq_proto_fuzz::checks;

fuzz_target!(|data: &[u8]| checks::group_stream(data));
