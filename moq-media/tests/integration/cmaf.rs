//! CMAF import and export through the public API, on the ffmpeg fixtures in `tests/data`.

use std::time::Duration;

use crate::support::{FIXTURES, demux, demux_chunked, fixture, now_or_never};
use moq_media::cmaf::{
    BoxType, Demuxer, Event, ExportError, Import, ImportConfig, ImportError, Muxer,
};
use moq_media::{
    AudioCodec, BroadcastProducer, Catalog, Frame, Timestamp, TrackConsumer, VideoCodec,
};
use moq_model::{Broadcast, CacheLimits};

/// What ffprobe says of each fixture (tests/data/README.md), and the codec strings.
#[test]
fn fixtures_import_as_ffprobe_sees_them() {
    struct Expect {
        file: &'static str,
        video: &'static str,
        audio: Option<(&'static str, u16, u16)>,
        video_frames: usize,
        audio_frames: usize,
        keyframes: usize,
    }
    let expected = [
        Expect {
            file: "h264_aac.mp4",
            video: "avc1.4d400c",
            audio: Some(("mp4a.40.2", 48_000, 1)),
            video_frames: 45,
            audio_frames: 142,
            keyframes: 3,
        },
        Expect {
            file: "h264_bframes.mp4",
            video: "avc1.64000b",
            audio: None,
            video_frames: 30,
            audio_frames: 0,
            keyframes: 3,
        },
        Expect {
            file: "hevc.mp4",
            video: "hev1.1.6.L30.90",
            audio: None,
            video_frames: 30,
            audio_frames: 0,
            keyframes: 2,
        },
        Expect {
            file: "vp9_opus.mp4",
            // ffmpeg writes colour values 2 (unspecified), so the long form.
            video: "vp09.00.10.08.01.02.02.02.00",
            audio: Some(("opus", 48_000, 2)),
            video_frames: 30,
            audio_frames: 101,
            keyframes: 2,
        },
        Expect {
            file: "av1.mp4",
            video: "av01.0.00M.08",
            audio: None,
            video_frames: 30,
            audio_frames: 0,
            keyframes: 2,
        },
    ];
    for expect in expected {
        let file = expect.file;
        let demuxed = demux(&fixture(file));
        let catalog = &demuxed.catalog;
        assert_eq!(catalog.video.len(), 1, "{file}");
        let video = &catalog.video[0];
        assert_eq!(video.codec.to_string(), expect.video, "{file}");
        assert!(!matches!(video.codec, VideoCodec::Other(_)), "{file}");
        assert_eq!(
            (video.resolution.width, video.resolution.height),
            (160, 120)
        );
        assert_eq!(video.track.name, "video1", "{file}");
        assert_eq!(video.track.priority, 2);
        match expect.audio {
            Some((codec, rate, channels)) => {
                let audio = &catalog.audio[0];
                assert_eq!(audio.codec.to_string(), codec, "{file}");
                assert!(!matches!(audio.codec, AudioCodec::Other(_)));
                assert_eq!((audio.sample_rate, audio.channel_count), (rate, channels));
                assert_eq!(audio.track.name, "audio2", "{file}");
                assert_eq!(audio.track.priority, 1);
            }
            None => assert!(catalog.audio.is_empty(), "{file}"),
        }
        let video_frames: Vec<&Frame> = demuxed
            .frames
            .iter()
            .filter(|(track, _)| *track == 0)
            .map(|(_, frame)| frame)
            .collect();
        assert_eq!(video_frames.len(), expect.video_frames, "{file}");
        assert_eq!(
            demuxed.frames.len() - video_frames.len(),
            expect.audio_frames,
            "{file}"
        );
        let keyframes = video_frames.iter().filter(|frame| frame.keyframe).count();
        assert_eq!(keyframes, expect.keyframes, "{file}");
        assert!(video_frames[0].keyframe, "{file} starts with a keyframe");
        // 15 fps: the frames' times are 1/15 s apart (in presentation order).
        let mut times: Vec<u64> = video_frames
            .iter()
            .map(|frame| frame.timestamp.as_micros())
            .collect();
        times.sort_unstable();
        for pair in times.windows(2) {
            assert!(
                (66_666..=66_667).contains(&(pair[1] - pair[0])),
                "{file}: {pair:?}"
            );
        }
    }
}

#[test]
fn b_frames_keep_their_presentation_times() {
    let demuxed = demux(&fixture("h264_bframes.mp4"));
    let times: Vec<u64> = demuxed
        .frames
        .iter()
        .map(|(_, frame)| frame.timestamp.as_micros())
        .collect();
    // The file's decode times are 0, 1/15, 2/15, 3/15 s and its composition offsets 0,
    // +2/15, -1/15, +1/15 s (trun version 1). ffprobe shows each time 1/15 s later, as it
    // shifts a stream with negative offsets so that no presentation time precedes its
    // decode time; the file itself says 0, 2/15, 1/15, 3/15.
    assert_eq!(&times[..4], [0, 133_333, 66_666, 200_000]);
}

/// Feeding the bytes in any chunking gives the same catalog and frames (neqo's
/// split-at-every-offset, on the init segment and the first fragments).
#[test]
fn any_chunking_gives_the_same_events() {
    for file in FIXTURES {
        let input = fixture(file);
        let whole = demux(&input);
        for chunk in [1, 7, 100, 4096] {
            assert_eq!(
                demux_chunked(&input, chunk).unwrap(),
                whole,
                "{file} by {chunk}"
            );
        }
    }
    let input = fixture("h264_aac.mp4");
    let prefix = &input[..3000];
    let reference = demux_prefix(prefix, prefix.len());
    for split in 0..prefix.len() {
        let mut demuxer = Demuxer::new(ImportConfig::default());
        let mut events = Vec::new();
        for piece in [&prefix[..split], &prefix[split..]] {
            demuxer.push(piece);
            while let Some(event) = demuxer.next().unwrap() {
                events.push(event);
            }
        }
        assert_eq!(events, reference, "split at {split}");
    }
}

fn demux_prefix(input: &[u8], chunk: usize) -> Vec<Event> {
    let mut demuxer = Demuxer::new(ImportConfig::default());
    let mut events = Vec::new();
    for piece in input.chunks(chunk) {
        demuxer.push(piece);
        while let Some(event) = demuxer.next().unwrap() {
            events.push(event);
        }
    }
    events
}

/// Import, export, import again: the same catalog and the same frames.
#[test]
fn export_then_import_round_trips() {
    for file in FIXTURES {
        let first = demux(&fixture(file));
        let mut muxer = Muxer::new(&first.catalog).unwrap();
        let mut output = muxer.init_segment().to_vec();
        for (track, frame) in &first.frames {
            output.extend_from_slice(&muxer.fragment(*track, frame).unwrap());
        }
        let second = demux(&output);
        assert_eq!(second.catalog, first.catalog, "{file}");
        assert_eq!(second.frames.len(), first.frames.len(), "{file}");
        for ((track, a), (again, b)) in first.frames.iter().zip(&second.frames) {
            assert_eq!(track, again, "{file}");
            assert_eq!(a.timestamp, b.timestamp, "{file}");
            assert_eq!(a.payload, b.payload, "{file}");
            if *track < first.catalog.video.len() {
                assert_eq!(a.keyframe, b.keyframe, "{file}");
            } else {
                assert!(b.keyframe, "{file}: audio samples are all sync samples");
            }
        }
    }
}

/// The publishing path: Import on a broadcast, read back through the media consumers
/// (reading as the import goes, as a live viewer does).
#[test]
fn import_publishes_a_karp_broadcast() {
    let input = fixture("h264_aac.mp4");
    let (broadcast, broadcast_consumer) = Broadcast::new(["live", "karp", "1"]).produce();
    let mut producer = BroadcastProducer::new(broadcast).unwrap();
    producer.set_track_cache(Duration::from_secs(3600), CacheLimits::default());
    let mut reader = producer.consume();
    let mut import = Import::new(producer);

    // The catalog track exists at once, under the broadcast's own path.
    let catalog_track = broadcast_consumer.track(&moq_model::Path::empty()).unwrap();
    assert_eq!(
        catalog_track.path(),
        &moq_model::Path::from(["live", "karp", "1"])
    );
    assert_eq!(catalog_track.info().priority, -1);

    let mut tracks: Option<(Catalog, Vec<TrackConsumer>)> = None;
    let mut frames: Vec<Vec<Frame>> = vec![Vec::new(), Vec::new()];
    for piece in input.chunks(1000) {
        import.push(piece).unwrap();
        if tracks.is_none()
            && let Some(catalog) = now_or_never(reader.catalog())
        {
            let catalog = catalog.unwrap().unwrap();
            let consumers = catalog.tracks().map(|info| reader.track(info)).collect();
            tracks = Some((catalog, consumers));
        }
        if let Some((_, consumers)) = &mut tracks {
            for (index, consumer) in consumers.iter_mut().enumerate() {
                while let Some(frame) = now_or_never(consumer.read()) {
                    frames[index].push(frame.unwrap().unwrap());
                }
            }
        }
    }
    let producer = import.finish().unwrap();
    let (catalog, mut consumers) = tracks.unwrap();
    for (index, consumer) in consumers.iter_mut().enumerate() {
        while let Some(frame) = now_or_never(consumer.read()).expect("ended").unwrap() {
            frames[index].push(frame);
        }
    }
    assert_eq!(&catalog, producer.catalog());
    let demuxed = demux(&input);
    for (index, read) in frames.iter().enumerate() {
        let expected: Vec<&Frame> = demuxed
            .frames
            .iter()
            .filter(|(track, _)| *track == index)
            .map(|(_, frame)| frame)
            .collect();
        assert_eq!(read.len(), expected.len(), "track {index}");
        for (got, want) in read.iter().zip(&expected) {
            assert_eq!(got.timestamp, want.timestamp);
            assert_eq!(got.payload, want.payload);
        }
    }
    // Video groups start at keyframes.
    let video_keys: Vec<bool> = frames[0].iter().map(|frame| frame.keyframe).collect();
    let demuxed_keys: Vec<bool> = demuxed
        .frames
        .iter()
        .filter(|(track, _)| *track == 0)
        .map(|(_, frame)| frame.keyframe)
        .collect();
    assert_eq!(video_keys, demuxed_keys);
    // Audio groups start with the video groups: the audio frame after each video keyframe
    // begins a group, and no other does (the fixture is 3 s, under the 10 s limit).
    let audio_group_starts: Vec<u64> = frames[1]
        .iter()
        .filter(|frame| frame.keyframe)
        .map(|frame| frame.timestamp.as_micros())
        .collect();
    assert_eq!(audio_group_starts.len(), 3, "{audio_group_starts:?}");
    assert_eq!(audio_group_starts[0], 0);

    // One catalog group (the catalog was published once, with both tracks).
    assert_eq!(catalog_track.latest(), Some(0));
}

#[test]
fn absurd_box_sizes_are_refused_at_the_header() {
    let mut config = ImportConfig::default();
    config.max_box_size = 1 << 20;
    let mut demuxer = Demuxer::new(config.clone());
    demuxer.push(&[0x7f, 0xff, 0xff, 0xff, b'm', b'o', b'o', b'v']);
    assert_eq!(
        demuxer.next(),
        Err(ImportError::BoxTooLarge {
            kind: BoxType(*b"moov"),
            size: 0x7fff_ffff,
            limit: 1 << 20,
        })
    );
    // A 64-bit size.
    let mut demuxer = Demuxer::new(config);
    demuxer.push(&[
        0, 0, 0, 1, b'm', b'd', b'a', b't', 0xff, 0, 0, 0, 0, 0, 0, 0,
    ]);
    assert!(matches!(
        demuxer.next(),
        Err(ImportError::BoxTooLarge {
            size: 0xff00_0000_0000_0000,
            ..
        })
    ));
    let mut demuxer = Demuxer::new(ImportConfig::default());
    demuxer.push(&[0, 0, 0, 0, b'm', b'd', b'a', b't']);
    assert_eq!(
        demuxer.next(),
        Err(ImportError::UnboundedBox(BoxType(*b"mdat")))
    );
    for size in [2u8, 7] {
        let mut demuxer = Demuxer::new(ImportConfig::default());
        demuxer.push(&[0, 0, 0, size, b'f', b'r', b'e', b'e']);
        assert!(matches!(
            demuxer.next(),
            Err(ImportError::InvalidBoxSize { .. })
        ));
    }
    let mut demuxer = Demuxer::new(ImportConfig::default());
    demuxer.push(&[0, 0, 0, 1, b'f', b'r', b'e', b'e', 0, 0, 0, 0, 0, 0, 0, 15]);
    assert!(matches!(
        demuxer.next(),
        Err(ImportError::InvalidBoxSize { size: 15, .. })
    ));
}

#[test]
fn truncated_input_is_an_error_at_the_end() {
    let input = fixture("h264_aac.mp4");
    for cut in [1, 8, 100, input.len() - 1] {
        let err = demux_chunked(&input[..cut], 512).unwrap_err();
        assert!(
            matches!(err, ImportError::Truncated { .. }),
            "cut {cut}: {err}"
        );
    }
    // Cut between a moof and its mdat.
    let boxes = top_level_boxes(&input);
    let (moof_end, _) = boxes
        .iter()
        .find(|(_, kind)| kind == b"mdat")
        .copied()
        .unwrap();
    let err = demux_chunked(&input[..moof_end], 512).unwrap_err();
    assert_eq!(err, ImportError::MoofWithoutMdat);
}

/// Offsets and types of the top-level boxes.
fn top_level_boxes(input: &[u8]) -> Vec<(usize, [u8; 4])> {
    let mut boxes = Vec::new();
    let mut offset = 0;
    while offset + 8 <= input.len() {
        let size = u32::from_be_bytes(input[offset..offset + 4].try_into().unwrap()) as usize;
        boxes.push((offset, input[offset + 4..offset + 8].try_into().unwrap()));
        offset += size;
    }
    boxes
}

#[test]
fn boxes_out_of_order_are_refused() {
    let input = fixture("h264_aac.mp4");
    let boxes = top_level_boxes(&input);
    let end = |index: usize| {
        boxes
            .get(index + 1)
            .map_or(input.len(), |(offset, _)| *offset)
    };
    let range = |index: usize| &input[boxes[index].0..end(index)];
    assert_eq!(
        &boxes[..4].iter().map(|(_, kind)| kind).collect::<Vec<_>>(),
        &[b"ftyp", b"moov", b"moof", b"mdat"]
    );

    // moof before moov.
    let mut demuxer = Demuxer::new(ImportConfig::default());
    demuxer.push(range(0));
    demuxer.push(range(2));
    assert_eq!(
        demuxer.next(),
        Err(ImportError::MissingInit(BoxType(*b"moof")))
    );

    // Two moovs.
    let mut twice = [range(0), range(1), range(1)].concat();
    twice.extend_from_slice(range(2));
    let err = demux_chunked(&twice, twice.len()).unwrap_err();
    assert_eq!(err, ImportError::DuplicateInit);

    // mdat without moof, and moof twice.
    let no_moof = [range(0), range(1), range(3)].concat();
    assert_eq!(
        demux_chunked(&no_moof, 64).unwrap_err(),
        ImportError::MdatWithoutMoof
    );
    let two_moofs = [range(0), range(1), range(2), range(2)].concat();
    assert_eq!(
        demux_chunked(&two_moofs, 64).unwrap_err(),
        ImportError::MoofWithoutMdat
    );

    // A moof whose sample data points past its mdat.
    let mut short_mdat = [range(0), range(1), range(2)].concat();
    short_mdat.extend_from_slice(&[0, 0, 0, 9, b'm', b'd', b'a', b't', 0]);
    assert!(matches!(
        demux_chunked(&short_mdat, 64).unwrap_err(),
        ImportError::BadFragment { track: 1, .. }
    ));
}

#[test]
fn unknown_codecs_are_named() {
    let input = fixture("h264_aac.mp4");
    let moov_end = top_level_boxes(&input)[2].0;
    // The sample entry type appears once in the moov: rename it.
    for (from, to, codec) in [
        (&b"avc1"[..], b"xyz1", "xyz1"),
        (&b"mp4a"[..], b"alac", "alac"),
    ] {
        let mut init = input[..moov_end].to_vec();
        let at = init.windows(4).position(|window| window == from).unwrap();
        init[at..at + 4].copy_from_slice(to);
        let err = demux_chunked(&init, init.len()).unwrap_err();
        match err {
            ImportError::UnsupportedCodec { codec: found, .. } => assert_eq!(found, codec),
            other => panic!("{from:?}: {other}"),
        }
    }
}

#[test]
fn export_refuses_what_it_cannot_describe() {
    let mut catalog = demux(&fixture("h264_aac.mp4")).catalog;
    assert!(matches!(
        Muxer::new(&Catalog::default()),
        Err(ExportError::NoTracks)
    ));
    let mut muxer = Muxer::new(&catalog).unwrap();
    let frame = Frame {
        timestamp: Timestamp::ZERO,
        keyframe: true,
        payload: "x".into(),
    };
    assert_eq!(muxer.fragment(2, &frame), Err(ExportError::UnknownTrack(2)));

    catalog.video[0].description = bytes::Bytes::from_static(&[1, 2, 3]);
    assert!(matches!(
        Muxer::new(&catalog),
        Err(ExportError::Description { .. })
    ));
    catalog.video[0].description = bytes::Bytes::new();
    assert!(matches!(
        Muxer::new(&catalog),
        Err(ExportError::Description { .. })
    ));
    catalog.video[0].codec = VideoCodec::Other("theora".into());
    assert!(matches!(
        Muxer::new(&catalog),
        Err(ExportError::UnsupportedCodec { .. })
    ));
    catalog.video.clear();
    catalog.audio[0].sample_rate = 12_345;
    assert!(matches!(
        Muxer::new(&catalog),
        Err(ExportError::UnsupportedCodec { .. })
    ));
}

/// `Import::push_each` reports every frame it publishes, once, in the demuxer's order, with
/// its track's place in the catalog.
#[test]
fn push_each_reports_every_frame_it_publishes() {
    let input = fixture("h264_aac.mp4");
    let expected: Vec<(usize, Timestamp, usize)> = demux(&input)
        .frames
        .into_iter()
        .map(|(track, frame)| (track, frame.timestamp, frame.payload.len()))
        .collect();
    let (broadcast, _consumer) = Broadcast::new(["live", "each", "1"]).produce();
    let mut import = Import::new(BroadcastProducer::new(broadcast).unwrap());
    let mut reported = Vec::new();
    for piece in input.chunks(1000) {
        import
            .push_each(piece, |track, frame| {
                reported.push((track, frame.timestamp, frame.payload.len()))
            })
            .unwrap();
    }
    assert!(!expected.is_empty());
    assert_eq!(reported, expected);
}
