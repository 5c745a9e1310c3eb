//! Origin allow-list: which web pages may open a WebSocket to the hub.
//!
//! Browsers send `Origin` on every WebSocket handshake (RFC 6455 section 4.1) and scripts cannot
//! forge it, so checking it stops other sites from riding a user's cookies into the hub
//! (cross-site WebSocket hijacking). Non-browser clients may omit it or send anything, so the
//! check protects browser users, not the server.
//!
//! Patterns: `*` (any origin), `https://example.com` (exact; default port implied),
//! `https://example.com:8443`, `https://*.example.com` (any subdomain, not the bare domain),
//! `http://localhost:*` (any port). Scheme and host compare case-insensitively (RFC 6454
//! section 4 lower-cases both); the scheme must match.

use std::fmt;

use http::{HeaderMap, StatusCode, header::ORIGIN};

/// What to do with a handshake that has no `Origin` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingOrigin {
    /// Let it through: browsers always send `Origin`, so a request without one is not a
    /// browser's and a cross-site page cannot have made it.
    #[default]
    Allow,
    /// Refuse it, e.g. when only browser clients are expected.
    Deny,
}

/// A parsed allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPolicy {
    patterns: Vec<OriginPattern>,
    missing: MissingOrigin,
}

/// A pattern that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid origin pattern {pattern:?}: {reason}")]
pub struct InvalidOriginPattern {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Why a handshake's origin was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginRejected {
    /// No `Origin` header and the policy is [`MissingOrigin::Deny`].
    #[error("missing Origin header")]
    Missing,
    /// More than one `Origin` header, or one that is not text.
    #[error("malformed Origin header")]
    Malformed,
    /// An origin no pattern allows.
    #[error("origin {0:?} not allowed")]
    NotAllowed(String),
}

impl OriginRejected {
    /// The HTTP status to refuse the upgrade with: 403 Forbidden.
    pub fn status(&self) -> StatusCode {
        StatusCode::FORBIDDEN
    }
}

impl OriginPolicy {
    /// Parses the patterns; an empty list allows no origin (only requests without one, if
    /// [`MissingOrigin::Allow`]).
    pub fn new<S: AsRef<str>>(patterns: impl IntoIterator<Item = S>) -> Result<Self, InvalidOriginPattern> {
        let patterns = patterns
            .into_iter()
            .map(|p| OriginPattern::parse(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            patterns,
            missing: MissingOrigin::default(),
        })
    }

    /// Allows every origin (`*`): for development, or when tokens (not cookies) carry identity.
    pub fn any() -> Self {
        Self {
            patterns: vec![OriginPattern::Any],
            missing: MissingOrigin::Allow,
        }
    }

    /// Sets what happens to handshakes without `Origin`.
    #[must_use]
    pub fn with_missing(mut self, missing: MissingOrigin) -> Self {
        self.missing = missing;
        self
    }

    /// Checks an `Origin` value (or its absence).
    pub fn check(&self, origin: Option<&str>) -> Result<(), OriginRejected> {
        let Some(origin) = origin else {
            return match self.missing {
                MissingOrigin::Allow => Ok(()),
                MissingOrigin::Deny => Err(OriginRejected::Missing),
            };
        };
        let parsed = Origin::parse(origin);
        let allowed = self.patterns.iter().any(|pattern| match (pattern, &parsed) {
            (OriginPattern::Any, _) => true,
            (OriginPattern::Exact { scheme, host, port }, Some(origin)) => {
                origin.scheme == *scheme && origin.port_matches(*port) && origin.host == *host
            }
            (OriginPattern::Subdomains { scheme, suffix, port }, Some(origin)) => {
                // `suffix` is ".example.com": at least one label must precede it.
                origin.scheme == *scheme
                    && origin.port_matches(*port)
                    && origin.host.len() > suffix.len()
                    && origin.host.ends_with(suffix.as_str())
            }
            (_, None) => false,
        });
        if allowed {
            Ok(())
        } else {
            Err(OriginRejected::NotAllowed(origin.to_owned()))
        }
    }

