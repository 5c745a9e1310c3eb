//! Test bodies, generic over the runtime; `hub_tests!` instantiates them for each.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use wsengine::{CloseCause, CloseCode};
use wsengine_hub::auth::JwtAuthorizer;
use wsengine_hub::auth::jwt::JwtVerifier;
use wsengine_hub::auth::origin::OriginPolicy;
use wsengine_hub::limits::{CapsConfig, ConnectRateConfig, Rate};
use wsengine_hub::{
    ChannelKey, ClientMessage, ClientPublish, Data, DisconnectCause, ErrorKind, Except, Hub, HubConfig, HubEvent,
    Publication, ShutdownOptions,
};

use crate::rt::Rt;
use crate::slow::stalled_client;
pub use crate::slow::{
    slow_consumer_disconnect, slow_consumer_drop_newest_and_oldest, write_timeout_closes_a_stuck_consumer,
};
use crate::support::{Client, eventually, raw_upgrade, serve, status_of, within};

#[macro_export]
macro_rules! hub_tests {
    ($rt:ty: @waffle $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                <$rt as $crate::rt::Rt>::block_on($crate::waffle::$name::<$rt>());
            }
        )*
    };
    ($rt:ty: $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                <$rt as $crate::rt::Rt>::block_on($crate::suite::$name::<$rt>());
            }
        )*
    };
}

/// Test settings: no caps or rates unless a test sets them.
pub fn config() -> HubConfig {
    let mut config = HubConfig::default();
    config.connect_rate = None;
    config.caps = CapsConfig::unlimited();
    config.message_rate = None;
    config
}

pub fn key(name: &str) -> ChannelKey {
    ChannelKey::named(name)
}

pub async fn subscribe<R: Rt>(client: &mut Client<R>, channel: &str) {
    client.send_json(json!({"action":"subscribe","channel":channel})).await;
    assert_eq!(client.recv_type("subscribed").await["channel"], channel);
}

pub async fn channels_and_broadcast_except<R: Rt>() {
    let mut config = config();
    config.client_publish = ClientPublish::Subscribed;
    let hub = Hub::new(config);
    let addr = serve::<R>(&hub).await;
    let mut clients = Vec::new();
    for i in 0..6 {
        let mut client = Client::<R>::connect(addr, &format!("/ws?user_id=u{}", i % 3)).await;
        let room = if i < 4 { "room-a" } else { "room-b" };
        client
            .send_json(json!({"action":"subscribe","channel":room,"ref":i}))
            .await;
        assert_eq!(
            client.recv_json().await,
            json!({"type":"subscribed","channel":room,"ref":i})
        );
        clients.push(client);
    }
    assert_eq!(hub.channel_size(&key("room-a")), 4);
    assert_eq!(hub.channels(), vec![key("room-a"), key("room-b")]);
    assert_eq!(hub.connection_count(), 6);
    let u0 = hub.user_connections("u0");
    assert_eq!(u0.len(), 2);
    assert!(hub.has(&key("room-a"), u0[0]));

    let delivery = hub.publish(&key("room-a"), Some("news"), Data::json(&json!({"n":1})).unwrap());
    assert_eq!(delivery.queued, 4);
    for client in &mut clients[..4] {
        let expected = json!({"type":"message","channel":"room-a","event":"news","data":{"n":1}});
        assert_eq!(client.recv_json().await, expected);
    }

    // Except a user (u0 is clients 0 and 3), then except one connection (client 1's).
    let publication = |data: &str| Publication {
        channel: key("room-a"),
        event: None,
        data: Data::text(data),
        from: None,
    };
    let delivery = hub.publish_with(publication("not u0"), &Except::User("u0".into()));
    assert_eq!(delivery.queued, 2);
    for i in [1, 2] {
        assert_eq!(
            clients[i].recv_json().await,
            json!({"type":"message","channel":"room-a","data":"not u0"})
        );
    }
    let c1 = hub.user_connections("u1")[0];
    assert_eq!(
        hub.publish_with(publication("not c1"), &Except::Connection(c1)).queued,
        3
    );
    for i in [0, 2, 3] {
        assert_eq!(clients[i].recv_json().await["data"], "not c1");
    }
    for i in [0, 1, 3] {
        clients[i].nothing_before_pong("quiet").await;
    }

    // A client's publication reaches the others, not itself.
    clients[1]
        .send_json(json!({"action":"broadcast","channel":"room-a","event":"chat","data":"yo","ref":"b1"}))
        .await;
    assert_eq!(clients[1].recv_json().await, json!({"type":"ack","ref":"b1"}));
    for i in [0, 2, 3] {
        let expected = json!({"type":"message","channel":"room-a","event":"chat","data":"yo","from":"u1"});
        assert_eq!(clients[i].recv_json().await, expected);
    }
    // Not to a channel it is not in.
    clients[4]
        .send_json(json!({"action":"broadcast","channel":"room-a","data":"x"}))
        .await;
    assert_eq!(clients[4].recv_json().await["code"], "not_subscribed");

    // Everyone, whatever the channel.
    assert_eq!(hub.broadcast("to all", &Except::Nobody).queued, 6);
    for client in &mut clients {
        assert_eq!(client.recv_text().await, "to all");
    }
    assert_eq!(
        hub.send_to_channel(&key("room-b"), "room b only", &Except::Nobody)
            .queued,
        2
    );
    for client in &mut clients[4..] {
        assert_eq!(client.recv_text().await, "room b only");
    }

    // Per-connection data.
    let conn = hub.connection(c1).unwrap();
    conn.set("name", "bea");
    assert_eq!(conn.get_str("name").as_deref(), Some("bea"));
    assert_eq!(conn.channels(), vec![key("room-a")]);
    assert_eq!(conn.user_id(), "u1");

    // Leaving empties and removes a channel; delete unsubscribes everyone.
    for client in &mut clients[4..] {
        client
            .send_json(json!({"action":"unsubscribe","channel":"room-b"}))
            .await;
        assert_eq!(
            client.recv_json().await,
            json!({"type":"unsubscribed","channel":"room-b"})
        );
    }
    assert_eq!(hub.channels(), vec![key("room-a")]);
    assert!(hub.delete_channel(&key("room-a")));
    assert!(hub.channels().is_empty());
    assert_eq!(hub.publish(&key("room-a"), None, "gone").queued, 0);
    assert!(hub.connection(c1).unwrap().channels().is_empty());
}

