//! The conformance suite shared by the runtime crates: the same test bodies, instantiated once
//! per runtime with [`conformance_tests!`](crate::conformance_tests), plus the echo check and
//! the Autobahn client loop their examples use. Hidden: not part of the public API.
#![allow(clippy::result_large_err, clippy::type_complexity)] // test code; `Reject` is returned by value on purpose

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use futures_util::future::{Either, select};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use wsengine::{
    Accept, ClientRequest, CloseCause, CloseCode, Config, HandshakeError, Message, MessageKind, Reject, Response,
};

use crate::{ConnectOptions, Error, Incoming, Timer, TrySendError, WebSocket};

mod deflate;
mod examples;
mod liveness;
pub use deflate::*;
pub use examples::{autobahn_client, check_echo};
pub use liveness::*;

/// What a runtime provides to run the suite.
pub trait Harness: 'static {
    /// A TCP stream, seen through `futures_io`.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A server-side TLS stream.
    type TlsStream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The stream of the runtime's `connect` (plain or TLS).
    type Client: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The runtime's timer.
    type Timer: Timer;
    /// A listening socket.
    type Listener: Send + Sync + 'static;

    /// Runs a future to completion.
    fn block_on<F: Future>(future: F) -> F::Output;
    /// Runs a future in the background.
    fn spawn<F: Future<Output = ()> + Send + 'static>(future: F);
    /// Waits.
    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send;
    /// Listens on 127.0.0.1 at a free port.
    fn listen() -> impl Future<Output = (Self::Listener, u16)>;
    /// Accepts a TCP connection.
    fn accept(listener: &Self::Listener) -> impl Future<Output = Self::Stream> + Send;
    /// Accepts a TCP connection and runs the server side of TLS on it.
    fn accept_tls(
        listener: &Self::Listener,
        config: Arc<rustls::ServerConfig>,
    ) -> impl Future<Output = Self::TlsStream> + Send;
    /// Connects TCP to 127.0.0.1:port.
    fn tcp_connect(port: u16) -> impl Future<Output = Self::Stream>;
    /// The runtime's client `connect_with`.
    fn connect(
        request: ClientRequest,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<(WebSocket<Self::Client, Self::Timer>, Response), Error>>;
}

/// Instantiates every conformance test for a [`Harness`].
#[macro_export]
macro_rules! conformance_tests {
    ($harness:ty) => {
        $crate::conformance_tests!(@tests $harness,
            accept_choose_subprotocol_and_echo,
            reject_with_status_and_body,
            malformed_requests_get_http_errors,
            trickling_request_times_out,
            fragmented_and_large_messages,
            ping_is_answered_and_pong_delivered,
            dead_peer_is_detected_by_heartbeat,
            close_codes_both_ways,
            graceful_shutdown_going_away,
            eof_without_close_is_abnormal,
            half_close_after_close_frame,
            protocol_violation_closes_with_1002,
            split_halves_under_concurrent_load,
            recv_cancelled_mid_message_loses_nothing,
            backpressure_reports_full_queue,
            close_completes_when_peer_stops_reading,
            stream_and_sink,
            tls_with_custom_root,
            connect_failures_are_errors,
            deflate_negotiated_end_to_end,
            writer_works_while_reader_is_idle,
            parked_writers_wake_when_the_connection_ends,
            abort_ends_every_half,
            slow_reader_is_not_declared_dead,
            stuck_peer_is_declared_dead_while_we_send,
            publisher_never_waits_for_a_busy_connection,
            handshake_timeout_covers_the_decision,
            peer_address_after_accept,
            close_times_out_while_peer_floods,
        );
    };
    (@tests $harness:ty, $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                <$harness as $crate::conformance::Harness>::block_on($crate::conformance::$name::<$harness>());
            }
        )*
    };
}

type Ws<H> = WebSocket<<H as Harness>::Stream, <H as Harness>::Timer>;

