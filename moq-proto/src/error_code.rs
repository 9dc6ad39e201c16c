//! Error codes carried in stream resets, STOP_SENDING, connection close and `GroupDrop`.

use std::fmt;

/// A MoQ Transfork error code (WIRE.md §6), as it is handed to the transport.
///
/// One newtype with named constants, so that an unknown code from a newer peer is still
/// representable. Codes `64 + n` are application codes (see [`ErrorCode::app`]).
///
/// On the wire, stream resets and STOP_SENDING always carry the WebTransport-mapped form
/// ([`ErrorCode::to_webtransport`]), on raw QUIC too; a raw-QUIC connection close carries the
/// plain value (WIRE.md §2.4).
///
/// ```
/// use moq_proto::ErrorCode;
///
/// assert_eq!(ErrorCode::NOT_FOUND.to_webtransport(), 0x52e4a40fa8e8);
/// assert_eq!(ErrorCode::from_webtransport(0x52e4a40fa8e8), Some(ErrorCode::NOT_FOUND));
/// assert_eq!(format!("{:?}", ErrorCode::app(100).unwrap()), "ErrorCode::App(100)");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u32);

/// First code of the WebTransport application error space (RFC 9297 / WebTransport over HTTP/3).
const WEBTRANSPORT_FIRST: u64 = 0x52e4_a40f_a8db;
/// Last code of the WebTransport application error space (maps `u32::MAX`).
const WEBTRANSPORT_LAST: u64 = 0x52e5_ac98_3162;

impl ErrorCode {
    /// 0: the operation was cancelled (e.g. the peer closed the session stream).
    pub const CANCEL: Self = Self(0);
    /// 1: a required extension is missing.
    pub const REQUIRED_EXTENSION: Self = Self(1);
    /// 4: a transport error: a reset or stopped stream, a lost connection.
    pub const TRANSPORT: Self = Self(4);
    /// 5: the peer sent bytes that do not decode.
    pub const DECODE: Self = Self(5);
    /// 9: no common protocol version.
    pub const VERSION: Self = Self(9);
    /// 10: a stream of a type that was not expected here (e.g. a second session stream).
    pub const UNEXPECTED_STREAM: Self = Self(10);
    /// 11: a value or a count exceeds a limit.
    pub const BOUNDS_EXCEEDED: Self = Self(11);
    /// 12: something that must be unique was repeated (e.g. an announce of an active path).
    pub const DUPLICATE: Self = Self(12);
    /// 13: the track, group or subscription is unknown.
    pub const NOT_FOUND: Self = Self(13);
    /// 14: a frame's payload does not match its declared size.
    pub const WRONG_SIZE: Self = Self(14);
    /// 15: the peer broke a rule of the protocol.
    pub const PROTOCOL_VIOLATION: Self = Self(15);
    /// 16: the peer is not allowed to do this: connect without a valid token, publish or
    /// subscribe outside what its token grants, or go on after the token expired. Not
    /// defined by `moq-transfork` 0.5.0 (which never raises it; to its peers it is just a
    /// code in the unassigned range 16-63); our relay's access control sends it.
    pub const UNAUTHORIZED: Self = Self(16);

    /// The first application code: `App(n)` is `APP_BASE + n`.
    pub const APP_BASE: u32 = 64;

    /// The application code `n` (`64 + n`), or `None` if that does not fit in a `u32`.
    pub const fn app(n: u32) -> Option<Self> {
        match n.checked_add(Self::APP_BASE) {
            Some(code) => Some(Self(code)),
            None => None,
        }
    }

    /// The application number `n` if this is an application code (`>= 64`).
    pub const fn app_number(self) -> Option<u32> {
        match self.0.checked_sub(Self::APP_BASE) {
            Some(n) => Some(n),
            None => None,
        }
    }

