//! The Pusher HTTP API, sans-IO: [`Pusher::handle`] maps an `http::Request<Bytes>` to an
//! `http::Response<Bytes>`; any HTTP server can call it. Every request is signed (key,
//! timestamp within the window, body MD5, HMAC-SHA256); errors are real statuses with a JSON
//! body `{"error": "…"}`.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::http_query::{decode, get, params, string_to_sign};
use super::names::{ChannelType, is_valid_channel, is_valid_event_name, user_channel};
use super::sign::{md5_hex, verify_hex};
use super::{ChannelFigures, Pusher, PusherApp, Shared};
use crate::channel::ChannelKey;
use crate::codec::{Data, Publication};
use crate::hub::{Except, Hub};

/// An HTTP API failure: its status and message.
#[derive(Debug)]
pub(crate) struct Failure(StatusCode, String);

pub(crate) type Result<T> = std::result::Result<T, Failure>;

fn fail<T>(status: StatusCode, message: impl Into<String>) -> Result<T> {
    Err(Failure(status, message.into()))
}

/// A publication other nodes cannot get now is refused, not answered 200 and lost there.
fn broker_available(hub: &Hub) -> Result<()> {
    if hub.is_broker_available() {
        Ok(())
    } else {
        fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "publications cannot reach the other nodes now; try again",
        )
    }
}

fn respond(status: StatusCode, body: &Value) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[derive(Deserialize)]
struct TriggerBody {
    name: String,
    data: Value,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    socket_id: Option<String>,
    #[serde(default)]
    info: Option<String>,
}

#[derive(Deserialize)]
struct BatchEvent {
    name: String,
    data: Value,
    channel: String,
    #[serde(default)]
    socket_id: Option<String>,
    #[serde(default)]
    info: Option<String>,
}

#[derive(Deserialize)]
struct BatchBody {
    batch: Vec<BatchEvent>,
}

/// Which attributes `info` asks for.
#[derive(Clone, Copy, Default)]
struct Info {
    user_count: bool,
    subscription_count: bool,
}

fn parse_info(info: Option<&str>) -> Result<Info> {
    let mut out = Info::default();
    for attribute in info.unwrap_or_default().split(',').filter(|a| !a.is_empty()) {
        match attribute {
            "user_count" => out.user_count = true,
            "subscription_count" => out.subscription_count = true,
            "cache" => {}
            other => return fail(StatusCode::BAD_REQUEST, format!("unknown info attribute {other}")),
        }
    }
    Ok(out)
}

impl Pusher {
    /// Answers an HTTP API request (`/apps/<id>/…`), checked against the current time.
    pub fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.handle_at(request, now)
    }

    /// Answers an HTTP API request as if it were `now` (seconds since the Unix epoch).
    pub fn handle_at(&self, request: Request<Bytes>, now: u64) -> Response<Bytes> {
        self.answer(&request, now, None)
    }

    /// Answers an HTTP API request with the cluster's channel figures (see
    /// [`figures_wanted`](Self::figures_wanted)) in place of this node's: occupancy,
    /// subscription and user counts, and presence users.
    pub fn handle_with_figures(&self, request: Request<Bytes>, figures: &ChannelFigures) -> Response<Bytes> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.answer(&request, now, Some(figures))
    }

    fn answer(&self, request: &Request<Bytes>, now: u64, figures: Option<&ChannelFigures>) -> Response<Bytes> {
        match self.shared.api(request, now, figures) {
            Ok((status, body)) => respond(status, &body),
            Err(Failure(status, message)) => respond(status, &json!({ "error": message })),
        }
    }
}

