//! A server's TCP stream: the socket read and written directly, registered edge-triggered
//! (`edge`) so that waiting for readiness costs no system call per message, and skipping the
//! read or write that a short read or write already answered.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use async_io::Async;
use wsengine_driver::futures_io::{AsyncRead, AsyncWrite};

use crate::edge::{Direction, Registration};

/// Attempts per poll before yielding: each attempt follows fresh readiness, so more than two
/// means events keep arriving while the kernel keeps saying "would block".
const MAX_ATTEMPTS: usize = 8;

/// A TCP connection for [`accept`](crate::accept): what a [`ServerWebSocket`](crate::ServerWebSocket)
/// runs over. Make one from the `async_net::TcpStream` (or `smol::net::TcpStream`) a listener
/// accepted: `TcpStream::from(tcp)`.
///
/// Unlike `async_net::TcpStream` it is registered with the kernel once, edge-triggered (epoll, on
/// Linux and Android), the way tokio registers sockets (async-io re-arms a socket with a system
/// call every time a task waits on it, once per echoed message), and it remembers that the
/// socket was drained: a read that
/// filled less than the buffer took everything the kernel had, so the next read waits for
/// readiness instead of asking the kernel once more for an answer that is almost always "would
/// block" (a write that the kernel took only in part, likewise). Where no edge-triggered
/// registration is available (or the `async_net::TcpStream` was cloned) it uses async-io's.
#[derive(Debug)]
pub struct TcpStream {
    io: Io,
}

#[derive(Debug)]
enum Io {
    Edge(EdgeSocket),
    Async(AsyncSocket),
    /// Taking the socket out of async-io failed (and closed it).
    Failed(io::ErrorKind),
}

impl TcpStream {
    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.std()?.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.std()?.local_addr()
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.std()?.set_nodelay(nodelay)
    }

    fn std(&self) -> io::Result<&std::net::TcpStream> {
        match &self.io {
            Io::Edge(socket) => Ok(&socket.tcp),
            Io::Async(socket) => Ok(socket.inner.get_ref()),
            Io::Failed(kind) => Err((*kind).into()),
        }
    }

    /// Registers a connected non-blocking socket edge-triggered, or with async-io if that fails.
    fn from_nonblocking(tcp: std::net::TcpStream) -> io::Result<Self> {
        let io = match Registration::register(&tcp) {
            Some(registration) => Io::Edge(EdgeSocket { tcp, registration }),
            None => Io::Async(AsyncSocket::new(Arc::new(Async::new(tcp)?))),
        };
        Ok(Self { io })
    }
}

impl From<async_net::TcpStream> for TcpStream {
    fn from(stream: async_net::TcpStream) -> Self {
        Self::from(Arc::<Async<std::net::TcpStream>>::from(stream))
    }
}

impl From<Async<std::net::TcpStream>> for TcpStream {
    fn from(stream: Async<std::net::TcpStream>) -> Self {
        Self::from(Arc::new(stream))
    }
}

impl From<Arc<Async<std::net::TcpStream>>> for TcpStream {
    /// Takes the socket out of async-io's reactor when nothing else shares it; a shared one
    /// stays with async-io.
    fn from(stream: Arc<Async<std::net::TcpStream>>) -> Self {
        let io = match Arc::try_unwrap(stream) {
            Err(shared) => Io::Async(AsyncSocket::new(shared)),
            // `into_inner` leaves the socket non-blocking.
            Ok(owned) => match owned.into_inner().and_then(Self::from_nonblocking) {
                Ok(stream) => return stream,
                Err(error) => Io::Failed(error.kind()),
            },
        };
        Self { io }
    }
}

impl TryFrom<std::net::TcpStream> for TcpStream {
    type Error = io::Error;

    /// Registers a connected standard-library stream (and makes it non-blocking).
    fn try_from(stream: std::net::TcpStream) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Self::from_nonblocking(stream)
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Edge(socket) => socket.poll_read(cx, buf),
            Io::Async(socket) => socket.poll_read(cx, buf),
            Io::Failed(kind) => Poll::Ready(Err((*kind).into())),
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
        match &mut self.get_mut().io {
            Io::Edge(socket) => socket.poll_write(cx, bufs),
            Io::Async(socket) => socket.poll_write(cx, bufs),
            Io::Failed(kind) => Poll::Ready(Err((*kind).into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the socket: nothing is buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.std().and_then(|tcp| tcp.shutdown(Shutdown::Write)))
    }
}

/// A socket in the edge-triggered set.
#[derive(Debug)]
struct EdgeSocket {
    tcp: std::net::TcpStream,
    registration: Arc<Registration>,
}

impl EdgeSocket {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let len = buf.len();
        // Short: the kernel had no more. Zero is end of stream (or an empty buffer).
        self.poll_op(Direction::Read, cx, |n| n != 0 && n < len, || (&self.tcp).read(buf))
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|buf| buf.len()).sum();
        self.poll_op(Direction::Write, cx, |n| n < len, || write_to(&self.tcp, bufs))
    }

    /// Runs `op` while `direction` is ready; a result that `short` calls short, or "would block",
    /// means the kernel has no more for now, so the next attempt waits for an event.
    fn poll_op(
        &self,
        direction: Direction,
        cx: &mut Context<'_>,
        short: impl Fn(usize) -> bool,
        mut op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        for _ in 0..MAX_ATTEMPTS {
            let tick = ready!(self.registration.poll_ready(direction, cx));
            match op() {
                Ok(n) => {
                    if short(n) {
                        self.registration.clear_ready(direction, tick);
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.registration.clear_ready(direction, tick);
                }
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for EdgeSocket {
    fn drop(&mut self) {
        // Out of the set before the descriptor closes (and its number is reused).
        self.registration.deregister(&self.tcp);
    }
}

/// A socket left with async-io.
#[derive(Debug)]
struct AsyncSocket {
    inner: Arc<Async<std::net::TcpStream>>,
    /// The last read came back short: wait for readiness before reading again.
    read_drained: bool,
    /// The last write was taken only in part: wait for room before writing again.
    write_full: bool,
}

impl AsyncSocket {
    fn new(inner: Arc<Async<std::net::TcpStream>>) -> Self {
        Self {
            inner,
            read_drained: false,
            write_full: false,
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        // Bounded: each pass either returns or waited for a readiness event first.
        loop {
            if self.read_drained {
                ready!(self.inner.poll_readable(cx))?;
                self.read_drained = false;
            }
            match self.inner.get_ref().read(buf) {
                Ok(n) => {
                    self.read_drained = n != 0 && n < buf.len();
                    return Poll::Ready(Ok(n));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.read_drained = true,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        loop {
            if self.write_full {
                ready!(self.inner.poll_writable(cx))?;
                self.write_full = false;
            }
            match write_to(self.inner.get_ref(), bufs) {
                Ok(n) => {
                    self.write_full = n < bufs.iter().map(|buf| buf.len()).sum();
                    return Poll::Ready(Ok(n));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.write_full = true,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

/// One buffer goes out with `send`, not `writev`: the kernel's shorter path.
fn write_to(mut tcp: &std::net::TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    match bufs {
        [buf] => tcp.write(buf),
        _ => tcp.write_vectored(bufs),
    }
}
