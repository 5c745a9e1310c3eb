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
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
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
