//! Every entry of `tests/data/vectors.json` (WIRE.md §10): decoding gives the stated fields,
//! encoding gives the same bytes, malformed inputs give the stated error class. Each vector is
//! also split at every offset (with a sentinel byte after it): "need more" before the end, the
//! exact value at it, the sentinel never consumed. Stream vectors go through the stream
//! readers, fed in two chunks split at every offset.

use std::fmt::Debug;
use std::num::NonZeroU64;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use moq_proto::*;
use serde_json::Value;

use crate::checks;

const SENTINEL: u8 = 0xa5;

fn vectors() -> Vec<Value> {
    let text = include_str!("../data/vectors.json");
    serde_json::from_str::<Value>(text)
        .expect("valid JSON")
        .as_array()
        .expect("a list")
        .clone()
}

fn unhex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd hex {hex}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn num(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().expect("u64"),
        Value::String(s) => {
            u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex number")
        }
        other => panic!("not a number: {other}"),
    }
}

fn opt(v: &Value) -> Option<u64> {
    if v.is_null() { None } else { Some(num(v)) }
}

fn int8(v: &Value) -> i8 {
    i8::try_from(v.as_i64().expect("integer")).expect("i8")
}

fn path(v: &Value) -> Path {
    v.as_array()
        .expect("parts")
        .iter()
        .map(|p| p.as_str().expect("part").to_owned())
        .collect()
}

fn order(v: &Value) -> GroupOrder {
    match v.as_str().expect("order") {
        "asc" => GroupOrder::Ascending,
        "desc" => GroupOrder::Descending,
        other => panic!("order {other}"),
    }
}

fn millis(v: &Value) -> Duration {
    Duration::from_millis(num(v))
}

fn extensions(v: &Value) -> Extensions {
    v.as_object()
        .expect("extensions")
        .iter()
        .map(|(k, v)| {
            (
                num(&Value::String(k.clone())),
                Bytes::from(unhex(v.as_str().expect("hex"))),
            )
        })
        .collect()
}

fn versions(v: &Value) -> Vec<Version> {
    v.as_array()
        .expect("versions")
        .iter()
        .map(|v| Version(num(v)))
        .collect()
}

fn stream_bi(name: &str) -> StreamBi {
    match name {
        "session" => StreamBi::Session,
        "announce" => StreamBi::Announce,
        "subscribe" => StreamBi::Subscribe,
        "fetch" => StreamBi::Fetch,
        "info" => StreamBi::Info,
        other => panic!("stream type {other}"),
    }
}

/// Parses "1.5009s ..." into a Duration without going through floating point.
fn parse_seconds(input: &str) -> Duration {
    let number = input.split('s').next().expect("seconds");
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let nanos: u32 = format!("{frac:0<9}")[..9].parse().expect("fraction");
    Duration::new(whole.parse().expect("seconds"), nanos)
}

/// Decodes `bytes` as `T` and checks it against `expected`, then re-encodes, then splits.
fn check<T: Decode + Encode + PartialEq + Debug + Clone>(bytes: &[u8], expected: &T) {
    assert_eq!(
        T::decode(bytes),
        Ok((expected.clone(), bytes.len())),
        "decode {bytes:02x?}"
    );
    let encoded = expected.to_bytes();
    assert_eq!(&encoded[..], bytes, "encode {expected:?}");
    assert_eq!(expected.encoded_len(), bytes.len());
    split::<T>(bytes);
    checks::message::<T>(bytes);
}

/// neqo-style: with a sentinel appended, every strict prefix is "need more" and every longer
/// input gives the value with exactly the vector's length consumed.
fn split<T: Decode + Encode + PartialEq + Debug + Clone>(bytes: &[u8]) {
    let mut input = bytes.to_vec();
    input.push(SENTINEL);
    let (value, used) = T::decode(&input).expect("decodes with a sentinel");
    assert_eq!(used, bytes.len(), "sentinel consumed");
    for cut in 0..bytes.len() {
        match T::decode(&input[..cut]) {
            Err(DecodeError::Short { needed }) => {
                assert!(needed >= 1);
                assert!(
                    cut + needed <= bytes.len(),
                    "hint {needed} at {cut} overshoots {}",
                    bytes.len()
                );
            }
            other => panic!("prefix {cut} of {bytes:02x?}: {other:?}"),
        }
    }
    for end in bytes.len()..=input.len() {
        assert_eq!(T::decode(&input[..end]), Ok((value.clone(), bytes.len())));
    }
}

