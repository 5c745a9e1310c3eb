//! Listeners and the first request of each connection. A WebSocket upgrade to one of the hub's
//! paths is accepted right on the socket (no HTTP server in between for the life of the
//! connection): native and tank from the head already read (see handshake.rs), Pusher through
//! the driver's accept, whose WebSocket keeps the request Pusher's greeting reads. Everything
//! else, later requests on a kept-alive connection included, goes to hyper.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;
use wsengine_tokio::{TokioIo, TokioTimer};

use super::config::UpgradePath;
use super::state::{Admitted, Route, Shared};
use super::{handshake, http};

/// The longest request head read before deciding where a connection goes (the engine's
/// handshake limit).
const MAX_HEAD: usize = 8 << 10;
/// How long a client may take to send its first request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` until the task is dropped.
pub(crate) async fn run_listener(shared: Arc<Shared>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let tls = tls.clone();
        let span = tracing::info_span!("conn", %peer);
        tokio::spawn(
            async move {
                match tls {
                    None => connection(shared, tcp, peer).await,
                    Some(acceptor) => match tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => connection(shared, stream, peer).await,
                        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    },
                }
            }
            .instrument(span),
        );
    }
}

/// A TLS acceptor from PEM files, offering HTTP/1.1 (the proxy's).
pub(crate) fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    wsengine_proxy::tls::acceptor(cert, key)
}

async fn connection<S>(shared: Arc<Shared>, mut stream: S, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut head = BytesMut::with_capacity(1024);
    let sniffed = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream, &mut head)).await;
    let direct = match sniffed {
        // Pusher always goes direct: its greeting needs the request (the app key in the path),
        // which a WebSocket made from hyper's upgraded stream does not carry.
        Ok(Ok(Some((route, end))))
            if shared.upgrades == UpgradePath::Direct || matches!(route, Route::Pusher { .. }) =>
        {
            Some((route, end))
        }
        Ok(Ok(_)) => None,
        // The peer went away or stalled before a whole head; hyper answers what is there.
        Ok(Err(_)) | Err(_) => None,
    };
    let stream = Prefixed { head, stream };
    match direct {
        Some((Route::Pusher { .. }, _)) => websocket(shared, stream, peer).await,
        Some((_, end)) => {
            if let Some((ws, admitted)) = handshake::accept(&shared, stream, end, peer).await {
                spawn_serve(shared, ws, admitted);
            }
        }
        None => http::serve_connection(shared, stream, peer).await,
    }
}

/// Serves an accepted connection in a task of its own: for the connection's life it holds only
/// the serving state, and the accepting task (with the larger handshake state) ends.
fn spawn_serve<S>(shared: Arc<Shared>, ws: wsengine_driver::WebSocket<S, TokioTimer>, admitted: Admitted)
where
    S: wsengine_driver::futures_io::AsyncRead + wsengine_driver::futures_io::AsyncWrite + Unpin + Send + 'static,
{
    let span = tracing::Span::current();
    tokio::spawn(async move { serve(&shared, ws, admitted).await }.instrument(span));
}

/// Reads until the end of the first request head (or `MAX_HEAD`); the route and the head's
/// length when it is a WebSocket upgrade to one of the hub's paths.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, head: &mut BytesMut) -> io::Result<Option<(Route, usize)>> {
    loop {
        if let Some(end) = find_head_end(head) {
            return Ok(hub_upgrade(head.get(..end).unwrap_or_default()).map(|route| (route, end)));
        }
        if head.len() >= MAX_HEAD {
            return Ok(None);
        }
        head.reserve(1024);
        if stream.read_buf(head).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|at| at + 4)
}

fn hub_upgrade(head: &[u8]) -> Option<Route> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let path = request.path.unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    let upgrade = request.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("upgrade")
            && std::str::from_utf8(h.value).is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
    });
    Route::of(path).filter(|_| upgrade)
}

