//! Messages as the application sees them.

use std::{fmt, ops::Deref};

use bytes::Bytes;

/// Bytes that are known to be UTF-8: the payload of a text message.
///
/// Cloning is cheap (a reference count), and the bytes can be shared with other messages.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// An empty string.
    pub const fn new() -> Self {
        Self(Bytes::new())
    }

    /// Wraps a static string without copying.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks or inherits UTF-8 validity.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Unwraps the underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Wraps bytes already known to be UTF-8 (checked by the caller, e.g. the receive path).
    pub(crate) fn from_bytes_unchecked(bytes: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Self(bytes)
    }
}

impl Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = std::str::Utf8Error;
    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Self(bytes))
    }
}

impl TryFrom<Vec<u8>> for Utf8Bytes {
    type Error = std::string::FromUtf8Error;
    fn try_from(bytes: Vec<u8>) -> Result<Self, Self::Error> {
        Ok(String::from_utf8(bytes)?.into())
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Whether a message is text or binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text.
    Text,
    /// Arbitrary bytes.
    Binary,
}

/// A complete data message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// A text message.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// Text or binary.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Text(_) => MessageKind::Text,
            Self::Binary(_) => MessageKind::Binary,
        }
    }

    /// The payload bytes, whatever the kind.
    pub fn payload(&self) -> &Bytes {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(bytes) => bytes,
        }
    }

    /// Unwraps the payload bytes, whatever the kind.
    pub fn into_payload(self) -> Bytes {
        match self {
            Self::Text(text) => text.into_bytes(),
            Self::Binary(bytes) => bytes,
        }
    }

    /// Whether this is a text message.
    ///
    /// ```
    /// use wsengine::Message;
    /// assert!(Message::from("hi").is_text());
    /// assert!(!Message::from(vec![1u8, 2]).is_text());
    /// ```
    pub fn is_text(&self) -> bool {
        matches!(self, Self::Text(_))
    }

    /// Whether this is a binary message.
    ///
    /// ```
    /// use wsengine::Message;
    /// assert!(Message::from(vec![1u8, 2]).is_binary());
    /// assert!(!Message::from("hi").is_binary());
    /// ```
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Binary(_))
    }

    /// The text, if this is a text message.
    ///
    /// ```
    /// use wsengine::Message;
    /// let message = Message::from("hello");
    /// assert_eq!(message.as_text(), Some("hello"));
    /// assert_eq!(Message::from(vec![0xFFu8]).as_text(), None);
    /// ```
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text.as_str()),
            Self::Binary(_) => None,
        }
    }

    /// Takes the text out, if this is a text message (no copy: it shares the received bytes).
    ///
    /// ```
    /// use wsengine::Message;
    /// let text = Message::from("hello").into_text().unwrap();
    /// assert_eq!(text, "hello");
    /// assert!(Message::from(vec![1u8]).into_text().is_none());
    /// ```
    pub fn into_text(self) -> Option<Utf8Bytes> {
        match self {
            Self::Text(text) => Some(text),
            Self::Binary(_) => None,
        }
    }

    /// The bytes, if this is a binary message.
    ///
    /// ```
    /// use wsengine::Message;
    /// assert_eq!(Message::from(vec![1u8, 2]).as_binary().map(|b| &b[..]), Some(&[1u8, 2][..]));
    /// assert!(Message::from("hi").as_binary().is_none());
    /// ```
    pub fn as_binary(&self) -> Option<&Bytes> {
        match self {
            Self::Text(_) => None,
            Self::Binary(bytes) => Some(bytes),
        }
    }

    /// Takes the bytes out, if this is a binary message. For the payload of either kind, see
    /// [`into_payload`](Self::into_payload).
    ///
    /// ```
    /// use wsengine::Message;
    /// let bytes = Message::from(vec![1u8, 2]).into_binary().unwrap();
    /// assert_eq!(&bytes[..], &[1, 2]);
    /// assert!(Message::from("hi").into_binary().is_none());
    /// ```
    pub fn into_binary(self) -> Option<Bytes> {
        match self {
            Self::Text(_) => None,
            Self::Binary(bytes) => Some(bytes),
        }
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.payload().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.payload().is_empty()
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Self::Text(s.into())
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Self::Text(s.into())
    }
}

impl From<Utf8Bytes> for Message {
    fn from(s: Utf8Bytes) -> Self {
        Self::Text(s)
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Self::Binary(b)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Self::Binary(b.into())
    }
}

impl From<&[u8]> for Message {
    fn from(b: &[u8]) -> Self {
        Self::Binary(Bytes::copy_from_slice(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_bytes_checks_on_the_way_in() {
        assert!(Utf8Bytes::try_from(Bytes::from_static(b"ok \xE2\x9C\x93")).is_ok());
        assert!(Utf8Bytes::try_from(Bytes::from_static(b"\xFF")).is_err());
        assert!(Utf8Bytes::try_from(vec![0xC0, 0x80]).is_err());
        let text = Utf8Bytes::from("héllo");
        assert_eq!(text, "héllo");
        assert_eq!(text.len(), 6);
        assert_eq!(Message::from("hi").kind(), MessageKind::Text);
        assert_eq!(Message::from(vec![1u8]).into_payload(), Bytes::from_static(&[1]));
    }

    #[test]
    fn accessors_match_the_kind() {
        let text = Message::from("héllo");
        assert!(text.is_text() && !text.is_binary());
        assert_eq!(text.as_text(), Some("héllo"));
        assert_eq!(text.as_binary(), None);
        let shared = text.payload().as_ptr();
        let taken = text.into_text().unwrap();
        assert_eq!(taken.as_bytes().as_ptr(), shared, "no copy");
        let binary = Message::from(vec![0xFFu8, 0]);
        assert!(binary.is_binary() && !binary.is_text());
        assert_eq!(binary.as_text(), None);
        assert_eq!(binary.as_binary().map(|b| b.len()), Some(2));
        assert_eq!(binary.clone().into_text(), None);
        assert_eq!(binary.into_binary(), Some(Bytes::from_static(&[0xFF, 0])));
    }
}
