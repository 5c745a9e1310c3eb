//! The HTTP API handler: signatures, timestamps, body MD5, statuses, and what it publishes.

use serde_json::{Value, json};
use wsengine_hub::pusher::sign::channel_auth;
use wsengine_hub::pusher::{PusherApp, WebhookEvent};

use crate::support::{APP_ID, Client, KEY, SECRET, answer, now, signed, start, test_app};

#[test]
fn request_signing() {
    let server = start(vec![test_app()]);
    let p = &server.pusher;
    let t = now();
    let body = r#"{"name":"e","channels":["news"],"data":"x"}"#;
    let path = format!("/apps/{APP_ID}/events");
    assert_eq!(
        answer(p.handle(signed("POST", &path, &[], body, SECRET, t))),
        (200, json!({}))
    );
    // Wrong secret, stale or future timestamps beyond 600 s: 401 with a JSON error.
    let (status, error) = answer(p.handle(signed("POST", &path, &[], body, "wrong", t)));
    assert_eq!(status, 401);
    assert!(error["error"].is_string());
    assert_eq!(
        answer(p.handle(signed("POST", &path, &[], body, SECRET, t - 601))).0,
        401
    );
    assert_eq!(
        answer(p.handle(signed("POST", &path, &[], body, SECRET, t + 601))).0,
        401
    );
    assert_eq!(
        answer(p.handle(signed("POST", &path, &[], body, SECRET, t - 599))).0,
        200
    );
    // The exact window edge, with a fixed clock.
    assert_eq!(
        answer(p.handle_at(signed("POST", &path, &[], body, SECRET, 1000), 1600)).0,
        200
    );
    assert_eq!(
        answer(p.handle_at(signed("POST", &path, &[], body, SECRET, 1000), 1601)).0,
        401
    );
    // A body that is not the one signed: its MD5 no longer matches.
    let mut tampered = signed("POST", &path, &[], body, SECRET, t);
    *tampered.body_mut() = bytes::Bytes::from(body.replace("\"x\"", "\"y\""));
    assert_eq!(answer(p.handle(tampered)).0, 401);
    // A changed query parameter breaks the signature.
    let request = signed(
        "GET",
        &format!("/apps/{APP_ID}/channels"),
        &[("filter_by_prefix", "a")],
        "",
        SECRET,
        t,
    );
    let uri = request
        .uri()
        .to_string()
        .replace("filter_by_prefix=a", "filter_by_prefix=b");
    let request = http::Request::builder().uri(uri).body(bytes::Bytes::new()).unwrap();
    assert_eq!(answer(p.handle(request)).0, 401);
    // No signature at all.
    let request = http::Request::builder()
        .uri(format!("/apps/{APP_ID}/channels"))
        .body(bytes::Bytes::new())
        .unwrap();
    assert_eq!(answer(p.handle(request)).0, 401);
    // Unknown app 404, unknown route 404, wrong method 405.
    assert_eq!(
        answer(p.handle(signed("POST", "/apps/9/events", &[], body, SECRET, t))).0,
        404
    );
    assert_eq!(
        answer(p.handle(signed("GET", &format!("/apps/{APP_ID}/nope"), &[], "", SECRET, t))).0,
        404
    );
    assert_eq!(answer(p.handle(signed("GET", &path, &[], "", SECRET, t))).0, 405);
}

