//! An echo WebSocket inside an axum router, upgraded from hyper with
//! `wsengine_tokio::upgrade::upgrade`; plain HTTP on every other path.
//!
//! ```text
//! cargo run --release -p wsengine-tokio --example tokio_axum_echo -- 127.0.0.1:9004
//! cargo run --release -p wsengine-tokio --example tokio_echo_client -- ws://127.0.0.1:9004/ws hello
//! ```

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::{any, get};
use wsengine_tokio::{Accept, Config, DeflateConfig, upgrade::upgrade};

#[path = "../../core/examples/common/cli.rs"]
mod cli;

async fn ws(mut request: Request) -> Response {
    let mut config = Config::default();
    config.deflate = Some(DeflateConfig::default());
    // Offered subprotocols can be chosen here, or the request rejected with any status.
    #[allow(clippy::result_large_err)] // `Reject` carries a whole HTTP response
    let decide = |request: &wsengine_tokio::Request| {
        Ok(match request.protocols().iter().find(|p| *p == "echo") {
            Some(protocol) => Accept::new().protocol(protocol.clone()),
            None => Accept::new(),
        })
    };
    match upgrade::<_, Body>(&mut request, config, decide) {
        Ok((response, pending)) => {
            tokio::spawn(async move {
                let mut ws = match pending.await {
                    Ok(ws) => ws,
                    Err(e) => return eprintln!("tokio_axum_echo: upgrade: {e}"),
                };
                while let Ok(message) = ws.recv().await {
                    if ws.send(message).await.is_err() {
                        break;
                    }
                }
            });
            response
        }
        Err(response) => response,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = cli::Args::parse(
        "tokio_axum_echo",
        "[ADDR (default 127.0.0.1:9004)]",
        "An axum router with a WebSocket echo at /ws (permessage-deflate) and plain HTTP at /.",
        &[],
        1,
    );
    let addr = args.listen_addr(0, "127.0.0.1:9004");
    let app = Router::new()
        .route("/ws", any(ws))
        .route("/", get(|| async { "wsengine tokio_axum_echo: WebSocket at /ws\n" }));
    let listener = args.or_exit(
        &format!("cannot listen on {addr}"),
        tokio::net::TcpListener::bind(addr).await,
    );
    println!("tokio_axum_echo: listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
