//! Connects to a `ws://` or `wss://` URL, sends a message and prints the echo; with `--check`,
//! verifies text and binary echoes from 1 byte to 1 MiB instead (used by scripts/interop.sh).
//!
//! ```text
//! cargo run --release -p wsengine-smol --example echo_client -- ws://127.0.0.1:9003 "hello"
//! cargo run --release -p wsengine-smol --example echo_client -- ws://127.0.0.1:9003 --check --require-deflate
//! ```

use wsengine_smol::{ClientRequest, CloseCode, Config, ConnectOptions, DeflateConfig, Message, connect_with};

fn main() {
    // The URL is the first argument that is not a flag; flags may come before or after it.
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let Some(position) = args.iter().position(|a| !a.starts_with("--")) else {
        eprintln!("usage: echo_client URL [MESSAGE | --check [--require-deflate]]");
        std::process::exit(2);
    };
    let url = args.remove(position);
    if let Err(e) = smol::block_on(run(&url, &args)) {
        eprintln!("echo_client: FAILED: {e}");
        std::process::exit(1);
    }
}

async fn run(url: &str, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::default();
    config.deflate = Some(DeflateConfig::default());
    let request = ClientRequest::new(url)?;
    let (mut ws, response) = connect_with(&request, &ConnectOptions::new(config)).await?;
    if args.iter().any(|a| a == "--check") {
        let require_deflate = args.iter().any(|a| a == "--require-deflate");
        let checked = wsengine_driver::conformance::check_echo(&mut ws, &response, require_deflate).await?;
        println!("echo_client (smol): {checked} messages echoed intact from {url}");
        return Ok(());
    }
    let text = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or("hello from wsengine-smol", String::as_str);
    ws.send(text).await?;
    match ws.recv().await? {
        Message::Text(echo) => println!("{echo}"),
        Message::Binary(echo) => println!("{echo:?}"),
    }
    ws.close(CloseCode::NORMAL, "").await?;
    Ok(())
}
