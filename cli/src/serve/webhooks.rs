//! Posting Pusher's webhooks: each configured URL gets only the events it asked for, in order,
//! over one kept-alive HTTP/1.1 connection (`http://`, or `https://` with rustls), from its own
//! bounded queue, so a slow or dead endpoint delays and drops only its own webhooks.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;
use wsengine_hub::pusher::{Webhook, WebhookSink};

use super::config::{Config, WebhookEvent};

/// Webhooks waiting to be sorted by URL; beyond this they are dropped (and logged).
const QUEUE: usize = 4096;
/// Webhooks waiting for one URL; beyond this that URL's are dropped (and logged).
const URL_QUEUE: usize = 1024;
/// Tries per webhook.
const TRIES: u32 = 3;
/// How long one POST may take, connecting included.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where one app's webhooks for one URL go, and which of them it wants.
#[derive(Debug)]
struct Target {
    secret: String,
    events: Vec<WebhookEvent>,
    /// `https://` URLs: whom to trust (the configured CA file, or the webpki roots).
    tls: Option<Arc<ClientConfig>>,
}

/// (app id, url) -> where and what.
type Targets = HashMap<(String, String), Arc<Target>>;

fn targets_of(config: &Config) -> Targets {
    let mut targets = Targets::new();
    for app in &config.apps {
        for webhook in &app.webhooks {
            let tls = if webhook.url.starts_with("https://") {
                match &webhook.ca {
                    // The file was read when the configuration was checked; one that went away
                    // since then leaves this URL out (its webhooks are dropped, loudly).
                    Some(ca) => match wsengine_proxy::tls::client_config(ca.get_ref()) {
                        Ok(config) => Some(config),
                        Err(error) => {
                            tracing::error!(url = %webhook.url, %error, "webhook CA unreadable: URL left out");
                            continue;
                        }
                    },
                    None => Some(wsengine_driver::tls::default_client_config()),
                }
            } else {
                None
            };
            let target = Target {
                secret: app.secret.clone(),
                events: webhook.events.clone(),
                tls,
            };
            targets.insert((app.id.get_ref().clone(), webhook.url.clone()), Arc::new(target));
        }
    }
    targets
}

/// Pusher's side of the queue: never blocks the hub.
pub(crate) struct QueueSink {
    sender: mpsc::Sender<Webhook>,
    pending: Arc<AtomicUsize>,
}

impl WebhookSink for QueueSink {
    fn send(&self, webhook: Webhook) {
        self.pending.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self.sender.try_send(webhook) {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(%error, "webhook dropped: queue full");
        }
    }
}

/// Webhooks from Pusher, to post.
#[derive(Debug)]
pub(crate) struct WebhookQueue {
    receiver: mpsc::Receiver<Webhook>,
    targets: Arc<RwLock<Arc<Targets>>>,
    pending: Arc<AtomicUsize>,
}

/// A queue for `config`'s webhooks and the sink Pusher puts them in.
pub(crate) fn queue(config: &Config) -> (QueueSink, WebhookQueue) {
    let (sender, receiver) = mpsc::channel(QUEUE);
    let pending = Arc::new(AtomicUsize::new(0));
    let sink = QueueSink {
        sender,
        pending: Arc::clone(&pending),
    };
    let queue = WebhookQueue {
        receiver,
        targets: Arc::new(RwLock::new(Arc::new(targets_of(config)))),
        pending,
    };
    (sink, queue)
}

impl WebhookQueue {
    /// A handle that replaces the URLs' settings when the apps are reloaded.
    pub(crate) fn reloader(&self) -> WebhookTargets {
        WebhookTargets(Arc::clone(&self.targets))
    }

    /// How many webhooks are queued or being posted (for a bounded flush at shutdown).
    pub(crate) fn pending(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.pending)
    }

    /// Sorts webhooks into their URLs' queues until the queue closes (the task is aborted at
    /// shutdown). One task per (app, URL) posts them; it lives as long as this one.
    pub(crate) async fn run(mut self) {
        let mut workers: HashMap<(String, String), mpsc::Sender<Webhook>> = HashMap::new();
        while let Some(webhook) = self.receiver.recv().await {
            let targets = Arc::clone(&self.targets.read().unwrap_or_else(PoisonError::into_inner));
            let key = (webhook.app_id.clone(), webhook.url.clone());
            let Some(webhook) = targets.get(&key).and_then(|target| filter(target, webhook)) else {
                self.pending.fetch_sub(1, Ordering::Relaxed);
                continue;
            };
            let sender = match workers.entry(key) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    let (sender, receiver) = mpsc::channel(URL_QUEUE);
                    let worker = Worker {
                        key: entry.key().clone(),
                        targets: Arc::clone(&self.targets),
                        pending: Arc::clone(&self.pending),
                        connection: None,
                    };
                    tokio::spawn(worker.run(receiver));
                    entry.insert(sender)
                }
            };
            if let Err(error) = sender.try_send(webhook) {
                self.pending.fetch_sub(1, Ordering::Relaxed);
                tracing::warn!(url = %error.into_inner().url, "webhook dropped: the URL's queue is full");
            }
        }
    }
}

