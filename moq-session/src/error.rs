//! [`Error`]: why a session, or one of its operations, failed.

use moq_proto::{ErrorCode, ReadError, Version};

use crate::transport::TransportError;

/// Why a session, or one operation on it, failed.
///
/// [`code`](Error::code) is the one mapping to the protocol codes of WIRE.md §6 that this
/// side sends (resets, stops, the connection close).
///
/// ```
/// use moq_proto::ErrorCode;
/// use moq_session::Error;
///
/// assert_eq!(Error::BoundsExceeded.code(), ErrorCode::BOUNDS_EXCEEDED);
/// assert_eq!(Error::Version(vec![]).code(), ErrorCode::VERSION);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed: a stream was reset or stopped by the peer, or the connection
    /// ended.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The peer sent bytes that do not decode, or a message over a limit.
    #[error("{0}")]
    Read(#[from] ReadError),
    /// The peer offered none of the versions this side speaks (WIRE.md §4.2); the versions
    /// it offered (or, on the client, the one the server picked).
    #[error("no common version (peer offered {0:?})")]
    Version(Vec<Version>),
    /// A stream of a kind that is not allowed here (a second session stream, or a first
    /// stream that is not the session stream).
    #[error("unexpected stream")]
    UnexpectedStream,
    /// A limit of [`SessionConfig`](crate::SessionConfig) was exceeded.
    #[error("bounds exceeded")]
    BoundsExceeded,
    /// The peer ended the session stream (WIRE.md §4.2: session closed with code 0).
    #[error("cancelled")]
    Cancelled,
    /// The session was closed with this code: locally by [`Session::close`](crate::Session::close)
    /// (or by dropping every handle), or by the peer.
    #[error("session closed: {0}")]
    Closed(ErrorCode),
    /// An error from the object model (e.g. a router rejected a request).
    #[error("{0}")]
    Model(#[from] moq_model::Error),
}

impl Error {
    /// The code this side sends for this error (WIRE.md §6): any transport failure is
    /// [`ErrorCode::TRANSPORT`], decode failures [`ErrorCode::DECODE`] (or
    /// [`ErrorCode::WRONG_SIZE`] for a short frame), and so on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Transport(_) => ErrorCode::TRANSPORT,
            Self::Read(err) => err.code(),
            Self::Version(_) => ErrorCode::VERSION,
            Self::UnexpectedStream => ErrorCode::UNEXPECTED_STREAM,
            Self::BoundsExceeded => ErrorCode::BOUNDS_EXCEEDED,
            Self::Cancelled => ErrorCode::CANCEL,
            Self::Closed(code) => *code,
            Self::Model(err) => err.code(),
        }
    }

    /// The error consumers of the object model see for this failure: a reset, stop or close
    /// carries the peer's code through ([`moq_model::Error::from_code`]), so an application
    /// error of the publisher reaches the subscriber's consumers as itself; a lost
    /// connection is [`moq_model::Error::Transport`].
    pub fn to_model(&self) -> moq_model::Error {
        match self {
            Self::Transport(err) => match err {
                TransportError::StreamReset(code)
                | TransportError::StreamStopped(code)
                | TransportError::ClosedByPeer { code, .. }
                | TransportError::ClosedLocally { code, .. } => moq_model::Error::from_code(*code),
                _ => moq_model::Error::Transport,
            },
            Self::Model(err) => *err,
            other => moq_model::Error::from_code(other.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(
            Error::Transport(TransportError::StreamReset(ErrorCode::NOT_FOUND)).code(),
            ErrorCode::TRANSPORT
        );
        assert_eq!(
            Error::Transport(TransportError::StreamReset(ErrorCode::NOT_FOUND)).to_model(),
            moq_model::Error::NotFound
        );
        assert_eq!(
            Error::Transport(TransportError::ConnectionLost("x".into())).to_model(),
            moq_model::Error::Transport
        );
        assert_eq!(Error::UnexpectedStream.code(), ErrorCode::UNEXPECTED_STREAM);
        assert_eq!(Error::Cancelled.code(), ErrorCode::CANCEL);
        assert_eq!(
            Error::Model(moq_model::Error::App(3)).code(),
            ErrorCode::app(3).unwrap()
        );
        assert_eq!(
            Error::Read(ReadError::WrongSize {
                declared: 5,
                received: 1
            })
            .to_model(),
            moq_model::Error::WrongSize
        );
    }
}
