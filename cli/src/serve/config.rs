//! `wsengine serve`'s configuration: a TOML file (or the embedded default), `WSENGINE_*`
//! environment variables and `--listen` over it. Every error in the file names the key and the
//! line it is on; an error in a variable names the variable.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use toml::Spanned;
use wsengine_hub::auth::origin::OriginPolicy;
use wsengine_proxy::config::duration;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    /// The file is not a valid configuration; `line` is 1-based.
    #[error("{origin}:{line}: {key}: {message}")]
    Invalid {
        origin: String,
        line: usize,
        key: String,
        message: String,
    },
    /// An environment variable overrides a key with a value it cannot take.
    #[error("{var}: {message}")]
    Env { var: String, message: String },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// The plain (no TLS) listener.
    #[serde(default = "default_listen", deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// More listeners, with TLS when they name a certificate and key.
    #[serde(default)]
    pub listeners: Vec<ListenerConfig>,
    /// The app `/ws` and `/tank` clients belong to (its id); the first app when absent.
    #[serde(default)]
    pub default_app: Option<Spanned<String>>,
    /// Apps (Pusher's id, key, secret); the embedded default app when absent.
    #[serde(default = "default_apps")]
    pub apps: Vec<AppConfig>,
    /// Allowed browser origins (`https://*.example.com`, `http://localhost:*`); any when absent.
    #[serde(default, deserialize_with = "origins")]
    pub origins: Option<Vec<String>>,
    /// Refuse upgrades without an `Origin` header (only browsers expected).
    #[serde(default)]
    pub deny_missing_origin: bool,
    /// Proxies (IPs or CIDR networks) whose `X-Forwarded-For` names the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Who native and tank clients are.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Connection and message limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// WebSocket heartbeats.
    #[serde(default)]
    pub heartbeat: HeartbeatConfig,
    /// Pusher settings shared by every app.
    #[serde(default)]
    pub pusher: PusherSettings,
    /// What happens to a connection that does not read fast enough.
    #[serde(default)]
    pub slow_consumer: SlowConsumer,
    /// `in-process` (one node), or a `redis://` URL: nodes sharing it act as one.
    #[serde(default = "in_process", deserialize_with = "broker")]
    pub broker: String,
    /// Logs.
    #[serde(default)]
    pub log: LogConfig,
    /// Graceful drain on SIGTERM/SIGINT.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// Runtime worker threads (one per core when absent).
    #[serde(default)]
    pub threads: Option<usize>,
    /// How WebSocket upgrades reach the hub: `direct` (the engine reads the request itself) or
    /// `hyper` (hyper parses it and hands the socket over). Both are served; this picks the path
    /// for a connection's first request.
    #[serde(default)]
    pub upgrades: UpgradePath,
}

/// One more listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenerConfig {
    /// Address to bind.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// PEM certificate chain (with `tls_key`: a TLS listener).
    #[serde(default)]
    pub tls_cert: Option<Spanned<PathBuf>>,
    /// PEM private key.
    #[serde(default)]
    pub tls_key: Option<Spanned<PathBuf>>,
}

/// A Pusher app (soketi's array-driver app).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppConfig {
    /// App id (HTTP API path `/apps/<id>/…`).
    pub id: Spanned<String>,
    /// App key (WebSocket path `/app/<key>`).
    pub key: Spanned<String>,
    /// Signs private/presence channel auth and HTTP API requests.
    pub secret: String,
    /// Clients may send `client-*` events (native: publish to subscribed channels, whispers).
    #[serde(default)]
    pub client_events: bool,
    /// Pusher user authentication (`pusher:signin`).
    #[serde(default)]
    pub user_authentication: bool,
    /// Where channel events are posted.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// A disabled app refuses Pusher connections (4003) and HTTP API requests (403); its open
    /// connections are closed when a reload disables it. The default app cannot be disabled.
    #[serde(default = "enabled")]
    pub enabled: Spanned<bool>,
    /// Pusher connections the app may hold at once; beyond it a client gets 4100 (0: no cap).
    #[serde(default)]
    pub max_connections: usize,
    /// Client events one Pusher connection may send a second; beyond it `pusher:error` 4301
    /// (0: no cap).
    #[serde(default = "client_events_per_second")]
    pub client_events_per_second: u32,
    /// Largest event `data` in bytes, from the HTTP API and from clients.
    #[serde(default = "max_event_size")]
    pub max_event_size: usize,
    /// With `user_authentication`: a connection not signed in this long after connecting is
    /// closed with 4009 (0: never).
    #[serde(default, deserialize_with = "duration")]
    pub signin_timeout: Duration,
}