#[test]
fn bad_input_and_sizes() {
    let server = start(vec![test_app()]);
    let p = &server.pusher;
    let t = now();
    let path = format!("/apps/{APP_ID}/events");
    let post = |body: &str| answer(p.handle(signed("POST", &path, &[], body, SECRET, t)));
    assert_eq!(post("not json").0, 400);
    assert_eq!(post(r#"{"name":"e","data":"x"}"#).0, 400);
    assert_eq!(post(r#"{"name":"e","channels":[],"data":"x"}"#).0, 400);
    assert_eq!(post(r#"{"name":"e","channels":["a b"],"data":"x"}"#).0, 400);
    assert_eq!(post(r#"{"name":"","channels":["a"],"data":"x"}"#).0, 400);
    let many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    assert_eq!(
        post(&json!({"name": "e", "channels": many, "data": "x"}).to_string()).0,
        400
    );
    assert_eq!(
        post(r#"{"name":"e","channels":["private-encrypted-a","b"],"data":"x"}"#).0,
        400
    );
    assert_eq!(
        post(&json!({"name": "e", "channels": ["a"], "data": "x".repeat(10241)}).to_string()).0,
        413
    );
    assert_eq!(
        post(&json!({"name": "e", "channels": ["a"], "data": "x".repeat(10240)}).to_string()).0,
        200
    );
    assert_eq!(
        post(r#"{"name":"e","channels":["a"],"data":"x","socket_id":"abc"}"#).0,
        400
    );
    let huge = "x".repeat(300 << 10);
    assert_eq!(post(&huge).0, 413);
    let batch = |events: Vec<Value>| {
        answer(p.handle(signed(
            "POST",
            &format!("/apps/{APP_ID}/batch_events"),
            &[],
            &json!({ "batch": events }).to_string(),
            SECRET,
            t,
        )))
    };
    let event = json!({"channel": "a", "name": "e", "data": "x"});
    assert_eq!(batch(vec![event.clone(); 10]), (200, json!({})));
    assert_eq!(batch(vec![event.clone(); 11]).0, 400);
    assert_eq!(
        batch(vec![event, json!({"channel": "a b", "name": "e", "data": "x"})]).0,
        400
    );
    let get = |path: &str, query: &[(&str, &str)]| answer(p.handle(signed("GET", path, query, "", SECRET, t)));
    let channels = format!("/apps/{APP_ID}/channels");
    assert_eq!(get(&channels, &[("info", "user_count")]).0, 400);
    assert_eq!(get(&channels, &[("info", "bogus")]).0, 400);
    assert_eq!(get(&format!("/apps/{APP_ID}/channels/news/users"), &[]).0, 400);
    assert_eq!(
        get(&format!("/apps/{APP_ID}/channels/news"), &[("info", "user_count")]).0,
        400
    );
    assert_eq!(
        get(
            &format!("/apps/{APP_ID}/channels/news"),
            &[("info", "subscription_count")]
        ),
        (200, json!({"occupied": false, "subscription_count": 0}))
    );
}

#[test]
fn disabled_app_is_forbidden() {
    let mut app = PusherApp::new("5", KEY, SECRET);
    app.enabled = false;
    let server = start(vec![app]);
    let (status, _) = answer(server.pusher.handle(signed(
        "POST",
        "/apps/5/events",
        &[],
        r#"{"name":"e","channels":["a"],"data":"x"}"#,
        SECRET,
        now(),
    )));
    assert_eq!(status, 403);
}

#[test]
fn events_reach_subscribers_with_exclusion_info_and_webhooks() {
    let server = start(vec![test_app()]);
    server.rt.block_on(async {
        let (mut a, sid_a) = Client::established(server.ws).await;
        let (mut b, _) = Client::established(server.ws).await;
        for client in [&mut a, &mut b] {
            client.send(r#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#).await;
            assert_eq!(client.recv_json().await["event"], "pusher_internal:subscription_succeeded");
        }
        let t = now();
        let p = &server.pusher;
        let body = json!({"name": "up", "channels": ["news", "empty"], "data": "{\"v\":1}", "socket_id": sid_a, "info": "subscription_count"});
        let (status, info) = answer(p.handle(signed("POST", &format!("/apps/{APP_ID}/events"), &[], &body.to_string(), SECRET, t)));
        assert_eq!(status, 200);
        assert_eq!(
            info,
            json!({"channels": {"news": {"subscription_count": 2}, "empty": {"subscription_count": 0}}})
        );
        assert_eq!(b.recv_text().await, r#"{"event":"up","channel":"news","data":"{\"v\":1}"}"#);
        a.nothing_pending().await;
        // Non-string data goes out as its JSON text, in a string.
        let body = json!({"name": "obj", "channel": "news", "data": {"k": [1, 2]}});
        assert_eq!(
            answer(p.handle(signed("POST", &format!("/apps/{APP_ID}/events"), &[], &body.to_string(), SECRET, t))).0,
            200
        );
        assert_eq!(a.recv_text().await, r#"{"event":"obj","channel":"news","data":"{\"k\":[1,2]}"}"#);

        // Presence: users and counts; webhooks for occupancy and members, signed.
        let data = r#"{"user_id":"9"}"#;
        let auth = channel_auth(KEY, SECRET, &sid_a, "presence-w", Some(data));
        a.send(&json!({"event": "pusher:subscribe", "data": {"channel": "presence-w", "auth": auth, "channel_data": data}}).to_string()).await;
        assert_eq!(a.recv_json().await["event"], "pusher_internal:subscription_succeeded");
        let get = |path: &str, query: &[(&str, &str)]| answer(p.handle(signed("GET", path, query, "", SECRET, t)));
        assert_eq!(
            get(&format!("/apps/{APP_ID}/channels/presence-w/users"), &[]),
            (200, json!({"users": [{"id": "9"}]}))
        );
        assert_eq!(
            get(&format!("/apps/{APP_ID}/channels"), &[("filter_by_prefix", "presence-"), ("info", "user_count")]),
            (200, json!({"channels": {"presence-w": {"user_count": 1}}}))
        );
        a.send(r#"{"event":"pusher:unsubscribe","data":{"channel":"presence-w"}}"#).await;
        a.nothing_pending().await;
        let hooks = server.webhooks.lock().unwrap().clone();
        let mut names = Vec::new();
        for hook in &hooks {
            let signature = hook.headers.iter().find(|(n, _)| *n == "x-pusher-signature").unwrap();
            let expected = wsengine_hub::pusher::sign::hmac_hex(SECRET, std::str::from_utf8(&hook.body).unwrap());
            assert_eq!(signature.1, expected);
            assert!(hook.headers.contains(&("x-pusher-key", KEY.to_owned())));
            let body: Value = serde_json::from_slice(&hook.body).unwrap();
            assert!(body["time_ms"].as_u64().unwrap() > 1_600_000_000_000);
            for event in body["events"].as_array().unwrap() {
                names.push((event["name"].as_str().unwrap().to_owned(), event["channel"].as_str().unwrap().to_owned()));
            }
        }
        let expect = |name: &str, channel: &str| (name.to_owned(), channel.to_owned());
        assert_eq!(
            names,
            vec![
                expect("channel_occupied", "news"),
                expect("channel_occupied", "presence-w"),
                expect("member_added", "presence-w"),
                expect("member_removed", "presence-w"),
                expect("channel_vacated", "presence-w"),
            ]
        );
        let _ = WebhookEvent::clone;
    });
}
