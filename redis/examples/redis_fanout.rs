//! Fan-out across three nodes over Redis: subscribers spread over the nodes, publications at a
//! fixed rate on every node in turn, each reaching `SUBS` subscribers. Prints delivery latency
//! p50/p99/max, lost deliveries, CPU per delivery (node threads, and redis-server apart) and
//! memory per connection.
//!
//! `cargo run --release -p wsengine-redis --example redis_fanout -- [rate...]` (default 1000 5000);
//! starts a private redis-server (Debian's `redis-server` must be installed).

use std::net::{SocketAddr, TcpListener};
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wsengine_hub::{ChannelKey, CodecId, Hub, HubConfig};
use wsengine_redis::{RedisBroker, RedisConfig};
use wsengine_tokio::Message;

#[path = "common/redis_server.rs"]
mod redis_server;

const NODES: usize = 3;
const CHANNELS: usize = 100;
const SUBS: usize = 10;
const SECONDS: u64 = 5;

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_redis(port: u16, dir: &std::path::Path) -> std::io::Result<Redis> {
    let redis = Redis(redis_server::spawn(port, dir)?);
    if redis_server::answers(port, Duration::from_secs(5)) {
        Ok(redis)
    } else {
        Err(std::io::Error::other("redis-server did not start"))
    }
}

/// CPU time (user + system) of this process's threads whose name starts with `prefix`.
fn threads_cpu(prefix: &str) -> Duration {
    let mut ticks = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let path = task.path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if comm.starts_with(prefix) {
                ticks += stat_ticks(&std::fs::read_to_string(path.join("stat")).unwrap_or_default());
            }
        }
    }
    ticks_to_duration(ticks)
}

fn process_cpu(pid: u32) -> Duration {
    ticks_to_duration(stat_ticks(
        &std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default(),
    ))
}

fn stat_ticks(stat: &str) -> u64 {
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn ticks_to_duration(ticks: u64) -> Duration {
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Node {
    hub: Hub,
    broker: RedisBroker,
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

fn start_node(url: &str, i: usize) -> Result<Node, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(format!("node-{i}"))
        .enable_all()
        .build()?;
    let mut config = RedisConfig::new(url)?;
    config.prefix = "bench".to_owned();
    config.node_id = Some(format!("n{i}"));
    let broker = RedisBroker::new(config)?;
    let mut hub_config = HubConfig::default();
    let mut ws = wsengine::Config::default();
    ws.ping_interval = None;
    hub_config.websocket = Arc::new(ws);
    // A thousand subscribers connect from one address in a second.
    hub_config.connect_rate = None;
    hub_config.caps.max_per_ip = None;
    let hub = Hub::builder().config(hub_config).broker(broker.clone()).build();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
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
                    let io = wsengine_tokio::TokioIo::new(stream);
                    let _ = hub
                        .accept::<_, wsengine_tokio::TokioTimer>(io, Some(peer), |_| CodecId::NATIVE)
                        .await;
                });
            }
        });
    }
    Ok(Node {
        hub,
        broker,
        addr,
        _runtime: runtime,
    })
}

fn nanos_since(origin: Instant) -> u64 {
    origin.elapsed().as_nanos() as u64
}