    /// Checks the `Origin` header of a handshake.
    pub fn check_headers(&self, headers: &HeaderMap) -> Result<(), OriginRejected> {
        let mut values = headers.get_all(ORIGIN).iter();
        let origin = match (values.next(), values.next()) {
            (None, _) => None,
            (Some(value), None) => Some(value.to_str().map_err(|_| OriginRejected::Malformed)?),
            (Some(_), Some(_)) => return Err(OriginRejected::Malformed),
        };
        self.check(origin)
    }
}

impl fmt::Display for OriginPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pattern) in self.patterns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match pattern {
                OriginPattern::Any => f.write_str("*")?,
                OriginPattern::Exact { scheme, host, port } => write!(f, "{scheme}://{host}{}", PortDisplay(*port))?,
                OriginPattern::Subdomains { scheme, suffix, port } => {
                    write!(f, "{scheme}://*{suffix}{}", PortDisplay(*port))?
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginPattern {
    Any,
    Exact {
        scheme: String,
        host: String,
        port: PortPattern,
    },
    /// `suffix` includes the leading dot.
    Subdomains {
        scheme: String,
        suffix: String,
        port: PortPattern,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    /// Only the scheme's default port (written or not).
    Default,
    Exact(u16),
    Any,
}

struct PortDisplay(PortPattern);

impl fmt::Display for PortDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            PortPattern::Default => Ok(()),
            PortPattern::Exact(port) => write!(f, ":{port}"),
            PortPattern::Any => f.write_str(":*"),
        }
    }
}

impl OriginPattern {
    fn parse(pattern: &str) -> Result<Self, InvalidOriginPattern> {
        let invalid = |reason| InvalidOriginPattern {
            pattern: pattern.to_owned(),
            reason,
        };
        let trimmed = pattern.trim();
        if trimmed == "*" {
            return Ok(Self::Any);
        }
        let (scheme, rest) = trimmed
            .split_once("://")
            .ok_or_else(|| invalid("expected scheme://host[:port]"))?;
        let scheme = scheme.to_ascii_lowercase();
        if !is_scheme(&scheme) {
            return Err(invalid("bad scheme"));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = split_host_port(rest).ok_or_else(|| invalid("bad host or port"))?;
        let port = match port {
            None => PortPattern::Default,
            Some("*") => PortPattern::Any,
            Some(port) => match (port.parse::<u16>(), default_port(&scheme)) {
                (Ok(port), Some(default)) if port == default => PortPattern::Default,
                (Ok(port), _) => PortPattern::Exact(port),
                (Err(_), _) => return Err(invalid("bad port")),
            },
        };
        let host = host.to_ascii_lowercase();
        match host.strip_prefix("*.") {
            Some(base) if is_host(base) => Ok(Self::Subdomains {
                scheme,
                suffix: format!(".{base}"),
                port,
            }),
            _ if host.contains('*') => Err(invalid("a wildcard must be a whole leading label, as in *.example.com")),
            None if is_host(&host) => Ok(Self::Exact { scheme, host, port }),
            _ => Err(invalid("bad host")),
        }
    }
}

/// A serialized origin from a request: `scheme://host[:port]`, lower-cased.
#[derive(Debug)]
struct Origin {
    scheme: String,
    host: String,
    /// `None` for the scheme's default port.
    port: Option<u16>,
}

impl Origin {
    /// `None` for anything that is not a tuple origin, including `null` (RFC 6454 section 6.2).
    fn parse(value: &str) -> Option<Self> {
        let (scheme, rest) = value.trim().split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if !is_scheme(&scheme) {
            return None;
        }
        let (host, port) = split_host_port(rest)?;
        let host = host.to_ascii_lowercase();
        if host.contains('*') || !is_host(&host) {
            return None;
        }
        let port = match port {
            None => None,
            Some(port) => {
                let port = port.parse::<u16>().ok()?;
                if Some(port) == default_port(&scheme) {
                    None
                } else {
                    Some(port)
                }
            }
        };
        Some(Self { scheme, host, port })
    }

