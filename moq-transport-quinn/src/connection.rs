//! One connection type for both transports, so an application handles `moqf://` and
//! `https://` URLs with one code path.

use bytes::Bytes;
use moq_proto::ErrorCode;
use moq_session::transport;
use moq_session::transport::TransportError;
use url::Url;

use crate::{quic, webtransport};

/// Which transport a connection runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Raw QUIC, ALPN `moqf-02`, URL scheme `moqf://` (WIRE.md §2.1).
    Quic,
    /// WebTransport over HTTP/3, ALPN `h3`, URL scheme `https://` (WIRE.md §2.2).
    WebTransport,
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Quic => "raw QUIC (moqf-02)",
            Self::WebTransport => "WebTransport (h3)",
        })
    }
}

/// A connection over either transport, implementing [`transport::Connection`].
///
/// What [`Client::connect`](crate::Client::connect) and
/// [`Request::accept`](crate::Request::accept) return. A cheap handle: clones share the
/// connection.
#[derive(Clone, Debug)]
pub enum Connection {
    /// Raw QUIC.
    Quic(quic::Connection),
    /// WebTransport.
    WebTransport(webtransport::Connection),
}

impl Connection {
    /// Which transport this connection runs over.
    pub fn kind(&self) -> TransportKind {
        match self {
            Self::Quic(_) => TransportKind::Quic,
            Self::WebTransport(_) => TransportKind::WebTransport,
        }
    }

    /// The URL of a WebTransport session's CONNECT request; `None` on raw QUIC, which has
    /// no request.
    pub fn url(&self) -> Option<&Url> {
        match self {
            Self::Quic(_) => None,
            Self::WebTransport(conn) => conn.url(),
        }
    }

    /// The underlying QUIC connection (for statistics, addresses, RTT).
    pub fn quic(&self) -> &quinn::Connection {
        match self {
            Self::Quic(conn) => conn.quic(),
            Self::WebTransport(conn) => conn.quic(),
        }
    }
}

impl From<quic::Connection> for Connection {
    fn from(conn: quic::Connection) -> Self {
        Self::Quic(conn)
    }
}

impl From<webtransport::Connection> for Connection {
    fn from(conn: webtransport::Connection) -> Self {
        Self::WebTransport(conn)
    }
}

impl transport::Connection for Connection {
    type SendStream = SendStream;
    type RecvStream = RecvStream;

    async fn open_bi(&self) -> Result<(SendStream, RecvStream), TransportError> {
        Ok(match self {
            Self::Quic(conn) => {
                let (send, recv) = conn.open_bi().await?;
                (SendStream::Quic(send), RecvStream::Quic(recv))
            }
            Self::WebTransport(conn) => {
                let (send, recv) = conn.open_bi().await?;
                (
                    SendStream::WebTransport(send),
                    RecvStream::WebTransport(recv),
                )
            }
        })
    }

    async fn open_uni(&self) -> Result<SendStream, TransportError> {
        Ok(match self {
            Self::Quic(conn) => SendStream::Quic(conn.open_uni().await?),
            Self::WebTransport(conn) => SendStream::WebTransport(conn.open_uni().await?),
        })
    }

    async fn accept_bi(&self) -> Result<(SendStream, RecvStream), TransportError> {
        Ok(match self {
            Self::Quic(conn) => {
                let (send, recv) = conn.accept_bi().await?;
                (SendStream::Quic(send), RecvStream::Quic(recv))
            }
            Self::WebTransport(conn) => {
                let (send, recv) = conn.accept_bi().await?;
                (
                    SendStream::WebTransport(send),
                    RecvStream::WebTransport(recv),
                )
            }
        })
    }

    async fn accept_uni(&self) -> Result<RecvStream, TransportError> {
        Ok(match self {
            Self::Quic(conn) => RecvStream::Quic(conn.accept_uni().await?),
            Self::WebTransport(conn) => RecvStream::WebTransport(conn.accept_uni().await?),
        })
    }

    fn close(&self, code: ErrorCode, reason: &str) {
        match self {
            Self::Quic(conn) => conn.close(code, reason),
            Self::WebTransport(conn) => conn.close(code, reason),
        }
    }

    async fn closed(&self) -> TransportError {
        match self {
            Self::Quic(conn) => conn.closed().await,
            Self::WebTransport(conn) => conn.closed().await,
        }
    }

    fn setup_extensions(&self) -> moq_proto::Extensions {
        match self {
            Self::Quic(conn) => conn.setup_extensions(),
            Self::WebTransport(conn) => conn.setup_extensions(),
        }
    }
}

/// The sending half of a stream of a [`Connection`].
#[derive(Debug)]
pub enum SendStream {
    /// On raw QUIC.
    Quic(quic::SendStream),
    /// On WebTransport.
    WebTransport(webtransport::SendStream),
}

impl transport::SendStream for SendStream {
    fn id(&self) -> u64 {
        match self {
            Self::Quic(s) => s.id(),
            Self::WebTransport(s) => s.id(),
        }
    }

    async fn write_some(&mut self, buf: &mut Bytes) -> Result<usize, TransportError> {
        match self {
            Self::Quic(s) => s.write_some(buf).await,
            Self::WebTransport(s) => s.write_some(buf).await,
        }
    }

    async fn write_some_pair(
        &mut self,
        first: &mut Bytes,
        second: &mut Bytes,
    ) -> Result<usize, TransportError> {
        match self {
            Self::Quic(s) => s.write_some_pair(first, second).await,
            Self::WebTransport(s) => s.write_some_pair(first, second).await,
        }
    }

    fn set_priority(&self, priority: i32) {
        match self {
            Self::Quic(s) => s.set_priority(priority),
            Self::WebTransport(s) => s.set_priority(priority),
        }
    }

    fn finish(&mut self) -> Result<(), TransportError> {
        match self {
            Self::Quic(s) => s.finish(),
            Self::WebTransport(s) => s.finish(),
        }
    }

    fn reset(&mut self, code: ErrorCode) {
        match self {
            Self::Quic(s) => s.reset(code),
            Self::WebTransport(s) => s.reset(code),
        }
    }

    async fn stopped(&self) -> Result<Option<ErrorCode>, TransportError> {
        match self {
            Self::Quic(s) => s.stopped().await,
            Self::WebTransport(s) => s.stopped().await,
        }
    }

    fn stop_watch(&self) -> Option<transport::StopWatch> {
        match self {
            Self::Quic(s) => s.stop_watch(),
            // Its `stopped` drives the stream itself, behind the stream's lock: per wait.
            Self::WebTransport(_) => None,
        }
    }
}

/// The receiving half of a stream of a [`Connection`].
#[derive(Debug)]
pub enum RecvStream {
    /// On raw QUIC.
    Quic(quic::RecvStream),
    /// On WebTransport.
    WebTransport(webtransport::RecvStream),
}

impl transport::RecvStream for RecvStream {
    fn id(&self) -> u64 {
        match self {
            Self::Quic(s) => s.id(),
            Self::WebTransport(s) => s.id(),
        }
    }

    async fn read(&mut self) -> Result<Option<Bytes>, TransportError> {
        match self {
            Self::Quic(s) => s.read().await,
            Self::WebTransport(s) => s.read().await,
        }
    }

    fn stop(&mut self, code: ErrorCode) {
        match self {
            Self::Quic(s) => s.stop(code),
            Self::WebTransport(s) => s.stop(code),
        }
    }
}
