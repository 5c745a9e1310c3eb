//! The server side of the opening handshake (RFC 6455 §4.2).

use std::sync::Arc;

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header};

use super::head::{HeadBuffer, find_head_end};
use super::header_values::{ExtensionOffer, is_token, parse_extensions, tokens, visible_str};
use super::raw_head::RawHead;
use super::{HandshakeError, accept_key_bytes};
use crate::config::Config;
use crate::error::ApiMisuse;

/// A validated WebSocket upgrade request, for the application to inspect and then accept
/// ([`Connection::accept`](crate::Connection::accept)) or reject.
#[derive(Clone, Debug)]
pub struct Request {
    // Shared: a connection hands the application a copy and keeps one to answer it with, so
    // a clone costs a reference count instead of copying the header map.
    inner: Arc<RequestInner>,
}

#[derive(Debug)]
struct RequestInner {
    head: Head,
    protocols: Vec<String>,
    extensions: Vec<ExtensionOffer>,
}

/// The request head as parsed here, or as another HTTP stack handed it over.
#[derive(Debug)]
enum Head {
    Raw(RawHead),
    Http(http::Request<()>),
}

impl Head {
    fn method(&self) -> &Method {
        match self {
            Self::Raw(raw) => raw.method(),
            Self::Http(http) => http.method(),
        }
    }

    fn version(&self) -> Version {
        match self {
            Self::Raw(raw) => raw.version(),
            Self::Http(http) => http.version(),
        }
    }

    fn uri(&self) -> &Uri {
        match self {
            Self::Raw(raw) => raw.uri(),
            Self::Http(http) => http.uri(),
        }
    }

    fn http(&self) -> &http::Request<()> {
        match self {
            Self::Raw(raw) => raw.http(),
            Self::Http(http) => http,
        }
    }

    /// The values of every `name` header, in order.
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        match self {
            Self::Raw(raw) => Values::Raw(raw.values(name)),
            Self::Http(http) => Values::Map(http.headers().get_all(name).iter()),
        }
    }

    /// The first `name` header as text, like `HeaderMap::get` and `HeaderValue::to_str`.
    fn first_str<'a>(&'a self, name: &'a HeaderName) -> Option<&'a str> {
        self.values(name).next().and_then(visible_str)
    }

    /// Whether a `name` header lists `token`, compared case-insensitively (as
    /// `header_values::has_token`, on bytes: visible ASCII needs no UTF-8 check).
    fn has_token(&self, name: &HeaderName, token: &str) -> bool {
        self.values(name)
            .filter(|value| visible_str(value).is_some())
            .flat_map(|value| value.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }
}

/// Header values from either form of [`Head`].
enum Values<'a, R> {
    Raw(R),
    Map(http::header::ValueIter<'a, HeaderValue>),
}

impl<'a, R: Iterator<Item = &'a [u8]>> Iterator for Values<'a, R> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Self::Raw(raw) => raw.next(),
            Self::Map(map) => map.next().map(HeaderValue::as_bytes),
        }
    }
}

impl Request {
    /// Validates a request parsed by another HTTP stack (hyper, axum) as a WebSocket upgrade.
    pub fn from_http<B>(request: &http::Request<B>) -> Result<Self, HandshakeError> {
        let mut head = http::Request::new(());
        *head.method_mut() = request.method().clone();
        *head.uri_mut() = request.uri().clone();
        *head.version_mut() = request.version();
        *head.headers_mut() = request.headers().clone();
        Self::validate(Head::Http(head))
    }

    /// The full request head.
    pub fn http(&self) -> &http::Request<()> {
        self.inner.head.http()
    }

    /// The request target.
    pub fn uri(&self) -> &Uri {
        self.inner.head.uri()
    }

    /// The path of the request target.
    pub fn path(&self) -> &str {
        self.inner.head.uri().path()
    }

