//! Hub statistics: counters the hub bumps as things happen, a [`Snapshot`] on request, and the
//! snapshot as JSON or Prometheus text.
//!
//! Per-message calls ([`HubStats::on_message_in`], [`HubStats::on_message_out`],
//! [`HubStats::on_dropped`]) are relaxed atomic adds on cache lines of their own, so cores
//! publishing and receiving at once do not bounce one line between them. Subscriber counts per
//! channel live in a sharded map touched only on subscribe and unsubscribe; a channel whose count
//! reaches zero is removed, so the map is as large as the set of live channels.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

/// Kinds of error the hub reports, one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Authentication or authorization failed.
    Auth,
    /// A connection or message exceeded a rate.
    RateLimited,
    /// A connection cap or channel cap was reached.
    OverCapacity,
    /// A peer broke the wire protocol (malformed frame, bad JSON, unknown action).
    Protocol,
    /// A subscriber could not keep up with its outbound queue.
    SlowConsumer,
    /// Anything else (I/O errors, broker failures).
    Other,
}

impl ErrorKind {
    /// Every kind, in counter order.
    pub const ALL: [ErrorKind; 6] = [
        Self::Auth,
        Self::RateLimited,
        Self::OverCapacity,
        Self::Protocol,
        Self::SlowConsumer,
        Self::Other,
    ];

    /// The label value used in JSON and Prometheus output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::RateLimited => "rate_limited",
            Self::OverCapacity => "over_capacity",
            Self::Protocol => "protocol",
            Self::SlowConsumer => "slow_consumer",
            Self::Other => "other",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Auth => 0,
            Self::RateLimited => 1,
            Self::OverCapacity => 2,
            Self::Protocol => 3,
            Self::SlowConsumer => 4,
            Self::Other => 5,
        }
    }
}

/// The hub's counters; share one behind an `Arc`. All methods take `&self`.
#[derive(Debug)]
pub struct HubStats {
    inbound: Padded<Flow>,
    outbound: Padded<Flow>,
    dropped: Padded<AtomicU64>,
    rare: Rare,
    channels: [Mutex<HashMap<ChannelKey, u64>>; SHARDS],
    max_channel_series: usize,
}

/// Per-channel series beyond this many are left out of snapshots by default: a Prometheus series
/// per channel is fine for rooms, ruinous for one channel per user.
pub const DEFAULT_MAX_CHANNEL_SERIES: usize = 100;

impl Default for HubStats {
    fn default() -> Self {
        Self::new()
    }
}

impl HubStats {
    /// Zeroed counters; snapshots list the [`DEFAULT_MAX_CHANNEL_SERIES`] largest channels.
    pub fn new() -> Self {
        Self::with_max_channel_series(DEFAULT_MAX_CHANNEL_SERIES)
    }

    /// Zeroed counters; snapshots list the `max` largest channels (by subscribers).
    pub fn with_max_channel_series(max: usize) -> Self {
        Self {
            inbound: Padded(Flow::default()),
            outbound: Padded(Flow::default()),
            dropped: Padded(AtomicU64::new(0)),
            rare: Rare::default(),
            channels: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            max_channel_series: max,
        }
    }

    /// A connection opened.
    pub fn on_connect(&self) {
        self.rare.connections.fetch_add(1, Relaxed);
        self.rare.connections_total.fetch_add(1, Relaxed);
    }

    /// A connection closed (any cause). Extra calls never take the gauge below zero.
    pub fn on_disconnect(&self) {
        saturating_decrement(&self.rare.connections);
    }

    /// A connection subscribed to `channel` of `app`.
    pub fn on_subscribe(&self, app: &str, channel: &str) {
        self.rare.subscriptions.fetch_add(1, Relaxed);
        let mut shard = self.shard(app, channel);
        match shard.get_mut(&(app, channel) as &dyn KeyRef) {
            Some(count) => *count += 1,
            None => {
                shard.insert(
                    ChannelKey {
                        app: app.into(),
                        channel: channel.into(),
                    },
                    1,
                );
                self.rare.channels.fetch_add(1, Relaxed);
            }
        }
    }

