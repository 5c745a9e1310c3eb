//! Fan-out: one publish to N subscribers of the hub's native protocol.
//!
//! ```text
//! fanout server 127.0.0.1:9400                    # the hub, on one tokio thread
//! fanout client --url ws://127.0.0.1:9400/ --subscribers 10000 --rounds 20 --server-pid PID
//! ```
//!
//! The client opens N raw-socket subscribers (from 8 source addresses 127.0.0.x; pre-built
//! masked frames, no WebSocket library), each subscribing to `bench`, plus one publisher that
//! is subscribed too and publishes with the native `broadcast` action, so each round is one
//! publish the hub fans out to N connections (not to the publisher). It prints:
//! - p50/p99/max delivery latency: from the publisher's send to each subscriber's receipt;
//! - server CPU µs per delivery: the server process's user+system time over the rounds
//!   (from /proc/PID/stat) divided by rounds × N;
//! - KiB per subscriber: the server's resident memory growth from before the subscribers
//!   connected to after they all subscribed, divided by N.
//!
//! Every wait is bounded; the run stops by itself.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("server") => server(args.get(1).map_or("127.0.0.1:9400", String::as_str)),
        Some("client") => client(&args[1..]),
        _ => {
            eprintln!(
                "usage: fanout server ADDR | fanout client --url ws://HOST:PORT/ --subscribers N [--rounds R] [--server-pid PID]"
            );
            2
        }
    };
    std::process::exit(code);
}

fn server(addr: &str) -> i32 {
    use wsengine_hub::{ClientPublish, CodecId, Hub, HubConfig};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = HubConfig::default();
    config.client_publish = ClientPublish::Subscribed;
    config.connect_rate = None;
    config.caps = wsengine_hub::limits::CapsConfig::unlimited();
    config.message_rate = None;
    let mut ws = (*config.websocket).clone();
    ws.ping_interval = None;
    config.websocket = Arc::new(ws);
    let hub = Hub::new(config);
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("fanout server: {e}");
                return 1;
            }
        };
        println!("LISTENING {addr}");
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let hub = hub.clone();
            tokio::spawn(async move {
                let io = wsengine_tokio::TokioIo::new(stream);
                let _ = hub
                    .accept::<_, wsengine_tokio::TokioTimer>(io, Some(peer), |_| CodecId::NATIVE)
                    .await;
            });
        }
    })
}

struct Args {
    target: SocketAddr,
    path: String,
    /// Pusher protocol (soketi): subscribe with `pusher:subscribe`, publish through the
    /// HTTP API of app `app-id`/`app-key`/`app-secret` on the same port.
    pusher: bool,
    subscribers: usize,
    rounds: usize,
    server_pid: Option<u32>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut url = "ws://127.0.0.1:9400/".to_owned();
    let (mut subscribers, mut rounds, mut server_pid, mut pusher) = (1000, 20, None, false);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => url = value.clone(),
            "--subscribers" => subscribers = value.parse().map_err(|e| format!("{e}"))?,
            "--rounds" => rounds = value.parse().map_err(|e| format!("{e}"))?,
            "--server-pid" => server_pid = Some(value.parse().map_err(|e| format!("{e}"))?),
            "--protocol" => pusher = value == "pusher",
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let rest = url.strip_prefix("ws://").ok_or("url must be ws://")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let target = authority.parse().map_err(|e| format!("{authority}: {e}"))?;
    Ok(Args {
        target,
        path,
        pusher,
        subscribers: subscribers.clamp(1, 20_000),
        rounds: rounds.clamp(1, 1000),
        server_pid,
    })
}

/// A masked text frame.
fn text_frame(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut frame = vec![0x81];
    match bytes.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(bytes.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// The payload of the unmasked server frame at the start of `buf`, and the frame's length.
fn frame_at(buf: &[u8]) -> Option<(&[u8], usize)> {
    let b1 = *buf.get(1)?;
    let (header, len) = match b1 & 0x7f {
        126 => (4, usize::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?))),
        127 => (
            10,
            usize::try_from(u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?)).ok()?,
        ),
        n => (2, usize::from(n)),
    };
    Some((buf.get(header..header + len)?, header + len))
}

