//! Bodies of the Pusher fuzz targets (hidden; `fuzz/fuzz_targets/hub_pusher_*.rs`): client
//! frames on a registered connection, and HTTP API requests. Neither may panic; every request
//! gets one of the API's statuses.

use std::sync::OnceLock;

use bytes::Bytes;

use super::{Pusher, PusherApp, PusherConfig};
use crate::codec::Codec;
use crate::conn::ConnectionId;
use crate::hub::Hub;

const KEY: &str = "key";
const SECRET: &str = "secret";

fn pusher() -> &'static Pusher {
    static PUSHER: OnceLock<Pusher> = OnceLock::new();
    PUSHER.get_or_init(|| {
        let app = PusherApp::new("1", KEY, SECRET)
            .with_client_events(true)
            .with_user_authentication(true);
        let pusher = Pusher::new(PusherConfig::new(vec![app]));
        let mut builder = Hub::builder();
        let _ = builder.add_codec(pusher.codec());
        pusher.attach(&builder.build());
        pusher
    })
}

/// Client frames on a connection Pusher knows (the hub does not, so joins stop there). The
/// input's first byte picks a frame template, the rest fills it.
pub fn frames(data: &[u8]) {
    let pusher = pusher();
    let connection = ConnectionId(u64::MAX - 1);
    if let Some(app) = pusher.shared.apps().first() {
        let _ = pusher.shared.admit(connection, app);
    }
    let codec = pusher.codec();
    let text = String::from_utf8_lossy(data.get(1..).unwrap_or_default());
    let socket_id = pusher.socket_id(connection);
    let auth = super::sign::channel_auth(KEY, SECRET, &socket_id, &text, None);
    let frame = match data.first().copied().unwrap_or(0) % 6 {
        0 => text.into_owned(),
        1 => serde_json::json!({"event": "pusher:subscribe", "data": {"channel": text, "auth": auth}}).to_string(),
        2 => serde_json::json!({"event": "pusher:subscribe", "data": {"channel": "presence-x", "auth": auth, "channel_data": text}}).to_string(),
        3 => serde_json::json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": text}}).to_string(),
        4 => serde_json::json!({"event": "client-x", "channel": text, "data": text}).to_string(),
        _ => serde_json::json!({"event": "pusher:unsubscribe", "data": text}).to_string(),
    };
    let _ = codec.decode_from(&wsengine::Message::from(frame), "x", connection);
    pusher.shared.closed(connection);
}

/// An HTTP API request: the first line of the input is `METHOD TARGET`, the rest the body.
pub fn http_api(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once('\n').unwrap_or((&text, ""));
    let (method, target) = head.split_once(' ').unwrap_or(("GET", head));
    let Ok(request) = http::Request::builder()
        .method(method)
        .uri(target)
        .body(Bytes::from(body.to_owned()))
    else {
        return;
    };
    let status = pusher().handle(request).status().as_u16();
    assert!(
        [200, 400, 401, 403, 404, 405, 413].contains(&status),
        "unexpected status {status}"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_inputs() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..2000 {
            let mut data = Vec::new();
            for _ in 0..(seed % 97) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                data.push((seed % 256) as u8);
            }
            super::frames(&data);
            super::http_api(&data);
        }
        super::http_api(b"POST /apps/1/events?auth_key=key\n{}");
        super::frames(b"\x01private-a");
        super::frames(b"\x02{\"user_id\":1}");
        super::frames(b"\x03{\"id\":\"1\"}");
    }
}
