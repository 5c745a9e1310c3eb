//! The configuration's limits, applied by the `wsengine serve` binary to native clients:
//! per-IP caps before the upgrade, message size and rate, and presence after an abrupt close.

use serde_json::json;
use wsengine_tokio::Message;

use crate::support::{Server, WAIT, connect, recv_presence, recv_type, send_json, temp_file};

#[tokio::test]
async fn per_ip_cap_message_size_and_rate_from_the_config() {
    let config = temp_file(
        "limits.toml",
        "[limits]\nmax_connections_per_ip = 2\nmax_message_size = 1000\nmessages_per_second = 3\n",
    );
    let server = Server::start(&["--config", config.to_str().unwrap()], &[]);
    let mut sized = connect(&server.url("/ws?user_id=a")).await;
    let mut rated = connect(&server.url("/ws?user_id=b")).await;

    // A third connection from this address is refused before the upgrade.
    let third = tokio::time::timeout(WAIT, wsengine_tokio::connect(&server.url("/ws?user_id=c")))
        .await
        .expect("an answer in time");
    match third {
        Err(error) => assert!(error.to_string().contains("429"), "{error}"),
        Ok(_) => panic!("a third connection from one address was accepted"),
    }

    // Over the rate: `rate_limited` errors, and the connection stays.
    for n in 0..20 {
        send_json(&mut rated, json!({"action":"ping","ref":n})).await;
    }
    let error = recv_type(&mut rated, "error").await;
    assert_eq!(error["code"], "rate_limited", "{error}");

    // Over the size: closed with 1009.
    sized.send(Message::from("x".repeat(2000))).await.expect("send");
    assert_eq!(crate::close_code(sized).await, 1009);
}

#[tokio::test]
async fn presence_leave_reaches_members_when_a_client_vanishes() {
    let server = Server::start(&[], &[]);
    let mut stays = connect(&server.url("/ws?user_id=stays")).await;
    send_json(&mut stays, json!({"action":"subscribe","channel":"presence-room"})).await;
    recv_type(&mut stays, "subscribed").await;
    let mut vanishes = connect(&server.url("/ws?user_id=vanishes")).await;
    send_json(&mut vanishes, json!({"action":"subscribe","channel":"presence-room"})).await;
    recv_type(&mut vanishes, "subscribed").await;
    let join = recv_presence(&mut stays, "join").await;
    assert_eq!(join["user_id"], "vanishes", "{join}");
    // No close frame: the socket just goes.
    drop(vanishes);
    let leave = recv_presence(&mut stays, "leave").await;
    assert_eq!(leave["user_id"], "vanishes", "{leave}");
}

#[tokio::test]
async fn sighup_applies_new_limits_to_open_connections() {
    let path = temp_file("reload-limits.toml", "[log]\nstats_interval = 0\n");
    let server = Server::start(&["--config", path.to_str().unwrap()], &[]);
    let mut open = connect(&server.url("/ws?user_id=open")).await;
    send_json(&mut open, json!({"action":"ping","ref":1})).await;
    assert_eq!(recv_type(&mut open, "pong").await["ref"], 1);
    std::fs::write(&path, "[log]\nstats_interval = 0\n[limits]\nmax_message_size = 1000\n").unwrap();
    server.signal("HUP");
    server.wait_for_log("configuration reloaded").await;
    assert!(!server.log().contains("next restart"), "{}", server.log());
    // 2000 bytes were fine before the reload; now they close the open connection with 1009.
    open.send(Message::from("x".repeat(2000))).await.expect("send");
    assert_eq!(crate::close_code(open).await, 1009);
}
