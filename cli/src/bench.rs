//! `wsengine bench URL`: a load generator for any echoing WebSocket server (ours or not).
//!
//! N connections each keep K messages in flight (closed loop), or together send R messages a
//! second (open loop, latency counted from when each message was due, so a stalled server is
//! not hidden by a sender that waited for it). Every echo is checked against what was sent.
//! Latencies go into HDR histograms (one per connection, merged at the end); the result is a
//! table, or one JSON line with `--json`. Bounded in connections, size, in-flight and time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::time::Instant;
use wsengine_tokio::{ClientRequest, CloseCode, Config, ConnectOptions, Message};

/// The most of anything one run may ask for.
const MAX_CONNECTIONS: usize = 100_000;
const MAX_SIZE: usize = 64 << 20;
const MAX_IN_FLIGHT: usize = 10_000;
const MAX_SECONDS: f64 = 24.0 * 3600.0;
/// Open loop: messages a connection may have outstanding before it skips a due send (counted).
const MAX_OUTSTANDING: usize = 10_000;
/// Latencies above this are recorded as this (microseconds).
const HIGHEST_US: u64 = 3_600_000_000;

/// Options of `wsengine bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The server: ws://host:port/path or wss://... (it must echo every message).
    url: String,
    /// Connections to open.
    #[arg(long, short = 'c', default_value_t = 100)]
    connections: usize,
    /// Payload bytes per message.
    #[arg(long, short = 's', default_value_t = 20)]
    size: usize,
    /// Messages each connection keeps in flight (closed loop).
    #[arg(long, short = 'k', default_value_t = 1, conflicts_with = "rate")]
    in_flight: usize,
    /// Messages a second over all connections (open loop) instead of --in-flight.
    #[arg(long, short = 'r')]
    rate: Option<f64>,
    /// Seconds measured (after the warm-up).
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Text messages (ASCII) instead of binary.
    #[arg(long)]
    text: bool,
    /// Offer permessage-deflate.
    #[arg(long)]
    deflate: bool,
    /// Seconds a connection may take to open.
    #[arg(long, default_value_t = 10.0)]
    connect_timeout: f64,
    /// One JSON line on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn check(&self) -> Result<(), String> {
        let seconds = |name: &str, value: f64, min: f64| {
            if value.is_finite() && value >= min && value <= MAX_SECONDS {
                Ok(())
            } else {
                Err(format!("--{name} must be between {min} and {MAX_SECONDS} seconds"))
            }
        };
        seconds("duration", self.duration, 0.001)?;
        seconds("warmup", self.warmup, 0.0)?;
        seconds("connect-timeout", self.connect_timeout, 0.001)?;
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return Err(format!("--connections must be between 1 and {MAX_CONNECTIONS}"));
        }
        if self.size > MAX_SIZE {
            return Err(format!("--size must be at most {MAX_SIZE} bytes"));
        }
        if !(1..=MAX_IN_FLIGHT).contains(&self.in_flight) {
            return Err(format!("--in-flight must be between 1 and {MAX_IN_FLIGHT}"));
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0 && rate <= 1e9) {
                return Err("--rate must be a positive number of messages a second".into());
            }
        }
        Ok(())
    }
}

/// What one connection measured.
struct Outcome {
    histogram: Histogram<u64>,
    /// Echoes received inside the measured window.
    messages: u64,
    /// Echoes that differed from what was sent, or a connection that failed mid-run.
    errors: u64,
    /// Open loop: sends skipped because too many were outstanding.
    skipped: u64,
    /// The connection could not be opened.
    connect_error: Option<String>,
    /// The server accepted permessage-deflate on it.
    deflate: bool,
}

/// The run's clock: warm-up ends at `start`, the run at `end`.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

/// Runs the benchmark and prints its result.
pub(crate) fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    args.check()?;
    let request = ClientRequest::new(args.url.as_str()).map_err(|e| format!("{}: {e}", args.url))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let outcomes = runtime.block_on(load(&args, &request))?;
    report(&args, &outcomes)
}

