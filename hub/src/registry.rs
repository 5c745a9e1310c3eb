//! The bookkeeping: channels with their subscribers and presence, connections by id and by
//! user. Lock order (never taken the other way): a connection's state, then a channel shard,
//! then a channel, then a connection's outbox.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::channel::{ChannelKey, ChannelKind};
use crate::codec::{Data, Member, Output};
use crate::conn::{ConnShared, ConnectionId};
use crate::events::HubEvent;
use crate::fanout::{Frames, Skip};
use crate::hub::HubInner;

/// One channel.
#[derive(Debug)]
pub(crate) struct Channel {
    inner: RwLock<ChannelInner>,
}

#[derive(Debug, Default)]
pub(crate) struct ChannelInner {
    /// Subscribers in a flat list, so a fan-out is a walk over contiguous pointers.
    pub(crate) subs: Vec<Arc<ConnShared>>,
    index: HashMap<ConnectionId, usize>,
    /// Presence channels: connections per user, and the user's member info.
    pub(crate) presence: BTreeMap<Arc<str>, PresenceEntry>,
    /// Connections present as another user than their own (a Pusher connection is present as
    /// its `channel_data` user).
    present_as: HashMap<ConnectionId, Arc<str>>,
    /// Removed from the hub: a subscriber holding an old pointer must look again.
    deleted: bool,
}

#[derive(Debug)]
pub(crate) struct PresenceEntry {
    pub(crate) connections: usize,
    pub(crate) info: Option<Data>,
}

