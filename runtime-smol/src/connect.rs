//! `ws://` and `wss://` clients: name resolution, TCP, TLS, then the opening handshake.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_net::TcpStream;

use crate::{AsyncRead, AsyncWrite, ClientRequest, ConnectOptions, Error, Response, WebSocket};

/// A client's transport: plain TCP for `ws://`, TLS over TCP for `wss://`.
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// `ws://`
    Plain(TcpStream),
    /// `wss://`
    #[cfg(feature = "rustls")]
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

/// Connects to a `ws://` or `wss://` URL with default options.
pub async fn connect(url: &str) -> Result<(WebSocket, Response), Error> {
    let request = ClientRequest::new(url)?;
    connect_with(&request, &ConnectOptions::default()).await
}

/// Connects as `request` says (URL, subprotocols, extra headers such as `Authorization`), with
/// `options` (limits, connect timeout, TLS roots).
pub async fn connect_with(request: &ClientRequest, options: &ConnectOptions) -> Result<(WebSocket, Response), Error> {
    let timeout = options.connect_timeout;
    let timed_out = async {
        async_io::Timer::after(timeout).await;
        Err(Error::Connect(format!(
            "{} not reached within {timeout:?}",
            request.uri()
        )))
    };
    let stream = futures_lite::future::or(connect_stream(request, options), timed_out).await?;
    crate::client(stream, request, options.config.clone()).await
}

async fn connect_stream(request: &ClientRequest, options: &ConnectOptions) -> Result<MaybeTlsStream, Error> {
    let (host, port) = (request.host(), request.port());
    let tcp = TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
        .await
        .map_err(|e| Error::Connect(format!("{host}:{port}: {e}")))?;
    tcp.set_nodelay(true)?;
    if !request.is_tls() {
        return Ok(MaybeTlsStream::Plain(tcp));
    }
    #[cfg(feature = "rustls")]
    {
        let (config, name) = wsengine_driver::tls::connector_parts(request, options)?;
        let tls = futures_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| Error::Connect(format!("TLS with {host}: {e}")))?;
        Ok(MaybeTlsStream::Tls(Box::new(tls)))
    }
    #[cfg(not(feature = "rustls"))]
    {
        let _ = options;
        Err(Error::Connect("wss:// needs the `rustls` feature".into()))
    }
}

macro_rules! delegate {
    ($self:ident, $stream:ident => $call:expr) => {
        match $self.get_mut() {
            MaybeTlsStream::Plain($stream) => $call,
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Tls($stream) => $call,
        }
    };
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_close(cx))
    }
}