async fn open(args: &Args, i: usize) -> std::io::Result<(TcpStream, Vec<u8>)> {
    let socket = TcpSocket::new_v4()?;
    let source = Ipv4Addr::new(127, 0, 0, 1 + (i % 8) as u8);
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    let mut stream = socket.connect(args.target).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        args.path, args.target
    );
    stream.write_all(request.as_bytes()).await?;
    let (subscribe, succeeded): (&str, &[u8]) = if args.pusher {
        (
            r#"{"event":"pusher:subscribe","data":{"channel":"bench"}}"#,
            b"subscription_succeeded",
        )
    } else {
        (r#"{"action":"subscribe","channel":"bench"}"#, b"\"subscribed\"")
    };
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    if !buf.starts_with(b"HTTP/1.1 101") {
        return Err(std::io::Error::other("no 101"));
    }
    let mut rest = buf.split_off(end);
    // After the 101: uWebSockets drops bytes pipelined behind the upgrade request.
    stream.write_all(&text_frame(subscribe)).await?;
    // Wait for the subscription's reply.
    loop {
        if let Some((payload, used)) = frame_at(&rest) {
            let subscribed = payload.windows(succeeded.len()).any(|w| w == succeeded);
            rest.drain(..used);
            if subscribed {
                return Ok((stream, rest));
            }
            continue;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        rest.extend_from_slice(&chunk[..n]);
    }
}

/// The round number in a publication `..."data":"r<N>"...`.
fn round_of(payload: &[u8]) -> Option<usize> {
    let at = payload.windows(9).position(|w| w == b"\"data\":\"r")? + 9;
    let digits: Vec<u8> = payload
        .get(at..)?
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn client(raw: &[String]) -> i32 {
    let args = match parse(raw) {
        Ok(args) => Arc::new(args),
        Err(e) => {
            eprintln!("fanout client: {e}");
            return 2;
        }
    };
    // One client thread, like the server: the machine has two cores.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(args))
}

async fn run(args: Arc<Args>) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(300);
    let rss_before = args.server_pid.and_then(rss_kib);
    let start = Instant::now();
    // Send times per round, as nanoseconds since `start` (0 = not sent yet).
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..args.rounds).map(|_| AtomicU64::new(0)).collect());
    let received: Arc<Vec<AtomicUsize>> = Arc::new((0..args.rounds).map(|_| AtomicUsize::new(0)).collect());
    let mut readers = Vec::with_capacity(args.subscribers);
    let mut opened = 0;
    while opened < args.subscribers {
        let batch: Vec<_> = (opened..args.subscribers.min(opened + 250))
            .map(|i| {
                let args = Arc::clone(&args);
                tokio::spawn(async move { open(&args, i).await })
            })
            .collect();
        for task in batch {
            match task.await {
                Ok(Ok(conn)) => readers.push(conn),
                other => {
                    eprintln!("fanout: subscriber {opened} failed: {other:?}");
                    return 1;
                }
            }
            opened += 1;
        }
        if Instant::now() > deadline {
            eprintln!("fanout: opening took too long");
            return 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = args.server_pid.and_then(rss_kib);
    let (mut publisher, _) = match open(&args, args.subscribers).await {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("fanout: publisher: {e}");
            return 1;
        }
    };
    let mut tasks = Vec::with_capacity(readers.len());
    for (mut stream, mut buf) in readers {
        let sent = Arc::clone(&sent);
        let received = Arc::clone(&received);
        let rounds = args.rounds;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(rounds);
            let mut chunk = vec![0u8; 4096];
            while latencies.len() < rounds {
                while let Some((payload, used)) = frame_at(&buf) {
                    if let Some(round) = round_of(payload) {
                        let now = start.elapsed().as_nanos() as u64;
                        let at = sent.get(round).map_or(0, |s| s.load(Ordering::Acquire));
                        latencies.push(now.saturating_sub(at) / 1000);
                        if let Some(r) = received.get(round) {
                            r.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                    buf.drain(..used);
                }
                match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
            latencies
        }));
    }
    let cpu_before = args.server_pid.and_then(cpu_ticks);
    for round in 0..args.rounds {
        let published = if args.pusher {
            let request = pusher_publish(args.target, round);
            sent[round].store(start.elapsed().as_nanos() as u64, Ordering::Release);
            http_post(args.target, &request).await
        } else {
            let frame = text_frame(&format!(
                r#"{{"action":"broadcast","channel":"bench","data":"r{round}"}}"#
            ));
            sent[round].store(start.elapsed().as_nanos() as u64, Ordering::Release);
            publisher.write_all(&frame).await
        };
        if let Err(e) = published {
            eprintln!("fanout: publish failed: {e}");
            return 1;
        }
        let wait_until = Instant::now() + Duration::from_secs(10);
        while received[round].load(Ordering::Acquire) < args.subscribers && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_after = args.server_pid.and_then(cpu_ticks);
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut deliveries = 0u64;
    for task in tasks {
        if let Ok(latencies) = task.await {
            for us in latencies {
                let _ = histogram.record(us.max(1));
                deliveries += 1;
            }
        }
    }
    let expected = (args.subscribers * args.rounds) as u64;
    println!(
        "subscribers {} rounds {} deliveries {deliveries}/{expected}",
        args.subscribers, args.rounds
    );
    println!(
        "latency us: p50 {} p99 {} max {}",
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.max()
    );
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        // Clock ticks are 10 ms (USER_HZ 100).
        let us = (after - before) as f64 * 10_000.0;
        println!("server cpu us per delivery: {:.3}", us / deliveries.max(1) as f64);
    }
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        println!(
            "server KiB per subscriber: {:.2}",
            after.saturating_sub(before) as f64 / args.subscribers as f64
        );
    }
    i32::from(deliveries != expected)
}

/// A signed Pusher HTTP API request publishing `r<round>` to `bench` (app `app-id`, key
/// `app-key`, secret `app-secret`: soketi's defaults).
fn pusher_publish(target: SocketAddr, round: usize) -> String {
    use wsengine_hub::pusher::sign::{hmac_hex, md5_hex};
    let body = format!(r#"{{"name":"bench","channels":["bench"],"data":"r{round}"}}"#);
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let query = format!(
        "auth_key=app-key&auth_timestamp={timestamp}&auth_version=1.0&body_md5={}",
        md5_hex(body.as_bytes())
    );
    let path = "/apps/app-id/events";
    let signature = hmac_hex("app-secret", &format!("POST\n{path}\n{query}"));
    format!(
        "POST {path}?{query}&auth_signature={signature} HTTP/1.1\r\nHost: {target}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Sends an HTTP request on a fresh connection; fails unless the answer is 200.
async fn http_post(target: SocketAddr, request: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(target).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    if &head[9..12] != b"200" {
        return Err(std::io::Error::other(String::from_utf8_lossy(&head).into_owned()));
    }
    Ok(())
}
