//! The subscriber: one RESP3 connection holding one sharded subscription per channel that has
//! subscribers on this node, plus the control channel. Messages are handled in the connection's
//! push callback: a publication from another node is decoded and framed once for this node.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redis::{PushInfo, PushKind, Value};
use wsengine_hub::ChannelKind;
use wsengine_hub::broker::PresenceChange;

use crate::node::Backoff;
use crate::{Error, Shared, keys, wire};

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
    let wanted: HashSet<String> = shared
        .lock_local()
        .channels
        .keys()
        .map(|key| keys::channel(p, key))
        .collect();
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
    Ok(())
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
        wire::JOIN | wire::LEAVE => {
            let (channel, member, joined) = wire::decode_presence(kind, fields)?;
            if origin == &*shared.node || channel.kind() != ChannelKind::Presence {
                return Some(());
            }
            // A user with connections here was announced by this node's hub already.
            if hub.presence(&channel).iter().any(|m| m.user_id == member.user_id) {
                return Some(());
            }
            let change = if joined {
                PresenceChange::Joined { channel, member }
            } else {
                PresenceChange::Left {
                    channel,
                    user_id: member.user_id,
                }
            };
            hub.deliver_remote_presence(&change);
        }
        wire::CLOSE_USER => {
            let (user, code, reason) = wire::decode_close_user(fields)?;
            hub.close_user(&user, code.into(), &reason);
        }
        _ => return None,
    }
    Some(())
}