/// Fails the test if `future` takes longer than `secs` (a hang guard, not a timing assertion).
async fn within<H: Harness, F: Future>(secs: u64, what: &str, future: F) -> F::Output {
    match select(pin!(future), pin!(H::sleep(Duration::from_secs(secs)))).await {
        Either::Left((output, _)) => output,
        Either::Right(_) => panic!("{what}: still not done after {secs} s"),
    }
}

fn quick_config() -> Config {
    let mut config = Config::default();
    config.close_timeout = Duration::from_secs(2);
    config
}

/// A connected client and server over loopback TCP, with `server_config`.
async fn pair<H: Harness>(client_config: Config, server_config: Config) -> (Ws<H>, Ws<H>) {
    let (listener, port) = H::listen().await;
    let server = async {
        let stream = H::accept(&listener).await;
        crate::accept::<_, H::Timer>(stream, server_config)
            .await
            .expect("server handshake")
    };
    let client = async {
        let stream = H::tcp_connect(port).await;
        let request = ClientRequest::new(format!("ws://127.0.0.1:{port}/test").as_str()).unwrap();
        crate::client::<_, H::Timer>(stream, &request, client_config)
            .await
            .expect("client handshake")
            .0
    };
    let (client, server) = futures_util::future::join(client, server).await;
    (client, server)
}

/// Echoes every message until the connection ends; returns how it ended.
async fn echo<S: AsyncRead + AsyncWrite + Unpin, T: Timer>(mut ws: WebSocket<S, T>) -> Error {
    loop {
        match ws.recv().await {
            Ok(message) => {
                if let Err(error) = ws.send(message).await {
                    return error;
                }
            }
            Err(error) => return error,
        }
    }
}

fn closed(error: Error) -> wsengine::CloseInfo {
    match error {
        Error::Closed(info) => info,
        other => panic!("expected a close, got {other:?}"),
    }
}

// ----- Handshakes -----

pub async fn accept_choose_subprotocol_and_echo<H: Harness>() {
    let (listener, port) = H::listen().await;
    let server = async {
        let stream = H::accept(&listener).await;
        let ws = crate::accept_with::<_, H::Timer, _>(stream, quick_config(), |request| {
            assert_eq!(request.path(), "/chat");
            assert_eq!(request.query(), Some("room=1"));
            assert_eq!(request.headers()["authorization"], "Bearer t0k3n");
            assert_eq!(request.protocols(), ["superchat", "chat"]);
            Ok(Accept::new().protocol("chat"))
        })
        .await
        .expect("accepted");
        assert_eq!(ws.protocol(), Some("chat"));
        echo(ws).await
    };
    let client = async {
        let stream = H::tcp_connect(port).await;
        let request = ClientRequest::new(format!("ws://127.0.0.1:{port}/chat?room=1").as_str())
            .unwrap()
            .protocol("superchat")
            .protocol("chat")
            .header("Authorization", "Bearer t0k3n")
            .unwrap();
        let (mut ws, response) = crate::client::<_, H::Timer>(stream, &request, quick_config())
            .await
            .unwrap();
        assert_eq!(response.protocol(), Some("chat"));
        assert_eq!(ws.protocol(), Some("chat"));
        ws.send("hello").await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), Message::from("hello"));
        ws.send(vec![0u8, 1, 2, 255]).await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), Message::from(vec![0u8, 1, 2, 255]));
        let info = ws.close(CloseCode::NORMAL, "done").await.unwrap();
        assert!(info.clean, "{info:?}");
    };
    let (_, server_end) = within::<H, _>(10, "echo", futures_util::future::join(client, server)).await;
    let info = closed(server_end);
    assert_eq!(
        (info.code, info.reason.as_str(), info.clean),
        (CloseCode::NORMAL, "done", true)
    );
    assert_eq!(info.cause, CloseCause::RemoteClose);
}

