//! Balancing policies, least connections with long-lived sockets, health, reload, metrics, HTTP.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsengine_tokio::{CloseCode, Message};

use crate::support::{Backend, config, connect, eventually, http_get, proxy, whoami};

async fn distribution(method: &str, weights: &[u32], n: usize) -> Vec<usize> {
    let mut backends = Vec::new();
    for i in 0..weights.len() {
        backends.push(Backend::start(&i.to_string()).await);
    }
    let refs: Vec<&Backend> = backends.iter().collect();
    let mut text = config(&refs, &format!("[load_balancing]\nmethod = \"{method}\"\n"));
    for (i, w) in weights.iter().enumerate() {
        text = text.replacen(
            &format!("url = \"{}\"\n", backends[i].url()),
            &format!("url = \"{}\"\nweight = {w}\n", backends[i].url()),
            1,
        );
    }
    let (_proxy, addr) = proxy(&text).await;
    let mut counts = vec![0; weights.len()];
    for _ in 0..n {
        let (mut ws, _) = connect(addr, "/ws").await.unwrap();
        let id: usize = whoami(&mut ws).await.parse().unwrap();
        counts[id] += 1;
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    }
    counts
}

#[tokio::test]
async fn round_robin_spreads_evenly() {
    assert_eq!(distribution("round_robin", &[1, 1, 1], 30).await, [10, 10, 10]);
}

#[tokio::test]
async fn weighted_follows_weights() {
    assert_eq!(distribution("weighted", &[1, 2, 3], 60).await, [10, 20, 30]);
}

#[tokio::test]
async fn least_connections_balances_long_lived_sockets() {
    let backends = [
        Backend::start("0").await,
        Backend::start("1").await,
        Backend::start("2").await,
    ];
    let refs: Vec<&Backend> = backends.iter().collect();
    let (proxy, addr) = proxy(&config(&refs, "[load_balancing]\nmethod = \"least_connections\"\n")).await;
    let mut held = Vec::new();
    for _ in 0..6 {
        let (mut ws, _) = connect(addr, "/ws").await.unwrap();
        let id = whoami(&mut ws).await;
        held.push((id, ws));
    }
    let mut per: HashMap<String, usize> = HashMap::new();
    for (id, _) in &held {
        *per.entry(id.clone()).or_default() += 1;
    }
    assert!(per.values().all(|&n| n == 2), "{per:?}");
    // Both sockets on backend 1 end: the next two connections go there, not round robin.
    for (id, ws) in held.iter_mut() {
        if id == "1" {
            ws.close(CloseCode::NORMAL, "").await.unwrap();
        }
    }
    let pool = proxy.pool("p").unwrap();
    eventually("backend 1 to show no open sockets", || {
        pool.backends()
            .iter()
            .find(|b| b.url.to_string() == backends[1].url())
            .unwrap()
            .open()
            == 0
    })
    .await;
    for _ in 0..2 {
        let (mut ws, _) = connect(addr, "/ws").await.unwrap();
        assert_eq!(whoami(&mut ws).await, "1");
        held.push(("1".into(), ws));
    }
}

#[tokio::test(start_paused = true)]
async fn health_checks_eject_and_restore_a_backend() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let b_addr = b.addr;
    let checks =
        "[health_check]\ninterval = \"1s\"\ntimeout = \"500ms\"\nunhealthy_threshold = 2\nhealthy_threshold = 1\n";
    let (proxy, addr) = proxy(&config(&[&a, &b], checks)).await;
    let pool = proxy.pool("p").unwrap();
    let down = |pool: &wsengine_proxy::Pool| {
        pool.backends()
            .iter()
            .any(|x| x.url.port == b_addr.port() && !x.is_healthy())
    };
    drop(b);
    eventually("b marked down", || down(&pool)).await;
    for _ in 0..4 {
        let (mut ws, _) = connect(addr, "/ws").await.unwrap();
        assert_eq!(whoami(&mut ws).await, "a");
    }
    let metrics = proxy.metrics();
    assert!(
        metrics.contains(&format!(
            "wsengine_proxy_backend_healthy{{upstream=\"p\",backend=\"http://{b_addr}\"}} 0"
        )),
        "{metrics}"
    );
    let _b = Backend::start_on(&b_addr.to_string(), "b", Default::default()).await;
    eventually("b marked up", || !down(&pool)).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (mut ws, _) = connect(addr, "/ws").await.unwrap();
        seen.push(whoami(&mut ws).await);
    }
    seen.sort();
    assert_eq!(seen, ["a", "b"]);
}

