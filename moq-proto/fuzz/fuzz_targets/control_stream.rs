//! `MessageReader` on a control stream as its opener writes it (stream type, then messages),
//! fed whole, in small chunks and byte by byte: same result; what it reads re-encodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moq_proto_fuzz::checks;

fuzz_target!(|data: &[u8]| checks::control_stream(data));
