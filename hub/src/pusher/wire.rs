//! The frames of Pusher Channels protocol 7, as exact JSON text. Server events carry `data` as a
//! JSON-encoded string, as Pusher sends them; errors carry an object.

use serde_json::{Value, json};

use crate::codec::Data;

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// `{"event":E[,"channel":C],"data":"<data>"}` with `data` JSON text sent as a string.
fn event_with_string_data(event: &str, channel: Option<&str>, data: &str) -> String {
    let mut out = String::with_capacity(64 + data.len());
    out.push_str("{\"event\":");
    out.push_str(&quoted(event));
    if let Some(channel) = channel {
        out.push_str(",\"channel\":");
        out.push_str(&quoted(channel));
    }
    out.push_str(",\"data\":");
    out.push_str(&quoted(data));
    out.push('}');
    out
}

/// `pusher:connection_established`.
pub fn connection_established(socket_id: &str, activity_timeout: u32) -> String {
    let data = json!({"socket_id": socket_id, "activity_timeout": activity_timeout}).to_string();
    event_with_string_data("pusher:connection_established", None, &data)
}

/// `pusher:error` with a code (`None` for errors that have none).
pub fn error(code: Option<u16>, message: &str) -> String {
    json!({"event": "pusher:error", "data": {"code": code, "message": message}}).to_string()
}

/// `pusher:pong`.
pub fn pong() -> String {
    event_with_string_data("pusher:pong", None, "{}")
}

/// `pusher:ping` (the server asking an idle client).
pub fn ping() -> String {
    event_with_string_data("pusher:ping", None, "{}")
}

/// `pusher_internal:subscription_succeeded` on a channel without members.
pub fn subscription_succeeded(channel: &str) -> String {
    event_with_string_data("pusher_internal:subscription_succeeded", Some(channel), "{}")
}

/// `pusher_internal:subscription_succeeded` on a presence channel: every member, once per user.
/// `members` are `(user_id, user_info)` pairs, `user_info` as JSON text.
pub fn presence_succeeded<'a>(channel: &str, members: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> String {
    let mut ids = Vec::new();
    let mut hash = serde_json::Map::new();
    for (id, info) in members {
        ids.push(Value::from(id));
        let info = info
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or(Value::Null);
        hash.insert(id.to_owned(), info);
    }
    let count = ids.len();
    let data = json!({"presence": {"ids": ids, "hash": hash, "count": count}}).to_string();
    event_with_string_data("pusher_internal:subscription_succeeded", Some(channel), &data)
}

/// `pusher:subscription_error` with Pusher's `{type, error, status}`.
pub fn subscription_error(channel: &str, kind: &str, error: &str, status: u16) -> String {
    json!({
        "event": "pusher:subscription_error",
        "channel": channel,
        "data": {"type": kind, "error": error, "status": status},
    })
    .to_string()
}

/// `pusher_internal:member_added`.
pub fn member_added(channel: &str, user_id: &str, user_info: Option<&str>) -> String {
    let mut data = String::from("{\"user_id\":");
    data.push_str(&quoted(user_id));
    if let Some(info) = user_info {
        data.push_str(",\"user_info\":");
        data.push_str(info);
    }
    data.push('}');
    event_with_string_data("pusher_internal:member_added", Some(channel), &data)
}

/// `pusher_internal:member_removed`.
pub fn member_removed(channel: &str, user_id: &str) -> String {
    let data = json!({"user_id": user_id}).to_string();
    event_with_string_data("pusher_internal:member_removed", Some(channel), &data)
}

/// `pusher:cache_miss`.
pub fn cache_miss(channel: &str) -> String {
    json!({"event": "pusher:cache_miss", "channel": channel}).to_string()
}

/// `pusher:signin_success`.
pub fn signin_success(user_data: &str) -> String {
    let data = json!({ "user_data": user_data }).to_string();
    event_with_string_data("pusher:signin_success", None, &data)
}

