//! The proxy's TOML configuration, with BWS's key names (`[[routes]]`, `[[upstreams]]`,
//! `[load_balancing]`) and caddy-ws-heartbeat's `[heartbeat]`.
//!
//! Parsing checks everything it can: unknown keys, malformed durations and URLs, routes naming
//! an upstream that does not exist. Every error names the key and the line it is on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use toml::Spanned;

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not a valid configuration; `line` is 1-based.
    #[error("{origin}:{line}: {key}: {message}")]
    Invalid {
        /// The file (or `<config>` for a string).
        origin: String,
        /// The line of the offending key.
        line: usize,
        /// The offending key (`?` when the parser could not tell).
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on, such as `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Serve TLS on `listen` with this certificate and key.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Trust for `wss://` backends (default: the webpki roots).
    #[serde(default)]
    pub upstream_tls: Option<UpstreamTls>,
    /// Routes, matched by host and longest path.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Backends; entries with the same `name` form one pool.
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
    /// How a pool picks a backend.
    #[serde(default)]
    pub load_balancing: LoadBalancing,
    /// Pings the proxy sends on both legs.
    #[serde(default)]
    pub heartbeat: Heartbeat,
    /// Active and passive health checking.
    #[serde(default)]
    pub health_check: HealthCheck,
    /// Header forwarding.
    #[serde(default)]
    pub headers: Headers,
    /// Limits on both legs.
    #[serde(default)]
    pub limits: Limits,
    /// WebSocket options.
    #[serde(default)]
    pub websocket: WebSocketOptions,
    /// The path answering Prometheus metrics (`""` turns it off). Default `/metrics`.
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// After a reload, connections whose backend left the configuration are closed (1001) after
    /// this long; unset keeps them open until they end.
    #[serde(default, deserialize_with = "opt_duration")]
    pub drain_timeout: Option<Duration>,
}

/// A TLS listener's certificate chain and private key (PEM files).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Trust for `wss://` backends.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// PEM file of the certificate authorities to trust instead of the webpki roots.
    pub ca: PathBuf,
}

/// One route.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix (whole segments) or, with `exact`, the exact path.
    pub path: String,
    /// Match `path` exactly.
    #[serde(default)]
    pub exact: bool,
    /// Only requests for this host (port ignored, case-insensitive).
    #[serde(default)]
    pub host: Option<String>,
    /// The pool to send requests to.
    pub upstream: Spanned<String>,
    /// Remove `path` from the request path before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Proxy WebSocket upgrades on this route (plain HTTP is forwarded either way).
    #[serde(default = "yes")]
    pub websocket: bool,
    /// If set, only these exact paths are served; others get 404.
    #[serde(default)]
    pub allowed_paths: Vec<String>,
    /// If set, WebSocket upgrades must carry one of these `Origin`s (`*` as a wildcard).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// One backend of a pool.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The pool this backend belongs to.
    pub name: String,
    /// `ws://`, `wss://`, `http://` or `https://` with host and port.
    #[serde(deserialize_with = "backend_url")]
    pub url: BackendUrl,
    /// Share for `weighted` (and `least_connections`). Default 1.
    #[serde(default = "one")]
    pub weight: u32,
}

/// A backend address, parsed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BackendUrl {
    /// TLS to the backend.
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path prefix prepended to forwarded paths (no trailing `/`).
    pub base_path: String,
}

impl BackendUrl {
    /// `host:port`, with brackets for IPv6.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The WebSocket URL for `path_and_query`.
    pub fn ws_url(&self, path_and_query: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{}{}", self.authority(), self.base_path, path_and_query)
    }
}

impl std::fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.base_path)
    }
}

/// How a pool picks a backend.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancing {
    /// The policy.
    #[serde(default)]
    pub method: Method,
    /// How many other backends to try when the chosen one cannot be reached. Default 1.
    #[serde(default = "one")]
    pub retries: u32,
}

impl Default for LoadBalancing {
    fn default() -> Self {
        Self {
            method: Method::default(),
            retries: 1,
        }
    }
}

/// A balancing policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Each backend in turn.
    #[default]
    RoundRobin,
    /// In turn, in proportion to `weight` (smooth weighted round robin).
    Weighted,
    /// The backend with the fewest open WebSockets (and HTTP requests) per unit of weight.
    LeastConnections,
}

/// Pings on both legs; a peer that does not answer within `timeout` is closed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Ping after this long without traffic (`"0s"` turns pings off). Default 15 s.
    #[serde(default = "default_interval", deserialize_with = "duration")]
    pub interval: Duration,
    /// How long a pong may take. Default 10 s.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            timeout: default_timeout(),
        }
    }
}

