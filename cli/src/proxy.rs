//! `wsengine proxy --config FILE`.

use std::path::PathBuf;

use wsengine_proxy::{Config, Proxy};

/// Options of `wsengine proxy`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The TOML configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
}

/// Runs the proxy until interrupted.
pub(crate) fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load(&args.config)?;
    if args.check {
        println!("{}: ok", args.config.display());
        return Ok(());
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = builder.enable_all().build()?;
    runtime.block_on(serve(args.config, config))
}

async fn serve(path: PathBuf, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let proxy = Proxy::new(config)?;
    let listener = proxy.bind().await?;
    tracing::info!(addr = %listener.local_addr()?, "wsengine proxy listening");
    let server = {
        let proxy = proxy.clone();
        tokio::spawn(async move { proxy.serve(listener).await })
    };
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => match Config::load(&path) {
                // A bad file leaves the running configuration as it was.
                Ok(config) => match proxy.reload(config) {
                    Ok(()) => tracing::info!(config = %path.display(), "configuration reloaded"),
                    Err(error) => tracing::error!(%error, "reload failed; keeping the running configuration"),
                },
                Err(error) => tracing::error!(%error, "reload failed; keeping the running configuration"),
            },
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    server.abort();
    Ok(())
}