pub async fn presence_once_per_user_even_on_abrupt_close<R: Rt>() {
    let hub = Hub::new(config());
    let mut events = hub.events();
    let addr = serve::<R>(&hub).await;
    let mut bob = Client::<R>::connect(addr, "/ws?user_id=bob").await;
    subscribe(&mut bob, "presence-room").await;
    assert_eq!(bob.recv_type("presence").await["users"], json!(["bob"]));

    let mut alice1 = Client::<R>::connect(addr, "/ws?user_id=alice").await;
    subscribe(&mut alice1, "presence-room").await;
    let list = alice1.recv_type("presence").await;
    assert_eq!(
        (list["event"].clone(), list["users"].clone()),
        (json!("list"), json!(["alice", "bob"]))
    );
    let join = json!({"type":"presence","channel":"presence-room","event":"join","user_id":"alice"});
    assert_eq!(bob.recv_json().await, join);

    // A second connection of the same user joins nobody.
    let mut alice2 = Client::<R>::connect(addr, "/ws?user_id=alice").await;
    subscribe(&mut alice2, "presence-room").await;
    alice2.recv_type("presence").await;
    bob.nothing_before_pong("no second join").await;

    bob.send_json(json!({"action":"presence","channel":"presence-room","ref":5}))
        .await;
    let list = bob.recv_json().await;
    assert_eq!((list["count"].clone(), list["ref"].clone()), (json!(2), json!(5)));
    assert_eq!(hub.presence_count(&key("presence-room")), 2);
    assert_eq!(hub.channel_size(&key("presence-room")), 3);

    // Abrupt closes (TCP gone, no close frame): the first leaves nobody, the last leaves alice.
    drop(alice1);
    eventually::<R>(10, "first close seen", || hub.channel_size(&key("presence-room")) == 2).await;
    bob.nothing_before_pong("no leave yet").await;
    drop(alice2);
    let leave = json!({"type":"presence","channel":"presence-room","event":"leave","user_id":"alice"});
    assert_eq!(bob.recv_json().await, leave);
    assert_eq!(hub.presence(&key("presence-room")).len(), 1);

    let mut joins = Vec::new();
    while let Some(event) = events.try_next() {
        match event {
            HubEvent::PresenceJoined { user_id, .. } => joins.push(format!("+{user_id}")),
            HubEvent::PresenceLeft { user_id, .. } => joins.push(format!("-{user_id}")),
            HubEvent::Disconnected { cause, .. } => assert_eq!(cause, DisconnectCause::Closed(CloseCause::Eof)),
            _ => {}
        }
    }
    assert_eq!(joins, ["+bob", "+alice", "-alice"]);
}

