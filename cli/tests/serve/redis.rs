//! Two `wsengine serve` nodes sharing a private redis-server act as one hub: a publication on
//! one node reaches a subscriber on the other, Pusher's occupancy webhooks come once for the
//! cluster, and the Pusher HTTP API answers with the cluster's channel figures on any node.

use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[path = "../../../redis/examples/common/redis_server.rs"]
mod redis_server;

use crate::support::{Server, WAIT, connect, recv_text, recv_type, send_json, temp_file};

/// A redis-server of our own on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Self {
        if let Err(why) = redis_server::ensure_installed() {
            panic!("{why}");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = redis_server::spawn(port, &std::env::temp_dir()).expect("redis-server starts");
        let redis = Self { child, port };
        assert!(redis_server::answers(port, WAIT), "redis-server did not start");
        redis
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn nodes_sharing_redis_act_as_one() {
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let env = [("WSENGINE_BROKER", url.as_str())];
    let a = Server::start(&[], &env);
    let b = Server::start(&[], &env);
    let mut subscriber = connect(&a.url("/ws?user_id=on-a")).await;
    send_json(&mut subscriber, json!({"action":"subscribe","channel":"news"})).await;
    recv_type(&mut subscriber, "subscribed").await;
    let mut publisher = connect(&b.url("/ws?user_id=on-b")).await;
    send_json(&mut publisher, json!({"action":"subscribe","channel":"news"})).await;
    recv_type(&mut publisher, "subscribed").await;
    // Node a's Redis subscription is made in the background: publish until one arrives.
    let start = Instant::now();
    let delivered = loop {
        assert!(
            start.elapsed() < WAIT,
            "nothing crossed nodes:\n{}\n{}",
            a.log(),
            b.log()
        );
        send_json(
            &mut publisher,
            json!({"action":"broadcast","channel":"news","data":"across"}),
        )
        .await;
        if let Ok(text) = tokio::time::timeout(Duration::from_millis(200), recv_text(&mut subscriber)).await {
            break text;
        }
    };
    let message: serde_json::Value = serde_json::from_str(&delivered).unwrap();
    assert_eq!(
        (message["data"].as_str(), message["from"].as_str()),
        (Some("across"), Some("on-b"))
    );
    let (_, _, stats) = a.get("/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["redis_connected"], true, "{stats}");
    // Each node's /stats also gives the cluster's figures, read at the broker's heartbeat.
    let cluster = json!({"nodes": 2, "connections": 2, "channels": 1, "subscriptions": 2});
    for node in [&a, &b] {
        node.wait_for_stats("the cluster's figures", |stats| stats["cluster"] == cluster)
            .await;
    }
}

/// Waits until `node`'s `/stats` shows the cluster with `subscriptions` subscriptions.
async fn wait_for_cluster_subscriptions(node: &Server, subscriptions: u64) {
    let what = format!("{subscriptions} cluster subscriptions");
    node.wait_for_stats(&what, |stats| stats["cluster"]["subscriptions"] == subscriptions)
        .await;
}

/// An HTTP endpoint that answers 200 to every POST and keeps each body's event names.
async fn webhook_collector() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let names = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&names);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut stream = BufReader::new(tcp);
                // Requests on a kept-alive connection, one after the other.
                loop {
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        match stream.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if stream.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    for event in body["events"].as_array().into_iter().flatten() {
                        let name = format!(
                            "{} {}",
                            event["name"].as_str().unwrap_or("?"),
                            event["channel"].as_str().unwrap_or("?")
                        );
                        seen.lock().unwrap().push(name);
                    }
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if stream.get_mut().write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, names)
}

