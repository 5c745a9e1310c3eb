//! A single-threaded echo server on smol, with permessage-deflate; the Autobahn testee.
//!
//! ```text
//! cargo run --release -p wsengine-smol --example echo_server -- 127.0.0.1:9003 [--context-takeover]
//! ```

use std::sync::Arc;

use smol::LocalExecutor;
use smol::net::TcpListener;
use wsengine_smol::{Config, DeflateConfig, accept};

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9003".into());
    let context_takeover = std::env::args().any(|a| a == "--context-takeover");
    let mut config = Config::default();
    config.deflate = Some(if context_takeover {
        DeflateConfig::default().with_context_takeover()
    } else {
        DeflateConfig::default()
    });
    let config = Arc::new(config);
    let executor = LocalExecutor::new();
    smol::block_on(executor.run(async {
        let listener = TcpListener::bind(&addr).await?;
        println!("echo_server (smol): listening on ws://{}", listener.local_addr()?);
        loop {
            let (tcp, _) = listener.accept().await?;
            tcp.set_nodelay(true)?;
            let config = config.clone();
            executor
                .spawn(async move {
                    let mut ws = match accept(tcp, config).await {
                        Ok(ws) => ws,
                        Err(e) => return eprintln!("echo_server: handshake: {e}"),
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