fn enabled() -> Spanned<bool> {
    Spanned::new(0..0, true)
}

fn client_events_per_second() -> u32 {
    10
}

fn max_event_size() -> usize {
    10 << 10
}

/// Pusher settings shared by every app (a change needs a restart).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PusherSettings {
    /// Silence after which a Pusher client pings, told to clients at connect (whole seconds).
    #[serde(deserialize_with = "duration")]
    pub activity_timeout: Duration,
    /// How long a client pinged for inactivity has to answer before it is closed with 4201.
    #[serde(deserialize_with = "duration")]
    pub pong_timeout: Duration,
    /// How far an HTTP API request's `auth_timestamp` may be from now.
    #[serde(deserialize_with = "duration")]
    pub timestamp_window: Duration,
    /// Largest HTTP API body in bytes (413 beyond).
    pub max_body_size: usize,
    /// Channels one `POST /events` may name.
    pub max_trigger_channels: usize,
    /// Events one `POST /batch_events` may hold.
    pub max_batch_events: usize,
    /// How long a cache channel keeps its last event.
    #[serde(deserialize_with = "duration")]
    pub cache_ttl: Duration,
}

impl Default for PusherSettings {
    fn default() -> Self {
        let pusher = wsengine_hub::pusher::PusherConfig::new(Vec::new());
        Self {
            activity_timeout: Duration::from_secs(u64::from(pusher.activity_timeout)),
            pong_timeout: pusher.pong_timeout,
            timestamp_window: Duration::from_secs(pusher.timestamp_window),
            max_body_size: pusher.max_body_bytes,
            max_trigger_channels: pusher.max_trigger_channels,
            max_batch_events: pusher.max_batch_events,
            cache_ttl: pusher.cache_ttl,
        }
    }
}

/// A webhook target.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookConfig {
    /// `http://` or `https://` URL.
    #[serde(deserialize_with = "http_url")]
    pub url: String,
    /// Which events go there.
    pub events: Vec<WebhookEvent>,
    /// `https://` only: PEM file of the certificate authorities to trust for this URL instead
    /// of the webpki (Mozilla) roots.
    #[serde(default)]
    pub ca: Option<Spanned<PathBuf>>,
}

/// A webhook event name (Pusher's).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WebhookEvent {
    ChannelOccupied,
    ChannelVacated,
    MemberAdded,
    MemberRemoved,
    ClientEvent,
    CacheMiss,
}

/// Identity of native and tank clients.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthConfig {
    /// HS256 secret for bearer tokens (header, `token` query parameter or cookie).
    #[serde(default)]
    pub jwt_secret: Option<String>,
    /// RS256 public key (PEM file).
    #[serde(default)]
    pub jwt_public_key_file: Option<Spanned<PathBuf>>,
    /// Required `iss`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud`.
    #[serde(default)]
    pub audience: Option<String>,
    /// Without tokens: may anyone join private and presence channels (default yes, as the demo
    /// needs)? The user id is then the `user_id` query parameter.
    #[serde(default)]
    pub deny_protected_channels: bool,
}