/// The engine reads the request from the socket (the sniffed bytes first), checks it, and the
/// hub serves the connection.
async fn websocket<S>(shared: Arc<Shared>, stream: Prefixed<S>, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = shared.hub.websocket_config();
    let pending = wsengine_driver::accept_request::<_, TokioTimer>(TokioIo::new(stream), config).await;
    let mut pending = match pending {
        Ok(pending) => pending,
        Err(error) => {
            tracing::debug!(%error, "handshake failed");
            return;
        }
    };
    pending.set_peer_addr(peer);
    let admitted = match shared.admit(pending.request(), Some(peer)) {
        Ok(admitted) => admitted,
        Err(rejection) => {
            let _ = pending.reject(rejection.to_reject()).await;
            return;
        }
    };
    match pending.accept(wsengine::Accept::new()).await {
        Ok(ws) => spawn_serve(shared, ws, admitted),
        Err(error) => tracing::debug!(%error, "handshake failed"),
    }
}

/// Runs an accepted connection in the hub until it ends.
pub(crate) async fn serve<S>(shared: &Shared, ws: wsengine_driver::WebSocket<S, TokioTimer>, admitted: Admitted)
where
    S: wsengine_driver::futures_io::AsyncRead + wsengine_driver::futures_io::AsyncWrite + Unpin,
{
    let Admitted {
        admission,
        codec,
        guard,
    } = admitted;
    let user = admission.identity().user_id.clone();
    let path = ws.request().map(|request| request.path().to_owned());
    tracing::debug!(%user, ?path, "connected");
    let end = shared.hub.serve(ws, admission, codec).await;
    drop(guard);
    tracing::debug!(
        %user,
        code = end.code.0,
        reason = %end.reason,
        cause = ?end.cause,
        "disconnected"
    );
}

/// A stream whose first bytes were already read: they are read again first.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    head: BytesMut,
    stream: S,
}

impl<S> Prefixed<S> {
    /// The bytes still to be read again.
    pub(crate) fn head(&self) -> &[u8] {
        &self.head
    }

    /// The same, to consume some.
    pub(crate) fn head_mut(&mut self) -> &mut BytesMut {
        &mut self.head
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.head.is_empty() {
            let n = self.head.len().min(buf.remaining());
            if let Some(bytes) = self.head.get(..n) {
                buf.put_slice(bytes);
            }
            self.head.advance(n);
            if self.head.is_empty() {
                // The connection lives on for hours: give the head's buffer back now.
                self.head = BytesMut::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_hub_upgrades_only() {
        let upgrade = b"GET /ws?user_id=a HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(hub_upgrade(upgrade), Some(Route::Native));
        assert_eq!(hub_upgrade(&upgrade.replace_path(b"/tank")), Some(Route::Tank));
        assert_eq!(
            hub_upgrade(&upgrade.replace_path(b"/app/app-key")),
            Some(Route::Pusher { key: "app-key".into() })
        );
        assert_eq!(hub_upgrade(&upgrade.replace_path(b"/other")), None);
        assert_eq!(hub_upgrade(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        assert_eq!(hub_upgrade(b"garbage\r\n\r\n"), None);
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    trait ReplacePath {
        fn replace_path(&self, path: &[u8]) -> Vec<u8>;
    }

    impl ReplacePath for [u8] {
        fn replace_path(&self, path: &[u8]) -> Vec<u8> {
            let text = String::from_utf8_lossy(self);
            text.replacen("/ws?user_id=a", &String::from_utf8_lossy(path), 1)
                .into_bytes()
        }
    }

    #[tokio::test]
    async fn prefixed_reads_the_head_again() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut prefixed = Prefixed {
            head: BytesMut::from(&b"head"[..]),
            stream: server,
        };
        tokio::io::AsyncWriteExt::write_all(&mut client, b"-tail")
            .await
            .unwrap();
        drop(client);
        let mut out = String::new();
        prefixed.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "head-tail");
    }
}
