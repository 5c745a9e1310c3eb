//! Relay behaviour: echo, close codes both ways, subprotocols, rejections, failures, heartbeats.

use std::time::Duration;

use bytes::Bytes;
use wsengine_tokio::{CloseCause, CloseCode, Error, Incoming, Message, MessageKind};

use crate::support::{Backend, config, connect, proxy, status_of};

#[tokio::test]
async fn echoes_and_passes_client_close_through_exactly() {
    let backend = Backend::start("a").await;
    let (_proxy, addr) = proxy(&config(&[&backend], "")).await;
    let (mut ws, _) = connect(addr, "/ws/room?x=1").await.unwrap();
    ws.send("hello").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Message::from("hello"));
    ws.send(Bytes::from_static(b"\x00\x01")).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap(),
        Message::Binary(Bytes::from_static(b"\x00\x01"))
    );
    let info = ws.close(CloseCode(4001), "bye now").await.unwrap();
    assert_eq!(info.code, CloseCode(4001));
    let closes = backend.closes(1).await;
    assert_eq!(
        (closes[0].code, closes[0].reason.as_str()),
        (CloseCode(4001), "bye now")
    );
    assert_eq!(closes[0].cause, CloseCause::RemoteClose);
    // strip_prefix: the backend saw the rest of the path and the query.
    assert_eq!(backend.seen.lock().unwrap().paths, ["/room?x=1"]);
}

#[tokio::test]
async fn backend_close_code_and_reason_reach_the_client_exactly() {
    let backend = Backend::start("a").await;
    let (_proxy, addr) = proxy(&config(&[&backend], "")).await;
    let (mut ws, _) = connect(addr, "/ws").await.unwrap();
    ws.send("close:4321:see you").await.unwrap();
    match ws.recv().await {
        Err(Error::Closed(info)) => {
            assert_eq!((info.code, info.reason.as_str()), (CloseCode(4321), "see you"));
            assert_eq!(info.cause, CloseCause::RemoteClose);
        }
        other => panic!("expected the backend's close, got {other:?}"),
    }
}

#[tokio::test]
async fn forwarding_headers_reach_the_backend() {
    let backend = Backend::start("a").await;
    let (_proxy, addr) = proxy(&config(&[&backend], "")).await;
    let request = wsengine_tokio::ClientRequest::new(format!("ws://{addr}/ws"))
        .unwrap()
        .header("cookie", "s=1")
        .unwrap()
        .header("x-forwarded-for", "10.9.8.7")
        .unwrap();
    let (mut ws, _) = wsengine_tokio::connect_with(&request, &Default::default())
        .await
        .unwrap();
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    let seen = backend.seen.lock().unwrap();
    let headers = &seen.headers[0];
    assert_eq!(headers["cookie"], "s=1");
    assert_eq!(headers["x-forwarded-for"], "10.9.8.7, 127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], addr.to_string());
    assert!(
        headers["forwarded"]
            .to_str()
            .unwrap()
            .starts_with("for=127.0.0.1;proto=http")
    );
}

#[tokio::test]
async fn subprotocol_negotiated_end_to_end() {
    let backend = Backend::start("a").await;
    let (_proxy, addr) = proxy(&config(&[&backend], "")).await;
    let request = wsengine_tokio::ClientRequest::new(format!("ws://{addr}/ws"))
        .unwrap()
        .protocol("superchat")
        .protocol("chat");
    let (mut ws, response) = wsengine_tokio::connect_with(&request, &Default::default())
        .await
        .unwrap();
    assert_eq!(response.protocol(), Some("chat"));
    assert_eq!(ws.protocol(), Some("chat"));
    assert_eq!(
        backend.seen.lock().unwrap().protocols,
        [vec!["superchat".to_owned(), "chat".to_owned()]]
    );
    // No protocol offered: none chosen.
    let (_plain, response) = connect(addr, "/ws").await.unwrap();
    assert_eq!(response.protocol(), None);
    ws.close(CloseCode::NORMAL, "").await.unwrap();
}

#[tokio::test]
async fn backend_rejection_status_passes_through_and_unreachable_is_502() {
    let backend = Backend::start("a").await;
    let (_proxy, addr) = proxy(&config(&[&backend], "")).await;
    assert_eq!(status_of(connect(addr, "/ws/reject").await), 403);
    // Nothing listens on a port we bound and released.
    let (_held, dead) = crate::support::dead_port();
    let text = format!(
        "listen = \"127.0.0.1:0\"\n[[routes]]\npath = \"/\"\nupstream = \"d\"\n[[upstreams]]\nname = \"d\"\nurl = \"ws://{dead}\"\n"
    );
    let (_proxy, addr) = proxy(&text).await;
    assert_eq!(status_of(connect(addr, "/x").await), 502);
    // No route: 404.
    let (_proxy, addr) = proxy(&config(&[&backend], "")).await;
    assert_eq!(status_of(connect(addr, "/other").await), 404);
}

#[tokio::test]
async fn backend_killed_mid_stream_closes_the_client_with_bad_gateway() {
    let backend = Backend::start("a").await;
    let (_proxy, addr) = proxy(&config(&[&backend], "")).await;
    let (mut ws, _) = connect(addr, "/ws").await.unwrap();
    ws.send("ping?").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Message::from("ping?"));
    backend.kill();
    match ws.recv().await {
        Err(Error::Closed(info)) => {
            assert_eq!(info.cause, CloseCause::RemoteClose);
            assert_eq!(info.code, CloseCode::BAD_GATEWAY, "{info:?}");
            assert!(info.reason.starts_with("backend went away"), "{info:?}");
        }
        other => panic!("expected a close, got {other:?}"),
    }
}

