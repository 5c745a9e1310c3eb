//! Pusher on the hub's port: the apps of the configuration as Pusher apps (their webhooks go
//! through [`super::webhooks`]), and the periodic sweep that pings idle Pusher clients.

use std::time::Duration;

use wsengine_hub::limits::Rate;
use wsengine_hub::pusher::{ClusterChange, Pusher, PusherApp, PusherConfig};
use wsengine_redis::{ClusterEvent, RedisBroker};

use super::config::{Config, WebhookEvent};
use super::webhooks::WebhookQueue;

/// How often idle Pusher clients are pinged and unresponsive ones closed.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Pusher over the configuration's apps, and the receiving end of its webhook queue.
pub(crate) fn build(config: &Config) -> (Pusher, WebhookQueue) {
    let settings = &config.pusher;
    let mut pusher_config = PusherConfig::new(apps_of(config));
    // Checked with the configuration: whole seconds that fit.
    pusher_config.activity_timeout = u32::try_from(settings.activity_timeout.as_secs()).unwrap_or(u32::MAX);
    pusher_config.pong_timeout = settings.pong_timeout;
    pusher_config.timestamp_window = settings.timestamp_window.as_secs();
    pusher_config.max_body_bytes = settings.max_body_size;
    pusher_config.max_trigger_channels = settings.max_trigger_channels;
    pusher_config.max_batch_events = settings.max_batch_events;
    pusher_config.cache_ttl = settings.cache_ttl;
    // Nodes sharing Redis: occupancy and member webhooks once per cluster, from the broker.
    pusher_config.cluster_webhooks = config.broker.starts_with("redis://");
    let pusher = Pusher::new(pusher_config);
    let (sink, queue) = super::webhooks::queue(config);
    pusher.set_webhook_sink(sink);
    (pusher, queue)
}

/// Sends Pusher's channel and member webhooks from the broker's cluster-wide events (each
/// fires on one node only).
pub(crate) fn cluster_webhooks(broker: &RedisBroker, pusher: &Pusher) {
    let pusher = pusher.clone();
    broker.on_event(move |event| match event {
        ClusterEvent::ChannelOccupied { channel } => {
            pusher.cluster_webhook(ClusterChange::ChannelOccupied, channel, None)
        }
        ClusterEvent::ChannelVacated { channel } => {
            pusher.cluster_webhook(ClusterChange::ChannelVacated, channel, None)
        }
        ClusterEvent::MemberAdded { channel, user_id } => {
            pusher.cluster_webhook(ClusterChange::MemberAdded, channel, Some(user_id));
        }
        ClusterEvent::MemberRemoved { channel, user_id } => {
            pusher.cluster_webhook(ClusterChange::MemberRemoved, channel, Some(user_id));
        }
        _ => {}
    });
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
            pusher_app.enabled = *app.enabled.get_ref();
            pusher_app.max_connections = (app.max_connections > 0).then_some(app.max_connections);
            pusher_app.client_event_rate = Rate::per_second(app.client_events_per_second);
            pusher_app.max_event_bytes = app.max_event_size;
            pusher_app.signin_timeout = (!app.signin_timeout.is_zero()).then_some(app.signin_timeout);
            pusher_app
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