/// An event on a channel. Text data goes as a JSON string (as the HTTP API received it); JSON
/// data (a client event's object) as it came. `user_id` names a presence member's client event.
pub fn channel_event(event: &str, channel: &str, data: &Data, user_id: Option<&str>) -> String {
    let mut out = Vec::with_capacity(48 + event.len() + channel.len() + data.len());
    out.extend_from_slice(b"{\"event\":");
    out.extend_from_slice(quoted(event).as_bytes());
    out.extend_from_slice(b",\"channel\":");
    out.extend_from_slice(quoted(channel).as_bytes());
    out.extend_from_slice(b",\"data\":");
    data.write_json(&mut out);
    if let Some(user) = user_id {
        out.extend_from_slice(b",\"user_id\":");
        out.extend_from_slice(quoted(user).as_bytes());
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_frames() {
        assert_eq!(
            connection_established("123.456", 120),
            r#"{"event":"pusher:connection_established","data":"{\"activity_timeout\":120,\"socket_id\":\"123.456\"}"}"#
        );
        assert_eq!(
            error(Some(4001), "App key x not in this cluster"),
            r#"{"data":{"code":4001,"message":"App key x not in this cluster"},"event":"pusher:error"}"#
        );
        assert_eq!(
            error(None, "bad"),
            r#"{"data":{"code":null,"message":"bad"},"event":"pusher:error"}"#
        );
        assert_eq!(pong(), r#"{"event":"pusher:pong","data":"{}"}"#);
        assert_eq!(ping(), r#"{"event":"pusher:ping","data":"{}"}"#);
        assert_eq!(
            subscription_succeeded("news"),
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"news","data":"{}"}"#
        );
        assert_eq!(
            subscription_error("private-a", "AuthError", "Invalid signature", 401),
            r#"{"channel":"private-a","data":{"error":"Invalid signature","status":401,"type":"AuthError"},"event":"pusher:subscription_error"}"#
        );
        assert_eq!(
            member_added("presence-a", "7", Some(r#"{"name":"Al"}"#)),
            r#"{"event":"pusher_internal:member_added","channel":"presence-a","data":"{\"user_id\":\"7\",\"user_info\":{\"name\":\"Al\"}}"}"#
        );
        assert_eq!(
            member_added("presence-a", "7", None),
            r#"{"event":"pusher_internal:member_added","channel":"presence-a","data":"{\"user_id\":\"7\"}"}"#
        );
        assert_eq!(
            member_removed("presence-a", "7"),
            r#"{"event":"pusher_internal:member_removed","channel":"presence-a","data":"{\"user_id\":\"7\"}"}"#
        );
        assert_eq!(
            cache_miss("cache-a"),
            r#"{"channel":"cache-a","event":"pusher:cache_miss"}"#
        );
        assert_eq!(
            signin_success(r#"{"id":"1"}"#),
            r#"{"event":"pusher:signin_success","data":"{\"user_data\":\"{\\\"id\\\":\\\"1\\\"}\"}"}"#
        );
        assert_eq!(
            channel_event("e", "c", &Data::text(r#"{"a":1}"#), None),
            r#"{"event":"e","channel":"c","data":"{\"a\":1}"}"#
        );
        let json = Data::from_json_str(r#"{"a":1}"#).unwrap();
        assert_eq!(
            channel_event("client-x", "presence-c", &json, Some("9")),
            r#"{"event":"client-x","channel":"presence-c","data":{"a":1},"user_id":"9"}"#
        );
    }

    #[test]
    fn presence_hash() {
        let members = [("1", Some(r#"{"name":"A"}"#)), ("2", None)];
        assert_eq!(
            presence_succeeded("presence-x", members.into_iter()),
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-x","data":"{\"presence\":{\"count\":2,\"hash\":{\"1\":{\"name\":\"A\"},\"2\":null},\"ids\":[\"1\",\"2\"]}}"}"#
        );
    }
}
