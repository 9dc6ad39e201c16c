//! Tests that run ffmpeg and ffprobe (Debian: `apt-get install ffmpeg`). They are
//! `#[ignore]`d so that a plain `cargo test` needs no ffmpeg; `scripts/test.sh` (and so CI)
//! installs ffmpeg and runs them with
//! `cargo test -p moq-media --test integration ffmpeg:: -- --ignored`. Each fails, with a
//! message, when ffmpeg is missing: none is skipped silently.

use std::io::Read;
use std::process::{Command, Stdio};

use crate::support::{FIXTURES, demux, fixture};
use moq_media::cmaf::{Demuxer, Event, ImportConfig, Muxer};

/// The path of tool `name`, or a panic that says how to install it.
fn tool(name: &str) -> Command {
    let found = Command::new(name)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "{name} is needed for this test and was not found on PATH (Debian: apt-get install ffmpeg)"
    );
    Command::new(name)
}

/// A file in the temporary directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        Self(std::env::temp_dir().join(format!("moq-media-{}-{name}", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Packet counts per stream, as ffprobe counts them.
fn packet_counts(path: &std::path::Path) -> Vec<(String, u64)> {
    let output = tool("ffprobe")
        .args(["-v", "error", "-count_packets", "-show_entries"])
        .arg("stream=codec_name,nb_read_packets")
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (codec, count) = line.split_once(',').unwrap();
            (codec.to_owned(), count.parse().unwrap())
        })
        .collect()
}

/// What we export from each fixture decodes with ffmpeg without an error, with as many
/// packets per stream as the original.
#[test]
#[ignore = "needs ffmpeg; run with --ignored"]
fn ffmpeg_decodes_what_we_export() {
    for file in FIXTURES {
        let demuxed = demux(&fixture(file));
        let mut muxer = Muxer::new(&demuxed.catalog).unwrap();
        let mut output = muxer.init_segment().to_vec();
        for (track, frame) in &demuxed.frames {
            output.extend_from_slice(&muxer.fragment(*track, frame).unwrap());
        }
        let exported = TempFile::new(file);
        std::fs::write(&exported.0, &output).unwrap();

        let decode = tool("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&exported.0)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        // ffmpeg 5.1's own fragmented output repeats an audio time at some fragment
        // boundaries (h264_aac.mp4 at 2.048 s: ffprobe shows the packet twice, the second
        // flagged discard). We carry that time as it is, so ffmpeg's null muxer reports the
        // repeated time; any other message is a failure.
        let errors = String::from_utf8_lossy(&decode.stderr);
        let errors: Vec<&str> = errors
            .lines()
            .filter(|line| !line.contains("non monotonically increasing dts to muxer in stream 1"))
            .collect();
        assert!(
            decode.status.success() && errors.is_empty(),
            "{file}: {errors:?}"
        );
        assert_eq!(
            packet_counts(&exported.0),
            packet_counts(&crate::support::data_path(file)),
            "{file}"
        );
    }
}

/// ffmpeg writing to a pipe, read as it comes in small pieces: the live import path.
#[test]
#[ignore = "needs ffmpeg; run with --ignored"]
fn imports_ffmpeg_as_it_streams() {
    let mut child = tool("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=300:sample_rate=44100"])
        .args([
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-bf",
            "0",
        ])
        .args([
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", "-f", "mp4",
        ])
        .args([
            "-movflags",
            "cmaf+separate_moof+delay_moov+skip_trailer+frag_every_frame",
        ])
        .arg("pipe:1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut demuxer = Demuxer::new(ImportConfig::default());
    let mut catalog = None;
    let (mut video, mut audio, mut keyframes) = (0, 0, 0);
    let mut buf = [0u8; 1000];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        demuxer.push(&buf[..n]);
        while let Some(event) = demuxer.next().unwrap() {
            match event {
                Event::Catalog(found) => catalog = Some(found),
                Event::Frame { track: 0, frame } => {
                    video += 1;
                    keyframes += usize::from(frame.keyframe);
                }
                Event::Frame { .. } => audio += 1,
            }
        }
    }
    assert!(child.wait().unwrap().success());
    demuxer.finish().unwrap();
    let catalog = catalog.unwrap();
    assert_eq!(catalog.video[0].resolution.width, 320);
    assert_eq!(catalog.audio[0].sample_rate, 44_100);
    assert_eq!(catalog.audio[0].channel_count, 2);
    assert_eq!((video, keyframes), (60, 2));
    // 2 s of 1024-sample AAC frames at 44.1 kHz, give or take the encoder's priming.
    assert!((86..=90).contains(&audio), "{audio} audio frames");
}
