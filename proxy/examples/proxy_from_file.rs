//! The proxy from a configuration file, without the `wsengine` binary's signal handling: a
//! minimal embedding of the library.
//!
//! ```text
//! cargo run --release -p wsengine-proxy --example proxy_from_file -- proxy.toml [THREADS]
//! ```

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().ok_or("usage: proxy_from_file CONFIG [THREADS]")?);
    let threads: usize = args.next().map_or(Ok(1), |t| t.parse())?;
    let config = wsengine_proxy::Config::load(&path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let proxy = wsengine_proxy::Proxy::new(config)?;
        let listener = proxy.bind().await?;
        println!("proxy listening on {}", listener.local_addr()?);
        proxy.serve(listener).await?;
        Ok(())
    })
}
