//! The node's two writer tasks: publications (batched into pipelines) and state (liveness,
//! dead-node removal, this node's presence and counts), each with its own connection,
//! reconnecting with backoff.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use wsengine::CloseCode;
use wsengine_hub::ChannelKey;

use crate::{ClusterErrorKind, ClusterEvent, Dirty, Error, Outgoing, Shared, keys, scripts, wire};

/// Most publications in one pipeline.
const BATCH: usize = 1024;
/// Most state updates written per wake before the heartbeat gets a turn.
const STATE_BATCH: usize = 4096;

pub(crate) fn spawn(shared: &Arc<Shared>, rx: mpsc::Receiver<Outgoing>) {
    tokio::spawn(publisher(Arc::clone(shared), rx));
    tokio::spawn(state(Arc::clone(shared)));
}

/// Waits before the next connect attempt: 50 ms doubling up to the configured maximum.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(max: Duration) -> Self {
        Self {
            next: Duration::from_millis(50),
            max,
        }
    }

    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }

    pub(crate) fn reset(&mut self) {
        self.next = Duration::from_millis(50);
    }
}

async fn publisher(shared: Arc<Shared>, mut rx: mpsc::Receiver<Outgoing>) {
    let mut con: Option<MultiplexedConnection> = None;
    let mut con_epoch = 0;
    let mut backoff = Backoff::new(shared.config.max_backoff);
    let mut batch = Vec::with_capacity(BATCH);
    let prefix = shared.config.prefix.clone();
    let cache_ttl = shared.config.cache_ttl.as_millis().max(1) as u64;
    loop {
        batch.clear();
        if rx.recv_many(&mut batch, BATCH).await == 0 || shared.stopped.load(Ordering::Acquire) {
            return;
        }
        let epoch = shared.epoch.load(Ordering::Acquire);
        if con_epoch != epoch {
            con = None;
        }
        if con.is_none() {
            match shared.command_connection().await {
                Ok(c) => {
                    con = Some(c);
                    con_epoch = epoch;
                    backoff.reset();
                }
                Err(e) => {
                    // Publications do not wait for Redis: they fail now, visibly.
                    shared.publish_failed(batch.len() as u64, &e.to_string());
                    backoff.wait().await;
                    continue;
                }
            }
        }
        let Some(c) = con.as_mut() else { continue };
        let mut pipe = redis::pipe();
        for Outgoing { whisper, publication } in &batch {
            let kind = if *whisper { wire::WHISPER } else { wire::PUBLICATION };
            let payload = wire::encode_publication(kind, &shared.node, publication);
            if !whisper && keys::is_cache_channel(&publication.channel) {
                pipe.cmd("SET")
                    .arg(keys::cache(&prefix, &publication.channel))
                    .arg(&payload)
                    .arg("PX")
                    .arg(cache_ttl)
                    .ignore();
            }
            pipe.cmd("SPUBLISH")
                .arg(keys::channel(&prefix, &publication.channel))
                .arg(payload)
                .ignore();
        }
        match pipe.exec_async(c).await {
            Ok(()) => {
                shared
                    .count()
                    .published
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                con = None;
                shared.publish_failed(batch.len() as u64, &e.to_string());
            }
        }
    }
}

async fn state(shared: Arc<Shared>) {
    let mut con: Option<MultiplexedConnection> = None;
    let mut backoff = Backoff::new(shared.config.max_backoff);
    let mut ever_connected = false;
    let mut heartbeat = tokio::time::interval(shared.config.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let beat = tokio::select! {
            _ = heartbeat.tick() => true,
            () = shared.state_wake.notified() => false,
        };
        if shared.stopped.load(Ordering::Acquire) {
            shared.state_exited.store(true, Ordering::Release);
            return;
        }
        if con.is_none() {
            match shared.command_connection().await {
                Ok(c) => {
                    con = Some(c);
                    backoff.reset();
                }
                Err(e) => {
                    disconnected(&shared, &e.to_string());
                    backoff.wait().await;
                    continue;
                }
            }
        }
        let Some(c) = con.as_mut() else { continue };
        let result = async {
            if beat || !shared.connected.load(Ordering::Relaxed) {
                let fresh = refresh_liveness(&shared, c).await?;
                if fresh {
                    // New to Redis (first start, Redis restarted, or removed as dead after a
                    // long outage): write everything again.
                    mark_all_dirty(&shared, c).await?;
                }
                if !shared.connected.swap(true, Ordering::AcqRel) {
                    shared.epoch.fetch_add(1, Ordering::AcqRel);
                    shared.sub_wake.notify_one();
                    if ever_connected {
                        shared.count().reconnects.fetch_add(1, Ordering::Relaxed);
                        shared.emit(ClusterEvent::Reconnected);
                    }
                    ever_connected = true;
                }
                reap_dead_nodes(&shared, c).await?;
                let stats = crate::read_cluster_stats(&shared.config.prefix, c).await?;
                shared.lock_known().total_read(stats.connections);
                *shared.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
            }
            write_dirty(&shared, c).await
        }
        .await;
        if let Err(e) = result {
            con = None;
            disconnected(&shared, &e.to_string());
            backoff.wait().await;
        }
    }
}