/// Replaces the webhook URLs' settings (on reload).
#[derive(Debug, Clone)]
pub(crate) struct WebhookTargets(Arc<RwLock<Arc<Targets>>>);

impl WebhookTargets {
    /// Uses `config`'s apps' webhook settings from now on.
    pub(crate) fn set(&self, config: &Config) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(targets_of(config));
    }
}

/// Keeps only the events the URL asked for, re-signing the body when some were left out.
fn filter(target: &Target, mut webhook: Webhook) -> Option<Webhook> {
    let mut body: serde_json::Value = serde_json::from_slice(&webhook.body).ok()?;
    let events = body.get_mut("events")?.as_array_mut()?;
    let before = events.len();
    events.retain(|event| {
        event
            .get("name")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|name| target.events.iter().any(|w| w.name() == name))
    });
    if events.is_empty() {
        return None;
    }
    if events.len() != before {
        let text = body.to_string();
        let signature = wsengine_hub::pusher::sign::hmac_hex(&target.secret, &text);
        for (name, value) in &mut webhook.headers {
            if *name == "x-pusher-signature" {
                value.clone_from(&signature);
            }
        }
        webhook.body = Bytes::from(text);
    }
    Some(webhook)
}

/// Posts one app's webhooks to one URL, in order.
struct Worker {
    key: (String, String),
    targets: Arc<RwLock<Arc<Targets>>>,
    pending: Arc<AtomicUsize>,
    /// Kept alive between webhooks; dropped after a failure.
    connection: Option<SendRequest<Full<Bytes>>>,
}

impl Worker {
    async fn run(mut self, mut receiver: mpsc::Receiver<Webhook>) {
        while let Some(webhook) = receiver.recv().await {
            self.deliver(&webhook).await;
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }

    async fn deliver(&mut self, webhook: &Webhook) {
        for attempt in 1..=TRIES {
            let failure = match tokio::time::timeout(POST_TIMEOUT, self.post(webhook)).await {
                Ok(Ok(status)) if status.is_success() => return,
                Ok(Ok(status)) => format!("refused with {status}"),
                Ok(Err(error)) => error,
                Err(_) => "timed out".to_owned(),
            };
            tracing::warn!(url = %webhook.url, attempt, tries = TRIES, failure, "webhook not delivered");
            self.connection = None;
            if attempt < TRIES {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
        }
    }

    /// One POST, on the kept connection when it is still open (a fresh one otherwise).
    async fn post(&mut self, webhook: &Webhook) -> Result<http::StatusCode, String> {
        let uri: http::Uri = webhook.url.parse().map_err(|e| format!("{e}"))?;
        let kept = match self.connection.take() {
            Some(mut sender) if !sender.is_closed() => sender.ready().await.is_ok().then_some(sender),
            _ => None,
        };
        let mut sender = match kept {
            Some(sender) => sender,
            None => self.connect(&uri).await?,
        };
        let authority = uri.authority().map_or("", |a| a.as_str()).to_owned();
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
        let status = response.status();
        // The body is read to its end (and dropped) so that the connection can carry the next.
        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
        self.connection = Some(sender);
        Ok(status)
    }

    async fn connect(&self, uri: &http::Uri) -> Result<SendRequest<Full<Bytes>>, String> {
        let host = uri.host().ok_or("no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let tls = {
            let targets = self.targets.read().unwrap_or_else(PoisonError::into_inner);
            let target = targets.get(&self.key).ok_or("URL no longer configured")?;
            target.tls.clone()
        };
        let port = uri.port_u16().unwrap_or(if tls.is_some() { 443 } else { 80 });
        let tcp = TcpStream::connect((host, port)).await.map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        match tls {
            Some(config) => {
                let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("TLS name {host:?}: {e}"))?;
                let stream = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                handshake(stream).await
            }
            None => handshake(tcp).await,
        }
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "webhook connection ended");
        }
    });
    Ok(sender)
}