    /// A connection left `channel` of `app` (unsubscribe or disconnect). Unknown channels are
    /// ignored, so the counts never go negative.
    pub fn on_unsubscribe(&self, app: &str, channel: &str) {
        let mut shard = self.shard(app, channel);
        let key = &(app, channel) as &dyn KeyRef;
        let Some(count) = shard.get_mut(key) else { return };
        *count = count.saturating_sub(1);
        if *count == 0 {
            shard.remove(key);
            saturating_decrement(&self.rare.channels);
        }
        drop(shard);
        saturating_decrement(&self.rare.subscriptions);
    }

    /// A message of `bytes` payload bytes arrived from a client.
    #[inline]
    pub fn on_message_in(&self, bytes: usize) {
        self.inbound.0.add(1, bytes as u64);
    }

    /// A message of `bytes` payload bytes was queued to `count` connections.
    #[inline]
    pub fn on_message_out(&self, bytes: usize, count: u64) {
        self.outbound.0.add(count, (bytes as u64).saturating_mul(count));
    }

    /// An outbound message was dropped (slow-consumer policy).
    #[inline]
    pub fn on_dropped(&self) {
        self.dropped.0.fetch_add(1, Relaxed);
    }

    /// A message or connection was refused by a rate limit.
    pub fn on_rate_limited(&self) {
        self.rare.rate_limited.fetch_add(1, Relaxed);
    }

    /// An error of `kind` happened.
    pub fn on_error(&self, kind: ErrorKind) {
        if let Some(counter) = self.rare.errors.get(kind.index()) {
            counter.fetch_add(1, Relaxed);
        }
    }

    /// Current subscribers of `channel` of `app`.
    pub fn subscribers(&self, app: &str, channel: &str) -> u64 {
        self.shard(app, channel)
            .get(&(app, channel) as &dyn KeyRef)
            .copied()
            .unwrap_or(0)
    }

    /// The counters now. Each counter is read once, relaxed: the snapshot is not one atomic
    /// instant across counters, which monitoring does not need.
    pub fn snapshot(&self) -> Snapshot {
        let mut channels: Vec<ChannelStats> = Vec::new();
        for shard in &self.channels {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            channels.extend(shard.iter().map(|(key, &subscribers)| ChannelStats {
                app: key.app.to_string(),
                channel: key.channel.to_string(),
                subscribers,
            }));
        }
        channels.sort_unstable_by(|a, b| {
            b.subscribers
                .cmp(&a.subscribers)
                .then_with(|| (&a.app, &a.channel).cmp(&(&b.app, &b.channel)))
        });
        channels.truncate(self.max_channel_series);
        Snapshot {
            connections: self.rare.connections.load(Relaxed),
            connections_total: self.rare.connections_total.load(Relaxed),
            channels: self.rare.channels.load(Relaxed),
            subscriptions: self.rare.subscriptions.load(Relaxed),
            messages_in: self.inbound.0.messages.load(Relaxed),
            bytes_in: self.inbound.0.bytes.load(Relaxed),
            messages_out: self.outbound.0.messages.load(Relaxed),
            bytes_out: self.outbound.0.bytes.load(Relaxed),
            dropped: self.dropped.0.load(Relaxed),
            rate_limited: self.rare.rate_limited.load(Relaxed),
            errors: ErrorKind::ALL
                .iter()
                .map(|&kind| ErrorCount {
                    kind,
                    count: self
                        .rare
                        .errors
                        .get(kind.index())
                        .map_or(0, |counter| counter.load(Relaxed)),
                })
                .collect(),
            top_channels: channels,
        }
    }

