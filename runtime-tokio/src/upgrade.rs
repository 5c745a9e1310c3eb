//! Upgrading a request served by hyper 1.x (or axum, which runs on hyper) to a WebSocket.
//!
//! ```no_run
//! use axum::{Router, body::Body, extract::Request, response::Response, routing::any};
//! use wsengine_tokio::{Accept, Config, upgrade::upgrade};
//!
//! async fn ws(mut request: Request) -> Response {
//!     match upgrade::<_, Body>(&mut request, Config::default(), |_| Ok(Accept::new())) {
//!         Ok((response, pending)) => {
//!             tokio::spawn(async move {
//!                 let Ok(mut ws) = pending.await else { return };
//!                 while let Ok(message) = ws.recv().await {
//!                     if ws.send(message).await.is_err() { break }
//!                 }
//!             });
//!             response
//!         }
//!         Err(response) => response,
//!     }
//! }
//! let app: Router = Router::new().route("/ws", any(ws));
//! ```

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use hyper::upgrade::{OnUpgrade, Upgraded};
use wsengine::{Accept, Config, Negotiated, Reject, Request, Role};

use crate::{Error, WebSocket};

/// The WebSocket over a hyper connection after the `101`.
pub type UpgradedWebSocket = WebSocket<hyper_util::rt::TokioIo<Upgraded>>;

/// Checks `request` as a WebSocket upgrade and lets `decide` accept or reject it.
///
/// On acceptance returns the `101 Switching Protocols` response for the HTTP server to send and
/// a [`PendingWebSocket`] that resolves (`.await`) to the connection once hyper hands the
/// socket over. Otherwise returns the error response to send instead: the rejection, or the
/// status the request deserves (400, 405, 426 with `Sec-WebSocket-Version: 13`).
#[allow(clippy::result_large_err)]
pub fn upgrade<B, R>(
    request: &mut http::Request<B>,
    config: impl Into<Arc<Config>>,
    decide: impl FnOnce(&Request) -> Result<Accept, Reject>,
) -> Result<(http::Response<R>, PendingWebSocket), http::Response<R>>
where
    R: From<Bytes>,
{
    let parsed = match Request::from_http(request) {
        Ok(parsed) => parsed,
        Err(error) => {
            tracing::debug!(%error, "websocket upgrade refused");
            let reject = Reject::for_error(&error).unwrap_or_else(|| Reject::new(http::StatusCode::BAD_REQUEST));
            return Err(response_of(reject));
        }
    };
    let accept = match decide(&parsed) {
        Ok(accept) => accept,
        Err(reject) => return Err(response_of(reject)),
    };
    let config = config.into();
    let (response, negotiated) = match parsed.response(&accept, &config) {
        Ok(answer) => answer,
        Err(misuse) => {
            // The application's answer was invalid (say, a subprotocol the client did not offer).
            tracing::error!(%misuse, "websocket upgrade: invalid Accept");
            return Err(response_of(
                Reject::new(http::StatusCode::INTERNAL_SERVER_ERROR).body(misuse.to_string()),
            ));
        }
    };
    let on_upgrade = hyper::upgrade::on(request);
    let (parts, ()) = response.into_parts();
    let pending = PendingWebSocket {
        on_upgrade,
        config,
        negotiated,
    };
    Ok((http::Response::from_parts(parts, R::from(Bytes::new())), pending))
}

/// The connection being handed over by hyper; `.await` it after sending the `101`.
#[derive(Debug)]
pub struct PendingWebSocket {
    on_upgrade: OnUpgrade,
    config: Arc<Config>,
    negotiated: Negotiated,
}

impl IntoFuture for PendingWebSocket {
    type Output = Result<UpgradedWebSocket, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let upgraded = self.on_upgrade.await.map_err(|e| Error::Io(std::io::Error::other(e)))?;
            let io = crate::TokioIo::new(hyper_util::rt::TokioIo::new(upgraded));
            Ok(WebSocket::from_upgraded(
                io,
                Role::Server,
                self.config,
                &self.negotiated,
            ))
        })
    }
}

fn response_of<R: From<Bytes>>(reject: Reject) -> http::Response<R> {
    let mut response = http::Response::new(R::from(reject.body));
    *response.status_mut() = reject.status;
    *response.headers_mut() = reject.headers;
    response
}
