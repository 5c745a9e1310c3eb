//! The key layout in Redis (`P` is [`RedisConfig::prefix`](crate::RedisConfig::prefix),
//! `<ch>` is `<app>:<name>`, a channel field is `<app>\x1f<name>`):
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `P:nodes` | hash | node id -> last heartbeat (ms since the epoch) |
//! | `P:alive:<node>` | string, TTL | present while the node lives |
//! | `P:ch:<ch>` | shard channel | publications and node-level presence changes of a channel |
//! | `P:ctl` | channel | cluster-wide commands (close a user's connections) |
//! | `P:p:<ch>` | hash | presence: user -> number of nodes where the user is in the channel |
//! | `P:pi:<ch>` | hash | presence: user -> member info (JSON text, empty for none) |
//! | `P:s`, `P:node:<node>:s` | hash | channel field -> subscribers (cluster, node) |
//! | `P:u`, `P:node:<node>:u` | hash | user -> connections (cluster, node) |
//! | `P:i`, `P:node:<node>:i` | hash | client IP -> connections (cluster, node) |
//! | `P:t`, `P:node:<node>:t` | hash | `all` -> connections (cluster, node) |
//! | `P:node:<node>:p` | set | `<app>\x1f<name>\x1f<user>`: the node's presence entries |
//! | `P:pn:<ch>` | set | `<node>\x1f<user>`: which nodes have which users in the channel |
//! | `P:pv:<ch>` | string, TTL 1 day | the channel's presence version, one per node-level change |
//! | `P:cache:<ch>` | string, TTL | a cache channel's last publication |

use wsengine_hub::ChannelKey;

/// The shard channel of a hub channel.
pub fn channel(prefix: &str, key: &ChannelKey) -> String {
    format!("{prefix}:ch:{}:{}", key.app(), key.name())
}

/// The control channel.
pub fn control(prefix: &str) -> String {
    format!("{prefix}:ctl")
}

/// The hash of live nodes.
pub fn nodes(prefix: &str) -> String {
    format!("{prefix}:nodes")
}

/// A node's liveness key.
pub fn alive(prefix: &str, node: &str) -> String {
    format!("{prefix}:alive:{node}")
}

/// A cluster-wide table (`s`, `u`, `i`, `t`).
pub fn table(prefix: &str, table: &str) -> String {
    format!("{prefix}:{table}")
}

/// A node's table (`s`, `u`, `i`, `t`).
pub fn node_table(prefix: &str, node: &str, table: &str) -> String {
    format!("{prefix}:node:{node}:{table}")
}

/// A presence channel's member infos.
pub fn presence_info(prefix: &str, key: &ChannelKey) -> String {
    format!("{prefix}:pi:{}:{}", key.app(), key.name())
}

/// A cache channel's last publication.
pub fn cache(prefix: &str, key: &ChannelKey) -> String {
    format!("{prefix}:cache:{}:{}", key.app(), key.name())
}

/// A channel as a field of `P:s`.
pub fn channel_field(key: &ChannelKey) -> String {
    format!("{}\x1f{}", key.app(), key.name())
}

/// The channel a `P:s` field names.
pub fn parse_channel_field(field: &str) -> Option<ChannelKey> {
    let (app, name) = field.split_once('\x1f')?;
    Some(ChannelKey::new(app, name))
}

/// A presence entry as a member of `P:node:<node>:p`.
pub fn presence_field(key: &ChannelKey, user: &str) -> String {
    format!("{}\x1f{}\x1f{user}", key.app(), key.name())
}

/// The channel and user a `P:node:<node>:p` member names.
pub fn parse_presence_field(field: &str) -> Option<(ChannelKey, &str)> {
    let (app, rest) = field.split_once('\x1f')?;
    let (name, user) = rest.split_once('\x1f')?;
    Some((ChannelKey::new(app, name), user))
}

/// Whether a channel keeps its last event (Pusher cache channels).
pub fn is_cache_channel(key: &ChannelKey) -> bool {
    let name = key.name();
    [
        "cache-",
        "private-cache-",
        "presence-cache-",
        "private-encrypted-cache-",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}
