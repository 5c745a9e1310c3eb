//! The opening handshake of native and tank connections from the request head the listener
//! already read: the core checks the request and builds the `101`, and the WebSocket starts
//! from the negotiated settings, as after an HTTP server's upgrade. Unlike the driver's accept,
//! the connection keeps neither the request nor the handshake's read buffer: measured, that is
//! about 5 KiB less per connection.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use wsengine::{Accept, Reject, Role};
use wsengine_tokio::{TokioIo, TokioTimer};

use super::accept::Prefixed;
use super::state::{Admitted, Shared};

/// How long writing the handshake answer may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The accepted connection (its first bytes after the head still to be read), or `None` when
/// the request was answered with an error.
pub(crate) async fn accept<S>(
    shared: &Shared,
    mut stream: Prefixed<S>,
    head_len: usize,
    peer: SocketAddr,
) -> Option<(wsengine_driver::WebSocket<TokioIo<Prefixed<S>>, TokioTimer>, Admitted)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = stream.head().get(..head_len).and_then(parse_head);
    let consumed = head_len.min(stream.head().len());
    stream.head_mut().advance(consumed);
    let Some(request) = request else {
        answer(&mut stream, &Reject::new(http::StatusCode::BAD_REQUEST)).await;
        return None;
    };
    let parsed = match wsengine::Request::from_http(&request) {
        Ok(parsed) => parsed,
        Err(error) => {
            tracing::debug!(%error, "handshake refused");
            let reject = Reject::for_error(&error).unwrap_or_else(|| Reject::new(http::StatusCode::BAD_REQUEST));
            answer(&mut stream, &reject).await;
            return None;
        }
    };
    let admitted = match shared.admit(&parsed, Some(peer)) {
        Ok(admitted) => admitted,
        Err(rejection) => {
            answer(&mut stream, &rejection.to_reject()).await;
            return None;
        }
    };
    let config = shared.hub.websocket_config();
    let (response, negotiated) = match parsed.response(&Accept::new(), &config) {
        Ok(answer) => answer,
        Err(misuse) => {
            tracing::error!(%misuse, "handshake: invalid accept");
            answer(&mut stream, &Reject::new(http::StatusCode::INTERNAL_SERVER_ERROR)).await;
            return None;
        }
    };
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    write_headers(&mut out, response.headers());
    out.extend_from_slice(b"\r\n");
    if !write(&mut stream, &out).await {
        return None;
    }
    let mut ws = wsengine_driver::WebSocket::from_upgraded(TokioIo::new(stream), Role::Server, config, &negotiated);
    ws.set_peer_addr(peer);
    Some((ws, admitted))
}

/// The request head as an `http::Request` (method, target, version, headers).
fn parse_head(head: &[u8]) -> Option<http::Request<()>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    if !matches!(parsed.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let version = match parsed.version? {
        0 => http::Version::HTTP_10,
        _ => http::Version::HTTP_11,
    };
    let mut builder = http::Request::builder()
        .method(parsed.method?)
        .uri(parsed.path?)
        .version(version);
    for header in parsed.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    builder.body(()).ok()
}

fn write_headers(out: &mut Vec<u8>, headers: &http::HeaderMap) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Answers with an error status and closes.
async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, reject: &Reject) {
    let mut out = Vec::with_capacity(256 + reject.body.len());
    let reason = reject.status.canonical_reason().unwrap_or("");
    out.extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", reject.status.as_u16()).as_bytes());
    write_headers(&mut out, &reject.headers);
    out.extend_from_slice(format!("content-length: {}\r\nconnection: close\r\n\r\n", reject.body.len()).as_bytes());
    out.extend_from_slice(&reject.body);
    if write(stream, &out).await {
        let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.shutdown()).await;
    }
}

async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_head_into_a_request() {
        let request = parse_head(b"GET /ws?user_id=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n").unwrap();
        assert_eq!(request.uri().path(), "/ws");
        assert_eq!(request.uri().query(), Some("user_id=a"));
        assert_eq!(request.headers()["upgrade"], "websocket");
        assert!(parse_head(b"GET /ws HTTP/1.1\r\nHost").is_none());
    }
}