#[tokio::test]
async fn passive_ejection_skips_a_dead_backend_then_retries_it() {
    let a = Backend::start("a").await;
    let (_held, dead) = crate::support::dead_port();
    let mut text = config(
        &[&a],
        "[health_check]\ninterval = \"0s\"\nmax_fails = 1\nfail_timeout = \"1h\"\n",
    );
    text.push_str(&format!("[[upstreams]]\nname = \"p\"\nurl = \"http://{dead}\"\n"));
    let (proxy, addr) = proxy(&text).await;
    // Every connection succeeds: the dead backend costs one retry, then is left out.
    for _ in 0..4 {
        let (mut ws, _) = connect(addr, "/ws").await.unwrap();
        assert_eq!(whoami(&mut ws).await, "a");
    }
    let pool = proxy.pool("p").unwrap();
    assert!(
        pool.backends()
            .iter()
            .any(|b| b.url.port == dead.port() && b.is_ejected())
    );
}

#[tokio::test]
async fn reload_keeps_open_connections_and_moves_new_ones() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let (proxy, addr) = proxy(&config(&[&a], "")).await;
    let (mut old, _) = connect(addr, "/ws").await.unwrap();
    assert_eq!(whoami(&mut old).await, "a");
    proxy
        .reload(wsengine_proxy::Config::parse(&config(&[&b], ""), "reload").unwrap())
        .unwrap();
    for _ in 0..3 {
        let (mut ws, _) = connect(addr, "/ws").await.unwrap();
        assert_eq!(whoami(&mut ws).await, "b");
    }
    // The connection opened before the reload still relays, both ways.
    for i in 0..10 {
        old.send(format!("m{i}")).await.unwrap();
        assert_eq!(old.recv().await.unwrap(), Message::from(format!("m{i}")));
    }
    old.close(CloseCode::NORMAL, "").await.unwrap();
    assert_eq!(a.closes(1).await[0].code, CloseCode::NORMAL);
}