#[tokio::test]
async fn client_that_vanishes_closes_the_backend_with_going_away() {
    let backend = Backend::start("a").await;
    let (_proxy, addr) = proxy(&config(&[&backend], "")).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = wsengine_tokio::ClientRequest::new(format!("ws://{addr}/ws")).unwrap();
    let (mut ws, _) = wsengine_tokio::client(tcp, &request, wsengine_tokio::Config::default())
        .await
        .unwrap();
    ws.send("x").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Message::from("x"));
    drop(ws);
    let closes = backend.closes(1).await;
    assert_eq!(
        (closes[0].code, closes[0].reason.as_str()),
        (CloseCode::GOING_AWAY, "client went away")
    );
}

#[tokio::test]
async fn fragments_are_relayed_as_they_arrive() {
    let backend = Backend::start("a").await;
    let (_proxy, addr) = proxy(&config(&[&backend], "")).await;
    let (mut ws, _) = connect(addr, "/ws").await.unwrap();
    // "é" split across fragments: each leg checks UTF-8 across the boundary.
    ws.send_fragment(MessageKind::Text, Bytes::from_static(b"caf\xC3"), false)
        .await
        .unwrap();
    ws.send_fragment(MessageKind::Text, Bytes::from_static(b"\xA9 au lait"), true)
        .await
        .unwrap();
    assert_eq!(ws.recv().await.unwrap(), Message::from("café au lait"));
    // Invalid UTF-8 from the client is answered by the engine on the client leg (1007).
    ws.send_fragment(MessageKind::Binary, Bytes::from_static(b"ok"), true)
        .await
        .unwrap();
    assert_eq!(ws.recv().await.unwrap(), Message::Binary(Bytes::from_static(b"ok")));
    ws.close(CloseCode::NORMAL, "").await.unwrap();
}

fn heartbeat(interval: &str, timeout: &str) -> String {
    format!("[heartbeat]\ninterval = \"{interval}\"\ntimeout = \"{timeout}\"\n")
}

#[tokio::test(start_paused = true)]
async fn heartbeat_pings_reach_an_idle_client() {
    let backend = Backend::start("a").await;
    let (_proxy, addr) = proxy(&config(&[&backend], &heartbeat("15s", "10s"))).await;
    let mut options = wsengine_tokio::ConnectOptions::default();
    let mut config = wsengine_tokio::Config::default();
    config.ping_interval = None;
    options.config = config.into();
    let request = wsengine_tokio::ClientRequest::new(format!("ws://{addr}/ws")).unwrap();
    let (mut ws, _) = wsengine_tokio::connect_with(&request, &options).await.unwrap();
    let start = tokio::time::Instant::now();
    for round in 1..=3u32 {
        match ws.recv_incoming().await.unwrap() {
            Incoming::Ping(_) => {}
            other => panic!("expected a ping, got {other:?}"),
        }
        // Virtual time: the pings come at the interval, answered each time.
        assert!(start.elapsed() >= Duration::from_secs(15) * round, "ping {round} early");
        assert!(start.elapsed() < Duration::from_secs(16) * round, "ping {round} late");
    }
    ws.close(CloseCode::NORMAL, "").await.unwrap();
}

