//! Three hubs over one real redis-server behave as one hub.
#![allow(unreachable_pub)]

mod caps;
mod http;
mod presence;
mod pusher;
#[path = "../../examples/common/redis_server.rs"]
mod redis_server;
mod support;

use serde_json::json;
use wsengine_hub::ChannelKey;
use wsengine_redis::{ClusterErrorKind, ClusterEvent};

use support::{RedisServer, cluster, eventually, eventually_async, subscriptions_settled, within, writes_settled};

fn added(channel: &str, user: &str) -> impl Fn(&ClusterEvent) -> bool {
    let (channel, user) = (ChannelKey::named(channel), user.to_owned());
    move |e| matches!(e, ClusterEvent::MemberAdded { channel: c, user_id } if *c == channel && **user_id == *user)
}

fn removed(channel: &str, user: &str) -> impl Fn(&ClusterEvent) -> bool {
    let (channel, user) = (ChannelKey::named(channel), user.to_owned());
    move |e| matches!(e, ClusterEvent::MemberRemoved { channel: c, user_id } if *c == channel && **user_id == *user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_on_any_node_reaches_every_node_once() {
    let redis = RedisServer::start();
    let nodes = cluster(&redis, "pub", |_| {}).await;
    let mut clients = Vec::new();
    for node in &nodes {
        let mut c = node.client("u").await;
        c.subscribe("news").await;
        clients.push(c);
    }
    subscriptions_settled(&nodes).await;
    for (i, node) in nodes.iter().enumerate() {
        node.hub
            .publish(&ChannelKey::named("news"), Some("update"), format!("from {i}"));
        for c in &mut clients {
            let got = c.recv_json().await;
            assert_eq!(
                got,
                json!({"type":"message","channel":"news","event":"update","data":format!("from {i}")})
            );
        }
    }
    for c in &mut clients {
        c.nothing_pending().await;
    }
    for node in &nodes {
        // One Redis subscription per channel per node, whatever the number of subscribers.
        assert_eq!(node.broker.stats().subscriptions, 1);
        assert_eq!(node.broker.stats().publish_failed, 0);
    }
    // Two more subscribers on node 1 still make one subscription there.
    let mut more = vec![nodes[0].client("v").await, nodes[0].client("w").await];
    for c in &mut more {
        c.subscribe("news").await;
    }
    assert_eq!(nodes[0].broker.stats().subscriptions, 1);
    nodes[2].hub.publish(&ChannelKey::named("news"), None, "again");
    for c in clients.iter_mut().chain(more.iter_mut()) {
        assert_eq!(c.recv_json().await["data"], "again");
        c.nothing_pending().await;
    }
    // Node 1 took each remote publication once (two from the first round, one now) and framed
    // it once for its three subscribers.
    assert_eq!(nodes[0].broker.stats().received, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_edges_fire_once_across_the_cluster() {
    let redis = RedisServer::start();
    let nodes = cluster(&redis, "presence", |_| {}).await;
    let room = "presence-room";
    let mut watcher = nodes[2].client("watcher").await;
    watcher.subscribe(room).await;
    subscriptions_settled(&nodes).await;
    eventually(5, "watcher added", || {
        nodes[2].count_events(added(room, "watcher")) == 1
    })
    .await;

    // alice joins on node 1: the watcher on node 3 hears it once.
    let mut alice1 = nodes[0].client("alice").await;
    alice1.subscribe(room).await;
    let join = watcher.recv_json().await;
    assert_eq!(
        join,
        json!({"type":"presence","channel":room,"event":"join","user_id":"alice"})
    );
    // alice again on node 2 and node 1: no new member anywhere.
    let mut alice2 = nodes[1].client("alice").await;
    alice2.subscribe(room).await;
    let mut alice3 = nodes[0].client("alice").await;
    alice3.subscribe(room).await;
    // Nodes write their presence as it changes; a user who leaves one node before the others
    // have written her joining there leaves the cluster for that moment.
    writes_settled(&nodes).await;
    let members = nodes[0]
        .broker
        .members(&ChannelKey::named(room))
        .await
        .expect("members");
    let ids: Vec<&str> = members.iter().map(|m| &*m.user_id).collect();
    assert_eq!(ids, ["alice", "watcher"]);
    watcher.nothing_pending().await;

    // alice leaves node 1 (both connections): still on node 2, so no leave.
    let _ = within(10, "close", alice1.ws.close(1000, "")).await;
    alice3.send_json(json!({"action":"unsubscribe","channel":room})).await;
    assert_eq!(alice3.recv_json().await["type"], "unsubscribed");
    writes_settled(&nodes).await;
    watcher.nothing_pending().await;
    // Her last connection leaves: one leave, one cluster event.
    drop(alice2);
    let leave = watcher.recv_json().await;
    assert_eq!(
        leave,
        json!({"type":"presence","channel":room,"event":"leave","user_id":"alice"})
    );
    watcher.nothing_pending().await;

    let all = |f: &dyn Fn(&ClusterEvent) -> bool| nodes.iter().map(|n| n.count_events(f)).sum::<usize>();
    eventually(5, "removed event", || all(&removed(room, "alice")) == 1).await;
    assert_eq!(all(&added(room, "alice")), 1, "member_added once in the cluster");
    assert_eq!(
        nodes[0].count_events(added(room, "alice")),
        1,
        "on the node where she first joined"
    );
    // MemberRemoved fires on the node whose write took her count to zero: node 1's write of
    // her leaving there may land after node 2's, so it may be either.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_caps_and_close_by_user_span_nodes() {
    let redis = RedisServer::start();
    let nodes = cluster(&redis, "caps", |c| c.max_connections_per_user = Some(2)).await;
    let mut bob1 = nodes[0].client("bob").await;
    bob1.subscribe("news").await;
    let mut bob2 = nodes[1].client("bob").await;
    bob2.subscribe("news").await;
    let mut carol = nodes[2].client("carol").await;
    carol.subscribe("other").await;
    let broker = &nodes[2].broker;
    eventually_async(5, "counts", || async {
        let stats = broker.cluster_stats().await.expect("stats");
        stats.connections == 3 && stats.channels == 2 && stats.subscriptions == 3 && stats.nodes == 3
    })
    .await;
    assert_eq!(broker.user_connections("bob").await.expect("count"), 2);
    // The heartbeat's copy, for synchronous handlers, catches up within a heartbeat.
    eventually(5, "snapshot", || {
        nodes[0]
            .broker
            .cluster_snapshot()
            .is_some_and(|s| (s.nodes, s.connections, s.channels, s.subscriptions) == (3, 3, 2, 3))
    })
    .await;
    assert_eq!(
        broker
            .channel_subscribers(&ChannelKey::named("news"))
            .await
            .expect("count"),
        2
    );
    let channels = broker.channels().await.expect("channels");
    assert_eq!(
        channels,
        vec![(ChannelKey::named("news"), 2), (ChannelKey::named("other"), 1)]
    );

    // A third connection for bob, on node 3, is over the cluster's cap of 2: it is closed.
    let mut bob3 = nodes[2].client("bob").await;
    let closed = bob3.closed().await;
    assert_eq!(u16::from(closed.code), 1008);
    bob1.nothing_pending().await;
    bob2.nothing_pending().await;

    // Close bob everywhere from node 3.
    broker.close_user("bob", 4000, "bye").await.expect("close");
    for bob in [&mut bob1, &mut bob2] {
        let info = bob.closed().await;
        assert_eq!(u16::from(info.code), 4000);
    }
    carol.nothing_pending().await;
    eventually_async(5, "bob gone", || async {
        let stats = broker.cluster_stats().await.ok();
        broker.user_connections("bob").await.ok() == Some(0)
            && stats.is_some_and(|s| (s.connections, s.channels) == (1, 1))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_no_ghosts() {
    let redis = RedisServer::start();
    let mut nodes = cluster(&redis, "kill", |_| {}).await;
    let room = "presence-room";
    let mut watcher = nodes[0].client("watcher").await;
    watcher.subscribe(room).await;
    let mut dave = nodes[2].client("dave").await;
    dave.subscribe(room).await;
    assert_eq!(watcher.recv_json().await["user_id"], "dave");
    let mut erin = nodes[2].client("erin").await;
    erin.subscribe("lonely").await;
    eventually_async(5, "counted", || async {
        nodes[0]
            .broker
            .cluster_stats()
            .await
            .map(|s| (s.connections, s.channels))
            .ok()
            == Some((3, 2))
    })
    .await;

    nodes[2].kill();
    // Within the TTL (1.5 s) and a heartbeat, the others remove dave and erin's channel.
    let leave = within(10, "dave leaves", watcher.recv_json()).await;
    assert_eq!(
        leave,
        json!({"type":"presence","channel":room,"event":"leave","user_id":"dave"})
    );
    watcher.nothing_pending().await;
    let live = &nodes[..2];
    let reaped = |f: &dyn Fn(&ClusterEvent) -> bool| live.iter().map(|n| n.count_events(f)).sum::<usize>();
    eventually(5, "events", || reaped(&removed(room, "dave")) == 1).await;
    let vacated =
        |e: &ClusterEvent| matches!(e, ClusterEvent::ChannelVacated { channel } if channel.name() == "lonely");
    assert_eq!(reaped(&vacated), 1);
    let dead = |e: &ClusterEvent| matches!(e, ClusterEvent::NodeDead { node } if node == "n3");
    assert_eq!(reaped(&dead), 1, "one node reaps, once");
    let stats = nodes[0].broker.cluster_stats().await.expect("stats");
    assert_eq!((stats.nodes, stats.connections, stats.channels), (2, 1, 1));
    let members = nodes[1]
        .broker
        .members(&ChannelKey::named(room))
        .await
        .expect("members");
    assert_eq!(members.len(), 1);
    drop(erin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_keeps_local_delivery_and_recovers() {
    let mut redis = RedisServer::start();
    let nodes = cluster(&redis, "outage", |_| {}).await;
    let mut local = nodes[0].client("a").await;
    local.subscribe("news").await;
    let mut remote = nodes[1].client("b").await;
    remote.subscribe("news").await;
    let mut member = nodes[1].client("m").await;
    member.subscribe("presence-x").await;
    subscriptions_settled(&nodes).await;
    let news = ChannelKey::named("news");

    redis.kill();
    eventually(10, "outage seen", || !nodes[0].broker.is_connected()).await;
    for i in 0..5 {
        let delivery = nodes[0].hub.publish(&news, None, format!("during {i}"));
        assert_eq!(delivery.queued, 1);
        assert_eq!(local.recv_json().await["data"], format!("during {i}"));
    }
    let stats = nodes[0].broker.stats();
    assert!(stats.publish_failed >= 5, "{stats:?}");
    assert!(nodes[0].events().iter().any(|e| matches!(
        e,
        ClusterEvent::Error {
            kind: ClusterErrorKind::PublishFailed,
            ..
        }
    )));
    assert!(nodes[0].hub.snapshot().to_json().contains("\"other\""));
    remote.nothing_pending().await;
    assert!(nodes[0].broker.cluster_stats().await.is_err());
    assert_eq!(nodes[0].broker.cluster_snapshot(), None);

    redis.restart();
    eventually(10, "reconnected", || {
        nodes
            .iter()
            .all(|n| n.broker.is_connected() && n.events().contains(&ClusterEvent::Reconnected))
    })
    .await;
    subscriptions_settled(&nodes).await;
    // The restarted Redis was empty: every node wrote its state again.
    let broker = &nodes[2].broker;
    eventually_async(5, "state rewritten", || async {
        let members = broker.members(&ChannelKey::named("presence-x")).await.map(|m| m.len());
        broker
            .cluster_stats()
            .await
            .is_ok_and(|s| s.connections == 3 && s.channels == 2)
            && members.ok() == Some(1)
    })
    .await;
    let failed_before = nodes[0].broker.stats().publish_failed;
    nodes[0].hub.publish(&news, None, "after");
    assert_eq!(local.recv_json().await["data"], "after");
    assert_eq!(within(10, "remote after", remote.recv_json()).await["data"], "after");
    remote.nothing_pending().await;
    assert_eq!(nodes[0].broker.stats().publish_failed, failed_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_and_leaves_make_balanced_edges() {
    let redis = RedisServer::start();
    let nodes = cluster(&redis, "churn", |_| {}).await;
    let room = "presence-churn";
    // 12 users, each with connections on several nodes, joining and leaving in waves.
    for wave in 0..3 {
        let mut clients = Vec::new();
        for user in 0..12 {
            for copy in 0..=(user % 3) {
                let node = &nodes[(user + copy + wave) % 3];
                let mut c = node.client(&format!("u{user}")).await;
                c.send_json(json!({"action":"subscribe","channel":room})).await;
                clients.push(c);
            }
        }
        for c in &mut clients {
            assert_eq!(c.recv_json().await["type"], "subscribed");
        }
        let broker = &nodes[0].broker;
        eventually_async(10, "all members", || async {
            broker.members(&ChannelKey::named(room)).await.map(|m| m.len()).ok() == Some(12)
        })
        .await;
        drop(clients);
        eventually_async(10, "all gone", || async {
            let stats = broker.cluster_stats().await.ok();
            let members = broker.members(&ChannelKey::named(room)).await.map(|m| m.len()).ok();
            members == Some(0) && stats.is_some_and(|s| s.connections == 0 && s.channels == 0)
        })
        .await;
    }
    for user in 0..12 {
        let name = format!("u{user}");
        let edges: Vec<bool> = nodes
            .iter()
            .flat_map(|n| n.events())
            .filter_map(|e| match e {
                ClusterEvent::MemberAdded { user_id, .. } if *user_id == *name => Some(true),
                ClusterEvent::MemberRemoved { user_id, .. } if *user_id == *name => Some(false),
                _ => None,
            })
            .collect();
        let added = edges.iter().filter(|e| **e).count();
        assert_eq!(
            (added, edges.len() - added),
            (3, 3),
            "{name}: one join and one leave per wave"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_channels_and_a_clean_leave() {
    let redis = RedisServer::start();
    let mut nodes = cluster(&redis, "cache", |_| {}).await;
    let cache = ChannelKey::named("cache-prices");
    nodes[0].hub.publish(&cache, Some("tick"), "42");
    let broker = &nodes[1].broker;
    eventually_async(5, "cached", || async {
        broker.cached(&cache).await.ok().flatten().is_some()
    })
    .await;
    let last = broker.cached(&cache).await.expect("cached").expect("some");
    assert_eq!((last.event.as_deref(), last.data.to_text()), (Some("tick"), "42"));
    assert_eq!(
        broker.cached(&ChannelKey::named("cache-none")).await.expect("read"),
        None
    );

    let mut member = nodes[2].client("zed").await;
    member.subscribe("presence-x").await;
    eventually_async(5, "zed counted", || async {
        broker.user_connections("zed").await.ok() == Some(1)
    })
    .await;
    nodes[2].broker.leave().await.expect("leave");
    // Its state is gone at once, not after the TTL.
    assert_eq!(broker.user_connections("zed").await.expect("count"), 0);
    assert_eq!(broker.cluster_stats().await.expect("stats").nodes, 2);
    nodes[2].kill();
}
