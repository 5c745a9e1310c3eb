//! The tokio client as the Autobahn|Testsuite testee (fuzzingserver mode; see
//! scripts/autobahn-client.sh): echoes every case, then asks the suite for its reports.
//!
//! ```text
//! cargo run --release -p wsengine-tokio --example tokio_autobahn_client -- ws://127.0.0.1:9001 wsengine-tokio-client
//! ```

use wsengine_tokio::{ClientRequest, Config, ConnectOptions, DeflateConfig, connect_with};

#[path = "../../core/examples/common/cli.rs"]
mod cli;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = cli::Args::parse(
        "tokio_autobahn_client",
        "[URL (default ws://127.0.0.1:9001)] [AGENT (default wsengine-tokio-client)]",
        "Runs every case of an Autobahn|Testsuite fuzzing server as AGENT, then updates its reports.",
        &[],
        2,
    );
    let (url, _) = args.url(0, Some("ws://127.0.0.1:9001"));
    let agent = args.positional(1).unwrap_or("wsengine-tokio-client");
    let mut config = Config::default();
    config.deflate = Some(DeflateConfig::default());
    let options = ConnectOptions::new(config);
    let connect = |url: String| {
        let options = options.clone();
        async move { connect_with(&ClientRequest::new(url.as_str())?, &options).await }
    };
    let result = wsengine_driver::conformance::autobahn_client(&url, agent, connect).await;
    let count = args.or_exit("FAILED", result);
    println!("tokio_autobahn_client: ran {count} cases as {agent}");
}
