//! Two `wsengine serve` nodes sharing a private redis-server act as one hub: a publication on
//! one node reaches a subscriber on the other.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Server, WAIT, connect, recv_text, recv_type, send_json};

/// A redis-server of our own on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is required (Debian: apt-get install redis-server)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < WAIT, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { child, port }
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
    for node in [&a, &b] {
        let start = Instant::now();
        loop {
            let (_, _, stats) = node.get("/stats").await;
            let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
            if stats["cluster"] == json!({"nodes": 2, "connections": 2, "channels": 1, "subscriptions": 2}) {
                break;
            }
            assert!(start.elapsed() < WAIT, "cluster figures never came: {stats}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
