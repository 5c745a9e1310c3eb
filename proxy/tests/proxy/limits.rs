//! `[limits] max_connections` and `[headers] allow`, end to end.

use wsengine_tokio::CloseCode;

use crate::support::{Backend, HttpBackend, config, connect, http_get, proxy, status_of, whoami};

#[tokio::test]
async fn max_connections_answers_503_when_full_and_frees_slots_as_sockets_close() {
    let backend = Backend::start("a").await;
    let (_proxy, addr) = proxy(&config(&[&backend], "[limits]\nmax_connections = 2\n")).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let (mut ws, _) = connect(addr, "/ws").await.unwrap();
        // A round trip: the relay (and so its slot) is certainly running.
        assert_eq!(whoami(&mut ws).await, "a");
        held.push(ws);
    }
    assert_eq!(status_of(connect(addr, "/ws").await), 503);
    // Plain HTTP counts against the same limit.
    let response = http_get(addr, "/ws/page", "").await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.ends_with("too many connections\n"), "{response}");
    // The held sockets are unaffected.
    for ws in &mut held {
        assert_eq!(whoami(ws).await, "a");
    }
    // Once one closes, its slot is free again (released when its relay ends, so retried).
    let mut first = held.remove(0);
    first.close(CloseCode::NORMAL, "").await.unwrap();
    let mut reopened = None;
    for _ in 0..500 {
        match connect(addr, "/ws").await {
            Ok((ws, _)) => {
                reopened = Some(ws);
                break;
            }
            Err(e) => assert_eq!(status_of::<()>(Err(e)), 503),
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut ws = reopened.expect("a slot freed by the close");
    assert_eq!(whoami(&mut ws).await, "a");
    assert_eq!(status_of(connect(addr, "/ws").await), 503);
}

#[tokio::test]
async fn max_connections_holds_for_upgrades_arriving_together() {
    let backend = Backend::start("a").await;
    let (_proxy, addr) = proxy(&config(&[&backend], "[limits]\nmax_connections = 2\n")).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        tasks.spawn(async move { connect(addr, "/ws").await.map(|(ws, _)| ws) });
    }
    let (mut open, mut refused) = (Vec::new(), 0);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(ws) => open.push(ws),
            Err(e) => {
                assert_eq!(status_of::<()>(Err(e)), 503);
                refused += 1;
            }
        }
    }
    assert_eq!((open.len(), refused), (2, 6));
    for ws in &mut open {
        assert_eq!(whoami(ws).await, "a");
    }
    assert_eq!(backend.seen.lock().unwrap().accepted, 2);
}

#[tokio::test]
async fn header_allow_list_filters_upgrades_and_plain_http() {
    let backend = Backend::start("a").await;
    let http = HttpBackend::start("h", None).await;
    let text = format!(
        "listen = \"127.0.0.1:0\"\n[headers]\nallow = [\"X-Keep\", \"cookie\"]\n\
         [[routes]]\npath = \"/ws\"\nupstream = \"ws\"\n\
         [[routes]]\npath = \"/app\"\nupstream = \"h\"\n\
         [[upstreams]]\nname = \"ws\"\nurl = \"{}\"\n[[upstreams]]\nname = \"h\"\nurl = \"http://127.0.0.1:{}\"\n",
        backend.url(),
        http.port
    );
    let (_proxy, addr) = proxy(&text).await;

    let request = wsengine_tokio::ClientRequest::new(format!("ws://{addr}/ws"))
        .unwrap()
        .protocol("chat")
        .header("x-keep", "1")
        .unwrap()
        .header("x-drop", "2")
        .unwrap()
        .header("cookie", "c=1")
        .unwrap()
        .header("authorization", "Bearer t")
        .unwrap();
    let (mut ws, response) = wsengine_tokio::connect_with(&request, &Default::default())
        .await
        .unwrap();
    // The handshake's own headers are not subject to the list: the subprotocol still passes.
    assert_eq!(response.protocol(), Some("chat"));
    assert_eq!(whoami(&mut ws).await, "a");
    let headers = backend.seen.lock().unwrap().headers[0].clone();
    assert_eq!(headers["x-keep"], "1");
    assert_eq!(headers["cookie"], "c=1");
    assert!(!headers.contains_key("x-drop"), "{headers:?}");
    assert!(!headers.contains_key("authorization"), "{headers:?}");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert!(headers.contains_key("forwarded"), "{headers:?}");

    let response = http_get(addr, "/app", "X-Keep: 1\r\nX-Drop: 2\r\nAuthorization: Bearer t\r\n").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let head = http.heads.lock().unwrap()[0].clone();
    assert!(head.contains("\r\nx-keep: 1\r\n"), "{head}");
    assert!(!head.contains("x-drop"), "{head}");
    assert!(!head.contains("authorization"), "{head}");
    assert!(head.contains("\r\nx-forwarded-for: 127.0.0.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nhost: 127.0.0.1:{}\r\n", http.port)),
        "{head}"
    );
}