/// Reads a control stream from two chunks split at every offset; all reads must agree.
fn check_control_stream(bytes: &[u8], expected: &checks::Control) {
    assert_eq!(
        &checks::encode_control(expected)[..],
        bytes,
        "encode {expected:?}"
    );
    let whole = Bytes::copy_from_slice(bytes);
    for cut in 0..=bytes.len() {
        let chunks = [whole.slice(..cut), whole.slice(cut..)];
        let read = checks::read_control(&chunks).expect("reads");
        assert_eq!(read.as_ref(), Some(expected), "split at {cut}");
    }
    // And truncated anywhere, the stream is a truncation error, never a message.
    for cut in 1..bytes.len() {
        let read = checks::read_control(&[whole.slice(..cut)]);
        assert!(
            matches!(read, Err(ReadError::Truncated { .. })),
            "cut at {cut}: {read:?}"
        );
    }
}

fn check_group_stream(bytes: &[u8], group: Group, frames: &[Vec<u8>]) {
    // Encoding.
    let mut out = BytesMut::new();
    StreamUni::Group.encode(&mut out);
    group.encode(&mut out);
    let mut expected = vec![GroupEvent::Header(group)];
    // (start, end) of each payload; FIN is clean only after the header or a whole frame.
    let mut clean = vec![out.len()];
    let mut payloads = Vec::new();
    for frame in frames {
        Frame {
            size: frame.len() as u64,
        }
        .encode(&mut out);
        payloads.push((out.len(), out.len() + frame.len()));
        out.extend_from_slice(frame);
        clean.push(out.len());
        expected.push(GroupEvent::FrameStart {
            size: frame.len() as u64,
        });
        if !frame.is_empty() {
            expected.push(GroupEvent::Payload(Bytes::copy_from_slice(frame)));
        }
        expected.push(GroupEvent::FrameEnd);
    }
    assert_eq!(&out[..], bytes);

    // Reading, in two chunks split at every offset (payload slices merged for comparison).
    let whole = Bytes::copy_from_slice(bytes);
    for cut in 0..=bytes.len() {
        let read = checks::read_group(&[whole.slice(..cut), whole.slice(cut..)]);
        assert_eq!(read.events, expected, "split at {cut}");
        assert_eq!(read.end, Ok(()));
    }
    // FIN anywhere: clean at a frame boundary, WrongSize inside a payload, else Truncated.
    for cut in 0..bytes.len() {
        let read = checks::read_group(&[whole.slice(..cut)]);
        if clean.contains(&cut) {
            assert_eq!(read.end, Ok(()), "FIN at {cut}");
        } else if payloads
            .iter()
            .any(|&(start, end)| start <= cut && cut < end)
        {
            assert!(
                matches!(read.end, Err(ReadError::WrongSize { .. })),
                "FIN at {cut}: {read:?}"
            );
            assert_eq!(read.end.unwrap_err().code(), ErrorCode::WRONG_SIZE);
        } else {
            assert!(
                matches!(read.end, Err(ReadError::Truncated { .. })),
                "FIN at {cut}: {read:?}"
            );
            assert_eq!(read.end.unwrap_err().code(), ErrorCode::DECODE);
        }
    }
}