/// Active checks (a TCP connect, or an HTTP `GET path` answered 2xx/3xx) and passive ejection.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Run active checks this often (`"0s"`: none). Default 10 s.
    #[serde(default = "default_check_interval", deserialize_with = "duration")]
    pub interval: Duration,
    /// Each check's time limit. Default 2 s.
    #[serde(default = "default_check_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// HTTP path to `GET`; unset checks with a TCP connect.
    #[serde(default)]
    pub path: Option<String>,
    /// Failed checks in a row that mark a backend down. Default 2.
    #[serde(default = "two")]
    pub unhealthy_threshold: u32,
    /// Passed checks in a row that mark it up again. Default 1.
    #[serde(default = "one")]
    pub healthy_threshold: u32,
    /// Connection failures in a row that eject a backend passively (`0`: never). Default 3.
    #[serde(default = "three")]
    pub max_fails: u32,
    /// How long an ejected backend is left out. Default 10 s.
    #[serde(default = "default_fail_timeout", deserialize_with = "duration")]
    pub fail_timeout: Duration,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            interval: default_check_interval(),
            timeout: default_check_timeout(),
            path: None,
            unhealthy_threshold: 2,
            healthy_threshold: 1,
            max_fails: 3,
            fail_timeout: default_fail_timeout(),
        }
    }
}

/// Which request headers reach the backend.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headers {
    /// If set, only these headers (case-insensitive) are forwarded, besides the WebSocket
    /// handshake's own and the `X-Forwarded-*`/`Forwarded` ones the proxy adds. Unset forwards
    /// every end-to-end header.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
}

/// Limits on both legs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest frame, in bytes: what the proxy holds of a message at once. Default 16 MiB.
    #[serde(default = "default_frame")]
    pub max_frame_size: usize,
    /// Largest message, in bytes. Messages stream through in fragments, so the default is no
    /// limit (the backend applies its own).
    #[serde(default)]
    pub max_message_size: Option<usize>,
    /// Most open connections (WebSockets and HTTP together) at once; more get 503. Default none.
    #[serde(default)]
    pub max_connections: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_size: default_frame(),
            max_message_size: None,
            max_connections: None,
        }
    }
}

/// permessage-deflate, negotiated separately on each leg (messages are inflated on one leg and
/// compressed again on the other).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketOptions {
    /// Accept compression from clients and offer it to backends. Default true.
    #[serde(default = "yes")]
    pub deflate: bool,
    /// Keep the compression context between messages (better ratio, more memory per
    /// connection). Default false.
    #[serde(default)]
    pub context_takeover: bool,
}

impl Default for WebSocketOptions {
    fn default() -> Self {
        Self {
            deflate: true,
            context_takeover: false,
        }
    }
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let start = e.span().map_or(0, |span| span.start);
            invalid(text, origin, start, None, e.message().to_owned())
        })?;
        config.check(text, origin)?;
        Ok(config)
    }

    fn check(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let pools: HashMap<&str, usize> = self.upstreams.iter().fold(HashMap::new(), |mut m, u| {
            *m.entry(u.name.as_str()).or_default() += 1;
            m
        });
        for route in &self.routes {
            if !pools.contains_key(route.upstream.get_ref().as_str()) {
                let message = format!("no [[upstreams]] entry is named {:?}", route.upstream.get_ref());
                return Err(invalid(
                    text,
                    origin,
                    route.upstream.span().start,
                    Some("upstream"),
                    message,
                ));
            }
            if !route.path.starts_with('/') {
                let at = find_key(text, "path", &route.path);
                return Err(invalid(text, origin, at, Some("path"), "must start with '/'".into()));
            }
        }
        if self.heartbeat.interval > Duration::ZERO && self.heartbeat.timeout.is_zero() {
            let at = find_key(text, "timeout", "");
            return Err(invalid(text, origin, at, Some("timeout"), "must be above zero".into()));
        }
        if !self.metrics_path.is_empty() && !self.metrics_path.starts_with('/') {
            let at = find_key(text, "metrics_path", "");
            return Err(invalid(
                text,
                origin,
                at,
                Some("metrics_path"),
                "must start with '/'".into(),
            ));
        }
        if self.upstreams.iter().any(|u| u.weight == 0) {
            let at = find_key(text, "weight", "0");
            return Err(invalid(text, origin, at, Some("weight"), "must be at least 1".into()));
        }
        Ok(())
    }
}

/// Where byte `at` of a TOML `text` is, for an error message: its line (from 1) and the key
/// assigned or table opened on that line (`?` when there is none). Shared with `wsengine
/// serve`'s configuration.
pub fn locate(text: &str, at: usize) -> (usize, String) {
    let at = at.min(text.len());
    let line = text.as_bytes().iter().take(at).filter(|&&b| b == b'\n').count() + 1;
    (line, key_on_line(text, line))
}

/// Builds an error at byte `at`, naming `key` (or the key written on that line).
fn invalid(text: &str, origin: &str, at: usize, key: Option<&str>, message: String) -> ConfigError {
    let (line, on_line) = locate(text, at);
    let key = key.map_or(on_line, str::to_owned);
    ConfigError::Invalid {
        origin: origin.to_owned(),
        line,
        key,
        message: message.trim().to_owned(),
    }
}

/// The key assigned on `line` (`a = ...`), or the table header (`[a]`, `[[a]]`), or `?`.
fn key_on_line(text: &str, line: usize) -> String {
    let Some(source) = text.lines().nth(line.saturating_sub(1)) else {
        return "?".into();
    };
    let source = source.trim();
    if let Some(table) = source.strip_prefix('[') {
        return table.trim_matches(|c| c == '[' || c == ']' || c == ' ').to_owned();
    }
    match source.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() => key.trim().trim_matches('"').to_owned(),
        _ => "?".into(),
    }
}

