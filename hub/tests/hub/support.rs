//! A hub server on a runtime, and test clients.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{Either, select};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use serde_json::Value;
use wsengine::{ClientRequest, CloseInfo, Config, Message};
use wsengine_driver::{Error, WebSocket};
use wsengine_hub::{CodecId, Hub};

use crate::rt::Rt;

/// `future`, or a panic naming `what` after `secs` seconds.
pub async fn within<R: Rt, F: Future>(secs: u64, what: &str, future: F) -> F::Output {
    match select(pin!(future), pin!(R::sleep(Duration::from_secs(secs)))).await {
        Either::Left((output, _)) => output,
        Either::Right(_) => panic!("timed out: {what}"),
    }
}

/// Polls `check` every 10 ms until it holds, for at most `secs` seconds.
pub async fn eventually<R: Rt>(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..secs * 100 {
        if check() {
            return;
        }
        R::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

pub fn codec_by_path(request: &wsengine::Request) -> CodecId {
    if request.path().starts_with("/tank") {
        CodecId::TANK
    } else if request.path().starts_with("/json") {
        CodecId::JSON
    } else {
        CodecId::NATIVE
    }
}

/// Serves `hub` on a fresh port of 127.0.0.1.
pub async fn serve<R: Rt>(hub: &Hub) -> SocketAddr {
    let (listener, addr) = R::listen().await;
    let hub = hub.clone();
    R::spawn(async move {
        loop {
            let (stream, peer) = R::accept(&listener).await;
            let hub = hub.clone();
            R::spawn(async move {
                let _ = hub.accept::<_, R::Timer>(stream, Some(peer), codec_by_path).await;
            });
        }
    });
    addr
}

pub struct Client<R: Rt> {
    pub ws: WebSocket<R::Stream, R::Timer>,
}

pub fn client_config() -> Arc<Config> {
    let mut config = Config::default();
    config.ping_interval = None;
    Arc::new(config)
}

impl<R: Rt> Client<R> {
    pub async fn connect(addr: SocketAddr, path: &str) -> Self {
        Self::try_connect(1, addr, path, &[]).await.expect("connect")
    }

    pub async fn try_connect(
        source: u8,
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, Error> {
        let stream = R::connect_from(source, addr);
        let mut request = ClientRequest::new(format!("ws://{addr}{path}").as_str()).unwrap();
        for (name, value) in headers {
            request = request.header(*name, *value).unwrap();
        }
        let (ws, _) = within::<R, _>(
            10,
            "handshake",
            wsengine_driver::client::<_, R::Timer>(stream, &request, client_config()),
        )
        .await?;
        Ok(Self { ws })
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(text).await.expect("send");
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send(&value.to_string()).await;
    }

    pub async fn recv(&mut self) -> Message {
        within::<R, _>(10, "recv", self.ws.recv()).await.expect("recv")
    }

    pub async fn recv_text(&mut self) -> String {
        match self.recv().await {
            Message::Text(text) => text.as_str().to_owned(),
            other => panic!("binary: {other:?}"),
        }
    }

    pub async fn recv_json(&mut self) -> Value {
        let text = self.recv_text().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// The next message whose `type` is `kind`, skipping others (at most 10 000).
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        for _ in 0..10_000 {
            let value = self.recv_json().await;
            if value["type"] == kind {
                return value;
            }
        }
        panic!("no {kind}");
    }

    /// Reads until the connection closes; returns the messages it got and how it closed.
    pub async fn drain_until_close(&mut self) -> (Vec<Message>, CloseInfo) {
        let mut messages = Vec::new();
        loop {
            match within::<R, _>(20, "close", self.ws.recv()).await {
                Ok(message) => messages.push(message),
                Err(Error::Closed(info)) => return (messages, info),
                Err(other) => panic!("{other:?}"),
            }
        }
    }

    /// Checks that nothing arrives before the answer to a ping with `reference`.
    pub async fn nothing_before_pong(&mut self, reference: &str) {
        self.send_json(serde_json::json!({"action":"ping","ref":reference}))
            .await;
        let value = self.recv_json().await;
        assert_eq!(value, serde_json::json!({"type":"pong","ref":reference}));
    }
}

/// A raw upgrade request from 127.0.0.`source`; returns the whole HTTP response head.
pub async fn raw_upgrade<R: Rt>(source: u8, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> String {
    let mut stream = R::connect_from(source, addr);
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    within::<R, _>(10, "response", async {
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
            if response.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    String::from_utf8_lossy(&response).into_owned()
}

pub fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"))
}