pub async fn reject_with_status_and_body<H: Harness>() {
    let (listener, port) = H::listen().await;
    let server = async {
        let stream = H::accept(&listener).await;
        crate::accept_with::<_, H::Timer, _>(stream, quick_config(), |_| {
            Err(Reject::new(http::StatusCode::FORBIDDEN).body("no entry"))
        })
        .await
        .map(|_| ())
        .expect_err("rejected")
    };
    let client = async {
        let mut stream = H::tcp_connect(port).await;
        stream.write_all(&upgrade_request("/", "13")).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8(response).unwrap()
    };
    let (response, error) = within::<H, _>(10, "reject", futures_util::future::join(client, server)).await;
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(response.ends_with("no entry"), "{response}");
    assert!(
        matches!(error, Error::Handshake(HandshakeError::Rejected(s)) if s == http::StatusCode::FORBIDDEN),
        "{error:?}"
    );

    // The client side of a rejection is an error with the status.
    let (listener, port) = H::listen().await;
    let server = async {
        let stream = H::accept(&listener).await;
        let _ = crate::accept_with::<_, H::Timer, _>(stream, quick_config(), |_| {
            Err(Reject::new(http::StatusCode::UNAUTHORIZED))
        })
        .await;
    };
    let client = async {
        let stream = H::tcp_connect(port).await;
        let request = ClientRequest::new(format!("ws://127.0.0.1:{port}/").as_str()).unwrap();
        crate::client::<_, H::Timer>(stream, &request, quick_config())
            .await
            .map(|_| ())
            .unwrap_err()
    };
    let (error, ()) = within::<H, _>(10, "client of reject", futures_util::future::join(client, server)).await;
    assert!(
        matches!(error, Error::Handshake(HandshakeError::UnexpectedStatus(s)) if s == http::StatusCode::UNAUTHORIZED),
        "{error:?}"
    );
}

fn upgrade_request(path: &str, version: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    )
    .into_bytes()
}

/// Sends `request` raw and returns the server's whole response and accept's error.
async fn raw_exchange<H: Harness>(request: Vec<u8>, config: Config) -> (String, Error) {
    raw_exchange_with::<H, _, _>(request, config, |pending| pending.accept(Accept::new())).await
}

/// Like [`raw_exchange`], with the server's decision made by `decide` on the pending upgrade.
async fn raw_exchange_with<H, D, F>(request: Vec<u8>, config: Config, decide: D) -> (String, Error)
where
    H: Harness,
    D: FnOnce(crate::PendingUpgrade<H::Stream, H::Timer>) -> F,
    F: Future<Output = Result<WebSocket<H::Stream, H::Timer>, Error>>,
{
    let (listener, port) = H::listen().await;
    let server = async {
        let stream = H::accept(&listener).await;
        match crate::accept_request::<_, H::Timer>(stream, config).await {
            Ok(pending) => decide(pending).await.map(|_| ()).expect_err("handshake must fail"),
            Err(error) => error,
        }
    };
    let client = async {
        let mut stream = H::tcp_connect(port).await;
        stream.write_all(&request).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).into_owned()
    };
    within::<H, _>(10, "raw exchange", futures_util::future::join(client, server)).await
}

pub async fn malformed_requests_get_http_errors<H: Harness>() {
    let (response, error) = raw_exchange::<H>(upgrade_request("/", "8"), quick_config()).await;
    assert!(response.starts_with("HTTP/1.1 426"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("sec-websocket-version: 13\r\n"),
        "{response}"
    );
    assert!(
        matches!(error, Error::Handshake(HandshakeError::UnsupportedVersion(_))),
        "{error:?}"
    );

    let plain = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let (response, _) = raw_exchange::<H>(plain, quick_config()).await;
    assert!(response.starts_with("HTTP/1.1 426"), "{response}");

    let post = b"POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n".to_vec();
    let (response, _) = raw_exchange::<H>(post, quick_config()).await;
    assert!(response.starts_with("HTTP/1.1 405"), "{response}");

    let mut config = quick_config();
    config.max_handshake_size = 512;
    let mut huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 2048));
    huge.extend_from_slice(b"\r\n\r\n");
    let (response, error) = raw_exchange::<H>(huge, config).await;
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    assert!(
        matches!(error, Error::Handshake(HandshakeError::RequestTooLarge)),
        "{error:?}"
    );
}

