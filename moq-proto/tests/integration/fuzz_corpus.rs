//! Replays the saved fuzz corpus (`moq-proto/fuzz/corpus/<target>/*`) through the same checks
//! the cargo-fuzz targets run, so CI catches regressions without cargo-fuzz or nightly.

use std::fs;
use std::path::Path;

use moq_proto::*;

use crate::checks;

fn check(target: &str, data: &[u8]) {
    match target {
        "session_client" => checks::message::<SessionClient>(data),
        "session_server" => checks::message::<SessionServer>(data),
        "session_update" => checks::message::<SessionUpdate>(data),
        "announce_interest" => checks::message::<AnnounceInterest>(data),
        "announce" => checks::message::<Announce>(data),
        "subscribe" => checks::message::<Subscribe>(data),
        "subscribe_update" => checks::message::<SubscribeUpdate>(data),
        "info" => checks::message::<Info>(data),
        "info_request" => checks::message::<InfoRequest>(data),
        "fetch" => checks::message::<Fetch>(data),
        "group" => checks::message::<Group>(data),
        "group_drop" => checks::message::<GroupDrop>(data),
        "frame" => checks::message::<Frame>(data),
        "group_stream" => checks::group_stream(data),
        "control_stream" => checks::control_stream(data),
        other => panic!("corpus for unknown target {other}"),
    }
}

#[test]
fn replay_fuzz_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut targets = 0;
    let mut files = 0;
    for dir in fs::read_dir(&root).expect("fuzz/corpus exists") {
        let dir = dir.expect("entry");
        if !dir.file_type().expect("type").is_dir() {
            continue;
        }
        let target = dir.file_name().into_string().expect("utf-8 name");
        targets += 1;
        for file in fs::read_dir(dir.path()).expect("target dir") {
            let path = file.expect("entry").path();
            let data = fs::read(&path).expect("readable");
            let result = std::panic::catch_unwind(|| check(&target, &data));
            assert!(
                result.is_ok(),
                "{target}: {} ({} bytes) fails",
                path.display(),
                data.len()
            );
            files += 1;
        }
    }
    assert_eq!(targets, 15, "one corpus directory per fuzz target");
    assert!(files >= targets, "empty corpus");
}
