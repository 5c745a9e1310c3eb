//! The opening handshake (RFC 6455 §4): parsing and answering upgrade requests on a server,
//! building requests and checking responses on a client.
//!
//! [`Connection`](crate::Connection) drives these for you. The pieces are public for drivers
//! that let another HTTP stack (hyper, axum) parse the request: [`Request::from_http`] checks an
//! `http::Request`, [`Request::response`] builds the `101` answer, and
//! [`Connection::upgraded`](crate::Connection::upgraded) takes over the socket afterwards.

mod client;
mod error;
mod head;
mod header_values;
mod origin;
mod raw_head;
mod server;

pub use client::{ClientRequest, Response};
pub use error::HandshakeError;
pub use header_values::{ExtensionOffer, InvalidExtensionHeader, parse_extensions};
pub use origin::OriginPolicy;
pub use server::{Accept, Negotiated, Reject, Request};

pub(crate) use client::ResponseParser;
pub(crate) use server::{RequestParser, accept_bytes as server_accept_bytes};

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID appended to the key before hashing (§1.3).
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` value (§4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    String::from_utf8_lossy(&accept_key_bytes(key)).into_owned()
}

/// [`accept_key`] without the allocation: base64 of a SHA-1 digest is always 28 ASCII bytes.
pub(crate) fn accept_key_bytes(key: &[u8]) -> [u8; 28] {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID);
    let mut out = [0u8; 28];
    // 20 bytes encode to exactly 28 with padding, so the slice always fits.
    let _ = base64::engine::general_purpose::STANDARD.encode_slice(sha1.finalize(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
