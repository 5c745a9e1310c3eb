//! The client side of the opening handshake (RFC 6455 §4.1).

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};

use super::head::{HeadBuffer, http_version, share_headers};
use super::header_values::{has_token, header_tokens, parse_extensions};
use super::server::{Negotiated, is_engine_header, is_valid_protocol};
use super::{HandshakeError, accept_key};
use crate::error::ApiMisuse;

/// What a client asks for: the URI, subprotocols in order of preference, extra headers.
///
/// ```
/// use wsengine::handshake::ClientRequest;
/// let request = ClientRequest::new("wss://example.com/feed?x=1")?
///     .protocol("v2.chat")
///     .header("authorization", "Bearer t0k3n")?;
/// assert!(request.is_tls());
/// assert_eq!((request.host(), request.port()), ("example.com", 443));
/// # Ok::<(), wsengine::ApiMisuse>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClientRequest {
    uri: Uri,
    protocols: Vec<String>,
    headers: HeaderMap,
}

impl ClientRequest {
    /// A request for a `ws://` or `wss://` URI (`http://` and `https://` are taken as the same).
    pub fn new<U>(uri: U) -> Result<Self, ApiMisuse>
    where
        U: TryInto<Uri>,
        U::Error: std::fmt::Display,
    {
        let uri: Uri = uri.try_into().map_err(|e| ApiMisuse::InvalidUri(e.to_string()))?;
        match uri.scheme_str() {
            Some("ws" | "wss" | "http" | "https") => {}
            other => return Err(ApiMisuse::InvalidUri(format!("unsupported scheme {other:?}"))),
        }
        match uri.host() {
            Some(host) if !host.is_empty() => {}
            _ => return Err(ApiMisuse::InvalidUri("no host".into())),
        }
        Ok(Self {
            uri,
            protocols: Vec::new(),
            headers: HeaderMap::new(),
        })
    }

    /// Offers a subprotocol (call again for more, most preferred first).
    ///
    /// # Panics
    /// If `protocol` is not an HTTP token; use [`try_protocol`](Self::try_protocol) for
    /// names that come from outside the program.
    pub fn protocol(self, protocol: impl Into<String>) -> Self {
        match self.try_protocol(protocol) {
            Ok(this) => this,
            Err(e) => panic!("{e}"),
        }
    }

    /// Offers a subprotocol, failing if it is not an HTTP token.
    pub fn try_protocol(mut self, protocol: impl Into<String>) -> Result<Self, ApiMisuse> {
        let protocol = protocol.into();
        if !is_valid_protocol(&protocol) {
            return Err(ApiMisuse::InvalidHeader(format!(
                "subprotocol {protocol:?} is not a token"
            )));
        }
        self.protocols.push(protocol);
        Ok(self)
    }

    /// Adds a request header such as `Authorization`, `Cookie` or `Origin`. A `Host` header
    /// replaces the one derived from the URI; the headers that carry the WebSocket handshake
    /// itself cannot be set.
    pub fn header<K, V>(mut self, name: K, value: V) -> Result<Self, ApiMisuse>
    where
        K: TryInto<HeaderName>,
        K::Error: std::fmt::Display,
        V: TryInto<HeaderValue>,
        V::Error: std::fmt::Display,
    {
        let name = name.try_into().map_err(|e| ApiMisuse::InvalidHeader(e.to_string()))?;
        let value = value.try_into().map_err(|e| ApiMisuse::InvalidHeader(e.to_string()))?;
        if is_engine_header(&name) {
            return Err(ApiMisuse::InvalidHeader(format!("{name} is set by the handshake")));
        }
        self.headers.append(name, value);
        Ok(self)
    }

    /// The URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// Whether the URI asks for TLS (`wss://` or `https://`).
    pub fn is_tls(&self) -> bool {
        matches!(self.uri.scheme_str(), Some("wss" | "https"))
    }

    /// The host to connect to, without IPv6 brackets.
    pub fn host(&self) -> &str {
        let host = self.uri.host().unwrap_or_default();
        host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
    }

    /// The port to connect to: the URI's, or 80 / 443 by scheme.
    pub fn port(&self) -> u16 {
        self.uri.port_u16().unwrap_or(if self.is_tls() { 443 } else { 80 })
    }

