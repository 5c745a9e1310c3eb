//! waffle's API in Rust: the typed router, JSON broadcast and events, and `JsonSocket`
//! (send/recv JSON, a ping that resolves on its pong, a write timeout).

use std::time::Duration;

use serde_json::{Value, json};
use wsengine_hub::json::{JsonError, JsonSocket};
use wsengine_hub::router::{RouteError, Router};
use wsengine_hub::{ChannelKey, Except, Hub};

use crate::rt::Rt;
use crate::suite::config;
use crate::support::{Client, serve, within};

fn router() -> Router {
    Router::new()
        .handle("join", |ctx, message| {
            let payload: Value = message.parse_payload()?;
            let room = payload["room"].as_str().ok_or_else(|| RouteError("no room".into()))?;
            ctx.join(room).map_err(|e| RouteError(e.to_string()))?;
            Ok(Some(json!({ "joined": room })))
        })
        .handle("chat", |ctx, message| {
            let payload: Value = message.parse_payload()?;
            let room = ctx.room(payload["room"].as_str().unwrap_or_default());
            let chat = json!({"user": ctx.connection().user_id(), "text": payload["text"]});
            ctx.hub().channel_event(&room, "chat", &chat, &Except::Nobody)?;
            Ok(None)
        })
        .handle("whoami", |ctx, _| {
            ctx.connection().set("asked", true);
            Ok(Some(json!({"id": ctx.connection().user_id(), "rooms": ctx.rooms()})))
        })
        .default_handler(|ctx, message| {
            ctx.send_typed(
                "error",
                &json!({"message": format!("unknown command: {}", message.kind)}),
            )?;
            Ok(None)
        })
}

pub async fn json_router_and_events<R: Rt>() {
    let hub = Hub::builder().config(config()).router(router()).build();
    let addr = serve::<R>(&hub).await;
    let mut alice = Client::<R>::connect(addr, "/json?user_id=alice").await;
    let mut bob = Client::<R>::connect(addr, "/json?user_id=bob").await;
    alice
        .send_json(json!({"type":"join","payload":{"room":"general"},"id":1}))
        .await;
    assert_eq!(
        alice.recv_json().await,
        json!({"type":"join","payload":{"joined":"general"},"id":1})
    );
    bob.send_json(json!({"type":"join","payload":{"room":"general"},"id":"b"}))
        .await;
    assert_eq!(bob.recv_json().await["id"], "b");
    alice.send_json(json!({"type":"whoami","id":7})).await;
    assert_eq!(
        alice.recv_json().await,
        json!({"type":"whoami","payload":{"id":"alice","rooms":["general"]},"id":7})
    );
    let alice_id = hub.user_connections("alice")[0];
    assert_eq!(hub.connection(alice_id).unwrap().get("asked"), Some(json!(true)));

    alice
        .send_json(json!({"type":"chat","payload":{"room":"general","text":"hi"}}))
        .await;
    let chat = json!({"name":"chat","data":{"user":"alice","text":"hi"}});
    assert_eq!(alice.recv_json().await, chat);
    assert_eq!(bob.recv_json().await, chat);

    alice.send_json(json!({"type":"fly","id":2})).await;
    assert_eq!(
        alice.recv_json().await,
        json!({"type":"error","payload":{"message":"unknown command: fly"}})
    );
    alice.send_json(json!({"type":"join","payload":{},"id":3})).await;
    assert_eq!(
        alice.recv_json().await,
        json!({"type":"error","payload":{"message":"no room"},"id":3})
    );
    alice.send("not json").await;
    assert_eq!(alice.recv_json().await["type"], "error");

    // Publications reach routed connections as events.
    hub.publish(&ChannelKey::named("general"), Some("news"), "extra");
    assert_eq!(
        bob.recv_json().await,
        json!({"name":"news","data":"extra","channel":"general"})
    );
    hub.broadcast_event("notice", &json!({"a":1}), &Except::User("bob".into()))
        .unwrap();
    hub.send_json(hub.user_connections("bob")[0], &json!({"direct":true}))
        .unwrap();
    assert_eq!(bob.recv_json().await, json!({"direct":true}));
    alice.recv_json().await; // alice's own news event
    assert_eq!(alice.recv_json().await, json!({"name":"notice","data":{"a":1}}));
}

pub async fn json_socket_ping_and_write_timeout<R: Rt>() {
    // Against the hub: JSON both ways and a ping answered by the engine.
    let hub = Hub::new(config());
    let addr = serve::<R>(&hub).await;
    let client = Client::<R>::connect(addr, "/ws").await;
    let mut socket = JsonSocket::new(client.ws);
    socket.send_json(&json!({"action":"ping","ref":1})).await.unwrap();
    let pong: Value = socket.recv_json().await.unwrap();
    assert_eq!(pong, json!({"type":"pong","ref":1}));
    // A message that arrives while the ping waits is kept.
    socket.send_json(&json!({"action":"ping","ref":2})).await.unwrap();
    within::<R, _>(10, "ping", socket.ping(Duration::from_secs(5)))
        .await
        .unwrap();
    let pong: Value = socket.recv_json().await.unwrap();
    assert_eq!(pong["ref"], 2);

    // Against a peer that never reads: the ping times out, and so do writes.
    let (listener, addr) = R::listen().await;
    let server = async {
        let (stream, _) = R::accept(&listener).await;
        let ws = wsengine_driver::accept::<_, R::Timer>(stream, crate::support::client_config())
            .await
            .unwrap();
        let mut socket = JsonSocket::new(ws).with_write_timeout(Some(Duration::from_millis(300)));
        assert!(matches!(
            socket.ping(Duration::from_millis(300)).await,
            Err(JsonError::PongTimeout)
        ));
        let big = "x".repeat(256 << 10);
        for _ in 0..1000 {
            match socket.send_json(&big).await {
                Ok(()) => {}
                Err(JsonError::WriteTimeout) => return,
                Err(other) => panic!("{other:?}"),
            }
        }
        panic!("never timed out");
    };
    let stalled = async {
        use futures_util::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = R::connect_small(addr);
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut byte = [0u8; 1];
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1);
            head.push(byte[0]);
        }
        stream
    };
    let (_stream, ()) = within::<R, _>(30, "write timeout", futures_util::future::join(stalled, server)).await;
}