fn check_error(entry: &Value, bytes: &[u8]) {
    let class = entry["error"].as_str().expect("error class");
    let message = entry["message"].as_str().expect("message");
    let result: Result<usize, DecodeError> = match message {
        "Subscribe" => Subscribe::decode(bytes).map(|(_, n)| n),
        "Announce" => {
            // Deliberate deviation: 0.5.0 rejects status 2, we accept it as `Live` (no
            // suffix), as crates 0.7+ send it (WIRE.md §5.5, §11). The class is still covered
            // by status 3.
            assert_eq!(bytes[0], 2);
            assert_eq!(Announce::decode(bytes), Ok((Announce::Live, 1)));
            let mut other = bytes.to_vec();
            other[0] = 3;
            Announce::decode(&other).map(|(_, n)| n)
        }
        "group_order" => GroupOrder::decode(bytes).map(|(_, n)| n),
        "stream_type_bi" => StreamBi::decode(bytes).map(|(_, n)| n),
        "path" => Path::decode(bytes).map(|(_, n)| n),
        "SessionClient" => SessionClient::decode(bytes).map(|(_, n)| n),
        "GroupDrop" => GroupDrop::decode(bytes).map(|(_, n)| n),
        "varint" => u64::decode(bytes).map(|(_, n)| n),
        other => panic!("no decoder for error vector {other}"),
    };
    let err = result.expect_err("malformed input must not decode");
    let matched = match class {
        "need_more" => matches!(err, DecodeError::Short { needed } if needed >= 1),
        "invalid_value" => matches!(err, DecodeError::InvalidValue { .. }),
        "invalid_string" => matches!(err, DecodeError::InvalidString),
        "duplicate_parameter" => matches!(err, DecodeError::DuplicateParameter { .. }),
        "bounds_exceeded" => matches!(err, DecodeError::BoundsExceeded { .. }),
        other => panic!("unknown error class {other}"),
    };
    assert!(
        matched,
        "{message} {bytes:02x?}: expected {class}, got {err:?}"
    );
    assert_eq!(err.code(), ErrorCode::DECODE);
}

