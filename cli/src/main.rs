//! `wsengine`: the command-line program. One module per subcommand.

mod bench;
mod echo;
mod proxy;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// wsengine: WebSocket tools.
#[derive(Debug, Parser)]
#[command(name = "wsengine", version, about)]
struct Cli {
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, global = true, default_value = "info")]
    log: tracing_subscriber::filter::LevelFilter,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the WebSocket-aware reverse proxy (SIGHUP reloads the config file).
    Proxy(proxy::Args),
    /// Serve the hub: native protocol on /ws, tank on /tank, Pusher, stats, metrics and the
    /// demo page on one port (SIGHUP reloads apps, limits and origins; SIGTERM drains).
    Serve(serve::Args),
    /// Configuration tools (`config check FILE`).
    Config(serve::ConfigArgs),
    /// Echo every WebSocket message (the Autobahn testee; --deflate for permessage-deflate).
    Echo(echo::Args),
    /// Load an echoing WebSocket server: N connections, K messages in flight or a rate, HDR
    /// latency percentiles and messages/s (--json for one line).
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` sets up its own logs (text or JSON, from its configuration).
    if !matches!(cli.command, Command::Serve(_)) {
        tracing_subscriber::fmt()
            .with_max_level(cli.log)
            .with_writer(std::io::stderr)
            .init();
    }
    let result = match cli.command {
        Command::Proxy(args) => proxy::run(args),
        Command::Serve(args) => serve::run(args, cli.log),
        Command::Config(args) => serve::config_command(args),
        Command::Echo(args) => echo::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wsengine: {error}");
            ExitCode::FAILURE
        }
    }
}
