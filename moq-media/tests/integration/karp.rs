//! Compatibility with moq-karp 0.10 (the published media layer of our wire), used here as a
//! dev-dependency: its catalog parses ours and ours parses its, byte for byte; frames its
//! track writer produces read with ours and the reverse; and the catalog our CMAF import
//! makes is the one its import makes from the same file, except where documented.

use crate::support::{FIXTURES, demux, fixture, now_or_never};
use bytes::Bytes;
use moq_karp as karp;
use moq_media::{Catalog, Frame, Timestamp, TrackConsumer, TrackProducer};
use moq_transfork_06 as transfork;

/// Our catalogs (the fixtures', and hand-made ones with every codec) through moq-karp's
/// parser and printer come back as the same bytes.
#[test]
fn karp_reads_our_catalogs() {
    let mut catalogs: Vec<Catalog> = FIXTURES
        .iter()
        .map(|file| demux(&fixture(file)).catalog)
        .collect();
    catalogs.push(
        Catalog::from_json(
            br#"{"video":[{"track":{"name":"video1","priority":2},"codec":"vp8","resolution":{"width":640,"height":480}},{"track":{"name":"hd","priority":3},"codec":"av01.0.08M.10.0.112.09.16.09.0","description":"81080c00","resolution":{"width":1920,"height":1080},"bitrate":4000000}],"audio":[{"track":{"name":"audio2","priority":1},"codec":"mp4a.40.5","sample_rate":44100,"channel_count":6,"bitrate":128000}]}"#,
        )
        .unwrap(),
    );
    for ours in catalogs {
        let json = ours.to_json();
        let theirs = karp::Catalog::from_str(&json)
            .unwrap_or_else(|err| panic!("moq-karp refuses {json}: {err}"));
        assert_eq!(theirs.to_string().unwrap(), json);
        assert_eq!(theirs.video.len(), ours.video.len());
        assert_eq!(theirs.audio.len(), ours.audio.len());
    }
}

/// Catalogs moq-karp writes, with each of its codec types, parse with ours and print back
/// as the same bytes.
#[test]
fn we_read_karp_catalogs() {
    let video = |name: &str, codec: karp::VideoCodec, description: &'static [u8]| karp::Video {
        track: karp::Track {
            name: name.into(),
            priority: 2,
        },
        codec,
        description: Bytes::from_static(description),
        resolution: karp::Dimensions {
            width: 1280,
            height: 720,
        },
        bitrate: Some(3_000_000),
    };
    let audio = |name: &str, codec: karp::AudioCodec| karp::Audio {
        track: karp::Track {
            name: name.into(),
            priority: 1,
        },
        codec,
        sample_rate: 48_000,
        channel_count: 2,
        bitrate: None,
    };
    let catalog = karp::Catalog {
        video: vec![
            video(
                "h264",
                karp::H264 {
                    profile: 0x42,
                    constraints: 0xc0,
                    level: 0x1e,
                }
                .into(),
                &[1, 0x42, 0xc0, 0x1e, 0xff],
            ),
            video(
                "vp9",
                karp::VP9 {
                    profile: 2,
                    level: 10,
                    bit_depth: 10,
                    chroma_subsampling: 1,
                    color_primaries: 9,
                    transfer_characteristics: 16,
                    matrix_coefficients: 9,
                    full_range: true,
                }
                .into(),
                &[],
            ),
            video(
                "av1",
                karp::AV1 {
                    profile: 0,
                    level: 4,
                    tier: 'M',
                    bitdepth: 10,
                    mono_chrome: false,
                    chroma_subsampling: 112,
                    color_primaries: 9,
                    transfer_characteristics: 16,
                    matrix_coefficients: 9,
                    full_range: false,
                }
                .into(),
                &[],
            ),
            // moq-karp's own H.265 form, which is not the standard one: kept as a string.
            video(
                "h265",
                karp::H265 {
                    profile: 1,
                    constraints: 0x60,
                    level: 0x5d,
                }
                .into(),
                &[],
            ),
            video("vp8", karp::VideoCodec::VP8, &[]),
            video("other", karp::VideoCodec::Unknown("theora".into()), &[]),
        ],
        audio: vec![
            audio("aac", karp::AAC { profile: 2 }.into()),
            audio("opus", karp::AudioCodec::Opus),
            audio("flac", karp::AudioCodec::Unknown("flac".into())),
        ],
    };
    let json = catalog.to_string().unwrap();
    let ours = Catalog::from_json(json.as_bytes()).unwrap();
    assert_eq!(ours.to_json(), json);
    assert_eq!(&ours.video[0].description[..], [1, 0x42, 0xc0, 0x1e, 0xff]);
    assert_eq!(ours.video[0].codec.to_string(), "avc1.42c01e");
    assert!(matches!(
        ours.video[3].codec,
        moq_media::VideoCodec::Other(_)
    ));
    // And the empty catalog.
    let empty = karp::Catalog::default().to_string().unwrap();
    assert_eq!(
        Catalog::from_json(empty.as_bytes()).unwrap().to_json(),
        empty
    );
}

