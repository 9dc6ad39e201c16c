//! `moq decode`: bytes of the wire to readable messages, with `moq-proto` only.

use moq_proto::{
    Announce, AnnounceInterest, Decode, Fetch, Frame, Group, GroupDrop, Info, InfoRequest,
    SessionClient, SessionServer, SessionUpdate, StreamBi, StreamUni, Subscribe, SubscribeUpdate,
};

/// What the bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum As {
    /// Try every interpretation below, in this order, and use the first that decodes all
    /// bytes.
    Auto,
    /// The opener's side of a control stream: the stream type, then its messages
    /// (SessionClient; AnnounceInterest; Subscribe then SubscribeUpdates; Fetch;
    /// InfoRequest).
    Bidi,
    /// A group stream (unidirectional): type, Group header, then frames.
    Group,
    /// The server's side of the session stream: SessionServer, then SessionUpdates.
    SessionReply,
    /// The publisher's side of an announce stream: Announces.
    AnnounceReply,
    /// The publisher's side of a subscribe stream: Info, then GroupDrops.
    SubscribeReply,
    /// The publisher's side of an info stream: Info.
    InfoReply,
    /// The publisher's side of a fetch stream: frames.
    FetchReply,
    /// One message, named with --message.
    Message,
}

/// Message names accepted by `--message`.
pub(crate) const MESSAGES: &[&str] = &[
    "SessionClient",
    "SessionServer",
    "SessionUpdate",
    "AnnounceInterest",
    "Announce",
    "Subscribe",
    "SubscribeUpdate",
    "Info",
    "InfoRequest",
    "Fetch",
    "Group",
    "GroupDrop",
    "Frame",
    "StreamBi",
    "StreamUni",
];

/// Parses hex text: whitespace, `|`, `:`, `,` and `0x` prefixes are ignored.
pub(crate) fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = text
        .split_whitespace()
        .map(|word| word.trim_start_matches("0x"))
        .collect::<String>()
        .chars()
        .filter(|c| !matches!(c, '|' | ':' | ','))
        .collect();
    if !cleaned.len().is_multiple_of(2) {
        return Err(format!(
            "odd number of hex digits ({}): every byte is two digits",
            cleaned.len()
        ));
    }
    (0..cleaned.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&cleaned[i..i + 2], 16)
                .map_err(|_| format!("not hex: {:?}", &cleaned[i..i + 2]))
        })
        .collect()
}

/// The decoded lines, or why the bytes do not decode as asked.
pub(crate) fn decode(bytes: &[u8], as_: As, message: Option<&str>) -> Result<Vec<String>, String> {
    match as_ {
        As::Auto => {
            let tries = [
                As::Bidi,
                As::Group,
                As::SessionReply,
                As::SubscribeReply,
                As::AnnounceReply,
                As::InfoReply,
            ];
            let mut first_error = None;
            for kind in tries {
                match decode(bytes, kind, None) {
                    Ok(mut lines) => {
                        lines.insert(0, format!("# as {}", name(kind)));
                        return Ok(lines);
                    }
                    Err(err) => {
                        first_error.get_or_insert(err);
                    }
                }
            }
            for message in MESSAGES {
                if let Ok(mut lines) = decode(bytes, As::Message, Some(message)) {
                    lines.insert(0, format!("# as message {message}"));
                    return Ok(lines);
                }
            }
            Err(format!(
                "no interpretation decodes all {} bytes (as a control stream: {}); say what it \
                 is with --as",
                bytes.len(),
                first_error.unwrap_or_default()
            ))
        }
        As::Message => {
            let name = message.ok_or("--as message needs --message NAME")?;
            let mut d = Decoder::new(bytes);
            d.one_by_name(name)?;
            d.end()
        }
        As::Bidi => {
            let mut d = Decoder::new(bytes);
            match d.one::<StreamBi>()? {
                StreamBi::Session => {
                    d.one::<SessionClient>()?;
                    d.rest::<SessionUpdate>()?;
                }
                StreamBi::Announce => {
                    d.one::<AnnounceInterest>()?;
                }
                StreamBi::Subscribe => {
                    d.one::<Subscribe>()?;
                    d.rest::<SubscribeUpdate>()?;
                }
                StreamBi::Fetch => {
                    d.one::<Fetch>()?;
                }
                StreamBi::Info => {
                    d.one::<InfoRequest>()?;
                }
            }
            d.end()
        }
        As::Group => {
            let mut d = Decoder::new(bytes);
            let StreamUni::Group = d.one::<StreamUni>()?;
            d.one::<Group>()?;
            d.frames()?;
            d.end()
        }
        As::SessionReply => {
            let mut d = Decoder::new(bytes);
            d.one::<SessionServer>()?;
            d.rest::<SessionUpdate>()?;
            d.end()
        }
        As::AnnounceReply => {
            let mut d = Decoder::new(bytes);
            d.one::<Announce>()?;
            d.rest::<Announce>()?;
            d.end()
        }
        As::SubscribeReply => {
            let mut d = Decoder::new(bytes);
            d.one::<Info>()?;
            d.rest::<GroupDrop>()?;
            d.end()
        }
        As::InfoReply => {
            let mut d = Decoder::new(bytes);
            d.one::<Info>()?;
            d.end()
        }
        As::FetchReply => {
            let mut d = Decoder::new(bytes);
            d.frames()?;
            d.end()
        }
    }
}

