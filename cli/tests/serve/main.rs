//! `wsengine serve` as a process: the default configuration end to end (native protocol, tank,
//! health, stats, metrics, demo page), configuration errors, SIGTERM drain, SIGHUP reload.

mod limits;
mod pusher;
mod redis;
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Server, WAIT, connect, http_get, recv_text, recv_type, send_json, temp_file};
use wsengine_tokio::{ClientRequest, ConnectOptions, Error, Message};

#[tokio::test]
async fn default_config_serves_health_and_the_native_protocol() {
    let server = Server::start(&[], &[]);
    let (status, _, body) = server.get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, _) = server.get("/readyz").await;
    assert_eq!(status, 200);

    let mut alice = connect(&server.url("/ws?user_id=alice")).await;
    let mut bob = connect(&server.url("/ws?user_id=bob")).await;
    for ws in [&mut alice, &mut bob] {
        send_json(ws, json!({"action":"subscribe","channel":"news","ref":1})).await;
        let subscribed = recv_type(ws, "subscribed").await;
        assert_eq!(subscribed["channel"], "news");
    }
    send_json(
        &mut alice,
        json!({"action":"broadcast","channel":"news","event":"chat","data":{"text":"hi"}}),
    )
    .await;
    let message = recv_type(&mut bob, "message").await;
    assert_eq!(message["channel"], "news");
    assert_eq!(message["event"], "chat");
    assert_eq!(message["data"]["text"], "hi");
    assert_eq!(message["from"], "alice");

    // Presence and whispers (the demo page's typing indicator) on a presence channel.
    for ws in [&mut alice, &mut bob] {
        send_json(ws, json!({"action":"subscribe","channel":"presence-room"})).await;
        recv_type(ws, "subscribed").await;
    }
    // A list may come unasked on subscribe: wait for the answer to this request.
    send_json(
        &mut alice,
        json!({"action":"presence","channel":"presence-room","ref":"who"}),
    )
    .await;
    let mut list = recv_type(&mut alice, "presence").await;
    for _ in 0..5 {
        if list["ref"] == "who" {
            break;
        }
        list = recv_type(&mut alice, "presence").await;
    }
    assert_eq!(
        (list["event"].as_str(), list["ref"].as_str()),
        (Some("list"), Some("who")),
        "{list}"
    );
    let mut users: Vec<String> = serde_json::from_value(list["users"].clone()).unwrap();
    users.sort();
    assert_eq!(users, ["alice", "bob"]);
    send_json(
        &mut bob,
        json!({"action":"whisper","channel":"presence-room","event":"typing","data":true,"ref":"w"}),
    )
    .await;
    assert_eq!(recv_type(&mut bob, "ack").await["ref"], "w");
    let whisper = recv_type(&mut alice, "whisper").await;
    assert_eq!(
        (whisper["from"].as_str(), whisper["event"].as_str()),
        (Some("bob"), Some("typing"))
    );
}

#[tokio::test]
async fn json_logs_and_count_lines() {
    let server = Server::start(
        &[],
        &[
            ("WSENGINE_LOG__FORMAT", "json"),
            ("WSENGINE_LOG__STATS_INTERVAL", "50ms"),
        ],
    );
    let _ws = connect(&server.url("/ws?user_id=j")).await;
    server.wait_for_log("\"message\":\"counts\"").await;
    let log = server.log();
    for line in log.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value["level"].is_string(), "{line}");
    }
    assert!(log.contains("\"connections\":"), "{log}");
}