fn disconnected(shared: &Shared, why: &str) {
    if shared.connected.swap(false, Ordering::AcqRel) {
        if let Some(hub) = shared.hub.get() {
            hub.stats().on_error(wsengine_hub::stats::ErrorKind::Other);
        }
        shared.emit(ClusterEvent::Error {
            kind: ClusterErrorKind::Disconnected,
            message: format!("redis unreachable: {why}"),
        });
        tracing::warn!(node = %shared.node, "redis unreachable: {why}");
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Refreshes the liveness key; true when this node was not registered (new to this Redis).
async fn refresh_liveness(shared: &Shared, con: &mut MultiplexedConnection) -> Result<bool, Error> {
    let p = &shared.config.prefix;
    let ttl = shared.config.node_ttl.as_millis().max(1) as u64;
    let (added,): (u64,) = redis::pipe()
        .cmd("SET")
        .arg(keys::alive(p, &shared.node))
        .arg(1)
        .arg("PX")
        .arg(ttl)
        .ignore()
        .cmd("HSET")
        .arg(keys::nodes(p))
        .arg(&*shared.node)
        .arg(now_ms())
        .query_async(con)
        .await?;
    Ok(added == 1)
}

/// Marks every piece of this node's state dirty, what the hub holds and what Redis holds for
/// this node, so the writer makes Redis match the hub.
async fn mark_all_dirty(shared: &Shared, con: &mut MultiplexedConnection) -> Result<(), Error> {
    let p = &shared.config.prefix;
    let n = &shared.node;
    let (presence, subs, users, ips): (Vec<String>, Vec<String>, Vec<String>, Vec<String>) = redis::pipe()
        .cmd("SMEMBERS")
        .arg(keys::node_table(p, n, "p"))
        .cmd("HKEYS")
        .arg(keys::node_table(p, n, "s"))
        .cmd("HKEYS")
        .arg(keys::node_table(p, n, "u"))
        .cmd("HKEYS")
        .arg(keys::node_table(p, n, "i"))
        .query_async(con)
        .await?;
    let mut local = shared.lock_local();
    let mut dirty = Vec::new();
    for field in &presence {
        if let Some((channel, user)) = keys::parse_presence_field(field) {
            dirty.push(Dirty::Presence(channel, Arc::from(user)));
        }
    }
    dirty.extend(
        subs.iter()
            .filter_map(|f| keys::parse_channel_field(f))
            .map(Dirty::Subscribers),
    );
    dirty.extend(users.into_iter().map(|u| Dirty::User(Arc::from(u))));
    dirty.extend(ips.iter().filter_map(|ip| ip.parse().ok()).map(Dirty::Ip));
    dirty.extend(
        local
            .presence
            .keys()
            .map(|(c, u)| Dirty::Presence(c.clone(), Arc::clone(u))),
    );
    dirty.extend(local.channels.keys().cloned().map(Dirty::Subscribers));
    dirty.extend(local.users.keys().cloned().map(Dirty::User));
    dirty.extend(local.ips.keys().copied().map(Dirty::Ip));
    dirty.push(Dirty::Total);
    local.dirty.extend(dirty);
    Ok(())
}

/// Removes nodes whose liveness key expired; one reaper wins each (the script claims it).
async fn reap_dead_nodes(shared: &Shared, con: &mut MultiplexedConnection) -> Result<(), Error> {
    let p = &shared.config.prefix;
    let nodes: Vec<String> = redis::cmd("HKEYS").arg(keys::nodes(p)).query_async(con).await?;
    let others: Vec<&String> = nodes.iter().filter(|n| n.as_str() != &*shared.node).collect();
    if others.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for node in &others {
        pipe.cmd("EXISTS").arg(keys::alive(p, node));
    }
    let alive: Vec<u8> = pipe.query_async(con).await?;
    for (node, alive) in others.iter().zip(alive) {
        if alive != 0 {
            continue;
        }
        let removed: Option<Vec<String>> = scripts::REAP.arg(p).arg(node.as_str()).invoke_async(con).await?;
        let Some(removed) = removed else { continue };
        shared.count().nodes_reaped.fetch_add(1, Ordering::Relaxed);
        shared.emit(ClusterEvent::NodeDead { node: (*node).clone() });
        let mut items = removed.iter();
        while let Some(tag) = items.next() {
            match tag.as_str() {
                "m" => {
                    let (Some(app), Some(name), Some(user)) = (items.next(), items.next(), items.next()) else {
                        break;
                    };
                    shared.emit(ClusterEvent::MemberRemoved {
                        channel: ChannelKey::new(app.as_str(), name.as_str()),
                        user_id: Arc::from(user.as_str()),
                    });
                }
                "v" => {
                    let (Some(app), Some(name)) = (items.next(), items.next()) else {
                        break;
                    };
                    shared.emit(ClusterEvent::ChannelVacated {
                        channel: ChannelKey::new(app.as_str(), name.as_str()),
                    });
                }
                _ => break,
            }
        }
    }
    Ok(())
}

/// Writes what changed; on failure, what was not written stays dirty.
async fn write_dirty(shared: &Shared, con: &mut MultiplexedConnection) -> Result<(), Error> {
    let batch: Vec<Dirty> = {
        let mut local = shared.lock_local();
        let take: Vec<Dirty> = local.dirty.iter().take(STATE_BATCH).cloned().collect();
        for d in &take {
            local.dirty.remove(d);
        }
        // Counted while the lock is held, so pending never reads zero in between.
        shared.count().in_flight.fetch_add(take.len() as u64, Ordering::AcqRel);
        take
    };
    if batch.len() == STATE_BATCH {
        // More left: come back without waiting for a wake.
        shared.state_wake.notify_one();
    }
    let mut rest = batch.iter();
    while let Some(item) = rest.next() {
        if let Err(e) = write_one(shared, con, item).await {
            let mut local = shared.lock_local();
            local.dirty.insert(item.clone());
            local.dirty.extend(rest.cloned());
            shared.count().in_flight.store(0, Ordering::Release);
            drop(local);
            return Err(e);
        }
        shared.count().in_flight.fetch_sub(1, Ordering::AcqRel);
    }
    Ok(())
}

async fn write_one(shared: &Shared, con: &mut MultiplexedConnection, item: &Dirty) -> Result<(), Error> {
    let p = &shared.config.prefix;
    let node = &*shared.node;
    match item {
        Dirty::Presence(channel, user) => {
            let info = shared
                .lock_local()
                .presence
                .get(&(channel.clone(), Arc::clone(user)))
                .cloned();
            let edge: i64 = scripts::PRESENCE
                .arg(p)
                .arg(node)
                .arg(channel.app())
                .arg(channel.name())
                .arg(&**user)
                .arg(if info.is_some() { "1" } else { "0" })
                .arg(info.unwrap_or_default())
                .invoke_async(con)
                .await?;
            if edge == 1 {
                shared.emit(ClusterEvent::MemberAdded {
                    channel: channel.clone(),
                    user_id: Arc::clone(user),
                });
            } else if edge == -1 {
                shared.emit(ClusterEvent::MemberRemoved {
                    channel: channel.clone(),
                    user_id: Arc::clone(user),
                });
            }
        }
        Dirty::Subscribers(channel) => {
            let n = shared.lock_local().channels.get(channel).copied().unwrap_or(0);
            let (before, after) = count(con, p, node, "s", &keys::channel_field(channel), n).await?;
            if before == 0 && after > 0 {
                shared.emit(ClusterEvent::ChannelOccupied {
                    channel: channel.clone(),
                });
            } else if before > 0 && after <= 0 {
                shared.emit(ClusterEvent::ChannelVacated {
                    channel: channel.clone(),
                });
            }
        }
        Dirty::User(user) => {
            let conns = shared.lock_local().users.get(user).cloned().unwrap_or_default();
            let (_, after) = count(con, p, node, "u", user, conns.len() as u64).await?;
            shared.lock_known().user(user, after, conns.len());
            enforce(
                shared,
                shared.config.max_connections_per_user,
                after,
                &conns,
                CloseCode(1008),
            );
        }
        Dirty::Ip(ip) => {
            let conns = shared.lock_local().ips.get(ip).cloned().unwrap_or_default();
            let (_, after) = count(con, p, node, "i", &ip.to_string(), conns.len() as u64).await?;
            shared.lock_known().ip(*ip, after, conns.len());
            enforce(
                shared,
                shared.config.max_connections_per_ip,
                after,
                &conns,
                CloseCode(1008),
            );
        }
        Dirty::Total => {
            let conns: Vec<_> = shared.lock_local().conns.keys().copied().collect();
            let (_, after) = count(con, p, node, "t", "all", conns.len() as u64).await?;
            shared.lock_known().total(after, conns.len());
            if shared.config.max_connections.is_some_and(|max| after > max as i64) {
                let mut newest = conns;
                newest.sort();
                enforce(shared, shared.config.max_connections, after, &newest, CloseCode(1013));
            }
        }
    }
    Ok(())
}

async fn count(
    con: &mut MultiplexedConnection,
    prefix: &str,
    node: &str,
    table: &str,
    field: &str,
    value: u64,
) -> Result<(i64, i64), Error> {
    let (before, after): (i64, i64) = scripts::COUNT
        .arg(prefix)
        .arg(node)
        .arg(table)
        .arg(field)
        .arg(value)
        .invoke_async(con)
        .await?;
    Ok((before, after))
}

/// Closes this node's newest connections among `conns` (oldest first) that put the cluster
/// over `max`. Every node does the same for its own, so a race may close a few more than the
/// excess, never fewer.
fn enforce(shared: &Shared, max: Option<u64>, cluster: i64, conns: &[wsengine_hub::ConnectionId], code: CloseCode) {
    let Some(max) = max else { return };
    let excess = usize::try_from(cluster - max as i64).unwrap_or(0);
    if excess == 0 {
        return;
    }
    let Some(hub) = shared.hub.get() else { return };
    for id in conns.iter().rev().take(excess) {
        hub.close_connection(*id, code, "over the cluster's connection cap");
    }
}
