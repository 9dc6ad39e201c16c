//! The properties every fuzz input must satisfy. Shared by the cargo-fuzz targets and by
//! moq-proto's integration tests (`moq-proto/tests/integration/main.rs` includes it with
//! `#[path]`): the corpus replay in `fuzz_corpus.rs`, the round trips and the vectors.
//!
//! For a single message: whatever the decoder accepts re-encodes, minimally, to bytes that
//! decode to the same value; the re-encoding is no longer than what was consumed (only
//! non-minimal varints can make the input longer); every strict prefix of the accepted bytes
//! is "need more"; and nothing panics.
//!
//! For streams: feeding the same bytes in one chunk or in several gives the same events, and
//! what was read re-encodes to a stream that reads back the same.

#![allow(dead_code, unreachable_pub)]

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use moq_proto::*;

/// Checks one message type against `data`.
pub fn message<T: Decode + Encode + PartialEq + Debug>(data: &[u8]) {
    match T::decode(data) {
        Ok((value, used)) => {
            assert!(
                used >= 1 && used <= data.len(),
                "used {used} of {}",
                data.len()
            );
            let bytes = value.to_bytes();
            assert_eq!(bytes.len(), value.encoded_len(), "encoded_len of {value:?}");
            assert!(
                bytes.len() <= used,
                "re-encoding of {value:?} is longer than the input"
            );
            let (again, used_again) = T::decode(&bytes).expect("re-encoded bytes decode");
            assert_eq!(again, value);
            assert_eq!(used_again, bytes.len());
            // The accepted bytes are self-delimiting: any strict prefix needs more.
            for cut in [0, used / 2, used - 1] {
                match T::decode(&data[..cut]) {
                    Err(DecodeError::Short { needed }) => assert!(needed >= 1),
                    other => panic!("prefix {cut} of {used} accepted bytes gave {other:?}"),
                }
            }
        }
        Err(DecodeError::Short { needed }) => assert!(needed >= 1),
        Err(err) => assert_eq!(err.code(), ErrorCode::DECODE),
    }
}

/// Runs every top-level message decoder on `data`.
pub fn all_messages(data: &[u8]) {
    message::<SessionClient>(data);
    message::<SessionServer>(data);
    message::<SessionUpdate>(data);
    message::<AnnounceInterest>(data);
    message::<Announce>(data);
    message::<Subscribe>(data);
    message::<SubscribeUpdate>(data);
    message::<Info>(data);
    message::<InfoRequest>(data);
    message::<Fetch>(data);
    message::<Group>(data);
    message::<GroupDrop>(data);
    message::<Frame>(data);
    message::<StreamBi>(data);
    message::<StreamUni>(data);
}

/// Splits `data` into chunks whose sizes come from `seed` (cycled), for chunked feeding.
pub fn chunks(data: &[u8], seed: &[u8]) -> Vec<Bytes> {
    let whole = Bytes::copy_from_slice(data);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < whole.len() {
        let size = match seed.get(i % seed.len().max(1)) {
            Some(&s) => usize::from(s % 17) + 1,
            None => whole.len(),
        };
        let end = (pos + size).min(whole.len());
        out.push(whole.slice(pos..end));
        pos = end;
        i += 1;
    }
    out
}

/// The events of a group stream with consecutive payload slices merged, and how it ended.
#[derive(Debug, PartialEq)]
pub struct GroupRead {
    pub events: Vec<GroupEvent>,
    pub end: Result<(), ReadError>,
}

/// Reads a group stream pushed as `chunks`, reading after every push, then finishing.
pub fn read_group(chunks: &[Bytes]) -> GroupRead {
    let mut reader = GroupReader::with_config(ReaderConfig::default().with_max_frame_size(1 << 16));
    let mut events: Vec<GroupEvent> = Vec::new();
    let push = |event: GroupEvent, events: &mut Vec<GroupEvent>| {
        if let (GroupEvent::Payload(more), Some(GroupEvent::Payload(last))) =
            (&event, events.last_mut())
        {
            let mut merged = BytesMut::from(&last[..]);
            merged.extend_from_slice(more);
            *last = merged.freeze();
        } else {
            events.push(event);
        }
    };
    for chunk in chunks {
        reader.push(chunk.clone());
        loop {
            match reader.next() {
                Ok(Some(event)) => {
                    if let GroupEvent::Payload(data) = &event {
                        assert!(!data.is_empty(), "empty payload event");
                        // Zero copy: the slice points into the chunk just pushed or an earlier one.
                        let p = data.as_ptr() as usize;
                        assert!(chunks.iter().any(|c| {
                            let s = c.as_ptr() as usize;
                            p >= s && p + data.len() <= s + c.len()
                        }));
                    }
                    push(event, &mut events)
                }
                Ok(None) => break,
                Err(err) => {
                    return GroupRead {
                        events,
                        end: Err(err),
                    };
                }
            }
        }
    }
    let end = reader.finish();
    GroupRead { events, end }
}