#[tokio::test]
async fn tank_clients_relay_and_receive_publications() {
    let server = Server::start(&[], &[]);
    let mut first = connect(&server.url("/tank?user_id=t1")).await;
    let mut second = connect(&server.url("/tank?user_id=t2")).await;
    first.send(Message::from("sub:news")).await.unwrap();
    first.flush().await.unwrap();
    // Tank does not acknowledge: wait until the hub counts the subscription.
    server.wait_for_stat("subscriptions", 1).await;
    // Any other text goes to every other tank client.
    second.send(Message::from("hello tanks")).await.unwrap();
    second.flush().await.unwrap();
    assert_eq!(recv_text(&mut first).await, "hello tanks");
    // A native publication to `news` reaches the tank subscriber: same default app.
    let mut native = connect(&server.url("/ws?user_id=n")).await;
    send_json(&mut native, json!({"action":"subscribe","channel":"news"})).await;
    recv_type(&mut native, "subscribed").await;
    send_json(
        &mut native,
        json!({"action":"broadcast","channel":"news","data":"headline"}),
    )
    .await;
    let delivered: serde_json::Value = serde_json::from_str(&recv_text(&mut first).await).unwrap();
    assert_eq!(delivered["topic"], "news", "{delivered}");
    assert_eq!(delivered["data"], "headline", "{delivered}");
}

