//! The stream readers through the public API: zero-copy payloads, chunking, limits, ends.

use bytes::{Bytes, BytesMut};
use moq_proto::limits::{MAX_EXTENSION_SIZE, MAX_MESSAGE_SIZE};
use moq_proto::*;

fn group_stream(group: Group, frames: &[&[u8]]) -> Bytes {
    let mut out = BytesMut::new();
    StreamUni::Group.encode(&mut out);
    group.encode(&mut out);
    for frame in frames {
        Frame {
            size: frame.len() as u64,
        }
        .encode(&mut out);
        out.extend_from_slice(frame);
    }
    out.freeze()
}

fn drain(reader: &mut GroupReader) -> Vec<GroupEvent> {
    let mut events = Vec::new();
    while let Some(event) = reader.next().expect("valid stream") {
        events.push(event);
    }
    events
}

#[test]
fn payloads_point_into_the_pushed_chunks() {
    let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let stream = group_stream(
        Group {
            subscribe: 1,
            sequence: 2,
        },
        &[&payload, b"", &payload[..700]],
    );
    // 1200-byte chunks, as a QUIC stream would deliver them.
    let chunks: Vec<Bytes> = stream.chunks(1200).map(|c| stream.slice_ref(c)).collect();
    let mut reader = GroupReader::new();
    let mut received = Vec::new();
    let mut payload_events = 0;
    for chunk in &chunks {
        reader.push(chunk.clone());
        for event in drain(&mut reader) {
            if let GroupEvent::Payload(data) = event {
                let start = data.as_ptr() as usize;
                let inside = chunks.iter().any(|c| {
                    let base = c.as_ptr() as usize;
                    start >= base && start + data.len() <= base + c.len()
                });
                assert!(inside, "payload slice is a copy");
                received.extend_from_slice(&data);
                payload_events += 1;
            }
        }
    }
    reader.finish().unwrap();
    let mut expected = payload.clone();
    expected.extend_from_slice(&payload[..700]);
    assert_eq!(received, expected);
    // 3000 bytes over 1200-byte chunks: a frame spans at most 4 chunks, the second one 2.
    assert!(payload_events <= 6, "{payload_events} payload events");
}

#[test]
fn byte_by_byte_equals_one_chunk() {
    let stream = group_stream(
        Group {
            subscribe: 300,
            sequence: 70000,
        },
        &[b"hello", b"", b"\xde\xad\xbf"],
    );
    let mut whole = GroupReader::new();
    whole.push(stream.clone());
    let expected = drain(&mut whole);
    whole.finish().unwrap();

    let mut reader = GroupReader::new();
    let mut events = Vec::new();
    for i in 0..stream.len() {
        reader.push(stream.slice(i..i + 1));
        events.extend(drain(&mut reader));
    }
    reader.finish().unwrap();
    // Merge consecutive payload bytes for comparison.
    let merge = |events: Vec<GroupEvent>| {
        let mut out: Vec<GroupEvent> = Vec::new();
        for e in events {
            match (e, out.last_mut()) {
                (GroupEvent::Payload(more), Some(GroupEvent::Payload(last))) => {
                    *last = [&last[..], &more[..]].concat().into();
                }
                (e, _) => out.push(e),
            }
        }
        out
    };
    assert_eq!(merge(events), merge(expected));
}

