//! This node's view of presence on the other nodes, for the presence channels it has
//! subscribers in.
//!
//! Why a mirror in memory: the hub asks whether a user is present elsewhere under its channel
//! lock, when a user's first (last) connection here joins (leaves), and merges other nodes'
//! members into the list a subscriber gets. Neither may wait for Redis, so the answers come
//! from here. The mirror is loaded from Redis when this node subscribes to the channel and
//! kept current from the node-level presence changes the Lua scripts publish on the channel
//! (every node that gains or loses a user in it, each with the channel's next version number).
//!
//! Why node-level changes rather than cluster edges: a node must know that a user is still on
//! another node when their last connection here leaves, and cluster edges say nothing about a
//! second node gaining a user. Each node then announces to its own subscribers exactly when
//! its view (users here, or on another node) changes, under the channel's lock (see
//! `Hub::apply_remote_presence`), so every subscriber on every node sees one join and one
//! leave per user, whatever the interleaving of joins on several nodes or a node's death.
//!
//! Versions make the load exact: changes arriving while the snapshot is read are queued and
//! applied only when newer than it; a gap (a message missed on a reconnect) or a counter that
//! went back (Redis restarted) reloads the channel, and a reload delivers only the difference.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use wsengine_hub::broker::PresenceChange;
use wsengine_hub::{ChannelKey, Data, codec::Member};

/// Changes queued while a channel loads, at most; past it the load is done again.
const MAX_PENDING: usize = 65_536;

/// One node gained or lost a user in a presence channel.
#[derive(Clone, Debug)]
pub(crate) struct NodeChange {
    pub(crate) version: u64,
    pub(crate) node: Arc<str>,
    pub(crate) user: Arc<str>,
    pub(crate) present: bool,
    pub(crate) info: Option<Data>,
}

/// A channel's presence as read from Redis in one script run.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) version: u64,
    /// `(node, user)` pairs.
    pub(crate) entries: Vec<(Arc<str>, Arc<str>)>,
    pub(crate) infos: HashMap<Arc<str>, Option<Data>>,
}

#[derive(Debug)]
struct Remote {
    nodes: HashSet<Arc<str>>,
    info: Option<Data>,
}

/// Other nodes' members of one channel.
#[derive(Debug)]
pub(crate) struct Mirror {
    loaded: bool,
    /// A snapshot must be read (set again by a gap; cleared when the read starts).
    pub(crate) needs_load: bool,
    overflowed: bool,
    version: u64,
    pending: Vec<NodeChange>,
    users: HashMap<Arc<str>, Remote>,
}

impl Mirror {
    pub(crate) fn new() -> Self {
        Self {
            loaded: false,
            needs_load: true,
            overflowed: false,
            version: 0,
            pending: Vec::new(),
            users: HashMap::new(),
        }
    }

    pub(crate) fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Starts over: changes are queued until the next snapshot.
    pub(crate) fn reload(&mut self) {
        self.loaded = false;
        self.needs_load = true;
        self.overflowed = false;
        self.pending.clear();
    }

    pub(crate) fn present(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(|r| !r.nodes.is_empty())
    }

    pub(crate) fn members(&self) -> Vec<Member> {
        self.users
            .iter()
            .map(|(user, remote)| Member {
                user_id: Arc::clone(user),
                info: remote.info.clone(),
            })
            .collect()
    }

    /// A change from the channel; returns what changed in the view of other nodes. A gap in
    /// the versions asks for a reload (returned true in the second place).
    pub(crate) fn on_change(
        &mut self,
        channel: &ChannelKey,
        change: NodeChange,
        me: &str,
    ) -> (Vec<PresenceChange>, bool) {
        let mut out = Vec::new();
        if !self.loaded {
            if self.pending.len() >= MAX_PENDING {
                self.pending.clear();
                self.overflowed = true;
            } else if !self.overflowed {
                self.pending.push(change);
            }
            return (out, false);
        }
        let again = !self.next(channel, change, me, &mut out);
        (out, again)
    }

    /// Applies the change that follows the last one; false (and a reload) on a gap.
    fn next(&mut self, channel: &ChannelKey, change: NodeChange, me: &str, out: &mut Vec<PresenceChange>) -> bool {
        if change.version != self.version + 1 {
            self.reload();
            return false;
        }
        self.version = change.version;
        self.apply(channel, change, me, out);
        true
    }

