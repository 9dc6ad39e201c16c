//! [`Extensions`]: the id → bytes map at the end of the setup messages.

use bytes::{BufMut, Bytes};

use crate::coding::{Decode, Encode, Input, encode_varint, varint_len};
use crate::error::{DecodeError, Limit};
use crate::limits::MAX_EXTENSIONS;

/// Setup extensions (parameters): a map from a varint id to an opaque payload (WIRE.md §3.10).
///
/// `moq-transfork` 0.5.0 defines no ids, sends an empty map and ignores what it receives.
/// Kept in insertion order (decoding keeps wire order); equality ignores order, since peers
/// may send entries in any order. A repeated id is a decode error
/// ([`DecodeError::DuplicateParameter`]). Decoding caps the count at
/// [`MAX_EXTENSIONS`](crate::limits::MAX_EXTENSIONS) and each payload at
/// [`MAX_EXTENSION_SIZE`](crate::limits::MAX_EXTENSION_SIZE) bytes.
///
/// ```
/// use bytes::Bytes;
/// use moq_proto::Extensions;
///
/// let mut ext = Extensions::new();
/// ext.insert(0x2a, Bytes::from_static(&[1, 0xff]));
/// assert_eq!(ext.get(0x2a).map(|b| &b[..]), Some(&[1, 0xff][..]));
/// assert_eq!(ext.len(), 1);
/// ```
#[derive(Clone, Default, Eq)]
pub struct Extensions(Vec<(u64, Bytes)>);

/// Lists the entries; the payload of [`Extensions::JWT`] is shown only by its length, so
/// that a token never reaches a log through a debug print.
impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (id, payload) in &self.0 {
            if *id == Self::JWT {
                map.entry(id, &format_args!("<{} bytes, redacted>", payload.len()));
            } else {
                map.entry(id, payload);
            }
        }
        map.finish()
    }
}

impl Extensions {
    /// Our extension id for the session's root path, sent by a raw-QUIC client in
    /// [`SessionClient`](crate::SessionClient) (raw QUIC has no request URL to carry it):
    /// the URL path as UTF-8, parts separated by `/` (e.g. `room/alice`). Not defined by
    /// `moq-transfork` 0.5.0, which ignores it (WIRE.md §3.10).
    pub const ROOT: u64 = 0x6d72;

    /// Our extension id for the session's access token (a JWT, as in a WebTransport URL's
    /// `?jwt=` query), sent by a raw-QUIC client in [`SessionClient`](crate::SessionClient);
    /// the payload is the token's ASCII text.
    pub const JWT: u64 = 0x6d74;

    /// An empty map.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// The payload for `id`.
    pub fn get(&self, id: u64) -> Option<&Bytes> {
        self.0.iter().find(|(k, _)| *k == id).map(|(_, v)| v)
    }

    /// Sets the payload for `id`, returning the previous one.
    pub fn insert(&mut self, id: u64, payload: Bytes) -> Option<Bytes> {
        match self.0.iter_mut().find(|(k, _)| *k == id) {
            Some((_, v)) => Some(std::mem::replace(v, payload)),
            None => {
                self.0.push((id, payload));
                None
            }
        }
    }

    /// Removes and returns the payload for `id`.
    pub fn remove(&mut self, id: u64) -> Option<Bytes> {
        let index = self.0.iter().position(|(k, _)| *k == id)?;
        Some(self.0.remove(index).1)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries in insertion (or wire) order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Bytes)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }
}

impl PartialEq for Extensions {
    fn eq(&self, other: &Self) -> bool {
        // Ids are unique, so equal sizes plus inclusion is equality.
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl FromIterator<(u64, Bytes)> for Extensions {
    fn from_iter<I: IntoIterator<Item = (u64, Bytes)>>(iter: I) -> Self {
        let mut ext = Self::new();
        for (k, v) in iter {
            ext.insert(k, v);
        }
        ext
    }
}

/// Count, then `{id, payload}` pairs (WIRE.md §3.10).
impl Encode for Extensions {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        encode_varint(self.0.len() as u64, buf);
        for (id, payload) in &self.0 {
            encode_varint(*id, buf);
            payload.encode(buf);
        }
    }

    fn encoded_len(&self) -> usize {
        varint_len(self.0.len() as u64)
            + self
                .0
                .iter()
                .map(|(id, payload)| varint_len(*id) + payload.encoded_len())
                .sum::<usize>()
    }
}

/// Count, then `{id, payload}` pairs; a repeated id is an error (WIRE.md §3.10).
impl Decode for Extensions {
    fn decode_from(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let count = input.length(Limit::Extensions, MAX_EXTENSIONS)?;
        let mut entries: Vec<(u64, Bytes)> = Vec::with_capacity(count);
        for _ in 0..count {
            let id = input.varint()?;
            let payload: Bytes = input.read()?;
            if entries.iter().any(|(k, _)| *k == id) {
                return Err(DecodeError::DuplicateParameter { id });
            }
            entries.push((id, payload));
        }
        Ok(Self(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_token() {
        let mut ext = Extensions::new();
        ext.insert(Extensions::ROOT, Bytes::from_static(b"room"));
        ext.insert(
            Extensions::JWT,
            Bytes::from_static(b"eyJhbGciOi.secret.sig"),
        );
        let printed = format!("{ext:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("21 bytes, redacted"), "{printed}");
        assert!(printed.contains("room"), "{printed}");
    }
}
