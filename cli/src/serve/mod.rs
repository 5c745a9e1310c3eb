//! `wsengine serve`: the hub on one port (native protocol on `/ws`, tank on `/tank`, Pusher's
//! place on `/app/<key>` and `/apps/<id>/`, health, readiness, stats, metrics and the demo page),
//! and `wsengine config check FILE`.

mod accept;
pub(crate) mod config;
mod demo;
mod handshake;
mod http;
mod lifecycle;
mod pusher;
mod state;
mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use self::config::{Config, LogFormat};
use self::lifecycle::Source;
use self::state::Shared;

/// How long webhooks still queued at shutdown may take to go out.
const WEBHOOK_FLUSH: Duration = Duration::from_secs(3);

/// Options of `wsengine serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The TOML configuration file (the embedded default when absent).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address of the plain listener (overrides `listen` and WSENGINE_LISTEN).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Runtime worker threads (default: the file's `threads`, else one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// Options of `wsengine config`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Validates a `serve` configuration file (with WSENGINE_* variables applied).
    Check {
        /// The file.
        file: PathBuf,
    },
}

/// Runs `wsengine config …`.
pub(crate) fn config_command(args: ConfigArgs) -> Result<(), Box<dyn std::error::Error>> {
    match args.command {
        ConfigCommand::Check { file } => {
            let config = Config::load(Some(&file), std::env::vars(), None)?;
            println!(
                "{}: ok (listen {}, {} app(s), default app {:?})",
                file.display(),
                config.listen,
                config.apps.len(),
                config.default_app().id.get_ref()
            );
            Ok(())
        }
    }
}

/// Runs the server until SIGTERM or SIGINT, then drains. `level` is `--log`.
pub(crate) fn run(args: Args, level: LevelFilter) -> Result<(), Box<dyn std::error::Error>> {
    let source = Source {
        path: args.config,
        listen: args.listen,
    };
    let config = source.load()?;
    init_logs(&config, level)?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads.or(config.threads) {
        builder.worker_threads(threads.max(1));
    }
    let runtime = builder.enable_all().build()?;
    runtime.block_on(serve(source, config))
}

async fn serve(source: Source, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let signals = lifecycle::Signals::install()?;
    let (shared, webhooks) = Shared::new(&config)?;
    let webhooks_pending = webhooks.pending();
    let webhooks = tokio::spawn(webhooks.run());
    let sweep = tokio::spawn(pusher::sweep(shared.pusher.clone()));
    let mut listeners = Vec::new();
    let plain = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = plain.local_addr()?;
    tracing::info!(%addr, tls = false, default_app = %shared.default_app, "listening");
    tracing::info!("demo page on http://{addr}/ (native protocol on /ws, tank on /tank)");
    listeners.push(tokio::spawn(accept::run_listener(Arc::clone(&shared), plain, None)));
    for listener in &config.listeners {
        let tls = match (&listener.tls_cert, &listener.tls_key) {
            (Some(cert), Some(key)) => Some(accept::tls_acceptor(cert.get_ref(), key.get_ref())?),
            _ => None,
        };
        let bound = TcpListener::bind(listener.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", listener.listen))?;
        let addr = bound.local_addr()?;
        tracing::info!(%addr, tls = tls.is_some(), "listening");
        listeners.push(tokio::spawn(accept::run_listener(Arc::clone(&shared), bound, tls)));
    }
    let counts = tokio::spawn(lifecycle::log_counts(Arc::clone(&shared), config.log.stats_interval));
    let signal = lifecycle::until_shutdown(&shared, &source, config.clone(), signals).await;
    tracing::info!(signal, "shutting down: no new connections");
    // Stop accepting first; connections already accepted keep going until the drain closes
    // them.
    for listener in &listeners {
        listener.abort();
    }
    lifecycle::drain(&shared, &config).await;
    counts.abort();
    sweep.abort();
    // The drain's own webhooks (channel_vacated, member_removed) get a few seconds to go out.
    let flush_until = tokio::time::Instant::now() + WEBHOOK_FLUSH;
    while webhooks_pending.load(std::sync::atomic::Ordering::Relaxed) > 0 && tokio::time::Instant::now() < flush_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    webhooks.abort();
    Ok(())
}

fn init_logs(config: &Config, level: LevelFilter) -> Result<(), Box<dyn std::error::Error>> {
    let filter = match &config.log.level {
        Some(directives) => EnvFilter::try_new(directives).map_err(|e| format!("log.level: {e}"))?,
        None => EnvFilter::default().add_directive(level.into()),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| format!("logs: {e}").into())
}
