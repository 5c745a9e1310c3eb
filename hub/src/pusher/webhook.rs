//! Webhooks: Pusher's JSON body (`time_ms`, `events`), signed with the app secret
//! (`X-Pusher-Signature`, HMAC-SHA256 of the body), handed to a [`WebhookSink`] the program
//! supplies (its HTTP client, its retry queue).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;

use super::sign::hmac_hex;
use super::{PusherApp, Shared};

/// One webhook event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebhookEvent {
    /// `channel_occupied`, `channel_vacated`, `member_added`, `member_removed`,
    /// `client_event` or `cache_miss`.
    pub name: &'static str,
    /// The channel.
    pub channel: String,
    /// The client event's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The client event's data, as JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The sender of a client event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<String>,
    /// The presence member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

impl WebhookEvent {
    pub(crate) fn channel(name: &'static str, channel: &str) -> Self {
        Self {
            name,
            channel: channel.to_owned(),
            event: None,
            data: None,
            socket_id: None,
            user_id: None,
        }
    }

    pub(crate) fn member(name: &'static str, channel: &str, user_id: &str) -> Self {
        Self {
            user_id: Some(user_id.to_owned()),
            ..Self::channel(name, channel)
        }
    }
}

/// A signed webhook request, ready to POST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// The app id.
    pub app_id: String,
    /// Where to POST it.
    pub url: String,
    /// `Content-Type`, `X-Pusher-Key` and `X-Pusher-Signature`.
    pub headers: Vec<(&'static str, String)>,
    /// `{"time_ms":…,"events":[…]}`.
    pub body: Bytes,
}

/// Sends webhooks. Called on the connection's task: queue and return, never block; retrying
/// with backoff and bounding the queue is the sink's business.
pub trait WebhookSink: Send + Sync + 'static {
    /// Sends (or queues) one webhook.
    fn send(&self, webhook: Webhook);
}

impl<F> WebhookSink for F
where
    F: Fn(Webhook) + Send + Sync + 'static,
{
    fn send(&self, webhook: Webhook) {
        self(webhook);
    }
}

#[derive(Serialize)]
struct Body<'a> {
    time_ms: u128,
    events: &'a [WebhookEvent],
}

impl Shared {
    /// Sends `events` of app `app` to its webhook URLs, if it has any and a sink is set. With
    /// [`cluster_webhooks`](super::PusherConfig::cluster_webhooks) the channel and member events
    /// come from the broker instead, and are left out here.
    pub(crate) fn webhook(&self, app: &str, events: &[WebhookEvent]) {
        let Some(app) = self.app_by_id(app) else {
            return;
        };
        if app.webhook_urls.is_empty() {
            return;
        }
        if self.config.cluster_webhooks {
            let own: Vec<WebhookEvent> = events
                .iter()
                .filter(|e| {
                    !matches!(
                        e.name,
                        "channel_occupied" | "channel_vacated" | "member_added" | "member_removed"
                    )
                })
                .cloned()
                .collect();
            self.send_webhook(&app, &own);
        } else {
            self.send_webhook(&app, events);
        }
    }

    /// Sends `events` to `app`'s webhook URLs, if it has any and a sink is set.
    pub(crate) fn send_webhook(&self, app: &PusherApp, events: &[WebhookEvent]) {
        let Some(sink) = self.webhooks.get() else {
            return;
        };
        if events.is_empty() || app.webhook_urls.is_empty() {
            return;
        }
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let Ok(body) = serde_json::to_vec(&Body { time_ms, events }) else {
            return;
        };
        let signature = hmac_hex(&app.secret, std::str::from_utf8(&body).unwrap_or_default());
        let body = Bytes::from(body);
        for url in &app.webhook_urls {
            sink.send(Webhook {
                app_id: app.id.clone(),
                url: url.clone(),
                headers: vec![
                    ("content-type", "application/json".to_owned()),
                    ("x-pusher-key", app.key.clone()),
                    ("x-pusher-signature", signature.clone()),
                ],
                body: body.clone(),
            });
        }
    }
}