// Real time, short heartbeat: detection depends on loopback I/O, which a paused clock would
// race. The lower bound is exact (a pong timeout cannot fire before interval + timeout after
// the connection exists); the
// upper bound only catches a detection that never comes.
const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn a_silent_client_is_detected_within_interval_plus_timeout() {
    let backend = Backend::start("a").await;
    let (_proxy, addr) = proxy(&config(&[&backend], &heartbeat("300ms", "300ms"))).await;
    let mut config = wsengine_tokio::Config::default();
    config.auto_pong = false;
    config.ping_interval = None;
    // Taken before the connection exists, so the proxy's timers cannot have started earlier.
    let start = std::time::Instant::now();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = wsengine_tokio::ClientRequest::new(format!("ws://{addr}/ws")).unwrap();
    let (ws, _) = wsengine_tokio::client(tcp, &request, config).await.unwrap();
    // The client never reads: the proxy's pings go unanswered.
    let closes = backend.closes(1).await;
    let elapsed = start.elapsed();
    assert!(elapsed >= INTERVAL + TIMEOUT, "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert_eq!(
        (closes[0].code, closes[0].reason.as_str()),
        (CloseCode::GOING_AWAY, "client went away")
    );
    drop(ws);
}

#[tokio::test]
async fn a_silent_backend_is_detected_within_interval_plus_timeout() {
    let mut silent = wsengine_tokio::Config::default();
    silent.auto_pong = false;
    silent.ping_interval = None;
    // A backend that accepts and then never reads.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = wsengine_tokio::accept(tcp, silent).await.unwrap();
        std::future::pending::<()>().await;
        drop(ws);
    });
    let text = format!(
        // No health checks: this backend accepts one connection only.
        "listen = \"127.0.0.1:0\"\n{}\n[health_check]\ninterval = \"0s\"\n[[routes]]\npath = \"/\"\nupstream = \"s\"\n[[upstreams]]\nname = \"s\"\nurl = \"{url}\"\n",
        heartbeat("300ms", "300ms")
    );
    let (_proxy, addr) = proxy(&text).await;
    let start = std::time::Instant::now();
    let (mut ws, _) = connect(addr, "/").await.unwrap();
    match ws.recv().await {
        Err(Error::Closed(info)) => assert!(info.reason.starts_with("backend went away"), "{info:?}"),
        other => panic!("expected a close, got {other:?}"),
    }
    // The client answers the proxy's pings, so only the backend leg times out.
    let elapsed = start.elapsed();
    assert!(elapsed >= INTERVAL + TIMEOUT, "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    hold.abort();
}

#[tokio::test]
async fn compression_is_negotiated_per_leg_following_the_client() {
    let backend = Backend::start("a").await;
    let (_proxy, addr) = proxy(&config(&[&backend], "")).await;
    // A client without compression: the backend is not offered it either.
    let (mut plain, response) = connect(addr, "/ws").await.unwrap();
    assert!(response.headers().get("sec-websocket-extensions").is_none());
    plain.close(CloseCode::NORMAL, "").await.unwrap();
    // A client offering permessage-deflate gets it, and the backend leg offers it on.
    let mut config = wsengine_tokio::Config::default();
    config.deflate = Some(Default::default());
    let request = wsengine_tokio::ClientRequest::new(format!("ws://{addr}/ws")).unwrap();
    let options = wsengine_tokio::ConnectOptions::new(config);
    let (mut ws, response) = wsengine_tokio::connect_with(&request, &options).await.unwrap();
    let agreed = response
        .headers()
        .get("sec-websocket-extensions")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(agreed.starts_with("permessage-deflate"), "{agreed}");
    let text = "compressible ".repeat(1000);
    ws.send(text.clone()).await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Message::from(text));
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    let seen = backend.seen.lock().unwrap();
    assert!(seen.headers[0].get("sec-websocket-extensions").is_none());
    let offered = seen.headers[1]["sec-websocket-extensions"].to_str().unwrap();
    assert!(offered.contains("permessage-deflate"), "{offered}");
}
