//! Single-threaded echo servers built from crates.io libraries, for scripts/bench-echo.sh: the
//! same loads against each, one thread each, no compression.
//!
//! ```text
//! bench_echo LIB ADDR     LIB: wsengine-tokio | wsengine-smol | tokio-tungstenite |
//!                              fastwebsockets | tokio-websockets | raw-tokio
//! ```
//!
//! `raw-tokio` is the floor: after the same hand-written handshake it echoes the bytes it reads
//! unchanged (the load generator's masked frames come back masked, which it accepts), so its
//! cost is tokio's TCP and nothing of WebSocket.

use std::io;

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(lib), Some(addr)) = (args.next(), args.next()) else {
        eprintln!("usage: bench_echo LIB ADDR");
        std::process::exit(2);
    };
    if lib == "wsengine-smol" {
        return smol_server::run(&addr);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // One configuration for every connection, as a server shares it: each connection holds a
    // reference, not a copy.
    let config = std::sync::Arc::new(wsengine::Config::default());
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("bench_echo: {lib} listening on {}", listener.local_addr()?);
        loop {
            let (tcp, _) = listener.accept().await?;
            tcp.set_nodelay(true)?;
            match lib.as_str() {
                "wsengine-tokio" => tokio::spawn(wsengine_echo(tcp, config.clone())),
                "tokio-tungstenite" => tokio::spawn(tungstenite_echo(tcp)),
                "fastwebsockets" => tokio::spawn(fastwebsockets_echo(tcp)),
                "tokio-websockets" => tokio::spawn(tokio_websockets_echo(tcp)),
                "raw-tokio" => tokio::spawn(raw_echo(tcp)),
                other => {
                    eprintln!("bench_echo: unknown library {other}");
                    std::process::exit(2);
                }
            };
        }
    })
}

async fn wsengine_echo(tcp: tokio::net::TcpStream, config: std::sync::Arc<wsengine::Config>) {
    let Ok(mut ws) = wsengine_tokio::accept(tcp, config).await else {
        return;
    };
    while let Ok(message) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

async fn tungstenite_echo(tcp: tokio::net::TcpStream) {
    use futures_util::{SinkExt, StreamExt};
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            break;
        }
    }
}

async fn tokio_websockets_echo(tcp: tokio::net::TcpStream) {
    use futures_util::{SinkExt, StreamExt};
    // As the library's own echo_server example: no limits, run unconstrained.
    tokio::task::unconstrained(async move {
        let Ok((_, mut ws)) = tokio_websockets::ServerBuilder::new()
            .limits(tokio_websockets::Limits::unlimited())
            .accept(tcp)
            .await
        else {
            return;
        };
        while let Some(Ok(message)) = ws.next().await {
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                break;
            }
        }
    })
    .await;
}

async fn fastwebsockets_echo(mut tcp: tokio::net::TcpStream) {
    use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket};
    // fastwebsockets upgrades through hyper; a hand-written handshake keeps hyper out of the
    // measured loop (the handshake is not part of any load).
    if handshake_by_hand(&mut tcp).await.is_err() {
        return;
    }
    let mut ws = FragmentCollector::new(WebSocket::after_handshake(tcp, Role::Server));
    while let Ok(frame) = ws.read_frame().await {
        match frame.opcode {
            OpCode::Text | OpCode::Binary => {}
            OpCode::Close => break,
            _ => continue,
        }
        if ws.write_frame(frame).await.is_err() {
            break;
        }
    }
}

/// Echoes bytes as they come, after the handshake: no framing, no unmasking.
async fn raw_echo(mut tcp: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if handshake_by_hand(&mut tcp).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if tcp.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Reads an upgrade request and answers 101 (for fastwebsockets and the raw echo).
async fn handshake_by_hand(tcp: &mut tokio::net::TcpStream) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::with_capacity(1024);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await? == 0 || head.len() > 8192 {
            return Err(io::ErrorKind::InvalidData.into());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let key = text
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .ok_or(io::ErrorKind::InvalidData)?;
    let accept = wsengine::handshake::accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    tcp.write_all(response.as_bytes()).await
}

mod smol_server {
    use std::io;

    pub(crate) fn run(addr: &str) -> io::Result<()> {
        let executor = smol::LocalExecutor::new();
        let config = std::sync::Arc::new(wsengine::Config::default());
        smol::block_on(executor.run(async {
            let listener = smol::net::TcpListener::bind(addr).await?;
            println!("bench_echo: wsengine-smol listening on {}", listener.local_addr()?);
            loop {
                let (tcp, _) = listener.accept().await?;
                tcp.set_nodelay(true)?;
                let config = config.clone();
                executor
                    .spawn(async move {
                        // The crate's server stream: no read that would only block.
                        let tcp = wsengine_smol::TcpStream::from(tcp);
                        let Ok(mut ws) = wsengine_smol::accept(tcp, config).await else {
                            return;
                        };
                        while let Ok(message) = ws.recv().await {
                            if ws.send(message).await.is_err() {
                                break;
                            }
                        }
                    })
                    .detach();
            }
        }))
    }
}
