//! `SessionServer::decode`: never panics; what it accepts re-encodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moq_proto_fuzz::checks;

fuzz_target!(|data: &[u8]| checks::message::<moq_proto::SessionServer>(data));