    fn shard(&self, app: &str, channel: &str) -> std::sync::MutexGuard<'_, HashMap<ChannelKey, u64>> {
        let mut hasher = DefaultHasher::new();
        (app, channel).hash(&mut hasher);
        let index = (hasher.finish() as usize) % SHARDS;
        // `index < SHARDS` by the modulo, so the fallback is never taken.
        let shard = self.channels.get(index).unwrap_or(&self.channels[0]);
        shard.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The counters at one moment; serializes to JSON as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Open connections.
    pub connections: u64,
    /// Connections opened since start.
    pub connections_total: u64,
    /// Channels with at least one subscriber.
    pub channels: u64,
    /// Subscriptions over all channels.
    pub subscriptions: u64,
    /// Messages received from clients.
    pub messages_in: u64,
    /// Payload bytes received from clients.
    pub bytes_in: u64,
    /// Messages queued to clients (one per recipient).
    pub messages_out: u64,
    /// Payload bytes queued to clients (per recipient).
    pub bytes_out: u64,
    /// Outbound messages dropped by the slow-consumer policy.
    pub dropped: u64,
    /// Messages or connections refused by a rate limit.
    pub rate_limited: u64,
    /// Errors by kind, every kind listed.
    pub errors: Vec<ErrorCount>,
    /// The largest channels by subscribers, largest first, at most the configured number.
    pub top_channels: Vec<ChannelStats>,
}

/// One error counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    /// The kind.
    pub kind: ErrorKind,
    /// How many since start.
    pub count: u64,
}

/// One channel's subscriber count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelStats {
    /// The app the channel belongs to.
    pub app: String,
    /// The channel name.
    pub channel: String,
    /// Current subscribers.
    pub subscribers: u64,
}

impl Snapshot {
    /// The snapshot as a JSON object.
    pub fn to_json(&self) -> String {
        // Serializing plain integers and strings cannot fail; an empty object is the fallback
        // that keeps this infallible without a panic path.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// The snapshot in the Prometheus text exposition format 0.0.4, every metric prefixed
    /// `wsengine_hub_`, with `# HELP` and `# TYPE` lines. Serve it as
    /// `text/plain; version=0.0.4; charset=utf-8`.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(2048 + self.top_channels.len() * 96);
        let scalars: [(&str, &str, &str, u64); 10] = [
            ("connections", "gauge", "Open WebSocket connections.", self.connections),
            (
                "connections_opened_total",
                "counter",
                "WebSocket connections opened since start.",
                self.connections_total,
            ),
            (
                "channels",
                "gauge",
                "Channels with at least one subscriber.",
                self.channels,
            ),
            (
                "subscriptions",
                "gauge",
                "Subscriptions over all channels.",
                self.subscriptions,
            ),
            (
                "messages_in_total",
                "counter",
                "Messages received from clients.",
                self.messages_in,
            ),
            (
                "bytes_in_total",
                "counter",
                "Payload bytes received from clients.",
                self.bytes_in,
            ),
            (
                "messages_out_total",
                "counter",
                "Messages queued to clients, one per recipient.",
                self.messages_out,
            ),
            (
                "bytes_out_total",
                "counter",
                "Payload bytes queued to clients, per recipient.",
                self.bytes_out,
            ),
            (
                "dropped_total",
                "counter",
                "Outbound messages dropped by the slow-consumer policy.",
                self.dropped,
            ),
            (
                "rate_limited_total",
                "counter",
                "Messages or connections refused by a rate limit.",
                self.rate_limited,
            ),
        ];
        for (name, kind, help, value) in scalars {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{PREFIX}{name} {value}");
        }
        header(&mut out, "errors_total", "counter", "Errors by kind.");
        for error in &self.errors {
            let _ = writeln!(
                out,
                "{PREFIX}errors_total{{kind=\"{}\"}} {}",
                error.kind.as_str(),
                error.count
            );
        }
        header(
            &mut out,
            "channel_subscribers",
            "gauge",
            "Subscribers of the largest channels.",
        );
        for channel in &self.top_channels {
            let _ = writeln!(
                out,
                "{PREFIX}channel_subscribers{{app=\"{}\",channel=\"{}\"}} {}",
                LabelValue(&channel.app),
                LabelValue(&channel.channel),
                channel.subscribers
            );
        }
        out
    }
}

