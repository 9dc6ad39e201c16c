//! Property tests: for arbitrary values of every message type, `decode(encode(x)) == x`,
//! `encoded_len` is exact, and every strict prefix of the encoding is "need more". Arbitrary
//! group and control streams read the same however they are chunked, and arbitrary bytes
//! never make a decoder panic.

use std::num::NonZeroU64;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use moq_proto::*;
use proptest::collection::vec;
use proptest::prelude::*;

use crate::checks;

fn varint() -> impl Strategy<Value = u64> {
    prop_oneof![0..64u64, 0..16384u64, 0..(1u64 << 30), 0..=MAX_VARINT]
}

fn optional() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(prop_oneof![0..64u64, 0..MAX_VARINT])
}

fn path() -> impl Strategy<Value = Path> {
    vec(".{0,12}", 0..6).prop_map(Path::from)
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![0..5000u64, 0..=MAX_VARINT].prop_map(Duration::from_millis)
}

fn order() -> impl Strategy<Value = GroupOrder> {
    prop_oneof![Just(GroupOrder::Ascending), Just(GroupOrder::Descending)]
}

fn extensions() -> impl Strategy<Value = Extensions> {
    proptest::collection::btree_map(varint(), vec(any::<u8>(), 0..24), 0..5)
        .prop_map(|map| map.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect())
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![
        proptest::sample::select(Version::KNOWN.to_vec()),
        varint().prop_map(Version)
    ]
}

fn session_client() -> impl Strategy<Value = SessionClient> {
    (vec(version(), 0..5), extensions()).prop_map(|(versions, extensions)| SessionClient {
        versions,
        extensions,
    })
}

fn session_server() -> impl Strategy<Value = SessionServer> {
    (version(), extensions()).prop_map(|(version, extensions)| SessionServer {
        version,
        extensions,
    })
}

fn announce() -> impl Strategy<Value = Announce> {
    prop_oneof![
        path().prop_map(|suffix| Announce::Active { suffix }),
        path().prop_map(|suffix| Announce::Ended { suffix }),
        Just(Announce::Live),
    ]
}

fn subscribe() -> impl Strategy<Value = Subscribe> {
    (
        varint(),
        path(),
        any::<i8>(),
        order(),
        duration(),
        optional(),
        optional(),
    )
        .prop_map(
            |(id, path, priority, group_order, group_expires, group_min, group_max)| Subscribe {
                id,
                path,
                priority,
                group_order,
                group_expires,
                group_min,
                group_max,
            },
        )
}

fn subscribe_update() -> impl Strategy<Value = SubscribeUpdate> {
    (varint(), order(), duration(), optional(), optional()).prop_map(
        |(priority, group_order, group_expires, group_min, group_max)| SubscribeUpdate {
            priority,
            group_order,
            group_expires,
            group_min,
            group_max,
        },
    )
}

fn info() -> impl Strategy<Value = Info> {
    (any::<i8>(), order(), duration(), varint()).prop_map(
        |(track_priority, group_order, group_expires, group_latest)| Info {
            track_priority,
            group_order,
            group_expires,
            group_latest,
        },
    )
}

fn fetch() -> impl Strategy<Value = Fetch> {
    (path(), any::<i8>(), varint(), varint()).prop_map(|(path, priority, group, offset)| Fetch {
        path,
        priority,
        group,
        offset,
    })
}

fn group() -> impl Strategy<Value = Group> {
    (varint(), varint()).prop_map(|(subscribe, sequence)| Group {
        subscribe,
        sequence,
    })
}

fn group_drop() -> impl Strategy<Value = GroupDrop> {
    (varint(), varint(), any::<u32>()).prop_map(|(sequence, count, code)| GroupDrop {
        sequence,
        count,
        code: ErrorCode(code),
    })
}

/// The round-trip property for one value.
fn roundtrip<T: Decode + Encode + PartialEq + std::fmt::Debug>(
    value: T,
) -> Result<(), TestCaseError> {
    let bytes = value.to_bytes();
    prop_assert_eq!(bytes.len(), value.encoded_len());
    let mut with_tail = bytes.to_vec();
    with_tail.push(0xa5);
    let (decoded, used) =
        T::decode(&with_tail).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    prop_assert_eq!(used, bytes.len());
    prop_assert_eq!(&decoded, &value);
    for cut in 0..bytes.len() {
        prop_assert!(
            matches!(T::decode(&bytes[..cut]), Err(DecodeError::Short { .. })),
            "prefix {}",
            cut
        );
    }
    checks::message::<T>(&bytes);
    Ok(())
}

