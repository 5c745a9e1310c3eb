//! Connects to a `ws://` or `wss://` URL, sends a message and prints the echo; with `--check`,
//! verifies text and binary echoes from 1 byte to 1 MiB instead (used by scripts/interop.sh).
//!
//! ```text
//! cargo run --release -p wsengine-smol --example smol_echo_server -- 127.0.0.1:9003
//! cargo run --release -p wsengine-smol --example smol_echo_client -- ws://127.0.0.1:9003 "hello"
//! cargo run --release -p wsengine-smol --example smol_echo_client -- ws://127.0.0.1:9003 --check --require-deflate
//! ```

use wsengine_smol::{ClientRequest, CloseCode, Config, ConnectOptions, DeflateConfig, Message, connect_with};

#[path = "../../core/examples/common/cli.rs"]
mod cli;

fn main() {
    let args = cli::Args::parse(
        "smol_echo_client",
        "URL [MESSAGE | --check [--require-deflate]]",
        "Sends MESSAGE to a ws:// or wss:// echo server and prints the echo; --check verifies \
         text and binary echoes from 1 byte to 1 MiB instead.",
        &["--check", "--require-deflate"],
        2,
    );
    let (url, request) = args.url(0, None);
    let result = smol::block_on(run(&url, &request, &args));
    args.or_exit("FAILED", result);
}

async fn run(url: &str, request: &ClientRequest, args: &cli::Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::default();
    config.deflate = Some(DeflateConfig::default());
    let (mut ws, response) = connect_with(request, &ConnectOptions::new(config)).await?;
    if args.flag("--check") {
        let require_deflate = args.flag("--require-deflate");
        let checked = wsengine_driver::conformance::check_echo(&mut ws, &response, require_deflate).await?;
        println!("smol_echo_client: {checked} messages echoed intact from {url}");
        return Ok(());
    }
    let text = args.positional(1).unwrap_or("hello from wsengine-smol");
    ws.send(text).await?;
    match ws.recv().await? {
        Message::Text(echo) => println!("{echo}"),
        Message::Binary(echo) => println!("{echo:?}"),
    }
    ws.close(CloseCode::NORMAL, "").await?;
    Ok(())
}
