//! A neutral WebSocket load generator, in the manner of the uWebSockets load tester: raw TCP,
//! pre-built masked frames, no WebSocket library on this side.
//!
//! ```text
//! loadgen --url ws://127.0.0.1:9002/ --connections 100 --size 20 [--in-flight 1]
//!         [--duration 10] [--warmup 2]
//! loadgen --url ws://127.0.0.1:9002/ --idle 10000 [--hold 10] [--sources 4] [--size 1024]
//! ```
//!
//! Echo mode keeps `in-flight` binary messages of `size` bytes outstanding on each connection
//! (a new one leaves as each echo arrives) and prints messages per second and round-trip
//! latency percentiles (HDR histogram) measured after the warm-up. Idle mode opens that many
//! connections (from `sources` addresses 127.0.0.1.., so ports do not run short), echoes one
//! message of `size` bytes on each (default 1 KiB, 0 for none: a server that keeps its buffers
//! after a message shows it), prints `READY`, holds them for `hold` seconds and exits. Every
//! run is bounded in time.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

struct Args {
    host: String,
    port: u16,
    path: String,
    connections: usize,
    size: usize,
    in_flight: usize,
    duration: Duration,
    warmup: Duration,
    idle: Option<usize>,
    hold: Duration,
    sources: u8,
}

#[derive(Default)]
struct Stats {
    messages: u64,
    errors: u64,
    latency: Option<Histogram<u64>>,
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!(
                "loadgen: {e}\nusage: loadgen --url ws://HOST:PORT/PATH (--connections N --size BYTES [--in-flight K] [--duration S] [--warmup S] | --idle N [--hold S] [--sources K])"
            );
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let code = local.block_on(&runtime, async move {
        if let Some(count) = args.idle {
            idle(&args, count).await
        } else {
            echo_load(&args).await
        }
    });
    std::process::exit(code);
}

async fn echo_load(args: &Args) -> i32 {
    let frame = masked_frame(args.size);
    let burst: Rc<Vec<u8>> = Rc::new(frame.repeat(args.in_flight));
    let stats = Rc::new(RefCell::new(Stats {
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).ok(),
        ..Stats::default()
    }));
    let mut streams = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        match open(args, i).await {
            Ok(stream) => streams.push(stream),
            Err(e) => {
                eprintln!("loadgen: connection {i}: {e}");
                return 1;
            }
        }
    }
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let mut tasks = Vec::new();
    for (stream, leftover) in streams {
        let burst = burst.clone();
        let stats = stats.clone();
        let frame_len = frame.len();
        tasks.push(tokio::task::spawn_local(async move {
            let run = drive(stream, leftover, &burst, frame_len, measure_from, end, &stats);
            if tokio::time::timeout_at((end + Duration::from_secs(5)).into(), run)
                .await
                .is_err()
            {
                stats.borrow_mut().errors += 1;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let stats = stats.borrow();
    let seconds = args.duration.as_secs_f64();
    let rate = stats.messages as f64 / seconds;
    let (p50, p99, p999) = stats.latency.as_ref().map_or((0, 0, 0), |h| {
        (
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
        )
    });
    println!(
        "RESULT connections={} size={} in_flight={} msgs_per_sec={rate:.0} p50_us={p50} p99_us={p99} p999_us={p999} messages={} errors={}",
        args.connections, args.size, args.in_flight, stats.messages, stats.errors
    );
    i32::from(stats.messages == 0 || stats.errors > 0)
}

/// One connection's echo loop: every echo that completes sends another message.
async fn drive(
    mut stream: TcpStream,
    mut buf: Vec<u8>,
    burst: &[u8],
    frame_len: usize,
    measure_from: Instant,
    end: Instant,
    stats: &RefCell<Stats>,
) {
    let in_flight = burst.len() / frame_len;
    let mut sent_at = std::collections::VecDeque::with_capacity(in_flight);
    let now = Instant::now();
    sent_at.extend(std::iter::repeat_n(now, in_flight));
    if stream.write_all(burst).await.is_err() {
        stats.borrow_mut().errors += 1;
        return;
    }
    let mut filled = buf.len();
    buf.resize(filled.max(64 * 1024), 0);
    loop {
        // Complete frames at the front of the buffer.
        let mut pos = 0;
        let mut done = 0usize;
        while let Some((total, fin, opcode)) = frame_at(&buf[pos..filled]) {
            if filled - pos < total {
                if total > buf.len() {
                    buf.resize(total + pos, 0);
                }
                break;
            }
            pos += total;
            match opcode {
                0x8 => return,
                0x0..=0x2 if fin => done += 1,
                _ => {}
            }
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        let now = Instant::now();
        if done > 0 {
            let mut stats = stats.borrow_mut();
            for _ in 0..done {
                let sent = sent_at.pop_front().unwrap_or(now);
                if now >= measure_from && now < end {
                    stats.messages += 1;
                    if let Some(h) = stats.latency.as_mut() {
                        let _ = h.record((now - sent).as_micros().max(1) as u64);
                    }
                }
            }
        }
        if now >= end {
            return;
        }
        if done > 0 {
            sent_at.extend(std::iter::repeat_n(now, done));
            if stream.write_all(&burst[..done * frame_len]).await.is_err() {
                stats.borrow_mut().errors += 1;
                return;
            }
        }
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match stream.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => {
                stats.borrow_mut().errors += 1;
                return;
            }
            Ok(n) => filled += n,
        }
    }
}

/// The total length, FIN bit and opcode of the unmasked server frame at the start of `bytes`.
fn frame_at(bytes: &[u8]) -> Option<(usize, bool, u8)> {
    let (&b0, &b1) = (bytes.first()?, bytes.get(1)?);
    let (header, len) = match b1 & 0x7f {
        126 => (4, u64::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?))),
        127 => (10, u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?)),
        n => (2, u64::from(n)),
    };
    let masked = if b1 & 0x80 != 0 { 4 } else { 0 };
    Some((header + masked + usize::try_from(len).ok()?, b0 & 0x80 != 0, b0 & 0x0f))
}

fn masked_frame(size: usize) -> Vec<u8> {
    let mut frame = vec![0x82];
    match size {
        0..=125 => frame.push(0x80 | size as u8),
        126..=65_535 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(size as u16).to_be_bytes());
        }
        _ => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(size as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend((0..size).map(|i| (b'a' + (i % 26) as u8) ^ MASK[i % 4]));
    frame
}

/// Connects (from source address number `i % sources`) and completes the opening handshake;
/// returns the stream and any bytes that followed the response head.
async fn open(args: &Args, i: usize) -> std::io::Result<(TcpStream, Vec<u8>)> {
    let target = tokio::net::lookup_host((args.host.as_str(), args.port))
        .await?
        .next()
        .ok_or(std::io::ErrorKind::AddrNotAvailable)?;
    let mut stream = if args.sources > 1 && target.ip().is_loopback() && target.is_ipv4() {
        let socket = TcpSocket::new_v4()?;
        let source = Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(args.sources)) as u8);
        socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
        socket.connect(target).await?
    } else {
        TcpStream::connect(target).await?
    };
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        args.path, args.host, args.port
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    let end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if head.len() > 16 * 1024 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    };
    if !head.starts_with(b"HTTP/1.1 101") {
        let status = String::from_utf8_lossy(&head[..head.len().min(40)]).into_owned();
        return Err(std::io::Error::other(format!("no 101: {status}")));
    }
    Ok((stream, head.split_off(end)))
}

