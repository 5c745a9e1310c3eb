//! The client's IP: the peer address, or what a trusted proxy says in `X-Forwarded-For` or
//! `Forwarded` (RFC 7239).
//!
//! Forwarding headers are written by every hop, client included, each appending on the right. Only
//! the entries added by our own proxies can be believed, so the walk goes from the right, skipping
//! trusted proxies, and stops at the first address that is not one: that is the client as seen by
//! our outermost proxy. Anything left of it is whatever the client chose to send.
//!
//! Only one header is read, the one the proxies are configured to write: a proxy that appends
//! `X-Forwarded-For` passes a client's own `Forwarded` header through untouched, so reading both
//! would let a client pick its address.

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;
use http::header::FORWARDED;

/// Entries beyond this many from the right are not looked at: a chain of proxies is short, and
/// the bound keeps the work per request constant whatever a client sends.
pub const MAX_HOPS: usize = 32;

/// An IP network: an address and a prefix length, `10.0.0.0/8`, `fd00::/8`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// A trusted-proxy entry that is neither an IP nor a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid IP network {0:?}: expected an address or address/prefix")]
pub struct InvalidIpNet(pub String);

impl IpNet {
    /// The network of `addr` with `prefix` bits; `None` when the prefix is longer than the
    /// address. Host bits are cleared, so `10.1.2.3/8` is `10.0.0.0/8`.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then(|| Self {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// The network's first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside; IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

impl FromStr for IpNet {
    type Err = InvalidIpNet;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidIpNet(s.to_owned());
        let trimmed = s.trim();
        match trimmed.split_once('/') {
            Some((addr, prefix)) => {
                let addr = IpAddr::from_str(addr).map_err(|_| invalid())?;
                let prefix = prefix.parse::<u8>().map_err(|_| invalid())?;
                // An IPv4-mapped network (`::ffff:10.0.0.0/104`) is the IPv4 network it maps,
                // since addresses are compared in canonical form.
                match (addr, addr.to_canonical()) {
                    (IpAddr::V6(_), v4 @ IpAddr::V4(_)) if prefix >= 96 => Self::new(v4, prefix - 96),
                    _ => Self::new(addr, prefix),
                }
                .ok_or_else(invalid)
            }
            None => {
                let addr = IpAddr::from_str(trimmed).map_err(|_| invalid())?.to_canonical();
                let prefix = if addr.is_ipv4() { 32 } else { 128 };
                Ok(Self { addr, prefix })
            }
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Which forwarding header the trusted proxies write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client;proto=https, for="[2001:db8::1]:4711"` (RFC 7239).
    Forwarded,
}

/// The trusted proxies and the header they write. Empty by default: the peer address is the
/// client, whatever the headers say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIpResolver {
    trusted: Vec<IpNet>,
    header: ForwardedHeader,
}

impl ClientIpResolver {
    /// Trusts the given proxies (addresses or CIDR networks, IPv4 and IPv6) to write `header`.
    pub fn new(trusted: impl IntoIterator<Item = IpNet>, header: ForwardedHeader) -> Self {
        Self {
            trusted: trusted.into_iter().collect(),
            header,
        }
    }

    /// Parses each entry as an address or CIDR network.
    pub fn parse<S: AsRef<str>>(
        trusted: impl IntoIterator<Item = S>,
        header: ForwardedHeader,
    ) -> Result<Self, InvalidIpNet> {
        let trusted = trusted
            .into_iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<Vec<IpNet>, _>>()?;
        Ok(Self { trusted, header })
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The client address for a request that arrived from `peer` with `headers`.
    ///
    /// The peer unless it is a trusted proxy; otherwise the right-most entry of the forwarding
    /// header that is not a trusted proxy. When every entry is trusted, the left-most one. An
    /// entry that is not an address (`unknown`, an obfuscated `_id`, garbage) ends the walk, since
    /// nothing left of it can be traced, and the nearest address seen so far is used. A missing
    /// or unreadable header yields the peer.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut nearest = peer;
        let mut hops = 0;
        // Header instances are one list in order (RFC 9110 section 5.3), so walk them last first.
        for value in self.header_values(headers).iter().rev() {
            let Ok(value) = value.to_str() else { return nearest };
            let entries: Vec<Entry> = match self.header {
                ForwardedHeader::XForwardedFor => value.rsplit(',').take(MAX_HOPS + 1).map(parse_node).collect(),
                ForwardedHeader::Forwarded => forwarded_for_nodes(value).into_iter().rev().collect(),
            };
            for entry in entries {
                hops += 1;
                if hops > MAX_HOPS {
                    return nearest;
                }
                match entry {
                    Entry::Addr(ip) if self.is_trusted(ip) => nearest = ip,
                    Entry::Addr(ip) => return ip,
                    Entry::Opaque => return nearest,
                }
            }
        }
        nearest
    }

    fn header_values<'h>(&self, headers: &'h HeaderMap) -> http::header::GetAll<'h, http::HeaderValue> {
        match self.header {
            ForwardedHeader::XForwardedFor => headers.get_all("x-forwarded-for"),
            ForwardedHeader::Forwarded => headers.get_all(FORWARDED),
        }
    }
}

/// One hop of a forwarding header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Addr(IpAddr),
    /// `unknown`, an obfuscated identifier, or anything unparsable.
    Opaque,
}

/// Parses a node: `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711` (RFC 7239 section 6), surrounding whitespace allowed.
fn parse_node(node: &str) -> Entry {
    let node = node.trim();
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Entry::Addr(ip.to_canonical());
    }
    if let Ok(sock) = node.parse::<SocketAddr>() {
        return Entry::Addr(sock.ip().to_canonical());
    }
    if let Some(inner) = node.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
        if let Ok(ip) = inner.parse::<Ipv6Addr>() {
            return Entry::Addr(IpAddr::V6(ip).to_canonical());
        }
    }
    Entry::Opaque
}

/// The `for=` node of each element of a `Forwarded` value, in order, keeping only the right-most
/// [`MAX_HOPS`] + 1 (the walk never looks further). An element without `for=` counts as an opaque
/// hop: a proxy wrote it without saying whom it served.
fn forwarded_for_nodes(value: &str) -> VecDeque<Entry> {
    let mut nodes = VecDeque::new();
    for element in split_outside_quotes(value, ',') {
        let mut node = Entry::Opaque;
        for pair in split_outside_quotes(element, ';') {
            let Some((name, raw)) = pair.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("for") {
                node = parse_node(&unquote(raw.trim()));
            }
        }
        nodes.push_back(node);
        if nodes.len() > MAX_HOPS + 1 {
            nodes.pop_front();
        }
    }
    nodes
}

/// Splits on `sep` except inside a quoted-string (RFC 9110 section 5.6.4), honouring `\` escapes.
fn split_outside_quotes(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if in_quotes && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quotes = !in_quotes;
        } else if c == sep && !in_quotes {
            parts.push(s.get(start..i).unwrap_or(""));
            start = i + c.len_utf8();
        }
    }
    parts.push(s.get(start..).unwrap_or(""));
    parts.into_iter()
}

/// The content of a quoted-string with escapes removed, or the token as is.
fn unquote(raw: &str) -> String {
    let Some(inner) = raw.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')) else {
        return raw.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX
                .checked_shl(32u32.saturating_sub(u32::from(prefix)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & keep))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX
                .checked_shl(128u32.saturating_sub(u32::from(prefix)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & keep))
        }
    }
}

/// `ip` grouped for counting: IPv4-mapped IPv6 as IPv4, IPv6 cut to `v6_prefix` bits.
pub(crate) fn ip_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        v6 @ IpAddr::V6(_) => mask(v6, v6_prefix.min(128)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let cases: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.200.3.4", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.1.2.3/8", "10.9.9.9", true),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::1", false),
            ("fd00::/8", "fd12:3456::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::1", "::1", true),
            ("::/0", "2001:db8::1", true),
            ("127.0.0.0/8", "::ffff:127.0.0.5", true),
            ("::ffff:10.0.0.0/104", "10.1.1.1", true),
            ("::ffff:0:0/96", "192.0.2.1", true),
            ("::/8", "127.0.0.1", false),
            (" 192.168.0.0/16 ", "192.168.44.1", true),
        ];
        for (net, addr, expected) in cases {
            let net: IpNet = net.parse().unwrap_or_else(|e| panic!("{net}: {e}"));
            assert_eq!(net.contains(ip(addr)), *expected, "{net} contains {addr}");
        }
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "example.com",
            "10.0.0.0/",
            "/8",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?} parsed");
        }
        assert_eq!("10.1.2.3/8".parse::<IpNet>().unwrap().to_string(), "10.0.0.0/8");
    }

    #[test]
    fn x_forwarded_for_table() {
        let resolver =
            ClientIpResolver::parse(["127.0.0.1", "10.0.0.0/8", "fd00::/8"], ForwardedHeader::XForwardedFor).unwrap();
        let cases: &[(&str, &[&str], &str)] = &[
            // Untrusted peer: headers ignored.
            ("198.51.100.7", &["1.2.3.4"], "198.51.100.7"),
            // Trusted peer, no header.
            ("127.0.0.1", &[], "127.0.0.1"),
            ("127.0.0.1", &["203.0.113.5"], "203.0.113.5"),
            // Spoofed left entries are skipped: the right-most untrusted wins.
            ("127.0.0.1", &["6.6.6.6, 203.0.113.5, 10.0.0.2"], "203.0.113.5"),
            // Several header lines are one list.
            ("127.0.0.1", &["6.6.6.6", "203.0.113.5", "10.0.0.2"], "203.0.113.5"),
            // All trusted: the left-most.
            ("127.0.0.1", &["10.0.0.9, 10.0.0.2"], "10.0.0.9"),
            // Ports and brackets.
            ("127.0.0.1", &["203.0.113.5:4711"], "203.0.113.5"),
            ("127.0.0.1", &["[2001:db8::7]:4711"], "2001:db8::7"),
            ("127.0.0.1", &["[2001:db8::7]"], "2001:db8::7"),
            ("127.0.0.1", &[" 2001:db8::7 "], "2001:db8::7"),
            ("fd00::1", &["::ffff:203.0.113.5"], "203.0.113.5"),
            // Garbage ends the walk at the nearest known hop.
            ("127.0.0.1", &["6.6.6.6, garbage, 10.0.0.2"], "10.0.0.2"),
            ("127.0.0.1", &["unknown"], "127.0.0.1"),
            ("127.0.0.1", &[""], "127.0.0.1"),
            ("127.0.0.1", &[",,,"], "127.0.0.1"),
            ("::ffff:127.0.0.1", &["203.0.113.5"], "203.0.113.5"),
        ];
        for (peer, values, expected) in cases {
            let got = resolver.client_ip(ip(peer), &headers("x-forwarded-for", values));
            assert_eq!(got, ip(expected), "peer {peer} XFF {values:?}");
            // The other header is not read.
            let other = resolver.client_ip(ip(peer), &headers("forwarded", &["for=9.9.9.9"]));
            assert_eq!(other, ip(peer).to_canonical());
        }
    }

    #[test]
    fn forwarded_table() {
        let resolver = ClientIpResolver::parse(["127.0.0.1", "10.0.0.0/8"], ForwardedHeader::Forwarded).unwrap();
        let cases: &[(&[&str], &str)] = &[
            (&["for=192.0.2.60;proto=http;by=203.0.113.43"], "192.0.2.60"),
            (&["For=\"[2001:db8:cafe::17]:4711\""], "2001:db8:cafe::17"),
            (&["for=\"192.0.2.43:47011\""], "192.0.2.43"),
            (&["for=192.0.2.43, for=198.51.100.17"], "198.51.100.17"),
            (
                &["for=6.6.6.6, for=198.51.100.17;proto=https, for=10.1.1.1"],
                "198.51.100.17",
            ),
            (&["for=6.6.6.6", "for=198.51.100.17"], "198.51.100.17"),
            (&["proto=https;for=198.51.100.17;host=example.com"], "198.51.100.17"),
            // Obfuscated and unknown identifiers are not addresses (RFC 7239 section 6.2, 6.3).
            (&["for=6.6.6.6, for=_hidden, for=10.0.0.3"], "10.0.0.3"),
            (&["for=unknown"], "127.0.0.1"),
            (&["for=\"_gazonk\""], "127.0.0.1"),
            // A quoted comma or semicolon does not split.
            (&["for=\"a,b;c\", for=198.51.100.17"], "198.51.100.17"),
            (&["for=198.51.100.17;by=\"x,y\""], "198.51.100.17"),
            (&["for=\"[2001:db8::1]\""], "2001:db8::1"),
            (&["for=\"\\[2001:db8::1\\]\""], "2001:db8::1"),
            // Broken values never panic and fall back to what is known.
            (&["for=\"unterminated"], "127.0.0.1"),
            (&["for="], "127.0.0.1"),
            (&[";;;,,,=;"], "127.0.0.1"),
            (&["by=10.0.0.1"], "127.0.0.1"),
            (&["for=10.0.0.4"], "10.0.0.4"),
        ];
        for (values, expected) in cases {
            let got = resolver.client_ip(ip("127.0.0.1"), &headers("forwarded", values));
            assert_eq!(got, ip(expected), "Forwarded {values:?}");
        }
    }

    #[test]
    fn no_trusted_proxies_by_default() {
        let resolver = ClientIpResolver::default();
        let got = resolver.client_ip(ip("127.0.0.1"), &headers("x-forwarded-for", &["203.0.113.5"]));
        assert_eq!(got, ip("127.0.0.1"));
    }

    #[test]
    fn non_utf8_header_falls_back() {
        let resolver = ClientIpResolver::parse(["127.0.0.1"], ForwardedHeader::XForwardedFor).unwrap();
        let mut map = HeaderMap::new();
        map.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\xff\xfe 1.2.3.4").unwrap(),
        );
        assert_eq!(resolver.client_ip(ip("127.0.0.1"), &map), ip("127.0.0.1"));
    }

    #[test]
    fn long_chains_are_cut_at_max_hops() {
        let resolver = ClientIpResolver::parse(["10.0.0.0/8"], ForwardedHeader::XForwardedFor).unwrap();
        let chain: Vec<String> = std::iter::once("203.0.113.5".to_owned())
            .chain((0..MAX_HOPS + 5).map(|i| format!("10.0.{}.1", i % 250)))
            .collect();
        let got = resolver.client_ip(ip("10.9.9.9"), &headers("x-forwarded-for", &[&chain.join(",")]));
        assert!(resolver.is_trusted(got), "walked past the hop bound to {got}");
    }

    #[test]
    fn ip_key_groups_v6_only() {
        assert_eq!(ip_key(ip("127.0.0.3"), 64), ip("127.0.0.3"));
        assert_eq!(ip_key(ip("::ffff:127.0.0.3"), 64), ip("127.0.0.3"));
        assert_eq!(ip_key(ip("2001:db8:1:2:3:4:5:6"), 64), ip("2001:db8:1:2::"));
        assert_eq!(ip_key(ip("2001:db8:1:2:3:4:5:6"), 200), ip("2001:db8:1:2:3:4:5:6"));
        assert_eq!(ip_key(ip("2001:db8:1:2:3:4:5:6"), 0), ip("::"));
    }

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic(
            xff in proptest::collection::vec("[ -~]{0,64}", 0..4),
            fwd in proptest::collection::vec("[ -~]{0,64}", 0..4),
        ) {
            for header in [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded] {
                let resolver = ClientIpResolver::parse(["127.0.0.0/8", "::1"], header).unwrap();
                let mut map = HeaderMap::new();
                for value in &xff {
                    if let Ok(value) = http::HeaderValue::from_str(value) {
                        map.append("x-forwarded-for", value);
                    }
                }
                for value in &fwd {
                    if let Ok(value) = http::HeaderValue::from_str(value) {
                        map.append("forwarded", value);
                    }
                }
                let _ = resolver.client_ip(ip("127.0.0.1"), &map);
            }
        }

        /// A chain of trusted proxies after one real client always resolves to that client,
        /// whatever the client prepended.
        #[test]
        fn right_most_untrusted_wins(
            spoofed in proptest::collection::vec(any::<u32>(), 0..5),
            client in any::<u32>(),
            proxies in proptest::collection::vec(0u32..0x00ff_ffff, 0..5),
        ) {
            let client = Ipv4Addr::from(client);
            prop_assume!(!IpNet::new(ip("10.0.0.0"), 8).unwrap().contains(IpAddr::V4(client)));
            let resolver = ClientIpResolver::parse(["10.0.0.0/8"], ForwardedHeader::XForwardedFor).unwrap();
            let mut chain: Vec<String> = spoofed.iter().map(|a| Ipv4Addr::from(*a).to_string()).collect();
            chain.push(client.to_string());
            chain.extend(proxies.iter().map(|p| Ipv4Addr::from(0x0a00_0000 | p).to_string()));
            let got = resolver.client_ip(ip("10.0.0.1"), &headers("x-forwarded-for", &[&chain.join(", ")]));
            prop_assert_eq!(got, IpAddr::V4(client));
        }
    }
}
