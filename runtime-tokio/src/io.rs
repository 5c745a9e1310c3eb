//! tokio streams seen through the `futures_io` traits the shared driver uses.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wsengine_driver::futures_io;

/// Adapts a tokio stream to `futures_io`, without buffering.
#[derive(Debug)]
pub struct TokioIo<S>(S);

impl<S> TokioIo<S> {
    /// Wraps `stream`.
    pub fn new(stream: S) -> Self {
        Self(stream)
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.0
    }

    /// The wrapped stream, mutably (reading or writing it directly corrupts the connection).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.0
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> S {
        self.0
    }
}

impl<S: AsyncRead + Unpin> futures_io::AsyncRead for TokioIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> futures_io::AsyncWrite for TokioIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