#[tokio::test]
async fn stats_and_metrics_count_connections() {
    let server = Server::start(&[], &[]);
    let _a = connect(&server.url("/ws?user_id=a")).await;
    let _b = connect(&server.url("/tank")).await;
    let start = Instant::now();
    loop {
        let (status, content_type, body) = server.get("/stats").await;
        assert_eq!((status, content_type.as_str()), (200, "application/json"));
        let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
        if stats["connections"] == 2 {
            assert_eq!(stats["connections_total"], 2);
            assert_eq!(stats["default_app"], "app-id");
            break;
        }
        assert!(start.elapsed() < WAIT, "{stats}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, content_type, body) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    assert!(body.contains("\nwsengine_hub_connections 2\n"), "{body}");
    assert!(body.contains("# TYPE wsengine_hub_connections gauge"), "{body}");
    assert!(body.contains("wsengine_server_draining 0"), "{body}");
}

#[tokio::test]
async fn demo_page_is_served_with_its_content_types() {
    let server = Server::start(&[], &[]);
    let (status, content_type, body) = server.get("/").await;
    assert_eq!((status, content_type.as_str()), (200, "text/html; charset=utf-8"));
    assert!(body.contains("<script src=\"/demo.js\">"), "{body}");
    let (status, content_type, body) = server.get("/demo.js").await;
    assert_eq!((status, content_type.as_str()), (200, "text/javascript; charset=utf-8"));
    assert!(body.contains("presence-"));
    let (status, content_type, _) = server.get("/demo.css").await;
    assert_eq!((status, content_type.as_str()), (200, "text/css; charset=utf-8"));
    let (status, _, _) = server.get("/nothing-here").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn upgrades_through_hyper_serve_the_same_protocol() {
    let server = Server::start(&[], &[("WSENGINE_UPGRADES", "hyper")]);
    let mut a = connect(&server.url("/ws?user_id=a")).await;
    let mut b = connect(&server.url("/ws?user_id=b")).await;
    for ws in [&mut a, &mut b] {
        send_json(ws, json!({"action":"subscribe","channel":"c"})).await;
        recv_type(ws, "subscribed").await;
    }
    send_json(&mut a, json!({"action":"broadcast","channel":"c","data":1})).await;
    assert_eq!(recv_type(&mut b, "message").await["data"], 1);
}

#[tokio::test]
async fn sigterm_drains_with_going_away_closes() {
    let mut server = Server::start(
        &[],
        &[
            ("WSENGINE_SHUTDOWN__WINDOW", "200ms"),
            ("WSENGINE_SHUTDOWN__DEADLINE", "5s"),
        ],
    );
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut ws = connect(&server.url(&format!("/ws?user_id=u{i}"))).await;
        send_json(&mut ws, json!({"action":"subscribe","channel":"news"})).await;
        recv_type(&mut ws, "subscribed").await;
        clients.push(ws);
    }
    // Queued before the signal (the publisher's ack says the hub has queued it for everyone):
    // every subscriber must get these before its close.
    let mut publisher = connect(&server.url("/ws?user_id=publisher")).await;
    send_json(&mut publisher, json!({"action":"subscribe","channel":"news"})).await;
    recv_type(&mut publisher, "subscribed").await;
    for n in 0..50 {
        send_json(
            &mut publisher,
            json!({"action":"broadcast","channel":"news","data":n,"ref":n}),
        )
        .await;
    }
    for _ in 0..50 {
        recv_type(&mut publisher, "ack").await;
    }
    server.signal("TERM");
    for ws in &mut clients {
        let (received, end) = tokio::time::timeout(WAIT, async {
            let mut received = Vec::new();
            loop {
                match ws.recv().await {
                    Ok(message) => {
                        let value: serde_json::Value =
                            serde_json::from_str(message.as_text().unwrap_or("{}")).unwrap_or_default();
                        if value["type"] == "message" {
                            received.push(value["data"].as_u64().unwrap_or(u64::MAX));
                        }
                    }
                    Err(error) => return (received, error),
                }
            }
        })
        .await
        .expect("closed in time");
        assert_eq!(received, (0..50).collect::<Vec<u64>>(), "nothing queued may be lost");
        match end {
            Error::Closed(info) => {
                assert_eq!(info.code.0, 1001, "{info:?}");
                assert!(info.clean, "{info:?}");
            }
            other => panic!("{other}"),
        }
    }
    // The publisher answers its close too (a client that never reads would be dropped at the
    // deadline instead).
    let end = tokio::time::timeout(WAIT, async {
        loop {
            if let Err(error) = publisher.recv().await {
                return error;
            }
        }
    })
    .await
    .expect("publisher closed in time");
    assert!(matches!(&end, Error::Closed(info) if info.code.0 == 1001), "{end}");
    let status = server.wait_exit().await;
    assert!(status.success(), "{status:?}\n{}", server.log());
    let log = server.log();
    assert!(log.contains("draining open=4"), "{log}");
    assert!(log.contains("drained closed=4 aborted=0"), "{log}");
}

#[tokio::test]
async fn sighup_reloads_origins_and_apps_and_a_bad_file_keeps_the_old_config() {
    let path = temp_file("reload.toml", "[log]\nstats_interval = 0\n");
    let server = Server::start(&["--config", path.to_str().unwrap()], &[]);
    let mut open = connect(&server.url("/ws?user_id=stays")).await;

    // A bad file: logged, the old configuration keeps serving, the connection stays.
    std::fs::write(&path, "[limits]\nmax_conections = 5\n").unwrap();
    server.signal("HUP");
    server.wait_for_log("reload failed").await;
    assert!(server.log().contains("max_conections"), "{}", server.log());
    send_json(&mut open, json!({"action":"ping","ref":1})).await;
    assert_eq!(recv_type(&mut open, "pong").await["ref"], 1);
    let (status, _, _) = server.get("/healthz").await;
    assert_eq!(status, 200);

    // A good file with an origin list: new upgrades from elsewhere are refused, the open
    // connection is untouched.
    std::fs::write(&path, "origins = [\"https://good.example\"]\n").unwrap();
    server.signal("HUP");
    server.wait_for_log("configuration reloaded").await;
    let refused = with_origin(&server.url("/ws"), "https://evil.example").await;
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("403")),
        "{refused:?}"
    );
    let allowed = with_origin(&server.url("/ws"), "https://good.example").await;
    assert!(allowed.is_ok(), "{allowed:?}");
    send_json(&mut open, json!({"action":"ping","ref":2})).await;
    assert_eq!(recv_type(&mut open, "pong").await["ref"], 2);

    // A good file that adds a Pusher app (the first, default app unchanged): a Pusher client
    // connects with the new key at once, nothing asks for a restart, the native connection
    // stays.
    let unknown = connect(&server.url("/app/added-key?protocol=7")).await;
    assert_eq!(close_code(unknown).await, 4001);
    std::fs::write(
        &path,
        "[[apps]]\nid = \"app-id\"\nkey = \"app-key\"\nsecret = \"app-secret\"\nclient_events = true\n\
         [[apps]]\nid = \"added\"\nkey = \"added-key\"\nsecret = \"added-secret\"\n",
    )
    .unwrap();
    // The reload before (no `[log]` any more) asked for a restart; this one must not.
    server.wait_for_log("next restart").await;
    let restarts = server.log().matches("next restart").count();
    server.signal("HUP");
    let start = Instant::now();
    while server.log().matches("configuration reloaded").count() < 2 {
        assert!(start.elapsed() < WAIT, "no second reload in the log:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut added = connect(&server.url("/app/added-key?protocol=7")).await;
    let established: serde_json::Value = serde_json::from_str(&recv_text(&mut added).await).unwrap();
    assert_eq!(established["event"], "pusher:connection_established", "{established}");
    send_json(
        &mut added,
        json!({"event":"pusher:subscribe","data":{"channel":"news"}}),
    )
    .await;
    let subscribed: serde_json::Value = serde_json::from_str(&recv_text(&mut added).await).unwrap();
    assert_eq!(
        subscribed["event"], "pusher_internal:subscription_succeeded",
        "{subscribed}"
    );
    send_json(&mut open, json!({"action":"ping","ref":3})).await;
    assert_eq!(recv_type(&mut open, "pong").await["ref"], 3);
    let log = server.log();
    assert_eq!(log.matches("next restart").count(), restarts, "{log}");
}

/// The close code of a connection that is being closed (a Pusher one refused in band, after
/// its `pusher:error`; any after a limit), skipping what comes before the close.
async fn close_code(mut ws: wsengine_tokio::WebSocket) -> u16 {
    for _ in 0..10 {
        match tokio::time::timeout(WAIT, ws.recv()).await.expect("close in time") {
            Ok(_) => {}
            Err(Error::Closed(info)) => return info.code.0,
            Err(other) => panic!("{other}"),
        }
    }
    panic!("no close");
}

async fn with_origin(url: &str, origin: &str) -> Result<wsengine_tokio::WebSocket, Error> {
    let request = ClientRequest::new(url).unwrap().header("Origin", origin).unwrap();
    let options = ConnectOptions::new(wsengine_tokio::Config::default());
    tokio::time::timeout(WAIT, wsengine_tokio::connect_with(&request, &options))
        .await
        .expect("answer in time")
        .map(|(ws, _)| ws)
}

fn wsengine(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wsengine"))
        .args(args)
        .env_remove("WSENGINE_LISTEN")
        .output()
        .expect("run wsengine")
}

#[test]
fn config_errors_name_key_and_line_and_exit_non_zero() {
    let cases = [
        (
            "unknown.toml",
            "listen = \"127.0.0.1:0\"\n\n[limits]\nmax_conections = 5\n",
            ":4: max_conections: ",
        ),
        (
            "value.toml",
            "[heartbeat]\ninterval = \"15 fortnights\"\n",
            ":2: interval: ",
        ),
        ("addr.toml", "listen = \"nowhere\"\n", ":1: listen: "),
    ];
    for (name, text, expected) in cases {
        let path = temp_file(name, text);
        for args in [
            vec!["serve", "--config", path.to_str().unwrap()],
            vec!["config", "check", path.to_str().unwrap()],
        ] {
            let output = wsengine(&args);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{args:?}");
            assert!(stderr.contains(expected), "{args:?}: {stderr}");
        }
    }
    let output = wsengine(&["serve", "--config", "/nonexistent/wsengine.toml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("cannot read /nonexistent/wsengine.toml"), "{stderr}");
}

#[test]
fn config_check_accepts_a_soketi_style_file() {
    let path = temp_file(
        "soketi.toml",
        "listen = \"127.0.0.1:6001\"\n[[apps]]\nid = \"app-id\"\nkey = \"app-key\"\nsecret = \"app-secret\"\n\
         client_events = true\nuser_authentication = true\n[[apps.webhooks]]\nurl = \"http://127.0.0.1:3099/\"\n\
         events = [\"channel_occupied\", \"channel_vacated\", \"member_added\", \"member_removed\", \"client_event\"]\n",
    );
    let output = wsengine(&["config", "check", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains(": ok"));
}

#[tokio::test]
async fn unknown_paths_and_apps_are_refused() {
    let server = Server::start(&[], &[]);
    let refused = tokio::time::timeout(WAIT, wsengine_tokio::connect(&server.url("/elsewhere")))
        .await
        .unwrap();
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("404")),
        "{:?}",
        refused.err()
    );
    let (status, _, _) = http_get(server.addr, "/apps/no-such-app/events").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn tls_listener_serves_wss() {
    use tokio_rustls::rustls::{self, RootCertStore};
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = temp_file("tls-cert.pem", &certified.cert.pem());
    let key = temp_file("tls-key.pem", &certified.key_pair.serialize_pem());
    let config = temp_file(
        "tls.toml",
        &format!(
            "[[listeners]]\nlisten = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\n",
            cert.to_str().unwrap(),
            key.to_str().unwrap()
        ),
    );
    let server = Server::start(&["--config", config.to_str().unwrap()], &[]);
    server.wait_for_log("tls=true").await;
    let log = server.log();
    let port: u16 = log
        .lines()
        .find(|line| line.contains("tls=true"))
        .and_then(|line| line.split("addr=127.0.0.1:").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no TLS address in {log}"));
    let mut roots = RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let options = ConnectOptions::new(wsengine_tokio::Config::default()).tls(std::sync::Arc::new(tls));
    let request = ClientRequest::new(format!("wss://localhost:{port}/ws?user_id=secure").as_str()).unwrap();
    let (mut ws, _) = tokio::time::timeout(WAIT, wsengine_tokio::connect_with(&request, &options))
        .await
        .expect("connect in time")
        .expect("wss connect");
    send_json(&mut ws, json!({"action":"ping","ref":"tls"})).await;
    assert_eq!(recv_type(&mut ws, "pong").await["ref"], "tls");
}

#[tokio::test]
#[ignore = "needs the system Chromium and playwright-core (npm ci in interop/); run with --ignored"]
async fn demo_page_in_headless_chromium() {
    let server = Server::start(&[], &[]);
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let playwright = manifest.join("../interop/node_modules/playwright-core");
    assert!(
        playwright.exists(),
        "playwright-core is missing: run `npm ci` in interop/"
    );
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wsengine-demo.png");
    let _ = std::fs::remove_file(&screenshot);
    let run = tokio::process::Command::new("node")
        .arg(manifest.join("tests/serve/demo_browser.mjs"))
        .arg(format!("http://{}/", server.addr))
        .arg(&screenshot)
        .env("PLAYWRIGHT_CORE", &playwright)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("browser check in time")
        .expect("run node");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(screenshot.exists(), "no screenshot at {}", screenshot.display());
}

#[tokio::test]
async fn jwt_auth_names_the_user_and_refuses_without_a_token() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let secret = "0123456789abcdef0123456789abcdef";
    let config = temp_file("jwt.toml", &format!("[auth]\njwt_secret = {secret:?}\n"));
    let server = Server::start(&["--config", config.to_str().unwrap()], &[]);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(json!({"sub":"jwt-user","exp":exp}).to_string())
    );
    let hex = wsengine_hub::pusher::sign::hmac_hex(secret, &input);
    let signature: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));

    let refused = tokio::time::timeout(WAIT, wsengine_tokio::connect(&server.url("/ws?user_id=mallory")))
        .await
        .unwrap();
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("401")),
        "{:?}",
        refused.err()
    );
    let mut a = connect(&server.url(&format!("/ws?token={token}"))).await;
    let mut b = connect(&server.url(&format!("/ws?token={token}"))).await;
    for ws in [&mut a, &mut b] {
        send_json(ws, json!({"action":"subscribe","channel":"c"})).await;
        recv_type(ws, "subscribed").await;
    }
    send_json(&mut a, json!({"action":"broadcast","channel":"c","data":"signed"})).await;
    assert_eq!(recv_type(&mut b, "message").await["from"], "jwt-user");
}
