//! What a Pusher connection does: greeting, subscriptions with signature checks, presence
//! members once per user, client events, sign-in, and cleanup when it leaves.

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::value::RawValue;
use wsengine::{CloseCode, Message};

use super::names::{ChannelType, is_valid_channel, user_channel};
use super::sign::{channel_string, check_auth, user_string};
use super::webhook::WebhookEvent;
use super::{PresenceUser, PusherApp, PusherConn, Shared, State, wire};
use crate::channel::ChannelKey;
use crate::codec::{Data, Opening, Publication};
use crate::conn::ConnectionId;
use crate::hub::{Except, Hub, SubscribeError};
use crate::limits::TokenBucket;

/// A client frame: `{"event":…, "channel":…, "data":…}`.
#[derive(Deserialize)]
struct Frame<'a> {
    event: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct SubscribeData {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    channel_data: Option<String>,
}

#[derive(Deserialize, Default)]
struct SigninData {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    user_data: String,
}

/// `data` as a struct: an object, or a JSON string holding one (some clients send that).
fn data_as<T: for<'de> Deserialize<'de> + Default>(data: Option<&RawValue>) -> Option<T> {
    let raw = data?.get();
    if raw.starts_with('"') {
        let inner: String = serde_json::from_str(raw).ok()?;
        serde_json::from_str(&inner).ok()
    } else {
        serde_json::from_str(raw).ok()
    }
}

pub(crate) fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    let rng = ring::rand::SystemRandom::new();
    if ring::rand::SecureRandom::fill(&rng, &mut bytes).is_err() {
        // No OS randomness: the time still varies between nodes and restarts.
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos());
    }
    u32::from_le_bytes(bytes)
}