    /// The query string of the request target, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.inner.head.uri().query()
    }

    /// All request headers.
    pub fn headers(&self) -> &HeaderMap {
        self.inner.head.http().headers()
    }

    /// The `Origin` header, sent by browsers (see [`OriginPolicy`](super::OriginPolicy)).
    pub fn origin(&self) -> Option<&str> {
        self.inner.head.first_str(&header::ORIGIN)
    }

    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in the client's order of preference.
    pub fn protocols(&self) -> &[String] {
        &self.inner.protocols
    }

    /// Extensions offered in `Sec-WebSocket-Extensions`, in order.
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.inner.extensions
    }

    /// The client's `Sec-WebSocket-Key`.
    pub fn key(&self) -> &str {
        self.inner.head.first_str(&header::SEC_WEBSOCKET_KEY).unwrap_or("")
    }

    /// The `101 Switching Protocols` response accepting this request, for a driver whose HTTP
    /// stack writes responses itself (hyper), and what it agreed to, for
    /// [`Connection::upgraded`](crate::Connection::upgraded). Fails if `accept` names a
    /// protocol that was not offered.
    pub fn response(&self, accept: &Accept, config: &Config) -> Result<(http::Response<()>, Negotiated), ApiMisuse> {
        let negotiated = self.negotiate(accept, config)?;
        let invalid = |e: http::header::InvalidHeaderValue| ApiMisuse::InvalidHeader(e.to_string());
        let mut response = http::Response::new(());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.extend(accept.headers.clone());
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        let key = HeaderValue::from_bytes(&accept_key_bytes(self.key().as_bytes())).map_err(invalid)?;
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, key);
        if let Some(protocol) = &accept.protocol {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::try_from(protocol.as_str()).map_err(invalid)?,
            );
        }
        if let Some(extensions) = negotiated.extensions_header() {
            headers.insert(
                header::SEC_WEBSOCKET_EXTENSIONS,
                HeaderValue::try_from(extensions).map_err(invalid)?,
            );
        }
        Ok((response, negotiated))
    }

    /// Checks the application's answer and negotiates extensions from the offers.
    pub(crate) fn negotiate(&self, accept: &Accept, config: &Config) -> Result<Negotiated, ApiMisuse> {
        if let Some(p) = &accept.protocol {
            if !self.inner.protocols.iter().any(|offered| offered == p) {
                return Err(ApiMisuse::ProtocolNotOffered(p.clone()));
            }
        }
        if let Some(name) = accept.headers.keys().find(|name| is_engine_header(name)) {
            return Err(ApiMisuse::InvalidHeader(format!("{name} is set by the handshake")));
        }
        #[cfg(feature = "deflate")]
        let deflate = config
            .deflate
            .as_ref()
            .filter(|_| accept.compression)
            .and_then(|deflate| crate::deflate::accept_offers(&self.inner.extensions, deflate));
        #[cfg(not(feature = "deflate"))]
        let _ = config;
        Ok(Negotiated {
            protocol: accept.protocol.clone(),
            #[cfg(feature = "deflate")]
            deflate,
        })
    }

    fn validate(head: Head) -> Result<Self, HandshakeError> {
        let (protocols, extensions) = Self::check(&head)?;
        Ok(Self {
            inner: Arc::new(RequestInner {
                head,
                protocols,
                extensions,
            }),
        })
    }

    /// RFC 6455 §4.2.1; returns the offered subprotocols and extensions.
    fn check(head: &Head) -> Result<(Vec<String>, Vec<ExtensionOffer>), HandshakeError> {
        if head.method() != Method::GET {
            return Err(HandshakeError::MethodNotAllowed(head.method().to_string()));
        }
        if head.version() < Version::HTTP_11 {
            return Err(HandshakeError::HttpVersion);
        }
        if head.values(&header::HOST).next().is_none() {
            return Err(HandshakeError::MissingHost);
        }
        if !head.has_token(&header::UPGRADE, "websocket") {
            return Err(HandshakeError::NotWebSocket);
        }
        if !head.has_token(&header::CONNECTION, "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        let mut versions = head.values(&header::SEC_WEBSOCKET_VERSION);
        match (versions.next(), versions.next()) {
            (Some(v), None) if v.trim_ascii() == b"13" => {}
            (v, _) => {
                let offered = v.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
                return Err(HandshakeError::UnsupportedVersion(offered));
            }
        }
        let mut keys = head.values(&header::SEC_WEBSOCKET_KEY);
        match (keys.next(), keys.next()) {
            (Some(key), None) if is_valid_key(key) => {}
            _ => return Err(HandshakeError::InvalidKey),
        }
        let protocols = tokens(head.values(&header::SEC_WEBSOCKET_PROTOCOL))
            .map(str::to_owned)
            .collect();
        let mut extensions = Vec::new();
        for value in head.values(&header::SEC_WEBSOCKET_EXTENSIONS) {
            let value = visible_str(value).ok_or(HandshakeError::InvalidExtensions)?;
            let offers = parse_extensions(value).map_err(|_| HandshakeError::InvalidExtensions)?;
            if extensions.is_empty() {
                extensions = offers;
            } else {
                extensions.extend(offers);
            }
        }
        Ok((protocols, extensions))
    }
}