    /// The subprotocols offered.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The request head on the wire, with `key` as `Sec-WebSocket-Key`.
    pub(crate) fn to_bytes(&self, key: &str, extensions: Option<&str>) -> Bytes {
        let mut out = BytesMut::with_capacity(256);
        let target = self.uri.path_and_query().map_or("/", |pq| pq.as_str());
        out.put_slice(b"GET ");
        out.put_slice(if target.is_empty() { b"/" } else { target.as_bytes() });
        out.put_slice(b" HTTP/1.1\r\n");
        if !self.headers.contains_key(header::HOST) {
            out.put_slice(b"Host: ");
            out.put_slice(self.uri.host().unwrap_or_default().as_bytes());
            if let Some(port) = self
                .uri
                .port_u16()
                .filter(|&p| p != if self.is_tls() { 443 } else { 80 })
            {
                out.put_slice(format!(":{port}").as_bytes());
            }
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
        out.put_slice(key.as_bytes());
        out.put_slice(b"\r\nSec-WebSocket-Version: 13\r\n");
        if !self.protocols.is_empty() {
            out.put_slice(b"Sec-WebSocket-Protocol: ");
            out.put_slice(self.protocols.join(", ").as_bytes());
            out.put_slice(b"\r\n");
        }
        if let Some(extensions) = extensions {
            out.put_slice(b"Sec-WebSocket-Extensions: ");
            out.put_slice(extensions.as_bytes());
            out.put_slice(b"\r\n");
        }
        for (name, value) in &self.headers {
            out.put_slice(name.as_str().as_bytes());
            out.put_slice(b": ");
            out.put_slice(value.as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        out.freeze()
    }
}

/// The server's accepting response, as the client saw it.
#[derive(Clone, Debug)]
pub struct Response {
    http: http::Response<()>,
    negotiated: Negotiated,
}

impl Response {
    /// The full response head.
    pub fn http(&self) -> &http::Response<()> {
        &self.http
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        self.http.headers()
    }

    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.negotiated.protocol()
    }

    /// Everything the handshake agreed on.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }
}

/// Parses and checks the server's response to a request sent with a given key.
#[derive(Debug)]
pub(crate) struct ResponseParser {
    head: HeadBuffer,
    expected_accept: String,
    offered: Vec<String>,
    #[cfg(feature = "deflate")]
    deflate: Option<crate::deflate::DeflateConfig>,
}

impl ResponseParser {
    /// A fresh random key (base64 of 16 bytes) and the parser expecting the answer to it.
    pub(crate) fn new(nonce: [u8; 16], request: &ClientRequest, config: &crate::Config) -> (Self, String) {
        #[cfg(not(feature = "deflate"))]
        let _ = config;
        let key = base64::engine::general_purpose::STANDARD.encode(nonce);
        let parser = Self {
            head: HeadBuffer::default(),
            expected_accept: accept_key(key.as_bytes()),
            offered: request.protocols.clone(),
            #[cfg(feature = "deflate")]
            deflate: config.deflate.clone(),
        };
        (parser, key)
    }

    /// Feeds bytes; once the head is complete, returns the checked response and the bytes that
    /// followed it (frames the server sent right after its response).
    pub(crate) fn push(&mut self, data: &[u8], max_size: usize) -> Result<Option<(Response, Bytes)>, HandshakeError> {
        let Some(head_len) = self
            .head
            .push(data, max_size)
            .map_err(|_| HandshakeError::ResponseTooLarge)?
        else {
            return Ok(None);
        };
        let bytes = self.head.bytes();
        // One copy of the head, which every header value then shares.
        let head = Bytes::copy_from_slice(bytes.get(..head_len).unwrap_or_default());
        let trailing = Bytes::copy_from_slice(bytes.get(head_len..).unwrap_or_default());
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(HandshakeError::MalformedResponse("incomplete response head".into()));
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::ResponseTooLarge),
            Err(e) => return Err(HandshakeError::MalformedResponse(e.to_string())),
        }
        let malformed = |what: &str| HandshakeError::MalformedResponse(what.to_owned());
        let status = StatusCode::from_u16(parsed.code.unwrap_or(0)).map_err(|_| malformed("invalid status"))?;
        let mut http = http::Response::new(());
        *http.status_mut() = status;
        *http.version_mut() = http_version(parsed.version);
        share_headers(parsed.headers, &head, http.headers_mut()).map_err(malformed)?;
        Ok(Some((self.check(http)?, trailing)))
    }

