//! What a client sees of presence is the cluster's: member lists hold every node's members,
//! and each subscriber on each node hears one join and one leave per user.

use serde_json::{Value, json};
use wsengine_hub::ChannelKey;
use wsengine_redis::ClusterEvent;

use crate::support::{Client, Node, RedisServer, cluster, eventually, subscriptions_settled, within};

pub const ROOM: &str = "presence-room";

/// Waits until every node holds its subscriptions, has loaded the other nodes' members and has
/// written its own changes.
pub async fn settled(nodes: &[&Node]) {
    let owned: Vec<&Node> = nodes.to_vec();
    eventually(10, "subscriptions held and mirrors loaded", || {
        owned.iter().all(|n| {
            let stats = n.broker.stats();
            stats.connected && stats.presence_loading == 0 && stats.subscriptions as usize == n.hub.channels().len()
        })
    })
    .await;
    eventually(10, "state written", || {
        owned.iter().all(|n| n.broker.stats().state_pending == 0)
    })
    .await;
}

/// Waits until `node` has let go of every connection of `user` in `ROOM` (a client's close
/// reaches the hub a moment after the client is done with it).
pub async fn gone(node: &Node, user: &str) {
    let key = ChannelKey::named(ROOM);
    eventually(10, "connection gone", || {
        !node.hub.local_presence(&key).iter().any(|m| &*m.user_id == user)
    })
    .await;
}

