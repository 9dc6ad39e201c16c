//! The media layer's producers and consumers on moq-model, through the public API.

use crate::support::{demux, fixture, now_or_never};
use moq_media::{
    BroadcastConsumer, BroadcastProducer, Error, Frame, Timestamp, TrackConsumer, TrackProducer,
    TracksConsumer,
};
use moq_model::{Broadcast, Path, Track};

fn frame(micros: u64, keyframe: bool) -> Frame {
    Frame {
        timestamp: Timestamp::from_micros(micros).unwrap(),
        keyframe,
        payload: vec![micros as u8; 10].into(),
    }
}

#[test]
fn a_keyframe_starts_a_group_and_the_first_frame_of_a_group_reads_as_one() {
    let (track, mut raw) = Track::new(["b", "video1"]).produce();
    let mut producer = TrackProducer::new(track);
    let mut reader = producer.consume();
    let mut groups = Vec::new();
    for (micros, keyframe) in [(0, true), (1, false), (2, false), (3, true), (4, false)] {
        producer.write(&frame(micros, keyframe)).unwrap();
        if keyframe {
            groups.push(now_or_never(raw.next_group()).unwrap().unwrap().unwrap());
        }
        assert_eq!(
            now_or_never(reader.read()).unwrap().unwrap().unwrap(),
            frame(micros, keyframe)
        );
    }
    assert_eq!(
        groups.iter().map(|g| g.sequence()).collect::<Vec<_>>(),
        [0, 1]
    );
    assert!(
        groups[0].is_closed(),
        "the keyframe finished the group before it"
    );
    producer.finish();
    assert_eq!(now_or_never(reader.read()).unwrap().unwrap(), None);
}

#[test]
fn a_first_frame_that_is_not_a_keyframe_still_starts_a_group() {
    let (track, _raw) = Track::new(["b", "v"]).produce();
    let mut producer = TrackProducer::new(track);
    let mut reader = producer.consume();
    producer.write(&frame(5, false)).unwrap();
    // moq-karp 0.10 does the same; a reader takes the first frame of a group as a keyframe.
    assert!(
        now_or_never(reader.read())
            .unwrap()
            .unwrap()
            .unwrap()
            .keyframe
    );
}

#[test]
fn a_reader_behind_skips_to_the_newest_group() {
    let (track, consumer) = Track::new(["b", "v"]).produce();
    let mut producer = TrackProducer::new(track);
    let mut reader = TrackConsumer::new(consumer);
    producer.write(&frame(0, true)).unwrap();
    assert_eq!(
        now_or_never(reader.read())
            .unwrap()
            .unwrap()
            .unwrap()
            .timestamp
            .as_micros(),
        0
    );
    // Two more groups arrive while the reader is busy; the first group stays open.
    producer.write(&frame(1, false)).unwrap();
    producer.write(&frame(2, true)).unwrap();
    producer.write(&frame(3, true)).unwrap();
    producer.write(&frame(4, false)).unwrap();
    // It finishes the frames it can read now (group 0 was finished by the keyframe) ...
    assert_eq!(
        now_or_never(reader.read())
            .unwrap()
            .unwrap()
            .unwrap()
            .timestamp
            .as_micros(),
        1
    );
    // ... and then joins the newest group; group 1 left the cache (only the latest is kept).
    let next = now_or_never(reader.read()).unwrap().unwrap().unwrap();
    assert_eq!((next.timestamp.as_micros(), next.keyframe), (3, true));
    assert_eq!(
        now_or_never(reader.read())
            .unwrap()
            .unwrap()
            .unwrap()
            .timestamp
            .as_micros(),
        4
    );
    assert_eq!(reader.skipped(), 1);
}

#[test]
fn a_failed_group_is_skipped_and_the_writer_waits_for_a_keyframe() {
    let track = Track::build(["b", "v"]).max_group_bytes(100).into_track();
    let (track, consumer) = track.produce();
    let mut producer = TrackProducer::new(track);
    let mut reader = TrackConsumer::new(consumer);
    let big = |micros, keyframe| Frame {
        payload: vec![0; 60].into(),
        ..frame(micros, keyframe)
    };
    producer.write(&big(0, true)).unwrap();
    assert!(now_or_never(reader.read()).unwrap().unwrap().is_some());
    // Over the group's byte limit: the group is aborted, the writer told.
    assert_eq!(
        producer.write(&big(1, false)),
        Err(Error::Model(moq_model::Error::BoundsExceeded))
    );
    // Until the next keyframe, frames are dropped (they could not be decoded).
    producer.write(&big(2, false)).unwrap();
    producer.write(&big(3, true)).unwrap();
    let next = now_or_never(reader.read()).unwrap().unwrap().unwrap();
    assert_eq!((next.timestamp.as_micros(), next.keyframe), (3, true));
    assert_eq!(reader.skipped(), 1);
}

#[test]
fn a_bad_frame_is_an_error_and_reading_goes_on() {
    let (mut track, consumer) = Track::new(["b", "v"]).produce();
    let mut reader = TrackConsumer::new(consumer);
    let mut group = track.append_group();
    group.write_frame(bytes::Bytes::new()).unwrap();
    group.write_frame(frame(7, false).encode()).unwrap();
    assert_eq!(
        now_or_never(reader.read()).unwrap(),
        Err(Error::FrameTooShort)
    );
    let next = now_or_never(reader.read()).unwrap().unwrap().unwrap();
    assert_eq!((next.timestamp.as_micros(), next.keyframe), (7, false));
}

