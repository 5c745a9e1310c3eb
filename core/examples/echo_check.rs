//! Connects to an echo server, checks what the handshake agreed, and verifies that text and
//! binary messages from 1 byte to 1 MiB come back intact. Exits non-zero on any difference.
//! Used by `scripts/interop.sh` against other libraries' servers.
//!
//! ```text
//! cargo run --release -p wsengine --example echo_check -- ws://127.0.0.1:9102/ --require-deflate
//! ```

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use wsengine::{ClientRequest, CloseCode, Config, Connection, Event, Message};

#[path = "common/cli.rs"]
mod cli;

const SIZES: [usize; 8] = [1, 125, 126, 1000, 65_535, 65_536, 300_000, 1 << 20];

fn main() {
    let args = cli::Args::parse(
        "echo_check",
        "URL [--require-deflate]",
        "Checks that a ws:// echo server returns text and binary messages from 1 byte to 1 MiB intact.",
        &["--require-deflate"],
        1,
    );
    let (url, request) = args.url(0, None);
    if request.is_tls() {
        args.fail("this example speaks plain ws:// only");
    }
    let result = run(&url, &request, args.flag("--require-deflate"));
    args.or_exit("FAILED", result);
}

fn run(url: &str, request: &ClientRequest, require_deflate: bool) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::default();
    #[cfg(feature = "deflate")]
    {
        config.deflate = Some(wsengine::DeflateConfig::default());
    }
    let mut tcp = TcpStream::connect((request.host(), request.port()))?;
    tcp.set_nodelay(true)?;
    let mut conn = Connection::client(config, request, Instant::now());
    let mut expected: Vec<Message> = SIZES.iter().flat_map(|&size| [text(size), binary(size)]).collect();
    expected.reverse();
    let mut checked = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut out = Vec::new();
        while let Some(transmit) = conn.poll_transmit() {
            transmit.write_to(&mut out);
        }
        tcp.write_all(&out)?;
        if conn.close_expected() {
            break;
        }
        if Instant::now() > deadline {
            return Err("timed out".into());
        }
        let wait = conn
            .poll_timeout()
            .map(|at| at.saturating_duration_since(Instant::now()));
        tcp.set_read_timeout(Some(
            wait.unwrap_or(Duration::from_secs(1))
                .clamp(Duration::from_millis(1), Duration::from_secs(1)),
        ))?;
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
                    let extensions = response.negotiated().extensions_header().unwrap_or("none").to_owned();
                    println!("echo_check: connected to {url}; extensions: {extensions}");
                    if require_deflate && !extensions.contains("permessage-deflate") {
                        return Err(format!("permessage-deflate was not negotiated ({extensions})").into());
                    }
                    if let Some(first) = expected.last() {
                        conn.send(first.clone())?;
                    }
                }
                Event::Message(message) => {
                    let want = expected.pop().ok_or("an unexpected extra message")?;
                    if message != want {
                        return Err(format!("echo of a {:?} of {} bytes differs", want.kind(), want.len()).into());
                    }
                    checked += 1;
                    match expected.last() {
                        Some(next) => conn.send(next.clone())?,
                        None => conn.close(Instant::now(), CloseCode::NORMAL, "checked")?,
                    }
                }
                Event::HandshakeFailed(e) => return Err(e.into()),
                Event::Closed(info) if !expected.is_empty() => {
                    return Err(format!("closed early: {} {:?} ({:?})", info.code, info.reason, info.cause).into());
                }
                _ => {}
            }
        }
    }
    if !expected.is_empty() {
        return Err(format!("{} messages never came back", expected.len()).into());
    }
    println!("echo_check: OK: {checked} messages of 1 B to 1 MiB echoed intact");
    Ok(())
}

fn text(size: usize) -> Message {
    // Multi-byte characters included, cut only at character boundaries, padded to `size` bytes.
    let mut text = String::with_capacity(size);
    for c in "wsengine interop ✓ ".chars().cycle() {
        if text.len() + c.len_utf8() > size {
            break;
        }
        text.push(c);
    }
    while text.len() < size {
        text.push('x');
    }
    Message::from(text)
}

fn binary(size: usize) -> Message {
    // Half pseudo-random (incompressible), half zeros (compressible).
    let mut state = size as u32 | 1;
    let bytes: Vec<u8> = (0..size)
        .map(|i| {
            if i < size / 2 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            } else {
                0
            }
        })
        .collect();
    Message::from(bytes)
}
