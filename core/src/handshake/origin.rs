//! Checking the `Origin` of browser requests against allowed patterns.

use super::{Reject, Request};
use http::StatusCode;

/// Which origins may open a WebSocket, for servers that serve browsers.
///
/// Browsers send `Origin` on every WebSocket request, so checking it stops other sites' pages
/// from using a visitor's cookies to open connections (cross-site WebSocket hijacking).
/// Patterns match the whole origin case-insensitively; `*` matches any run of characters
/// except `/`, so `https://*.example.com` admits `https://chat.example.com` but not
/// `https://example.com`, and `http://localhost:*` admits any port. A lone `*` admits every
/// origin.
///
/// ```
/// use wsengine::handshake::OriginPolicy;
/// let policy = OriginPolicy::new(["https://*.example.com", "http://localhost:*"]);
/// assert!(policy.is_allowed(Some("https://chat.example.com")));
/// assert!(policy.is_allowed(Some("http://localhost:3000")));
/// assert!(!policy.is_allowed(Some("https://evil.com")));
/// assert!(policy.is_allowed(None)); // non-browser clients send no Origin
/// ```
#[derive(Clone, Debug)]
pub struct OriginPolicy {
    patterns: Vec<String>,
    allow_missing: bool,
}

impl OriginPolicy {
    /// A policy admitting origins that match any of `patterns`, and requests with no `Origin`.
    pub fn new<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            patterns: patterns.into_iter().map(|p| p.as_ref().to_ascii_lowercase()).collect(),
            allow_missing: true,
        }
    }

    /// Whether requests without an `Origin` header (non-browser clients) are admitted.
    pub fn allow_missing(mut self, allow: bool) -> Self {
        self.allow_missing = allow;
        self
    }

    /// Whether `origin` (the header's value, if any) is admitted.
    pub fn is_allowed(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return self.allow_missing;
        };
        let origin = origin.trim().to_ascii_lowercase();
        self.patterns
            .iter()
            .any(|pattern| glob_match(pattern.as_bytes(), origin.as_bytes()))
    }

    /// Checks a request, giving the 403 rejection to answer with when it is not admitted.
    #[allow(clippy::result_large_err)] // once per connection, and the caller sends it on
    pub fn check(&self, request: &Request) -> Result<(), Reject> {
        if self.is_allowed(request.origin()) {
            Ok(())
        } else {
            Err(Reject::new(StatusCode::FORBIDDEN).body("origin not allowed"))
        }
    }
}

/// Matches `text` against `pattern`, where `*` matches any run of non-`/` bytes; a lone `*`
/// matches anything. Iterative with backtracking to the last star: linear in practice.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    if pattern == b"*" {
        return true;
    }
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last star swallow one more byte, unless that byte is a '/'.
                Some((sp, st)) if text[st] != b'/' => {
                    star = Some((sp, st + 1));
                    p = sp + 1;
                    t = st + 1;
                }
                _ => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(glob_match(b"https://*.example.com", b"https://a.b.example.com"));
        assert!(!glob_match(b"https://*.example.com", b"https://example.com"));
        assert!(!glob_match(b"https://*.example.com", b"https://evil.com/.example.com"));
        assert!(!glob_match(b"https://*.example.com", b"https://a.example.com.evil.com"));
        assert!(glob_match(b"http://localhost:*", b"http://localhost:8080"));
        assert!(glob_match(b"*", b"null"));
        assert!(glob_match(b"https://exact.org", b"https://exact.org"));
        assert!(!glob_match(b"https://exact.org", b"https://exact.org:1"));
        assert!(glob_match(b"*://*", b"https://x"));
    }

    #[test]
    fn policy() {
        let policy = OriginPolicy::new(["HTTPS://App.Example.com"]).allow_missing(false);
        assert!(policy.is_allowed(Some("https://app.example.COM")));
        assert!(!policy.is_allowed(None));
        assert!(!policy.is_allowed(Some("https://app.example.com.evil")));
    }
}