proptest! {
    #[test]
    fn varints(v in varint()) { roundtrip(v)?; }

    #[test]
    fn priorities(v in any::<i8>()) { roundtrip(v)?; }

    #[test]
    fn strings(v in ".{0,40}") { roundtrip(v)?; }

    #[test]
    fn paths(v in path()) { roundtrip(v)?; }

    #[test]
    fn byte_strings(v in vec(any::<u8>(), 0..100)) { roundtrip(Bytes::from(v))?; }

    #[test]
    fn durations(v in duration()) { roundtrip(v)?; }

    #[test]
    fn all_extensions(v in extensions()) { roundtrip(v)?; }

    #[test]
    fn session_clients(v in session_client()) { roundtrip(v)?; }

    #[test]
    fn session_servers(v in session_server()) { roundtrip(v)?; }

    #[test]
    fn session_updates(v in proptest::option::of(1..=MAX_VARINT)) {
        roundtrip(SessionUpdate { bitrate: v.and_then(NonZeroU64::new) })?;
    }

    #[test]
    fn announce_interests(prefix in path()) { roundtrip(AnnounceInterest { prefix })?; }

    #[test]
    fn announces(v in announce()) { roundtrip(v)?; }

    #[test]
    fn subscribes(v in subscribe()) { roundtrip(v)?; }

    #[test]
    fn subscribe_updates(v in subscribe_update()) { roundtrip(v)?; }

    #[test]
    fn infos(v in info()) { roundtrip(v)?; }

    #[test]
    fn info_requests(path in path()) { roundtrip(InfoRequest { path })?; }

    #[test]
    fn fetches(v in fetch()) { roundtrip(v)?; }

    #[test]
    fn groups(v in group()) { roundtrip(v)?; }

    #[test]
    fn group_drops(v in group_drop()) { roundtrip(v)?; }

    #[test]
    fn frames(size in varint()) { roundtrip(Frame { size })?; }

    #[test]
    fn stream_types(bi in 0..5u64, uni in 0..1u64) {
        roundtrip(StreamBi::from_wire(bi).unwrap())?;
        roundtrip(StreamUni::from_wire(uni).unwrap())?;
    }

    /// A group stream reads back the same events whatever the chunking.
    #[test]
    fn group_streams(
        header in group(),
        frames in vec(vec(any::<u8>(), 0..300), 0..6),
        seed in vec(any::<u8>(), 1..8),
    ) {
        let mut out = BytesMut::new();
        StreamUni::Group.encode(&mut out);
        header.encode(&mut out);
        let mut expected = vec![GroupEvent::Header(header)];
        for frame in &frames {
            Frame { size: frame.len() as u64 }.encode(&mut out);
            out.extend_from_slice(frame);
            expected.push(GroupEvent::FrameStart { size: frame.len() as u64 });
            if !frame.is_empty() {
                expected.push(GroupEvent::Payload(Bytes::copy_from_slice(frame)));
            }
            expected.push(GroupEvent::FrameEnd);
        }
        let read = checks::read_group(&checks::chunks(&out, &seed));
        prop_assert_eq!(read.events, expected);
        prop_assert_eq!(read.end, Ok(()));
        checks::group_stream(&out);
    }

    /// A subscribe stream with updates reads back the same whatever the chunking.
    #[test]
    fn subscribe_streams(first in subscribe(), updates in vec(subscribe_update(), 0..4), seed in vec(any::<u8>(), 1..8)) {
        let control = checks::Control::Subscribe(first, updates);
        let bytes = checks::encode_control(&control);
        prop_assert_eq!(checks::read_control(&checks::chunks(&bytes, &seed)), Ok(Some(control)));
        checks::control_stream(&bytes);
    }

    /// An announce stream, likewise.
    #[test]
    fn announce_streams(prefix in path(), announces in vec(announce(), 0..4), seed in vec(any::<u8>(), 1..8)) {
        let control = checks::Control::Announce(AnnounceInterest { prefix }, announces);
        let bytes = checks::encode_control(&control);
        prop_assert_eq!(checks::read_control(&checks::chunks(&bytes, &seed)), Ok(Some(control)));
    }

    /// Arbitrary bytes: no decoder panics, and what is accepted re-encodes (the fuzz checks).
    #[test]
    fn arbitrary_bytes(data in vec(any::<u8>(), 0..64)) {
        checks::all_messages(&data);
        checks::group_stream(&data);
        checks::control_stream(&data);
    }
}
