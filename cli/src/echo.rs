//! `wsengine echo [ADDR]`: a WebSocket echo server (the Autobahn testee), optionally with
//! permessage-deflate and TLS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use wsengine_tokio::{Config, DeflateConfig};

/// Options of `wsengine echo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(default_value = "127.0.0.1:9002")]
    addr: SocketAddr,
    /// Negotiate permessage-deflate (RFC 7692) with clients that offer it.
    #[arg(long)]
    deflate: bool,
    /// With --deflate: keep the compression context between messages when the client allows
    /// it (default: none, which keeps no per-connection window between messages).
    #[arg(long, requires = "deflate")]
    context_takeover: bool,
    /// Largest message accepted, in bytes (bigger ones close with 1009).
    #[arg(long, default_value_t = 64 << 20)]
    max_message_size: usize,
    /// Worker threads (default: one per CPU; 1 runs everything on one thread).
    #[arg(long)]
    threads: Option<usize>,
    /// PEM certificate chain: serve wss:// (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key (with --tls-cert).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Echoes every message of every connection until interrupted.
pub(crate) fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::default();
    config.max_message_size = args.max_message_size;
    config.max_frame_size = config.max_frame_size.min(args.max_message_size);
    if args.deflate {
        let deflate = DeflateConfig::default();
        config.deflate = Some(if args.context_takeover {
            deflate.with_context_takeover()
        } else {
            deflate
        });
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(wsengine_proxy::tls::acceptor(cert, key)?),
        _ => None,
    };
    let runtime = match args.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        threads => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = threads {
                builder.worker_threads(threads.max(1));
            }
            builder.enable_all().build()?
        }
    };
    runtime.block_on(serve(args.addr, Arc::new(config), tls))
}

async fn serve(
    addr: SocketAddr,
    config: Arc<Config>,
    tls: Option<TlsAcceptor>,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    // On stdout, for scripts that start it on port 0.
    println!("wsengine echo: listening on {scheme}://{}", listener.local_addr()?);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // Out of file descriptors and the like: keep serving the others.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = terminate.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let config = Arc::clone(&config);
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            match tls {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => echo(stream, config, peer).await,
                    Err(error) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                },
                None => echo::<TcpStream>(tcp, config, peer).await,
            }
        });
    }
}

async fn echo<S>(stream: S, config: Arc<Config>, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let mut ws = match wsengine_tokio::accept(stream, config).await {
        Ok(ws) => ws,
        Err(error) => return tracing::debug!(%peer, %error, "handshake failed"),
    };
    // send() holds its write back while the messages of one read are still being received, so
    // a burst of echoes leaves in one write.
    loop {
        match ws.recv().await {
            Ok(message) => {
                if ws.send(message).await.is_err() {
                    return;
                }
            }
            Err(error) => return tracing::debug!(%peer, %error, "connection ended"),
        }
    }
}
