//! An app in the hub's default namespace shares its channels with native clients: a publish
//! through the Pusher HTTP API reaches both, and a hub publish reaches Pusher clients.

use serde_json::json;
use wsengine_hub::pusher::PusherApp;
use wsengine_hub::{ChannelKey, DEFAULT_APP};

use crate::support::{APP_ID, Client, KEY, SECRET, answer, now, signed, start};

#[test]
fn pusher_http_api_reaches_native_subscribers() {
    let server = start(vec![PusherApp::new(APP_ID, KEY, SECRET).with_namespace(DEFAULT_APP)]);
    server.rt.block_on(async {
        let (mut pusher, _) = Client::established(server.ws).await;
        pusher
            .send(r#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#)
            .await;
        assert_eq!(
            pusher.recv_json().await["event"],
            "pusher_internal:subscription_succeeded"
        );
        let mut native = Client::connect(server.ws, "/").await;
        native.send(r#"{"action":"subscribe","channel":"news"}"#).await;
        assert_eq!(native.recv_json().await["type"], "subscribed");

        let body = json!({"name": "up", "channels": ["news"], "data": "{\"v\":1}"}).to_string();
        let request = signed("POST", &format!("/apps/{APP_ID}/events"), &[], &body, SECRET, now());
        assert_eq!(answer(server.pusher.handle(request)).0, 200);
        assert_eq!(
            pusher.recv_text().await,
            r#"{"event":"up","channel":"news","data":"{\"v\":1}"}"#
        );
        assert_eq!(
            native.recv_json().await,
            json!({"type": "message", "channel": "news", "event": "up", "data": "{\"v\":1}"})
        );

        // And the other way: a hub publish reaches the Pusher client in Pusher's form.
        server
            .hub
            .publish(&ChannelKey::named("news"), Some("hub-event"), "hello");
        assert_eq!(
            pusher.recv_text().await,
            r#"{"event":"hub-event","channel":"news","data":"hello"}"#
        );
        let counts = server.pusher.handle(signed(
            "GET",
            &format!("/apps/{APP_ID}/channels/news"),
            &[("info", "subscription_count")],
            "",
            SECRET,
            now(),
        ));
        let (status, body) = answer(counts);
        assert_eq!(
            (status, body),
            (200, json!({"occupied": true, "subscription_count": 2}))
        );
    });
}
