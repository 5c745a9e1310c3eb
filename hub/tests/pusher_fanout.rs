//! Fan-out benchmark, not a timed test (ignored by default): one channel, N subscribers, the
//! native protocol and Pusher in the same run, so the ratio between them means something on a
//! shared machine. The hub runs on one server thread; the publish runs there too.
//!
//! ```text
//! PUSHER_FANOUT_SUBSCRIBERS=9000 cargo test --release -p wsengine-hub --test pusher_fanout -- --ignored --nocapture
//! ```
//!
//! Prints p50/p99/max latency from the publish to each subscriber's receipt (the clients share
//! one other thread, so this includes their queueing) and the server thread's CPU time per
//! delivery (from /proc/thread-self/schedstat, nanoseconds).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wsengine::{ClientRequest, Config, Message};
use wsengine_hub::pusher::{Pusher, PusherApp, PusherConfig};
use wsengine_hub::{ChannelKey, CodecId, Hub, HubConfig};
use wsengine_tokio::{TokioIo, TokioTimer};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Protocol {
    Native,
    Pusher,
}

struct Server {
    addr: SocketAddr,
    hub: Hub,
    handle: tokio::runtime::Handle,
    tid: String,
}

fn server_thread() -> Server {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let tid = std::fs::read_link("/proc/thread-self")
            .map(|p| p.to_string_lossy().rsplit('/').next().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut config = HubConfig::default();
        config.connect_rate = None;
        config.caps = wsengine_hub::limits::CapsConfig::unlimited();
        let pusher = Pusher::new(PusherConfig::new(vec![PusherApp::new("1", "key", "secret")]));
        let mut builder = Hub::builder().config(config);
        let codec = builder.add_codec(pusher.codec()).unwrap();
        let hub = builder.build();
        pusher.attach(&hub);
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        tx.send(Server {
            addr: listener.local_addr().unwrap(),
            hub: hub.clone(),
            handle: rt.handle().clone(),
            tid,
        })
        .unwrap();
        rt.block_on(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    return;
                };
                let hub = hub.clone();
                tokio::spawn(async move {
                    let pick = move |r: &wsengine::Request| {
                        if Pusher::is_websocket_path(r.path()) {
                            codec
                        } else {
                            CodecId::NATIVE
                        }
                    };
                    let _ = hub
                        .accept::<_, TokioTimer>(TokioIo::new(stream), Some(peer), pick)
                        .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

fn cpu_ns(tid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// The publish time (ns since `base`) carried in a frame's data (a JSON string in both).
fn stamp(text: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value.get("data")?.as_str()?.parse().ok()
}

fn run(protocol: Protocol, subscribers: usize, rounds: usize) {
    let server = server_thread();
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let base = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(subscribers * rounds)));
    let received = Arc::new(AtomicUsize::new(0));
    let key = match protocol {
        Protocol::Native => ChannelKey::named("bench"),
        Protocol::Pusher => ChannelKey::new("1", "bench"),
    };
    clients.block_on(async {
        for i in 0..subscribers {
            let addr = server.addr;
            let latencies = Arc::clone(&latencies);
            let received = Arc::clone(&received);
            let path = match protocol {
                Protocol::Native => "/".to_owned(),
                Protocol::Pusher => "/app/key?protocol=7".to_owned(),
            };
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = ClientRequest::new(format!("ws://{addr}{path}").as_str()).unwrap();
            let mut config = Config::default();
            config.ping_interval = None;
            let (mut ws, _) =
                wsengine_driver::client::<_, TokioTimer>(TokioIo::new(stream), &request, Arc::new(config))
                    .await
                    .unwrap();
            let subscribe = match protocol {
                Protocol::Native => r#"{"action":"subscribe","channel":"bench"}"#,
                Protocol::Pusher => r#"{"event":"pusher:subscribe","data":{"channel":"bench"}}"#,
            };
            ws.send(subscribe).await.unwrap();
            tokio::spawn(async move {
                let mut mine = Vec::with_capacity(rounds);
                while let Ok(message) = ws.recv().await {
                    if let Message::Text(text) = message {
                        if let Some(t) = stamp(text.as_str()) {
                            let now = base.elapsed().as_nanos() as u64;
                            mine.push(now.saturating_sub(t));
                            received.fetch_add(1, Ordering::Relaxed);
                            if mine.len() == rounds {
                                break;
                            }
                        }
                    }
                }
                latencies.lock().unwrap().extend(mine);
            });
            if i % 500 == 499 {
                tokio::task::yield_now().await;
            }
        }
        for _ in 0..6000 {
            if server.hub.channel_size(&key) == subscribers {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(server.hub.channel_size(&key), subscribers, "all subscribed");
        let cpu_before = cpu_ns(&server.tid);
        for round in 0..rounds {
            let hub = server.hub.clone();
            let key = key.clone();
            let t = base.elapsed().as_nanos().to_string();
            server.handle.spawn(async move {
                hub.publish(&key, Some("tick"), t.as_str());
            });
            let want = (round + 1) * subscribers;
            for _ in 0..3000 {
                if received.load(Ordering::Relaxed) >= want {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert!(received.load(Ordering::Relaxed) >= want, "round {round} delivered");
        }
        let cpu = cpu_ns(&server.tid).saturating_sub(cpu_before);
        for _ in 0..1000 {
            if latencies.lock().unwrap().len() >= subscribers * rounds {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut all = latencies.lock().unwrap().clone();
        all.sort_unstable();
        let at = |q: f64| all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
        println!(
            "{protocol:?}: {subscribers} subscribers x {rounds} rounds: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, server CPU {:.0} ns per delivery",
            at(0.5) as f64 / 1e6,
            at(0.99) as f64 / 1e6,
            all.last().copied().unwrap_or(0) as f64 / 1e6,
            cpu as f64 / (subscribers * rounds) as f64
        );
    });
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture, in release"]
fn fanout_native_vs_pusher() {
    let subscribers = std::env::var("PUSHER_FANOUT_SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let rounds = 30;
    for protocol in [Protocol::Native, Protocol::Pusher, Protocol::Native, Protocol::Pusher] {
        run(protocol, subscribers, rounds);
    }
}