/// One subscriber: subscribes, then records the latency of every message until `stop`.
async fn subscriber(
    addr: SocketAddr,
    channel: String,
    origin: Instant,
    record: Arc<Mutex<Vec<u32>>>,
    received: Arc<AtomicU64>,
    ready: Arc<AtomicU64>,
) {
    let url = format!("ws://{addr}/ws");
    let Ok((mut ws, _)) = wsengine_tokio::connect(&url).await else {
        eprintln!("connect failed");
        return;
    };
    let subscribe = format!("{{\"action\":\"subscribe\",\"channel\":\"{channel}\"}}");
    if ws.send(subscribe.as_str()).await.is_err() {
        return;
    }
    let _ = ws.recv().await;
    ready.fetch_add(1, Ordering::Relaxed);
    let mut local = Vec::with_capacity(4096);
    while let Ok(message) = ws.recv().await {
        let Message::Text(text) = message else { continue };
        let text = text.as_str();
        if text.contains("\"stop\"") {
            break;
        }
        // data is "<nanos since origin>"
        let Some(start) = text.find("\"data\":\"").map(|i| i + 8) else {
            continue;
        };
        let Some(sent) = text
            .get(start..)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        local.push(((nanos_since(origin).saturating_sub(sent)) / 1000) as u32);
        received.fetch_add(1, Ordering::Relaxed);
    }
    record.lock().unwrap_or_else(|e| e.into_inner()).extend(local);
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted.get(i).copied().unwrap_or(0)) / 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rates: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let rates = if rates.is_empty() { vec![1000, 5000] } else { rates };
    let dir = std::env::temp_dir().join(format!("wsengine-redis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let redis = start_redis(port, &dir)?;
    let url = format!("redis://127.0.0.1:{port}/");
    let nodes: Vec<Node> = (0..NODES).map(|i| start_node(&url, i + 1)).collect::<Result<_, _>>()?;
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("clients")
        .enable_all()
        .build()?;
    println!(
        "nodes {NODES}, channels {CHANNELS}, subscribers per channel {SUBS} (spread over the nodes), {SECONDS} s per rate"
    );
    for rate in rates {
        let origin = Instant::now();
        let record = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::new(AtomicU64::new(0));
        let ready = Arc::new(AtomicU64::new(0));
        let rss_before = rss_kib();
        let mut handles = Vec::new();
        for c in 0..CHANNELS {
            for s in 0..SUBS {
                let node = &nodes[(c + s) % NODES];
                handles.push(clients.spawn(subscriber(
                    node.addr,
                    format!("bench-{c}"),
                    origin,
                    Arc::clone(&record),
                    Arc::clone(&received),
                    Arc::clone(&ready),
                )));
            }
        }
        let total = (CHANNELS * SUBS) as u64;
        for _ in 0..3000 {
            let subscribed = nodes
                .iter()
                .all(|n| n.broker.stats().subscriptions as usize == n.hub.channels().len());
            if ready.load(Ordering::Relaxed) == total && subscribed {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let rss_after = rss_kib();
        let failed_before: u64 = nodes.iter().map(|n| n.broker.stats().publish_failed).sum();
        let cpu_before = threads_cpu("node-");
        let clients_before = threads_cpu("clients");
        let redis_before = process_cpu(redis.0.id());
        // Publish: `rate` per second in 1 ms ticks, round robin over nodes and channels.
        let per_tick = rate / 1000;
        let mut published = 0u64;
        let start = Instant::now();
        for tick in 0..SECONDS * 1000 {
            let due = start + Duration::from_millis(tick);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            for _ in 0..per_tick.max(1) {
                let node = &nodes[(published as usize) % NODES];
                let channel = ChannelKey::named(format!("bench-{}", published as usize % CHANNELS));
                node.hub.publish(&channel, None, nanos_since(origin).to_string());
                published += 1;
            }
        }
        let expected = published * SUBS as u64;
        for _ in 0..1000 {
            if received.load(Ordering::Relaxed) >= expected {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let cpu = threads_cpu("node-").saturating_sub(cpu_before);
        let clients_cpu = threads_cpu("clients").saturating_sub(clients_before);
        let redis_cpu = process_cpu(redis.0.id()).saturating_sub(redis_before);
        for c in 0..CHANNELS {
            nodes[0]
                .hub
                .publish(&ChannelKey::named(format!("bench-{c}")), Some("stop"), "stop");
        }
        for handle in handles {
            let _ = clients.block_on(async { tokio::time::timeout(Duration::from_secs(10), handle).await });
        }
        let got = received.load(Ordering::Relaxed);
        let failed: u64 = nodes.iter().map(|n| n.broker.stats().publish_failed).sum::<u64>() - failed_before;
        let mut latencies = std::mem::take(&mut *record.lock().unwrap_or_else(|e| e.into_inner()));
        latencies.sort_unstable();
        println!(
            "rate {rate}/s: published {published}, deliveries {got}/{expected}, lost {}, publish failures {failed}; \
             latency ms p50 {:.2} p99 {:.2} max {:.2}; node CPU {:.2} us/delivery, redis CPU {:.2} us/publish, client CPU {:.2} us/delivery; \
             RSS {:.2} KiB/connection (clients and nodes in one process)",
            expected.saturating_sub(got),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0),
            cpu.as_secs_f64() * 1e6 / got.max(1) as f64,
            redis_cpu.as_secs_f64() * 1e6 / published.max(1) as f64,
            clients_cpu.as_secs_f64() * 1e6 / got.max(1) as f64,
            rss_after.saturating_sub(rss_before) as f64 / total as f64,
        );
    }
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
