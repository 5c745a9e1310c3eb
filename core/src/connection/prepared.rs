//! Messages framed (and compressed) once and sent to many connections.

use super::Role;
use super::send::{self, Transmit};
use crate::message::Message;
use crate::rng::Rng;

/// A message framed once, for fan-out: [`Connection::send_prepared`](super::Connection::send_prepared)
/// queues the same bytes on every server connection, a reference count each, with no copy and
/// no per-connection framing or compression.
///
/// With [`with_compression`](Self::with_compression) it also holds a permessage-deflate frame
/// compressed once with a fresh context and a 15-bit window, which any connection that agreed on
/// compression with that window can send as is.
#[derive(Clone, Debug)]
pub struct PreparedMessage {
    message: Message,
    plain: Transmit,
    compressed: Option<Transmit>,
}

impl PreparedMessage {
    /// Frames `message` uncompressed.
    pub fn new(message: impl Into<Message>) -> Self {
        let message = message.into();
        let plain = Self::server_frame(&message, 0, message.payload().clone());
        Self {
            message,
            plain,
            compressed: None,
        }
    }

    /// Frames `message` uncompressed and, if it reaches the config's threshold, compressed.
    #[cfg(feature = "deflate")]
    pub fn with_compression(message: impl Into<Message>, config: &crate::deflate::DeflateConfig) -> Self {
        let mut prepared = Self::new(message);
        if prepared.message.len() >= config.threshold {
            let mut compressor = crate::deflate::Compressor::new(config, 15, true);
            let mut out = bytes::BytesMut::new();
            // Should compression fail, the plain frame is what every connection sends.
            if compressor.compress(prepared.message.payload(), true, &mut out).is_ok() {
                let frame = Self::server_frame(&prepared.message, crate::frame::RSV1, out.freeze());
                prepared.compressed = Some(frame);
            }
        }
        prepared
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    pub(crate) fn plain(&self) -> &Transmit {
        &self.plain
    }

    pub(crate) fn compressed(&self) -> Option<&Transmit> {
        self.compressed.as_ref()
    }

    fn server_frame(message: &Message, rsv: u8, payload: bytes::Bytes) -> Transmit {
        let opcode = super::opcode_of(message.kind());
        // Server frames are unmasked, so the generator is never used.
        send::frame_with_rsv(Role::Server, &mut Rng::new(Some(0)), opcode, true, rsv, payload)
    }
}