pub async fn whisper_rules<R: Rt>() {
    let mut config = config();
    config.whispers = true;
    let hub = Hub::builder()
        .config(config)
        // Two filters in a row: the second sees what the first changed.
        .filter(|message: &mut ClientMessage| {
            if message.event.as_deref() == Some("shout") {
                message.data = Data::text(message.data.to_text().to_uppercase());
            }
            true
        })
        .filter(|message: &mut ClientMessage| {
            message.event.as_deref() != Some("blocked") && message.data.to_text() != "STOP"
        })
        .build();
    let addr = serve::<R>(&hub).await;
    let mut a = Client::<R>::connect(addr, "/ws?user_id=a").await;
    let mut b = Client::<R>::connect(addr, "/ws?user_id=b").await;
    let mut outsider = Client::<R>::connect(addr, "/ws?user_id=c").await;
    for client in [&mut a, &mut b] {
        subscribe(client, "private-chat").await;
        subscribe(client, "lobby").await;
    }
    let whisper = |channel: &str, event: &str, data: serde_json::Value, reference: &str| json!({"action":"whisper","channel":channel,"event":event,"data":data,"ref":reference});
    a.send_json(whisper("lobby", "typing", json!(true), "w0")).await;
    assert_eq!(a.recv_json().await["code"], "whisper_not_allowed");
    outsider
        .send_json(whisper("private-chat", "typing", json!(true), "w0"))
        .await;
    assert_eq!(outsider.recv_json().await["code"], "not_subscribed");

    a.send_json(whisper("private-chat", "typing", json!({"t":true}), "w1"))
        .await;
    assert_eq!(a.recv_json().await, json!({"type":"ack","ref":"w1"}));
    let expected = json!({"type":"whisper","channel":"private-chat","from":"a","event":"typing","data":{"t":true}});
    assert_eq!(b.recv_json().await, expected);
    a.nothing_before_pong("never echoed").await;
    outsider.nothing_before_pong("never to outsiders").await;

    a.send_json(whisper("private-chat", "blocked", json!(1), "w2")).await;
    assert_eq!(a.recv_json().await["type"], "ack");
    b.nothing_before_pong("dropped by the filter").await;
    a.send_json(whisper("private-chat", "shout", json!("stop"), "w2b"))
        .await;
    assert_eq!(a.recv_json().await["type"], "ack");
    b.nothing_before_pong("upper-cased by the first filter, then dropped by the second")
        .await;
    a.send_json(whisper("private-chat", "shout", json!("hi"), "w3")).await;
    assert_eq!(b.recv_json().await["data"], "HI");
    assert_eq!(a.recv_json().await, json!({"type":"ack","ref":"w3"}));

    // More than the rate (10/s) back to back: some are refused.
    for i in 0..20 {
        a.send_json(json!({"action":"whisper","channel":"private-chat","event":"n","data":i}))
            .await;
    }
    a.send_json(json!({"action":"ping","ref":"end"})).await;
    let mut refused = 0;
    loop {
        let value = a.recv_json().await;
        if value["type"] == "pong" {
            break;
        }
        assert_eq!(value["code"], "rate_limited");
        refused += 1;
    }
    assert!(refused >= 1, "whisper rate never applied");

    // Off by default.
    let hub = Hub::new(self::config());
    let addr = serve::<R>(&hub).await;
    let mut a = Client::<R>::connect(addr, "/ws?user_id=a").await;
    subscribe(&mut a, "private-x").await;
    a.send_json(whisper("private-x", "typing", json!(1), "w")).await;
    assert_eq!(a.recv_json().await["code"], "whisper_not_allowed");
}

fn token(claims: serde_json::Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(b"test secret");
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

fn exp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600
}

