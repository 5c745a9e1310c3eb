//! A hub with the Pusher codec on one port and the HTTP API on another, on a tokio runtime of
//! its own; a raw WebSocket client; signed HTTP API requests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsengine::{ClientRequest, CloseInfo, Config, Message};
use wsengine_driver::{Error, WebSocket};
use wsengine_hub::pusher::sign::{hmac_hex, md5_hex};
use wsengine_hub::pusher::{Pusher, PusherApp, PusherConfig, Webhook};
use wsengine_hub::{CodecId, Hub, HubConfig};
use wsengine_tokio::{TokioIo, TokioTimer};

pub const APP_ID: &str = "1";
pub const KEY: &str = "app-key";
pub const SECRET: &str = "app-secret";
/// The key encrypted channels' shared secrets derive from (base64 of 32 bytes).
pub const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub struct Server {
    pub ws: SocketAddr,
    pub api: SocketAddr,
    pub hub: Hub,
    pub pusher: Pusher,
    pub webhooks: Arc<Mutex<Vec<Webhook>>>,
    pub rt: tokio::runtime::Runtime,
}

/// The test app: client events and user authentication on, webhooks to a URL nobody serves
/// (the sink only records them).
pub fn test_app() -> PusherApp {
    PusherApp::new(APP_ID, KEY, SECRET)
        .with_client_events(true)
        .with_user_authentication(true)
        .with_webhook("http://127.0.0.1:9/webhooks")
}

pub fn start(apps: Vec<PusherApp>) -> Server {
    start_with(apps, HubConfig::default())
}

pub fn start_with(apps: Vec<PusherApp>, config: HubConfig) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pusher = Pusher::new(PusherConfig::new(apps));
    let mut builder = Hub::builder().config(config);
    let codec = builder.add_codec(pusher.codec()).unwrap();
    let hub = builder.build();
    pusher.attach(&hub);
    let webhooks = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&webhooks);
    pusher.set_webhook_sink(move |webhook: Webhook| sink.lock().unwrap().push(webhook));
    let (ws_listener, api_listener) = rt.block_on(async {
        (
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        )
    });
    let ws = ws_listener.local_addr().unwrap();
    let api = api_listener.local_addr().unwrap();
    let accept_hub = hub.clone();
    rt.spawn(async move {
        loop {
            let Ok((stream, peer)) = ws_listener.accept().await else {
                return;
            };
            let hub = accept_hub.clone();
            tokio::spawn(async move {
                // Pusher on /app/<key>, tank on /tank, the native protocol elsewhere.
                let pick = move |request: &wsengine::Request| pick_codec(request, codec);
                let _ = hub
                    .accept::<_, TokioTimer>(TokioIo::new(stream), Some(peer), pick)
                    .await;
            });
        }
    });
    let api_pusher = pusher.clone();
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = api_listener.accept().await else {
                return;
            };
            tokio::spawn(http_connection(stream, api_pusher.clone()));
        }
    });
    Server {
        ws,
        api,
        hub,
        pusher,
        webhooks,
        rt,
    }
}

pub fn pick_codec(request: &wsengine::Request, pusher: CodecId) -> CodecId {
    if Pusher::is_websocket_path(request.path()) {
        pusher
    } else if request.path().starts_with("/tank") {
        CodecId::TANK
    } else {
        CodecId::NATIVE
    }
}

/// The test app's hub and Pusher served by smol on a thread of its own (WebSocket only).
pub fn start_smol(apps: Vec<PusherApp>) -> (SocketAddr, Hub, Pusher) {
    let pusher = Pusher::new(PusherConfig::new(apps));
    let mut builder = Hub::builder();
    let codec = builder.add_codec(pusher.codec()).unwrap();
    let hub = builder.build();
    pusher.attach(&hub);
    let listener = smol::block_on(async_net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = hub.clone();
    std::thread::spawn(move || {
        let executor = smol::LocalExecutor::new();
        smol::block_on(executor.run(async {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    return;
                };
                let hub = serving.clone();
                executor
                    .spawn(async move {
                        let pick = move |request: &wsengine::Request| pick_codec(request, codec);
                        let _ = hub
                            .accept::<_, wsengine_smol::SmolTimer>(stream, Some(peer), pick)
                            .await;
                    })
                    .detach();
            }
        }));
    });
    (addr, hub, pusher)
}