pub async fn trickling_request_times_out<H: Harness>() {
    let (listener, port) = H::listen().await;
    let mut config = quick_config();
    config.handshake_timeout = Some(Duration::from_millis(300));
    let server = async {
        let stream = H::accept(&listener).await;
        crate::accept::<_, H::Timer>(stream, config)
            .await
            .map(|_| ())
            .unwrap_err()
    };
    let client = async {
        let mut stream = H::tcp_connect(port).await;
        // One byte every 100 ms: each arrives well within any per-read timeout, but the
        // whole request never completes.
        let request = upgrade_request("/", "13");
        let mut response = Vec::new();
        for byte in request.iter().take(20) {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            H::sleep(Duration::from_millis(100)).await;
        }
        let _ = stream.read_to_end(&mut response).await;
        String::from_utf8_lossy(&response).into_owned()
    };
    let (response, error) = within::<H, _>(10, "trickle", futures_util::future::join(client, server)).await;
    assert!(matches!(error, Error::Handshake(HandshakeError::Timeout)), "{error:?}");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
}

// ----- Messages -----

pub async fn fragmented_and_large_messages<H: Harness>() {
    let (mut client, server) = pair::<H>(quick_config(), quick_config()).await;
    H::spawn(async move {
        echo(server).await;
    });
    within::<H, _>(30, "fragments", async {
        // "héllo wörld" split inside the two-byte characters.
        let text = "héllo wörld".as_bytes();
        client
            .send_fragment(MessageKind::Text, Bytes::copy_from_slice(&text[..2]), false)
            .await
            .unwrap();
        client.ping("in between").await.unwrap();
        client
            .send_fragment(MessageKind::Text, Bytes::copy_from_slice(&text[2..8]), false)
            .await
            .unwrap();
        client
            .send_fragment(MessageKind::Text, Bytes::copy_from_slice(&text[8..]), true)
            .await
            .unwrap();
        assert_eq!(client.recv().await.unwrap(), Message::from("héllo wörld"));

        let big: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
        client.send(big.clone()).await.unwrap();
        client.send("after").await.unwrap();
        assert_eq!(client.recv().await.unwrap(), Message::from(big));
        assert_eq!(client.recv().await.unwrap(), Message::from("after"));
        for size in [0usize, 1, 125, 126, 65_535, 65_536] {
            client.send(vec![7u8; size]).await.unwrap();
            assert_eq!(client.recv().await.unwrap().len(), size);
        }
        client.close(CloseCode::NORMAL, "").await.unwrap();
    })
    .await;
}

pub async fn ping_is_answered_and_pong_delivered<H: Harness>() {
    let (mut client, server) = pair::<H>(quick_config(), quick_config()).await;
    H::spawn(async move {
        echo(server).await;
    });
    within::<H, _>(10, "ping", async {
        client.ping("are you there").await.unwrap();
        match client.recv_incoming().await.unwrap() {
            Incoming::Pong(payload) => assert_eq!(payload, "are you there"),
            other => panic!("unexpected {other:?}"),
        }
        client.close(CloseCode::NORMAL, "").await.unwrap();
    })
    .await;
}

pub async fn dead_peer_is_detected_by_heartbeat<H: Harness>() {
    let (listener, port) = H::listen().await;
    let mut config = quick_config();
    config.ping_interval = Some(Duration::from_millis(200));
    config.pong_timeout = Duration::from_millis(200);
    let server = async {
        let stream = H::accept(&listener).await;
        let mut ws = crate::accept::<_, H::Timer>(stream, config).await.unwrap();
        ws.recv().await.unwrap_err()
    };
    let client = async {
        // A peer that completes the handshake and then never answers anything.
        let mut stream = H::tcp_connect(port).await;
        stream.write_all(&upgrade_request("/", "13")).await.unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        response
    };
    let (response, error) = within::<H, _>(10, "heartbeat", futures_util::future::join(client, server)).await;
    let info = closed(error);
    assert_eq!(info.cause, CloseCause::PongTimeout, "{info:?}");
    assert!(!info.clean);
    // The silent peer saw the 101, at least one ping (0x89) and then the end of the stream.
    assert!(response.starts_with(b"HTTP/1.1 101"));
    assert!(response.contains(&0x89), "no ping was sent");
}