    fn port_matches(&self, pattern: PortPattern) -> bool {
        match pattern {
            PortPattern::Any => true,
            PortPattern::Default => self.port.is_none(),
            PortPattern::Exact(port) => self.port == Some(port),
        }
    }
}

fn is_scheme(scheme: &str) -> bool {
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Host characters of a DNS name, an IPv4 address or a bracketed IPv6 address; no path, user
/// info, query or whitespace.
fn is_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// Splits `host[:port]`, where an IPv6 host is bracketed.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            _ => rest.strip_prefix(':').map(|port| (host, Some(port))),
        };
    }
    match s.split_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((s, None)),
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_table() {
        let policy = OriginPolicy::new([
            "https://example.com",
            "https://*.example.com",
            "http://localhost:3000",
            "http://127.0.0.1:*",
            "https://[::1]:8443",
            "app://desktop",
        ])
        .unwrap();
        let cases: &[(&str, bool)] = &[
            ("https://example.com", true),
            ("https://EXAMPLE.com", true),
            ("HTTPS://example.com", true),
            ("https://example.com:443", true),
            ("https://example.com/", false),
            ("https://example.com:8443", false),
            ("http://example.com", false),
            ("https://a.example.com", true),
            ("https://a.b.Example.COM", true),
            ("https://a.example.com:444", false),
            ("https://evilexample.com", false),
            ("https://example.com.evil.net", false),
            ("https://.example.com", false),
            ("http://localhost:3000", true),
            ("http://localhost", false),
            ("http://localhost:3001", false),
            ("http://127.0.0.1:5173", true),
            ("http://127.0.0.1", true),
            ("https://127.0.0.1:5173", false),
            ("https://[::1]:8443", true),
            ("https://[::1]", false),
            ("app://desktop", true),
            ("null", false),
            ("", false),
            ("https://", false),
            ("https://exa mple.com", false),
            ("https://user@example.com", false),
            ("https://example.com:99999", false),
            ("https://*.example.com", false),
            ("\u{0}", false),
        ];
        for (origin, expected) in cases {
            assert_eq!(policy.check(Some(origin)).is_ok(), *expected, "origin {origin:?}");
        }
    }

    #[test]
    fn star_allows_everything_present() {
        let policy = OriginPolicy::new(["*"]).unwrap();
        for origin in ["https://x.y", "null", "garbage"] {
            assert_eq!(policy.check(Some(origin)), Ok(()));
        }
        assert_eq!(OriginPolicy::any().check(None), Ok(()));
    }

    #[test]
    fn missing_origin_policy() {
        let policy = OriginPolicy::new(["https://example.com"]).unwrap();
        assert_eq!(policy.check(None), Ok(()));
        let strict = policy.with_missing(MissingOrigin::Deny);
        assert_eq!(strict.check(None), Err(OriginRejected::Missing));
        assert_eq!(strict.check(None).unwrap_err().status(), StatusCode::FORBIDDEN);
        // `*` with Deny still wants the header.
        assert_eq!(
            OriginPolicy::any().with_missing(MissingOrigin::Deny).check(None),
            Err(OriginRejected::Missing)
        );
    }

    #[test]
    fn headers() {
        let policy = OriginPolicy::new(["https://example.com"]).unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(policy.check_headers(&headers), Ok(()));
        headers.insert(ORIGIN, "https://example.com".parse().unwrap());
        assert_eq!(policy.check_headers(&headers), Ok(()));
        headers.insert(ORIGIN, "https://evil.com".parse().unwrap());
        assert_eq!(
            policy.check_headers(&headers),
            Err(OriginRejected::NotAllowed("https://evil.com".into()))
        );
        headers.append(ORIGIN, "https://example.com".parse().unwrap());
        assert_eq!(policy.check_headers(&headers), Err(OriginRejected::Malformed));
        let mut headers = HeaderMap::new();
        headers.insert(
            ORIGIN,
            http::HeaderValue::from_bytes(b"https://\xffexample.com").unwrap(),
        );
        assert_eq!(policy.check_headers(&headers), Err(OriginRejected::Malformed));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "example.com",
            "https://",
            "https://*",
            "https://*example.com",
            "https://a.*.example.com",
            "https://example.com:http",
            "https://example.com:65536",
            "https://example.com/path",
            "1ttp://example.com",
            "https://[::zz]",
        ] {
            assert!(OriginPolicy::new([bad]).is_err(), "{bad:?} accepted");
        }
        let policy = OriginPolicy::new(["HTTPS://*.Example.com:443/", "http://localhost:*", "*"]).unwrap();
        assert_eq!(policy.to_string(), "https://*.example.com, http://localhost:*, *");
    }
}
