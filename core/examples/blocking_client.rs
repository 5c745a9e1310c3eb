//! A client over blocking `std::net`: connects to a `ws://` URL, sends one message, prints the
//! reply, and closes.
//!
//! ```text
//! cargo run --release -p wsengine --example blocking_echo -- 127.0.0.1:9001
//! cargo run --release -p wsengine --example blocking_client -- ws://127.0.0.1:9001/ "hello"
//! ```

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use wsengine::{ClientRequest, CloseCode, Config, Connection, Event, Message};

#[path = "common/cli.rs"]
mod cli;

fn main() {
    let args = cli::Args::parse(
        "blocking_client",
        "[URL (default ws://127.0.0.1:9001/)] [MESSAGE]",
        "Sends MESSAGE to a ws:// echo server over blocking std::net and prints the reply.",
        &[],
        2,
    );
    let (_, request) = args.url(0, Some("ws://127.0.0.1:9001/"));
    if request.is_tls() {
        args.fail("this example speaks plain ws:// only; the runtime crates' clients add wss://");
    }
    let text = args.positional(1).unwrap_or("hello from wsengine").to_owned();
    let result = run(&request, text);
    args.or_exit("FAILED", result);
}

fn run(request: &ClientRequest, text: String) -> Result<(), Box<dyn std::error::Error>> {
    let mut tcp = TcpStream::connect((request.host(), request.port()))?;
    tcp.set_nodelay(true)?;
    let mut conn = Connection::client(Config::default(), request, Instant::now());
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        out.clear();
        while let Some(transmit) = conn.poll_transmit() {
            transmit.write_to(&mut out);
        }
        tcp.write_all(&out)?;
        if conn.close_expected() {
            return Ok(());
        }
        let timeout = conn
            .poll_timeout()
            .map(|at| at.saturating_duration_since(Instant::now()));
        tcp.set_read_timeout(timeout.map(|t| t.max(Duration::from_millis(1))))?;
        match tcp.read(&mut buf) {
            Ok(0) => conn.handle_eof(Instant::now()),
            Ok(n) => conn.handle_data(Instant::now(), &buf[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }
        conn.handle_timeout(Instant::now());
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Connected(response) => {
                    eprintln!("connected (subprotocol {:?}); sending {text:?}", response.protocol());
                    conn.send(text.as_str())?;
                }
                Event::Message(Message::Text(reply)) => {
                    println!("{reply}");
                    conn.close(Instant::now(), CloseCode::NORMAL, "done")?;
                }
                Event::Message(Message::Binary(reply)) => {
                    println!("{} binary bytes", reply.len());
                    conn.close(Instant::now(), CloseCode::NORMAL, "done")?;
                }
                Event::HandshakeFailed(e) => return Err(e.into()),
                Event::Closed(info) => eprintln!("closed: {} {:?} ({:?})", info.code, info.reason, info.cause),
                _ => {}
            }
        }
    }
}
