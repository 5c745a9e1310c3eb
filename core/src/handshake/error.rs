//! Why an opening handshake failed, and what a server answers.

use http::{HeaderName, HeaderValue, StatusCode, header};

/// An opening handshake that did not succeed.
///
/// On a server each variant carries the HTTP status the connection answers with (see
/// [`status`](Self::status)); a client reports what was wrong with the server's response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The request head exceeded `max_handshake_size` (answered 431).
    #[error("request head exceeds the size limit")]
    RequestTooLarge,
    /// The request is not valid HTTP/1.1 (answered 400).
    #[error("malformed HTTP request: {0}")]
    MalformedRequest(String),
    /// The method is not GET (answered 405).
    #[error("method {0} is not allowed for a WebSocket upgrade")]
    MethodNotAllowed(String),
    /// HTTP/1.0 (answered 400; §4.1 requires HTTP/1.1 or higher).
    #[error("WebSocket upgrade requires HTTP/1.1")]
    HttpVersion,
    /// No `Host` header (answered 400).
    #[error("missing Host header")]
    MissingHost,
    /// No `Upgrade: websocket` (answered 426, naming the protocol to upgrade to).
    #[error("not a WebSocket upgrade request: no `Upgrade: websocket`")]
    NotWebSocket,
    /// No `upgrade` token in `Connection` (answered 400).
    #[error("missing `upgrade` token in the Connection header")]
    MissingConnectionUpgrade,
    /// A `Sec-WebSocket-Version` other than 13 (answered 426 with `Sec-WebSocket-Version: 13`).
    #[error("unsupported WebSocket version {0:?}")]
    UnsupportedVersion(String),
    /// A missing, repeated or malformed `Sec-WebSocket-Key` (answered 400).
    #[error("missing or invalid Sec-WebSocket-Key")]
    InvalidKey,
    /// A malformed `Sec-WebSocket-Extensions` header (answered 400).
    #[error("malformed Sec-WebSocket-Extensions header")]
    InvalidExtensions,
    /// The handshake did not complete within `handshake_timeout` (a server answers 408).
    #[error("opening handshake timed out")]
    Timeout,
    /// The transport ended before the handshake completed.
    #[error("connection closed during the opening handshake")]
    Closed,
    /// The application rejected the request with this status.
    #[error("request rejected with status {0}")]
    Rejected(StatusCode),
    /// Client: the response head exceeded `max_handshake_size`.
    #[error("response head exceeds the size limit")]
    ResponseTooLarge,
    /// Client: the response is not valid HTTP/1.1.
    #[error("malformed HTTP response: {0}")]
    MalformedResponse(String),
    /// Client: the server answered with a status other than 101.
    #[error("server answered {0} instead of 101 Switching Protocols")]
    UnexpectedStatus(StatusCode),
    /// Client: the response lacks `Upgrade: websocket` or `Connection: upgrade`.
    #[error("response does not upgrade to WebSocket")]
    ResponseNotUpgrade,
    /// Client: `Sec-WebSocket-Accept` is missing or does not match the key sent.
    #[error("Sec-WebSocket-Accept does not match the key")]
    InvalidAccept,
    /// Client: the server chose a subprotocol the client did not offer.
    #[error("server chose subprotocol {0:?}, which was not offered")]
    UnofferedProtocol(String),
    /// Client: the server enabled an extension the client did not offer.
    #[error("server enabled extension {0:?}, which was not offered")]
    UnofferedExtension(String),
    /// Client: the server's parameters for an offered extension are invalid or were not offered.
    #[error("invalid extension response: {0}")]
    InvalidExtensionResponse(String),
}

impl HandshakeError {
    /// The HTTP status a server answers with; `None` for client-side errors and for a closed
    /// transport, where no response is sent.
    pub fn status(&self) -> Option<StatusCode> {
        Some(match self {
            Self::RequestTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotWebSocket | Self::UnsupportedVersion(_) => StatusCode::UPGRADE_REQUIRED,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::Rejected(status) => *status,
            Self::MalformedRequest(_)
            | Self::HttpVersion
            | Self::MissingHost
            | Self::MissingConnectionUpgrade
            | Self::InvalidKey
            | Self::InvalidExtensions => StatusCode::BAD_REQUEST,
            Self::Closed
            | Self::ResponseTooLarge
            | Self::MalformedResponse(_)
            | Self::UnexpectedStatus(_)
            | Self::ResponseNotUpgrade
            | Self::InvalidAccept
            | Self::UnofferedProtocol(_)
            | Self::UnofferedExtension(_)
            | Self::InvalidExtensionResponse(_) => return None,
        })
    }

    /// Headers the error response must carry besides the defaults (§4.4, RFC 9110 §15.5).
    pub fn response_headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        match self {
            Self::UnsupportedVersion(_) => {
                vec![(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"))]
            }
            Self::NotWebSocket => vec![(header::UPGRADE, HeaderValue::from_static("websocket"))],
            Self::MethodNotAllowed(_) => vec![(header::ALLOW, HeaderValue::from_static("GET"))],
            _ => Vec::new(),
        }
    }
}
