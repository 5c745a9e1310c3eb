//! A parsed request head kept as the bytes it arrived in, with the header map built only if
//! the application asks for it.
//!
//! Building an `http::HeaderMap` (hashing and inserting every header, one shared slice per
//! value) was most of a handshake's cost, and the handshake itself needs only a handful of
//! lookups; a linear scan over a dozen fields answers those for less.

use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Uri, Version, header};

use super::HandshakeError;
use super::head::http_version;

/// Headers beyond this count are answered with 431, like an oversized head.
const MAX_HEADERS: usize = 64;

/// A request head: method, target and version parsed, headers as ranges of `head`.
#[derive(Debug)]
pub(crate) struct RawHead {
    head: Bytes,
    method: Method,
    uri: Uri,
    version: Version,
    fields: Vec<Field>,
    /// The `http` form, built on first use.
    http: OnceLock<http::Request<()>>,
}

/// One header: byte ranges of its name and value in the head.
#[derive(Clone, Copy, Debug)]
struct Field {
    name: (usize, usize),
    value: (usize, usize),
    /// Index in [`KNOWN`] plus one, or 0.
    kind: u8,
}

/// The headers the handshake looks up, recognised once per field while parsing so that each
/// lookup compares a byte per field instead of a name.
static KNOWN: [HeaderName; 8] = [
    header::HOST,
    header::UPGRADE,
    header::CONNECTION,
    header::ORIGIN,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_PROTOCOL,
    header::SEC_WEBSOCKET_EXTENSIONS,
];

/// The [`Field::kind`] of a raw header name.
fn kind_of(name: &[u8]) -> u8 {
    KNOWN
        .iter()
        .position(|known| known.as_str().as_bytes().eq_ignore_ascii_case(name))
        .map_or(0, |at| at as u8 + 1)
}

impl RawHead {
    /// Parses a complete request head (ending with its blank line).
    ///
    /// httparse accepts exactly the header names (RFC 9110 tokens) and values (HTAB, visible
    /// ASCII and obs-text, no other control bytes) that `http::HeaderName` and `HeaderValue`
    /// accept, so keeping the raw fields rejects the same heads the header map did.
    pub(crate) fn parse(head: &[u8]) -> Result<Self, HandshakeError> {
        let malformed = |what: &str| HandshakeError::MalformedRequest(what.to_owned());
        // One copy of the head, which the target and the headers then refer to.
        let head = Bytes::copy_from_slice(head);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(malformed("incomplete request head")),
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::RequestTooLarge),
            Err(e) => return Err(HandshakeError::MalformedRequest(e.to_string())),
        }
        let method = parsed.method.unwrap_or_default();
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| malformed("invalid method"))?;
        let uri = range_in(&head, parsed.path.unwrap_or_default().as_bytes())
            .and_then(|(start, end)| Uri::from_maybe_shared(head.slice(start..end)).ok())
            .ok_or_else(|| malformed("invalid request target"))?;
        let version = http_version(parsed.version);
        let mut fields = Vec::with_capacity(parsed.headers.len());
        for h in parsed.headers.iter() {
            let name = range_in(&head, h.name.as_bytes());
            let value = range_in(&head, h.value);
            let (Some(name), Some(value)) = (name, value) else {
                return Err(malformed("invalid header"));
            };
            let kind = kind_of(h.name.as_bytes());
            fields.push(Field { name, value, kind });
        }
        Ok(Self {
            head,
            method,
            uri,
            version,
            fields,
            http: OnceLock::new(),
        })
    }

    pub(crate) fn method(&self) -> &Method {
        &self.method
    }

    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }

    pub(crate) fn version(&self) -> Version {
        self.version
    }

    /// The values of every `name` header, in order.
    pub(crate) fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        let kind = KNOWN.iter().position(|known| known == name).map(|at| at as u8 + 1);
        let name = name.as_str().as_bytes();
        self.fields
            .iter()
            .filter(move |f| match kind {
                Some(kind) => f.kind == kind,
                None => self.slice(f.name).eq_ignore_ascii_case(name),
            })
            .map(|f| self.slice(f.value))
    }

    /// The head as an `http::Request`, built the first time it is asked for.
    pub(crate) fn http(&self) -> &http::Request<()> {
        self.http.get_or_init(|| {
            let mut http = http::Request::new(());
            *http.method_mut() = self.method.clone();
            *http.uri_mut() = self.uri.clone();
            *http.version_mut() = self.version;
            let headers = http.headers_mut();
            headers.reserve(self.fields.len());
            for f in &self.fields {
                // Both always succeed: httparse checked the same grammar (see `parse`).
                let name = HeaderName::from_bytes(self.slice(f.name));
                let value = HeaderValue::from_maybe_shared(self.head.slice(f.value.0..f.value.1));
                if let (Ok(name), Ok(value)) = (name, value) {
                    headers.append(name, value);
                }
            }
            http
        })
    }

    fn slice(&self, (start, end): (usize, usize)) -> &[u8] {
        self.head.get(start..end).unwrap_or_default()
    }
}

/// The byte range of `part`, a slice a parser returned from `whole`, within `whole`; `None` if
/// it does not lie within (which a parser returning subslices never does).
fn range_in(whole: &[u8], part: &[u8]) -> Option<(usize, usize)> {
    if part.is_empty() {
        return Some((0, 0));
    }
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_lazy_map_agree() {
        let wire = b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\nEmpty:\r\nHOST: y\r\n\r\n";
        let head = RawHead::parse(wire).unwrap();
        assert_eq!(head.method(), Method::GET);
        assert_eq!(head.uri().path(), "/a");
        assert_eq!(head.version(), Version::HTTP_11);
        let two = HeaderName::from_static("x-two");
        assert_eq!(head.values(&two).collect::<Vec<_>>(), [b"1", b"2"]);
        assert_eq!(head.values(&header::HOST).collect::<Vec<_>>(), [b"x", b"y"]);
        assert_eq!(head.values(&header::ORIGIN).count(), 0);
        let http = head.http();
        assert_eq!(http.headers().len(), 5);
        assert_eq!(http.headers().get_all("x-two").iter().count(), 2);
        assert_eq!(http.headers()["empty"], "");
        assert_eq!(http.uri().query(), Some("b=c"));
    }

    #[test]
    fn range_in_accepts_only_inner_slices() {
        let whole = b"hello world";
        assert_eq!(range_in(whole, &whole[6..]), Some((6, 11)));
        assert_eq!(range_in(whole, b""), Some((0, 0)));
        let other = b"elsewhere".to_vec();
        assert_eq!(range_in(whole, &other), None);
    }
}