pub async fn close_codes_both_ways<H: Harness>() {
    // Client closes with an application code.
    let (mut client, server) = pair::<H>(quick_config(), quick_config()).await;
    let server = async { echo(server).await };
    let client_side = async { client.close(CloseCode(4000), "bye now").await.unwrap() };
    let (client_info, server_end) =
        within::<H, _>(10, "client close", futures_util::future::join(client_side, server)).await;
    let server_info = closed(server_end);
    assert_eq!(
        (server_info.code, server_info.reason.as_str()),
        (CloseCode(4000), "bye now")
    );
    assert_eq!(server_info.cause, CloseCause::RemoteClose);
    assert!(server_info.clean && client_info.clean);
    assert_eq!(client_info.cause, CloseCause::LocalClose);

    // Server closes; the client's recv reports the code.
    let (mut client, mut server) = pair::<H>(quick_config(), quick_config()).await;
    let server_side = async { server.close(CloseCode::POLICY_VIOLATION, "rate limit").await.unwrap() };
    let client_side = async { closed(client.recv().await.unwrap_err()) };
    let (server_info, client_info) =
        within::<H, _>(10, "server close", futures_util::future::join(server_side, client_side)).await;
    assert_eq!(
        (client_info.code, client_info.reason.as_str()),
        (CloseCode::POLICY_VIOLATION, "rate limit")
    );
    assert!(client_info.clean && server_info.clean);
    // After the end, calls fail fast.
    assert!(matches!(client.recv().await, Err(Error::AlreadyClosed)));
    assert!(matches!(client.send("late").await, Err(Error::AlreadyClosed)));
    assert_eq!(client.close_info().map(|i| i.code), Some(CloseCode::POLICY_VIOLATION));
    // Invalid codes are the caller's mistake.
    let (mut client, _server) = pair::<H>(quick_config(), quick_config()).await;
    assert!(matches!(client.close(CloseCode(1005), "").await, Err(Error::Misuse(_))));
}

pub async fn graceful_shutdown_going_away<H: Harness>() {
    let (mut client, server) = pair::<H>(quick_config(), quick_config()).await;
    client.send("in flight").await.unwrap();
    let (mut reader, writer) = server.split();
    let server_side = async {
        // The writer closes while the reader keeps receiving: the message the client sent
        // before the close still reaches it, then the clean end.
        let (info, (message, end)) =
            futures_util::future::join(writer.close(CloseCode::GOING_AWAY, "restarting"), async {
                (reader.recv().await, reader.recv().await)
            })
            .await;
        let info = info.unwrap();
        assert!(info.clean, "{info:?}");
        assert_eq!(message.unwrap(), Message::from("in flight"));
        assert_eq!(closed(end.unwrap_err()), info);
    };
    let client_side = async { closed(client.recv().await.unwrap_err()) };
    let ((), info) = within::<H, _>(10, "going away", futures_util::future::join(server_side, client_side)).await;
    assert_eq!(info.code, CloseCode::GOING_AWAY);
    assert_eq!(info.cause, CloseCause::RemoteClose);
}

pub async fn eof_without_close_is_abnormal<H: Harness>() {
    // The peer completes the handshake and goes away without a close frame.
    let (error, _) = raw_peer::<H>(&[], true).await;
    let info = closed(error);
    assert_eq!(
        (info.code, info.cause.clone(), info.clean),
        (CloseCode::ABNORMAL, CloseCause::Eof, false)
    );
}