#[test]
fn group_stream_ends() {
    // Empty stream: no header at all.
    let mut reader = GroupReader::new();
    assert_eq!(reader.next(), Ok(None));
    assert_eq!(reader.finish(), Err(ReadError::Truncated { buffered: 0 }));

    // Inside the group header.
    let mut reader = GroupReader::new();
    reader.push(Bytes::from_static(&[0x00, 0x41]));
    assert_eq!(reader.next(), Ok(None));
    let err = reader.finish().unwrap_err();
    assert_eq!(err, ReadError::Truncated { buffered: 1 });
    assert_eq!(err.code(), ErrorCode::DECODE);

    // Header only: a group with no frames is fine.
    let mut reader = GroupReader::new();
    reader.push(Bytes::from_static(&[0x00, 0x01, 0x02]));
    assert_eq!(
        drain(&mut reader),
        [GroupEvent::Header(Group {
            subscribe: 1,
            sequence: 2
        })]
    );
    assert_eq!(reader.finish(), Ok(()));

    // Inside a payload: wrong size, code 14.
    let mut reader = GroupReader::new();
    reader.push(Bytes::from_static(&[0x00, 0x01, 0x02, 0x03, b'a']));
    drain(&mut reader);
    let err = reader.finish().unwrap_err();
    assert_eq!(
        err,
        ReadError::WrongSize {
            declared: 3,
            received: 1
        }
    );
    assert_eq!(err.code(), ErrorCode::WRONG_SIZE);
    // Errors are sticky.
    assert_eq!(reader.next(), Err(err.clone()));
    assert_eq!(reader.finish(), Err(err));

    // Inside a frame header (a 2-byte varint cut after 1 byte).
    let mut reader = GroupReader::new();
    reader.push(Bytes::from_static(&[0x00, 0x01, 0x02, 0x45]));
    drain(&mut reader);
    assert_eq!(reader.finish(), Err(ReadError::Truncated { buffered: 1 }));
}

#[test]
fn unknown_uni_stream_type() {
    let mut reader = GroupReader::new();
    reader.push(Bytes::from_static(&[0x01, 0x00, 0x00]));
    let err = reader.next().unwrap_err();
    assert!(matches!(
        err,
        ReadError::Decode(DecodeError::InvalidValue { value: 1, .. })
    ));
    assert_eq!(err.code(), ErrorCode::DECODE);
}

#[test]
fn after_stream_type_starts_at_the_header() {
    let mut reader = GroupReader::after_stream_type(ReaderConfig::default());
    reader.push(Bytes::from_static(&[0x07, 0x08, 0x00]));
    assert_eq!(
        drain(&mut reader),
        [
            GroupEvent::Header(Group {
                subscribe: 7,
                sequence: 8
            }),
            GroupEvent::FrameStart { size: 0 },
            GroupEvent::FrameEnd
        ]
    );
    assert_eq!(reader.buffered(), 0);
}

#[test]
fn frame_size_limit() {
    let config = ReaderConfig::default().with_max_frame_size(1000);
    let mut reader = GroupReader::with_config(config);
    let mut bytes = vec![0x00, 0x00, 0x00];
    Frame { size: 1000 }.encode(&mut bytes);
    reader.push(bytes.into());
    // At the limit is fine.
    assert_eq!(
        drain(&mut reader).last(),
        Some(&GroupEvent::FrameStart { size: 1000 })
    );

    // A declared size over the limit fails as soon as the header is read, without the payload.
    let mut reader = GroupReader::with_config(config);
    reader.push(Bytes::from_static(&[0x00, 0x00, 0x00]));
    let mut header = Vec::new();
    Frame { size: 1001 }.encode(&mut header);
    reader.push(header.into());
    reader.next().unwrap();
    let err = reader.next().unwrap_err();
    assert!(matches!(
        err,
        ReadError::Decode(DecodeError::LimitExceeded {
            limit: Limit::FrameSize,
            value: 1001,
            max: 1000
        })
    ));
    // The default cap rejects a frame declaring 2^62 - 1 bytes.
    let mut reader = GroupReader::new();
    reader.push(Bytes::from_static(&[
        0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ]));
    reader.next().unwrap();
    assert!(reader.next().is_err());
}

#[test]
fn frame_size_limit_inside_a_chunk() {
    // The over-limit header sits in the middle of one chunk, after a whole frame: the error is
    // the same as for a header read on its own, and it sticks.
    let config = ReaderConfig::default().with_max_frame_size(1000);
    let mut reader = GroupReader::with_config(config);
    let mut bytes = vec![0x00, 0x00, 0x00];
    Frame { size: 2 }.encode(&mut bytes);
    bytes.extend_from_slice(b"ok");
    Frame { size: 1001 }.encode(&mut bytes);
    bytes.extend_from_slice(&[0; 16]);
    reader.push(bytes.into());
    let mut events = Vec::new();
    let err = loop {
        match reader.next() {
            Ok(Some(event)) => events.push(event),
            Ok(None) => panic!("the stream is malformed"),
            Err(err) => break err,
        }
    };
    assert_eq!(events.len(), 4, "{events:?}");
    let expected = ReadError::Decode(DecodeError::LimitExceeded {
        limit: Limit::FrameSize,
        value: 1001,
        max: 1000,
    });
    assert_eq!(err, expected);
    assert_eq!(reader.next(), Err(expected.clone()));
    assert_eq!(reader.finish(), Err(expected));
}

