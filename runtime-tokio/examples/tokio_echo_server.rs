//! A single-threaded echo server on tokio, with permessage-deflate; the Autobahn testee.
//!
//! ```text
//! cargo run --release -p wsengine-tokio --example tokio_echo_server -- 127.0.0.1:9002 [--context-takeover]
//! cargo run --release -p wsengine-tokio --example tokio_echo_client -- ws://127.0.0.1:9002 hello
//! ```

use std::sync::Arc;

use tokio::net::TcpListener;
use wsengine_tokio::{Config, DeflateConfig, accept};

#[path = "../../core/examples/common/cli.rs"]
mod cli;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = cli::Args::parse(
        "tokio_echo_server",
        "[ADDR (default 127.0.0.1:9002)] [--context-takeover]",
        "Echoes every WebSocket message (tokio, one thread, permessage-deflate).",
        &["--context-takeover"],
        1,
    );
    let addr = args.listen_addr(0, "127.0.0.1:9002");
    let context_takeover = args.flag("--context-takeover");
    let mut config = Config::default();
    config.deflate = Some(if context_takeover {
        DeflateConfig::default().with_context_takeover()
    } else {
        DeflateConfig::default()
    });
    let config = Arc::new(config);
    let listener = args.or_exit(&format!("cannot listen on {addr}"), TcpListener::bind(addr).await);
    println!("tokio_echo_server: listening on ws://{}", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let config = config.clone();
        tokio::spawn(async move {
            let mut ws = match accept(tcp, config).await {
                Ok(ws) => ws,
                Err(e) => return eprintln!("tokio_echo_server: handshake: {e}"),
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