/// Subscribes and returns the member list's user ids.
pub async fn subscribe_list(client: &mut Client, channel: &str) -> Vec<String> {
    client.send_json(json!({"action":"subscribe","channel":channel})).await;
    let reply = client.recv_json().await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
    let list = client.recv_json().await;
    assert_eq!(list["event"], "list", "{list}");
    list["users"]
        .as_array()
        .map(|users| users.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Publishes a marker on `ROOM` from every node (after every presence change was written to
/// Redis, so each node's marker arrives after them), and returns, per client, the presence
/// events it got before all the markers: `+user` for a join, `-user` for a leave.
pub async fn presence_until_markers(nodes: &[&Node], clients: &mut [&mut Client], round: &str) -> Vec<Vec<String>> {
    settled(nodes).await;
    for (i, node) in nodes.iter().enumerate() {
        node.hub
            .publish(&ChannelKey::named(ROOM), Some("marker"), format!("{round}-{i}"));
    }
    let mut out = Vec::new();
    for client in clients.iter_mut() {
        let mut seen = Vec::new();
        let mut markers = 0;
        for _ in 0..100 {
            if markers == nodes.len() {
                break;
            }
            let frame = client.recv_json().await;
            match (frame["type"].as_str(), frame["event"].as_str()) {
                (Some("message"), Some("marker")) => {
                    assert!(frame["data"].as_str().is_some_and(|d| d.starts_with(round)), "{frame}");
                    markers += 1;
                }
                (Some("presence"), Some("join")) => seen.push(format!("+{}", frame["user_id"].as_str().unwrap_or(""))),
                (Some("presence"), Some("leave")) => {
                    seen.push(format!("-{}", frame["user_id"].as_str().unwrap_or("")));
                }
                _ => panic!("unexpected {frame}"),
            }
        }
        assert_eq!(markers, nodes.len());
        seen.sort();
        out.push(seen);
    }
    out
}

/// One watcher per node, each having heard the other two join.
pub async fn watchers(nodes: &[Node]) -> Vec<Client> {
    let mut watchers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut w = node.client(&format!("w{i}")).await;
        subscribe_list(&mut w, ROOM).await;
        watchers.push(w);
    }
    let all: Vec<&Node> = nodes.iter().collect();
    let mut refs: Vec<&mut Client> = watchers.iter_mut().collect();
    let seen = presence_until_markers(&all, &mut refs, "start").await;
    for (i, seen) in seen.iter().enumerate() {
        let expected: Vec<String> = (0..nodes.len()).filter(|j| *j != i).map(|j| format!("+w{j}")).collect();
        assert_eq!(*seen, expected, "watcher {i}");
    }
    watchers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_lists_hold_every_nodes_members_and_joins_come_once() {
    let redis = RedisServer::start();
    let nodes = cluster(&redis, "plist", |_| {}).await;
    let mut ws = watchers(&nodes).await;
    let mut alice = nodes[0].client("alice").await;
    subscribe_list(&mut alice, ROOM).await;
    let mut bob = nodes[1].client("bob").await;
    subscribe_list(&mut bob, ROOM).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let mut refs: Vec<&mut Client> = ws.iter_mut().collect();
    let seen = presence_until_markers(&all, &mut refs, "joined").await;
    assert_eq!(seen, vec![vec!["+alice", "+bob"]; 3]);

    // A new subscriber on node 3 gets every node's members in its list.
    let mut carol = nodes[2].client("carol").await;
    let list = subscribe_list(&mut carol, ROOM).await;
    assert_eq!(list, ["alice", "bob", "carol", "w0", "w1", "w2"]);
    let key = ChannelKey::named(ROOM);
    assert_eq!(nodes[2].hub.presence_count(&key), 6);
    assert_eq!(nodes[2].hub.local_presence(&key).len(), 2);

    // alice, present on node 1, joins on node 3 too: nobody hears her join again.
    let mut alice3 = nodes[2].client("alice").await;
    assert_eq!(subscribe_list(&mut alice3, ROOM).await.len(), 6);
    let mut refs: Vec<&mut Client> = ws.iter_mut().chain(std::iter::once(&mut carol)).collect();
    let seen = presence_until_markers(&all, &mut refs, "again").await;
    let none: Vec<String> = Vec::new();
    assert_eq!(
        seen,
        vec![
            vec!["+carol".to_owned()],
            vec!["+carol".to_owned()],
            vec!["+carol".to_owned()],
            none.clone()
        ]
    );
    // She leaves node 1 (once every node knows she is on node 3 too; a user moving between
    // nodes faster than Redis carries it may be seen leaving and joining again): nobody
    // hears her leave.
    let _ = within(10, "close", alice.ws.close(1000, "")).await;
    gone(&nodes[0], "alice").await;
    let mut refs: Vec<&mut Client> = ws.iter_mut().chain(std::iter::once(&mut carol)).collect();
    let seen = presence_until_markers(&all, &mut refs, "moved").await;
    assert_eq!(seen, vec![none; 4]);
    // Her last connection leaves: one leave on every node.
    drop(alice3);
    gone(&nodes[2], "alice").await;
    let mut refs: Vec<&mut Client> = ws.iter_mut().chain(std::iter::once(&mut carol)).collect();
    let seen = presence_until_markers(&all, &mut refs, "left").await;
    assert_eq!(seen, vec![vec!["-alice"]; 4]);
    let users: Vec<String> = nodes[0]
        .hub
        .presence(&key)
        .iter()
        .map(|m| m.user_id.to_string())
        .collect();
    assert_eq!(users, ["bob", "carol", "w0", "w1", "w2"]);
    drop(bob);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_joining_two_nodes_at_once_is_announced_once_everywhere() {
    let redis = RedisServer::start();
    let nodes = cluster(&redis, "prace", |_| {}).await;
    let mut ws = watchers(&nodes).await;
    let all: Vec<&Node> = nodes.iter().collect();
    for round in 0..10 {
        let user = format!("u{round}");
        let (mut a, mut b) = (nodes[0].client(&user).await, nodes[1].client(&user).await);
        tokio::join!(subscribe_list(&mut a, ROOM), subscribe_list(&mut b, ROOM));
        let mut refs: Vec<&mut Client> = ws.iter_mut().collect();
        let seen = presence_until_markers(&all, &mut refs, &format!("j{round}")).await;
        assert_eq!(seen, vec![vec![format!("+{user}")]; 3], "round {round}");
        let (_, _) = tokio::join!(a.ws.close(1000, ""), b.ws.close(1000, ""));
        gone(&nodes[0], &user).await;
        gone(&nodes[1], &user).await;
        let mut refs: Vec<&mut Client> = ws.iter_mut().collect();
        let seen = presence_until_markers(&all, &mut refs, &format!("l{round}")).await;
        assert_eq!(seen, vec![vec![format!("-{user}")]; 3], "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_members_leave_once_unless_present_elsewhere() {
    let redis = RedisServer::start();
    let mut nodes = cluster(&redis, "pdead", |_| {}).await;
    let mut ws = watchers(&nodes).await;
    let mut dave = nodes[2].client("dave").await;
    subscribe_list(&mut dave, ROOM).await;
    let (mut erin3, mut erin2) = (nodes[2].client("erin").await, nodes[1].client("erin").await);
    subscribe_list(&mut erin3, ROOM).await;
    subscribe_list(&mut erin2, ROOM).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let mut refs: Vec<&mut Client> = ws.iter_mut().collect();
    let seen = presence_until_markers(&all, &mut refs, "joined").await;
    assert_eq!(
        seen,
        vec![vec!["+dave", "+erin"], vec!["+dave", "+erin"], vec!["+dave", "+erin"]]
    );

    nodes[2].kill();
    let live: Vec<&Node> = nodes[..2].iter().collect();
    eventually(10, "node 3 reaped", || {
        live.iter()
            .any(|n| n.count_events(|e| matches!(e, ClusterEvent::NodeDead { node } if node == "n3")) == 1)
    })
    .await;
    let mut refs: Vec<&mut Client> = ws.iter_mut().take(2).collect();
    let seen = presence_until_markers(&live, &mut refs, "dead").await;
    // dave and w2 were on node 3 only; erin is still on node 2.
    assert_eq!(seen, vec![vec!["-dave", "-w2"], vec!["-dave", "-w2"]]);
    let users: Vec<String> = nodes[0]
        .hub
        .presence(&ChannelKey::named(ROOM))
        .iter()
        .map(|m| m.user_id.to_string())
        .collect();
    assert_eq!(users, ["erin", "w0", "w1"]);
    drop((dave, erin3, erin2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whispers_reach_every_node_once() {
    let redis = RedisServer::start();
    let nodes = cluster(&redis, "pwhisper", |_| {}).await;
    let mut clients = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut c = node.client(&format!("c{i}")).await;
        c.subscribe("private-chat").await;
        clients.push(c);
    }
    subscriptions_settled(&nodes).await;
    clients[0]
        .send_json(json!({"action":"whisper","channel":"private-chat","event":"typing","data":"hi"}))
        .await;
    for c in &mut clients[1..] {
        assert_eq!(
            c.recv_json().await,
            json!({"type":"whisper","channel":"private-chat","from":"c0","event":"typing","data":"hi"})
        );
    }
    for c in &mut clients {
        c.nothing_pending().await;
    }
}