impl Shared {
    fn api(&self, request: &Request<Bytes>, now: u64, figures: Option<&ChannelFigures>) -> Result<(StatusCode, Value)> {
        let path = request.uri().path();
        let Some(rest) = path.strip_prefix("/apps/") else {
            return fail(StatusCode::NOT_FOUND, "not found");
        };
        let (app_id, route) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(app) = self.app_by_id(app_id) else {
            return fail(StatusCode::NOT_FOUND, "unknown app");
        };
        // This request's view of the app, even if the apps are replaced meanwhile.
        let app = &*app;
        let body = request.body();
        if body.len() > self.config.max_body_bytes {
            return fail(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
        let params = params(request.uri().query().unwrap_or_default());
        self.check_signature(app, request.method(), path, &params, body, now)?;
        if !app.enabled {
            return fail(StatusCode::FORBIDDEN, "app disabled");
        }
        let Some(hub) = self.hub.get() else {
            return fail(StatusCode::SERVICE_UNAVAILABLE, "not attached to a hub");
        };
        let segments: Vec<&str> = route.split('/').collect();
        let method = request.method();
        match segments.as_slice() {
            ["events"] => {
                post_only(method)?;
                broker_available(hub)?;
                self.events(hub, app, body)
            }
            ["batch_events"] => {
                post_only(method)?;
                broker_available(hub)?;
                self.batch_events(hub, app, body)
            }
            ["channels"] => {
                get_only(method)?;
                self.channels(hub, app, &params, figures)
            }
            ["channels", name] => {
                get_only(method)?;
                self.channel(hub, app, &decode(name), &params, figures)
            }
            ["channels", name, "users"] => {
                get_only(method)?;
                self.users(app, &decode(name), figures)
            }
            ["users", user, "terminate_connections"] => {
                post_only(method)?;
                self.terminate_user(hub, &app.id, &decode(user));
                Ok((StatusCode::OK, json!({})))
            }
            _ => fail(StatusCode::NOT_FOUND, "not found"),
        }
    }

    pub(crate) fn check_signature(
        &self,
        app: &PusherApp,
        method: &Method,
        path: &str,
        params: &[(String, String)],
        body: &[u8],
        now: u64,
    ) -> Result<()> {
        let (Some(key), Some(timestamp), Some(signature)) = (
            get(params, "auth_key"),
            get(params, "auth_timestamp"),
            get(params, "auth_signature"),
        ) else {
            return fail(
                StatusCode::UNAUTHORIZED,
                "auth_key, auth_timestamp and auth_signature are required",
            );
        };
        if key != app.key {
            return fail(StatusCode::UNAUTHORIZED, "unknown auth_key");
        }
        if get(params, "auth_version").is_some_and(|v| v != "1.0") {
            return fail(StatusCode::UNAUTHORIZED, "unsupported auth_version");
        }
        let Ok(timestamp) = timestamp.parse::<u64>() else {
            return fail(StatusCode::UNAUTHORIZED, "invalid auth_timestamp");
        };
        if timestamp.abs_diff(now) > self.config.timestamp_window {
            return fail(
                StatusCode::UNAUTHORIZED,
                format!(
                    "auth_timestamp expired: more than {} s from the server time {now}",
                    self.config.timestamp_window
                ),
            );
        }
        match get(params, "body_md5") {
            Some(md5) if md5 != md5_hex(body) => {
                return fail(StatusCode::UNAUTHORIZED, "body_md5 does not match the body");
            }
            None if !body.is_empty() => return fail(StatusCode::UNAUTHORIZED, "body_md5 is required with a body"),
            _ => {}
        }
        let signed = string_to_sign(method.as_str(), path, params);
        if !verify_hex(&app.secret, &signed, signature) {
            return fail(StatusCode::UNAUTHORIZED, "invalid signature");
        }
        Ok(())
    }

    fn events(&self, hub: &Hub, app: &PusherApp, body: &[u8]) -> Result<(StatusCode, Value)> {
        let Ok(trigger) = serde_json::from_slice::<TriggerBody>(body) else {
            return fail(StatusCode::BAD_REQUEST, "invalid JSON: need name, data and channels");
        };
        let channels = match (trigger.channels, trigger.channel) {
            (Some(channels), _) => channels,
            (None, Some(channel)) => vec![channel],
            (None, None) => return fail(StatusCode::BAD_REQUEST, "channels is required"),
        };
        if channels.is_empty() || channels.len() > self.config.max_trigger_channels {
            return fail(
                StatusCode::BAD_REQUEST,
                format!("between 1 and {} channels", self.config.max_trigger_channels),
            );
        }
        if channels.len() > 1 && channels.iter().any(|c| ChannelType::of(c).encrypted) {
            return fail(StatusCode::BAD_REQUEST, "an encrypted channel must be triggered alone");
        }
        let info = parse_info(trigger.info.as_deref())?;
        let data = data_text(trigger.data)?;
        for channel in &channels {
            self.check_event(app, channel, &trigger.name, &data)?;
        }
        let except = self.except(trigger.socket_id.as_deref())?;
        let mut described = Map::new();
        for channel in &channels {
            let key = self.trigger(hub, app, channel, &trigger.name, &data, &except);
            if info.user_count || info.subscription_count {
                described.insert(channel.clone(), self.describe(hub, &key, info, None));
            }
        }
        if info.user_count || info.subscription_count {
            Ok((StatusCode::OK, json!({ "channels": described })))
        } else {
            Ok((StatusCode::OK, json!({})))
        }
    }

    fn batch_events(&self, hub: &Hub, app: &PusherApp, body: &[u8]) -> Result<(StatusCode, Value)> {
        let Ok(batch) = serde_json::from_slice::<BatchBody>(body) else {
            return fail(StatusCode::BAD_REQUEST, "invalid JSON: need batch");
        };
        if batch.batch.len() > self.config.max_batch_events {
            return fail(
                StatusCode::BAD_REQUEST,
                format!("at most {} events per batch", self.config.max_batch_events),
            );
        }
        // Everything is checked before anything is published: a batch is all or nothing.
        let mut checked = Vec::with_capacity(batch.batch.len());
        for event in batch.batch {
            let info = parse_info(event.info.as_deref())?;
            let data = data_text(event.data)?;
            self.check_event(app, &event.channel, &event.name, &data)?;
            let except = self.except(event.socket_id.as_deref())?;
            checked.push((event.channel, event.name, data, except, info));
        }
        let mut any_info = false;
        let mut results = Vec::with_capacity(checked.len());
        for (channel, name, data, except, info) in checked {
            let key = self.trigger(hub, app, &channel, &name, &data, &except);
            any_info |= info.user_count || info.subscription_count;
            results.push(self.describe(hub, &key, info, None));
        }
        if any_info {
            Ok((StatusCode::OK, json!({ "batch": results })))
        } else {
            Ok((StatusCode::OK, json!({})))
        }
    }

    fn check_event(&self, app: &PusherApp, channel: &str, name: &str, data: &str) -> Result<()> {
        if !is_valid_channel(channel) && user_channel(channel).is_none() {
            return fail(StatusCode::BAD_REQUEST, format!("invalid channel name {channel:?}"));
        }
        if !is_valid_event_name(name) {
            return fail(StatusCode::BAD_REQUEST, "invalid event name");
        }
        if data.len() > app.max_event_bytes {
            return fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("event data over {} bytes", app.max_event_bytes),
            );
        }
        Ok(())
    }

    fn except(&self, socket_id: Option<&str>) -> Result<Except> {
        let Some(socket_id) = socket_id else {
            return Ok(Except::Nobody);
        };
        let valid = socket_id
            .split_once('.')
            .is_some_and(|(a, b)| is_digits(a) && is_digits(b));
        if !valid {
            return fail(StatusCode::BAD_REQUEST, "invalid socket_id");
        }
        Ok(self.connection_of(socket_id).map_or(Except::Nobody, Except::Connection))
    }

    fn trigger(
        &self,
        hub: &Hub,
        app: &PusherApp,
        channel: &str,
        name: &str,
        data: &str,
        except: &Except,
    ) -> ChannelKey {
        let key = ChannelKey::new(std::sync::Arc::clone(&app.namespace), channel);
        let data = Data::text(data);
        if ChannelType::of(channel).cache {
            self.cache(&key, name, &data);
        }
        hub.publish_with(
            Publication {
                channel: key.clone(),
                event: Some(name.to_owned()),
                data,
                from: None,
            },
            except,
        );
        key
    }

    /// A channel's `info` attributes: the cluster's figures when given, this node's otherwise.
    fn describe(&self, hub: &Hub, key: &ChannelKey, info: Info, figures: Option<&ChannelFigures>) -> Value {
        let mut out = Map::new();
        if info.user_count && ChannelType::of(key.name()).presence {
            let users = figures.map_or_else(|| self.user_count(key), |f| f.users(key).len());
            out.insert("user_count".into(), users.into());
        }
        if info.subscription_count {
            let count = figures.map_or_else(|| hub.channel_size(key) as u64, |f| f.subscriptions(key));
            out.insert("subscription_count".into(), count.into());
        }
        Value::Object(out)
    }

    fn channels(
        &self,
        hub: &Hub,
        app: &PusherApp,
        params: &[(String, String)],
        figures: Option<&ChannelFigures>,
    ) -> Result<(StatusCode, Value)> {
        let prefix = get(params, "filter_by_prefix").unwrap_or_default();
        let info = parse_info(get(params, "info"))?;
        if info.user_count && !prefix.starts_with("presence-") {
            return fail(StatusCode::BAD_REQUEST, "user_count needs filter_by_prefix=presence-");
        }
        let keys = match figures {
            Some(figures) => figures
                .channels
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, _)| k.clone())
                .collect(),
            None => hub.channels(),
        };
        let mut channels = Map::new();
        for key in keys {
            if key.app() != &*app.namespace || !key.name().starts_with(prefix) || key.name().starts_with('#') {
                continue;
            }
            channels.insert(key.name().to_owned(), self.describe(hub, &key, info, figures));
        }
        Ok((StatusCode::OK, json!({ "channels": channels })))
    }

    fn channel(
        &self,
        hub: &Hub,
        app: &PusherApp,
        name: &str,
        params: &[(String, String)],
        figures: Option<&ChannelFigures>,
    ) -> Result<(StatusCode, Value)> {
        if !is_valid_channel(name) && user_channel(name).is_none() {
            return fail(StatusCode::BAD_REQUEST, "invalid channel name");
        }
        let info = parse_info(get(params, "info"))?;
        if info.user_count && !ChannelType::of(name).presence {
            return fail(StatusCode::BAD_REQUEST, "user_count is only for presence channels");
        }
        let key = ChannelKey::new(std::sync::Arc::clone(&app.namespace), name);
        let mut out = Map::new();
        let occupied = figures.map_or_else(|| hub.channel_size(&key) > 0, |f| f.subscriptions(&key) > 0);
        out.insert("occupied".into(), occupied.into());
        if let Value::Object(described) = self.describe(hub, &key, info, figures) {
            out.extend(described);
        }
        Ok((StatusCode::OK, Value::Object(out)))
    }

    fn users(&self, app: &PusherApp, name: &str, figures: Option<&ChannelFigures>) -> Result<(StatusCode, Value)> {
        if !is_valid_channel(name) || !ChannelType::of(name).presence {
            return fail(StatusCode::BAD_REQUEST, "users are only listed for presence channels");
        }
        let key = ChannelKey::new(std::sync::Arc::clone(&app.namespace), name);
        let users: Vec<Value> = match figures {
            Some(figures) => figures.users(&key).iter().map(|id| json!({ "id": &**id })).collect(),
            None => self
                .presence_users(&key)
                .into_iter()
                .map(|id| json!({ "id": id }))
                .collect(),
        };
        Ok((StatusCode::OK, json!({ "users": users })))
    }
}

/// Event data is a string; any other JSON value is sent as its JSON text.
fn data_text(data: Value) -> Result<String> {
    Ok(match data {
        Value::String(s) => s,
        other => other.to_string(),
    })
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

fn post_only(method: &Method) -> Result<()> {
    if method == Method::POST {
        Ok(())
    } else {
        fail(StatusCode::METHOD_NOT_ALLOWED, "use POST")
    }
}

fn get_only(method: &Method) -> Result<()> {
    if method == Method::GET {
        Ok(())
    } else {
        fail(StatusCode::METHOD_NOT_ALLOWED, "use GET")
    }
}
