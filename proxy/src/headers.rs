//! Which request headers reach the backend, and the `X-Forwarded-*` / `Forwarded` ones added.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1) never forwarded, plus the WebSocket handshake's own,
/// which each leg's engine writes for itself.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "sec-websocket-accept",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
];

/// What the proxy knows about the client.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: bool,
}

/// The headers to send to the backend for a request with `headers`: end-to-end ones (those
/// named in `Connection` are hop-by-hop too), filtered by `allow` when set, then the forwarding
/// headers. A client's `X-Forwarded-For` is extended, not trusted as ours.
pub(crate) fn forwarded(headers: &HeaderMap, client: &Client, allow: Option<&[String]>) -> HeaderMap {
    let named_by_connection: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let lower = name.as_str();
        if NOT_FORWARDED.contains(&lower) || named_by_connection.iter().any(|n| n == lower) {
            continue;
        }
        if let Some(allow) = allow {
            if !allow.iter().any(|a| a.eq_ignore_ascii_case(lower)) {
                continue;
            }
        }
        out.append(name.clone(), value.clone());
    }
    let ip = client.addr.ip();
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.trim().is_empty() => format!("{prior}, {ip}"),
        _ => ip.to_string(),
    };
    let proto = if client.tls { "https" } else { "http" };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    insert(&mut out, "x-forwarded-for", &xff);
    insert(&mut out, "x-forwarded-proto", proto);
    let node = match ip {
        std::net::IpAddr::V6(v6) => format!("\"[{v6}]\""),
        std::net::IpAddr::V4(v4) => v4.to_string(),
    };
    let mut forwarded = format!("for={node};proto={proto}");
    if let Some(host) = host {
        insert(&mut out, "x-forwarded-host", host);
        if host
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b';' && b != b',')
        {
            forwarded.push_str(&format!(";host=\"{host}\""));
        }
    }
    insert(&mut out, "forwarded", &forwarded);
    out
}

/// Removes hop-by-hop headers from a backend's response before it goes to the client.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &NOT_FORWARDED[..9] {
        headers.remove(*name);
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_hop_by_hop_and_adds_forwarding() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("app.test:8080"));
        h.insert("connection", HeaderValue::from_static("Upgrade, X-Secret"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("5"));
        h.insert("cookie", HeaderValue::from_static("a=b"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("sec-websocket-key", HeaderValue::from_static("k"));
        let client = Client {
            addr: "127.0.0.9:5000".parse().unwrap(),
            tls: false,
        };
        let out = forwarded(&h, &client, None);
        for gone in [
            "connection",
            "upgrade",
            "x-secret",
            "keep-alive",
            "host",
            "sec-websocket-key",
        ] {
            assert!(!out.contains_key(gone), "{gone}");
        }
        assert_eq!(out["cookie"], "a=b");
        assert_eq!(out["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["x-forwarded-host"], "app.test:8080");
        assert_eq!(out["forwarded"], "for=127.0.0.9;proto=http;host=\"app.test:8080\"");
        let allowed = forwarded(&h, &client, Some(&["X-Other".into()]));
        assert!(!allowed.contains_key("cookie"));
        assert!(allowed.contains_key("forwarded"));
    }
}
