//! [`Error`]: why a track, group, frame, announcement or route ended abnormally.

use moq_proto::ErrorCode;

/// Why something in the model ended abnormally, as consumers see it.
///
/// A clean end is never an error (it reads as `Ok(None)`); an `Error` is an abort, by the
/// local application or by a peer, or a broken rule such as a frame whose payload does not
/// match its declared size. [`Error::code`] is the one mapping to wire codes and
/// [`Error::from_code`] its inverse.
///
/// ```
/// use moq_model::Error;
/// use moq_proto::ErrorCode;
///
/// assert_eq!(Error::NotFound.code(), ErrorCode::NOT_FOUND);
/// assert_eq!(Error::App(3).code(), ErrorCode(67));
/// assert_eq!(Error::from_code(ErrorCode(67)), Error::App(3));
/// assert_eq!(Error::from_code(ErrorCode(7)), Error::Code(ErrorCode(7)));
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The operation was cancelled: the other side is gone without saying why.
    #[error("cancelled")]
    Cancel,
    /// The transport failed: a reset or stopped stream, a lost connection.
    #[error("transport error")]
    Transport,
    /// Bytes from a peer did not decode.
    #[error("decode error")]
    Decode,
    /// A count or a value exceeded a limit (e.g. a full router queue).
    #[error("bounds exceeded")]
    BoundsExceeded,
    /// Something that must be unique was repeated (a group sequence, a track name).
    #[error("duplicate")]
    Duplicate,
    /// The track, group or route is unknown.
    #[error("not found")]
    NotFound,
    /// A frame's payload did not match its declared size.
    #[error("wrong frame size")]
    WrongSize,
    /// A peer broke a rule of the protocol.
    #[error("protocol violation")]
    ProtocolViolation,
    /// The requester is not allowed to do this (e.g. a relay's access control refused a
    /// subscription outside what the session's token grants).
    #[error("unauthorized")]
    Unauthorized,
    /// An application-defined error `n` (wire code `64 + n`).
    #[error("application error {0}")]
    App(u32),
    /// A wire code with no variant of its own (e.g. from a newer peer).
    #[error("error code {0}")]
    Code(ErrorCode),
}

impl Error {
    /// The wire code for this error (WIRE.md §6). The one place errors map to codes.
    pub fn code(&self) -> ErrorCode {
        match *self {
            Self::Cancel => ErrorCode::CANCEL,
            Self::Transport => ErrorCode::TRANSPORT,
            Self::Decode => ErrorCode::DECODE,
            Self::BoundsExceeded => ErrorCode::BOUNDS_EXCEEDED,
            Self::Duplicate => ErrorCode::DUPLICATE,
            Self::NotFound => ErrorCode::NOT_FOUND,
            Self::WrongSize => ErrorCode::WRONG_SIZE,
            Self::ProtocolViolation => ErrorCode::PROTOCOL_VIOLATION,
            Self::Unauthorized => ErrorCode::UNAUTHORIZED,
            // App codes past u32::MAX - 64 do not exist on the wire; saturate.
            Self::App(n) => ErrorCode::app(n).unwrap_or(ErrorCode(u32::MAX)),
            Self::Code(code) => code,
        }
    }

    /// The error a wire code stands for: the inverse of [`code`](Self::code), so that
    /// `Error::from_code(e.code()) == e` for every variant it produces.
    pub fn from_code(code: ErrorCode) -> Self {
        match code {
            ErrorCode::CANCEL => Self::Cancel,
            ErrorCode::TRANSPORT => Self::Transport,
            ErrorCode::DECODE => Self::Decode,
            ErrorCode::BOUNDS_EXCEEDED => Self::BoundsExceeded,
            ErrorCode::DUPLICATE => Self::Duplicate,
            ErrorCode::NOT_FOUND => Self::NotFound,
            ErrorCode::WRONG_SIZE => Self::WrongSize,
            ErrorCode::PROTOCOL_VIOLATION => Self::ProtocolViolation,
            ErrorCode::UNAUTHORIZED => Self::Unauthorized,
            other => match other.app_number() {
                Some(n) => Self::App(n),
                None => Self::Code(other),
            },
        }
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        Self::from_code(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_round_trips() {
        let errors = [
            Error::Cancel,
            Error::Transport,
            Error::Decode,
            Error::BoundsExceeded,
            Error::Duplicate,
            Error::NotFound,
            Error::WrongSize,
            Error::ProtocolViolation,
            Error::Unauthorized,
            Error::App(0),
            Error::App(1000),
            Error::Code(ErrorCode(7)),
            Error::Code(ErrorCode::VERSION),
        ];
        for error in errors {
            assert_eq!(Error::from_code(error.code()), error, "{error:?}");
        }
        assert_eq!(Error::App(u32::MAX).code(), ErrorCode(u32::MAX));
        assert_eq!(Error::WrongSize.code(), ErrorCode(14));
    }
}