    /// Applies a snapshot and the changes queued after it; returns the difference from what
    /// the view held before. True in the second place when it must be read again (too many
    /// changes queued meanwhile).
    pub(crate) fn load(&mut self, channel: &ChannelKey, snapshot: Snapshot, me: &str) -> (Vec<PresenceChange>, bool) {
        if self.overflowed {
            self.reload();
            return (Vec::new(), true);
        }
        let before: HashSet<Arc<str>> = self.users.keys().cloned().collect();
        let mut users: HashMap<Arc<str>, Remote> = HashMap::new();
        for (node, user) in snapshot.entries {
            if &*node == me {
                continue;
            }
            let info = snapshot.infos.get(&user).cloned().flatten();
            users
                .entry(user)
                .or_insert_with(|| Remote {
                    nodes: HashSet::new(),
                    info,
                })
                .nodes
                .insert(node);
        }
        let old = std::mem::replace(&mut self.users, users);
        self.version = snapshot.version;
        self.loaded = true;
        let mut out = Vec::new();
        for user in &before {
            if !self.users.contains_key(user) {
                out.push(PresenceChange::Left {
                    channel: channel.clone(),
                    user_id: Arc::clone(user),
                });
            }
        }
        for (user, remote) in &self.users {
            if !old.contains_key(user) {
                out.push(PresenceChange::Joined {
                    channel: channel.clone(),
                    member: Member {
                        user_id: Arc::clone(user),
                        info: remote.info.clone(),
                    },
                });
            }
        }
        let pending = std::mem::take(&mut self.pending);
        for change in pending {
            if change.version > self.version && !self.next(channel, change, me, &mut out) {
                return (out, true);
            }
        }
        (out, false)
    }

    /// Everyone leaves (the channel is no longer watched here).
    pub(crate) fn clear(&mut self, channel: &ChannelKey) -> Vec<PresenceChange> {
        self.users
            .drain()
            .map(|(user, _)| PresenceChange::Left {
                channel: channel.clone(),
                user_id: user,
            })
            .collect()
    }

    fn apply(&mut self, channel: &ChannelKey, change: NodeChange, me: &str, out: &mut Vec<PresenceChange>) {
        if &*change.node == me {
            // This node's own change: the hub announced it already.
            return;
        }
        if change.present {
            let remote = self.users.entry(Arc::clone(&change.user)).or_insert_with(|| Remote {
                nodes: HashSet::new(),
                info: change.info.clone(),
            });
            let first = remote.nodes.is_empty();
            remote.nodes.insert(change.node);
            if first {
                out.push(PresenceChange::Joined {
                    channel: channel.clone(),
                    member: Member {
                        user_id: change.user,
                        info: remote.info.clone(),
                    },
                });
            }
        } else if let Some(remote) = self.users.get_mut(&change.user) {
            remote.nodes.remove(&change.node);
            if remote.nodes.is_empty() {
                self.users.remove(&change.user);
                out.push(PresenceChange::Left {
                    channel: channel.clone(),
                    user_id: change.user,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(version: u64, node: &str, user: &str, present: bool) -> NodeChange {
        NodeChange {
            version,
            node: Arc::from(node),
            user: Arc::from(user),
            present,
            info: None,
        }
    }

    fn users(changes: &[PresenceChange]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                PresenceChange::Joined { member, .. } => format!("+{}", member.user_id),
                PresenceChange::Left { user_id, .. } => format!("-{user_id}"),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn a_user_on_two_other_nodes_joins_once_and_leaves_once() {
        let key = ChannelKey::named("presence-x");
        let mut mirror = Mirror::new();
        let (out, again) = mirror.load(&key, Snapshot::default(), "me");
        assert!(out.is_empty() && !again);
        let (a, _) = mirror.on_change(&key, change(1, "n1", "alice", true), "me");
        let (b, _) = mirror.on_change(&key, change(2, "n2", "alice", true), "me");
        let (c, _) = mirror.on_change(&key, change(3, "me", "bob", true), "me");
        let (d, _) = mirror.on_change(&key, change(4, "n1", "alice", false), "me");
        let (e, _) = mirror.on_change(&key, change(5, "n2", "alice", false), "me");
        assert_eq!(
            [users(&a), users(&b), users(&c), users(&d), users(&e)].concat(),
            ["+alice", "-alice"]
        );
    }

    #[test]
    fn queued_changes_older_than_the_snapshot_are_skipped_and_a_gap_reloads() {
        let key = ChannelKey::named("presence-x");
        let mut mirror = Mirror::new();
        mirror.on_change(&key, change(3, "n1", "alice", true), "me");
        mirror.on_change(&key, change(4, "n1", "alice", false), "me");
        let snapshot = Snapshot {
            version: 3,
            entries: vec![(Arc::from("n1"), Arc::from("alice"))],
            infos: HashMap::new(),
        };
        let (out, again) = mirror.load(&key, snapshot, "me");
        assert_eq!(users(&out), ["+alice", "-alice"]);
        assert!(!again && !mirror.present("alice"));
        let (_, again) = mirror.on_change(&key, change(9, "n1", "bob", true), "me");
        assert!(again && !mirror.is_loaded());
    }
}
