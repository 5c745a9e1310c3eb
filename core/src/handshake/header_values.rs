//! Comma-separated header values and the `Sec-WebSocket-Extensions` grammar (RFC 6455 §9.1).

use http::HeaderMap;
use http::header::HeaderName;

/// One extension offer (or acceptance) from a `Sec-WebSocket-Extensions` header, such as
/// `permessage-deflate; client_max_window_bits`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order, with their value (unquoted) if one was given.
    pub params: Vec<(String, Option<String>)>,
}

/// A `Sec-WebSocket-Extensions` value that does not follow the grammar of RFC 6455 §9.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed Sec-WebSocket-Extensions header")]
pub struct InvalidExtensionHeader;

/// Parses a `Sec-WebSocket-Extensions` value into its offers, in order.
///
/// Values may be tokens or quoted strings (§9.1 requires a quoted value to be a token once
/// unquoted); anything else is an error. Empty list elements are skipped as RFC 9110 §5.6.1
/// asks of recipients.
pub fn parse_extensions(value: &str) -> Result<Vec<ExtensionOffer>, InvalidExtensionHeader> {
    let mut lexer = Lexer { rest: value.as_bytes() };
    let mut offers = Vec::new();
    loop {
        lexer.skip_ws();
        if lexer.eat(b',') {
            continue;
        }
        if lexer.rest.is_empty() {
            return Ok(offers);
        }
        let name = lexer.token()?;
        let mut params = Vec::new();
        loop {
            lexer.skip_ws();
            if !lexer.eat(b';') {
                break;
            }
            lexer.skip_ws();
            let param = lexer.token()?;
            lexer.skip_ws();
            let value = if lexer.eat(b'=') {
                lexer.skip_ws();
                Some(if lexer.rest.first() == Some(&b'"') {
                    lexer.quoted_token()?
                } else {
                    lexer.token()?
                })
            } else {
                None
            };
            params.push((param, value));
        }
        lexer.skip_ws();
        if !lexer.rest.is_empty() && !lexer.eat(b',') {
            return Err(InvalidExtensionHeader);
        }
        offers.push(ExtensionOffer { name, params });
    }
}

/// Every comma-separated element of every `name` header, trimmed, empty ones skipped.
pub(crate) fn header_tokens<'a>(headers: &'a HeaderMap, name: &'a HeaderName) -> impl Iterator<Item = &'a str> {
    tokens(headers.get_all(name).iter().map(http::HeaderValue::as_bytes))
}

/// Whether a `name` header lists `token`, compared case-insensitively.
pub(crate) fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    header_tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// Every comma-separated element of the header `values`, trimmed, empty ones skipped; values
/// that are not visible ASCII are skipped whole, as `HeaderValue::to_str` fails on them.
pub(crate) fn tokens<'a>(values: impl Iterator<Item = &'a [u8]>) -> impl Iterator<Item = &'a str> {
    values
        .filter_map(visible_str)
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// A header value as text if it is visible ASCII and tabs, like `HeaderValue::to_str`.
pub(crate) fn visible_str(value: &[u8]) -> Option<&str> {
    // UTF-8 first: it is fast on ASCII and rejects most of what is not visible ASCII.
    let text = std::str::from_utf8(value).ok()?;
    text.bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        .then_some(text)
}

/// Whether `s` is a non-empty RFC 9110 token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// RFC 9110 `tchar`, as a table: the extension lexer asks once per byte.
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        b += 1;
    }
    table
};

struct Lexer<'a> {
    rest: &'a [u8],
}

impl Lexer<'_> {
    fn skip_ws(&mut self) {
        while let [b' ' | b'\t', tail @ ..] = self.rest {
            self.rest = tail;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        match self.rest {
            [first, tail @ ..] if *first == byte => {
                self.rest = tail;
                true
            }
            _ => false,
        }
    }

    fn token(&mut self) -> Result<String, InvalidExtensionHeader> {
        let len = self.rest.iter().take_while(|&&b| is_tchar(b)).count();
        if len == 0 {
            return Err(InvalidExtensionHeader);
        }
        let (token, tail) = self.rest.split_at(len);
        self.rest = tail;
        // Token bytes are ASCII, so this always succeeds.
        std::str::from_utf8(token)
            .map(str::to_owned)
            .map_err(|_| InvalidExtensionHeader)
    }

    fn quoted_token(&mut self) -> Result<String, InvalidExtensionHeader> {
        if !self.eat(b'"') {
            return Err(InvalidExtensionHeader);
        }
        let mut value = Vec::new();
        loop {
            match self.rest {
                [b'"', tail @ ..] => {
                    self.rest = tail;
                    break;
                }
                [b'\\', escaped, tail @ ..] => {
                    value.push(*escaped);
                    self.rest = tail;
                }
                [b, tail @ ..] => {
                    value.push(*b);
                    self.rest = tail;
                }
                [] => return Err(InvalidExtensionHeader),
            }
        }
        let value = String::from_utf8(value).map_err(|_| InvalidExtensionHeader)?;
        if is_token(&value) {
            Ok(value)
        } else {
            Err(InvalidExtensionHeader)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(name: &str, params: &[(&str, Option<&str>)]) -> ExtensionOffer {
        ExtensionOffer {
            name: name.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        }
    }

    #[test]
    fn parses_browser_and_rfc_offers() {
        assert_eq!(
            parse_extensions("permessage-deflate; client_max_window_bits").unwrap(),
            vec![offer("permessage-deflate", &[("client_max_window_bits", None)])]
        );
        assert_eq!(
            parse_extensions(
                "permessage-deflate; client_max_window_bits=\"10\" ;server_no_context_takeover, \
                 permessage-deflate , x-foo"
            )
            .unwrap(),
            vec![
                offer(
                    "permessage-deflate",
                    &[
                        ("client_max_window_bits", Some("10")),
                        ("server_no_context_takeover", None)
                    ]
                ),
                offer("permessage-deflate", &[]),
                offer("x-foo", &[]),
            ]
        );
        assert_eq!(parse_extensions("").unwrap(), vec![]);
        assert_eq!(parse_extensions(" , a ,").unwrap(), vec![offer("a", &[])]);
    }

    #[test]
    fn tchar_table_matches_the_grammar() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), expected, "{b}");
        }
    }

    #[test]
    fn visible_str_matches_header_value_to_str() {
        for b in 0..=255u8 {
            let bytes = [b'a', b];
            let ours = visible_str(&bytes);
            let theirs = http::HeaderValue::from_bytes(&bytes).ok();
            if let Some(value) = theirs {
                assert_eq!(ours, value.to_str().ok(), "{b}");
            }
        }
    }

    #[test]
    fn rejects_malformed_offers() {
        for bad in [
            "a;",
            "a; =1",
            "a; b=",
            "a; b=\"1 2\"",
            "a; b=\"1",
            "a b",
            "a; b=1 2",
            "\"a\"",
        ] {
            assert!(parse_extensions(bad).is_err(), "{bad:?}");
        }
    }
}