pub async fn auth_rejections_with_statuses<R: Rt>() {
    let mut config = config();
    config.origins = Some(OriginPolicy::new(["https://*.example.com"]).unwrap());
    let verifier = JwtVerifier::hs256(b"test secret");
    let hub = Hub::builder()
        .config(config)
        .authorizer(JwtAuthorizer::new(verifier))
        .build();
    let mut events = hub.events();
    let addr = serve::<R>(&hub).await;

    assert_eq!(status_of(&raw_upgrade::<R>(1, addr, "/ws", &[]).await), 401);
    let bad = format!("Bearer {}", token(json!({"sub":"eve","exp":exp()})).replace('.', "x."));
    assert_eq!(
        status_of(&raw_upgrade::<R>(1, addr, "/ws", &[("Authorization", &bad)]).await),
        401
    );
    let good = token(json!({
        "sub":"ann",
        "exp":exp(),
        "channels":["private-team-*", "presence-team"],
        "user_info":{"name":"Ann"}
    }));
    let auth = format!("Bearer {good}");
    let evil = [("Authorization", auth.as_str()), ("Origin", "https://evil.com")];
    assert_eq!(status_of(&raw_upgrade::<R>(1, addr, "/ws", &evil).await), 403);

    let headers = [("Authorization", auth.as_str()), ("Origin", "https://app.example.com")];
    let mut ann = Client::<R>::try_connect(1, addr, "/ws", &headers).await.unwrap();
    subscribe(&mut ann, "private-team-red").await;
    ann.send_json(json!({"action":"subscribe","channel":"private-other","ref":1}))
        .await;
    let refused = ann.recv_json().await;
    assert_eq!(
        (refused["code"].clone(), refused["channel"].clone()),
        (json!("forbidden"), json!("private-other"))
    );
    subscribe(&mut ann, "public").await;
    assert_eq!(hub.user_connections("ann").len(), 1);
    // Member info from the token's user_info claim.
    subscribe(&mut ann, "presence-team").await;
    let list = ann.recv_type("presence").await;
    assert_eq!(list["members"], json!([{"user_id":"ann","user_info":{"name":"Ann"}}]));
    // The token may also come as a query parameter.
    let mut ann2 = Client::<R>::connect(addr, &format!("/ws?token={good}")).await;
    subscribe(&mut ann2, "public").await;

    let mut kinds = Vec::new();
    while let Some(event) = events.try_next() {
        if let HubEvent::Error(error) = event {
            kinds.push(error.kind);
        }
    }
    assert_eq!(
        kinds,
        [
            ErrorKind::AuthFailed,
            ErrorKind::AuthFailed,
            ErrorKind::OriginRejected,
            ErrorKind::AuthFailed
        ]
    );

    // Connect rate per IP: 429 with Retry-After.
    let mut config = self::config();
    config.connect_rate = Some(ConnectRateConfig::new(Rate::per_minute(2).unwrap()));
    let hub = Hub::new(config);
    let addr = serve::<R>(&hub).await;
    let _c1 = Client::<R>::try_connect(5, addr, "/ws", &[]).await.unwrap();
    let _c2 = Client::<R>::try_connect(5, addr, "/ws", &[]).await.unwrap();
    let response = raw_upgrade::<R>(5, addr, "/ws", &[]).await;
    assert_eq!(status_of(&response), 429);
    assert!(response.to_ascii_lowercase().contains("retry-after: "), "{response}");
    // Another address has its own budget.
    let _c3 = Client::<R>::try_connect(6, addr, "/ws", &[]).await.unwrap();
}

