//! Plain HTTP on the hub's port, through hyper: the demo page, health, readiness, stats,
//! metrics, the Pusher HTTP API, and upgrades that arrive on a kept-alive connection (or
//! every upgrade, with `upgrades = "hyper"`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};
use wsengine_hub::ChannelKey;
use wsengine_hub::pusher::{ChannelFigures, FiguresWanted, MembersOf, Pusher};
use wsengine_redis::RedisBroker;

use super::accept::serve;
use super::demo;
use super::state::{Route, Shared};

type Body = Full<Bytes>;

/// Serves HTTP/1.1 on `stream` until the client or hyper ends it.
pub(crate) async fn serve_connection<S>(shared: Arc<Shared>, stream: S, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(route(&shared, request, peer).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(10))
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(error) = connection.await {
        tracing::debug!(%error, "http connection ended");
    }
}

/// The answer to one request.
async fn route(shared: &Arc<Shared>, mut request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let path = request.uri().path().to_owned();
    if is_upgrade(&request) && Route::of(&path).is_some() {
        return upgrade(shared, &mut request, peer);
    }
    let method = request.method().clone();
    if Pusher::is_api_path(&path) {
        return pusher_api(shared, request).await;
    }
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match path.as_str() {
        "/" | "/index.html" => asset("text/html; charset=utf-8", demo::INDEX_HTML),
        "/demo.js" => asset("text/javascript; charset=utf-8", demo::DEMO_JS),
        "/demo.css" => asset("text/css; charset=utf-8", demo::DEMO_CSS),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if shared.is_draining() => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        "/readyz" => text(StatusCode::OK, "ready\n"),
        "/stats" => json(StatusCode::OK, stats_json(shared)),
        "/metrics" => {
            let mut body = shared.hub.snapshot().to_prometheus();
            body.push_str(&server_metrics(shared));
            let mut response = Response::new(Body::from(body));
            set_type(&mut response, "text/plain; version=0.0.4; charset=utf-8");
            response
        }
        "/ws" | "/tank" => text(StatusCode::UPGRADE_REQUIRED, "WebSocket only\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `/stats`: the hub's counters plus the server's.
pub(crate) fn stats_json(shared: &Shared) -> String {
    let mut value: serde_json::Value =
        serde_json::from_str(&shared.hub.snapshot().to_json()).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(map) = value.as_object_mut() {
        map.insert("uptime_seconds".into(), shared.started.elapsed().as_secs().into());
        map.insert("draining".into(), shared.is_draining().into());
        map.insert("default_app".into(), shared.default_app.as_ref().into());
        map.insert("apps".into(), shared.live().apps.len().into());
        if let Some(broker) = &shared.redis {
            map.insert("redis_connected".into(), broker.is_connected().into());
            // The cluster's figures as read at the broker's last heartbeat (absent while Redis
            // is unreachable); the rest of this document is this node's.
            if let Some(cluster) = broker.cluster_snapshot() {
                map.insert(
                    "cluster".into(),
                    serde_json::json!({
                        "nodes": cluster.nodes,
                        "connections": cluster.connections,
                        "channels": cluster.channels,
                        "subscriptions": cluster.subscriptions,
                    }),
                );
            }
        }
    }
    value.to_string()
}

fn server_metrics(shared: &Shared) -> String {
    format!(
        "# HELP wsengine_server_uptime_seconds Seconds since the server started.\n\
         # TYPE wsengine_server_uptime_seconds gauge\n\
         wsengine_server_uptime_seconds {}\n\
         # HELP wsengine_server_draining 1 while the server drains before exiting.\n\
         # TYPE wsengine_server_draining gauge\n\
         wsengine_server_draining {}\n",
        shared.started.elapsed().as_secs(),
        u8::from(shared.is_draining()),
    )
}

/// The Pusher HTTP API (`/apps/<id>/…`), answered by the hub's sans-IO handler once the body
/// is in (bounded: the handler answers 413 past its own limit, this stops reading well after).
async fn pusher_api(shared: &Shared, request: Request<Incoming>) -> Response<Body> {
    let limit = shared.pusher.config().max_body_bytes.saturating_add(1);
    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::debug!(%error, "pusher api body refused");
            return json(StatusCode::PAYLOAD_TOO_LARGE, r#"{"error":"body too large"}"#.into());
        }
    };
    let request = Request::from_parts(parts, bytes);
    // Behind Redis, the channel queries answer with the cluster's figures, not this node's.
    let wanted = shared.redis.as_ref().zip(shared.pusher.figures_wanted(&request));
    let response = match wanted {
        Some((broker, wanted)) => match tokio::time::timeout(FIGURES_TIMEOUT, cluster_figures(broker, &wanted)).await {
            Ok(Ok(figures)) => shared.pusher.handle_with_figures(request, &figures),
            Ok(Err(error)) => {
                tracing::warn!(%error, "cluster channel figures unavailable");
                return json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    r#"{"error":"the cluster's channel figures cannot be read now; try again"}"#.into(),
                );
            }
            Err(_) => {
                return json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    r#"{"error":"the cluster's channel figures took too long; try again"}"#.into(),
                );
            }
        },
        None => shared.pusher.handle(request),
    };
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Body::from(body))
}

/// How long reading the cluster's channel figures from Redis may take.
const FIGURES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The cluster's channels of `wanted.app` with their subscription counts, and the members of
/// the presence channels the request is about, from Redis.
async fn cluster_figures(
    broker: &RedisBroker,
    wanted: &FiguresWanted,
) -> Result<ChannelFigures, wsengine_redis::Error> {
    let mut figures = ChannelFigures {
        channels: broker
            .channels()
            .await?
            .into_iter()
            .filter(|(key, _)| *key.app() == *wanted.app)
            .collect(),
        ..ChannelFigures::default()
    };
    let presence: Vec<ChannelKey> = match &wanted.members_of {
        MembersOf::None => Vec::new(),
        MembersOf::Channel(key) => vec![key.clone()],
        MembersOf::Prefix(prefix) => figures
            .channels
            .iter()
            .map(|(key, _)| key)
            .filter(|key| key.name().starts_with(prefix.as_str()) && key.name().starts_with("presence-"))
            .cloned()
            .collect(),
    };
    for key in presence {
        let users = broker
            .members(&key)
            .await?
            .into_iter()
            .map(|member| member.user_id)
            .collect();
        figures.members.insert(key, users);
    }
    Ok(figures)
}

fn is_upgrade<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("websocket"))
}

// The engine's `Reject` is what hyper upgrades answer with; it is built once per refusal.
#[allow(clippy::result_large_err)]
fn upgrade(shared: &Arc<Shared>, request: &mut Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let mut admitted = None;
    let decided = wsengine_tokio::upgrade::upgrade::<_, Body>(request, shared.hub.websocket_config(), |parsed| {
        admitted = Some(
            shared
                .admit(parsed, Some(peer))
                .map_err(|rejection| rejection.to_reject())?,
        );
        Ok(wsengine::Accept::new())
    });
    let (response, pending) = match decided {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    let Some(admitted) = admitted else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "upgrade without admission\n");
    };
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        match pending.await {
            Ok(ws) => serve(&shared, ws, admitted).await,
            Err(error) => tracing::debug!(%error, "upgrade failed"),
        }
    });
    response
}

fn asset(content_type: &str, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    set_type(&mut response, content_type);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    set_type(&mut response, "text/plain; charset=utf-8");
    response
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    set_type(&mut response, "application/json");
    response
}

fn set_type(response: &mut Response<Body>, content_type: &str) {
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
}