/// The byte offset of the first line assigning `key` (containing `value` if non-empty).
fn find_key(text: &str, key: &str, value: &str) -> usize {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == key && (value.is_empty() || v.contains(value)) {
                return offset;
            }
        }
        offset += line.len();
    }
    0
}

/// Parses `15s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (expected e.g. \"15s\", \"500ms\")"))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {text:?} (ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// Deserializes a duration written as text (`"15s"`, `"500ms"`, `"2m"`) or as whole seconds;
/// for `#[serde(deserialize_with)]`, shared with `wsengine serve`'s configuration.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Seconds(u64),
    }
    match Raw::deserialize(d)? {
        Raw::Text(text) => parse_duration(&text).map_err(de::Error::custom),
        Raw::Seconds(s) => Ok(Duration::from_secs(s)),
    }
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn backend_url<'de, D: Deserializer<'de>>(d: D) -> Result<BackendUrl, D::Error> {
    let text = String::deserialize(d)?;
    parse_backend_url(&text).map_err(de::Error::custom)
}

/// Parses `ws://`, `wss://`, `http://` or `https://` URLs naming a host (and port).
pub fn parse_backend_url(text: &str) -> Result<BackendUrl, String> {
    let uri: http::Uri = text.parse().map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("ws" | "http") => false,
        Some("wss" | "https") => true,
        _ => {
            return Err(format!(
                "URL {text:?} must start with ws://, wss://, http:// or https://"
            ));
        }
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("URL {text:?} names no host"))?;
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    if uri.query().is_some() {
        return Err(format!("URL {text:?} must not have a query"));
    }
    Ok(BackendUrl {
        tls,
        host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
        port,
        base_path: uri.path().trim_end_matches('/').to_owned(),
    })
}

fn default_metrics_path() -> String {
    "/metrics".into()
}
fn default_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_check_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_check_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_fail_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_frame() -> usize {
    16 << 20
}
fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:8080"

[[routes]]
path = "/ws/chat"
upstream = "chat_servers"
strip_prefix = true
websocket = true
allowed_paths = ["/ws/chat", "/ws/chat/room"]

[[upstreams]]
name = "chat_servers"
url = "http://127.0.0.1:3001"
weight = 1

[[upstreams]]
name = "chat_servers"
url = "ws://127.0.0.1:3002/base/"
weight = 2

[load_balancing]
method = "least_connections"

[heartbeat]
interval = "15s"
timeout = "10s"
"#;

    fn error_of(text: &str) -> (usize, String, String) {
        match Config::parse(text, "test.toml") {
            Err(ConfigError::Invalid { line, key, message, .. }) => (line, key, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_bws_shaped_example() {
        let config = Config::parse(GOOD, "test.toml").unwrap();
        assert_eq!(config.routes.len(), 1);
        assert_eq!(config.upstreams[1].url.base_path, "/base");
        assert_eq!(config.upstreams[1].url.port, 3002);
        assert_eq!(config.load_balancing.method, Method::LeastConnections);
        assert_eq!(config.heartbeat.interval, Duration::from_secs(15));
        assert_eq!(config.metrics_path, "/metrics");
        let minimal = "listen = \"127.0.0.1:1\"\n";
        let config = Config::parse(minimal, "t").unwrap();
        assert_eq!(config.load_balancing.retries, 1);
        assert_eq!(config.heartbeat.interval, Duration::from_secs(15));
        assert_eq!(config.health_check.max_fails, 3);
    }

    #[test]
    fn unknown_upstream_names_key_and_line() {
        let text = GOOD.replace("upstream = \"chat_servers\"", "upstream = \"nope\"");
        let (line, key, message) = error_of(&text);
        assert_eq!((line, key.as_str()), (6, "upstream"));
        assert!(message.contains("nope"), "{message}");
    }

    #[test]
    fn bad_duration_names_key_and_line() {
        let text = GOOD.replace("interval = \"15s\"", "interval = \"15 parsecs\"");
        let (line, key, message) = error_of(&text);
        assert_eq!((line, key.as_str()), (25, "interval"), "{message}");
        assert!(message.contains("parsecs"), "{message}");
    }

    #[test]
    fn unknown_method_and_unknown_key_and_bad_url() {
        let (line, key, _) = error_of(&GOOD.replace("least_connections", "random"));
        assert_eq!((line, key.as_str()), (22, "method"));
        let (line, key, message) = error_of(&GOOD.replace("strip_prefix", "strip_prefx"));
        assert_eq!((line, key.as_str()), (7, "strip_prefx"), "{message}");
        let (line, key, message) = error_of(&GOOD.replace("http://127.0.0.1:3001", "ftp://x"));
        assert_eq!((line, key.as_str()), (13, "url"), "{message}");
        let (line, key, _) = error_of(&GOOD.replace("127.0.0.1:8080", "nowhere"));
        assert_eq!((line, key.as_str()), (2, "listen"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