pub async fn connection_caps_per_ip_user_and_total<R: Rt>() {
    let mut config = config();
    config.caps = CapsConfig {
        max_total: Some(7),
        max_per_ip: Some(2),
        max_per_user: Some(3),
        ..CapsConfig::default()
    };
    let hub = Hub::new(config);
    let addr = serve::<R>(&hub).await;
    let mut held = Vec::new();
    for source in [2, 2] {
        held.push(Client::<R>::try_connect(source, addr, "/ws", &[]).await.unwrap());
    }
    assert_eq!(status_of(&raw_upgrade::<R>(2, addr, "/ws", &[]).await), 429);
    held.push(Client::<R>::try_connect(3, addr, "/ws", &[]).await.unwrap());
    // Per user: three of "sam" from three addresses, the fourth refused.
    for source in [4, 5, 6] {
        held.push(
            Client::<R>::try_connect(source, addr, "/ws?user_id=sam", &[])
                .await
                .unwrap(),
        );
    }
    assert_eq!(status_of(&raw_upgrade::<R>(7, addr, "/ws?user_id=sam", &[]).await), 429);
    // Total: seven.
    held.push(Client::<R>::try_connect(8, addr, "/ws", &[]).await.unwrap());
    assert_eq!(status_of(&raw_upgrade::<R>(9, addr, "/ws", &[]).await), 503);
    // A slot comes back when a connection ends.
    let mut first = held.remove(0);
    let _ = first.ws.close(CloseCode::NORMAL, "").await;
    drop(first);
    eventually::<R>(10, "slot freed", || hub.connection_count() == 6).await;
    held.push(Client::<R>::try_connect(2, addr, "/ws", &[]).await.unwrap());
}

pub async fn message_limits<R: Rt>() {
    let mut config = config();
    config.message_rate = Some(Rate::per_minute(5).unwrap());
    config.max_channels_per_connection = 2;
    config.max_presence_members = 1;
    config.max_message_size = 1000;
    let hub = Hub::new(config);
    let addr = serve::<R>(&hub).await;
    let mut client = Client::<R>::connect(addr, "/ws?user_id=x").await;
    subscribe(&mut client, "presence-1").await;
    subscribe(&mut client, "b").await;
    client.send_json(json!({"action":"subscribe","channel":"c"})).await;
    assert_eq!(client.recv_type("error").await["code"], "too_many_channels");
    let mut other = Client::<R>::connect(addr, "/ws?user_id=y").await;
    other
        .send_json(json!({"action":"subscribe","channel":"presence-1"}))
        .await;
    assert_eq!(other.recv_json().await["code"], "presence_full");
    // Five messages a minute: the next ones are refused with an error frame, not a close.
    for _ in 0..3 {
        client.send_json(json!({"action":"ping"})).await;
    }
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(client.recv_json().await);
    }
    assert_eq!(codes[0]["type"], "pong");
    assert_eq!(
        codes[2],
        json!({"type":"error","code":"rate_limited","error":"too many messages"})
    );
    // Too big closes with 1009.
    other.send(&"x".repeat(2000)).await;
    let (_, info) = other.drain_until_close().await;
    assert_eq!(info.code, CloseCode::MESSAGE_TOO_BIG);
    let snapshot = hub.snapshot();
    assert!(snapshot.rate_limited >= 1, "{snapshot:?}");

    // Limits changed on the running hub: channel and size limits apply to an open connection
    // at once, the message rate to connections opened after.
    let mut early = Client::<R>::connect(addr, "/ws?user_id=early").await;
    subscribe(&mut early, "a").await;
    subscribe(&mut early, "b").await;
    let mut limits = hub.limits();
    limits.max_channels_per_connection = 3;
    limits.max_message_size = 500;
    limits.message_rate = None;
    hub.set_limits(limits.clone());
    assert_eq!(hub.limits(), limits);
    assert_eq!(hub.websocket_config().max_message_size, 500);
    let mut fresh = Client::<R>::connect(addr, "/ws?user_id=fresh").await;
    for n in 0..8 {
        fresh.send_json(json!({"action":"ping","ref":n})).await;
    }
    for n in 0..8 {
        assert_eq!(fresh.recv_json().await, json!({"type":"pong","ref":n}));
    }
    subscribe(&mut early, "c").await;
    // Under the size its socket was opened with (1000), over the hub's new one.
    early.send(&"x".repeat(700)).await;
    let (_, info) = early.drain_until_close().await;
    assert_eq!(info.code, CloseCode::MESSAGE_TOO_BIG);
}