/// How the application accepts a request: the subprotocol chosen and extra response headers.
#[derive(Clone, Debug)]
pub struct Accept {
    /// The subprotocol, which must be one the client offered.
    pub protocol: Option<String>,
    /// Extra headers for the `101` response (e.g. `Set-Cookie`).
    pub headers: HeaderMap,
    /// Accept an offered extension such as permessage-deflate when the config enables it.
    /// Default true; false declines compression for this connection.
    pub compression: bool,
}

impl Default for Accept {
    fn default() -> Self {
        Self {
            protocol: None,
            headers: HeaderMap::new(),
            compression: true,
        }
    }
}

impl Accept {
    /// Accept with no subprotocol and no extra headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decline compression for this connection even if the config enables it.
    pub fn without_compression(mut self) -> Self {
        self.compression = false;
        self
    }

    /// Choose a subprotocol.
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }

    /// Add a response header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }
}

/// How the application rejects a request: status, headers and body of the HTTP response.
#[derive(Clone, Debug)]
pub struct Reject {
    /// The response status.
    pub status: StatusCode,
    /// Extra response headers.
    pub headers: HeaderMap,
    /// The response body (sent with a `Content-Length`).
    pub body: Bytes,
}

impl Reject {
    /// A rejection with this status and an empty body.
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// Add a response header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The response a server answers a failed handshake with (`None` for errors that are not
    /// the request's fault, such as the transport closing): its status, headers such as
    /// `Sec-WebSocket-Version: 13` for a 426, and the error text as the body.
    pub fn for_error(error: &HandshakeError) -> Option<Self> {
        let mut reject = Self::new(error.status()?).body(error.to_string());
        for (name, value) in error.response_headers() {
            reject.headers.append(name, value);
        }
        Some(reject)
    }

    /// The whole response on the wire. The connection is closed after it.
    pub(crate) fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(128 + self.body.len());
        write_status_line(&mut out, self.status);
        out.put_slice(b"Connection: close\r\n");
        write_headers(&mut out, &self.headers);
        if !self.body.is_empty() && !self.headers.contains_key(header::CONTENT_TYPE) {
            out.put_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
        }
        out.put_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.put_slice(&self.body);
        out.freeze()
    }
}

/// What an opening handshake agreed on: the subprotocol and the extensions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Negotiated {
    protocol: Option<String>,
    #[cfg(feature = "deflate")]
    deflate: Option<(crate::deflate::DeflateParams, String)>,
}

impl Negotiated {
    /// The agreed subprotocol.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The agreed permessage-deflate parameters.
    #[cfg(feature = "deflate")]
    pub fn deflate(&self) -> Option<crate::deflate::DeflateParams> {
        self.deflate.as_ref().map(|(params, _)| *params)
    }

    /// The `Sec-WebSocket-Extensions` value of the response, if an extension was agreed.
    pub fn extensions_header(&self) -> Option<&str> {
        #[cfg(feature = "deflate")]
        return self.deflate.as_ref().map(|(_, header)| header.as_str());
        #[cfg(not(feature = "deflate"))]
        None
    }

    /// What a client's handshake agreed on.
    pub(crate) fn client(
        protocol: Option<String>,
        #[cfg(feature = "deflate")] deflate: Option<crate::deflate::DeflateParams>,
    ) -> Self {
        Self {
            protocol,
            #[cfg(feature = "deflate")]
            deflate: deflate.map(|params| (params, params.to_header_value())),
        }
    }
}

