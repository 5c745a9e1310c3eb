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

#[test]
fn tank_subscribers_get_pusher_publishes_too() {
    let server = start(vec![PusherApp::new(APP_ID, KEY, SECRET).with_namespace(DEFAULT_APP)]);
    server.rt.block_on(async {
        let mut tank = Client::connect(server.ws, "/tank?user_id=t").await;
        tank.send("sub:news").await;
        for _ in 0..500 {
            if server.hub.channel_size(&ChannelKey::named("news")) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let body = json!({"name": "up", "channel": "news", "data": "plain"}).to_string();
        let request = signed("POST", &format!("/apps/{APP_ID}/events"), &[], &body, SECRET, now());
        assert_eq!(answer(server.pusher.handle(request)).0, 200);
        assert_eq!(tank.recv_text().await, r#"{"topic":"news","data":"plain"}"#);
    });
}

#[test]
fn pusher_on_the_smol_runtime() {
    let (addr, hub, _pusher) = crate::support::start_smol(vec![crate::support::test_app()]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut a, sid) = Client::established(addr).await;
        let data = r#"{"user_id":"s"}"#;
        let auth = wsengine_hub::pusher::sign::channel_auth(KEY, SECRET, &sid, "presence-smol", Some(data));
        a.send(
            &json!({"event": "pusher:subscribe", "data": {"channel": "presence-smol", "auth": auth, "channel_data": data}})
                .to_string(),
        )
        .await;
        assert_eq!(
            a.recv_text().await,
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-smol","data":"{\"presence\":{\"count\":1,\"hash\":{\"s\":null},\"ids\":[\"s\"]}}"}"#
        );
        hub.publish(&ChannelKey::new(APP_ID, "presence-smol"), Some("e"), "d");
        assert_eq!(
            a.recv_text().await,
            r#"{"event":"e","channel":"presence-smol","data":"d"}"#
        );
        a.nothing_pending().await;
    });
}
