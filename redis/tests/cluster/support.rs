//! A private redis-server, nodes (a hub and its broker on a runtime of their own, so killing
//! one drops all its tasks at once), and clients.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use wsengine_hub::pusher::{Pusher, PusherApp, PusherConfig};
use wsengine_hub::{CodecId, Hub, HubConfig};
use wsengine_redis::{ClusterEvent, RedisBroker, RedisConfig};
use wsengine_tokio::{Message, WebSocket};

use crate::redis_server;

/// `future`, or a panic naming `what` after `secs` seconds.
pub async fn within<F: Future>(secs: u64, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// Polls `check` every 20 ms until it holds, for at most `secs` seconds.
pub async fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..secs * 50 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}

/// Like [`eventually`] with an async check.
pub async fn eventually_async<F: Future<Output = bool>>(secs: u64, what: &str, mut check: impl FnMut() -> F) {
    for _ in 0..secs * 50 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}

/// A redis-server of our own on a free loopback port, killed on drop.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn ensure_installed() {
    if let Err(why) = redis_server::ensure_installed() {
        panic!("{why}");
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl RedisServer {
    pub fn start() -> Self {
        ensure_installed();
        let dir = std::env::temp_dir().join(format!("wsengine-redis-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port, empty, and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = redis_server::spawn(self.port, &self.dir).expect("redis-server failed to start");
        self.child = Some(child);
        if redis_server::answers(self.port, Duration::from_secs(5)) {
            return;
        }
        panic!("redis-server on port {} did not answer", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A node: a hub with a Redis broker, served on its own runtime.
pub struct Node {
    pub addr: SocketAddr,
    pub hub: Hub,
    /// Pusher app `1` (key `key`, secret `secret`) on `/app/key`, sharing the native clients'
    /// channels.
    pub pusher: Pusher,
    pub broker: RedisBroker,
    pub events: Arc<Mutex<Vec<ClusterEvent>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

pub fn redis_config(url: &str, prefix: &str, node: &str) -> RedisConfig {
    let mut config = RedisConfig::new(url).expect("config");
    config.prefix = prefix.to_owned();
    config.node_id = Some(node.to_owned());
    config.heartbeat = Duration::from_millis(200);
    config.node_ttl = Duration::from_millis(1500);
    config.max_backoff = Duration::from_millis(300);
    config.command_timeout = Duration::from_secs(1);
    config
}

impl Node {
    pub fn start(config: RedisConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let broker = RedisBroker::new(config).expect("broker");
        let mut hub_config = HubConfig::default();
        hub_config.whispers = true;
        hub_config.websocket = Arc::new({
            let mut ws = wsengine::Config::default();
            ws.ping_interval = None;
            ws
        });
        let pusher = Pusher::new(PusherConfig::new(vec![
            PusherApp::new("1", "key", "secret").with_namespace(wsengine_hub::DEFAULT_APP),
        ]));
        let mut builder = Hub::builder().config(hub_config).broker(broker.clone());
        let pusher_codec = builder.add_codec(pusher.codec()).expect("codec slot");
        let hub = builder.build();
        pusher.attach(&hub);
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        broker.on_event(move |event| sink.lock().unwrap_or_else(|e| e.into_inner()).push(event.clone()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        {
            let _guard = runtime.enter();
            broker.attach(&hub);
            let hub = hub.clone();
            runtime.spawn(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                while let Ok((stream, peer)) = listener.accept().await {
                    let hub = hub.clone();
                    tokio::spawn(async move {
                        let pick = move |request: &wsengine::Request| {
                            if Pusher::is_websocket_path(request.path()) {
                                pusher_codec
                            } else {
                                CodecId::NATIVE
                            }
                        };
                        let _ = hub
                            .accept::<_, wsengine_tokio::TokioTimer>(
                                wsengine_tokio::TokioIo::new(stream),
                                Some(peer),
                                pick,
                            )
                            .await;
                    });
                }
            });
        }
        Self {
            addr,
            hub,
            pusher,
            broker,
            events,
            runtime: Some(runtime),
        }
    }

    /// Drops the node's runtime: every task (connections, liveness, subscriber) stops at once,
    /// nothing is cleaned up, as with kill -9.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    pub fn events(&self) -> Vec<ClusterEvent> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn count_events(&self, f: impl Fn(&ClusterEvent) -> bool) -> usize {
        self.events().iter().filter(|e| f(e)).count()
    }

    pub async fn client(&self, user: &str) -> Client {
        let url = format!("ws://{}/ws?user_id={user}", self.addr);
        let (ws, _) = within(10, "connect", wsengine_tokio::connect(&url))
            .await
            .expect("connect");
        Client { ws }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Client {
    pub ws: WebSocket,
}

impl Client {
    pub async fn send_json(&mut self, value: Value) {
        self.ws.send(value.to_string().as_str()).await.expect("send");
    }

    pub async fn recv_json(&mut self) -> Value {
        match within(10, "recv", self.ws.recv()).await.expect("recv") {
            Message::Text(text) => serde_json::from_str(text.as_str()).expect("json"),
            other => panic!("not text: {other:?}"),
        }
    }

    /// Subscribes and waits for the answer (and the member list on presence channels).
    pub async fn subscribe(&mut self, channel: &str) {
        self.send_json(serde_json::json!({"action":"subscribe","channel":channel}))
            .await;
        let reply = self.recv_json().await;
        assert_eq!(reply["type"], "subscribed", "{reply}");
        if channel.starts_with("presence-") {
            let list = self.recv_json().await;
            assert_eq!(list["event"], "list", "{list}");
        }
    }

    /// Reads until the server closes the connection; returns how.
    pub async fn closed(&mut self) -> wsengine_tokio::CloseInfo {
        within(10, "close", async {
            loop {
                match self.ws.recv().await {
                    Ok(_) => continue,
                    Err(wsengine_tokio::Error::Closed(info)) => break info,
                    Err(other) => panic!("{other:?}"),
                }
            }
        })
        .await
    }

    /// Asserts that nothing else is waiting: a ping's pong comes next.
    pub async fn nothing_pending(&mut self) {
        self.send_json(serde_json::json!({"action":"ping","ref":"check"})).await;
        let value = self.recv_json().await;
        assert_eq!(value, serde_json::json!({"type":"pong","ref":"check"}));
    }
}

/// Three nodes over one Redis, connected and registered.
pub async fn cluster(redis: &RedisServer, prefix: &str, tune: impl Fn(&mut RedisConfig)) -> Vec<Node> {
    let nodes: Vec<Node> = (1..=3)
        .map(|i| {
            let mut config = redis_config(&redis.url(), prefix, &format!("n{i}"));
            tune(&mut config);
            Node::start(config)
        })
        .collect();
    eventually(10, "every node connected", || {
        nodes.iter().all(|n| n.broker.is_connected())
    })
    .await;
    nodes
}

/// Waits until every node holds a Redis subscription for each channel it has subscribers of.
pub async fn subscriptions_settled(nodes: &[Node]) {
    eventually(10, "subscriptions held", || {
        nodes
            .iter()
            .all(|n| n.broker.stats().subscriptions as usize == n.hub.channels().len() && n.broker.is_connected())
    })
    .await;
    // The subscription's reply came back, so the server holds it: nothing to wait for beyond
    // the count.
}

/// Waits until every node has written its state changes to Redis.
pub async fn writes_settled(nodes: &[Node]) {
    eventually(10, "state written", || {
        nodes.iter().all(|n| n.broker.stats().state_pending == 0)
    })
    .await;
}