    /// The symbolic name of a code defined by the protocol, if it is one.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "CANCEL",
            1 => "REQUIRED_EXTENSION",
            4 => "TRANSPORT",
            5 => "DECODE",
            9 => "VERSION",
            10 => "UNEXPECTED_STREAM",
            11 => "BOUNDS_EXCEEDED",
            12 => "DUPLICATE",
            13 => "NOT_FOUND",
            14 => "WRONG_SIZE",
            15 => "PROTOCOL_VIOLATION",
            16 => "UNAUTHORIZED",
            _ => return None,
        })
    }

    /// The code in the WebTransport (HTTP/3) application error space (WIRE.md §2.4):
    /// `0x52e4a40fa8db + n + n / 0x1e`, which skips the HTTP/3 reserved code points.
    pub const fn to_webtransport(self) -> u64 {
        let n = self.0 as u64;
        WEBTRANSPORT_FIRST + n + n / 0x1e
    }

    /// The inverse of [`to_webtransport`](Self::to_webtransport).
    ///
    /// `None` for codes outside the WebTransport range or on a reserved (GREASE) code point.
    pub const fn from_webtransport(wire: u64) -> Option<Self> {
        if wire < WEBTRANSPORT_FIRST || wire > WEBTRANSPORT_LAST {
            return None;
        }
        let shifted = wire - WEBTRANSPORT_FIRST;
        if shifted % 0x1f == 0x1e {
            return None;
        }
        let n = shifted - shifted / 0x1f;
        if n > u32::MAX as u64 {
            return None;
        }
        Some(Self(n as u32))
    }
}

impl From<u32> for ErrorCode {
    fn from(code: u32) -> Self {
        Self(code)
    }
}

impl From<ErrorCode> for u32 {
    fn from(code: ErrorCode) -> Self {
        code.0
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name(), self.app_number()) {
            (Some(name), _) => write!(f, "ErrorCode::{name}"),
            (None, Some(n)) => write!(f, "ErrorCode::App({n})"),
            (None, None) => write!(f, "ErrorCode({})", self.0),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name(), self.app_number()) {
            (Some(name), _) => write!(
                f,
                "{} ({})",
                name.to_ascii_lowercase().replace('_', " "),
                self.0
            ),
            (None, Some(n)) => write!(f, "application error {n} ({})", self.0),
            (None, None) => write!(f, "unknown error ({})", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webtransport_table() {
        // WIRE.md §2.4 table.
        let table = [
            (0, 0x52e4a40fa8db),
            (1, 0x52e4a40fa8dc),
            (4, 0x52e4a40fa8df),
            (5, 0x52e4a40fa8e0),
            (9, 0x52e4a40fa8e4),
            (10, 0x52e4a40fa8e5),
            (11, 0x52e4a40fa8e6),
            (12, 0x52e4a40fa8e7),
            (13, 0x52e4a40fa8e8),
            (14, 0x52e4a40fa8e9),
            (15, 0x52e4a40fa8ea),
            (16, 0x52e4a40fa8eb),
            (64, 0x52e4a40fa91d),
            (164, 0x52e4a40fa984),
        ];
        for (n, wire) in table {
            assert_eq!(ErrorCode(n).to_webtransport(), wire, "code {n}");
            assert_eq!(ErrorCode::from_webtransport(wire), Some(ErrorCode(n)));
        }
        assert_eq!(ErrorCode(u32::MAX).to_webtransport(), WEBTRANSPORT_LAST);
    }

    #[test]
    fn webtransport_inverse_everywhere() {
        // Around every multiple of 0x1e and at both ends of the range.
        let mut samples: Vec<u32> = (0..2000).collect();
        samples.extend((u32::MAX - 2000)..=u32::MAX);
        for n in samples {
            let wire = ErrorCode(n).to_webtransport();
            assert_eq!(
                ErrorCode::from_webtransport(wire),
                Some(ErrorCode(n)),
                "code {n}"
            );
        }
        // Reserved code points (every 0x1f-th) and out-of-range values map to nothing.
        assert_eq!(
            ErrorCode::from_webtransport(WEBTRANSPORT_FIRST + 0x1e),
            None
        );
        assert_eq!(
            ErrorCode::from_webtransport(WEBTRANSPORT_FIRST + 0x1e + 0x1f),
            None
        );
        assert_eq!(ErrorCode::from_webtransport(WEBTRANSPORT_FIRST - 1), None);
        assert_eq!(ErrorCode::from_webtransport(WEBTRANSPORT_LAST + 1), None);
        assert_eq!(ErrorCode::from_webtransport(0), None);
    }

    #[test]
    fn symbolic_debug_and_display() {
        assert_eq!(
            format!("{:?}", ErrorCode::WRONG_SIZE),
            "ErrorCode::WRONG_SIZE"
        );
        assert_eq!(format!("{:?}", ErrorCode(7)), "ErrorCode(7)");
        assert_eq!(format!("{:?}", ErrorCode(64)), "ErrorCode::App(0)");
        assert_eq!(ErrorCode::NOT_FOUND.to_string(), "not found (13)");
        assert_eq!(ErrorCode(164).to_string(), "application error 100 (164)");
        assert_eq!(ErrorCode::app(u32::MAX), None);
        assert_eq!(ErrorCode::app(100), Some(ErrorCode(164)));
    }
}
