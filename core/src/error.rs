//! Errors: caller mistakes, and what a peer did wrong.

use crate::frame::{CloseCode, ClosePayloadError, HeaderError};
use crate::utf8::Utf8Error;

/// A method was called when the connection could not honour it. Never caused by the peer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// The connection is not open for this command (handshake still running, or closing).
    #[error("the connection is not open")]
    NotOpen,
    /// `accept` or `reject` was called when no handshake request is waiting for a decision.
    #[error("no handshake request is awaiting a decision")]
    NoPendingRequest,
    /// The chosen subprotocol was not offered by the client.
    #[error("subprotocol {0:?} was not offered by the client")]
    ProtocolNotOffered(String),
    /// A header name or value that cannot be sent.
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// A URI a client cannot connect to.
    #[error("invalid WebSocket URI: {0}")]
    InvalidUri(String),
    /// A control frame payload longer than 125 bytes.
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlPayloadTooLong(usize),
    /// A close code that may not be sent (1005, 1006, 1015, reserved or unassigned ranges).
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// A close reason longer than 123 bytes.
    #[error("close reason of {0} bytes exceeds 123")]
    CloseReasonTooLong(usize),
    /// A close was already sent.
    #[error("a close frame was already sent")]
    AlreadyClosing,
    /// A fragment out of sequence: a continuation with no message started, or a new message
    /// while a fragmented one is unfinished.
    #[error("fragment out of sequence")]
    FragmentOutOfSequence,
    /// Text fragments that together are not UTF-8.
    #[error("text fragments are not valid UTF-8")]
    InvalidUtf8,
    /// The compressor failed on this message (permessage-deflate). Nothing of it was sent, and
    /// the next message starts a fresh compression stream; the connection stays usable.
    #[error("compressing the message failed; nothing was sent")]
    CompressionFailed,
}

/// A rule of RFC 6455 that the peer broke, or a limit it exceeded. It always ends the
/// connection with the close code from [`close_code`](Self::close_code).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A malformed frame header.
    #[error("malformed frame header: {0}")]
    Header(#[from] HeaderError),
    /// Reserved bits set with no extension negotiated that defines them (§5.2).
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// An opcode RFC 6455 does not define (§5.2).
    #[error("unknown opcode {0:#x}")]
    UnknownOpCode(u8),
    /// A fragmented control frame (§5.5).
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame payload over 125 bytes (§5.5).
    #[error("control frame payload over 125 bytes")]
    ControlTooLong,
    /// A client frame without a mask (§5.1).
    #[error("client frame is not masked")]
    UnmaskedFrame,
    /// A server frame with a mask (§5.1).
    #[error("server frame is masked")]
    MaskedFrame,
    /// A continuation frame with no message in progress (§5.4).
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A new data message before the previous fragmented one ended (§5.4).
    #[error("new message before the fragmented message ended")]
    UnfinishedMessage,
    /// Invalid UTF-8 in a text message (§8.1), answered with 1007.
    #[error("invalid UTF-8 in a text message")]
    InvalidUtf8,
    /// A compressed message that is not valid deflate data (RFC 7692 §8), answered with 1007.
    #[error("invalid compressed data")]
    InvalidCompressedData,
    /// A bad close frame payload (§5.5.1, §7.4).
    #[error("invalid close frame: {0}")]
    ClosePayload(#[from] ClosePayloadError),
    /// A frame larger than `max_frame_size`.
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// The frame's declared payload length.
        len: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A message larger than `max_message_size`.
    #[error("message exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A message split into more than `max_fragments` frames.
    #[error("message exceeds the limit of {limit} fragments")]
    TooManyFragments {
        /// The configured limit.
        limit: usize,
    },
}

impl ProtocolError {
    /// The close code this error is answered with (§7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidUtf8 | Self::InvalidCompressedData | Self::ClosePayload(ClosePayloadError::InvalidReason) => {
                CloseCode::INVALID_PAYLOAD
            }
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } | Self::TooManyFragments { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl From<Utf8Error> for ProtocolError {
    fn from(_: Utf8Error) -> Self {
        Self::InvalidUtf8
    }
}