/// The frames of a small stream: keyframes every fourth frame, growing timestamps and
/// payloads of varied sizes (some over 63 and 16383 µs so that varints of several lengths
/// are used).
fn frames() -> Vec<Frame> {
    (0..20u64)
        .map(|i| Frame {
            timestamp: Timestamp::from_micros(i * i * 10_007).unwrap(),
            keyframe: i % 4 == 0,
            payload: vec![i as u8; (i as usize * 37) % 300].into(),
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Frames we write, carried group by group to a moq-transfork 0.6 track, read with
/// moq-karp's track reader.
#[test]
fn karp_reads_our_frames() {
    let (model_track, mut raw) = moq_model::Track::new(["b", "video1"]).produce();
    let mut ours = TrackProducer::new(model_track);
    let (mut theirs_writer, theirs_track) =
        transfork::Track::new(transfork::Path::new().push("video1")).produce();
    let mut reader = karp::TrackConsumer::new(theirs_track);
    let mut raw_group: Option<moq_model::GroupConsumer> = None;
    let mut their_group: Option<transfork::GroupProducer> = None;
    let rt = runtime();
    for frame in frames() {
        ours.write(&frame).unwrap();
        // The bytes as they would travel, moved to the other implementation's track.
        if frame.keyframe || raw_group.is_none() {
            raw_group = Some(now_or_never(raw.next_group()).unwrap().unwrap().unwrap());
            // A finished group, as a relay would end its stream.
            their_group = Some(theirs_writer.append_group());
        }
        let bytes = now_or_never(raw_group.as_mut().unwrap().read_frame())
            .unwrap()
            .unwrap()
            .unwrap();
        their_group.as_mut().unwrap().write_frame(bytes);
        let read = rt.block_on(reader.read()).unwrap().unwrap();
        assert_eq!(read.timestamp.as_micros(), frame.timestamp.as_micros());
        assert_eq!(read.keyframe, frame.keyframe);
        assert_eq!(read.payload, frame.payload);
    }
}

/// Frames moq-karp's track writer produces, carried to a moq-model track, read with ours.
#[test]
fn we_read_karp_frames() {
    let (theirs_track, mut raw) =
        transfork::Track::new(transfork::Path::new().push("audio2")).produce();
    let mut writer = karp::TrackProducer::new(theirs_track);
    let (mut model_track, model_consumer) = moq_model::Track::new(["b", "audio2"]).produce();
    let mut reader = TrackConsumer::new(model_consumer);
    let mut raw_group: Option<transfork::GroupConsumer> = None;
    let mut our_group: Option<moq_model::GroupProducer> = None;
    let rt = runtime();
    for frame in frames() {
        writer.write(karp::Frame {
            timestamp: karp::Timestamp::from_micros(frame.timestamp.as_micros()),
            keyframe: frame.keyframe,
            payload: frame.payload.clone(),
        });
        if frame.keyframe || raw_group.is_none() {
            raw_group = Some(rt.block_on(raw.next_group()).unwrap().unwrap());
            if let Some(group) = our_group.take() {
                group.finish();
            }
            our_group = Some(model_track.append_group());
        }
        let bytes = rt
            .block_on(raw_group.as_mut().unwrap().read_frame())
            .unwrap()
            .unwrap();
        our_group.as_mut().unwrap().write_frame(bytes).unwrap();
        let read = now_or_never(reader.read()).unwrap().unwrap().unwrap();
        assert_eq!(read, frame);
    }
}

/// The catalog track we publish: one group per version, each one frame that moq-karp's
/// catalog parser reads.
#[test]
fn karp_reads_our_catalog_track() {
    let (broadcast, consumer) = moq_model::Broadcast::new(["live", "karp", "1"]).produce();
    let mut producer = moq_media::BroadcastProducer::new(broadcast).unwrap();
    let mut catalog_track = consumer.track(&moq_model::Path::empty()).unwrap();
    let catalog = demux(&fixture("h264_aac.mp4")).catalog;
    let mut tracks = Vec::new();
    for expected in [1, 2] {
        tracks.push(match expected {
            1 => producer.add_video(catalog.video[0].clone()).unwrap(),
            _ => producer.add_audio(catalog.audio[0].clone()).unwrap(),
        });
        let mut group = now_or_never(catalog_track.next_group())
            .unwrap()
            .unwrap()
            .unwrap();
        let json = now_or_never(group.read_frame()).unwrap().unwrap().unwrap();
        assert_eq!(now_or_never(group.read_frame()).unwrap().unwrap(), None);
        let theirs = karp::Catalog::from_slice(&json).unwrap();
        assert_eq!(theirs.video.len() + theirs.audio.len(), expected);
    }
}

/// What moq-karp 0.10's CMAF import puts in the catalog for `h264_aac.mp4`, worked out with
/// the box parser it uses (mp4-atom 0.3) and its rules (track names from the MP4 track id,
/// priorities 2 and 1, the avcC body as the description, the sample entry's rate and
/// channel count, the esds bitrate), against ours.
#[test]
fn our_import_matches_karps_catalog() {
    use mp4_atom_03::{Atom, Decode};

    let input = fixture("h264_aac.mp4");
    let mut buf = &input[..];
    let _ftyp = mp4_atom_03::Ftyp::decode(&mut buf).unwrap();
    let moov = mp4_atom_03::Moov::decode(&mut buf).unwrap();
    let mut theirs = karp::Catalog::default();
    for trak in &moov.trak {
        let id = trak.tkhd.track_id;
        let stsd = &trak.mdia.minf.stbl.stsd;
        if let Some(avc1) = &stsd.avc1 {
            let mut description = Vec::new();
            avc1.avcc.encode_body(&mut description).unwrap();
            theirs.video.push(karp::Video {
                track: karp::Track {
                    name: format!("video{id}"),
                    priority: 2,
                },
                codec: karp::H264 {
                    profile: avc1.avcc.avc_profile_indication,
                    constraints: avc1.avcc.profile_compatibility,
                    level: avc1.avcc.avc_level_indication,
                }
                .into(),
                description: description.into(),
                resolution: karp::Dimensions {
                    width: avc1.width,
                    height: avc1.height,
                },
                bitrate: None,
            });
        }
        if let Some(mp4a) = &stsd.mp4a {
            let config = &mp4a.esds.as_ref().unwrap().es_desc.dec_config;
            theirs.audio.push(karp::Audio {
                track: karp::Track {
                    name: format!("audio{id}"),
                    priority: 1,
                },
                codec: karp::AAC {
                    profile: config.dec_specific.profile,
                }
                .into(),
                sample_rate: mp4a.samplerate.integer(),
                channel_count: mp4a.channelcount,
                bitrate: Some(config.avg_bitrate.max(config.max_bitrate)),
            });
        }
    }
    let mut ours = demux(&input).catalog;
    // Where ours differs on purpose (docs/media.md): the AAC channel count comes from the
    // AudioSpecificConfig (mono), not the sample entry (ffmpeg writes 2 there), and a video
    // bitrate from the btrt box when there is one. Undo those two, and the rest is equal.
    assert_eq!(ours.audio[0].channel_count, 1);
    assert_eq!(theirs.audio[0].channel_count, 2);
    ours.audio[0].channel_count = 2;
    ours.video[0].bitrate = None;
    assert_eq!(ours.to_json(), theirs.to_string().unwrap());
}
