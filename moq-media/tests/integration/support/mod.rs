//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use moq_media::cmaf::{Demuxer, Event, ImportConfig, ImportError};
use moq_media::{Catalog, Frame};

/// The fixtures in `tests/data` (see its README.md).
pub const FIXTURES: [&str; 5] = [
    "h264_aac.mp4",
    "h264_bframes.mp4",
    "hevc.mp4",
    "vp9_opus.mp4",
    "av1.mp4",
];

pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = data_path(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// What a demuxer made of some input: the catalog and every frame with its track.
#[derive(Debug, PartialEq)]
pub struct Demuxed {
    pub catalog: Catalog,
    pub frames: Vec<(usize, Frame)>,
}

/// Demuxes `input` fed in chunks of `chunk` bytes (drained after each), then checks the end.
pub fn demux_chunked(input: &[u8], chunk: usize) -> Result<Demuxed, ImportError> {
    let mut demuxer = Demuxer::new(ImportConfig::default());
    let mut catalog = None;
    let mut frames = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        demuxer.push(piece);
        while let Some(event) = demuxer.next()? {
            match event {
                Event::Catalog(found) => {
                    assert!(catalog.is_none(), "a second catalog");
                    assert!(frames.is_empty(), "frames before the catalog");
                    catalog = Some(found);
                }
                Event::Frame { track, frame } => frames.push((track, frame)),
            }
        }
        // Memory: at most one box plus the chunk.
        assert!(demuxer.buffered() <= ImportConfig::DEFAULT_MAX_BOX_SIZE as usize + chunk);
    }
    demuxer.finish()?;
    Ok(Demuxed {
        catalog: catalog.expect("a catalog"),
        frames,
    })
}

pub fn demux(input: &[u8]) -> Demuxed {
    demux_chunked(input, input.len()).expect("the input demuxes")
}

/// Polls `future` once with a waker that does nothing.
pub fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// Runs `future` to completion on this thread.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(future)
}
