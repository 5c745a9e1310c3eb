//! The tokio client as the Autobahn|Testsuite testee (fuzzingserver mode; see
//! scripts/autobahn-client.sh): echoes every case, then asks the suite for its reports.
//!
//! ```text
//! cargo run --release -p wsengine-tokio --example autobahn_client -- ws://127.0.0.1:9001 wsengine-tokio-client
//! ```

use wsengine_tokio::{ClientRequest, Config, ConnectOptions, DeflateConfig, connect_with};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let agent = args.next().unwrap_or_else(|| "wsengine-tokio-client".into());
    let mut config = Config::default();
    config.deflate = Some(DeflateConfig::default());
    let options = ConnectOptions::new(config);
    let connect = |url: String| {
        let options = options.clone();
        async move { connect_with(&ClientRequest::new(url.as_str())?, &options).await }
    };
    match wsengine_driver::conformance::autobahn_client(&url, &agent, connect).await {
        Ok(count) => println!("autobahn_client (tokio): ran {count} cases as {agent}"),
        Err(e) => {
            eprintln!("autobahn_client: {e}");
            std::process::exit(1);
        }
    }
}
