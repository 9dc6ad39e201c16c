//! Replays the saved fuzz corpus (`moq-media/fuzz/corpus/<target>/*`) through the same
//! checks the cargo-fuzz targets run, so CI catches regressions without cargo-fuzz or
//! nightly.

use std::fs;
use std::path::Path;

fn check(target: &str, data: &[u8]) {
    match target {
        "cmaf_import" => crate::checks::cmaf_import(data),
        "catalog" => crate::checks::catalog(data),
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
    assert_eq!(targets, 2, "one corpus directory per fuzz target");
    assert!(files >= targets, "empty corpus");
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(200))]

    /// The fixtures' seeds, cut short and with some bytes changed, hold the fuzz properties
    /// (no panic, chunking does not matter, what reads exports and reads back).
    #[test]
    fn damaged_streams_hold_the_properties(
        seed in 0usize..5,
        changes in proptest::collection::vec((proptest::num::usize::ANY, proptest::num::u8::ANY), 0..6),
        keep in 0.0f64..=1.0,
    ) {
        let seeds = ["h264_aac", "h264_bframes", "hevc", "vp9_opus", "av1"];
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/cmaf_import")
            .join(format!("seed-{}", seeds[seed]));
        let mut data = fs::read(path).expect("the seed is there");
        for (at, byte) in changes {
            let at = at % data.len();
            data[at] = byte;
        }
        data.truncate((data.len() as f64 * keep) as usize);
        crate::checks::cmaf_import(&data);
    }
}
