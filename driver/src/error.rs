//! Errors of the async API.

use std::io;

use wsengine::{ApiMisuse, CloseInfo, HandshakeError, Message};

/// What can go wrong on a WebSocket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection closed: `info` says with which code and reason, who started it and whether
    /// the close handshake completed. Returned once; afterwards calls return
    /// [`AlreadyClosed`](Error::AlreadyClosed).
    #[error("connection closed: {} {:?} ({:?}{})", .0.code.0, .0.reason, .0.cause, if .0.clean { ", clean" } else { "" })]
    Closed(CloseInfo),
    /// The connection was already over when this call was made.
    #[error("connection already closed")]
    AlreadyClosed,
    /// The opening handshake failed (for a server, the error response has been sent).
    #[error("opening handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The call was a mistake of the caller (see [`ApiMisuse`]).
    #[error("API misuse: {0}")]
    Misuse(#[from] ApiMisuse),
    /// `recv` met a fragment; fragments are delivered only through `recv_incoming` when
    /// `Config::deliver_fragments` is on.
    #[error("a fragment arrived; read fragments with recv_incoming")]
    UnexpectedFragment,
    /// Client: the URL, name resolution, TCP or TLS connect failed, or timed out.
    #[error("connect failed: {0}")]
    Connect(String),
}

/// Why [`try_send`](crate::WebSocket::try_send) (or `try_send_prepared`, with `M = ()`: the
/// caller still holds its prepared message) did not queue a message; the message comes back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError<M = Message> {
    /// The outbound queue is at its limit; wait (`send`) or drop the message.
    #[error("outbound queue is full")]
    Full(M),
    /// The connection cannot send.
    #[error(transparent)]
    Error(Error),
}
