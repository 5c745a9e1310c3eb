//! Cluster caps refuse the upgrade (before the WebSocket handshake) when the node already
//! knows the cluster is at the cap.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Node, RedisServer, cluster, eventually, within, writes_settled};

/// The status line's code of an upgrade request for `user`.
async fn upgrade_status(node: &Node, user: &str) -> u16 {
    let mut stream = within(10, "connect", tokio::net::TcpStream::connect(node.addr))
        .await
        .expect("connect");
    let request = format!(
        "GET /ws?user_id={user} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    for _ in 0..64 {
        let n = within(10, "response", stream.read(&mut buf)).await.expect("read");
        head.extend_from_slice(&buf[..n]);
        if n == 0 || head.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head);
    text.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

/// Waits until every node has read the cluster's connection total `n` at a heartbeat.
async fn totals_read(nodes: &[Node], n: u64) {
    eventually(10, "every node read the cluster's total", || {
        nodes
            .iter()
            .all(|node| node.broker.cluster_snapshot().is_some_and(|s| s.connections == n))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_caps_refuse_the_upgrade() {
    let redis = RedisServer::start();
    let nodes = cluster(&redis, "capsup", |c| {
        c.max_connections_per_user = Some(2);
        c.max_connections = Some(4);
    })
    .await;
    let (_b1, _b2) = (nodes[0].client("bob").await, nodes[0].client("bob").await);
    writes_settled(&nodes).await;
    assert_eq!(upgrade_status(&nodes[0], "bob").await, 429);
    assert_eq!(nodes[0].hub.connection_count(), 2, "refused, not admitted and closed");

    let (carol, _dave) = (nodes[1].client("carol").await, nodes[2].client("dave").await);
    writes_settled(&nodes).await;
    totals_read(&nodes, 4).await;
    for node in &nodes {
        assert_eq!(upgrade_status(node, "erin").await, 503);
    }
    let counts: Vec<usize> = nodes.iter().map(|n| n.hub.connection_count()).collect();
    assert_eq!(counts, [2, 1, 1]);
    // Below the cap again, the upgrade goes through.
    drop(carol);
    eventually(10, "carol gone", || nodes[1].hub.connection_count() == 0).await;
    writes_settled(&nodes).await;
    totals_read(&nodes, 3).await;
    assert_eq!(upgrade_status(&nodes[1], "erin").await, 101);
}
