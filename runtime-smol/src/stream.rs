//! A server's TCP stream: async-io's `Async<std::net::TcpStream>` read and written directly,
//! skipping the system call that a short read or write already answered.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use async_io::Async;
use wsengine_driver::futures_io::{AsyncRead, AsyncWrite};

/// A TCP connection for [`accept`](crate::accept): what a [`ServerWebSocket`](crate::ServerWebSocket)
/// runs over. Make one from the `async_net::TcpStream` (or `smol::net::TcpStream`) a listener
/// accepted: `TcpStream::from(tcp)`; [`accept`](crate::accept) does that itself.
///
/// Unlike `async_net::TcpStream` it remembers that the socket was drained: a read that filled
/// less than the buffer took everything the kernel had, so the next read waits for readiness
/// instead of asking the kernel once more for an answer that is almost always "would block"
/// (a write that the kernel took only in part, likewise). The engine reads once per wake-up
/// and writes once per batch, so this is one system call saved per message.
#[derive(Debug)]
pub struct TcpStream {
    inner: Arc<Async<std::net::TcpStream>>,
    /// The last read came back short: wait for readiness before reading again.
    read_drained: bool,
    /// The last write was taken only in part: wait for room before writing again.
    write_full: bool,
}

impl TcpStream {
    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.get_ref().set_nodelay(nodelay)
    }

    fn new(inner: Arc<Async<std::net::TcpStream>>) -> Self {
        Self {
            inner,
            read_drained: false,
            write_full: false,
        }
    }
}

impl From<async_net::TcpStream> for TcpStream {
    fn from(stream: async_net::TcpStream) -> Self {
        Self::new(stream.into())
    }
}

impl From<Async<std::net::TcpStream>> for TcpStream {
    fn from(stream: Async<std::net::TcpStream>) -> Self {
        Self::new(Arc::new(stream))
    }
}

impl TryFrom<std::net::TcpStream> for TcpStream {
    type Error = io::Error;

    /// Registers a connected standard-library stream with async-io (in non-blocking mode).
    fn try_from(stream: std::net::TcpStream) -> io::Result<Self> {
        Ok(Self::from(Async::new(stream)?))
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Bounded: each pass either returns or waited for a readiness event first.
        loop {
            if this.read_drained {
                ready!(this.inner.poll_readable(cx))?;
                this.read_drained = false;
            }
            match this.inner.get_ref().read(buf) {
                Ok(n) => {
                    // Zero is end of stream (or an empty buffer): nothing to wait for.
                    this.read_drained = n != 0 && n < buf.len();
                    return Poll::Ready(Ok(n));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => this.read_drained = true,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if this.write_full {
                ready!(this.inner.poll_writable(cx))?;
                this.write_full = false;
            }
            // One buffer goes out with `send`, not `writev`: the kernel's shorter path.
            let written = match bufs {
                [buf] => this.inner.get_ref().write(buf),
                _ => this.inner.get_ref().write_vectored(bufs),
            };
            match written {
                Ok(n) => {
                    let wanted: usize = bufs.iter().map(|buf| buf.len()).sum();
                    this.write_full = n < wanted;
                    return Poll::Ready(Ok(n));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => this.write_full = true,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the socket: nothing is buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.get_ref().shutdown(Shutdown::Write))
    }
}