async fn load(args: &Args, request: &ClientRequest) -> Result<Vec<Outcome>, Box<dyn std::error::Error>> {
    let mut config = Config::default();
    config.max_message_size = config.max_message_size.max(args.size);
    config.max_frame_size = config.max_frame_size.max(args.size);
    if args.deflate {
        config.deflate = Some(wsengine_tokio::DeflateConfig::default());
    }
    let options = ConnectOptions::new(config).connect_timeout(Duration::from_secs_f64(args.connect_timeout));
    let payload = if args.text {
        Message::from("x".repeat(args.size))
    } else {
        Message::from(Bytes::from(vec![0xa5; args.size]))
    };
    // Every connection opens first; the clock starts when the last is open (or failed).
    let mut opening = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let request = request.clone();
        let options = options.clone();
        opening.push(tokio::spawn(async move {
            wsengine_tokio::connect_with(&request, &options).await
        }));
    }
    let mut sockets = Vec::with_capacity(args.connections);
    for task in opening {
        sockets.push(match task.await {
            Ok(Ok((ws, response))) => Ok((ws, response.negotiated().deflate().is_some())),
            Ok(Err(error)) => Err(error.to_string()),
            Err(error) => Err(error.to_string()),
        });
    }
    if let Some(Err(first)) = sockets.iter().find(|s| s.is_err()) {
        if sockets.iter().all(Result::is_err) {
            return Err(format!(
                "no connection could be opened ({} tried), the first: {first}",
                sockets.len()
            )
            .into());
        }
    }
    let now = Instant::now();
    let start = now + Duration::from_secs_f64(args.warmup);
    let window = Window {
        start,
        end: start + Duration::from_secs_f64(args.duration),
    };
    let done = Arc::new(AtomicU64::new(0));
    let interval = args
        .rate
        .map(|rate| Duration::from_secs_f64(args.connections as f64 / rate));
    let mut tasks = Vec::with_capacity(sockets.len());
    for (index, socket) in sockets.into_iter().enumerate() {
        let payload = payload.clone();
        let done = Arc::clone(&done);
        let (in_flight, connections) = (args.in_flight, args.connections);
        tasks.push(tokio::spawn(async move {
            let (ws, deflate) = match socket {
                Ok(pair) => pair,
                Err(error) => return Outcome::failed_to_connect(error),
            };
            let mut outcome = match interval {
                // Spread the connections' sends over one interval.
                Some(every) => {
                    let offset = every.mul_f64(index as f64 / connections as f64);
                    open_loop(ws, payload, every, offset, window, done).await
                }
                None => closed_loop(ws, payload, in_flight, window, done).await,
            };
            outcome.deflate = deflate;
            outcome
        }));
    }
    let progress = progress_bar(args, window, &done);
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => return Err(format!("a connection task failed: {error}").into()),
        }
    }
    progress.abort();
    Ok(outcomes)
}

impl Outcome {
    fn new() -> Self {
        Self {
            // Three significant digits from 1 µs to an hour.
            histogram: Histogram::new_with_bounds(1, HIGHEST_US, 3)
                .unwrap_or_else(|_| unreachable!("valid histogram bounds")),
            messages: 0,
            errors: 0,
            skipped: 0,
            connect_error: None,
            deflate: false,
        }
    }

    fn failed_to_connect(error: String) -> Self {
        Self {
            connect_error: Some(error),
            ..Self::new()
        }
    }

    /// An echo arrived for a message due at `due`.
    fn record(&mut self, due: Instant, now: Instant, window: Window, done: &AtomicU64) {
        if now >= window.start && now < window.end {
            let micros = u64::try_from(now.duration_since(due).as_micros()).unwrap_or(u64::MAX);
            self.histogram.saturating_record(micros.clamp(1, HIGHEST_US));
            self.messages += 1;
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
}

type Socket = wsengine_tokio::WebSocket;

/// Keeps `in_flight` messages outstanding until the window ends.
async fn closed_loop(
    mut ws: Socket,
    payload: Message,
    in_flight: usize,
    window: Window,
    done: Arc<AtomicU64>,
) -> Outcome {
    let mut outcome = Outcome::new();
    let mut sent: VecDeque<Instant> = VecDeque::with_capacity(in_flight);
    for _ in 0..in_flight {
        sent.push_back(Instant::now());
        if ws.send(payload.clone()).await.is_err() {
            outcome.errors += 1;
            return outcome;
        }
    }
    loop {
        let received = tokio::time::timeout_at(window.end, ws.recv()).await;
        let now = Instant::now();
        match received {
            Err(_) => break,
            Ok(Ok(message)) => {
                if message != payload {
                    outcome.errors += 1;
                }
                if let Some(due) = sent.pop_front() {
                    outcome.record(due, now, window, &done);
                }
                if now >= window.end {
                    break;
                }
                sent.push_back(now);
                if ws.send(payload.clone()).await.is_err() {
                    outcome.errors += 1;
                    return outcome;
                }
            }
            Ok(Err(_)) => {
                outcome.errors += 1;
                return outcome;
            }
        }
    }
    finish(ws).await;
    outcome
}

/// Sends one message every `every` (from `offset` into the run) until the window ends,
/// whatever the echoes do; latency runs from when each message was due.
async fn open_loop(
    mut ws: Socket,
    payload: Message,
    every: Duration,
    offset: Duration,
    window: Window,
    done: Arc<AtomicU64>,
) -> Outcome {
    let mut outcome = Outcome::new();
    let mut sent: VecDeque<Instant> = VecDeque::new();
    let first = Instant::now() + offset;
    let mut ticks = tokio::time::interval_at(first, every);
    // Late ticks fire at once, one by one: each message keeps the time it was due.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut next_due = first;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let due = next_due;
                next_due += every;
                if due >= window.end {
                    break;
                }
                if sent.len() >= MAX_OUTSTANDING {
                    outcome.skipped += 1;
                    continue;
                }
                sent.push_back(due);
                if ws.send(payload.clone()).await.is_err() {
                    outcome.errors += 1;
                    return outcome;
                }
            }
            received = ws.recv() => match received {
                Ok(message) => {
                    if message != payload {
                        outcome.errors += 1;
                    }
                    if let Some(due) = sent.pop_front() {
                        outcome.record(due, Instant::now(), window, &done);
                    }
                }
                Err(_) => {
                    outcome.errors += 1;
                    return outcome;
                }
            },
        }
    }
    // Echoes of the last messages still count if they come back inside the window.
    while !sent.is_empty() {
        match tokio::time::timeout_at(window.end, ws.recv()).await {
            Ok(Ok(message)) => {
                if message != payload {
                    outcome.errors += 1;
                }
                if let Some(due) = sent.pop_front() {
                    outcome.record(due, Instant::now(), window, &done);
                }
            }
            Ok(Err(_)) => {
                outcome.errors += 1;
                return outcome;
            }
            Err(_) => break,
        }
    }
    finish(ws).await;
    outcome
}

