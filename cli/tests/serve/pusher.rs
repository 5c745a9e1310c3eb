//! Pusher on `wsengine serve`: a Pusher client on `/app/<key>`, the HTTP API on `/apps/<id>/`
//! reaching Pusher and native subscribers alike, and webhooks posted to a configured URL.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsengine_hub::pusher::sign::{hmac_hex, md5_hex};
use wsengine_tokio::WebSocket;

use crate::support::{Server, WAIT, connect, parse_response, recv_text, recv_type, send_json, temp_file};

/// The next Pusher frame named `event` (others skipped; bounded).
async fn recv_event(ws: &mut WebSocket, event: &str) -> serde_json::Value {
    for _ in 0..50 {
        let value: serde_json::Value = serde_json::from_str(&recv_text(ws).await).expect("json");
        if value["event"] == event {
            return value;
        }
    }
    panic!("no {event:?} frame");
}

/// POSTs a signed `body` to the default app's HTTP API path: status and body.
async fn api_post(server: &Server, path: &str, body: &str) -> (u16, String) {
    api_post_as(server, ("app-key", "app-secret"), path, body).await
}

/// POSTs `body` to an HTTP API path, signed with `(key, secret)`: status and body.
async fn api_post_as(server: &Server, (key, secret): (&str, &str), path: &str, body: &str) -> (u16, String) {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let md5 = md5_hex(body.as_bytes());
    let query = format!("auth_key={key}&auth_timestamp={timestamp}&auth_version=1.0&body_md5={md5}");
    let signature = hmac_hex(secret, &format!("POST\n{path}\n{query}"));
    let request = format!(
        "POST {path}?{query}&auth_signature={signature} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let (status, _, body) = parse_response(&String::from_utf8_lossy(&response));
    (status, body)
}

#[tokio::test]
async fn api_publish_reaches_pusher_and_native_subscribers() {
    let server = Server::start(&[], &[]);
    let mut pusher = connect(&server.url("/app/app-key?protocol=7&client=js&version=8.4.0")).await;
    let established = recv_event(&mut pusher, "pusher:connection_established").await;
    assert!(
        established["data"].as_str().unwrap().contains("socket_id"),
        "{established}"
    );
    send_json(
        &mut pusher,
        json!({"event":"pusher:subscribe","data":{"channel":"news"}}),
    )
    .await;
    recv_event(&mut pusher, "pusher_internal:subscription_succeeded").await;
    let mut native = connect(&server.url("/ws?user_id=n")).await;
    send_json(&mut native, json!({"action":"subscribe","channel":"news"})).await;
    recv_type(&mut native, "subscribed").await;

    let body = json!({"name":"headline","channels":["news"],"data":"{\"text\":\"hello\"}"}).to_string();
    let (status, answer) = api_post(&server, "/apps/app-id/events", &body).await;
    assert_eq!(status, 200, "{answer}");
    let event = recv_event(&mut pusher, "headline").await;
    assert_eq!(event["channel"], "news");
    let message = recv_type(&mut native, "message").await;
    assert_eq!(
        (message["channel"].as_str(), message["event"].as_str()),
        (Some("news"), Some("headline"))
    );

    // A bad signature and an unknown app are refused.
    let (status, _) = api_post(&server, "/apps/other-app/events", &body).await;
    assert!(status == 404 || status == 401 || status == 400, "{status}");
    // An unknown key is refused in band, the Pusher way.
    let mut stranger = connect(&server.url("/app/nobody?protocol=7")).await;
    let error = recv_event(&mut stranger, "pusher:error").await;
    assert_eq!(error["data"]["code"], 4001, "{error}");
}

#[tokio::test]
async fn webhooks_are_posted_with_the_events_asked_for() {
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = receiver.local_addr().unwrap();
    let config = temp_file(
        "webhooks.toml",
        &format!(
            "[[apps]]\nid = \"app-id\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nclient_events = true\n\
             [[apps.webhooks]]\nurl = \"http://{hook}/hook\"\nevents = [\"channel_occupied\"]\n"
        ),
    );
    let server = Server::start(&["--config", config.to_str().unwrap()], &[]);
    let _pusher = pusher_in_room(&server).await;

    let (mut tcp, _) = tokio::time::timeout(WAIT, receiver.accept()).await.unwrap().unwrap();
    let (head, body) = answer_webhook(&mut tcp).await;
    assert!(head.contains("x-pusher-key: app-key"), "{head}");
    assert_eq!(body["events"][0]["name"], "channel_occupied", "{body}");
    assert_eq!(body["events"][0]["channel"], "room", "{body}");
}

/// The stock-client scenarios (pusher-js 8, laravel-echo, the `pusher` server SDK) of
/// interop/pusher against the `serve` binary: WebSocket and HTTP API on the one port.
#[tokio::test]
#[ignore = "needs node and `npm ci` in interop/pusher; run with --ignored"]
async fn stock_pusher_clients_against_serve() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/pusher");
    assert!(
        dir.join("node_modules/pusher-js").exists(),
        "pusher-js is missing: run `npm ci` in interop/pusher"
    );
    let config = temp_file(
        "pusher-interop.toml",
        "[[apps]]\nid = \"1\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nclient_events = true\n\
         user_authentication = true\n",
    );
    let server = Server::start(&["--config", config.to_str().unwrap()], &[]);
    let env = json!({
        "wsPort": server.addr.port(),
        "apiPort": server.addr.port(),
        "appId": "1",
        "key": "app-key",
        "secret": "app-secret",
        "masterKey": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    });
    for name in [
        "channels",
        "client_events",
        "errors",
        "signin",
        "cache_encrypted",
        "echo",
    ] {
        let run = tokio::process::Command::new("node")
            .args(["scenario.js", name])
            .env("PUSHER_TEST", env.to_string())
            .current_dir(&dir)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(std::time::Duration::from_secs(60), run)
            .await
            .expect("scenario in time")
            .expect("run node");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains(&format!("OK {name}")),
            "scenario {name}:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Reads one webhook POST to `/hook` from `stream` and answers 200; checks its signature
/// (app-secret); gives its head in lower case and its body.
async fn answer_webhook<S>(stream: &mut S) -> (String, serde_json::Value)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let text = read_request(stream).await;
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
    let lower = head.to_ascii_lowercase();
    let signature = lower
        .lines()
        .find_map(|line| line.strip_prefix("x-pusher-signature: "))
        .expect("signature header");
    assert_eq!(signature, hmac_hex("app-secret", body));
    (lower, serde_json::from_str(body).unwrap())
}

/// A Pusher client of `app-key` subscribed to the public channel `room`.
async fn pusher_in_room(server: &Server) -> WebSocket {
    let mut pusher = connect(&server.url("/app/app-key?protocol=7")).await;
    recv_event(&mut pusher, "pusher:connection_established").await;
    send_json(
        &mut pusher,
        json!({"event":"pusher:subscribe","data":{"channel":"room"}}),
    )
    .await;
    recv_event(&mut pusher, "pusher_internal:subscription_succeeded").await;
    pusher
}

/// One HTTP request from `stream`, head and body (a JSON body: read until it ends with `}`).
async fn read_request<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "webhook connection closed early");
        request.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&request).into_owned();
        if let Some((_, body)) = text.split_once("\r\n\r\n") {
            if body.ends_with('}') {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn https_webhooks_trust_the_configured_ca_and_reuse_one_connection() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = temp_file("hook-cert.pem", &certified.cert.pem());
    let key = temp_file("hook-key.pem", &certified.key_pair.serialize_pem());
    let acceptor = wsengine_proxy::tls::acceptor(&cert, &key).unwrap();
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = receiver.local_addr().unwrap().port();
    let config = temp_file(
        "https-webhooks.toml",
        &format!(
            "[[apps]]\nid = \"app-id\"\nkey = \"app-key\"\nsecret = \"app-secret\"\n\
             [[apps.webhooks]]\nurl = \"https://localhost:{port}/hook\"\nca = {:?}\n\
             events = [\"channel_occupied\", \"channel_vacated\"]\n",
            cert.to_str().unwrap()
        ),
    );
    let server = Server::start(&["--config", config.to_str().unwrap()], &[]);
    let mut pusher = pusher_in_room(&server).await;
    send_json(
        &mut pusher,
        json!({"event":"pusher:unsubscribe","data":{"channel":"room"}}),
    )
    .await;

    let (tcp, _) = tokio::time::timeout(WAIT, receiver.accept()).await.unwrap().unwrap();
    let mut tls = tokio::time::timeout(WAIT, acceptor.accept(tcp)).await.unwrap().unwrap();
    let mut names = Vec::new();
    // Both webhooks come over the one connection, in order.
    for _ in 0..2 {
        let (head, body) = answer_webhook(&mut tls).await;
        assert!(head.contains(&format!("host: localhost:{port}")), "{head}");
        assert_eq!(body["events"][0]["channel"], "room", "{body}");
        names.push(body["events"][0]["name"].as_str().unwrap().to_owned());
    }
    assert_eq!(names, ["channel_occupied", "channel_vacated"]);
}

#[tokio::test]
async fn app_and_pusher_settings_from_the_config_apply() {
    let config = temp_file(
        "app-settings.toml",
        "[pusher]\nactivity_timeout = \"7s\"\n\
         [[apps]]\nid = \"app-id\"\nkey = \"app-key\"\nsecret = \"app-secret\"\n\
         [[apps]]\nid = \"off\"\nkey = \"off-key\"\nsecret = \"off-secret\"\nenabled = false\n\
         [[apps]]\nid = \"one\"\nkey = \"one-key\"\nsecret = \"one-secret\"\nmax_connections = 1\n\
         max_event_size = 100\n",
    );
    let server = Server::start(&["--config", config.to_str().unwrap()], &[]);
    // A disabled app refuses connections with 4003.
    let off = connect(&server.url("/app/off-key?protocol=7")).await;
    assert_eq!(crate::close_code(off).await, 4003);
    // The activity timeout the clients are told is the configured one.
    let mut first = connect(&server.url("/app/one-key?protocol=7")).await;
    let established = recv_event(&mut first, "pusher:connection_established").await;
    let data: serde_json::Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["activity_timeout"], 7, "{established}");
    // Over the app's connection cap: 4100.
    let second = connect(&server.url("/app/one-key?protocol=7")).await;
    assert_eq!(crate::close_code(second).await, 4100);
    // The app's event size limit answers 413 over the HTTP API; under it, 200.
    let big = json!({"name":"e","channels":["c"],"data":"x".repeat(101)}).to_string();
    let (status, answer) = api_post_as(&server, ("one-key", "one-secret"), "/apps/one/events", &big).await;
    assert_eq!(status, 413, "{answer}");
    let small = json!({"name":"e","channels":["c"],"data":"x".repeat(100)}).to_string();
    let (status, answer) = api_post_as(&server, ("one-key", "one-secret"), "/apps/one/events", &small).await;
    assert_eq!(status, 200, "{answer}");
}
