//! What a connection reports to the application.

use bytes::Bytes;

use crate::error::ProtocolError;
use crate::frame::CloseCode;
use crate::handshake::{HandshakeError, Request, Response};
use crate::message::{Message, MessageKind};

/// Which end of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepts connections; receives masked frames and sends unmasked ones.
    Server,
    /// Opens connections; masks every frame it sends.
    Client,
}

/// Which end started the close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// This endpoint: the application, a timer, or a protocol violation it detected.
    Local,
    /// The peer: its close frame, or its transport ending.
    Remote,
}

/// Why the connection closed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseCause {
    /// The application called [`close`](super::Connection::close) (or the idle timer did).
    LocalClose,
    /// The peer sent a close frame.
    RemoteClose,
    /// The peer broke the protocol or a limit; this endpoint sent the error's close code.
    Protocol(ProtocolError),
    /// The transport ended without a close handshake.
    Eof,
    /// No pong arrived within `pong_timeout` of a heartbeat ping: the peer is presumed dead.
    PongTimeout,
    /// The peer did not answer our close frame within `close_timeout`.
    CloseTimeout,
}

/// The end of a connection that completed its opening handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code: the one the peer sent (or echoed), the one we sent for a protocol
    /// error, [`CloseCode::NO_STATUS`] for a close frame without one, or
    /// [`CloseCode::ABNORMAL`] when no close frame was exchanged.
    pub code: CloseCode,
    /// The reason text accompanying the code.
    pub reason: String,
    /// Why the connection closed.
    pub cause: CloseCause,
    /// Whether both close frames were exchanged (§7.1.4: "cleanly").
    pub clean: bool,
}

impl CloseInfo {
    /// Which end started the close.
    pub fn initiator(&self) -> Initiator {
        match self.cause {
            CloseCause::RemoteClose | CloseCause::Eof => Initiator::Remote,
            _ => Initiator::Local,
        }
    }
}

/// One data frame of a message, delivered when
/// [`Config::deliver_fragments`](crate::Config::deliver_fragments) is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// The kind of the message this fragment belongs to.
    pub kind: MessageKind,
    /// The frame's payload. For text, the concatenation of a message's fragments is UTF-8, but a
    /// single fragment may end inside a character.
    pub data: Bytes,
    /// Whether this is the message's first fragment.
    pub is_first: bool,
    /// Whether this is the message's last fragment.
    pub is_final: bool,
}

/// What happened, in order. Drain with [`poll_event`](super::Connection::poll_event).
///
/// A connection ends with exactly one of [`HandshakeFailed`](Event::HandshakeFailed) (before
/// the opening handshake completed) or [`Closed`](Event::Closed) (after), and reports nothing
/// after it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// Server: an upgrade request arrived; answer with
    /// [`accept`](super::Connection::accept) or [`reject`](super::Connection::reject).
    Request(Box<Request>),
    /// Client: the server accepted; the connection is open.
    Connected(Box<Response>),
    /// A complete message.
    Message(Message),
    /// One frame of a message, in fragment delivery mode.
    Fragment(Fragment),
    /// A ping arrived (already answered when `auto_pong` is on).
    Ping(Bytes),
    /// A pong arrived.
    Pong(Bytes),
    /// The opening handshake failed; a server has queued the error response.
    HandshakeFailed(HandshakeError),
    /// The connection closed.
    Closed(CloseInfo),
}