/// Limits. `0` turns a cap off.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsConfig {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_connections_per_user: usize,
    pub connects_per_second_per_ip: u32,
    pub messages_per_second: u32,
    pub whispers_per_second: u32,
    pub max_message_size: usize,
    pub max_channels_per_connection: usize,
    pub max_presence_members: usize,
    pub max_queued_messages: usize,
    pub write_buffer_limit: usize,
    #[serde(deserialize_with = "duration")]
    pub write_timeout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 100,
            max_connections_per_user: 0,
            connects_per_second_per_ip: 50,
            messages_per_second: 100,
            whispers_per_second: 10,
            max_message_size: 64 << 10,
            max_channels_per_connection: 100,
            max_presence_members: 1000,
            max_queued_messages: 1024,
            write_buffer_limit: 256 << 10,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Heartbeat pings and the pong deadline.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HeartbeatConfig {
    /// A ping after this much silence; `0` turns heartbeats off.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// How long a pong may take.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The slow-consumer policy.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SlowConsumer {
    /// Close with 1013 (try again later).
    #[default]
    Disconnect,
    /// Drop the message that does not fit.
    DropNewest,
    /// Drop the oldest queued message.
    DropOldest,
}

/// How upgrades reach the hub.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum UpgradePath {
    /// The engine's own accept on the socket.
    #[default]
    Direct,
    /// Through hyper's upgrade.
    Hyper,
}

