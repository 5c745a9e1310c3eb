//! The shared conformance suite (wsengine-driver's `conformance` module) on tokio.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use wsengine_driver::conformance::Harness;
use wsengine_tokio::{ClientRequest, ConnectOptions, Error, MaybeTlsStream, Response, TokioIo, TokioTimer, WebSocket};

struct Tokio;

impl Harness for Tokio {
    type Stream = TokioIo<TcpStream>;
    type TlsStream = TokioIo<tokio_rustls::server::TlsStream<TcpStream>>;
    type Client = TokioIo<MaybeTlsStream>;
    type Timer = TokioTimer;
    type Listener = TcpListener;

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

    async fn listen() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    async fn accept(listener: &TcpListener) -> Self::Stream {
        TokioIo::new(listener.accept().await.unwrap().0)
    }

    async fn accept_tls(listener: &TcpListener, config: Arc<tokio_rustls::rustls::ServerConfig>) -> Self::TlsStream {
        let tcp = listener.accept().await.unwrap().0;
        TokioIo::new(tokio_rustls::TlsAcceptor::from(config).accept(tcp).await.unwrap())
    }

    async fn tcp_connect(port: u16) -> Self::Stream {
        TokioIo::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap())
    }

    async fn connect(request: ClientRequest, options: ConnectOptions) -> Result<(WebSocket, Response), Error> {
        wsengine_tokio::connect_with(&request, &options).await
    }
}

wsengine_driver::conformance_tests!(Tokio);

/// A server keeps writers in maps shared by tasks: they must be `Send + Sync`.
#[test]
fn writer_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<wsengine_tokio::ServerWriter>();
    check::<wsengine_tokio::Writer>();
    check::<wsengine_tokio::ServerReader>();
}