#[tokio::test(start_paused = true)]
async fn reload_drains_removed_backends_after_the_delay() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let (proxy, addr) = proxy(&config(&[&a], "drain_timeout = \"30s\"\n")).await;
    let (mut old, _) = connect(addr, "/ws").await.unwrap();
    assert_eq!(whoami(&mut old).await, "a");
    let start = tokio::time::Instant::now();
    proxy
        .reload(wsengine_proxy::Config::parse(&config(&[&b], "drain_timeout = \"30s\"\n"), "r").unwrap())
        .unwrap();
    match old.recv().await {
        Err(wsengine_tokio::Error::Closed(info)) => assert_eq!(info.code, CloseCode::GOING_AWAY),
        other => panic!("expected a drain close, got {other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_secs(30));
}

#[tokio::test]
async fn metrics_count_per_route_and_backend() {
    let a = Backend::start("a").await;
    let (proxy, addr) = proxy(&config(&[&a], "")).await;
    let (mut ws, _) = connect(addr, "/ws").await.unwrap();
    ws.send("12345").await.unwrap();
    ws.recv().await.unwrap();
    let text = http_get(addr, "/metrics", "").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("wsengine_proxy_route_open_websockets{route=\"/ws\",upstream=\"p\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("wsengine_proxy_route_bytes_to_backend_total{route=\"/ws\",upstream=\"p\"} 5"),
        "{text}"
    );
    let backend = format!("{{upstream=\"p\",backend=\"{}\"}}", a.url());
    assert!(
        text.contains(&format!("wsengine_proxy_backend_messages_to_client_total{backend} 1")),
        "{text}"
    );
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    eventually("open gauge back to 0", || {
        proxy
            .metrics()
            .contains("wsengine_proxy_route_open_websockets{route=\"/ws\",upstream=\"p\"} 0")
    })
    .await;
}

#[tokio::test]
async fn plain_http_is_forwarded_with_forwarding_headers() {
    // A tiny HTTP backend answering with the request head it received.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..2 {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                if tcp.read(&mut byte).await.unwrap() == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\nKeep-Alive: timeout=5\r\n\r\n",
                head.len()
            );
            tcp.write_all(response.as_bytes()).await.unwrap();
            tcp.write_all(&head).await.unwrap();
        }
    });
    let text = format!(
        "listen = \"127.0.0.1:0\"\n[[routes]]\npath = \"/app\"\nupstream = \"h\"\nstrip_prefix = true\n[[upstreams]]\nname = \"h\"\nurl = \"http://{backend}\"\n"
    );
    let (_proxy, addr) = proxy(&text).await;
    let response = http_get(
        addr,
        "/app/page?q=1",
        "X-Hop: 1\r\nConnection: X-Hop\r\nCookie: c=1\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(
        !lower.contains("keep-alive: timeout"),
        "hop-by-hop response header forwarded: {response}"
    );
    assert!(response.contains("GET /page?q=1 HTTP/1.1"), "{response}");
    assert!(lower.contains("x-forwarded-for: 127.0.0.1"), "{response}");
    assert!(lower.contains(&format!("x-forwarded-host: {addr}")), "{response}");
    assert!(lower.contains("cookie: c=1"), "{response}");
    assert!(!lower.contains("x-hop"), "{response}");
}

#[tokio::test]
async fn routes_by_host_allowed_paths_and_origin() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let text = format!(
        "listen = \"127.0.0.1:0\"\n\
         [[routes]]\npath = \"/ws\"\nupstream = \"a\"\nallowed_paths = [\"/ws\", \"/ws/room\"]\n\
         allowed_origins = [\"https://*.example.com\"]\n\
         [[routes]]\npath = \"/ws\"\nhost = \"b.test\"\nupstream = \"b\"\n\
         [[upstreams]]\nname = \"a\"\nurl = \"{}\"\n[[upstreams]]\nname = \"b\"\nurl = \"{}\"\n",
        a.url(),
        b.url()
    );
    let (_proxy, addr) = proxy(&text).await;
    let open = |host: &'static str, path: &'static str, origin: Option<&'static str>| async move {
        let mut request = wsengine_tokio::ClientRequest::new(format!("ws://{addr}{path}"))
            .unwrap()
            .header("host", host)
            .unwrap();
        if let Some(origin) = origin {
            request = request.header("origin", origin).unwrap();
        }
        wsengine_tokio::connect_with(&request, &Default::default()).await
    };
    let status = |r: Result<_, wsengine_tokio::Error>| match r {
        Err(wsengine_tokio::Error::Handshake(wsengine_tokio::HandshakeError::UnexpectedStatus(s))) => s.as_u16(),
        Ok(_) => 101,
        Err(e) => panic!("{e}"),
    };
    let (mut ws, _) = open("a.test", "/ws/room", Some("https://app.example.com"))
        .await
        .unwrap();
    assert_eq!(whoami(&mut ws).await, "a");
    assert_eq!(
        status(open("a.test", "/ws/other", Some("https://app.example.com")).await),
        404
    );
    assert_eq!(status(open("a.test", "/ws", Some("https://evil.test")).await), 403);
    assert_eq!(status(open("a.test", "/ws", None).await), 403);
    let (mut ws, _) = open("B.test:80", "/ws/anything", None).await.unwrap();
    assert_eq!(whoami(&mut ws).await, "b");
}