/// A raw peer: completes the handshake, writes `frames`, optionally half-closes, and reads
/// everything the server sends; returns how the server's `recv` ended and those bytes.
async fn raw_peer<H: Harness>(frames: &[u8], half_close: bool) -> (Error, Vec<u8>) {
    let (listener, port) = H::listen().await;
    let server = async {
        let stream = H::accept(&listener).await;
        let mut ws = crate::accept::<_, H::Timer>(stream, quick_config()).await.unwrap();
        ws.recv().await.unwrap_err()
    };
    let client = async {
        let mut stream = H::tcp_connect(port).await;
        stream.write_all(&upgrade_request("/", "13")).await.unwrap();
        stream.write_all(frames).await.unwrap();
        if half_close {
            stream.close().await.unwrap();
        }
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        rest
    };
    within::<H, _>(10, "raw peer", futures_util::future::join(server, client)).await
}

pub async fn half_close_after_close_frame<H: Harness>() {
    // The client sends its close frame (1000, masked with a zero key) and shuts its write side
    // at once (a half-close): the server still answers with its close frame and closes TCP first.
    let (error, rest) = raw_peer::<H>(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8], true).await;
    let info = closed(error);
    assert_eq!((info.code, info.clean), (CloseCode::NORMAL, true), "{info:?}");
    assert!(
        rest.ends_with(&[0x88, 0x02, 0x03, 0xe8]),
        "server's close frame missing: {rest:?}"
    );
}

pub async fn protocol_violation_closes_with_1002<H: Harness>() {
    // An unmasked text frame from a client (§5.1).
    let (error, rest) = raw_peer::<H>(&[0x81, 0x02, b'h', b'i'], false).await;
    let info = closed(error);
    assert_eq!(info.code, CloseCode::PROTOCOL_ERROR);
    assert!(matches!(info.cause, CloseCause::Protocol(_)), "{info:?}");
    // A close frame (0x88, short length) whose payload starts with 1002 (0x03ea), then a reason.
    let close_1002 = rest
        .windows(4)
        .any(|w| w[0] == 0x88 && w[1] < 126 && w[2..] == [0x03, 0xea]);
    assert!(close_1002, "close frame with 1002 missing: {rest:?}");
}

// ----- Concurrency -----

pub async fn split_halves_under_concurrent_load<H: Harness>() {
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 300;
    let (client, server) = pair::<H>(quick_config(), quick_config()).await;
    // The server echoes through split halves: one task reads, another writes.
    let (mut server_reader, server_writer) = server.split();
    let (to_writer, mut from_reader) = futures_channel::mpsc::unbounded();
    H::spawn(async move {
        while let Ok(message) = server_reader.recv().await {
            if to_writer.unbounded_send(message).is_err() {
                break;
            }
        }
    });
    H::spawn(async move {
        use futures_util::StreamExt;
        while let Some(message) = from_reader.next().await {
            if server_writer.send(message).await.is_err() {
                break;
            }
        }
    });
    let (mut reader, writer) = client.split();
    within::<H, _>(60, "split load", async {
        let producers = (0..PRODUCERS).map(|p| {
            let writer = writer.clone();
            async move {
                for i in 0..PER_PRODUCER {
                    let size = (i * 37) % 3000;
                    let mut payload = format!("{p}:{i}:").into_bytes();
                    payload.resize(payload.len() + size, b'x');
                    writer.send(Message::Binary(payload.into())).await.unwrap();
                    if i % 50 == 0 {
                        writer.ping("p").await.unwrap();
                    }
                }
            }
        });
        let consumer = async {
            let mut next = [0usize; PRODUCERS];
            for _ in 0..PRODUCERS * PER_PRODUCER {
                let message = reader.recv().await.unwrap();
                let text = String::from_utf8_lossy(message.payload());
                let mut parts = text.splitn(3, ':');
                let p: usize = parts.next().unwrap().parse().unwrap();
                let i: usize = parts.next().unwrap().parse().unwrap();
                assert_eq!(i, next[p], "messages of producer {p} out of order");
                assert_eq!(parts.next().unwrap().len(), (i * 37) % 3000);
                next[p] += 1;
            }
        };
        futures_util::future::join(futures_util::future::join_all(producers), consumer).await;
        writer.close(CloseCode::NORMAL, "").await.unwrap();
        let info = closed(reader.recv().await.unwrap_err());
        assert!(info.clean, "{info:?}");
    })
    .await;
}

