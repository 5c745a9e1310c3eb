//! The listener: hyper serves each connection; WebSocket upgrades are proxied through the
//! engine on both legs, everything else is forwarded as plain HTTP.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::balance::Lease;
use crate::headers::{self, Client};
use crate::route::{self, Route};
use crate::state::{Runtime, Shared};

/// Response bodies: short ones of our own, or a backend's streamed through.
pub(crate) type Body = BoxBody<Bytes, hyper::Error>;

/// Accepts connections until the listener fails.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors or a connection reset before accept: not fatal, but
                // do not spin on it.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(shared.clone(), tcp, addr));
    }
}

async fn connection(shared: Arc<Shared>, tcp: TcpStream, addr: SocketAddr) {
    let Some(runtime) = shared.runtime() else { return };
    match runtime.tls.clone() {
        Some(acceptor) => match acceptor.accept(tcp).await {
            Ok(tls) => serve_http(shared, tls, Client { addr, tls: true }).await,
            Err(error) => tracing::debug!(%error, %addr, "TLS handshake failed"),
        },
        None => serve_http(shared, tcp, Client { addr, tls: false }).await,
    }
}

async fn serve_http<S>(shared: Arc<Shared>, io: S, client: Client)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let (shared, client) = (shared.clone(), client.clone());
        async move { Ok::<_, Infallible>(handle(shared, client, request).await) }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
    if let Err(error) = result {
        tracing::debug!(%error, "http connection ended with an error");
    }
}

/// Answers one request.
async fn handle(shared: Arc<Shared>, client: Client, request: Request<Incoming>) -> Response<Body> {
    let Some(runtime) = shared.runtime() else {
        return status(StatusCode::SERVICE_UNAVAILABLE, "not configured");
    };
    let path = request.uri().path().to_owned();
    let metrics_path = &runtime.config.metrics_path;
    if !metrics_path.is_empty() && path == *metrics_path && request.method() == Method::GET {
        let mut response = Response::new(full(shared.metrics()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        return response;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .map(str::to_owned);
    let Some(route) = route::find(&runtime.routes, host.as_deref(), &path) else {
        return status(StatusCode::NOT_FOUND, "no route");
    };
    if !route.allows(&path) {
        return status(StatusCode::NOT_FOUND, "path not allowed");
    }
    let upgrade = is_upgrade(&request);
    if upgrade && !route.config.websocket {
        return status(StatusCode::NOT_FOUND, "no WebSocket route");
    }
    // The slot is taken before the backend is contacted, so requests arriving together cannot
    // all pass the check before any of them counts.
    let Some(slot) = OpenSlot::acquire(&shared, runtime.config.limits.max_connections) else {
        return status(StatusCode::SERVICE_UNAVAILABLE, "too many connections");
    };
    if upgrade {
        return crate::upgrade::websocket(slot, runtime.clone(), route, client, request).await;
    }
    forward_http(slot, &runtime, route, &client, request).await
}

fn is_upgrade<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("websocket")))
}

/// Forwards a plain HTTP request to a backend of the route's pool (one connection per
/// request), streaming both bodies.
async fn forward_http(
    _slot: OpenSlot,
    runtime: &Runtime,
    route: &Route,
    client: &Client,
    request: Request<Incoming>,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let target = route.rewrite(parts.uri.path(), parts.uri.query());
    let allow = runtime.config.headers.allow.as_deref();
    let mut headers = headers::forwarded(&parts.headers, client, allow);
    let mut tried = Vec::new();
    let check = &runtime.config.health_check;
    let (lease, tcp) = loop {
        let Some(index) = route.pool.pick(&tried) else {
            return status(
                if tried.is_empty() {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::BAD_GATEWAY
                },
                if tried.is_empty() {
                    "no healthy backend"
                } else {
                    "backend unreachable"
                },
            );
        };
        tried.push(index);
        let Some(backend) = route.pool.backend(index).cloned() else {
            continue;
        };
        let connect = TcpStream::connect((backend.url.host.as_str(), backend.url.port));
        match tokio::time::timeout(check.timeout.max(std::time::Duration::from_secs(1)), connect).await {
            Ok(Ok(tcp)) => {
                backend.report_success();
                break (Lease::new(backend), tcp);
            }
            _ => {
                backend.report_failure(check.max_fails, check.fail_timeout);
                if tried.len() > runtime.config.load_balancing.retries as usize {
                    return status(StatusCode::BAD_GATEWAY, "backend unreachable");
                }
            }
        }
    };
    let backend = lease.backend().clone();
    crate::metrics::Counters::add(&route.counters.http_requests, 1);
    crate::metrics::Counters::add(&backend.counters.http_requests, 1);
    let _ = tcp.set_nodelay(true);
    let handshake = if backend.url.tls {
        // A wss:// backend speaks HTTPS: same trust as its WebSocket leg.
        let trust = runtime
            .upstream_tls
            .clone()
            .unwrap_or_else(wsengine_driver::tls::default_client_config);
        let Ok(name) = wsengine_driver::tls::server_name(&backend.url.host) else {
            return status(StatusCode::BAD_GATEWAY, "backend name is not a TLS server name");
        };
        let tls = tokio_rustls::TlsConnector::from(trust).connect(name, tcp);
        match tokio::time::timeout(check.timeout.max(std::time::Duration::from_secs(1)), tls).await {
            Ok(Ok(stream)) => http1_handshake(stream).await,
            _ => {
                crate::metrics::Counters::add(&backend.counters.errors, 1);
                return status(StatusCode::BAD_GATEWAY, "backend TLS handshake failed");
            }
        }
    } else {
        http1_handshake(tcp).await
    };
    let Some(mut sender) = handshake else {
        return status(StatusCode::BAD_GATEWAY, "backend handshake failed");
    };
    if let Ok(host) = HeaderValue::from_str(&backend.url.authority()) {
        headers.insert(header::HOST, host);
    }
    let uri = format!("{}{target}", backend.url.base_path);
    let mut outgoing = Request::builder()
        .method(parts.method)
        .uri(uri)
        .version(http::Version::HTTP_11);
    if let Some(h) = outgoing.headers_mut() {
        *h = headers;
    }
    let Ok(outgoing) = outgoing.body(body) else {
        return status(StatusCode::BAD_REQUEST, "unforwardable request");
    };
    match sender.send_request(outgoing).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(error) => {
            tracing::debug!(%error, backend = %backend.url, "backend request failed");
            crate::metrics::Counters::add(&backend.counters.errors, 1);
            status(StatusCode::BAD_GATEWAY, "backend request failed")
        }
    }
}

/// An HTTP/1.1 client connection over `io`, driven by its own task.
async fn http1_handshake<S>(io: S) -> Option<hyper::client::conn::http1::SendRequest<Incoming>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.ok()?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "backend http connection");
        }
    });
    Some(sender)
}

/// One open connection (a WebSocket or an HTTP exchange) counted for `max_connections`,
/// from before its backend is contacted until it ends.
pub(crate) struct OpenSlot(Arc<Shared>);

impl OpenSlot {
    /// Counts one more connection, unless `max` are open already.
    pub(crate) fn acquire(shared: &Arc<Shared>, max: Option<usize>) -> Option<Self> {
        let max = max.unwrap_or(usize::MAX);
        shared
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()?;
        Some(Self(shared.clone()))
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).map_err(|never| match never {}).boxed()
}

pub(crate) fn status(code: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(full(format!("{text}\n")));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}