impl Channel {
    fn new() -> Self {
        Self {
            inner: RwLock::new(ChannelInner::default()),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, ChannelInner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, ChannelInner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl ChannelInner {
    pub(crate) fn members(&self) -> Vec<Member> {
        self.presence
            .iter()
            .map(|(user, entry)| Member {
                user_id: Arc::clone(user),
                info: entry.info.clone(),
            })
            .collect()
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// The members here and, from the broker, on other nodes, one per user, by user id.
    pub(crate) fn cluster_members(&self, key: &ChannelKey, broker: &dyn crate::broker::Broker) -> Vec<Member> {
        let mut members = self.members();
        let remote = broker.remote_members(key);
        if !remote.is_empty() {
            members.extend(remote.into_iter().filter(|m| !self.presence.contains_key(&m.user_id)));
            members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
            members.dedup_by(|a, b| a.user_id == b.user_id);
        }
        members
    }

    fn insert(&mut self, conn: &Arc<ConnShared>) -> bool {
        if self.index.contains_key(&conn.id) {
            return false;
        }
        self.index.insert(conn.id, self.subs.len());
        self.subs.push(Arc::clone(conn));
        true
    }

    fn remove(&mut self, id: ConnectionId) -> bool {
        let Some(position) = self.index.remove(&id) else {
            return false;
        };
        if position < self.subs.len() {
            self.subs.swap_remove(position);
            if let Some(moved) = self.subs.get(position) {
                self.index.insert(moved.id, position);
            }
        }
        true
    }
}

/// Why a subscription did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SubscribeError {
    Gone,
    TooManyChannels,
    PresenceFull,
}

/// What a subscription did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Subscribed {
    /// False when the connection already was subscribed.
    pub(crate) new: bool,
    /// The user's first connection in a presence channel.
    pub(crate) joined: bool,
}

impl HubInner {
    pub(crate) fn channel(&self, key: &ChannelKey) -> Option<Arc<Channel>> {
        self.channels.read(key).get(key).cloned()
    }

    pub(crate) fn channel_or_create(&self, key: &ChannelKey) -> Arc<Channel> {
        if let Some(channel) = self.channel(key) {
            return channel;
        }
        let mut shard = self.channels.write(key);
        let channel = shard.entry(key.clone()).or_insert_with(|| Arc::new(Channel::new()));
        Arc::clone(channel)
    }

    /// Subscribes `conn` (already authorized). Presence join goes to the channel's other
    /// subscribers and the broker.
    pub(crate) fn subscribe(
        &self,
        conn: &Arc<ConnShared>,
        key: &ChannelKey,
        info: Option<Data>,
    ) -> Result<Subscribed, SubscribeError> {
        self.subscribe_as(conn, key, &conn.user, info)
    }

    /// [`subscribe`](Self::subscribe), present in a presence channel as `user`.
    pub(crate) fn subscribe_as(
        &self,
        conn: &Arc<ConnShared>,
        key: &ChannelKey,
        user: &Arc<str>,
        info: Option<Data>,
    ) -> Result<Subscribed, SubscribeError> {
        let mut state = conn.state();
        if state.gone {
            return Err(SubscribeError::Gone);
        }
        if state.channels.contains(key) {
            return Ok(Subscribed {
                new: false,
                joined: false,
            });
        }
        if state.channels.len() >= self.limits.max_channels_per_connection() {
            return Err(SubscribeError::TooManyChannels);
        }
        let is_presence = key.kind() == ChannelKind::Presence;
        // A deleted channel is replaced at once, so a second look always finds a live one;
        // the bound only guards against a delete storm.
        for _ in 0..16 {
            let channel = self.channel_or_create(key);
            let mut inner = channel.write();
            if inner.deleted {
                continue;
            }
            if is_presence
                && !inner.presence.contains_key(user)
                && inner.presence.len() >= self.limits.max_presence_members()
            {
                drop(inner);
                self.remove_if_empty(key);
                return Err(SubscribeError::PresenceFull);
            }
            if inner.insert(conn) {
                self.metrics.subscribed(key);
            }
            let mut joined = false;
            if is_presence {
                if *user != conn.user {
                    inner.present_as.insert(conn.id, Arc::clone(user));
                }
                let entry = inner.presence.entry(Arc::clone(user)).or_insert(PresenceEntry {
                    connections: 0,
                    info: info.clone(),
                });
                entry.connections += 1;
                joined = entry.connections == 1;
            }
            if joined {
                let joiner = Member {
                    user_id: Arc::clone(user),
                    info,
                };
                // A user already present on another node was announced here when they joined
                // there (the broker's answer and its remote changes are both taken under this
                // lock, so exactly one of the two announces).
                if !self.broker.present_elsewhere(key, user) {
                    let mut frames = Frames::encoded(Output::PresenceJoin {
                        channel: key,
                        member: &joiner,
                    });
                    let skip = Skip {
                        connection: Some(conn.id),
                        ..Skip::default()
                    };
                    self.deliver(inner.subs.iter(), &mut frames, skip);
                }
                // Announced under the channel's lock, the order of the user's joins and leaves
                // in it (events are handed to callbacks later, with no lock held).
                self.broker.presence(&crate::broker::PresenceChange::Joined {
                    channel: key.clone(),
                    member: joiner,
                });
                self.events.emit_with(|| HubEvent::PresenceJoined {
                    channel: key.clone(),
                    user_id: Arc::clone(user),
                });
            }
            drop(inner);
            state.channels.push(key.clone());
            self.events.emit_with(|| HubEvent::Subscribed {
                connection: conn.id,
                user_id: Arc::clone(&conn.user),
                channel: key.clone(),
            });
            drop(state);
            self.events.flush();
            return Ok(Subscribed { new: true, joined });
        }
        Err(SubscribeError::Gone)
    }

    /// Unsubscribes `conn`; returns whether it was subscribed.
    pub(crate) fn unsubscribe(&self, conn: &Arc<ConnShared>, key: &ChannelKey) -> bool {
        let mut state = conn.state();
        let Some(position) = state.channels.iter().position(|k| k == key) else {
            return false;
        };
        state.channels.swap_remove(position);
        self.leave_channel(conn, key);
        self.announce_leave(conn, key);
        drop(state);
        self.events.flush();
        true
    }

    /// Tells the program that `conn` left `key`.
    fn announce_leave(&self, conn: &Arc<ConnShared>, key: &ChannelKey) {
        self.events.emit_with(|| HubEvent::Unsubscribed {
            connection: conn.id,
            user_id: Arc::clone(&conn.user),
            channel: key.clone(),
        });
    }

    /// Takes `conn` out of the channel's lists (its state no longer lists the channel).
    fn leave_channel(&self, conn: &Arc<ConnShared>, key: &ChannelKey) {
        if let Some(channel) = self.channel(key) {
            let mut inner = channel.write();
            if inner.remove(conn.id) {
                self.metrics.unsubscribed(key);
                let mut left = false;
                let user = inner
                    .present_as
                    .remove(&conn.id)
                    .unwrap_or_else(|| Arc::clone(&conn.user));
                if let Some(entry) = inner.presence.get_mut(&user) {
                    entry.connections = entry.connections.saturating_sub(1);
                    if entry.connections == 0 {
                        inner.presence.remove(&user);
                        left = true;
                    }
                }
                if left {
                    // Still present on another node: not gone for this node's subscribers.
                    if !self.broker.present_elsewhere(key, &user) {
                        let mut frames = Frames::encoded(Output::PresenceLeave {
                            channel: key,
                            user_id: &user,
                        });
                        self.deliver(inner.subs.iter(), &mut frames, Skip::default());
                    }
                    // Under the channel's lock, like the join (see `subscribe`).
                    self.broker.presence(&crate::broker::PresenceChange::Left {
                        channel: key.clone(),
                        user_id: Arc::clone(&user),
                    });
                    self.events.emit_with(|| HubEvent::PresenceLeft {
                        channel: key.clone(),
                        user_id: Arc::clone(&user),
                    });
                }
                let empty = inner.subs.is_empty();
                drop(inner);
                if empty {
                    self.remove_if_empty(key);
                }
            }
        }
    }

    /// Drops a channel nobody is subscribed to.
    pub(crate) fn remove_if_empty(&self, key: &ChannelKey) {
        let mut shard = self.channels.write(key);
        let Some(channel) = shard.get(key) else {
            return;
        };
        let mut inner = channel.write();
        if inner.subs.is_empty() && !inner.deleted {
            inner.deleted = true;
            drop(inner);
            shard.remove(key);
        }
    }

    /// Removes a channel, unsubscribing everyone (presence leaves fire).
    pub(crate) fn delete_channel(&self, key: &ChannelKey) -> bool {
        let Some(channel) = self.channel(key) else {
            return false;
        };
        let subs: Vec<_> = channel.read().subs.clone();
        for conn in &subs {
            self.unsubscribe(conn, key);
        }
        // Subscribers that raced in are unsubscribed by the same loop next time; what is left
        // empty is removed.
        self.remove_if_empty(key);
        true
    }

    /// Registers a connection.
    pub(crate) fn register(&self, conn: &Arc<ConnShared>) {
        self.conns.write(&conn.id).insert(conn.id, Arc::clone(conn));
        self.users
            .write(&*conn.user)
            .entry(Arc::clone(&conn.user))
            .or_default()
            .push(Arc::clone(conn));
        self.metrics.connection_opened();
    }

    /// Takes a connection out of every channel and index. Idempotent.
    pub(crate) fn unregister(&self, conn: &Arc<ConnShared>) -> bool {
        let mut state = conn.state();
        if state.gone {
            return false;
        }
        state.gone = true;
        let channels = std::mem::take(&mut state.channels);
        drop(state);
        for key in &channels {
            self.leave_channel(conn, key);
            self.announce_leave(conn, key);
        }
        self.conns.write(&conn.id).remove(&conn.id);
        let mut users = self.users.write(&*conn.user);
        if let Some(list) = users.get_mut(&conn.user) {
            list.retain(|c| c.id != conn.id);
            if list.is_empty() {
                users.remove(&conn.user);
            }
        }
        drop(users);
        self.metrics.connection_closed();
        self.events.flush();
        true
    }

    pub(crate) fn connection(&self, id: ConnectionId) -> Option<Arc<ConnShared>> {
        self.conns.read(&id).get(&id).cloned()
    }

    pub(crate) fn user_connections(&self, user: &str) -> Vec<Arc<ConnShared>> {
        self.users.read(user).get(user).cloned().unwrap_or_default()
    }
}