fn refuse(code: u16, message: &str) -> Opening {
    Opening {
        frames: vec![Message::from(wire::error(Some(code), message))],
        close: Some((CloseCode(code), message.to_owned())),
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

impl Shared {
    fn send(&self, hub: &Hub, connection: ConnectionId, text: String) {
        hub.send(connection, Message::from(text));
    }

    /// A new connection: `/app/<key>?protocol=7`, or a `pusher:error` and a close.
    pub(crate) fn open(&self, connection: ConnectionId, request: Option<&wsengine::Request>) -> Opening {
        let Some(request) = request else {
            return refuse(4001, "No app key");
        };
        let key = request.path().strip_prefix("/app/").unwrap_or_default();
        let Some(app) = self.app_by_key(key) else {
            return refuse(4001, &format!("App key {key} not in this cluster"));
        };
        if !app.enabled {
            return refuse(4003, "App disabled");
        }
        let protocol = request.query().and_then(|q| query_param(q, "protocol"));
        match protocol.map(str::parse::<u32>) {
            None | Some(Err(_)) => return refuse(4006, "Invalid version string format"),
            Some(Ok(version)) if !(5..=7).contains(&version) => {
                return refuse(4007, "Unsupported protocol version");
            }
            Some(Ok(_)) => {}
        }
        self.admit(connection, &app)
    }

    /// Registers a connection of `app` (its key and protocol already checked).
    pub(crate) fn admit(&self, connection: ConnectionId, app: &PusherApp) -> Opening {
        let id: Arc<str> = app.id.as_str().into();
        let socket_id: Arc<str> = self.socket_id(connection).into();
        let mut state = self.state();
        let count = state.app_connections.entry(Arc::clone(&id)).or_default();
        if app.max_connections.is_some_and(|max| *count >= max) {
            return refuse(4100, "Over capacity");
        }
        *count += 1;
        let now = Instant::now();
        state.conns.insert(
            connection,
            PusherConn {
                app: id,
                socket_id: Arc::clone(&socket_id),
                channels: Vec::new(),
                user: None,
                bucket: app.client_event_rate.map(|rate| TokenBucket::new(rate, now)),
                opened: now,
                last_seen: now,
                pinged: None,
            },
        );
        drop(state);
        Opening {
            frames: vec![Message::from(wire::connection_established(
                &socket_id,
                self.config.activity_timeout,
            ))],
            close: None,
        }
    }

    /// A client frame.
    pub(crate) fn handle_message(&self, connection: ConnectionId, message: &Message) {
        let Some(hub) = self.hub.get() else {
            return;
        };
        if let Some(conn) = self.state().conns.get_mut(&connection) {
            conn.last_seen = Instant::now();
            conn.pinged = None;
        }
        let Some(text) = message.as_text() else {
            self.send(hub, connection, wire::error(None, "Binary frames are not supported"));
            return;
        };
        let Ok(frame) = serde_json::from_str::<Frame<'_>>(text) else {
            self.send(hub, connection, wire::error(None, "Invalid JSON"));
            return;
        };
        match frame.event.as_str() {
            "pusher:ping" => self.send(hub, connection, wire::pong()),
            "pusher:pong" => {}
            "pusher:subscribe" => match data_as::<SubscribeData>(frame.data) {
                Some(data) => self.subscribe(hub, connection, data),
                None => self.send(hub, connection, wire::error(None, "Invalid subscribe data")),
            },
            "pusher:unsubscribe" => {
                if let Some(data) = data_as::<SubscribeData>(frame.data) {
                    self.unsubscribe(hub, connection, &data.channel);
                }
            }
            "pusher:signin" => match data_as::<SigninData>(frame.data) {
                Some(data) => self.signin(hub, connection, &data),
                None => self.send(hub, connection, wire::error(None, "Invalid signin data")),
            },
            event if event.starts_with("client-") => {
                let data = frame.data.map_or_else(|| Data::text(""), Data::from_raw);
                self.client_event(hub, connection, event, frame.channel.as_deref(), data);
            }
            // Pusher ignores events it does not know.
            _ => {}
        }
    }

    fn subscription_error(
        &self,
        hub: &Hub,
        connection: ConnectionId,
        channel: &str,
        kind: &str,
        error: &str,
        status: u16,
    ) {
        self.send(hub, connection, wire::subscription_error(channel, kind, error, status));
    }

    fn subscribe(&self, hub: &Hub, connection: ConnectionId, data: SubscribeData) {
        let name = data.channel.as_str();
        let mut state = self.state();
        let Some(conn) = state.conns.get(&connection) else {
            return;
        };
        let index = Arc::clone(&conn.app);
        let socket_id = Arc::clone(&conn.socket_id);
        let signed_in = conn.user.clone();
        let Some(app) = self.app_by_id(&index) else {
            return;
        };
        if name.starts_with('#') {
            // Only `#server-to-user-<id>`, and only for the user signed in as <id>.
            if user_channel(name).is_none() || user_channel(name) != signed_in.as_deref() {
                drop(state);
                self.subscription_error(hub, connection, name, "AuthError", "Not signed in as this user", 403);
                return;
            }
        } else if !is_valid_channel(name) {
            drop(state);
            self.subscription_error(hub, connection, name, "InvalidChannel", "Invalid channel name", 400);
            return;
        }
        let kind = ChannelType::of(name);
        let mut member: Option<(Arc<str>, Option<Arc<str>>)> = None;
        if kind.private {
            let channel_data = if kind.presence {
                data.channel_data.as_deref()
            } else {
                None
            };
            let signed = channel_string(&socket_id, name, channel_data);
            let valid = data
                .auth
                .as_deref()
                .is_some_and(|auth| check_auth(auth, &app.key, &app.secret, &signed));
            if !valid || (kind.presence && channel_data.is_none()) {
                drop(state);
                self.subscription_error(hub, connection, name, "AuthError", "Invalid signature", 401);
                self.send(hub, connection, wire::error(Some(4009), "Invalid signature"));
                return;
            }
            if kind.presence {
                match channel_data.and_then(parse_member) {
                    Some(m) => member = Some(m),
                    None => {
                        drop(state);
                        self.subscription_error(
                            hub,
                            connection,
                            name,
                            "InvalidChannelData",
                            "channel_data needs a user_id",
                            400,
                        );
                        return;
                    }
                }
            }
        }
        let key = ChannelKey::new(Arc::clone(&app.namespace), name);
        let already = state
            .conns
            .get(&connection)
            .is_some_and(|c| c.channels.iter().any(|(k, _)| *k == key));
        let mut hooks = Vec::new();
        if !already {
            // Present in the hub as the Pusher user, so the hub (and a broker) counts Pusher
            // members across nodes and announces them once (see PusherCodec::encode).
            let subscribed = match &member {
                Some((user, info)) => hub.subscribe_member(
                    connection,
                    &key,
                    crate::codec::Member {
                        user_id: Arc::clone(user),
                        info: info.as_deref().and_then(|text| Data::from_json_str(text).ok()),
                    },
                ),
                None => hub.subscribe(connection, &key),
            };
            match subscribed {
                Ok(_) => {}
                Err(SubscribeError::NoConnection) => return,
                Err(_) => {
                    drop(state);
                    self.subscription_error(
                        hub,
                        connection,
                        name,
                        "LimitReached",
                        "Too many channels or members",
                        429,
                    );
                    return;
                }
            }
            if hub.channel_size(&key) == 1 {
                hooks.push(WebhookEvent::channel("channel_occupied", name));
            }
            let user = member.as_ref().map(|(user, _)| Arc::clone(user));
            if let Some(conn) = state.conns.get_mut(&connection) {
                conn.channels.push((key.clone(), user));
            }
            if let Some((user, _)) = &member {
                let users = state.presence.entry(key.clone()).or_default();
                let entry = users.entry(Arc::clone(user)).or_insert(PresenceUser { connections: 0 });
                entry.connections += 1;
                if entry.connections == 1 {
                    hooks.push(WebhookEvent::member("member_added", name, user));
                }
            }
        }
        let reply = if kind.presence {
            // The hub's members: every node's, where a broker knows them.
            let members: Vec<(Arc<str>, Option<String>)> = hub
                .presence(&key)
                .into_iter()
                .map(|m| (m.user_id, m.info.map(|info| info.to_json().into_owned())))
                .collect();
            wire::presence_succeeded(name, members.iter().map(|(id, info)| (&**id, info.as_deref())))
        } else {
            wire::subscription_succeeded(name)
        };
        self.send(hub, connection, reply);
        if kind.cache {
            match state.cache_get(&key, self.config.cache_ttl) {
                Some(cached) => {
                    let frame = wire::channel_event(&cached.event, name, &cached.data, None);
                    self.send(hub, connection, frame);
                }
                None => {
                    self.send(hub, connection, wire::cache_miss(name));
                    hooks.push(WebhookEvent::channel("cache_miss", name));
                }
            }
        }
        drop(state);
        self.webhook(&index, &hooks);
    }

    fn unsubscribe(&self, hub: &Hub, connection: ConnectionId, name: &str) {
        let mut state = self.state();
        let Some(conn) = state.conns.get_mut(&connection) else {
            return;
        };
        let index = Arc::clone(&conn.app);
        let Some(position) = conn.channels.iter().position(|(k, _)| k.name() == name) else {
            return;
        };
        let (key, user) = conn.channels.swap_remove(position);
        hub.unsubscribe(connection, &key);
        let mut hooks = Vec::new();
        leave(&mut state, hub, &key, user.as_deref(), &mut hooks);
        drop(state);
        self.webhook(&index, &hooks);
    }

    /// A connection left the hub (its hub subscriptions are gone already).
    pub(crate) fn closed(&self, connection: ConnectionId) {
        let mut state = self.state();
        let Some(conn) = state.conns.remove(&connection) else {
            return;
        };
        if let Some(count) = state.app_connections.get_mut(&conn.app) {
            *count = count.saturating_sub(1);
        }
        if let Some(user) = &conn.user {
            let id = (Arc::clone(&conn.app), Arc::clone(user));
            if let Some(list) = state.users.get_mut(&id) {
                list.retain(|c| *c != connection);
                if list.is_empty() {
                    state.users.remove(&id);
                }
            }
        }
        let mut hooks = Vec::new();
        if let Some(hub) = self.hub.get() {
            for (key, user) in &conn.channels {
                leave(&mut state, hub, key, user.as_deref(), &mut hooks);
            }
        }
        drop(state);
        self.webhook(&conn.app, &hooks);
    }

    fn client_event(&self, hub: &Hub, connection: ConnectionId, event: &str, channel: Option<&str>, data: Data) {
        let mut state = self.state();
        let Some(conn) = state.conns.get_mut(&connection) else {
            return;
        };
        let index = Arc::clone(&conn.app);
        let Some(app) = self.app_by_id(&index) else {
            return;
        };
        let name = channel.unwrap_or_default();
        let kind = ChannelType::of(name);
        let refusal = if !app.client_events {
            Some((None, "Client events are not enabled for this app"))
        } else if !kind.private || kind.encrypted {
            Some((None, "Client events are only allowed on private and presence channels"))
        } else if data.len() > app.max_event_bytes {
            Some((None, "Client event data is too large"))
        } else if event.len() > super::names::MAX_CHANNEL_NAME {
            Some((None, "Client event name is too long"))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            drop(state);
            self.send(hub, connection, wire::error(code, message));
            return;
        }
        let Some((key, user)) = conn.channels.iter().find(|(k, _)| k.name() == name).cloned() else {
            drop(state);
            self.send(
                hub,
                connection,
                wire::error(None, "Client event on a channel the client is not subscribed to"),
            );
            return;
        };
        if let Some(bucket) = &mut conn.bucket {
            if !bucket.try_take(Instant::now()) {
                drop(state);
                // Pusher's wording for the usual per-second rate; other intervals say theirs.
                let message = match app.client_event_rate {
                    Some(rate) if rate.interval() != std::time::Duration::from_secs(1) => format!(
                        "Client event rejected - only {} accepted per {} s",
                        rate.messages(),
                        rate.interval().as_secs_f64()
                    ),
                    rate => format!(
                        "Client event rejected - only {} accepted per second",
                        rate.map_or(10, |rate| rate.messages())
                    ),
                };
                self.send(hub, connection, wire::error(Some(4301), &message));
                return;
            }
        }
        let socket_id = conn.socket_id.to_string();
        drop(state);
        let hook = WebhookEvent {
            event: Some(event.to_owned()),
            data: Some(data.to_text().to_owned()),
            socket_id: Some(socket_id),
            user_id: user.as_deref().map(str::to_owned),
            ..WebhookEvent::channel("client_event", name)
        };
        let publication = Publication {
            channel: key,
            event: Some(event.to_owned()),
            data,
            from: user,
        };
        hub.publish_with(publication, &Except::Connection(connection));
        self.webhook(&index, &[hook]);
    }

    fn signin(&self, hub: &Hub, connection: ConnectionId, data: &SigninData) {
        let mut state = self.state();
        let Some(conn) = state.conns.get(&connection) else {
            return;
        };
        let index = Arc::clone(&conn.app);
        let Some(app) = self.app_by_id(&index) else {
            return;
        };
        if !app.user_authentication {
            drop(state);
            self.send(
                hub,
                connection,
                wire::error(None, "User authentication is not enabled for this app"),
            );
            return;
        }
        let signed = user_string(&conn.socket_id, &data.user_data);
        let user = serde_json::from_str::<serde_json::Value>(&data.user_data)
            .ok()
            .and_then(|v| v.get("id").and_then(|id| id.as_str().map(str::to_owned)))
            .filter(|id| !id.is_empty() && id.len() <= 200);
        let (true, Some(user)) = (check_auth(&data.auth, &app.key, &app.secret, &signed), user) else {
            drop(state);
            self.send(
                hub,
                connection,
                wire::error(Some(4009), "Invalid signin: bad signature or user_data"),
            );
            return;
        };
        let user: Arc<str> = user.into();
        let previous = state
            .conns
            .get_mut(&connection)
            .and_then(|c| c.user.replace(Arc::clone(&user)));
        if let Some(previous) = previous {
            if let Some(list) = state.users.get_mut(&(Arc::clone(&index), previous)) {
                list.retain(|c| *c != connection);
            }
        }
        state.users.entry((index, user)).or_default().push(connection);
        drop(state);
        self.send(hub, connection, wire::signin_success(&data.user_data));
    }

    /// Closes every connection of a signed-in user of app `app`; how many.
    pub(crate) fn terminate_user(&self, hub: &Hub, app: &str, user: &str) -> usize {
        let conns = self
            .state()
            .users
            .get(&(Arc::from(app), Arc::from(user)))
            .cloned()
            .unwrap_or_default();
        for connection in &conns {
            hub.close_connection(*connection, CloseCode(4009), "Connection terminated by the server");
        }
        conns.len()
    }

    pub(crate) fn sweep(&self, now: Instant) -> super::Sweep {
        let mut sweep = super::Sweep::default();
        let Some(hub) = self.hub.get() else {
            return sweep;
        };
        let activity = std::time::Duration::from_secs(u64::from(self.config.activity_timeout));
        let mut ping = Vec::new();
        let mut close = Vec::new();
        let apps = self.apps();
        let mut state = self.state();
        for (id, conn) in &mut state.conns {
            let signin = apps
                .iter()
                .find(|app| *app.id == *conn.app)
                .and_then(|app| app.signin_timeout);
            if signin.is_some_and(|t| conn.user.is_none() && now.saturating_duration_since(conn.opened) >= t) {
                close.push((*id, 4009, "Connection not authorized within timeout"));
                sweep.not_signed_in += 1;
            } else if let Some(at) = conn.pinged {
                if now.saturating_duration_since(at) >= self.config.pong_timeout {
                    close.push((*id, 4201, "Pong reply not received"));
                    sweep.unresponsive += 1;
                }
            } else if now.saturating_duration_since(conn.last_seen) >= activity {
                conn.pinged = Some(now);
                ping.push(*id);
                sweep.pinged += 1;
            }
        }
        drop(state);
        for id in ping {
            self.send(hub, id, wire::ping());
        }
        for (id, code, reason) in close {
            hub.close_connection(id, CloseCode(code), reason);
        }
        sweep
    }

    /// Presence users of a channel: ids in order.
    pub(crate) fn presence_users(&self, key: &ChannelKey) -> Vec<String> {
        self.hub
            .get()
            .map(|hub| hub.presence(key).iter().map(|m| m.user_id.to_string()).collect())
            .unwrap_or_default()
    }

    /// How many users are in a presence channel.
    pub(crate) fn user_count(&self, key: &ChannelKey) -> usize {
        self.hub.get().map_or(0, |hub| hub.presence_count(key))
    }

    /// Remembers the last event of a cache channel.
    pub(crate) fn cache(&self, key: &ChannelKey, event: &str, data: &Data) {
        self.state().cache_put(key.clone(), event, data, self.config.cache_ttl);
    }
}

/// `channel_data`'s user id (a string, or a number as its text) and `user_info`.
fn parse_member(channel_data: &str) -> Option<(Arc<str>, Option<Arc<str>>)> {
    #[derive(Deserialize)]
    struct ChannelData<'a> {
        #[serde(borrow)]
        user_id: &'a RawValue,
        #[serde(borrow, default)]
        user_info: Option<&'a RawValue>,
    }
    let data: ChannelData<'_> = serde_json::from_str(channel_data).ok()?;
    let raw = data.user_id.get();
    let id = if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).ok()?
    } else if raw.bytes().all(|b| b.is_ascii_digit() || b == b'-') && !raw.is_empty() {
        raw.to_owned()
    } else {
        return None;
    };
    if id.is_empty() || id.len() > 128 {
        return None;
    }
    Some((id.into(), data.user_info.map(|info| Arc::from(info.get()))))
}