#[test]
#[should_panic(expected = "unread input")]
fn finish_with_unread_input_panics() {
    let mut reader = GroupReader::new();
    reader.push(Bytes::from_static(&[0x00, 0x00, 0x00]));
    let _ = reader.finish();
}

#[test]
fn message_reader_sequence_and_clean_end() {
    let announces = [
        Announce::Active {
            suffix: Path::from(["alice"]),
        },
        Announce::Ended {
            suffix: Path::from(["alice"]),
        },
        Announce::Live,
    ];
    let mut bytes = BytesMut::new();
    StreamBi::Announce.encode(&mut bytes);
    AnnounceInterest {
        prefix: Path::from(["room"]),
    }
    .encode(&mut bytes);
    for a in &announces {
        a.encode(&mut bytes);
    }
    for cut in 0..=bytes.len() {
        let mut reader = MessageReader::new();
        reader.push(&bytes[..cut]);
        let mut got_type = reader.next::<StreamBi>().unwrap();
        if got_type.is_none() {
            reader.push(&bytes[cut..]);
            got_type = reader.next::<StreamBi>().unwrap();
            assert_eq!(got_type, Some(StreamBi::Announce));
        } else {
            assert_eq!(got_type, Some(StreamBi::Announce));
            let interest = reader.next::<AnnounceInterest>().unwrap();
            reader.push(&bytes[cut..]);
            if interest.is_some() {
                let mut got = Vec::new();
                while let Some(a) = reader.next::<Announce>().unwrap() {
                    got.push(a);
                }
                assert_eq!(got, announces);
                assert_eq!(reader.finish(), Ok(()));
                continue;
            }
        }
        assert_eq!(
            reader.next::<AnnounceInterest>().unwrap().unwrap().prefix,
            Path::from(["room"])
        );
        let mut got = Vec::new();
        while let Some(a) = reader.next::<Announce>().unwrap() {
            got.push(a);
        }
        assert_eq!(got, announces);
        assert_eq!(reader.buffered(), 0);
        assert_eq!(reader.finish(), Ok(()));
    }
}

#[test]
fn message_reader_truncation() {
    let mut reader = MessageReader::new();
    reader.push(&[0x02, 0x00, 0x03, 0x07]);
    assert_eq!(reader.next::<StreamBi>(), Ok(Some(StreamBi::Subscribe)));
    assert_eq!(reader.next::<Subscribe>(), Ok(None));
    let err = reader.finish().unwrap_err();
    assert_eq!(err, ReadError::Truncated { buffered: 3 });
    assert_eq!(err.code(), ErrorCode::DECODE);
}

#[test]
fn message_reader_malformed_is_sticky() {
    let mut reader = MessageReader::new();
    reader.push(&[0x09]);
    let err = reader.next::<StreamBi>().unwrap_err();
    assert!(matches!(
        err,
        ReadError::Decode(DecodeError::InvalidValue { value: 9, .. })
    ));
    reader.push(&[0x00]);
    assert_eq!(reader.next::<StreamBi>(), Err(err.clone()));
    assert_eq!(reader.finish(), Err(err));
}