#[tokio::test]
async fn occupancy_webhooks_come_once_for_the_cluster() {
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let env = [("WSENGINE_BROKER", url.as_str())];
    let (hook, names) = webhook_collector().await;
    let config = temp_file(
        "cluster-webhooks.toml",
        &format!(
            "[[apps]]\nid = \"app-id\"\nkey = \"app-key\"\nsecret = \"app-secret\"\n\
             [[apps.webhooks]]\nurl = \"http://{hook}/hook\"\nevents = [\"channel_occupied\", \"channel_vacated\"]\n"
        ),
    );
    let args = ["--config", config.to_str().unwrap()];
    let a = Server::start(&args, &env);
    let b = Server::start(&args, &env);
    let subscribe = json!({"event":"pusher:subscribe","data":{"channel":"room"}});
    let unsubscribe = json!({"event":"pusher:unsubscribe","data":{"channel":"room"}});
    let mut on_a = connect(&a.url("/app/app-key?protocol=7")).await;
    let mut on_b = connect(&b.url("/app/app-key?protocol=7")).await;
    // Each node sees the channel occupied and vacated by its own client, but the cluster sees
    // it occupied once (a's client first) and vacated once (b's client last).
    send_json(&mut on_a, subscribe.clone()).await;
    wait_for_cluster_subscriptions(&b, 1).await;
    send_json(&mut on_b, subscribe).await;
    wait_for_cluster_subscriptions(&a, 2).await;
    send_json(&mut on_a, unsubscribe.clone()).await;
    wait_for_cluster_subscriptions(&b, 1).await;
    send_json(&mut on_b, unsubscribe).await;
    let start = Instant::now();
    while !names.lock().unwrap().iter().any(|n| n == "channel_vacated room") {
        assert!(
            start.elapsed() < WAIT,
            "no channel_vacated: {:?}",
            names.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A second node's webhook would come about as fast as the first: give it time to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        *names.lock().unwrap(),
        ["channel_occupied room", "channel_vacated room"],
        "{}\n{}",
        a.log(),
        b.log()
    );
}

/// A signed Pusher HTTP API `GET` of the default app (`query` without the auth parameters):
/// status and JSON body.
async fn api_get(node: &Server, path: &str, query: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut params: Vec<(&str, &str)> = query.to_vec();
    params.extend([
        ("auth_key", "app-key"),
        ("auth_timestamp", &timestamp),
        ("auth_version", "1.0"),
    ]);
    params.sort();
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let query = query.join("&");
    let signature = wsengine_hub::pusher::sign::hmac_hex("app-secret", &format!("GET\n{path}\n{query}"));
    let (status, _, body) = node.get(&format!("{path}?{query}&auth_signature={signature}")).await;
    (status, serde_json::from_str(&body).unwrap_or_default())
}

#[tokio::test]
async fn http_api_answers_with_the_clusters_figures() {
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let env = [("WSENGINE_BROKER", url.as_str())];
    let a = Server::start(&[], &env);
    let b = Server::start(&[], &env);
    // One member of the presence channel on each node (native clients share the default app's
    // channels with its Pusher clients).
    let mut clients = Vec::new();
    for (node, user) in [(&a, "on-a"), (&b, "on-b")] {
        let mut client = connect(&node.url(&format!("/ws?user_id={user}"))).await;
        send_json(&mut client, json!({"action":"subscribe","channel":"presence-lobby"})).await;
        recv_type(&mut client, "subscribed").await;
        clients.push(client);
    }
    wait_for_cluster_subscriptions(&a, 2).await;
    // Node a alone has one subscriber and one user; it answers for the cluster.
    let (status, channel) = api_get(
        &a,
        "/apps/app-id/channels/presence-lobby",
        &[("info", "subscription_count,user_count")],
    )
    .await;
    assert_eq!(status, 200, "{channel}");
    assert_eq!(
        channel,
        json!({"occupied": true, "subscription_count": 2, "user_count": 2})
    );
    let (status, users) = api_get(&a, "/apps/app-id/channels/presence-lobby/users", &[]).await;
    assert_eq!(status, 200, "{users}");
    let mut ids: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["on-a", "on-b"]);
    let (status, channels) = api_get(
        &b,
        "/apps/app-id/channels",
        &[
            ("filter_by_prefix", "presence-"),
            ("info", "user_count,subscription_count"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{channels}");
    assert_eq!(
        channels,
        json!({"channels": {"presence-lobby": {"subscription_count": 2, "user_count": 2}}})
    );
    // An unsigned request costs no Redis read and is refused as before.
    let (status, _, _) = a.get("/apps/app-id/channels").await;
    assert_eq!(status, 401);
}