async fn idle(args: &Args, count: usize) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut open_streams = Vec::with_capacity(count);
    let mut next = 0;
    while next < count {
        if Instant::now() > deadline {
            eprintln!("loadgen: only {next} of {count} connections opened within 120 s");
            return 1;
        }
        let frame = (args.size > 0).then(|| masked_frame(args.size));
        let batch: Vec<_> = (next..count.min(next + 256))
            .map(|i| {
                let frame = frame.as_deref();
                async move {
                    let (mut stream, leftover) = open(args, i).await?;
                    if let Some(frame) = frame {
                        echo_once(&mut stream, leftover, frame).await?;
                    }
                    Ok::<_, std::io::Error>((stream, ()))
                }
            })
            .collect();
        for result in futures_util::future::join_all(batch).await {
            match result {
                Ok((stream, _)) => open_streams.push(stream),
                Err(e) => {
                    eprintln!("loadgen: connection {}: {e}", open_streams.len());
                    return 1;
                }
            }
        }
        next = open_streams.len();
    }
    println!("READY {count}");
    tokio::time::sleep(args.hold).await;
    0
}

/// Sends `frame` and reads until a whole frame has come back: a binary frame as long as the
/// one sent (masked or not: the raw echo returns it as it was).
async fn echo_once(stream: &mut TcpStream, mut buf: Vec<u8>, frame: &[u8]) -> std::io::Result<()> {
    stream.write_all(frame).await?;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((total, _, opcode)) = frame_at(&buf)
            && buf.len() >= total
        {
            let unmasked = frame.len() - 4;
            return if opcode == 0x2 && (total == unmasked || total == frame.len()) {
                Ok(())
            } else {
                Err(std::io::Error::other("the echo is not the message sent"))
            };
        }
        if buf.len() > frame.len() + 64 {
            return Err(std::io::Error::other("the echo is longer than the message sent"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        host: String::new(),
        port: 0,
        path: "/".into(),
        connections: 0,
        size: 0,
        in_flight: 1,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        idle: None,
        hold: Duration::from_secs(10),
        sources: 1,
    };
    let mut url = None;
    let mut size_given = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--url" => url = Some(value.clone()),
            "--connections" => args.connections = number()? as usize,
            "--size" => {
                args.size = number()? as usize;
                size_given = true;
            }
            "--in-flight" => args.in_flight = (number()? as usize).max(1),
            "--duration" => args.duration = Duration::from_secs(number()?.clamp(1, 600)),
            "--warmup" => args.warmup = Duration::from_secs(number()?.min(60)),
            "--idle" => args.idle = Some(number()? as usize),
            "--hold" => args.hold = Duration::from_secs(number()?.min(600)),
            "--sources" => args.sources = number()?.clamp(1, 250) as u8,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let rest = url.strip_prefix("ws://").ok_or("only ws:// URLs")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let (host, port) = authority.rsplit_once(':').ok_or("the URL needs a port")?;
    args.host = host.to_owned();
    args.port = port.parse().map_err(|_| "bad port")?;
    args.path = path;
    if args.idle.is_some() && !size_given {
        args.size = 1024;
    }
    if args.idle.is_none() && args.connections == 0 {
        return Err("--connections or --idle is required".into());
    }
    Ok(args)
}