#[test]
fn message_size_limit_is_enforced_before_the_message_arrives() {
    // A SessionClient with 20 extensions of 4 KiB: ~80 KiB, over the 64 KiB default.
    let ext: Extensions = (0..20u64)
        .map(|id| (id, Bytes::from(vec![0u8; MAX_EXTENSION_SIZE])))
        .collect();
    let msg = SessionClient {
        versions: vec![Version::CURRENT],
        extensions: ext,
    };
    let bytes = msg.to_bytes();
    assert!(bytes.len() > MAX_MESSAGE_SIZE);
    // The bare decoder accepts it (each field is within its own limit).
    assert_eq!(SessionClient::decode(&bytes).unwrap().1, bytes.len());

    let mut reader = MessageReader::new();
    let mut pushed = 0;
    let err = loop {
        let end = (pushed + 1200).min(bytes.len());
        reader.push(&bytes[pushed..end]);
        pushed = end;
        match reader.next::<SessionClient>() {
            Ok(None) => assert!(pushed < bytes.len()),
            Ok(Some(_)) => panic!("over-size message accepted"),
            Err(err) => break err,
        }
    };
    assert!(
        pushed < bytes.len(),
        "reported only after the whole message"
    );
    assert!(pushed <= MAX_MESSAGE_SIZE + 1200);
    assert!(matches!(
        err,
        ReadError::Decode(DecodeError::LimitExceeded {
            limit: Limit::MessageSize,
            ..
        })
    ));

    // A smaller configured limit applies to complete messages too.
    let mut reader = MessageReader::with_config(ReaderConfig::default().with_max_message_size(8));
    let sub = Subscribe {
        id: 1,
        path: Path::from(["a", "b", "c"]),
        priority: 0,
        group_order: GroupOrder::Descending,
        group_expires: std::time::Duration::ZERO,
        group_min: None,
        group_max: None,
    };
    reader.push(&sub.to_bytes());
    assert!(reader.next::<Subscribe>().is_err());
}

#[test]
fn limits_are_checked_before_allocation() {
    // Path declaring 2^30 parts, versions declaring 2^62-1 entries, extensions likewise:
    // each is an immediate limit error, not a "need more" and not an allocation.
    assert!(matches!(
        Path::decode(&[0xbf, 0xff, 0xff, 0xff]),
        Err(DecodeError::LimitExceeded {
            limit: Limit::PathParts,
            ..
        })
    ));
    assert!(matches!(
        SessionClient::decode(&[0xff; 8]),
        Err(DecodeError::LimitExceeded {
            limit: Limit::Versions,
            ..
        })
    ));
    assert!(matches!(
        SessionServer::decode(&[0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::LimitExceeded {
            limit: Limit::Extensions,
            ..
        })
    ));
    assert!(matches!(
        SessionServer::decode(&[0x01, 0x01, 0x05, 0x80, 0x01, 0x00, 0x00]),
        Err(DecodeError::LimitExceeded {
            limit: Limit::ExtensionSize,
            value: 65536,
            ..
        })
    ));
    // A string part declaring 1 GiB inside a path.
    assert!(matches!(
        InfoRequest::decode(&[0x01, 0xbf, 0xff, 0xff, 0xff]),
        Err(DecodeError::LimitExceeded {
            limit: Limit::StringLength,
            ..
        })
    ));
}

#[test]
fn group_drop_code_bounds() {
    let mut bytes = vec![0x00, 0x00];
    (u64::from(u32::MAX)).encode(&mut bytes);
    assert_eq!(
        GroupDrop::decode(&bytes).unwrap().0.code,
        ErrorCode(u32::MAX)
    );
    let mut bytes = vec![0x00, 0x00];
    (u64::from(u32::MAX) + 1).encode(&mut bytes);
    assert!(
        matches!(GroupDrop::decode(&bytes), Err(DecodeError::BoundsExceeded { value, .. }) if value == 1 << 32)
    );
}

/// A message type that counts how often it is decoded, to see the reader's retry policy.
#[derive(Debug, PartialEq)]
struct Counted(String);

thread_local! {
    static DECODES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Decode for Counted {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        DECODES.with(|d| d.set(d.get() + 1));
        Ok(Self(input.read()?))
    }
}

#[test]
fn message_reader_does_not_rescan_while_waiting() {
    // A 4000-byte string fed one byte at a time: the reader retries only when the bytes the
    // decoder asked for have arrived (after the length prefix, then at the end), not per byte.
    let text = "m".repeat(4000);
    let bytes = text.to_bytes();
    let mut reader = MessageReader::new();
    DECODES.with(|d| d.set(0));
    let mut got = None;
    for (i, b) in bytes.iter().enumerate() {
        reader.push(&[*b]);
        if let Some(msg) = reader.next::<Counted>().unwrap() {
            assert_eq!(i, bytes.len() - 1);
            got = Some(msg);
        }
    }
    assert_eq!(got, Some(Counted(text)));
    let decodes = DECODES.with(|d| d.get());
    assert!(
        decodes <= 4,
        "{decodes} decode attempts for {} pushes",
        bytes.len()
    );
    assert_eq!(reader.buffered(), 0);
}
