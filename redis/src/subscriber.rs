//! The subscriber: one RESP3 connection holding one sharded subscription per channel that has
//! subscribers on this node, plus the control channel. Messages are handled in the connection's
//! push callback: a publication from another node is decoded and framed once for this node.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redis::{PushInfo, PushKind, Value};
use wsengine_hub::{ChannelKey, ChannelKind};

use crate::mirror::{Mirror, Snapshot};
use crate::node::Backoff;
use crate::{Error, Shared, keys, scripts, wire};

/// Most channels (un)subscribed in one pipeline.
const BATCH: usize = 512;

pub(crate) fn spawn(shared: &Arc<Shared>) {
    tokio::spawn(run(Arc::clone(shared)));
}

async fn run(shared: Arc<Shared>) {
    let mut backoff = Backoff::new(shared.config.max_backoff);
    let lost = Arc::new(AtomicBool::new(false));
    let mut ping = tokio::time::interval(shared.config.heartbeat);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if shared.stopped.load(Ordering::Acquire) {
            return;
        }
        lost.store(false, Ordering::Release);
        let mut con = match connect(&shared, &lost).await {
            Ok(con) => con,
            Err(e) => {
                tracing::debug!(node = %shared.node, "subscriber connect failed: {e}");
                backoff.wait().await;
                continue;
            }
        };
        backoff.reset();
        // Changes published while this node was not subscribed were missed: read every
        // watched presence channel again (a reload delivers only the difference).
        for mirror in shared.lock_mirrors().values_mut() {
            mirror.reload();
        }
        let mut held: HashSet<String> = HashSet::new();
        shared.count().subscriptions.store(0, Ordering::Relaxed);
        // Serve this connection until it fails.
        let failure = loop {
            if shared.stopped.load(Ordering::Acquire) {
                return;
            }
            if lost.load(Ordering::Acquire) {
                break Error::Unavailable;
            }
            if let Err(e) = reconcile(&shared, &mut con, &mut held).await {
                break e;
            }
            tokio::select! {
                () = shared.sub_wake.notified() => {}
                _ = ping.tick() => {
                    if lost.load(Ordering::Acquire) {
                        break Error::Unavailable;
                    }
                    if let Err(e) = redis::cmd("PING").exec_async(&mut con).await {
                        break e.into();
                    }
                }
            }
        };
        shared.count().subscriptions.store(0, Ordering::Relaxed);
        tracing::debug!(node = %shared.node, "subscriber connection lost: {failure}");
        backoff.wait().await;
    }
}

async fn connect(shared: &Arc<Shared>, lost: &Arc<AtomicBool>) -> Result<redis::aio::MultiplexedConnection, Error> {
    let on_push = {
        let shared = Arc::clone(shared);
        let lost = Arc::clone(lost);
        move |push: PushInfo| -> Result<(), std::convert::Infallible> {
            on_push(&shared, &lost, push);
            Ok(())
        }
    };
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(shared.config.command_timeout))
        .set_response_timeout(Some(shared.config.command_timeout))
        .set_push_sender(on_push);
    let mut con = shared
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    con.subscribe(keys::control(&shared.config.prefix)).await?;
    Ok(con)
}

/// Makes the held subscriptions match the channels with local subscribers.
async fn reconcile(
    shared: &Shared,
    con: &mut redis::aio::MultiplexedConnection,
    held: &mut HashSet<String>,
) -> Result<(), Error> {
    let p = &shared.config.prefix;
    let channels: Vec<ChannelKey> = shared.lock_local().channels.keys().cloned().collect();
    let wanted: HashSet<String> = channels.iter().map(|key| keys::channel(p, key)).collect();
    {
        // A mirror exists before its subscription, so changes published once subscribed are
        // queued for the load.
        let mut mirrors = shared.lock_mirrors();
        for key in channels.iter().filter(|k| k.kind() == ChannelKind::Presence) {
            mirrors.entry(key.clone()).or_insert_with(Mirror::new);
        }
    }
    let add: Vec<String> = wanted.difference(held).cloned().collect();
    for chunk in add.chunks(BATCH) {
        let mut pipe = redis::pipe();
        for name in chunk {
            pipe.cmd("SSUBSCRIBE").arg(name.as_str()).ignore();
        }
        pipe.exec_async(con).await?;
        held.extend(chunk.iter().cloned());
    }
    let remove: Vec<String> = held.difference(&wanted).cloned().collect();
    for chunk in remove.chunks(BATCH) {
        let mut pipe = redis::pipe();
        for name in chunk {
            pipe.cmd("SUNSUBSCRIBE").arg(name.as_str()).ignore();
        }
        pipe.exec_async(con).await?;
        for name in chunk {
            held.remove(name);
        }
    }
    shared.count().subscriptions.store(held.len() as u64, Ordering::Relaxed);
    let wanted_keys: HashSet<&ChannelKey> = channels.iter().collect();
    let unwatched: Vec<ChannelKey> = shared
        .lock_mirrors()
        .keys()
        .filter(|k| !wanted_keys.contains(k))
        .cloned()
        .collect();
    for key in unwatched {
        unwatch(shared, &key);
    }
    load_mirrors(shared, con).await
}

