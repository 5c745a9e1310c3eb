//! The two runtimes behind one trait, so every test body runs on both.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use wsengine_driver::Timer;
use wsengine_driver::futures_io::{AsyncRead, AsyncWrite};

pub trait Rt: 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    type Timer: Timer;
    type Listener: Send + Sync + 'static;

    fn block_on<F: Future>(future: F) -> F::Output;
    fn spawn<F: Future<Output = ()> + Send + 'static>(future: F);
    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send;
    fn listen() -> impl Future<Output = (Self::Listener, SocketAddr)>;
    fn accept(listener: &Self::Listener) -> impl Future<Output = (Self::Stream, SocketAddr)> + Send;
    /// A TCP connection to `addr` from `127.0.0.<source>`.
    fn connect_from(source: u8, addr: SocketAddr) -> Self::Stream;
    /// A TCP connection with a small receive buffer, so a reader that stops stalls soon.
    fn connect_small(addr: SocketAddr) -> Self::Stream;
}

/// A connected std socket from 127.0.0.`source` (bound before connecting).
fn std_connect_from(source: u8, addr: SocketAddr) -> std::net::TcpStream {
    std_connect(source, addr, None)
}

fn std_connect(source: u8, addr: SocketAddr, recv_buffer: Option<usize>) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let local = SocketAddr::from((Ipv4Addr::new(127, 0, 0, source), 0));
    socket.bind(&local.into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.set_nonblocking(true).unwrap();
    socket.into()
}

pub struct Tokio;

impl Rt for Tokio {
    type Stream = wsengine_tokio::TokioIo<tokio::net::TcpStream>;
    type Timer = wsengine_tokio::TokioTimer;
    type Listener = tokio::net::TcpListener;

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) {
        tokio::spawn(future);
    }

    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }

    async fn listen() -> (Self::Listener, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    async fn accept(listener: &Self::Listener) -> (Self::Stream, SocketAddr) {
        let (stream, peer) = listener.accept().await.unwrap();
        (wsengine_tokio::TokioIo::new(stream), peer)
    }

    fn connect_from(source: u8, addr: SocketAddr) -> Self::Stream {
        let stream = tokio::net::TcpStream::from_std(std_connect_from(source, addr)).unwrap();
        wsengine_tokio::TokioIo::new(stream)
    }

    fn connect_small(addr: SocketAddr) -> Self::Stream {
        let stream = tokio::net::TcpStream::from_std(std_connect(1, addr, Some(4096))).unwrap();
        wsengine_tokio::TokioIo::new(stream)
    }
}

pub struct Smol;

impl Rt for Smol {
    type Stream = async_net::TcpStream;
    type Timer = wsengine_smol::SmolTimer;
    type Listener = async_net::TcpListener;

    fn block_on<F: Future>(future: F) -> F::Output {
        // Two executor threads besides the test's, like the tokio runtime.
        static EXECUTOR: std::sync::OnceLock<()> = std::sync::OnceLock::new();
        EXECUTOR.get_or_init(|| {
            for _ in 0..2 {
                std::thread::spawn(|| smol::block_on(GLOBAL.run(std::future::pending::<()>())));
            }
        });
        smol::block_on(GLOBAL.run(future))
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) {
        GLOBAL.spawn(future).detach();
    }

    async fn sleep(duration: Duration) {
        smol::Timer::after(duration).await;
    }

    async fn listen() -> (Self::Listener, SocketAddr) {
        let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    async fn accept(listener: &Self::Listener) -> (Self::Stream, SocketAddr) {
        listener.accept().await.unwrap()
    }

    fn connect_from(source: u8, addr: SocketAddr) -> Self::Stream {
        async_net::TcpStream::try_from(std_connect_from(source, addr)).unwrap()
    }

    fn connect_small(addr: SocketAddr) -> Self::Stream {
        async_net::TcpStream::try_from(std_connect(1, addr, Some(4096))).unwrap()
    }
}

static GLOBAL: smol::Executor<'static> = smol::Executor::new();