/// The `101` response on the wire.
pub(crate) fn accept_bytes(request: &Request, accept: &Accept, negotiated: &Negotiated) -> Bytes {
    const HEAD: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Accept: ";
    // Sized up front (the fixed part, the key, each optional header) so the buffer is
    // allocated once.
    let protocol_len = accept.protocol.as_ref().map_or(0, |p| 26 + p.len());
    let extensions_len = negotiated.extensions_header().map_or(0, |e| 28 + e.len());
    let headers_len: usize = accept
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let mut out = BytesMut::with_capacity(HEAD.len() + 28 + 4 + protocol_len + extensions_len + headers_len);
    out.put_slice(HEAD);
    out.put_slice(&accept_key_bytes(request.key().as_bytes()));
    out.put_slice(b"\r\n");
    if let Some(protocol) = &accept.protocol {
        out.put_slice(b"Sec-WebSocket-Protocol: ");
        out.put_slice(protocol.as_bytes());
        out.put_slice(b"\r\n");
    }
    if let Some(extensions) = negotiated.extensions_header() {
        out.put_slice(b"Sec-WebSocket-Extensions: ");
        out.put_slice(extensions.as_bytes());
        out.put_slice(b"\r\n");
    }
    write_headers(&mut out, &accept.headers);
    out.put_slice(b"\r\n");
    out.freeze()
}

/// Accumulates and parses the upgrade request.
#[derive(Debug, Default)]
pub(crate) struct RequestParser {
    head: HeadBuffer,
}

impl RequestParser {
    /// Feeds bytes; once the head is complete, returns the validated request and the bytes that
    /// followed it (frames a client sent without waiting for the response).
    pub(crate) fn push(&mut self, data: &[u8], max_size: usize) -> Result<Option<(Request, Bytes)>, HandshakeError> {
        if self.head.is_empty() {
            // The usual case: the whole head in one read. Parse it where it lies instead of
            // buffering it first.
            if let Some(head_len) = find_head_end(data, 0) {
                let (head, trailing) = data.split_at_checked(head_len).ok_or(HandshakeError::RequestTooLarge)?;
                if head_len > max_size {
                    return Err(HandshakeError::RequestTooLarge);
                }
                return Ok(Some((parse_head(head)?, Bytes::copy_from_slice(trailing))));
            }
        }
        let Some(head_len) = self
            .head
            .push(data, max_size)
            .map_err(|_| HandshakeError::RequestTooLarge)?
        else {
            return Ok(None);
        };
        let bytes = self.head.bytes();
        let head = bytes.get(..head_len).ok_or(HandshakeError::RequestTooLarge)?;
        let trailing = Bytes::copy_from_slice(bytes.get(head_len..).unwrap_or_default());
        Ok(Some((parse_head(head)?, trailing)))
    }
}

/// Parses and validates a complete request head (ending with its blank line).
fn parse_head(head: &[u8]) -> Result<Request, HandshakeError> {
    Request::validate(Head::Raw(RawHead::parse(head)?))
}

fn is_valid_key(key: &[u8]) -> bool {
    let mut decoded = [0u8; 18];
    matches!(
        base64::engine::general_purpose::STANDARD.decode_slice(key.trim_ascii(), &mut decoded),
        Ok(16)
    )
}

fn write_status_line(out: &mut BytesMut, status: StatusCode) {
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.put_slice(b"\r\n");
}

