//! Upgrade checks without sockets: `admit_http` for requests an HTTP server hands over.

use std::net::SocketAddr;

use wsengine_hub::Hub;

use crate::suite::config;

fn upgrade(uri: &str) -> http::Request<()> {
    http::Request::builder()
        .uri(uri)
        .header("host", "example.com")
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap()
}

#[test]
fn admit_http_identifies_and_refuses() {
    let hub = Hub::new(config());
    let peer: SocketAddr = "127.0.0.9:5000".parse().unwrap();
    let admission = hub.admit_http(&upgrade("/ws?user_id=zoe"), Some(peer)).unwrap();
    assert_eq!(&*admission.identity().user_id, "zoe");
    assert_eq!(admission.client(), Some(peer));
    let plain = http::Request::builder().uri("/ws").body(()).unwrap();
    let refused = hub.admit_http(&plain, Some(peer)).unwrap_err();
    assert!(refused.status.is_client_error(), "{refused:?}");
}