pub async fn recv_cancelled_mid_message_loses_nothing<H: Harness>() {
    let (mut client, mut server) = pair::<H>(quick_config(), quick_config()).await;
    within::<H, _>(10, "cancel", async {
        // The first half is sent while the server reads (the socket buffer may not hold it all).
        let first = Bytes::from(vec![1u8; 100_000]);
        let send_first = client.send_fragment(MessageKind::Binary, first, false);
        let sent = matches!(select(pin!(send_first), pin!(server.recv())).await, Either::Left(_));
        assert!(sent, "a recv completed before the message did");
        // The server's recv is dropped while half the message has arrived.
        let cancelled = matches!(
            select(pin!(server.recv()), pin!(H::sleep(Duration::from_millis(200)))).await,
            Either::Right(_)
        );
        assert!(cancelled, "the message is not complete yet");
        let finish = async {
            let last = Bytes::from(vec![2u8; 50_000]);
            client.send_fragment(MessageKind::Binary, last, true).await.unwrap();
        };
        let ((), message) = futures_util::future::join(finish, server.recv()).await;
        let message = message.unwrap();
        assert_eq!(message.len(), 150_000);
        assert!(message.payload()[..100_000].iter().all(|&b| b == 1));
        assert!(message.payload()[100_000..].iter().all(|&b| b == 2));
    })
    .await;
}

pub async fn backpressure_reports_full_queue<H: Harness>() {
    let (_client, mut server) = pair::<H>(quick_config(), quick_config()).await;
    // The client never reads: sooner or later the socket buffers fill and our queue with them.
    server.set_write_buffer_limit(256 * 1024);
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    within::<H, _>(20, "backpressure", async {
        let mut sent = 0usize;
        loop {
            match server.try_send(chunk.clone()) {
                Ok(()) => {
                    sent += 1;
                    // Give the queue a chance to drain into the socket.
                    let _ = select(pin!(server.flush()), pin!(H::sleep(Duration::from_millis(5)))).await;
                }
                Err(TrySendError::Full(message)) => {
                    assert_eq!(message.len(), chunk.len(), "the refused message comes back");
                    break;
                }
                Err(TrySendError::Error(e)) => panic!("{e}"),
            }
            assert!(sent < 100_000, "the queue never filled");
        }
        assert!(server.buffered_amount() >= 256 * 1024);
        // send() waits instead of failing.
        let waited = matches!(
            select(
                pin!(server.send(chunk.clone())),
                pin!(H::sleep(Duration::from_millis(200)))
            )
            .await,
            Either::Right(_)
        );
        assert!(waited, "send must wait on a full queue");
    })
    .await;
}

pub async fn close_completes_when_peer_stops_reading<H: Harness>() {
    let mut config = quick_config();
    config.close_timeout = Duration::from_millis(300);
    let (_client, mut server) = pair::<H>(quick_config(), config).await;
    server.set_write_buffer_limit(128 * 1024);
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    within::<H, _>(20, "close to a stuck peer", async {
        // Fill every buffer between us and the peer, which never reads.
        let mut full = 0;
        while full < 20 {
            match server.try_send(chunk.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => full += 1,
                Err(TrySendError::Error(e)) => panic!("{e}"),
            }
            let _ = select(pin!(server.flush()), pin!(H::sleep(Duration::from_millis(2)))).await;
        }
        // The close frame cannot leave; close() still ends, bounded by the close timeout.
        let info = server.close(CloseCode::GOING_AWAY, "").await.unwrap();
        assert_eq!(info.cause, CloseCause::CloseTimeout, "{info:?}");
        assert!(!info.clean);
    })
    .await;
}