fn name(kind: As) -> &'static str {
    match kind {
        As::Auto => "auto",
        As::Bidi => "control stream (opener's side)",
        As::Group => "group stream",
        As::SessionReply => "session stream (server's side)",
        As::AnnounceReply => "announce stream (publisher's side)",
        As::SubscribeReply => "subscribe stream (publisher's side)",
        As::InfoReply => "info stream (publisher's side)",
        As::FetchReply => "fetch stream (publisher's side)",
        As::Message => "message",
    }
}

/// Decodes messages one after the other, noting each with its offset and bytes.
struct Decoder<'a> {
    bytes: &'a [u8],
    offset: usize,
    lines: Vec<String>,
}

impl<'a> Decoder<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            offset: 0,
            lines: Vec::new(),
        }
    }

    fn remaining(&self) -> &'a [u8] {
        &self.bytes[self.offset..]
    }

    fn one<T: Decode + std::fmt::Debug>(&mut self) -> Result<T, String> {
        let at = self.offset;
        let (value, used) = T::decode(self.remaining()).map_err(|e| {
            format!(
                "at byte {at}: {} does not decode: {e}",
                std::any::type_name::<T>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("message")
            )
        })?;
        self.lines.push(format!(
            "{at:>6}  {:<24} {value:?}",
            hex(&self.bytes[at..at + used])
        ));
        self.offset += used;
        Ok(value)
    }

    fn rest<T: Decode + std::fmt::Debug>(&mut self) -> Result<(), String> {
        while !self.remaining().is_empty() {
            self.one::<T>()?;
        }
        Ok(())
    }

    fn frames(&mut self) -> Result<(), String> {
        while !self.remaining().is_empty() {
            let frame = self.one::<Frame>()?;
            let size = usize::try_from(frame.size).unwrap_or(usize::MAX);
            let at = self.offset;
            if self.remaining().len() < size {
                return Err(format!(
                    "at byte {at}: the frame declares {size} bytes, {} remain",
                    self.remaining().len()
                ));
            }
            let payload = &self.bytes[at..at + size];
            self.lines.push(format!(
                "{at:>6}  payload ({size} bytes): \"{}\"",
                payload.escape_ascii()
            ));
            self.offset += size;
        }
        Ok(())
    }

    fn one_by_name(&mut self, name: &str) -> Result<(), String> {
        match name {
            "SessionClient" => self.one::<SessionClient>().map(drop),
            "SessionServer" => self.one::<SessionServer>().map(drop),
            "SessionUpdate" => self.one::<SessionUpdate>().map(drop),
            "AnnounceInterest" => self.one::<AnnounceInterest>().map(drop),
            "Announce" => self.one::<Announce>().map(drop),
            "Subscribe" => self.one::<Subscribe>().map(drop),
            "SubscribeUpdate" => self.one::<SubscribeUpdate>().map(drop),
            "Info" => self.one::<Info>().map(drop),
            "InfoRequest" => self.one::<InfoRequest>().map(drop),
            "Fetch" => self.one::<Fetch>().map(drop),
            "Group" => self.one::<Group>().map(drop),
            "GroupDrop" => self.one::<GroupDrop>().map(drop),
            "Frame" => self.one::<Frame>().map(drop),
            "StreamBi" => self.one::<StreamBi>().map(drop),
            "StreamUni" => self.one::<StreamUni>().map(drop),
            other => Err(format!(
                "unknown message {other:?}; one of: {}",
                MESSAGES.join(", ")
            )),
        }
    }

    fn end(self) -> Result<Vec<String>, String> {
        if self.offset < self.bytes.len() {
            return Err(format!(
                "{} bytes left over after byte {}",
                self.bytes.len() - self.offset,
                self.offset
            ));
        }
        if self.lines.is_empty() {
            return Err("no bytes to decode".into());
        }
        Ok(self.lines)
    }
}

fn hex(bytes: &[u8]) -> String {
    let shown = bytes.len().min(12);
    let mut out: String = bytes[..shown].iter().map(|b| format!("{b:02x}")).collect();
    if bytes.len() > shown {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_input() {
        assert_eq!(parse_hex("00 01 | c0").unwrap(), vec![0, 1, 0xc0]);
        assert_eq!(parse_hex("0x0a0b").unwrap(), vec![10, 11]);
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
    }

    #[test]
    fn session_client_stream() {
        let bytes = parse_hex("00 01 c0000000ff0bad02 00").unwrap();
        let lines = decode(&bytes, As::Auto, None).unwrap();
        assert!(lines[0].contains("control stream"), "{lines:?}");
        assert!(
            lines.iter().any(|l| l.contains("SessionClient")),
            "{lines:?}"
        );
    }

    #[test]
    fn group_stream() {
        let bytes = parse_hex("00 07 05 05 68656c6c6f 00 01 78").unwrap();
        let lines = decode(&bytes, As::Group, None).unwrap();
        assert!(lines.iter().any(|l| l.contains("hello")), "{lines:?}");
        assert_eq!(lines.len(), 2 + 3 * 2, "{lines:?}");
    }

    #[test]
    fn truncated_is_an_error() {
        let bytes = parse_hex("02 07 02 0464656d6f").unwrap();
        assert!(decode(&bytes, As::Bidi, None).is_err());
    }
}
