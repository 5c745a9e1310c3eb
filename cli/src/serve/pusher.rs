//! Pusher on the hub's port: the apps of the configuration as Pusher apps, webhooks posted over
//! HTTP from a bounded queue (each URL gets only the events it asked for), and the periodic
//! sweep that pings idle Pusher clients.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::sync::mpsc;
use wsengine_hub::pusher::{Pusher, PusherApp, PusherConfig, Webhook, WebhookSink};

use super::config::{Config, WebhookEvent};

/// Webhooks waiting to be posted; beyond this they are dropped (and logged).
const QUEUE: usize = 4096;
/// Tries per webhook.
const TRIES: u32 = 3;
/// How long one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often idle Pusher clients are pinged and unresponsive ones closed.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Pusher over the configuration's apps, and the receiving end of its webhook queue.
pub(crate) fn build(config: &Config) -> (Pusher, WebhookQueue) {
    let pusher = Pusher::new(PusherConfig::new(apps_of(config)));
    let filters = Arc::new(RwLock::new(Arc::new(filters_of(config))));
    let (sender, receiver) = mpsc::channel(QUEUE);
    pusher.set_webhook_sink(QueueSink { sender });
    (pusher, WebhookQueue { receiver, filters })
}

/// The configuration's apps as Pusher apps.
pub(crate) fn apps_of(config: &Config) -> Vec<PusherApp> {
    config
        .apps
        .iter()
        .map(|app| {
            let mut pusher_app = PusherApp::new(
                app.id.get_ref().as_str(),
                app.key.get_ref().as_str(),
                app.secret.as_str(),
            )
            .with_client_events(app.client_events)
            .with_user_authentication(app.user_authentication);
            for webhook in &app.webhooks {
                pusher_app = pusher_app.with_webhook(webhook.url.as_str());
            }
            pusher_app
        })
        .collect()
}

/// Which events each webhook URL of each app wants.
fn filters_of(config: &Config) -> Filters {
    config
        .apps
        .iter()
        .flat_map(|app| {
            app.webhooks.iter().map(|webhook| {
                let key = (app.id.get_ref().clone(), webhook.url.clone());
                (key, (app.secret.clone(), webhook.events.clone()))
            })
        })
        .collect()
}

/// Calls [`Pusher::sweep`] every few seconds, forever (the task is aborted at shutdown).
pub(crate) async fn sweep(pusher: Pusher) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let swept = pusher.sweep();
        if swept.unresponsive + swept.not_signed_in > 0 {
            tracing::debug!(?swept, "pusher sweep");
        }
    }
}

/// (app id, url) -> (the app's secret, the events the URL wants).
type Filters = HashMap<(String, String), (String, Vec<WebhookEvent>)>;

/// Webhooks from Pusher, to post.
#[derive(Debug)]
pub(crate) struct WebhookQueue {
    receiver: mpsc::Receiver<Webhook>,
    filters: Arc<RwLock<Arc<Filters>>>,
}

impl WebhookQueue {
    /// A handle that replaces the URLs' event filters when the apps are reloaded.
    pub(crate) fn reloader(&self) -> WebhookFilters {
        WebhookFilters(Arc::clone(&self.filters))
    }

    /// Posts webhooks until the queue closes.
    pub(crate) async fn run(mut self) {
        while let Some(webhook) = self.receiver.recv().await {
            let filters = Arc::clone(&self.filters.read().unwrap_or_else(PoisonError::into_inner));
            let Some(webhook) = filter(&filters, webhook) else {
                continue;
            };
            // One at a time per server: webhooks of one app keep their order.
            deliver(webhook).await;
        }
    }
}

/// Replaces the webhook queue's filters (on reload).
#[derive(Debug, Clone)]
pub(crate) struct WebhookFilters(Arc<RwLock<Arc<Filters>>>);

impl WebhookFilters {
    /// Uses `config`'s apps' webhook settings from now on.
    pub(crate) fn set(&self, config: &Config) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(filters_of(config));
    }
}

struct QueueSink {
    sender: mpsc::Sender<Webhook>,
}

impl WebhookSink for QueueSink {
    fn send(&self, webhook: Webhook) {
        if let Err(error) = self.sender.try_send(webhook) {
            tracing::warn!(%error, "webhook dropped: queue full");
        }
    }
}

/// Keeps only the events the URL asked for, re-signing the body when some were left out.
fn filter(filters: &Filters, mut webhook: Webhook) -> Option<Webhook> {
    let (secret, wanted) = filters.get(&(webhook.app_id.clone(), webhook.url.clone()))?;
    let mut body: serde_json::Value = serde_json::from_slice(&webhook.body).ok()?;
    let events = body.get_mut("events")?.as_array_mut()?;
    let before = events.len();
    events.retain(|event| {
        event
            .get("name")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|name| wanted.iter().any(|w| w.name() == name))
    });
    if events.is_empty() {
        return None;
    }
    if events.len() != before {
        let text = body.to_string();
        let signature = wsengine_hub::pusher::sign::hmac_hex(secret, &text);
        for (name, value) in &mut webhook.headers {
            if *name == "x-pusher-signature" {
                value.clone_from(&signature);
            }
        }
        webhook.body = Bytes::from(text);
    }
    Some(webhook)
}

async fn deliver(webhook: Webhook) {
    for attempt in 1..=TRIES {
        match tokio::time::timeout(POST_TIMEOUT, post(&webhook)).await {
            Ok(Ok(status)) if status.is_success() => return,
            Ok(Ok(status)) => tracing::warn!(url = %webhook.url, %status, attempt, "webhook refused"),
            Ok(Err(error)) => tracing::warn!(url = %webhook.url, %error, attempt, "webhook failed"),
            Err(_) => tracing::warn!(url = %webhook.url, attempt, "webhook timed out"),
        }
        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
    }
}

async fn post(webhook: &Webhook) -> Result<http::StatusCode, String> {
    let uri: http::Uri = webhook.url.parse().map_err(|e| format!("{e}"))?;
    let host = uri.host().ok_or("no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let authority = uri.authority().map_or(host.to_owned(), |a| a.as_str().to_owned());
    let mut request = http::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, authority)
        .body(Full::new(webhook.body.clone()))
        .map_err(|e| e.to_string())?;
    for (name, value) in &webhook.headers {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            request.headers_mut().insert(*name, value);
        }
    }
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    Ok(response.status())
}

impl WebhookEvent {
    /// Pusher's name of the event.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::ChannelOccupied => "channel_occupied",
            Self::ChannelVacated => "channel_vacated",
            Self::MemberAdded => "member_added",
            Self::MemberRemoved => "member_removed",
            Self::ClientEvent => "client_event",
            Self::CacheMiss => "cache_miss",
        }
    }
}
