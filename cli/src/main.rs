//! `wsengine`: the command-line program. One module per subcommand.

mod proxy;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_max_level(cli.log)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Proxy(args) => proxy::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wsengine: {error}");
            ExitCode::FAILURE
        }
    }
}