fn write_headers(out: &mut BytesMut, headers: &HeaderMap) {
    for (name, value) in headers {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
}

/// Whether a header may be set by the application on a handshake message; the engine owns the
/// ones that carry the protocol.
pub(crate) fn is_engine_header(name: &HeaderName) -> bool {
    [
        header::UPGRADE,
        header::CONNECTION,
        header::SEC_WEBSOCKET_KEY,
        header::SEC_WEBSOCKET_ACCEPT,
        header::SEC_WEBSOCKET_VERSION,
        header::SEC_WEBSOCKET_PROTOCOL,
        header::SEC_WEBSOCKET_EXTENSIONS,
        header::CONTENT_LENGTH,
    ]
    .contains(name)
}

/// Whether `protocol` may appear in `Sec-WebSocket-Protocol` (§4.1: a token).
pub(crate) fn is_valid_protocol(protocol: &str) -> bool {
    is_token(protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Connection: keep-alive, Upgrade\r\n\
        Pragma: no-cache\r\n\
        Upgrade: WebSocket\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Protocol: v2\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

    fn parse(bytes: &[u8]) -> Result<Option<(Request, Bytes)>, HandshakeError> {
        RequestParser::default().push(bytes, 8192)
    }

    #[test]
    fn parses_a_browser_request_one_byte_at_a_time() {
        let mut parser = RequestParser::default();
        let mut wire = CHROME.to_vec();
        wire.extend_from_slice(b"\x81\x80abcd");
        let mut result = None;
        for (i, b) in wire.iter().enumerate() {
            if let Some(done) = parser.push(&[*b], 8192).unwrap() {
                assert_eq!(i, CHROME.len() - 1, "complete exactly at the blank line");
                result = Some(done);
                break;
            }
        }
        let (request, trailing) = result.unwrap();
        assert!(trailing.is_empty());
        assert_eq!(request.path(), "/chat");
        assert_eq!(request.query(), Some("room=1"));
        assert_eq!(request.origin(), Some("http://example.com"));
        assert_eq!(request.protocols(), ["chat", "superchat", "v2"]);
        assert_eq!(request.extensions()[0].name, "permessage-deflate");
        assert_eq!(request.key(), "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn bytes_after_the_head_carry_over() {
        let mut wire = CHROME.to_vec();
        wire.extend_from_slice(b"\x81\x80abcd");
        let (_, trailing) = parse(&wire).unwrap().unwrap();
        assert_eq!(&trailing[..], b"\x81\x80abcd");
    }

    #[test]
    fn validation_failures_carry_their_status() {
        let cases: &[(&[u8], &[u8], u16)] = &[
            (b"GET /chat?room=1 HTTP/1.1", b"POST /chat HTTP/1.1", 405),
            (b"GET /chat?room=1 HTTP/1.1", b"GET /chat HTTP/1.0", 400),
            (b"Host: server.example.com\r\n", b"", 400),
            (b"Upgrade: WebSocket\r\n", b"", 426),
            (b"Upgrade: WebSocket\r\n", b"Upgrade: h2c\r\n", 426),
            (b"keep-alive, Upgrade", b"keep-alive", 400),
            (b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8", 426),
            (b"Sec-WebSocket-Version: 13\r\n", b"", 426),
            (b"dGhlIHNhbXBsZSBub25jZQ==", b"dGhlIHNhbXBsZSBub25jZQ", 400),
            (b"dGhlIHNhbXBsZSBub25jZQ==", b"AAAAAAAAAAAAAAAAAAAAAAAA", 400),
            (b"client_max_window_bits", b"client_max_window_bits=\"1 5\"", 400),
            (b"Pragma: no-cache", b"Pragma no-cache", 400),
        ];
        for (from, to, status) in cases {
            let wire = replace(CHROME, from, to);
            let error = parse(&wire).unwrap_err();
            assert_eq!(error.status().map(|s| s.as_u16()), Some(*status), "{error}");
        }
        let error = parse(&replace(
            CHROME,
            b"Sec-WebSocket-Version: 13",
            b"Sec-WebSocket-Version: 8",
        ))
        .unwrap_err();
        assert_eq!(error.response_headers()[0].0, header::SEC_WEBSOCKET_VERSION);
    }

    #[test]
    fn head_size_is_capped_with_431() {
        let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
        huge.resize(9000, b'a');
        let error = parse(&huge).unwrap_err();
        assert_eq!(error.status(), Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..100 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many).unwrap_err(), HandshakeError::RequestTooLarge);
    }

    #[test]
    fn response_bytes() {
        let (request, _) = parse(CHROME).unwrap().unwrap();
        let accept = Accept::new().protocol("chat");
        let config = Config::default();
        let negotiated = request.negotiate(&accept, &config).unwrap();
        assert!(request.negotiate(&Accept::new().protocol("nope"), &config).is_err());
        let text = String::from_utf8(accept_bytes(&request, &accept, &negotiated).to_vec()).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
        );
        let (http, _) = request.response(&accept, &config).unwrap();
        assert_eq!(
            http.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let reject = Reject::new(StatusCode::FORBIDDEN).body("no");
        let text = String::from_utf8(reject.to_bytes().to_vec()).unwrap();
        assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
        assert!(text.ends_with("Content-Length: 2\r\n\r\nno"), "{text}");
    }

    #[test]
    fn from_http_applies_the_same_rules() {
        let request = http::Request::builder()
            .uri("/ws")
            .header("host", "x")
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .unwrap();
        assert!(Request::from_http(&request).is_ok());
        let mut post = request;
        *post.method_mut() = Method::POST;
        assert!(matches!(
            Request::from_http(&post),
            Err(HandshakeError::MethodNotAllowed(_))
        ));
    }

    fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = haystack.windows(from.len()).position(|w| w == from).unwrap();
        [&haystack[..at], to, &haystack[at + from.len()..]].concat()
    }
}