#[test]
fn every_vector() {
    let mut seen = 0;
    for entry in vectors() {
        let message = entry["message"].as_str().expect("message").to_owned();
        let bytes = unhex(entry["hex"].as_str().expect("hex"));
        if entry.get("error").is_some() {
            check_error(&entry, &bytes);
            seen += 1;
            continue;
        }
        let f = &entry["fields"];
        match message.as_str() {
            "varint" => check(&bytes, &num(&f["value"])),
            "i8" => check(&bytes, &int8(&f["value"])),
            "u8" => check(&bytes, &u8::try_from(num(&f["value"])).expect("u8")),
            "string" => check(&bytes, &f["value"].as_str().expect("string").to_owned()),
            "duration_ms" => {
                check(&bytes, &millis(&f["millis"]));
                if let Some(input) = f.get("input") {
                    let d = parse_seconds(input.as_str().expect("input"));
                    assert!(
                        !d.subsec_nanos().is_multiple_of(1_000_000),
                        "the input has sub-ms parts"
                    );
                    assert_eq!(&d.to_bytes()[..], &bytes[..], "{d:?} truncates to whole ms");
                }
            }
            "path" => check(&bytes, &path(&f["parts"])),
            "group_order" => check(&bytes, &order(&f["order"])),
            "stream_type_bi" => check(&bytes, &stream_bi(f["type"].as_str().expect("type"))),
            "stream_type_uni" => {
                assert_eq!(f["type"].as_str(), Some("group"));
                check(&bytes, &StreamUni::Group)
            }
            "SessionClient" => check(
                &bytes,
                &SessionClient {
                    versions: versions(&f["versions"]),
                    extensions: extensions(&f["extensions"]),
                },
            ),
            "SessionServer" => check(
                &bytes,
                &SessionServer {
                    version: Version(num(&f["version"])),
                    extensions: extensions(&f["extensions"]),
                },
            ),
            // A null bitrate is 0 on the wire (WIRE.md §3.9).
            "SessionUpdate" => check(
                &bytes,
                &SessionUpdate {
                    bitrate: opt(&f["bitrate"]).and_then(NonZeroU64::new),
                },
            ),
            "AnnounceInterest" => check(
                &bytes,
                &AnnounceInterest {
                    prefix: path(&f["prefix"]),
                },
            ),
            "Announce" => {
                let suffix = path(&f["suffix"]);
                let msg = match f["status"].as_str().expect("status") {
                    "active" => Announce::Active { suffix },
                    "ended" => Announce::Ended { suffix },
                    other => panic!("status {other}"),
                };
                check(&bytes, &msg)
            }
            "Subscribe" => check(
                &bytes,
                &Subscribe {
                    id: num(&f["id"]),
                    path: path(&f["path"]),
                    priority: int8(&f["priority"]),
                    group_order: order(&f["group_order"]),
                    group_expires: millis(&f["group_expires_ms"]),
                    group_min: opt(&f["group_min"]),
                    group_max: opt(&f["group_max"]),
                },
            ),
            "SubscribeUpdate" => {
                // The 0.5.0 encoder's output lacks group_expires: a 5-field decoder must say
                // "need more" for it (WIRE.md §5.7).
                let msg = SubscribeUpdate {
                    priority: num(&f["priority"]),
                    group_order: order(&f["group_order"]),
                    group_expires: millis(&f["group_expires_ms"]),
                    group_min: opt(&f["group_min"]),
                    group_max: opt(&f["group_max"]),
                };
                assert!(matches!(
                    SubscribeUpdate::decode(&bytes),
                    Err(DecodeError::Short { .. })
                ));
                // Our encoder writes all five fields: the 0.5.0 bytes with expires inserted.
                let mut five = bytes[..2].to_vec();
                msg.group_expires.encode(&mut five);
                five.extend_from_slice(&bytes[2..]);
                check(&five, &msg);
            }
            "Info" => check(
                &bytes,
                &Info {
                    track_priority: int8(&f["track_priority"]),
                    group_order: order(&f["group_order"]),
                    group_expires: millis(&f["group_expires_ms"]),
                    group_latest: num(&f["group_latest"]),
                },
            ),
            "InfoRequest" => check(
                &bytes,
                &InfoRequest {
                    path: path(&f["path"]),
                },
            ),
            "Fetch" => check(
                &bytes,
                &Fetch {
                    path: path(&f["path"]),
                    priority: int8(&f["priority"]),
                    group: num(&f["group"]),
                    offset: num(&f["offset"]),
                },
            ),
            "Group" => check(
                &bytes,
                &Group {
                    subscribe: num(&f["subscribe"]),
                    sequence: num(&f["sequence"]),
                },
            ),
            "GroupDrop" => check(
                &bytes,
                &GroupDrop {
                    sequence: num(&f["sequence"]),
                    count: num(&f["count"]),
                    code: ErrorCode(u32::try_from(num(&f["code"])).expect("u32")),
                },
            ),
            "Frame" => check(
                &bytes,
                &Frame {
                    size: num(&f["size"]),
                },
            ),
            "stream:session(client->server)" => {
                assert_eq!(num(&f["type"]), StreamBi::Session.to_wire());
                let msg = SessionClient {
                    versions: versions(&f["versions"]),
                    extensions: extensions(&f["extensions"]),
                };
                check_control_stream(&bytes, &checks::Control::Session(msg));
            }
            "stream:subscribe(sub->pub)" => {
                assert_eq!(num(&f["type"]), StreamBi::Subscribe.to_wire());
                let msg = Subscribe {
                    id: num(&f["id"]),
                    path: path(&f["path"]),
                    priority: int8(&f["priority"]),
                    group_order: order(&f["group_order"]),
                    group_expires: millis(&f["group_expires_ms"]),
                    group_min: opt(&f["group_min"]),
                    group_max: opt(&f["group_max"]),
                };
                check_control_stream(&bytes, &checks::Control::Subscribe(msg, Vec::new()));
            }
            "stream:announce(sub->pub)" => {
                assert_eq!(num(&f["type"]), StreamBi::Announce.to_wire());
                let msg = AnnounceInterest {
                    prefix: path(&f["prefix"]),
                };
                check_control_stream(&bytes, &checks::Control::Announce(msg, Vec::new()));
            }
            "stream:group(pub->sub)" => {
                assert_eq!(num(&f["type"]), StreamUni::Group.to_wire());
                let group = Group {
                    subscribe: num(&f["subscribe"]),
                    sequence: num(&f["sequence"]),
                };
                let frames: Vec<Vec<u8>> = f["frames_hex"]
                    .as_array()
                    .expect("frames")
                    .iter()
                    .map(|h| unhex(h.as_str().expect("hex")))
                    .collect();
                check_group_stream(&bytes, group, &frames);
            }
            other => panic!("vector for unknown message {other}"),
        }
        seen += 1;
    }
    assert_eq!(seen, vectors().len());
    assert!(seen >= 77, "only {seen} vectors");
}
