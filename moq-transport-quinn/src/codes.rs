//! The translation between protocol codes and the codes QUIC carries (WIRE.md §2.4), and
//! from quinn's connection errors to [`TransportError`].
//!
//! Everything that turns an [`ErrorCode`] into a wire value, or back, lives here.

use std::sync::{Arc, OnceLock};

use moq_proto::ErrorCode;
use moq_session::transport::TransportError;
use quinn::VarInt;

/// The code of a RESET_STREAM or STOP_SENDING we send: the WebTransport-mapped form, on
/// raw QUIC too (WIRE.md §2.4).
pub(crate) fn stream_code_to_wire(code: ErrorCode) -> VarInt {
    // The mapped range ends below 2^62, so this never fails.
    VarInt::from_u64(code.to_webtransport()).unwrap_or(VarInt::MAX)
}

/// The protocol code of a RESET_STREAM or STOP_SENDING we received.
///
/// A mapped code maps back; a plain `0` is the implicit STOP_SENDING of a dropped stream
/// (WIRE.md §2.4) and reads as [`ErrorCode::CANCEL`]; anything else is
/// [`ErrorCode::TRANSPORT`].
pub(crate) fn stream_code_from_wire(wire: VarInt) -> ErrorCode {
    let wire = wire.into_inner();
    match ErrorCode::from_webtransport(wire) {
        Some(code) => code,
        None if wire == 0 => ErrorCode::CANCEL,
        None => ErrorCode::TRANSPORT,
    }
}

/// The code of an application CONNECTION_CLOSE we send: plain on raw QUIC, mapped on
/// WebTransport (WIRE.md §2.4).
pub(crate) fn close_code_to_wire(code: ErrorCode, webtransport: bool) -> VarInt {
    if webtransport {
        stream_code_to_wire(code)
    } else {
        VarInt::from_u32(code.0)
    }
}

/// The protocol code of an application CONNECTION_CLOSE we received, on either transport.
///
/// Both forms are accepted (WIRE.md §2.4): the mapped range lies far above `u32::MAX`, so a
/// mapped code and a plain one can never be confused. A value that is neither is
/// [`ErrorCode::TRANSPORT`].
pub(crate) fn close_code_from_wire(wire: VarInt) -> ErrorCode {
    let wire = wire.into_inner();
    if let Some(code) = ErrorCode::from_webtransport(wire) {
        return code;
    }
    match u32::try_from(wire) {
        Ok(code) => ErrorCode(code),
        Err(_) => ErrorCode::TRANSPORT,
    }
}

/// The code and reason this side closed a connection with, shared by its handles.
///
/// quinn reports a local close as [`quinn::ConnectionError::LocallyClosed`] without the
/// code, so the adapter remembers it. Only the first close counts, as in QUIC.
#[derive(Clone, Debug, Default)]
pub(crate) struct LocalClose(Arc<OnceLock<(ErrorCode, String)>>);

impl LocalClose {
    /// Records a close; returns false if the connection was already closed locally.
    pub(crate) fn set(&self, code: ErrorCode, reason: &str) -> bool {
        self.0.set((code, reason.to_owned())).is_ok()
    }

    /// The close this side made, if any.
    pub(crate) fn get(&self) -> Option<&(ErrorCode, String)> {
        self.0.get()
    }
}

