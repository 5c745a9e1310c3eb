//! permessage-deflate end to end, with the bytes on the wire counted.

use std::sync::Arc;

use futures_io::{AsyncRead, AsyncWrite};
use wsengine::{ClientRequest, CloseCode, Message};

use super::{Harness, echo, quick_config, within};
use crate::ConnectOptions;

pub async fn deflate_negotiated_end_to_end<H: Harness>() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut config = quick_config();
    config.deflate = Some(wsengine::DeflateConfig::default());
    let (listener, port) = H::listen().await;
    let server_config = config.clone();
    let wire = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&wire);
    H::spawn(async move {
        let stream = Counting {
            inner: H::accept(&listener).await,
            read: counted,
        };
        let ws = crate::accept::<_, H::Timer>(stream, server_config).await.unwrap();
        echo(ws).await;
    });
    within::<H, _>(20, "deflate", async {
        let request = ClientRequest::new(format!("ws://127.0.0.1:{port}/").as_str()).unwrap();
        let (mut ws, response) = H::connect(request, ConnectOptions::new(config)).await.unwrap();
        assert!(response.negotiated().deflate().is_some(), "permessage-deflate agreed");
        let text = "compressible ".repeat(10_000);
        ws.send(text.as_str()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), Message::from(text.as_str()));
        // The 130 000-byte message crossed the wire compressed (request head included).
        let read = wire.load(Ordering::Relaxed);
        assert!(read < 4_000, "the server read {read} bytes for a 130 000-byte message");
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    })
    .await;
}

/// A stream that counts the bytes read through it.
struct Counting<S> {
    inner: S,
    read: Arc<std::sync::atomic::AtomicUsize>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let result = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = result {
            self.read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_close(cx)
    }
}