/// A normal close, bounded by the engine's close timeout.
async fn finish(mut ws: Socket) {
    let _ = ws.close(CloseCode::NORMAL, "benchmark done").await;
}

/// A progress bar on stderr while a terminal watches (hidden otherwise).
fn progress_bar(args: &Args, window: Window, done: &Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    let total = args.warmup + args.duration;
    let bar = indicatif::ProgressBar::new((total * 10.0).ceil() as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    let done = Arc::clone(done);
    let began = window.start - Duration::from_secs_f64(args.warmup);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut last = (Instant::now(), 0u64);
        loop {
            tick.tick().await;
            let now = Instant::now();
            let count = done.load(Ordering::Relaxed);
            let rate = (count - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
            last = (now, count);
            bar.set_position((now.duration_since(began).as_secs_f64() * 10.0) as u64);
            bar.set_message(if now < window.start {
                "warming up".to_owned()
            } else {
                format!("{count} echoes, {rate:.0}/s")
            });
            if now >= window.end {
                bar.finish_and_clear();
                return;
            }
        }
    })
}

/// Prints the merged result; fails when nothing could be measured.
fn report(args: &Args, outcomes: &[Outcome]) -> Result<(), Box<dyn std::error::Error>> {
    let mut histogram = Outcome::new().histogram;
    let (mut messages, mut errors, mut skipped, mut connect_errors) = (0u64, 0u64, 0u64, 0usize);
    let mut first_connect_error = None;
    for outcome in outcomes {
        let _ = histogram.add(&outcome.histogram);
        messages += outcome.messages;
        errors += outcome.errors;
        skipped += outcome.skipped;
        if let Some(error) = &outcome.connect_error {
            connect_errors += 1;
            first_connect_error.get_or_insert(error);
        }
    }
    let connected = outcomes.len() - connect_errors;
    let deflate = outcomes.iter().filter(|o| o.deflate).count();
    let rate = messages as f64 / args.duration;
    let mib = rate * args.size as f64 / f64::from(1 << 20);
    let quantile = |q: f64| {
        if messages == 0 {
            0
        } else {
            histogram.value_at_quantile(q)
        }
    };
    let (p50, p90, p99, p999, max) = (
        quantile(0.5),
        quantile(0.9),
        quantile(0.99),
        quantile(0.999),
        histogram.max(),
    );
    if args.json {
        let line = serde_json::json!({
            "url": args.url,
            "connections": args.connections,
            "connected": connected,
            "connect_errors": connect_errors,
            "deflate": deflate,
            "size": args.size,
            "in_flight": if args.rate.is_some() { None } else { Some(args.in_flight) },
            "rate": args.rate,
            "duration_s": args.duration,
            "messages": messages,
            "msgs_per_sec": rate,
            "mib_per_sec": mib,
            "p50_us": p50,
            "p90_us": p90,
            "p99_us": p99,
            "p999_us": p999,
            "max_us": max,
            "errors": errors,
            "skipped": skipped,
        });
        println!("{line}");
    } else {
        let mode = match args.rate {
            Some(rate) => format!("{rate} msgs/s in all (open loop)"),
            None => format!("{} in flight each", args.in_flight),
        };
        println!(
            "{}: {connected}/{} connections ({deflate} with permessage-deflate), {} B messages, {mode}, {} s",
            args.url, args.connections, args.size, args.duration
        );
        println!("  echoes      {messages} ({rate:.0}/s, {mib:.2} MiB/s each way)");
        println!("  latency µs  p50 {p50}  p90 {p90}  p99 {p99}  p99.9 {p999}  max {max}");
        println!("  errors      {errors} (bad or missing echoes, failed connections), {skipped} sends skipped");
    }
    if let Some(error) = first_connect_error {
        eprintln!("wsengine bench: {connect_errors} connection(s) failed to open, the first: {error}");
    }
    if messages == 0 {
        return Err("no echo came back in the measured window".into());
    }
    Ok(())
}