/// The [`TransportError`] for a connection that ended with `err`.
///
/// A close made by this side wins over whatever quinn reports.
///
/// `peer_session_close` is a WebTransport session close the peer announced without an
/// application CONNECTION_CLOSE of its own (a CLOSE_WEBTRANSPORT_SESSION capsule, whose code
/// is plain, or the end of the CONNECT stream): quinn then sees a local close.
pub(crate) fn connection_error(
    err: &quinn::ConnectionError,
    local: &LocalClose,
    peer_session_close: impl FnOnce() -> Option<(ErrorCode, String)>,
) -> TransportError {
    use quinn::ConnectionError as E;
    // Whatever quinn reports afterwards (the peer's answering close, say), a connection
    // this side closed first was closed locally.
    if let Some((code, reason)) = local.get() {
        return TransportError::ClosedLocally {
            code: *code,
            reason: reason.clone(),
        };
    }
    match err {
        E::ApplicationClosed(close) => TransportError::ClosedByPeer {
            code: close_code_from_wire(close.error_code),
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        },
        E::LocallyClosed => {
            if let Some((code, reason)) = peer_session_close() {
                TransportError::ClosedByPeer { code, reason }
            } else {
                // Every handle was dropped (quinn closes with 0 and no reason).
                TransportError::ClosedLocally {
                    code: ErrorCode::CANCEL,
                    reason: String::new(),
                }
            }
        }
        E::ConnectionClosed(close) => {
            TransportError::ConnectionLost(format!("closed by the peer's QUIC stack: {close}"))
        }
        E::TimedOut => TransportError::ConnectionLost("idle timeout".into()),
        E::Reset => TransportError::ConnectionLost("reset by the peer".into()),
        E::VersionMismatch => TransportError::ConnectionLost("no common QUIC version".into()),
        E::TransportError(e) => TransportError::ConnectionLost(format!("QUIC error: {e}")),
        E::CidsExhausted => TransportError::ConnectionLost("connection ids exhausted".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_codes_are_mapped_once() {
        assert_eq!(
            stream_code_to_wire(ErrorCode::NOT_FOUND).into_inner(),
            0x52e4_a40f_a8e8
        );
        assert_eq!(
            stream_code_to_wire(ErrorCode::CANCEL).into_inner(),
            0x52e4_a40f_a8db
        );
        // The mapping of web-transport-quinn (which the WebTransport streams use) agrees.
        for n in [0u32, 13, 29, 30, 64, 164, u32::MAX] {
            assert_eq!(
                web_transport_quinn::proto::error_to_http3(n),
                ErrorCode(n).to_webtransport()
            );
        }
    }

    #[test]
    fn stream_codes_back() {
        let wire = VarInt::from_u64(0x52e4_a40f_a8e8).unwrap();
        assert_eq!(stream_code_from_wire(wire), ErrorCode::NOT_FOUND);
        assert_eq!(
            stream_code_from_wire(VarInt::from_u32(0)),
            ErrorCode::CANCEL
        );
        assert_eq!(
            stream_code_from_wire(VarInt::from_u32(13)),
            ErrorCode::TRANSPORT
        );
        // A reserved (GREASE) code point inside the range does not map.
        let grease = VarInt::from_u64(0x52e4_a40f_a8db + 0x1e).unwrap();
        assert_eq!(stream_code_from_wire(grease), ErrorCode::TRANSPORT);
    }

    #[test]
    fn close_codes() {
        assert_eq!(
            close_code_to_wire(ErrorCode::NOT_FOUND, false).into_inner(),
            13
        );
        assert_eq!(
            close_code_to_wire(ErrorCode::NOT_FOUND, true).into_inner(),
            0x52e4_a40f_a8e8
        );
        assert_eq!(
            close_code_from_wire(VarInt::from_u32(13)),
            ErrorCode::NOT_FOUND
        );
        assert_eq!(
            close_code_from_wire(VarInt::from_u64(0x52e4_a40f_a8e8).unwrap()),
            ErrorCode::NOT_FOUND
        );
        assert_eq!(
            close_code_from_wire(VarInt::from_u64(1 << 40).unwrap()),
            ErrorCode::TRANSPORT
        );
    }

    #[test]
    fn local_close_keeps_the_first() {
        let local = LocalClose::default();
        assert!(local.set(ErrorCode::NOT_FOUND, "a"));
        assert!(!local.set(ErrorCode::CANCEL, "b"));
        let err = connection_error(&quinn::ConnectionError::LocallyClosed, &local, || None);
        assert_eq!(
            err,
            TransportError::ClosedLocally {
                code: ErrorCode::NOT_FOUND,
                reason: "a".into()
            }
        );
        let dropped = connection_error(
            &quinn::ConnectionError::LocallyClosed,
            &LocalClose::default(),
            || None,
        );
        assert_eq!(dropped.code(), ErrorCode::CANCEL);
        let capsule = connection_error(
            &quinn::ConnectionError::LocallyClosed,
            &LocalClose::default(),
            || Some((ErrorCode::DECODE, "bad".into())),
        );
        assert_eq!(
            capsule,
            TransportError::ClosedByPeer {
                code: ErrorCode::DECODE,
                reason: "bad".into()
            }
        );
    }
}