const PREFIX: &str = "wsengine_hub_";
const SHARDS: usize = 16;

/// Keeps a hot counter group on its own cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

#[derive(Debug, Default)]
struct Flow {
    messages: AtomicU64,
    bytes: AtomicU64,
}

impl Flow {
    #[inline]
    fn add(&self, messages: u64, bytes: u64) {
        self.messages.fetch_add(messages, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }
}

/// Counters touched per connection or per subscription, not per message.
#[derive(Debug, Default)]
struct Rare {
    connections: AtomicU64,
    connections_total: AtomicU64,
    channels: AtomicU64,
    subscriptions: AtomicU64,
    rate_limited: AtomicU64,
    errors: [AtomicU64; ErrorKind::ALL.len()],
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ChannelKey {
    app: Box<str>,
    channel: Box<str>,
}

/// Lets the map be searched with borrowed `(&str, &str)` without building an owned key.
trait KeyRef {
    fn key(&self) -> (&str, &str);
}

impl KeyRef for ChannelKey {
    fn key(&self) -> (&str, &str) {
        (&self.app, &self.channel)
    }
}

impl KeyRef for (&str, &str) {
    fn key(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl<'a> std::borrow::Borrow<dyn KeyRef + 'a> for ChannelKey {
    fn borrow(&self) -> &(dyn KeyRef + 'a) {
        self
    }
}

impl Hash for dyn KeyRef + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly like the derived `Hash` of `ChannelKey` (two `str`s in order).
        let (app, channel) = self.key();
        app.hash(state);
        channel.hash(state);
    }
}

impl PartialEq for dyn KeyRef + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn KeyRef + '_ {}

fn saturating_decrement(counter: &AtomicU64) {
    let _ = counter.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    // HELP text escapes backslash and newline (exposition format 0.0.4); ours has neither.
    let _ = writeln!(out, "# HELP {PREFIX}{name} {help}");
    let _ = writeln!(out, "# TYPE {PREFIX}{name} {kind}");
}

/// A label value escaped for the text format: `\` as `\\`, `"` as `\"`, newline as `\n`.
struct LabelValue<'a>(&'a str);

impl std::fmt::Display for LabelValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_follow_the_calls() {
        let stats = HubStats::new();
        stats.on_connect();
        stats.on_connect();
        stats.on_disconnect();
        stats.on_disconnect();
        stats.on_disconnect();
        stats.on_subscribe("app", "room");
        stats.on_subscribe("app", "room");
        stats.on_subscribe("other", "room");
        stats.on_unsubscribe("app", "nowhere");
        stats.on_message_in(10);
        stats.on_message_out(100, 3);
        stats.on_dropped();
        stats.on_rate_limited();
        stats.on_error(ErrorKind::Protocol);
        stats.on_error(ErrorKind::Protocol);
        let snap = stats.snapshot();
        assert_eq!((snap.connections, snap.connections_total), (0, 2));
        assert_eq!((snap.channels, snap.subscriptions), (2, 3));
        assert_eq!(
            (snap.messages_in, snap.bytes_in, snap.messages_out, snap.bytes_out),
            (1, 10, 3, 300)
        );
        assert_eq!((snap.dropped, snap.rate_limited), (1, 1));
        assert_eq!(snap.errors.len(), ErrorKind::ALL.len());
        assert!(snap.errors.contains(&ErrorCount {
            kind: ErrorKind::Protocol,
            count: 2
        }));
        assert!(snap.errors.contains(&ErrorCount {
            kind: ErrorKind::Auth,
            count: 0
        }));
        assert_eq!(stats.subscribers("app", "room"), 2);
        assert_eq!(
            snap.top_channels.first(),
            Some(&ChannelStats {
                app: "app".into(),
                channel: "room".into(),
                subscribers: 2
            })
        );
        stats.on_unsubscribe("app", "room");
        stats.on_unsubscribe("app", "room");
        stats.on_unsubscribe("app", "room");
        stats.on_unsubscribe("other", "room");
        let snap = stats.snapshot();
        assert_eq!((snap.channels, snap.subscriptions), (0, 0));
        assert!(snap.top_channels.is_empty());
    }

