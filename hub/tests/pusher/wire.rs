//! Exact frames over a real socket, with a raw WebSocket client.

use serde_json::{Value, json};
use wsengine_hub::pusher::sign::channel_auth;

use crate::support::{Client, KEY, SECRET, start, test_app};

#[test]
fn connection_established_and_ping() {
    let server = start(vec![test_app()]);
    server.rt.block_on(async {
        let mut client = Client::connect(server.ws, &format!("/app/{KEY}?protocol=7&client=js&version=8.6.0")).await;
        let text = client.recv_text().await;
        let frame: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(frame["event"], "pusher:connection_established");
        // data is a JSON string holding socket_id and activity_timeout.
        let data: Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
        let socket_id = data["socket_id"].as_str().unwrap();
        let (a, b) = socket_id.split_once('.').unwrap();
        assert!(!a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()), "{socket_id}");
        assert!(!b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()), "{socket_id}");
        assert_eq!(data["activity_timeout"], 120);
        assert_eq!(
            text,
            format!(r#"{{"event":"pusher:connection_established","data":"{{\"activity_timeout\":120,\"socket_id\":\"{socket_id}\"}}"}}"#)
        );
        client.nothing_pending().await;
        // A pong from the client and unknown events are ignored.
        client.send(r#"{"event":"pusher:pong","data":{}}"#).await;
        client.send(r#"{"event":"whatever","data":{}}"#).await;
        client.nothing_pending().await;
        client.send("not json").await;
        assert_eq!(
            client.recv_text().await,
            r#"{"data":{"code":null,"message":"Invalid JSON"},"event":"pusher:error"}"#
        );
    });
}

#[test]
fn refusals_are_errors_then_closes() {
    let mut disabled = wsengine_hub::pusher::PusherApp::new("2", "off-key", "s");
    disabled.enabled = false;
    let mut full = wsengine_hub::pusher::PusherApp::new("3", "full-key", "s");
    full.max_connections = Some(0);
    let server = start(vec![test_app(), disabled, full]);
    server.rt.block_on(async {
        let cases = [
            ("/app/nope?protocol=7", 4001, "App key nope not in this cluster"),
            ("/app/off-key?protocol=7", 4003, "App disabled"),
            (&*format!("/app/{KEY}"), 4006, "Invalid version string format"),
            (
                &*format!("/app/{KEY}?protocol=x"),
                4006,
                "Invalid version string format",
            ),
            (&*format!("/app/{KEY}?protocol=3"), 4007, "Unsupported protocol version"),
            ("/app/full-key?protocol=7", 4100, "Over capacity"),
        ];
        for (path, code, message) in cases {
            let mut client = Client::connect(server.ws, path).await;
            let (texts, close) = client.until_close().await;
            assert_eq!(
                texts,
                vec![json!({"event": "pusher:error", "data": {"code": code, "message": message}}).to_string()],
                "{path}"
            );
            assert_eq!(close.code.0, code, "{path}");
        }
    });
}

#[test]
fn subscriptions_with_exact_frames() {
    let server = start(vec![test_app()]);
    server.rt.block_on(async {
        let (mut a, sid) = Client::established(server.ws).await;
        a.send(r#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#).await;
        assert_eq!(
            a.recv_text().await,
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"news","data":"{}"}"#
        );
        // Private: a good signature joins, a bad one answers subscription_error and a 4009
        // error, and joins nothing.
        let auth = channel_auth(KEY, SECRET, &sid, "private-x", None);
        a.send(&json!({"event": "pusher:subscribe", "data": {"channel": "private-x", "auth": auth}}).to_string())
            .await;
        assert_eq!(
            a.recv_text().await,
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"private-x","data":"{}"}"#
        );
        let wrong = channel_auth(KEY, "other", &sid, "private-y", None);
        a.send(&json!({"event": "pusher:subscribe", "data": {"channel": "private-y", "auth": wrong}}).to_string())
            .await;
        assert_eq!(
            a.recv_text().await,
            r#"{"channel":"private-y","data":{"error":"Invalid signature","status":401,"type":"AuthError"},"event":"pusher:subscription_error"}"#
        );
        assert_eq!(
            a.recv_text().await,
            r#"{"data":{"code":4009,"message":"Invalid signature"},"event":"pusher:error"}"#
        );
        // Signed for another socket: refused too.
        let other = channel_auth(KEY, SECRET, "1.2", "private-y", None);
        a.send(&json!({"event": "pusher:subscribe", "data": {"channel": "private-y", "auth": other}}).to_string())
            .await;
        assert_eq!(a.recv_json().await["event"], "pusher:subscription_error");
        assert_eq!(a.recv_json().await["event"], "pusher:error");
        assert_eq!(server.hub.channel_size(&wsengine_hub::ChannelKey::new("1", "private-y")), 0);
        // Names: invalid characters, too long, reserved.
        for name in ["a b", &"x".repeat(201), "#server-to-user-1"] {
            a.send(&json!({"event": "pusher:subscribe", "data": {"channel": name}}).to_string()).await;
            assert_eq!(a.recv_json().await["event"], "pusher:subscription_error", "{name}");
        }
        // Presence: the hash, ids and count; member_added for a new user only.
        let data = r#"{"user_id":"u1","user_info":{"name":"One"}}"#;
        let auth = channel_auth(KEY, SECRET, &sid, "presence-r", Some(data));
        a.send(
            &json!({"event": "pusher:subscribe", "data": {"channel": "presence-r", "auth": auth, "channel_data": data}})
                .to_string(),
        )
        .await;
        assert_eq!(
            a.recv_text().await,
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-r","data":"{\"presence\":{\"count\":1,\"hash\":{\"u1\":{\"name\":\"One\"}},\"ids\":[\"u1\"]}}"}"#
        );
        let (mut b, sid_b) = Client::established(server.ws).await;
        let data_b = r#"{"user_id":2}"#;
        let auth = channel_auth(KEY, SECRET, &sid_b, "presence-r", Some(data_b));
        b.send(
            &json!({"event": "pusher:subscribe", "data": {"channel": "presence-r", "auth": auth, "channel_data": data_b}})
                .to_string(),
        )
        .await;
        assert_eq!(
            b.recv_text().await,
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-r","data":"{\"presence\":{\"count\":2,\"hash\":{\"2\":null,\"u1\":{\"name\":\"One\"}},\"ids\":[\"2\",\"u1\"]}}"}"#
        );
        assert_eq!(
            a.recv_text().await,
            r#"{"event":"pusher_internal:member_added","channel":"presence-r","data":"{\"user_id\":\"2\"}"}"#
        );
        // Client events: relayed to others with user_id on presence, never echoed.
        b.send(r#"{"event":"client-wave","channel":"presence-r","data":{"hi":1}}"#).await;
        assert_eq!(
            a.recv_text().await,
            r#"{"event":"client-wave","channel":"presence-r","data":{"hi":1},"user_id":"2"}"#
        );
        b.nothing_pending().await;
        // Unsubscribing the last socket of user 2 removes the member.
        b.send(r#"{"event":"pusher:unsubscribe","data":{"channel":"presence-r"}}"#).await;
        assert_eq!(
            a.recv_text().await,
            r#"{"event":"pusher_internal:member_removed","channel":"presence-r","data":"{\"user_id\":\"2\"}"}"#
        );
        b.nothing_pending().await;
        a.nothing_pending().await;
    });
}

#[test]
fn presence_once_per_user_even_on_abrupt_close() {
    let server = start(vec![test_app()]);
    server.rt.block_on(async {
        let join = |sid: &str, user: &str| {
            let data = format!(r#"{{"user_id":"{user}"}}"#);
            let auth = channel_auth(KEY, SECRET, sid, "presence-p", Some(&data));
            json!({"event": "pusher:subscribe", "data": {"channel": "presence-p", "auth": auth, "channel_data": data}})
                .to_string()
        };
        let (mut watcher, sid) = Client::established(server.ws).await;
        watcher.send(&join(&sid, "w")).await;
        assert_eq!(
            watcher.recv_json().await["event"],
            "pusher_internal:subscription_succeeded"
        );
        let (mut s1, sid1) = Client::established(server.ws).await;
        s1.send(&join(&sid1, "dup")).await;
        assert_eq!(s1.recv_json().await["event"], "pusher_internal:subscription_succeeded");
        let (mut s2, sid2) = Client::established(server.ws).await;
        s2.send(&join(&sid2, "dup")).await;
        let second: Value = s2.recv_json().await;
        let presence: Value = serde_json::from_str(second["data"].as_str().unwrap()).unwrap();
        assert_eq!(presence["presence"]["count"], 2);
        let added = watcher.recv_json().await;
        assert_eq!(added["event"], "pusher_internal:member_added");
        watcher.nothing_pending().await;
        // The first socket vanishes without a close handshake: no removal, user still has one.
        drop(s1);
        watcher.nothing_pending().await;
        for _ in 0..200 {
            if server
                .hub
                .channel_size(&wsengine_hub::ChannelKey::new("1", "presence-p"))
                == 2
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            server
                .hub
                .channel_size(&wsengine_hub::ChannelKey::new("1", "presence-p")),
            2
        );
        watcher.nothing_pending().await;
        drop(s2);
        assert_eq!(
            watcher.recv_text().await,
            r#"{"event":"pusher_internal:member_removed","channel":"presence-p","data":"{\"user_id\":\"dup\"}"}"#
        );
    });
}

#[test]
fn client_event_rules() {
    let mut app = test_app();
    // Three per hour: no token can come back while the test runs, however slow the machine.
    app.client_event_rate = wsengine_hub::limits::Rate::new(3, std::time::Duration::from_secs(3600)).ok();
    let mut quiet = wsengine_hub::pusher::PusherApp::new("2", "quiet-key", SECRET);
    quiet.client_events = false;
    let server = start(vec![app, quiet]);
    server.rt.block_on(async {
        let (mut a, sid) = Client::established(server.ws).await;
        let (mut b, sid_b) = Client::established(server.ws).await;
        for (client, sid) in [(&mut a, &sid), (&mut b, &sid_b)] {
            let auth = channel_auth(KEY, SECRET, sid, "private-c", None);
            client
                .send(&json!({"event": "pusher:subscribe", "data": {"channel": "private-c", "auth": auth}}).to_string())
                .await;
            assert_eq!(client.recv_json().await["event"], "pusher_internal:subscription_succeeded");
        }
        // Not subscribed, public, encrypted: errors, nothing relayed.
        for channel in ["private-other", "news", "private-encrypted-x"] {
            a.send(&json!({"event": "client-x", "channel": channel, "data": {}}).to_string()).await;
            let error = a.recv_json().await;
            assert_eq!(error["event"], "pusher:error", "{channel}");
            assert_eq!(error["data"]["code"], Value::Null, "{channel}");
        }
        // Over the rate: 4301, and the socket stays open.
        for i in 0..4 {
            a.send(&json!({"event": "client-n", "channel": "private-c", "data": {"i": i}}).to_string()).await;
        }
        assert_eq!(
            a.recv_text().await,
            r#"{"data":{"code":4301,"message":"Client event rejected - only 3 accepted per 3600 s"},"event":"pusher:error"}"#
        );
        for i in 0..3 {
            assert_eq!(
                b.recv_text().await,
                format!(r#"{{"event":"client-n","channel":"private-c","data":{{"i":{i}}}}}"#)
            );
        }
        b.nothing_pending().await;
        a.nothing_pending().await;

        // An app without client events refuses them.
        let mut q = crate::support::Client::connect(server.ws, "/app/quiet-key?protocol=7").await;
        let frame = q.recv_json().await;
        let sid_q: Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
        let auth = channel_auth("quiet-key", SECRET, sid_q["socket_id"].as_str().unwrap(), "private-c", None);
        q.send(&json!({"event": "pusher:subscribe", "data": {"channel": "private-c", "auth": auth}}).to_string())
            .await;
        assert_eq!(q.recv_json().await["event"], "pusher_internal:subscription_succeeded");
        q.send(r#"{"event":"client-x","channel":"private-c","data":{}}"#).await;
        assert_eq!(
            q.recv_text().await,
            r#"{"data":{"code":null,"message":"Client events are not enabled for this app"},"event":"pusher:error"}"#
        );
    });
}

#[test]
fn idle_clients_are_pinged_then_closed_with_4201() {
    let mut app = test_app();
    app.signin_timeout = Some(std::time::Duration::from_secs(600));
    let server = start(vec![app]);
    server.rt.block_on(async {
        let start = std::time::Instant::now();
        let (mut idle, _) = Client::established(server.ws).await;
        let (mut alive, _) = Client::established(server.ws).await;
        let p = &server.pusher;
        // Not yet idle (the clock given is the connect time's).
        assert_eq!(p.sweep_at(start).pinged, 0);
        let later = start + std::time::Duration::from_secs(121);
        assert_eq!(p.sweep_at(later).pinged, 2);
        assert_eq!(idle.recv_text().await, r#"{"event":"pusher:ping","data":"{}"}"#);
        assert_eq!(alive.recv_text().await, r#"{"event":"pusher:ping","data":"{}"}"#);
        // One answers; the other stays silent past the pong timeout.
        alive.send(r#"{"event":"pusher:pong","data":{}}"#).await;
        alive.nothing_pending().await;
        // (By that clock the one that answered is idle again: pinged anew, not closed.)
        let sweep = p.sweep_at(later + std::time::Duration::from_secs(30));
        assert_eq!((sweep.unresponsive, sweep.pinged), (1, 1));
        assert_eq!(alive.recv_text().await, r#"{"event":"pusher:ping","data":"{}"}"#);
        let (texts, close) = idle.until_close().await;
        assert!(texts.is_empty(), "{texts:?}");
        assert_eq!((close.code.0, close.reason.as_str()), (4201, "Pong reply not received"));
        alive.nothing_pending().await;
        // Sign-in timeout: closed with 4009.
        let sweep = p.sweep_at(start + std::time::Duration::from_secs(601));
        assert_eq!(sweep.not_signed_in, 1);
        let (_, close) = alive.until_close().await;
        assert_eq!(close.code.0, 4009);
    });
}
