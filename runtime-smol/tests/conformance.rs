//! The shared conformance suite (wsengine-driver's `conformance` module) on smol, over the
//! server stream (`wsengine_smol::TcpStream`, edge-triggered) on both ends of raw connections.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use smol::net::TcpListener;
use wsengine_driver::conformance::Harness;
use wsengine_smol::{ClientRequest, ConnectOptions, Error, MaybeTlsStream, Response, SmolTimer, TcpStream, WebSocket};

struct Smol;

impl Harness for Smol {
    type Stream = TcpStream;
    type TlsStream = futures_rustls::server::TlsStream<TcpStream>;
    type Client = MaybeTlsStream;
    type Timer = SmolTimer;
    type Listener = TcpListener;

    fn block_on<F: Future>(future: F) -> F::Output {
        smol::block_on(future)
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) {
        smol::spawn(future).detach();
    }

    async fn sleep(duration: Duration) {
        smol::Timer::after(duration).await;
    }

    async fn listen() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    async fn accept(listener: &TcpListener) -> TcpStream {
        TcpStream::from(listener.accept().await.unwrap().0)
    }

    async fn accept_tls(listener: &TcpListener, config: Arc<futures_rustls::rustls::ServerConfig>) -> Self::TlsStream {
        let tcp = TcpStream::from(listener.accept().await.unwrap().0);
        futures_rustls::TlsAcceptor::from(config).accept(tcp).await.unwrap()
    }

    async fn tcp_connect(port: u16) -> TcpStream {
        TcpStream::from(smol::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap())
    }

    async fn connect(request: ClientRequest, options: ConnectOptions) -> Result<(WebSocket, Response), Error> {
        wsengine_smol::connect_with(&request, &options).await
    }
}

wsengine_driver::conformance_tests!(Smol);

/// A server keeps writers in maps shared by tasks: they must be `Send + Sync`.
#[test]
fn writer_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<wsengine_smol::ServerWriter>();
    check::<wsengine_smol::Writer>();
    check::<wsengine_smol::ServerReader>();
}