/// Checks the group stream reader on `data`: same result for one chunk and for small chunks,
/// and a clean read re-encodes to a stream that reads the same.
pub fn group_stream(data: &[u8]) {
    let whole = read_group(&chunks(data, &[]));
    let seed = data.get(..4).unwrap_or(data);
    let split = read_group(&chunks(data, seed));
    assert_eq!(whole, split);
    let bytewise = read_group(&chunks(data, &[0]));
    assert_eq!(whole, bytewise);

    if whole.end.is_ok() {
        let mut out = BytesMut::new();
        StreamUni::Group.encode(&mut out);
        for event in &whole.events {
            match event {
                GroupEvent::Header(group) => group.encode(&mut out),
                GroupEvent::FrameStart { size } => Frame { size: *size }.encode(&mut out),
                GroupEvent::Payload(data) => out.extend_from_slice(data),
                GroupEvent::FrameEnd => {}
            }
        }
        assert!(out.len() <= data.len());
        assert_eq!(read_group(&[out.freeze()]), whole);
    }
}

/// What a control stream held: its type and each message, in order, and how it ended.
#[derive(Debug, PartialEq)]
pub enum Control {
    Session(SessionClient),
    Announce(AnnounceInterest, Vec<Announce>),
    Subscribe(Subscribe, Vec<SubscribeUpdate>),
    Fetch(Fetch),
    Info(InfoRequest),
}

/// Reads a control stream as its opener writes it, pushed as `chunks`.
pub fn read_control(chunks: &[Bytes]) -> Result<Option<Control>, ReadError> {
    let mut reader = MessageReader::new();
    let mut chunks = chunks.iter();
    // Pulls one `T`, pushing chunks as needed; `None` at the end of input.
    fn pull<T: Decode + 'static>(
        reader: &mut MessageReader,
        chunks: &mut std::slice::Iter<'_, Bytes>,
    ) -> Result<Option<T>, ReadError> {
        loop {
            if let Some(value) = reader.next::<T>()? {
                return Ok(Some(value));
            }
            match chunks.next() {
                Some(chunk) => reader.push(chunk),
                None => return Ok(None),
            }
        }
    }
    fn rest<T: Decode + 'static>(
        reader: &mut MessageReader,
        chunks: &mut std::slice::Iter<'_, Bytes>,
    ) -> Result<Vec<T>, ReadError> {
        let mut out = Vec::new();
        while let Some(value) = pull::<T>(reader, chunks)? {
            out.push(value);
        }
        reader.finish()?;
        Ok(out)
    }
    let Some(kind) = pull::<StreamBi>(&mut reader, &mut chunks)? else {
        return reader.finish().map(|()| None);
    };
    // A required message missing at the end is a truncation even at a message boundary.
    fn required<T>(v: Option<T>, reader: &MessageReader) -> Result<T, ReadError> {
        v.ok_or_else(|| {
            reader
                .finish()
                .err()
                .unwrap_or(ReadError::Truncated { buffered: 0 })
        })
    }
    let control = match kind {
        StreamBi::Session => {
            let msg = pull(&mut reader, &mut chunks)?;
            Control::Session(required(msg, &reader)?)
        }
        StreamBi::Announce => {
            let msg = pull(&mut reader, &mut chunks)?;
            let first = required(msg, &reader)?;
            Control::Announce(first, rest(&mut reader, &mut chunks)?)
        }
        StreamBi::Subscribe => {
            let msg = pull(&mut reader, &mut chunks)?;
            let first = required(msg, &reader)?;
            Control::Subscribe(first, rest(&mut reader, &mut chunks)?)
        }
        StreamBi::Fetch => {
            let msg = pull(&mut reader, &mut chunks)?;
            Control::Fetch(required(msg, &reader)?)
        }
        StreamBi::Info => {
            let msg = pull(&mut reader, &mut chunks)?;
            Control::Info(required(msg, &reader)?)
        }
    };
    Ok(Some(control))
}

/// Encodes what [`read_control`] returned, as the opener would write it.
pub fn encode_control(control: &Control) -> Bytes {
    let mut out = BytesMut::new();
    match control {
        Control::Session(m) => {
            StreamBi::Session.encode(&mut out);
            m.encode(&mut out);
        }
        Control::Announce(first, rest) => {
            StreamBi::Announce.encode(&mut out);
            first.encode(&mut out);
            rest.iter().for_each(|m| m.encode(&mut out));
        }
        Control::Subscribe(first, rest) => {
            StreamBi::Subscribe.encode(&mut out);
            first.encode(&mut out);
            rest.iter().for_each(|m| m.encode(&mut out));
        }
        Control::Fetch(m) => {
            StreamBi::Fetch.encode(&mut out);
            m.encode(&mut out);
        }
        Control::Info(m) => {
            StreamBi::Info.encode(&mut out);
            m.encode(&mut out);
        }
    }
    out.freeze()
}

/// Checks the control stream reader on `data`, like [`group_stream`].
pub fn control_stream(data: &[u8]) {
    let whole = read_control(&chunks(data, &[]));
    let seed = data.get(..4).unwrap_or(data);
    assert_eq!(whole, read_control(&chunks(data, seed)));
    assert_eq!(whole, read_control(&chunks(data, &[0])));
    if let Ok(Some(control)) = &whole {
        let bytes = encode_control(control);
        assert!(bytes.len() <= data.len());
        assert_eq!(read_control(&[bytes]), whole);
    }
}