    fn check(&self, http: http::Response<()>) -> Result<Response, HandshakeError> {
        if http.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(HandshakeError::UnexpectedStatus(http.status()));
        }
        let headers = http.headers();
        if !has_token(headers, &header::UPGRADE, "websocket") || !has_token(headers, &header::CONNECTION, "upgrade") {
            return Err(HandshakeError::ResponseNotUpgrade);
        }
        let mut accepts = headers.get_all(header::SEC_WEBSOCKET_ACCEPT).iter();
        match (accepts.next(), accepts.next()) {
            (Some(value), None) if value.as_bytes().trim_ascii() == self.expected_accept.as_bytes() => {}
            _ => return Err(HandshakeError::InvalidAccept),
        }
        let mut chosen = header_tokens(headers, &header::SEC_WEBSOCKET_PROTOCOL);
        let protocol = match (chosen.next(), chosen.next()) {
            (None, _) => None,
            (Some(p), None) if self.offered.iter().any(|o| o == p) => Some(p.to_owned()),
            (Some(p), _) => return Err(HandshakeError::UnofferedProtocol(p.to_owned())),
        };
        drop(chosen);
        let mut accepted = Vec::new();
        for value in headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS) {
            let value = value.to_str().ok().and_then(|v| parse_extensions(v).ok());
            accepted.extend(value.ok_or_else(|| HandshakeError::InvalidExtensionResponse("malformed header".into()))?);
        }
        #[cfg(feature = "deflate")]
        let negotiated = match &self.deflate {
            Some(offer) => Negotiated::client(protocol, crate::deflate::check_response(&accepted, offer)?),
            None if !accepted.is_empty() => return Err(HandshakeError::UnofferedExtension(accepted[0].name.clone())),
            None => Negotiated::client(protocol, None),
        };
        #[cfg(not(feature = "deflate"))]
        let negotiated = match accepted.first() {
            Some(extension) => return Err(HandshakeError::UnofferedExtension(extension.name.clone())),
            None => Negotiated::client(protocol),
        };
        Ok(Response { http, negotiated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: [u8; 16] = *b"the sample nonce";

    fn response(extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{extra}\r\n"
        )
    }

    fn check(request: &ClientRequest, wire: &str) -> Result<Response, HandshakeError> {
        let (mut parser, key) = ResponseParser::new(NONCE, request, &crate::Config::default());
        assert_eq!(key, "dGhlIHNhbXBsZSBub25jZQ==");
        parser.push(wire.as_bytes(), 8192).map(|r| r.unwrap().0)
    }

    #[test]
    fn request_bytes() {
        let request = ClientRequest::new("ws://example.com:8080/chat?x=1")
            .unwrap()
            .protocol("chat")
            .protocol("superchat")
            .header("Authorization", "Basic YTpi")
            .unwrap();
        let text = String::from_utf8(request.to_bytes("KEY", None).to_vec()).unwrap();
        assert_eq!(
            text,
            "GET /chat?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: KEY\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: chat, superchat\r\nauthorization: Basic YTpi\r\n\r\n"
        );
        let v6 = ClientRequest::new("wss://[::1]:443").unwrap();
        assert_eq!((v6.host(), v6.port()), ("::1", 443));
        assert!(
            String::from_utf8(v6.to_bytes("K", None).to_vec())
                .unwrap()
                .starts_with("GET / HTTP/1.1\r\nHost: [::1]\r\n")
        );
    }

    #[test]
    fn rejects_unusable_requests() {
        assert!(ClientRequest::new("ftp://x/").is_err());
        assert!(ClientRequest::new("/just/a/path").is_err());
        assert!(
            ClientRequest::new("ws://x/")
                .unwrap()
                .header("Sec-WebSocket-Key", "x")
                .is_err()
        );
        assert!(
            ClientRequest::new("ws://x/")
                .unwrap()
                .try_protocol("has space")
                .is_err()
        );
    }

    #[test]
    fn accepts_a_good_response_and_checks_the_rest() {
        let request = ClientRequest::new("ws://h/").unwrap().protocol("chat");
        assert_eq!(check(&request, &response("")).unwrap().protocol(), None);
        let chosen = check(&request, &response("Sec-WebSocket-Protocol: chat\r\n")).unwrap();
        assert_eq!(chosen.protocol(), Some("chat"));
        assert!(matches!(
            check(&request, &response("Sec-WebSocket-Protocol: other\r\n")),
            Err(HandshakeError::UnofferedProtocol(p)) if p == "other"
        ));
        assert!(matches!(
            check(&request, &response("Sec-WebSocket-Extensions: permessage-deflate\r\n")),
            Err(HandshakeError::UnofferedExtension(_))
        ));
        let wrong_accept = response("").replace("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "AAAA");
        assert_eq!(
            check(&request, &wrong_accept).unwrap_err(),
            HandshakeError::InvalidAccept
        );
        let not_upgrade = response("").replace("Upgrade: websocket\r\n", "");
        assert_eq!(
            check(&request, &not_upgrade).unwrap_err(),
            HandshakeError::ResponseNotUpgrade
        );
        let forbidden = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            check(&request, forbidden).unwrap_err(),
            HandshakeError::UnexpectedStatus(StatusCode::FORBIDDEN)
        );
    }

    #[test]
    fn trailing_frames_carry_over() {
        let request = ClientRequest::new("ws://h/").unwrap();
        let (mut parser, _) = ResponseParser::new(NONCE, &request, &crate::Config::default());
        let wire = response("") + "\u{1}";
        let (_, trailing) = parser.push(wire.as_bytes(), 8192).unwrap().unwrap();
        assert_eq!(&trailing[..], b"\x01");
    }
}
