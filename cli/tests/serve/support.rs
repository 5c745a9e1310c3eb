//! A `wsengine serve` process for a test, and small clients for it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsengine_tokio::{Message, WebSocket};

/// Bound on every wait in these tests.
pub(crate) const WAIT: Duration = Duration::from_secs(15);

/// A running server; killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `wsengine serve --listen 127.0.0.1:0 ARGS` with extra environment variables and
    /// waits for its address.
    pub(crate) fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wsengine"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--threads", "2"])
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn wsengine");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Text logs say `addr=127.0.0.1:PORT`, JSON logs `"addr":"127.0.0.1:PORT"`.
                let found = line
                    .split("addr=")
                    .nth(1)
                    .or_else(|| line.split("\"addr\":").nth(1))
                    .and_then(|rest| rest.trim_start_matches('"').split(['"', ' ']).next());
                if let Some(addr) = found {
                    if let (Some(sender), Ok(addr)) = (tx.as_ref(), addr.trim_matches('"').parse::<SocketAddr>()) {
                        let _ = sender.send(addr);
                        tx = None;
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match rx.recv_timeout(WAIT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start: {}", log.lock().unwrap());
            }
        };
        Self { child, addr, log }
    }

    /// What the server logged so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until the log contains `needle`.
    pub(crate) async fn wait_for_log(&self, needle: &str) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            assert!(start.elapsed() < WAIT, "no {needle:?} in the log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (bounded) until `/stats` shows `value` for `key`.
    pub(crate) async fn wait_for_stat(&self, key: &str, value: u64) {
        self.wait_for_stats(&format!("{key} = {value}"), |stats| stats[key] == value)
            .await;
    }

    /// Waits (bounded) until `/stats` satisfies `done`; `what` names it in the failure.
    pub(crate) async fn wait_for_stats(&self, what: &str, done: impl Fn(&serde_json::Value) -> bool) {
        let start = Instant::now();
        loop {
            let (_, _, body) = self.get("/stats").await;
            let stats: serde_json::Value = serde_json::from_str(&body).expect("stats json");
            if done(&stats) {
                return;
            }
            assert!(start.elapsed() < WAIT, "never {what}: {stats}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a signal (`TERM`, `HUP`).
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit.
    pub(crate) async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(start.elapsed() < WAIT, "server did not exit:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `ws://ADDR` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// GET `path`: status, content type, body.
    pub(crate) async fn get(&self, path: &str) -> (u16, String, String) {
        http_get(self.addr, path).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET: status, content type, body.
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    parse_response(&String::from_utf8_lossy(&response))
}

/// Status, content type and body of a `Connection: close` response.
pub(crate) fn parse_response(text: &str) -> (u16, String, String) {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

/// Connects a WebSocket client.
pub(crate) async fn connect(url: &str) -> WebSocket {
    let (ws, _) = tokio::time::timeout(WAIT, wsengine_tokio::connect(url))
        .await
        .expect("connect in time")
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    ws
}

/// The next text message (bounded wait).
pub(crate) async fn recv_text(ws: &mut WebSocket) -> String {
    let message = tokio::time::timeout(WAIT, ws.recv())
        .await
        .expect("a message in time")
        .expect("a message");
    message.as_text().expect("text").to_owned()
}

/// The next native-protocol message of `kind` (others are skipped; bounded).
pub(crate) async fn recv_type(ws: &mut WebSocket, kind: &str) -> serde_json::Value {
    for _ in 0..50 {
        let value: serde_json::Value = serde_json::from_str(&recv_text(ws).await).expect("json");
        if value["type"] == kind {
            return value;
        }
    }
    panic!("no {kind:?} message");
}

/// The next native-protocol `presence` message with this `event` (`join`, `leave`, `list`;
/// others are skipped; bounded).
pub(crate) async fn recv_presence(ws: &mut WebSocket, event: &str) -> serde_json::Value {
    for _ in 0..50 {
        let value = recv_type(ws, "presence").await;
        if value["event"] == event {
            return value;
        }
    }
    panic!("no presence {event:?}");
}

/// Sends a native-protocol action.
pub(crate) async fn send_json(ws: &mut WebSocket, value: serde_json::Value) {
    ws.send(Message::from(value.to_string())).await.expect("send");
    // A client corks sends while messages of one read are still unreceived: push it out now.
    ws.flush().await.expect("flush");
}

/// A fresh file under the temp dir with `text`.
pub(crate) fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsengine-serve-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}