/// Drops the mirror of a channel this node no longer has subscribers in; a subscriber who
/// arrived meanwhile hears the other nodes' members leave (and join again at the next load).
fn unwatch(shared: &Shared, key: &ChannelKey) {
    if shared.lock_local().channels.contains_key(key) {
        return;
    }
    match shared.hub.get() {
        Some(hub) => {
            hub.apply_remote_presence(key, || {
                shared
                    .lock_mirrors()
                    .remove(key)
                    .map(|mut m| m.clear(key))
                    .unwrap_or_default()
            });
        }
        None => {
            shared.lock_mirrors().remove(key);
        }
    }
}

/// Reads the presence channels whose mirrors need it (new, reconnected, or after a gap).
async fn load_mirrors(shared: &Shared, con: &mut redis::aio::MultiplexedConnection) -> Result<(), Error> {
    let todo: Vec<ChannelKey> = shared
        .lock_mirrors()
        .iter_mut()
        .filter(|(_, m)| m.needs_load)
        .map(|(k, m)| {
            m.needs_load = false;
            k.clone()
        })
        .collect();
    let Some(hub) = shared.hub.get() else {
        return Ok(());
    };
    for key in todo {
        let read = read_snapshot(shared, con, &key).await;
        let snapshot = match read {
            Ok(snapshot) => snapshot,
            Err(e) => {
                if let Some(m) = shared.lock_mirrors().get_mut(&key) {
                    m.needs_load = true;
                }
                return Err(e);
            }
        };
        update_mirror(shared, hub, &key, |mirror| mirror.load(&key, snapshot, &shared.node));
    }
    Ok(())
}

/// Changes a channel's mirror under the hub channel's lock, so a local join or leave sees the
/// mirror before or after the change and exactly one of the two announces it; what changed in
/// the view of other nodes goes to this node's subscribers. `f` answers the changes and
/// whether the channel must be read again.
fn update_mirror(
    shared: &Shared,
    hub: &wsengine_hub::Hub,
    key: &ChannelKey,
    f: impl FnOnce(&mut Mirror) -> (Vec<wsengine_hub::broker::PresenceChange>, bool),
) {
    let mut again = false;
    hub.apply_remote_presence(key, || {
        let mut mirrors = shared.lock_mirrors();
        let Some(mirror) = mirrors.get_mut(key) else {
            return Vec::new();
        };
        let (changes, reload) = f(mirror);
        again = reload;
        changes
    });
    if again {
        shared.sub_wake.notify_one();
    }
}

async fn read_snapshot(
    shared: &Shared,
    con: &mut redis::aio::MultiplexedConnection,
    key: &ChannelKey,
) -> Result<Snapshot, Error> {
    let (version, entries, infos): (u64, Vec<String>, Vec<(String, String)>) = scripts::SNAPSHOT
        .arg(&shared.config.prefix)
        .arg(key.app())
        .arg(key.name())
        .invoke_async(con)
        .await?;
    Ok(Snapshot {
        version,
        entries: entries
            .iter()
            .filter_map(|e| e.split_once('\x1f'))
            .map(|(node, user)| (Arc::from(node), Arc::from(user)))
            .collect(),
        infos: infos
            .into_iter()
            .map(|(user, info)| {
                let info = if info.is_empty() {
                    None
                } else {
                    wsengine_hub::Data::from_json_str(&info).ok()
                };
                (Arc::from(user), info)
            })
            .collect(),
    })
}

fn on_push(shared: &Shared, lost: &AtomicBool, push: PushInfo) {
    match push.kind {
        PushKind::Disconnection => {
            lost.store(true, Ordering::Release);
            shared.sub_wake.notify_one();
        }
        PushKind::SMessage | PushKind::Message => {
            let Some(Value::BulkString(payload)) = push.data.get(1) else {
                return;
            };
            if handle(shared, payload).is_none() {
                shared.count().malformed.fetch_add(1, Ordering::Relaxed);
            }
        }
        _ => {}
    }
}

/// Delivers one message from Redis; `None` when it is malformed.
fn handle(shared: &Shared, payload: &[u8]) -> Option<()> {
    let (kind, origin, fields) = wire::split(payload)?;
    let hub = shared.hub.get()?;
    match kind {
        wire::PUBLICATION => {
            if origin == &*shared.node {
                // Delivered here when it was published.
                return Some(());
            }
            let publication = wire::decode_publication(fields)?;
            shared.count().received.fetch_add(1, Ordering::Relaxed);
            hub.deliver_remote(&publication);
        }
        wire::WHISPER => {
            if origin == &*shared.node {
                return Some(());
            }
            let whisper = wire::decode_publication(fields)?;
            shared.count().received.fetch_add(1, Ordering::Relaxed);
            hub.deliver_remote_whisper(&whisper)?;
        }
        wire::NODE_PRESENCE => {
            let (channel, change) = wire::decode_node_presence(origin, fields)?;
            if channel.kind() != ChannelKind::Presence || !shared.lock_mirrors().contains_key(&channel) {
                return Some(());
            }
            update_mirror(shared, hub, &channel, |mirror| {
                mirror.on_change(&channel, change, &shared.node)
            });
        }
        wire::CLOSE_USER => {
            let (user, code, reason) = wire::decode_close_user(fields)?;
            hub.close_user(&user, code.into(), &reason);
        }
        _ => return None,
    }
    Some(())
}