pub async fn graceful_shutdown_loses_nothing<R: Rt>() {
    let hub = Hub::new(config());
    let addr = serve::<R>(&hub).await;
    let mut clients = Vec::new();
    for _ in 0..10 {
        let mut client = Client::<R>::connect(addr, "/ws").await;
        subscribe(&mut client, "news").await;
        clients.push(client);
    }
    for i in 0..200 {
        hub.publish(&key("news"), None, format!("n{i}"));
    }
    let shutdown = hub.shutdown::<R::Timer>(ShutdownOptions {
        window: Duration::from_millis(200),
        deadline: Duration::from_secs(10),
        ..ShutdownOptions::default()
    });
    let readers = futures_util::future::join_all(clients.iter_mut().map(|c| c.drain_until_close()));
    let (report, results) = futures_util::future::join(shutdown, readers).await;
    assert_eq!((report.closing, report.aborted), (10, 0));
    for (messages, info) in results {
        assert_eq!(messages.len(), 200);
        assert_eq!(info.code, CloseCode::GOING_AWAY);
    }
    assert_eq!(hub.connection_count(), 0);
    // New connections are refused.
    assert_eq!(status_of(&raw_upgrade::<R>(1, addr, "/ws", &[]).await), 503);
}

pub async fn tank_protocol_end_to_end<R: Rt>() {
    let hub = Hub::new(config());
    let addr = serve::<R>(&hub).await;
    let mut t1 = Client::<R>::connect(addr, "/tank?user_id=user123").await;
    let mut t2 = Client::<R>::connect(addr, "/tank").await;
    let mut native = Client::<R>::connect(addr, "/ws").await;
    t1.send("sub:news").await;
    t2.send("sub:news").await;
    subscribe(&mut native, "news").await;
    eventually::<R>(10, "tank subscribed", || hub.channel_size(&key("news")) == 3).await;
    assert_eq!(hub.user_connections("user123").len(), 1);
    // A generated id for the one without user_id.
    assert_eq!(hub.connection_count(), 3);

    hub.publish(&key("news"), None, "This is a news message");
    let expected = json!({"topic":"news","data":"This is a news message"});
    assert_eq!(t1.recv_json().await, expected);
    assert_eq!(t2.recv_json().await, expected);
    assert_eq!(
        native.recv_json().await,
        json!({"type":"message","channel":"news","data":"This is a news message"})
    );

    // Plain text goes to every other tank client; heartbeats are ignored.
    t1.send(r#"{"type":"heartbeat"}"#).await;
    t1.send("hello tanks").await;
    assert_eq!(t2.recv_text().await, "hello tanks");
    native.nothing_before_pong("tank relay stays in tank").await;

    t2.send("unsub:news").await;
    eventually::<R>(10, "tank unsubscribed", || hub.channel_size(&key("news")) == 2).await;
    hub.publish(&key("news"), None, "second");
    assert_eq!(t1.recv_json().await["data"], "second");
    t1.send("ping t2").await;
    assert_eq!(t2.recv_text().await, "ping t2");

    // Close a user's connections with a code (tank's CloseClient).
    assert_eq!(hub.close_user("user123", CloseCode(4000), "bye"), 1);
    let (_, info) = t1.drain_until_close().await;
    assert_eq!(info.code, CloseCode(4000));
}

pub async fn native_errors_are_frames_not_closes<R: Rt>() {
    let hub = Hub::new(config());
    let addr = serve::<R>(&hub).await;
    let mut client = Client::<R>::connect(addr, "/ws").await;
    client.send("{not json").await;
    assert_eq!(client.recv_json().await["code"], "bad_request");
    client.send_json(json!({"action":"dance","ref":[1,2]})).await;
    let error = client.recv_json().await;
    assert_eq!(
        (error["code"].clone(), error["ref"].clone()),
        (json!("unknown_action"), json!([1, 2]))
    );
    client.send_json(json!({"action":"subscribe"})).await;
    assert_eq!(client.recv_json().await["code"], "bad_request");
    client.send_json(json!({"action":"presence","channel":"room"})).await;
    assert_eq!(client.recv_json().await["code"], "not_presence");
    client
        .send_json(json!({"action":"broadcast","channel":"room","data":1}))
        .await;
    assert_eq!(client.recv_json().await["code"], "publish_not_allowed");
    client.nothing_before_pong("still open").await;
}

pub async fn events_and_stats<R: Rt>() {
    let hub = Hub::new(config());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let reentrant = hub.clone();
    hub.on_event(move |event| {
        let name = match event {
            HubEvent::Connected { .. } => "connect",
            HubEvent::Subscribed {
                connection, channel, ..
            } => {
                // Callbacks may ask the hub about the very connection (no lock is held).
                let channels = reentrant.connection(*connection).map(|c| c.channels());
                assert_eq!(channels, Some(vec![channel.clone()]));
                assert_eq!(reentrant.channel_size(channel), 1);
                "subscribe"
            }
            HubEvent::Unsubscribed { .. } => "unsubscribe",
            HubEvent::Disconnected { .. } => "disconnect",
            _ => return,
        };
        sink.lock().unwrap().push(name);
    });
    let addr = serve::<R>(&hub).await;
    let mut client = Client::<R>::connect(addr, "/ws").await;
    subscribe(&mut client, "a").await;
    hub.publish(&key("a"), None, "x");
    client.recv_json().await;
    let snapshot = hub.snapshot();
    assert_eq!(
        (snapshot.connections, snapshot.channels, snapshot.subscriptions),
        (1, 1, 1)
    );
    assert!(snapshot.messages_out >= 2 && snapshot.messages_in >= 1, "{snapshot:?}");
    assert!(hub.snapshot().to_prometheus().contains("connections"));
    client.ws.close(CloseCode::NORMAL, "done").await.unwrap();
    eventually::<R>(10, "disconnect event", || seen.lock().unwrap().len() == 4).await;
    assert_eq!(
        *seen.lock().unwrap(),
        ["connect", "subscribe", "unsubscribe", "disconnect"]
    );
    assert_eq!(hub.snapshot().connections, 0);
}

pub async fn dead_peer_is_a_disconnect<R: Rt>() {
    let mut config = config();
    let mut ws = wsengine::Config::default();
    ws.ping_interval = Some(Duration::from_millis(100));
    ws.pong_timeout = Duration::from_millis(200);
    config.websocket = Arc::new(ws);
    let hub = Hub::new(config);
    let mut events = hub.events();
    let addr = serve::<R>(&hub).await;
    // A raw client that never answers pings.
    let _silent = stalled_client::<R>(addr, &hub, "x").await;
    eventually::<R>(10, "dead peer dropped", || hub.connection_count() == 0).await;
    let cause = within::<R, _>(10, "event", async {
        loop {
            if let Some(HubEvent::Disconnected { cause, .. }) = events.next().await {
                return cause;
            }
        }
    })
    .await;
    assert_eq!(cause, DisconnectCause::Closed(CloseCause::PongTimeout));
}

#[derive(Clone, Default)]
struct RecordingBroker(Arc<Mutex<Vec<String>>>);

impl wsengine_hub::Broker for RecordingBroker {
    fn publish(&self, publication: &Publication) {
        self.0.lock().unwrap().push(format!(
            "publish {} {}",
            publication.channel,
            publication.data.to_text()
        ));
    }

    fn presence(&self, change: &wsengine_hub::broker::PresenceChange) {
        let line = match change {
            wsengine_hub::broker::PresenceChange::Joined { channel, member } => {
                format!("join {channel} {}", member.user_id)
            }
            wsengine_hub::broker::PresenceChange::Left { channel, user_id } => format!("leave {channel} {user_id}"),
            _ => "other".into(),
        };
        self.0.lock().unwrap().push(line);
    }
}

pub async fn broker_carries_publications_and_presence<R: Rt>() {
    let broker = RecordingBroker::default();
    let hub = Hub::builder().config(config()).broker(broker.clone()).build();
    let addr = serve::<R>(&hub).await;
    let mut client = Client::<R>::connect(addr, "/ws?user_id=kim").await;
    subscribe(&mut client, "presence-x").await;
    client.recv_type("presence").await;
    hub.publish(&key("presence-x"), None, "local");
    assert_eq!(client.recv_json().await["data"], "local");
    // From another node: delivered here, not sent back to the broker.
    let remote = Publication {
        channel: key("presence-x"),
        event: Some("e".into()),
        data: Data::text("remote"),
        from: None,
    };
    assert_eq!(hub.deliver_remote(&remote).queued, 1);
    assert_eq!(client.recv_json().await["data"], "remote");
    client.ws.close(CloseCode::NORMAL, "").await.unwrap();
    eventually::<R>(10, "left", || hub.connection_count() == 0).await;
    let seen = broker.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "join presence-x kim",
            "publish presence-x local",
            "leave presence-x kim"
        ]
    );
}