/// One Pusher connection left `key`: the presence user leaves when it was their last one, and
/// an empty channel is vacated.
fn leave(state: &mut State, hub: &Hub, key: &ChannelKey, user: Option<&str>, hooks: &mut Vec<WebhookEvent>) {
    if let Some(user) = user {
        if let Some(users) = state.presence.get_mut(key) {
            let gone = users.get_mut(user).is_some_and(|u| {
                u.connections = u.connections.saturating_sub(1);
                u.connections == 0
            });
            if gone {
                // The hub announced the leave when the connection left its channel.
                users.remove(user);
                hooks.push(WebhookEvent::member("member_removed", key.name(), user));
            }
            if users.is_empty() {
                state.presence.remove(key);
            }
        }
    }
    if hub.channel_size(key) == 0 {
        hooks.push(WebhookEvent::channel("channel_vacated", key.name()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_from_channel_data() {
        let (id, info) = parse_member(r#"{"user_id":10,"user_info":{"name":"Mr. Pusher"}}"#).unwrap();
        assert_eq!(&*id, "10");
        assert_eq!(info.as_deref(), Some(r#"{"name":"Mr. Pusher"}"#));
        let (id, info) = parse_member(r#"{"user_id":"abc"}"#).unwrap();
        assert_eq!((&*id, info), ("abc", None));
        assert!(parse_member(r#"{"user_id":""}"#).is_none());
        assert!(parse_member(r#"{"user_id":{"a":1}}"#).is_none());
        assert!(parse_member(r#"{"user_info":{}}"#).is_none());
        assert!(parse_member("not json").is_none());
        assert!(parse_member(&format!(r#"{{"user_id":"{}"}}"#, "x".repeat(129))).is_none());
    }

    #[test]
    fn subscribe_data_as_object_or_string() {
        let raw: Box<RawValue> = serde_json::from_str(r#"{"channel":"a","auth":"k:s"}"#).unwrap();
        let data: SubscribeData = data_as(Some(&raw)).unwrap();
        assert_eq!((data.channel.as_str(), data.auth.as_deref()), ("a", Some("k:s")));
        let raw: Box<RawValue> = serde_json::from_str(r#""{\"channel\":\"b\"}""#).unwrap();
        let data: SubscribeData = data_as(Some(&raw)).unwrap();
        assert_eq!(data.channel, "b");
        assert!(data_as::<SubscribeData>(None).is_none());
    }
}