/// Logs.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter (`info`, `wsengine=debug`); `--log` when absent.
    pub level: Option<String>,
    /// Connection and message counts are logged this often; `0` turns it off.
    #[serde(deserialize_with = "duration")]
    pub stats_interval: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: None,
            stats_interval: Duration::from_secs(60),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Graceful drain.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ShutdownConfig {
    /// 1001 closes are spread over this window.
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
    /// Connections still open this long after the signal are dropped.
    #[serde(deserialize_with = "duration")]
    pub deadline: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// Reads the file at `path` (the embedded default when `None`), then applies `env`
    /// (`WSENGINE_KEY`, `WSENGINE_TABLE__KEY`) and `listen`.
    pub(crate) fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        listen: Option<SocketAddr>,
    ) -> Result<Self, ConfigError> {
        let (text, origin) = match path {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                    path: path.to_owned(),
                    error,
                })?,
                path.display().to_string(),
            ),
            None => (String::new(), "(default)".to_owned()),
        };
        let mut config = Self::parse(&text, &origin)?;
        let overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with("WSENGINE_") && name != "WSENGINE_LOG")
            .collect();
        if !overrides.is_empty() {
            config = Self::with_env(&text, &overrides)?;
        }
        if let Some(listen) = listen {
            config.listen = listen;
        }
        Ok(config)
    }

    /// Parses and checks `text`; `origin` names it in errors.
    pub(crate) fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| {
            let start = e.span().map_or(0, |span| span.start);
            invalid(text, origin, start, None, e.message().to_owned())
        })?;
        config.check(text, origin)?;
        Ok(config)
    }

    /// The id of the app `/ws` and `/tank` clients belong to.
    pub(crate) fn default_app(&self) -> &AppConfig {
        let wanted = self.default_app.as_ref().map(|name| name.get_ref().as_str());
        self.apps
            .iter()
            .find(|app| Some(app.id.get_ref().as_str()) == wanted)
            .or_else(|| self.apps.first())
            .unwrap_or(&DEFAULT_APP_FALLBACK)
    }

    /// The origin policy, `None` allowing any.
    pub(crate) fn origin_policy(&self) -> Option<OriginPolicy> {
        let patterns = self.origins.as_ref()?;
        let missing = if self.deny_missing_origin {
            wsengine_hub::auth::origin::MissingOrigin::Deny
        } else {
            wsengine_hub::auth::origin::MissingOrigin::Allow
        };
        // Patterns were parsed when the file was read; an error here cannot happen, and
        // refusing every origin is the safe answer if it ever did.
        Some(
            OriginPolicy::new(patterns)
                .unwrap_or_else(|_| OriginPolicy::new(Vec::<String>::new()).unwrap_or_else(|_| OriginPolicy::any()))
                .with_missing(missing),
        )
    }

    fn with_env(text: &str, overrides: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Env {
            var: "WSENGINE_*".into(),
            message: e.message().to_owned(),
        })?;
        for (var, value) in overrides {
            let path: Vec<String> = var
                .trim_start_matches("WSENGINE_")
                .split("__")
                .map(str::to_ascii_lowercase)
                .collect();
            set_path(&mut table, &path, parse_env_value(value)).map_err(|message| ConfigError::Env {
                var: var.clone(),
                message,
            })?;
        }
        let merged = toml::to_string(&table).map_err(|e| ConfigError::Env {
            var: "WSENGINE_*".into(),
            message: e.to_string(),
        })?;
        Self::parse(&merged, "(environment)").map_err(|error| match error {
            ConfigError::Invalid { key, message, .. } => {
                let var = overrides
                    .iter()
                    .map(|(var, _)| var.as_str())
                    .find(|var| var.to_ascii_lowercase().ends_with(&key.to_ascii_lowercase()))
                    .unwrap_or("WSENGINE_*");
                ConfigError::Env {
                    var: var.to_owned(),
                    message: format!("{key}: {message}"),
                }
            }
            other => other,
        })
    }

    fn check(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let mut ids = HashSet::new();
        let mut keys = HashSet::new();
        for app in &self.apps {
            if app.id.get_ref().is_empty() || !ids.insert(app.id.get_ref().as_str()) {
                let message = format!("app id {:?} is empty or used twice", app.id.get_ref());
                return Err(invalid(text, origin, app.id.span().start, Some("id"), message));
            }
            if app.key.get_ref().is_empty() || !keys.insert(app.key.get_ref().as_str()) {
                let message = format!("app key {:?} is empty or used twice", app.key.get_ref());
                return Err(invalid(text, origin, app.key.span().start, Some("key"), message));
            }
        }
        if self.apps.is_empty() {
            let at = find_key(text, "apps");
            return Err(invalid(
                text,
                origin,
                at,
                Some("apps"),
                "at least one app is needed".into(),
            ));
        }
        if let Some(name) = &self.default_app {
            if !self.apps.iter().any(|app| app.id.get_ref() == name.get_ref()) {
                let message = format!("no [[apps]] entry has id {:?}", name.get_ref());
                return Err(invalid(text, origin, name.span().start, Some("default_app"), message));
            }
        }
        let default = self.default_app();
        if !*default.enabled.get_ref() {
            let message = format!(
                "app {:?} is the default app (of /ws and /tank clients) and cannot be disabled",
                default.id.get_ref()
            );
            return Err(invalid(
                text,
                origin,
                default.enabled.span().start,
                Some("enabled"),
                message,
            ));
        }
        let activity = self.pusher.activity_timeout;
        if activity.subsec_nanos() != 0 || !(1..=u64::from(u32::MAX)).contains(&activity.as_secs()) {
            let at = find_key(text, "activity_timeout");
            let message = "must be a whole number of seconds, at least 1".to_owned();
            return Err(invalid(text, origin, at, Some("activity_timeout"), message));
        }
        for listener in &self.listeners {
            match (&listener.tls_cert, &listener.tls_key) {
                (Some(cert), Some(key)) => {
                    for (name, file) in [("tls_cert", cert), ("tls_key", key)] {
                        if let Err(error) = std::fs::metadata(file.get_ref()) {
                            let message = format!("cannot read {}: {error}", file.get_ref().display());
                            return Err(invalid(text, origin, file.span().start, Some(name), message));
                        }
                    }
                    // A certificate and key that rustls will not take fail here, not at bind.
                    if let Err(message) = super::accept::tls_acceptor(cert.get_ref(), key.get_ref()) {
                        return Err(invalid(text, origin, cert.span().start, Some("tls_cert"), message));
                    }
                }
                (Some(file), None) | (None, Some(file)) => {
                    let message = "tls_cert and tls_key go together".to_owned();
                    return Err(invalid(text, origin, file.span().start, None, message));
                }
                (None, None) => {}
            }
        }
        for webhook in self.apps.iter().flat_map(|app| &app.webhooks) {
            let Some(ca) = &webhook.ca else { continue };
            let at = ca.span().start;
            if !webhook.url.starts_with("https://") {
                let message = format!("a CA file is for https:// URLs, and {:?} is not one", webhook.url);
                return Err(invalid(text, origin, at, Some("ca"), message));
            }
            // A file rustls cannot take fails here, not at the first webhook.
            if let Err(message) = wsengine_proxy::tls::client_config(ca.get_ref()) {
                return Err(invalid(text, origin, at, Some("ca"), message));
            }
        }
        if let Some(file) = &self.auth.jwt_public_key_file {
            if let Err(error) = std::fs::metadata(file.get_ref()) {
                let message = format!("cannot read {}: {error}", file.get_ref().display());
                let at = file.span().start;
                return Err(invalid(text, origin, at, Some("jwt_public_key_file"), message));
            }
        }
        if let Err(error) = wsengine_hub::limits::ClientIpResolver::parse(
            &self.trusted_proxies,
            wsengine_hub::limits::ForwardedHeader::XForwardedFor,
        ) {
            let at = find_key(text, "trusted_proxies");
            return Err(invalid(text, origin, at, Some("trusted_proxies"), error.to_string()));
        }
        if self.threads == Some(0) {
            let at = find_key(text, "threads");
            return Err(invalid(text, origin, at, Some("threads"), "must be at least 1".into()));
        }
        if !self.heartbeat.interval.is_zero() && self.heartbeat.timeout.is_zero() {
            let at = find_key(text, "timeout");
            return Err(invalid(text, origin, at, Some("timeout"), "must be above zero".into()));
        }
        Ok(())
    }
}

