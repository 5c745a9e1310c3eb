//! The Autobahn|Testsuite client testee: blocking `std::net`, one thread, one connection at a
//! time, driving the core through its public API only.
//!
//! ```text
//! cargo run --release -p wsengine --example autobahn_client -- ws://127.0.0.1:9001 wsengine-blocking-client
//! ```
//!
//! Asks the fuzzing server for its case count (`/getCaseCount`), runs every case
//! (`/runCase?case=N&agent=AGENT`), echoing each text and binary message until the connection
//! closes, then asks for the reports (`/updateReports?agent=AGENT`). permessage-deflate is offered
//! with the library's defaults. `scripts/autobahn-client.sh` runs it.

use std::error::Error;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsengine::{ClientRequest, CloseCode, Config, Connection, Event, Message};

#[path = "common/cli.rs"]
mod cli;

/// A case that takes longer than this is abandoned (the suite then reports it).
const SESSION_LIMIT: Duration = Duration::from_secs(120);

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

fn main() {
    let args = cli::Args::parse(
        "autobahn_client",
        "URL AGENT",
        "Runs every case of an Autobahn|Testsuite fuzzing server at URL (ws://) as AGENT.",
        &[],
        2,
    );
    let (base, request) = args.url(0, None);
    if request.is_tls() {
        args.fail("this example speaks plain ws:// only");
    }
    let Some(agent) = args.positional(1) else {
        args.fail("an AGENT name is required");
    };
    let result = run(base.trim_end_matches('/'), agent);
    args.or_exit("FAILED", result);
}

fn run(base: &str, agent: &str) -> Result<()> {
    let config = Arc::new(client_config());
    let agent = percent_encode(agent);

    let mut count = None;
    session(&format!("{base}/getCaseCount"), &config, |_, event| {
        if let Event::Message(Message::Text(text)) = event {
            count = Some(text.as_str().trim().parse::<u32>()?);
        }
        Ok(())
    })?;
    let count = count.ok_or("/getCaseCount sent no count")?;
    eprintln!("autobahn_client: {count} cases");

    let started = Instant::now();
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        // Whatever happens in one case is the suite's to judge; the run goes on.
        if let Err(e) = session(&url, &config, echo) {
            eprintln!("autobahn_client: case {case}: {e}");
        }
    }
    eprintln!(
        "autobahn_client: ran {count} cases in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The suite writes the reports and closes at once, often in the same read as its 101
    // response: close from our side only if its close has not arrived yet.
    session(
        &format!("{base}/updateReports?agent={agent}"),
        &config,
        |conn, event| {
            if matches!(event, Event::Connected(_)) && conn.is_open() {
                conn.close(Instant::now(), CloseCode::NORMAL, "")?;
            }
            Ok(())
        },
    )?;
    eprintln!("autobahn_client: reports updated");
    Ok(())
}

/// Defaults, plus permessage-deflate offered (Autobahn 12.* and 13.* test it).
fn client_config() -> Config {
    #[allow(unused_mut)]
    let mut config = Config::default();
    #[cfg(feature = "deflate")]
    {
        config.deflate = Some(wsengine::DeflateConfig::default());
    }
    config
}

/// Echoes every message; a send refused because a close is under way drops the echo.
fn echo(conn: &mut Connection, event: Event) -> Result<()> {
    if let Event::Message(message) = event {
        let _ = conn.send(message);
    }
    Ok(())
}

/// One connection to `url`, driven by the run-loop contract until it is over, with every event
/// handed to `on_event`. An error is a transport or handshake failure; a close of any kind,
/// including one for a protocol violation by the peer, is a normal end.
fn session(
    url: &str,
    config: &Arc<Config>,
    mut on_event: impl FnMut(&mut Connection, Event) -> Result<()>,
) -> Result<()> {
    let request = ClientRequest::new(url)?;
    let mut tcp = TcpStream::connect((request.host(), request.port()))?;
    tcp.set_nodelay(true)?;
    let mut conn = Connection::client(Arc::clone(config), &request, Instant::now());
    let deadline = Instant::now() + SESSION_LIMIT;
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    let mut eof = false;
    loop {
        // Everything queued goes out in one write (first of all, the handshake request).
        out.clear();
        while let Some(transmit) = conn.poll_transmit() {
            transmit.write_to(&mut out);
        }
        if !out.is_empty() {
            if let Err(e) = tcp.write_all(&out) {
                // The peer is gone; what it saw is already decided.
                conn.handle_eof(Instant::now());
                drain_events(&mut conn, &mut on_event)?;
                return Err(format!("write failed: {e}").into());
            }
        }
        // Close the transport when the core says so; after end of stream there is no more.
        if conn.close_expected() || eof {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("still open after {} s", SESSION_LIMIT.as_secs()).into());
        }
        // Wait for bytes, but no longer than the core's next deadline.
        let wait = conn.poll_timeout().map_or(deadline, |at| at.min(deadline));
        tcp.set_read_timeout(Some(wait.saturating_duration_since(now).max(Duration::from_millis(1))))?;
        match tcp.read(&mut buf) {
            Ok(0) => {
                eof = true;
                conn.handle_eof(Instant::now());
            }
            Ok(n) => conn.handle_data(Instant::now(), &buf[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // A reset ends the stream as surely as an orderly end: the suite's server aborts
                // the TCP connection (RST) once a close handshake is over.
                if !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) {
                    eprintln!("autobahn_client: {url}: read failed: {e}");
                }
                eof = true;
                conn.handle_eof(Instant::now());
            }
        }
        conn.handle_timeout(Instant::now());
        drain_events(&mut conn, &mut on_event)?;
    }
}

fn drain_events(conn: &mut Connection, on_event: &mut impl FnMut(&mut Connection, Event) -> Result<()>) -> Result<()> {
    while let Some(event) = conn.poll_event() {
        if let Event::HandshakeFailed(e) = &event {
            return Err(format!("handshake failed: {e}").into());
        }
        on_event(conn, event)?;
    }
    Ok(())
}

/// The agent name as a query value.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
