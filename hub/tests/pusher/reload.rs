//! Replacing the apps at run time: new keys and secrets apply at once, open connections of a
//! kept app stay, those of a removed app get a `pusher:error` and a close, both 4001.

use serde_json::json;
use wsengine_hub::pusher::PusherApp;

use crate::support::{APP_ID, Client, KEY, SECRET, answer, now, signed, start, test_app};

#[test]
fn set_apps_replaces_keys_secrets_and_removed_apps() {
    let gone = PusherApp::new("gone", "gone-key", "gone-secret");
    let server = start(vec![gone, test_app()]);
    server.rt.block_on(async {
        // An open connection of the app that stays (under a new secret, in another place in
        // the list), and one of the app that goes.
        let (mut kept, _) = Client::established(server.ws).await;
        kept.send(r#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#).await;
        assert_eq!(
            kept.recv_json().await["event"],
            "pusher_internal:subscription_succeeded"
        );
        let mut doomed = Client::connect(server.ws, "/app/gone-key?protocol=7").await;
        assert_eq!(doomed.recv_json().await["event"], "pusher:connection_established");

        let closed = server.pusher.set_apps(vec![
            PusherApp::new("new", "new-key", "new-secret"),
            PusherApp::new(APP_ID, KEY, "rotated-secret").with_client_events(true),
        ]);
        assert_eq!(closed, 1);
        assert_eq!(server.pusher.apps().len(), 2);

        // The removed app's connection: a pusher:error, then the close, both with 4001.
        let (texts, close) = doomed.until_close().await;
        assert_eq!(close.code.0, 4001);
        assert_eq!(texts.len(), 1, "{texts:?}");
        let frame: serde_json::Value = serde_json::from_str(&texts[0]).unwrap();
        assert_eq!(frame["event"], "pusher:error", "{frame}");
        assert_eq!(frame["data"]["code"], 4001, "{frame}");

        // New key accepted, removed key refused at connect.
        let mut fresh = Client::connect(server.ws, "/app/new-key?protocol=7").await;
        assert_eq!(fresh.recv_json().await["event"], "pusher:connection_established");
        let mut refused = Client::connect(server.ws, "/app/gone-key?protocol=7").await;
        let (texts, close) = refused.until_close().await;
        assert_eq!(close.code.0, 4001);
        assert_eq!(
            texts,
            vec![json!({"event": "pusher:error", "data": {"code": 4001, "message": "App key gone-key not in this cluster"}}).to_string()]
        );

        // The HTTP API: the new secret signs, the old one no longer does.
        let t = now();
        let body = r#"{"name":"e","channels":["news"],"data":"after"}"#;
        let path = format!("/apps/{APP_ID}/events");
        assert_eq!(answer(server.pusher.handle(signed("POST", &path, &[], body, SECRET, t))).0, 401);
        assert_eq!(
            answer(server.pusher.handle(signed("POST", &path, &[], body, "rotated-secret", t))),
            (200, json!({}))
        );
        // The gone app's API is gone too.
        assert_eq!(
            answer(server.pusher.handle(signed("POST", "/apps/gone/events", &[], body, "gone-secret", t))).0,
            404
        );

        // The kept app's open connection still receives its channel's events.
        let event = kept.recv_json().await;
        assert_eq!(event["event"], "e");
        assert_eq!(event["channel"], "news");
        assert_eq!(event["data"], "after");
        kept.nothing_pending().await;
    });
}

#[test]
fn disabling_an_app_closes_its_connections_with_4003() {
    let server = start(vec![test_app()]);
    server.rt.block_on(async {
        let (mut open, _) = Client::established(server.ws).await;
        let mut app = test_app();
        app.enabled = false;
        assert_eq!(server.pusher.set_apps(vec![app]), 1);
        let (texts, close) = open.until_close().await;
        assert_eq!(close.code.0, 4003);
        assert_eq!(texts.len(), 1, "the pusher:error goes out before the close: {texts:?}");
        let frame: serde_json::Value = serde_json::from_str(&texts[0]).unwrap();
        assert_eq!(frame["data"]["code"], 4003, "{frame}");
    });
}
