//! Pusher connections see other nodes' members as native ones do: their member lists hold
//! every node's members and `member_added`/`member_removed` come once per user.

use serde_json::{Value, json};
use wsengine_hub::ChannelKey;
use wsengine_hub::pusher::sign::channel_auth;
use wsengine_tokio::{Message, WebSocket};

use crate::presence::{ROOM, gone, presence_until_markers, settled, watchers};
use crate::support::{Client, Node, RedisServer, cluster, within};

struct PusherClient {
    ws: WebSocket,
    socket_id: String,
}

impl PusherClient {
    async fn connect(node: &Node) -> Self {
        let url = format!("ws://{}/app/key?protocol=7&client=js&version=8.6.0", node.addr);
        let (ws, _) = within(10, "connect", wsengine_tokio::connect(&url))
            .await
            .expect("connect");
        let mut client = Self {
            ws,
            socket_id: String::new(),
        };
        let hello = client.recv().await;
        assert_eq!(hello["event"], "pusher:connection_established", "{hello}");
        let data: Value = serde_json::from_str(hello["data"].as_str().unwrap_or("")).expect("data");
        client.socket_id = data["socket_id"].as_str().unwrap_or("").to_owned();
        client
    }

    async fn recv(&mut self) -> Value {
        match within(10, "recv", self.ws.recv()).await.expect("recv") {
            Message::Text(text) => serde_json::from_str(text.as_str()).expect("json"),
            other => panic!("not text: {other:?}"),
        }
    }

    /// Joins `ROOM` as `user`; returns the `presence` object of `subscription_succeeded`.
    async fn join(&mut self, user: &str) -> Value {
        let channel_data = json!({"user_id": user, "user_info": {"name": user.to_uppercase()}}).to_string();
        let auth = channel_auth("key", "secret", &self.socket_id, ROOM, Some(&channel_data));
        let frame = json!({"event":"pusher:subscribe","data":{"channel":ROOM,"auth":auth,"channel_data":channel_data}});
        self.ws.send(frame.to_string().as_str()).await.expect("send");
        let reply = self.recv().await;
        assert_eq!(reply["event"], "pusher_internal:subscription_succeeded", "{reply}");
        let data: Value = serde_json::from_str(reply["data"].as_str().unwrap_or("")).expect("data");
        data["presence"].clone()
    }

    /// Member events before a marker from each of `nodes` (see `presence_until_markers`,
    /// which must have published them): `+user` or `-user`, sorted.
    async fn members_until_markers(&mut self, markers: usize) -> Vec<String> {
        let mut seen = Vec::new();
        let mut got = 0;
        for _ in 0..100 {
            if got == markers {
                break;
            }
            let frame = self.recv().await;
            let data: Value = frame["data"]
                .as_str()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null);
            match frame["event"].as_str() {
                Some("marker") => got += 1,
                Some("pusher_internal:member_added") => {
                    seen.push(format!("+{}", data["user_id"].as_str().unwrap_or("")))
                }
                Some("pusher_internal:member_removed") => {
                    seen.push(format!("-{}", data["user_id"].as_str().unwrap_or("")));
                }
                _ => panic!("unexpected {frame}"),
            }
        }
        assert_eq!(got, markers);
        seen.sort();
        seen
    }
}

fn ids(presence: &Value) -> Vec<String> {
    let mut ids: Vec<String> = presence["ids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_members_are_the_clusters() {
    let redis = RedisServer::start();
    let nodes = cluster(&redis, "ppusher", |_| {}).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let mut ws = watchers(&nodes).await;

    // alice (Pusher, node 1) gets every node's members, with their info, in her list.
    let mut alice = PusherClient::connect(&nodes[0]).await;
    let presence = alice.join("alice").await;
    assert_eq!(ids(&presence), ["alice", "w0", "w1", "w2"]);
    assert_eq!(presence["count"], 4);
    assert_eq!(presence["hash"]["alice"], json!({"name":"ALICE"}));
    let mut refs: Vec<&mut Client> = ws.iter_mut().collect();
    let seen = presence_until_markers(&all, &mut refs, "alice").await;
    assert_eq!(seen, vec![vec!["+alice"]; 3]);
    assert_eq!(alice.members_until_markers(3).await, Vec::<String>::new());

    // bob (Pusher, node 2) sees alice with her info; alice hears bob once.
    let mut bob = PusherClient::connect(&nodes[1]).await;
    let presence = bob.join("bob").await;
    assert_eq!(ids(&presence), ["alice", "bob", "w0", "w1", "w2"]);
    assert_eq!(presence["hash"]["alice"], json!({"name":"ALICE"}));
    let mut refs: Vec<&mut Client> = ws.iter_mut().collect();
    let seen = presence_until_markers(&all, &mut refs, "bob").await;
    assert_eq!(seen, vec![vec!["+bob"]; 3]);
    assert_eq!(alice.members_until_markers(3).await, ["+bob"]);
    assert_eq!(bob.members_until_markers(3).await, Vec::<String>::new());

    // alice again on node 3: nobody hears her join; then bob leaves: alice hears it once.
    let mut alice3 = PusherClient::connect(&nodes[2]).await;
    assert_eq!(ids(&alice3.join("alice").await).len(), 5);
    let _ = within(10, "close", bob.ws.close(1000, "")).await;
    gone(&nodes[1], "bob").await;
    let mut refs: Vec<&mut Client> = ws.iter_mut().collect();
    let seen = presence_until_markers(&all, &mut refs, "left").await;
    assert_eq!(seen, vec![vec!["-bob"]; 3]);
    assert_eq!(alice.members_until_markers(3).await, ["-bob"]);
    assert_eq!(alice3.members_until_markers(3).await, ["-bob"]);
    assert_eq!(nodes[2].pusher.apps().len(), 1);
    assert_eq!(nodes[0].hub.presence_count(&ChannelKey::named(ROOM)), 4);
    settled(&all).await;
}
