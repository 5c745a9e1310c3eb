//! A single-threaded echo server on smol, with permessage-deflate; the Autobahn testee.
//!
//! ```text
//! cargo run --release -p wsengine-smol --example smol_echo_server -- 127.0.0.1:9003 [--context-takeover]
//! cargo run --release -p wsengine-smol --example smol_echo_client -- ws://127.0.0.1:9003 hello
//! ```

use std::sync::Arc;

use smol::LocalExecutor;
use smol::net::TcpListener;
use wsengine_smol::{Config, DeflateConfig, accept};

#[path = "../../core/examples/common/cli.rs"]
mod cli;

fn main() -> std::io::Result<()> {
    let args = cli::Args::parse(
        "smol_echo_server",
        "[ADDR (default 127.0.0.1:9003)] [--context-takeover]",
        "Echoes every WebSocket message (smol, one thread, permessage-deflate).",
        &["--context-takeover"],
        1,
    );
    let addr = args.listen_addr(0, "127.0.0.1:9003");
    let context_takeover = args.flag("--context-takeover");
    let mut config = Config::default();
    config.deflate = Some(if context_takeover {
        DeflateConfig::default().with_context_takeover()
    } else {
        DeflateConfig::default()
    });
    let config = Arc::new(config);
    let executor = LocalExecutor::new();
    smol::block_on(executor.run(async {
        let listener = args.or_exit(&format!("cannot listen on {addr}"), TcpListener::bind(addr).await);
        println!("smol_echo_server: listening on ws://{}", listener.local_addr()?);
        loop {
            let (tcp, _) = listener.accept().await?;
            tcp.set_nodelay(true)?;
            let config = config.clone();
            executor
                .spawn(async move {
                    // The crate's TcpStream skips the reads that would only block.
                    let mut ws = match accept(wsengine_smol::TcpStream::from(tcp), config).await {
                        Ok(ws) => ws,
                        Err(e) => return eprintln!("smol_echo_server: handshake: {e}"),
                    };
                    // send() holds its write back while the messages of one read are still
                    // being received, so a burst of echoes leaves in one write.
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