#[test]
fn tracks_consumer_ends_when_every_track_ended() {
    // Regression: two tracks ending before a read left the second one unpolled.
    let (video, video_reader) = Track::new(["b", "video1"]).produce();
    let (audio, audio_reader) = Track::new(["b", "audio2"]).produce();
    let (mut video, mut audio) = (TrackProducer::new(video), TrackProducer::new(audio));
    let mut tracks = TracksConsumer::new();
    tracks.push(video_reader.into());
    tracks.push(audio_reader.into());
    video.write(&frame(1, true)).unwrap();
    audio.write(&frame(2, true)).unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(now_or_never(tracks.read()).unwrap().unwrap().unwrap().0);
    }
    seen.sort_unstable();
    assert_eq!(seen, [0, 1]);
    drop((video, audio));
    assert_eq!(now_or_never(tracks.read()).unwrap(), Ok(None));
}

#[test]
fn tracks_consumer_reports_a_failed_track_once_and_goes_on() {
    let (video, video_reader) = Track::new(["b", "video1"]).produce();
    let (audio, audio_reader) = Track::new(["b", "audio2"]).produce();
    let mut audio = TrackProducer::new(audio);
    let mut tracks = TracksConsumer::new();
    tracks.push(video_reader.into());
    tracks.push(audio_reader.into());
    video.abort(moq_model::Error::Cancel);
    assert_eq!(
        now_or_never(tracks.read()).unwrap(),
        Err(Error::Model(moq_model::Error::Cancel))
    );
    audio.write(&frame(9, true)).unwrap();
    assert_eq!(now_or_never(tracks.read()).unwrap().unwrap().unwrap().0, 1);
    assert!(now_or_never(tracks.read()).is_none(), "audio is still open");
}

#[test]
fn the_catalog_follows_the_renditions() {
    let (broadcast, _consumer) = Broadcast::new(["live", "cam", "7"]).produce();
    let mut producer = BroadcastProducer::new(broadcast).unwrap();
    let mut reader = producer.consume();
    let catalog = demux(&fixture("vp9_opus.mp4")).catalog;

    let tracks = producer.add_catalog(catalog.clone()).unwrap();
    assert_eq!(tracks.len(), 2);
    assert_eq!(
        tracks[0].info().path,
        Path::from(["live", "cam", "7", "video1"])
    );
    assert_eq!(tracks[0].info().priority, 2);
    assert_eq!(
        tracks[1].info().path,
        Path::from(["live", "cam", "7", "audio2"])
    );
    assert_eq!(
        now_or_never(reader.catalog()).unwrap().unwrap(),
        Some(catalog.clone())
    );

    // A name used twice: nothing is added, nothing published.
    assert_eq!(
        producer.add_catalog(catalog.clone()).unwrap_err(),
        Error::Model(moq_model::Error::Duplicate)
    );
    assert!(producer.add_video(catalog.video[0].clone()).is_err());
    assert!(now_or_never(reader.catalog()).is_none(), "no new version");

    assert!(producer.remove("audio2").unwrap());
    assert!(!producer.remove("audio2").unwrap());
    let latest = now_or_never(reader.catalog()).unwrap().unwrap().unwrap();
    assert_eq!(latest.video, catalog.video);
    assert!(latest.audio.is_empty());

    // A viewer reads the tracks by the catalog's names.
    let mut video = reader.track(&catalog.video[0].track);
    let mut writer = tracks.into_iter().next().unwrap();
    writer.write(&frame(0, true)).unwrap();
    assert_eq!(
        now_or_never(video.read()).unwrap().unwrap().unwrap(),
        frame(0, true)
    );
    // The removed track is gone from the broadcast.
    let mut audio = reader.track(&catalog.audio[0].track);
    assert_eq!(
        now_or_never(audio.read()).unwrap(),
        Err(Error::Model(moq_model::Error::NotFound))
    );

    drop(producer);
    assert_eq!(now_or_never(reader.catalog()).unwrap(), Ok(None));
}

#[test]
fn a_catalog_that_is_not_json_is_an_error_then_the_next_one_reads() {
    let (mut catalog_track, consumer) = Track::new(["b"]).produce();
    let mut reader = BroadcastConsumer::new(Path::from(["b"]), move |track| {
        assert_eq!(track.path, Path::from(["b"]));
        assert_eq!(track.priority, -1);
        consumer.clone()
    });
    let mut group = catalog_track.append_group();
    group.write_frame("not json").unwrap();
    group.finish();
    assert!(matches!(
        now_or_never(reader.catalog()).unwrap(),
        Err(Error::Catalog(_))
    ));
    // An empty group is skipped.
    catalog_track.append_group().finish();
    let mut group = catalog_track.append_group();
    group.write_frame("{}").unwrap();
    assert_eq!(
        now_or_never(reader.catalog()).unwrap().unwrap(),
        Some(moq_media::Catalog::default())
    );
}
