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
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Whether a `name` header lists `token`, compared case-insensitively.
pub(crate) fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    header_tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// Whether `s` is a non-empty RFC 9110 token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

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
        Ok(String::from_utf8_lossy(token).into_owned())
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
