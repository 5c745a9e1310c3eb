//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use std::fmt;

/// A close status code (§7.4). A newtype so that any received value can be represented.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: an endpoint is going away (server shutdown, page navigation, idle timeout).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no status code was present. Never sent on the wire; reported locally.
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: the connection closed without a close frame. Never sent on the wire.
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: message data inconsistent with its type (invalid UTF-8 in a text message).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message was too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting; a client may reconnect (IANA registry).
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: the service is overloaded; try again later (IANA registry).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: a gateway or proxy got an invalid response from the upstream server (IANA registry).
    pub const BAD_GATEWAY: Self = Self(1014);
    /// 1015: the TLS handshake failed. Never sent on the wire.
    pub const TLS_FAILURE: Self = Self(1015);

    /// Whether a peer may put this code in a close frame (§7.4.1, §7.4.2): 1000–1003,
    /// 1007–1011, 1012–1014 (registered with IANA after RFC 6455, and sent by browsers, Node
    /// `ws` and Python `websockets`), and the 3000–4999 ranges for libraries, frameworks and
    /// applications.
    ///
    /// ```
    /// use wsengine::CloseCode;
    /// assert!(CloseCode::TRY_AGAIN_LATER.is_valid_on_wire());
    /// assert!(CloseCode::from(4000).is_valid_on_wire());
    /// assert!(!CloseCode::ABNORMAL.is_valid_on_wire(), "1006 is reported locally, never sent");
    /// ```
    pub const fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Any number converts, so an API taking `impl Into<CloseCode>` accepts `1000` as well as
/// [`CloseCode::NORMAL`]; whether the code may be sent is checked where it is sent.
///
/// ```
/// use wsengine::CloseCode;
/// assert_eq!(CloseCode::from(1000), CloseCode::NORMAL);
/// let code: CloseCode = 4001.into();
/// assert_eq!(u16::from(code), 4001);
/// ```
impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

/// The longest close reason that fits a control frame: 125 bytes less the 2-byte code.
pub const MAX_CLOSE_REASON_LEN: usize = 123;

/// Why a received close payload is unacceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClosePayloadError {
    /// A one-byte payload cannot hold a status code (§5.5.1).
    #[error("close frame payload of one byte")]
    OneByte,
    /// The status code is not one a peer may send.
    #[error("close code {0} is not allowed on the wire")]
    InvalidCode(u16),
    /// The reason is not UTF-8 (§5.5.1); answered with 1007.
    #[error("close reason is not valid UTF-8")]
    InvalidReason,
}

/// Parses a received close frame's payload into its code and reason; `None` for an empty one.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(CloseCode, &str)>, ClosePayloadError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ClosePayloadError::OneByte),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_on_wire() {
                return Err(ClosePayloadError::InvalidCode(code.0));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| ClosePayloadError::InvalidReason)?;
            Ok(Some((code, reason)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_validity_follows_the_registry() {
        let valid: Vec<u16> = (0..=u16::MAX).filter(|&c| CloseCode(c).is_valid_on_wire()).collect();
        assert_eq!(valid.len(), 4 + 8 + 2000);
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert!(!CloseCode(code).is_valid_on_wire(), "{code}");
        }
        for code in [
            CloseCode::SERVICE_RESTART,
            CloseCode::TRY_AGAIN_LATER,
            CloseCode::BAD_GATEWAY,
        ] {
            assert!(code.is_valid_on_wire(), "{code}");
            assert_eq!(parse_close_payload(&code.0.to_be_bytes()), Ok(Some((code, ""))));
        }
    }

    #[test]
    fn payloads() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
        assert_eq!(parse_close_payload(&[3]), Err(ClosePayloadError::OneByte));
        assert_eq!(parse_close_payload(&[0x03, 0xE8]), Ok(Some((CloseCode::NORMAL, ""))));
        assert_eq!(
            parse_close_payload(&[0x0F, 0xA0, b'h', b'i']),
            Ok(Some((CloseCode(4000), "hi")))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xED]),
            Err(ClosePayloadError::InvalidCode(1005))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xE8, 0xFF]),
            Err(ClosePayloadError::InvalidReason)
        );
    }
}