static DEFAULT_APP_FALLBACK: std::sync::LazyLock<AppConfig> = std::sync::LazyLock::new(embedded_app);

fn embedded_app() -> AppConfig {
    AppConfig {
        id: Spanned::new(0..0, "app-id".into()),
        key: Spanned::new(0..0, "app-key".into()),
        secret: "app-secret".into(),
        client_events: true,
        user_authentication: false,
        webhooks: Vec::new(),
        enabled: enabled(),
        max_connections: 0,
        client_events_per_second: client_events_per_second(),
        max_event_size: max_event_size(),
        signin_timeout: Duration::ZERO,
    }
}

fn default_apps() -> Vec<AppConfig> {
    vec![embedded_app()]
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 6001))
}

fn in_process() -> String {
    "in-process".into()
}

/// Builds an error at byte `at`, naming `key` (or the key written on that line).
fn invalid(text: &str, origin: &str, at: usize, key: Option<&str>, message: String) -> ConfigError {
    let (line, on_line) = wsengine_proxy::config::locate(text, at);
    let key = key.map_or(on_line, str::to_owned);
    ConfigError::Invalid {
        origin: origin.to_owned(),
        line,
        key,
        message: message.trim().to_owned(),
    }
}

/// The byte offset of the first line assigning or opening `key`.
fn find_key(text: &str, key: &str) -> usize {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start().trim_start_matches('[');
        let name = trimmed.split(['=', ']']).next().unwrap_or("").trim();
        if name == key {
            return offset;
        }
        offset += line.len();
    }
    0
}

/// A variable's value as TOML (`100`, `true`, `["a"]`), else as a string.
fn parse_env_value(value: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut table| table.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("names no key".into()),
        [key] => {
            table.insert(key.clone(), value);
            Ok(())
        }
        [head, rest @ ..] => {
            let entry = table
                .entry(head.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(inner) => set_path(inner, rest, value),
                _ => Err(format!("{head} is not a table")),
            }
        }
    }
}

fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse()
        .map_err(|e| de::Error::custom(format!("{text:?} is not an address like 127.0.0.1:6001 ({e})")))
}

fn origins<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let patterns = Vec::<String>::deserialize(d)?;
    OriginPolicy::new(&patterns).map_err(de::Error::custom)?;
    Ok(Some(patterns))
}

fn broker<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if text == "in-process" {
        Ok(text)
    } else if text.starts_with("redis://") {
        wsengine_redis::RedisConfig::new(text.as_str()).map_err(de::Error::custom)?;
        Ok(text)
    } else {
        Err(de::Error::custom(format!(
            "unknown broker {text:?} (expected \"in-process\" or a redis:// URL)"
        )))
    }
}

fn http_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    let parsed: http::Uri = text
        .parse()
        .map_err(|e| de::Error::custom(format!("{text:?} is not a URL: {e}")))?;
    match (parsed.scheme_str(), parsed.host()) {
        (Some("http" | "https"), Some(_)) => Ok(text),
        _ => Err(de::Error::custom(format!("{text:?} is not an http:// or https:// URL"))),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
