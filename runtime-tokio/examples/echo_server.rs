//! A single-threaded echo server on tokio, with permessage-deflate; the Autobahn testee.
//!
//! ```text
//! cargo run --release -p wsengine-tokio --example echo_server -- 127.0.0.1:9002 [--context-takeover]
//! ```

use std::sync::Arc;

use tokio::net::TcpListener;
use wsengine_tokio::{Config, DeflateConfig, accept};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9002".into());
    let context_takeover = std::env::args().any(|a| a == "--context-takeover");
    let mut config = Config::default();
    config.deflate = Some(if context_takeover {
        DeflateConfig::default().with_context_takeover()
    } else {
        DeflateConfig::default()
    });
    let config = Arc::new(config);
    let listener = TcpListener::bind(&addr).await?;
    println!("echo_server (tokio): listening on ws://{}", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let config = config.clone();
        tokio::spawn(async move {
            let mut ws = match accept(tcp, config).await {
                Ok(ws) => ws,
                Err(e) => return eprintln!("echo_server: handshake: {e}"),
            };
            // send() holds its write back while the messages of one read are still being
            // received, so a burst of echoes leaves in one write.
            while let Ok(message) = ws.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        });
    }
}
