//! Upgrading requests served by axum (hyper 1.x) to WebSockets.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::any;
use http::StatusCode;
use wsengine_tokio::upgrade::upgrade;
use wsengine_tokio::{
    Accept, ClientRequest, CloseCode, Config, ConnectOptions, Error, HandshakeError, Message, Reject,
};

#[allow(clippy::result_large_err)]
fn decide(request: &wsengine_tokio::Request) -> Result<Accept, Reject> {
    if request
        .headers()
        .get("authorization")
        .is_none_or(|v| v != "Bearer good")
    {
        return Err(Reject::new(StatusCode::UNAUTHORIZED).body("who are you?"));
    }
    Ok(Accept::new().protocol("echo"))
}

async fn handler(mut request: Request) -> Response {
    match upgrade::<_, Body>(&mut request, Config::default(), decide) {
        Ok((response, pending)) => {
            tokio::spawn(async move {
                let mut ws = pending.await.expect("upgraded");
                while let Ok(message) = ws.recv().await {
                    if ws.send(message).await.is_err() {
                        break;
                    }
                }
            });
            response
        }
        Err(response) => response,
    }
}

async fn serve() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, Router::new().route("/ws", any(handler))).await });
    port
}

#[tokio::test]
async fn axum_upgrade_accepts_echoes_and_closes() {
    let port = serve().await;
    let request = ClientRequest::new(format!("ws://127.0.0.1:{port}/ws").as_str())
        .unwrap()
        .protocol("echo")
        .header("Authorization", "Bearer good")
        .unwrap();
    let (mut ws, response) = wsengine_tokio::connect_with(&request, &ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(response.protocol(), Some("echo"));
    ws.send("through axum").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Message::from("through axum"));
    let big = vec![9u8; 3 << 20];
    ws.send(big.clone()).await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Message::from(big));
    let info = ws.close(CloseCode::NORMAL, "bye").await.unwrap();
    assert!(info.clean, "{info:?}");
}

#[tokio::test]
async fn axum_upgrade_rejects_and_refuses() {
    let port = serve().await;
    let request = ClientRequest::new(format!("ws://127.0.0.1:{port}/ws").as_str()).unwrap();
    let error = wsengine_tokio::connect_with(&request, &ConnectOptions::default())
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Handshake(HandshakeError::UnexpectedStatus(StatusCode::UNAUTHORIZED))
        ),
        "{error:?}"
    );

    // A plain GET is told to upgrade; a wrong version is told which one to use.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for (request, status, header) in [
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "426",
            "upgrade: websocket",
        ),
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            "426",
            "sec-websocket-version: 13",
        ),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.unwrap();
        let response = response.to_ascii_lowercase();
        assert!(response.starts_with(&format!("http/1.1 {status}")), "{response}");
        assert!(response.contains(header), "{response}");
    }
}