    #[test]
    fn top_channels_are_bounded_and_ordered() {
        let stats = HubStats::with_max_channel_series(3);
        for i in 0..10u64 {
            for _ in 0..=i {
                stats.on_subscribe("a", &format!("c{i}"));
            }
        }
        let snap = stats.snapshot();
        assert_eq!(snap.channels, 10);
        let top: Vec<_> = snap
            .top_channels
            .iter()
            .map(|c| (c.channel.as_str(), c.subscribers))
            .collect();
        assert_eq!(top, [("c9", 10), ("c8", 9), ("c7", 8)]);
    }

    #[test]
    fn json_has_every_field() {
        let stats = HubStats::new();
        stats.on_subscribe("app", "room");
        let json: serde_json::Value = serde_json::from_str(&stats.snapshot().to_json()).unwrap();
        for field in [
            "connections",
            "connections_total",
            "channels",
            "subscriptions",
            "messages_in",
            "bytes_in",
            "messages_out",
            "bytes_out",
            "dropped",
            "rate_limited",
        ] {
            assert!(json[field].is_u64(), "{field} missing in {json}");
        }
        assert_eq!(json["errors"][0], serde_json::json!({"kind": "auth", "count": 0}));
        assert_eq!(
            json["top_channels"][0],
            serde_json::json!({"app": "app", "channel": "room", "subscribers": 1})
        );
    }

    #[test]
    fn prometheus_text_is_well_formed() {
        let stats = HubStats::new();
        stats.on_connect();
        stats.on_subscribe("app", "we\\ird \"name\"\nhere");
        stats.on_error(ErrorKind::SlowConsumer);
        let text = stats.snapshot().to_prometheus();
        assert!(text.contains("# HELP wsengine_hub_connections Open WebSocket connections.\n"));
        assert!(text.contains("# TYPE wsengine_hub_connections gauge\nwsengine_hub_connections 1\n"));
        assert!(text.contains("# TYPE wsengine_hub_connections_opened_total counter\n"));
        assert!(text.contains("wsengine_hub_errors_total{kind=\"slow_consumer\"} 1\n"));
        assert!(
            text.contains(
                "wsengine_hub_channel_subscribers{app=\"app\",channel=\"we\\\\ird \\\"name\\\"\\nhere\"} 1\n"
            )
        );
        // Every sample line belongs to a family announced by a TYPE line just before its block,
        // and each family is announced once.
        let mut typed = std::collections::HashSet::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap().to_owned();
                assert!(typed.insert(name.clone()), "{name} typed twice");
                current = name;
            } else if !line.starts_with("# HELP ") {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(name, current, "sample {line:?} outside its family");
                assert!(name.starts_with("wsengine_hub_"));
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<u64>().is_ok(), "value in {line:?}");
            }
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn concurrent_updates_add_up() {
        let stats = Arc::new(HubStats::new());
        std::thread::scope(|scope| {
            for t in 0..4 {
                let stats = Arc::clone(&stats);
                scope.spawn(move || {
                    let channel = format!("c{}", t % 2);
                    for _ in 0..1000 {
                        stats.on_connect();
                        stats.on_subscribe("a", &channel);
                        stats.on_message_in(2);
                        stats.on_message_out(5, 2);
                        stats.on_unsubscribe("a", &channel);
                        stats.on_disconnect();
                    }
                });
            }
        });
        let snap = stats.snapshot();
        assert_eq!((snap.connections, snap.connections_total), (0, 4000));
        assert_eq!((snap.channels, snap.subscriptions), (0, 0));
        assert_eq!(
            (snap.messages_in, snap.bytes_in, snap.messages_out, snap.bytes_out),
            (4000, 8000, 8000, 40000)
        );
    }
}
