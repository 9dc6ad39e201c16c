//! The properties every fuzz input must satisfy. Shared by the cargo-fuzz targets and by the
//! corpus replay test in `moq-media/tests/integration/fuzz_corpus.rs` (included by `main.rs` with `#[path]`).

#![allow(dead_code, unreachable_pub)]

use moq_media::Catalog;
use moq_media::cmaf::{Demuxer, Event, ImportConfig, ImportError, Muxer};

/// The box size limit the checks use: small, so that inputs can reach it.
const MAX_BOX: u64 = 1 << 16;

/// Everything a demuxer made of an input, and how it ended.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    end: Result<(), ImportError>,
}

fn demux(data: &[u8], chunk: usize) -> Outcome {
    let mut config = ImportConfig::default();
    config.max_box_size = MAX_BOX;
    let mut demuxer = Demuxer::new(config);
    let mut events = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        demuxer.push(piece);
        loop {
            match demuxer.next() {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(err) => {
                    return Outcome {
                        events,
                        end: Err(err),
                    };
                }
            }
        }
        // At most one box is held, plus the piece just pushed.
        assert!(demuxer.buffered() as u64 <= MAX_BOX + piece.len() as u64);
    }
    let end = demuxer.finish();
    Outcome { events, end }
}

/// The demuxer on `data`.
pub fn cmaf_import(data: &[u8]) {
    let whole = demux(data, data.len());
    // The chunking never changes what is read.
    let chunk = data.first().map_or(1, |&b| usize::from(b % 64) + 1);
    assert_eq!(demux(data, chunk), whole, "in chunks of {chunk}");
    for event in &whole.events {
        if let Event::Frame { frame, .. } = event {
            assert!(frame.payload.len() <= data.len());
        }
    }
    export_round_trip(&whole.events);
}

/// What was read exports, when the muxer can describe it, to bytes that read back the
/// same frames.
fn export_round_trip(events: &[Event]) {
    let Some(Event::Catalog(catalog)) = events.first() else {
        return;
    };
    let Ok(mut muxer) = Muxer::new(catalog) else {
        return;
    };
    let mut output = muxer.init_segment().to_vec();
    let mut frames = Vec::new();
    for event in &events[1..] {
        let Event::Frame { track, frame } = event else {
            panic!("a second catalog");
        };
        let Ok(fragment) = muxer.fragment(*track, frame) else {
            return;
        };
        output.extend_from_slice(&fragment);
        frames.push((*track, frame));
    }
    let mut demuxer = Demuxer::new(ImportConfig::default());
    demuxer.push(&output);
    let Ok(Some(Event::Catalog(again))) = demuxer.next() else {
        panic!("the exported init segment does not read back");
    };
    assert_eq!(again.video.len(), catalog.video.len());
    assert_eq!(again.audio.len(), catalog.audio.len());
    for (track, frame) in frames {
        match demuxer.next() {
            Ok(Some(Event::Frame { track: t, frame: f })) => {
                assert_eq!(t, track);
                assert_eq!(f.timestamp, frame.timestamp);
                assert_eq!(f.payload, frame.payload);
            }
            other => panic!("expected a frame, got {other:?}"),
        }
    }
    assert_eq!(demuxer.next(), Ok(None));
    demuxer.finish().expect("the export ends on a box boundary");
}

/// Catalog JSON on `data`.
pub fn catalog(data: &[u8]) {
    let Ok(catalog) = Catalog::from_json(data) else {
        return;
    };
    let json = catalog.to_json();
    let again = Catalog::from_json(json.as_bytes()).expect("printed JSON parses");
    assert_eq!(again.to_json(), json, "printing is stable");
}