pub async fn stream_and_sink<H: Harness>() {
    use futures_util::{SinkExt, StreamExt};
    let (mut client, server) = pair::<H>(quick_config(), quick_config()).await;
    H::spawn(async move {
        let (mut sink, mut stream) = futures_util::StreamExt::split(server);
        while let Some(Ok(message)) = stream.next().await {
            sink.send(message).await.unwrap();
        }
    });
    within::<H, _>(10, "stream/sink", async {
        SinkExt::send(&mut client, Message::from("one")).await.unwrap();
        SinkExt::send(&mut client, Message::from("two")).await.unwrap();
        assert_eq!(client.next().await.unwrap().unwrap(), Message::from("one"));
        assert_eq!(client.next().await.unwrap().unwrap(), Message::from("two"));
        SinkExt::<Message>::close(&mut client).await.unwrap();
        assert!(client.next().await.is_none(), "a clean close ends the stream");
        assert_eq!(client.close_info().map(|i| i.code), Some(CloseCode::NORMAL));
    })
    .await;
}

// ----- Client connect, TLS, compression -----

/// A TLS server configuration with a fresh self-signed certificate for `localhost`.
fn self_signed_localhost() -> (rustls::ServerConfig, rustls::pki_types::CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    (config, cert)
}

pub async fn tls_with_custom_root<H: Harness>() {
    let (server_config, cert_der) = self_signed_localhost();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let (listener, port) = H::listen().await;
    let server = async {
        let stream = H::accept_tls(&listener, Arc::new(server_config)).await;
        let ws = crate::accept::<_, H::Timer>(stream, quick_config()).await.unwrap();
        echo(ws).await
    };
    let client = async {
        let request = ClientRequest::new(format!("wss://localhost:{port}/secure").as_str()).unwrap();
        let options = ConnectOptions::new(quick_config()).tls(crate::tls::client_config(roots));
        let (mut ws, _) = H::connect(request, options).await.expect("wss connect");
        ws.send("over tls").await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), Message::from("over tls"));
        let big = vec![3u8; 1 << 20];
        ws.send(big.clone()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), Message::from(big));
        ws.close(CloseCode::NORMAL, "").await.unwrap()
    };
    let (info, _) = within::<H, _>(20, "tls", futures_util::future::join(client, server)).await;
    assert!(info.clean, "{info:?}");

    // The default roots do not trust a self-signed certificate.
    let (listener, port) = H::listen().await;
    let (server_config, _) = self_signed_localhost();
    H::spawn(async move {
        let _ = H::accept_tls(&listener, Arc::new(server_config)).await;
    });
    let request = ClientRequest::new(format!("wss://localhost:{port}/").as_str()).unwrap();
    let error = within::<H, _>(10, "untrusted", H::connect(request, ConnectOptions::default()))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(error, Error::Connect(ref m) if m.contains("TLS")), "{error:?}");
}

pub async fn connect_failures_are_errors<H: Harness>() {
    // Nothing listens on a port just released.
    let (listener, port) = H::listen().await;
    drop(listener);
    let request = ClientRequest::new(format!("ws://127.0.0.1:{port}/").as_str()).unwrap();
    let error = within::<H, _>(10, "refused", H::connect(request, ConnectOptions::default()))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(error, Error::Connect(_)), "{error:?}");

    // A server that accepts TCP but never answers the upgrade: the handshake timeout ends it.
    let (listener, port) = H::listen().await;
    H::spawn(async move {
        let _stream = H::accept(&listener).await;
        H::sleep(Duration::from_secs(5)).await;
    });
    let mut config = quick_config();
    config.handshake_timeout = Some(Duration::from_millis(300));
    let request = ClientRequest::new(format!("ws://127.0.0.1:{port}/").as_str()).unwrap();
    let error = within::<H, _>(10, "silent server", H::connect(request, ConnectOptions::new(config)))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(error, Error::Handshake(HandshakeError::Timeout)), "{error:?}");
}