/// One HTTP/1.1 request per connection, answered by the sans-IO handler, then closed.
async fn http_connection(mut stream: tokio::net::TcpStream, pusher: Pusher) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > 64 << 10 {
            return;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (first.next().unwrap_or("GET"), first.next().unwrap_or("/"));
    let length: usize = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buf.len() < body_start + length && buf.len() < (1 << 20) {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = Bytes::copy_from_slice(buf.get(body_start..body_start + length).unwrap_or_default());
    let request = http::Request::builder().method(method).uri(target).body(body).unwrap();
    let response = pusher.handle(request);
    let mut out = format!(
        "HTTP/1.1 {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        response.status(),
        response.body().len()
    )
    .into_bytes();
    out.extend_from_slice(response.body());
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
}

/// A signed HTTP API request (as the server SDKs sign them) at time `timestamp`.
pub fn signed(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: &str,
    secret: &str,
    timestamp: u64,
) -> http::Request<Bytes> {
    let timestamp = timestamp.to_string();
    let md5 = md5_hex(body.as_bytes());
    let mut params: Vec<(&str, &str)> = vec![
        ("auth_key", KEY),
        ("auth_timestamp", &timestamp),
        ("auth_version", "1.0"),
    ];
    if !body.is_empty() {
        params.push(("body_md5", &md5));
    }
    params.extend_from_slice(query);
    params.sort();
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let query = query.join("&");
    let signature = hmac_hex(secret, &format!("{method}\n{path}\n{query}"));
    http::Request::builder()
        .method(method)
        .uri(format!("{path}?{query}&auth_signature={signature}"))
        .body(Bytes::from(body.to_owned()))
        .unwrap()
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The status and JSON body of a response.
pub fn answer(response: http::Response<Bytes>) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (status, body)
}

/// A raw WebSocket client.
pub struct Client {
    pub ws: WebSocket<TokioIo<tokio::net::TcpStream>, TokioTimer>,
}

impl Client {
    pub async fn connect(addr: SocketAddr, path: &str) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = ClientRequest::new(format!("ws://{addr}{path}").as_str()).unwrap();
        let mut config = Config::default();
        config.ping_interval = None;
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(10),
            wsengine_driver::client::<_, TokioTimer>(TokioIo::new(stream), &request, Arc::new(config)),
        )
        .await
        .expect("handshake timed out")
        .expect("handshake");
        Self { ws }
    }

    /// Connected to app `KEY`, past `connection_established`; returns the socket id too.
    pub async fn established(addr: SocketAddr) -> (Self, String) {
        let mut client = Self::connect(addr, &format!("/app/{KEY}?protocol=7&client=js&version=8.6.0")).await;
        let frame = client.recv_json().await;
        assert_eq!(frame["event"], "pusher:connection_established", "{frame}");
        let data: Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
        let socket_id = data["socket_id"].as_str().unwrap().to_owned();
        (client, socket_id)
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(text).await.expect("send");
    }

    pub async fn recv_text(&mut self) -> String {
        let message = tokio::time::timeout(Duration::from_secs(10), self.ws.recv())
            .await
            .expect("recv timed out")
            .expect("recv");
        match message {
            Message::Text(text) => text.as_str().to_owned(),
            other => panic!("binary: {other:?}"),
        }
    }

    pub async fn recv_json(&mut self) -> Value {
        let text = self.recv_text().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Reads until the close; returns the texts and the close.
    pub async fn until_close(&mut self) -> (Vec<String>, CloseInfo) {
        let mut texts = Vec::new();
        for _ in 0..1000 {
            match tokio::time::timeout(Duration::from_secs(10), self.ws.recv())
                .await
                .expect("close timed out")
            {
                Ok(Message::Text(text)) => texts.push(text.as_str().to_owned()),
                Ok(_) => {}
                Err(Error::Closed(info)) => return (texts, info),
                Err(other) => panic!("{other:?}"),
            }
        }
        panic!("no close");
    }

    /// Sends `ping` and expects the pong as the next frame: nothing else was queued before it.
    pub async fn nothing_pending(&mut self) {
        self.send(r#"{"event":"pusher:ping","data":{}}"#).await;
        assert_eq!(self.recv_text().await, r#"{"event":"pusher:pong","data":"{}"}"#);
    }
}
