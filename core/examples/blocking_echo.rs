//! An echo server over blocking `std::net`, one thread per connection, driving the core through
//! its public API only: the proof that wsengine embeds in any loop, and the Autobahn testee.
//!
//! ```text
//! cargo run --release -p wsengine --example blocking_echo -- 127.0.0.1:9001 [--context-takeover]
//! cargo run --release -p wsengine --example blocking_client -- ws://127.0.0.1:9001/ hello
//! ```
//!
//! It accepts permessage-deflate with the library's defaults (no context takeover, so idle
//! connections hold no compression state), or with `--context-takeover` as the client offers.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsengine::{Accept, Config, Connection, Event};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/echo_config.rs"]
mod echo_config;

fn main() -> io::Result<()> {
    let args = cli::Args::parse(
        "blocking_echo",
        "[ADDR (default 127.0.0.1:9001)] [--context-takeover]",
        "Echoes every WebSocket message (blocking std::net, a thread per connection).",
        &["--context-takeover"],
        1,
    );
    let addr = args.listen_addr(0, "127.0.0.1:9001");
    let context_takeover = args.flag("--context-takeover");
    let listener = args.or_exit(&format!("cannot listen on {addr}"), TcpListener::bind(addr));
    eprintln!("blocking_echo: listening on ws://{}", listener.local_addr()?);
    let config = Arc::new(echo_config::echo_config(context_takeover));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("blocking_echo: accept failed: {e}");
                continue;
            }
        };
        let config = Arc::clone(&config);
        std::thread::spawn(move || {
            let peer = stream.peer_addr().ok();
            if let Err(e) = serve(stream, config) {
                eprintln!("blocking_echo: {peer:?}: {e}");
            }
        });
    }
    Ok(())
}

fn serve(mut tcp: TcpStream, config: Arc<Config>) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    let mut conn = Connection::server(config, Instant::now());
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        // 1. Wait for bytes, but no longer than the core's next deadline.
        let timeout = conn
            .poll_timeout()
            .map(|at| at.saturating_duration_since(Instant::now()));
        tcp.set_read_timeout(timeout.map(|t| t.max(Duration::from_millis(1))))?;
        match tcp.read(&mut buf) {
            Ok(0) => conn.handle_eof(Instant::now()),
            Ok(n) => conn.handle_data(Instant::now(), &buf[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        // 2. Timers.
        conn.handle_timeout(Instant::now());
        // 3. Events: accept every request, echo every message.
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Request(_) => {
                    conn.accept(Instant::now(), Accept::new()).map_err(io::Error::other)?;
                }
                Event::Message(message) => {
                    // Sending fails only once a close has been sent; the echo is then dropped.
                    let _ = conn.send(message);
                }
                Event::HandshakeFailed(e) => eprintln!("blocking_echo: handshake failed: {e}"),
                _ => {}
            }
        }
        // 4. Everything queued goes out in one write.
        out.clear();
        while let Some(transmit) = conn.poll_transmit() {
            transmit.write_to(&mut out);
        }
        tcp.write_all(&out)?;
        // 5. Close the transport when the core says so.
        if conn.close_expected() {
            return lingering_close(tcp);
        }
    }
}

/// Shuts down our side, then reads until the peer closes (bounded), so that our last frame is
/// not destroyed by a reset caused by unread input.
fn lingering_close(mut tcp: TcpStream) -> io::Result<()> {
    tcp.shutdown(Shutdown::Write)?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut sink = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
        tcp.set_read_timeout(Some(left))?;
        match tcp.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(())
}
