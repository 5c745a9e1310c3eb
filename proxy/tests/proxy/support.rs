//! Backends and clients for the proxy tests: echo servers on loopback built with wsengine-tokio.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use wsengine_proxy::{Config, Proxy};
use wsengine_tokio::{Accept, ClientRequest, CloseCode, CloseInfo, ConnectOptions, Error, Message, Reject, WebSocket};

/// What a backend saw.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) accepted: usize,
    pub(crate) protocols: Vec<Vec<String>>,
    pub(crate) headers: Vec<http::HeaderMap>,
    pub(crate) paths: Vec<String>,
    pub(crate) closes: Vec<CloseInfo>,
}

/// An echo backend: `whoami` answers its id, `close:CODE:REASON` closes with that code,
/// anything else is echoed. It picks subprotocol `chat` when offered and answers `/reject`
/// with 403.
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    pub(crate) seen: Arc<Mutex<Seen>>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Backend {
    pub(crate) async fn start(id: &str) -> Self {
        Self::start_on("127.0.0.1:0", id, wsengine_tokio::Config::default()).await
    }

    pub(crate) async fn start_on(addr: &str, id: &str, config: wsengine_tokio::Config) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let tasks = Arc::new(Mutex::new(JoinSet::new()));
        let config = Arc::new(config);
        let (id, seen2, tasks2) = (id.to_owned(), seen.clone(), tasks.clone());
        tasks.lock().unwrap().spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (id, seen, config) = (id.clone(), seen2.clone(), config.clone());
                tasks2.lock().unwrap().spawn(async move {
                    let seen_in = seen.clone();
                    let accepted = wsengine_tokio::accept_with(tcp, config, move |request| {
                        let mut s = seen_in.lock().unwrap();
                        s.protocols.push(request.protocols().to_vec());
                        s.headers.push(request.headers().clone());
                        s.paths.push(request.uri().to_string());
                        if request.path().ends_with("/reject") {
                            return Err(Reject::new(http::StatusCode::FORBIDDEN));
                        }
                        s.accepted += 1;
                        let chat = request.protocols().iter().any(|p| p == "chat");
                        Ok(if chat {
                            Accept::new().protocol("chat")
                        } else {
                            Accept::new()
                        })
                    })
                    .await;
                    let Ok(ws) = accepted else { return };
                    let end = echo(ws, &id).await;
                    if let Some(info) = end {
                        seen.lock().unwrap().closes.push(info);
                    }
                });
            }
        });
        Self { addr, seen, tasks }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops listening and drops every connection without a close frame.
    pub(crate) fn kill(&self) {
        self.tasks.lock().unwrap().abort_all();
    }

    /// Waits (bounded) until this backend has recorded `n` closes.
    pub(crate) async fn closes(&self, n: usize) -> Vec<CloseInfo> {
        for _ in 0..500 {
            let closes = self.seen.lock().unwrap().closes.clone();
            if closes.len() >= n {
                return closes;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("backend saw fewer than {n} closes");
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn echo<S>(mut ws: WebSocket<S>, id: &str) -> Option<CloseInfo>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = match ws.recv().await {
            Ok(message) => message,
            Err(Error::Closed(info)) => return Some(info),
            Err(_) => return ws.close_info().cloned(),
        };
        if let Message::Text(text) = &message {
            if text.as_str() == "whoami" {
                ws.send(id.to_owned()).await.ok()?;
                continue;
            }
            if let Some(rest) = text.as_str().strip_prefix("close:") {
                let (code, reason) = rest.split_once(':').unwrap_or((rest, ""));
                let code = CloseCode(code.parse().unwrap_or(1000));
                return ws.close(code, reason).await.ok();
            }
        }
        if ws.send(message).await.is_err() {
            return ws.close_info().cloned();
        }
    }
}

/// Starts a proxy for `toml` (its `listen` is ignored: a free loopback port is used).
pub(crate) async fn proxy(toml: &str) -> (Proxy, SocketAddr) {
    let config = Config::parse(toml, "test").unwrap();
    let proxy = Proxy::new(config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = proxy.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    (proxy, addr)
}

/// A config with one route `/ws` (prefix stripped) to pool `p` of `backends`.
pub(crate) fn config(backends: &[&Backend], extra: &str) -> String {
    let mut text = String::from("listen = \"127.0.0.1:0\"\n");
    text.push_str(extra);
    text.push_str("\n[[routes]]\npath = \"/ws\"\nupstream = \"p\"\nstrip_prefix = true\n");
    for b in backends {
        text.push_str(&format!("[[upstreams]]\nname = \"p\"\nurl = \"{}\"\n", b.url()));
    }
    text
}

pub(crate) async fn connect(addr: SocketAddr, path: &str) -> Result<(WebSocket, wsengine_tokio::Response), Error> {
    let request = ClientRequest::new(format!("ws://{addr}{path}")).unwrap();
    wsengine_tokio::connect_with(&request, &ConnectOptions::default()).await
}

pub(crate) async fn whoami(ws: &mut WebSocket) -> String {
    ws.send("whoami").await.unwrap();
    match ws.recv().await.unwrap() {
        Message::Text(t) => t.as_str().to_owned(),
        other => panic!("unexpected {other:?}"),
    }
}

/// Waits (bounded) until `f` holds.
pub(crate) async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A loopback address where connections are refused: the port stays bound (so no parallel
/// test can take it) but never listens. Keep the socket alive while the address is used.
pub(crate) fn dead_port() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// One HTTP/1.1 request over a fresh connection; the whole response as text.
pub(crate) async fn http_get(addr: SocketAddr, path: &str, extra: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A plain HTTP backend (over TLS with an acceptor): `GET /health` is answered with the status
/// in `health` (200 at first), anything else with 200 and the backend's id. Every request head
/// is kept, lowercased.
pub(crate) struct HttpBackend {
    pub(crate) port: u16,
    pub(crate) health: Arc<std::sync::atomic::AtomicU16>,
    pub(crate) heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpBackend {
    pub(crate) async fn start(id: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let health = Arc::new(std::sync::atomic::AtomicU16::new(200));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (id, health2, heads2) = (id.to_owned(), health.clone(), heads.clone());
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (id, health, heads, tls) = (id.clone(), health2.clone(), heads2.clone(), tls.clone());
                connections.spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                answer(stream, &id, &health, &heads).await;
                            }
                        }
                        None => answer(tcp, &id, &health, &heads).await,
                    }
                });
                // Finished connections are reaped as new ones come, so the set stays small.
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            port,
            health,
            heads,
            task,
        }
    }

    pub(crate) fn set_health(&self, status: u16) {
        self.health.store(status, std::sync::atomic::Ordering::Relaxed);
    }

    /// The heads of the health checks received so far.
    pub(crate) fn checks(&self) -> Vec<String> {
        let heads = self.heads.lock().unwrap();
        heads
            .iter()
            .filter(|h| h.starts_with("get /health "))
            .cloned()
            .collect()
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head (at most 8 KiB) and answers it, closing the connection.
async fn answer<S>(mut io: S, id: &str, health: &std::sync::atomic::AtomicU16, heads: &Mutex<Vec<String>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let (status, body) = if head.starts_with("get /health ") {
        (health.load(std::sync::atomic::Ordering::Relaxed), String::new())
    } else {
        (200, id.to_owned())
    };
    heads.lock().unwrap().push(head);
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = io.write_all(response.as_bytes()).await;
    let _ = io.shutdown().await;
}

/// The body of a whole HTTP response.
pub(crate) fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// The status a handshake got: 101 when it succeeded, else the refusal's.
pub(crate) fn status_of<T>(result: Result<T, Error>) -> u16 {
    match result {
        Ok(_) => 101,
        Err(Error::Handshake(wsengine_tokio::HandshakeError::UnexpectedStatus(s))) => s.as_u16(),
        Err(e) => panic!("{e}"),
    }
}
