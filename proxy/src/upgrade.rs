//! A WebSocket upgrade: connect to a backend first (offering the client's subprotocols), then
//! answer the client with the backend's choice or its refusal, then relay.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use wsengine_tokio::{Accept, ClientRequest, ConnectOptions, Error, HandshakeError, wsengine};

use crate::balance::Lease;
use crate::headers::{self, Client};
use crate::relay::{self, Meters};
use crate::route::Route;
use crate::server::{Body, OpenSlot, status};
use crate::state::Runtime;

/// Proxies one upgrade request.
pub(crate) async fn websocket(
    slot: OpenSlot,
    runtime: Arc<Runtime>,
    route: &Route,
    client: Client,
    mut request: Request<Incoming>,
) -> Response<Body> {
    // Check the client's request before spending a backend connection on it.
    let parsed = match wsengine::Request::from_http(&request) {
        Ok(parsed) => parsed,
        Err(error) => {
            let code = error.status().unwrap_or(StatusCode::BAD_REQUEST);
            return status(code, "invalid WebSocket upgrade");
        }
    };
    if !route.allows_origin(parsed.origin()) {
        return status(StatusCode::FORBIDDEN, "origin not allowed");
    }
    let target = route.rewrite(parsed.path(), parsed.query());
    let allow = runtime.config.headers.allow.as_deref();
    let forwarded = headers::forwarded(request.headers(), &client, allow);
    let check = &runtime.config.health_check;
    // The backend is offered compression only when the client asked for it.
    let client_deflates = parsed
        .extensions()
        .iter()
        .any(|e| e.name.eq_ignore_ascii_case("permessage-deflate"));
    let backend_ws = if client_deflates {
        &runtime.backend_ws
    } else {
        &runtime.backend_ws_plain
    };
    let mut options =
        ConnectOptions::new(backend_ws.clone()).connect_timeout(check.timeout.max(std::time::Duration::from_secs(1)));
    if let Some(trust) = &runtime.upstream_tls {
        options = options.tls(trust.clone());
    }
    let mut tried = Vec::new();
    let (lease, backend_ws, protocol) = loop {
        let Some(index) = route.pool.pick(&tried) else {
            let (code, text) = if tried.is_empty() {
                (StatusCode::SERVICE_UNAVAILABLE, "no healthy backend")
            } else {
                (StatusCode::BAD_GATEWAY, "backend unreachable")
            };
            count_error(route, None);
            return status(code, text);
        };
        tried.push(index);
        let Some(backend) = route.pool.backend(index).cloned() else {
            continue;
        };
        let Some(backend_request) = backend_request(&backend.url.ws_url(&target), parsed.protocols(), &forwarded)
        else {
            return status(StatusCode::BAD_REQUEST, "request cannot be forwarded");
        };
        let lease = Lease::new(backend.clone());
        match wsengine_tokio::connect_with(&backend_request, &options).await {
            Ok((ws, response)) => {
                backend.report_success();
                crate::metrics::Counters::add(&backend.counters.connections, 1);
                break (lease, ws, response.protocol().map(str::to_owned));
            }
            Err(Error::Handshake(HandshakeError::UnexpectedStatus(code))) => {
                // The backend is up and said no: its answer is the client's answer.
                backend.report_success();
                count_error(route, Some(&lease));
                return status_passed(code);
            }
            Err(error) => {
                tracing::debug!(%error, backend = %backend.url, "backend connect failed");
                backend.report_failure(check.max_fails, check.fail_timeout);
                count_error(route, None);
                if tried.len() > runtime.config.load_balancing.retries as usize {
                    return status(StatusCode::BAD_GATEWAY, "backend unreachable");
                }
            }
        }
    };
    // Reject is the engine's type; its size is not ours to change.
    #[allow(clippy::result_large_err)]
    let decide = |_: &wsengine::Request| {
        Ok(match &protocol {
            Some(protocol) => Accept::new().protocol(protocol.clone()),
            None => Accept::new(),
        })
    };
    let (response, pending) = match wsengine_tokio::upgrade::upgrade::<_, Full<bytes::Bytes>>(
        &mut request,
        runtime.client_ws.clone(),
        decide,
    ) {
        Ok(answer) => answer,
        Err(refusal) => return refusal.map(|b| b.map_err(|never| match never {}).boxed()),
    };
    let meters = Meters {
        route: route.counters.clone(),
        backend: lease.backend().clone(),
    };
    let drain = lease.backend().drain_signal();
    tokio::spawn(async move {
        let _slot = slot;
        let mut backend_ws = backend_ws;
        let client_ws = match pending.await {
            Ok(ws) => ws,
            Err(error) => {
                tracing::debug!(%error, "client upgrade failed");
                let _ = backend_ws
                    .close(wsengine_tokio::CloseCode::GOING_AWAY, "client went away")
                    .await;
                return;
            }
        };
        meters.route.opened();
        let ended = relay::relay(client_ws, backend_ws, meters.clone(), drain).await;
        meters.route.closed();
        tracing::debug!(?ended, "websocket relay ended");
        drop(lease);
    });
    response.map(|b| b.map_err(|never| match never {}).boxed())
}

/// The backend leg's handshake: the client's subprotocols, the forwarded headers.
fn backend_request(url: &str, protocols: &[String], headers: &http::HeaderMap) -> Option<ClientRequest> {
    let mut request = ClientRequest::new(url).ok()?;
    for protocol in protocols {
        request = request.protocol(protocol.clone());
    }
    for (name, value) in headers {
        if name == http::header::CONTENT_LENGTH {
            continue;
        }
        // `forwarded` already left out the headers the engine writes itself.
        request = request.header(name.clone(), value.clone()).ok()?;
    }
    Some(request)
}

fn status_passed(code: StatusCode) -> Response<Body> {
    let mut response = status(code, "rejected by the backend");
    *response.status_mut() = code;
    response
}

fn count_error(route: &Route, lease: Option<&Lease>) {
    crate::metrics::Counters::add(&route.counters.errors, 1);
    if let Some(lease) = lease {
        lease.backend().counters.errors.fetch_add(1, Ordering::Relaxed);
    }
}
