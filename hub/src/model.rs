//! Random operation sequences over the hub's bookkeeping, checked against a plain model after
//! every step: shared by the property tests and the fuzz target.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::channel::ChannelKey;
use crate::codec::CodecId;
use crate::conn::ConnShared;
use crate::events::HubEvent;
use crate::hub::Hub;

/// One step.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// Connection `conn` (of user `conn % users`) connects.
    Connect(u8),
    /// Connection subscribes to channel.
    Subscribe(u8, u8),
    /// Connection unsubscribes.
    Unsubscribe(u8, u8),
    /// Connection drops (abrupt close).
    Disconnect(u8),
    /// Every connection of a user closes.
    CloseUser(u8),
    /// A publication to a channel.
    Publish(u8),
    /// The channel is deleted.
    Delete(u8),
}

const CONNS: u8 = 12;
const USERS: u8 = 4;
const CHANNELS: u8 = 5;

impl Op {
    /// An op from two bytes (for the fuzzer).
    pub fn from_bytes(a: u8, b: u8) -> Self {
        let conn = (a >> 3) % CONNS;
        let channel = b % CHANNELS;
        match a & 7 {
            0 | 1 => Self::Connect(conn),
            2 | 3 => Self::Subscribe(conn, channel),
            4 => Self::Unsubscribe(conn, channel),
            5 => Self::Disconnect(conn),
            6 => Self::CloseUser(b % USERS),
            _ if b & 0x80 == 0 => Self::Publish(channel),
            _ => Self::Delete(channel),
        }
    }
}

fn channel(n: u8) -> ChannelKey {
    // Half presence channels, half public.
    if n % 2 == 0 {
        ChannelKey::named(format!("presence-{n}"))
    } else {
        ChannelKey::named(format!("room-{n}"))
    }
}

fn user(conn: u8) -> Arc<str> {
    format!("user-{}", conn % USERS).into()
}

/// Runs `ops` and checks the invariants; panics on a violation.
pub fn run(ops: &[Op]) {
    let config = crate::HubConfig {
        max_presence_members: 3,
        max_channels_per_connection: 4,
        ..crate::HubConfig::default()
    };
    let hub = Hub::new(config);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    hub.on_event(move |event| {
        if let HubEvent::PresenceJoined { channel, user_id } | HubEvent::PresenceLeft { channel, user_id } = event {
            let joined = matches!(event, HubEvent::PresenceJoined { .. });
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((channel.clone(), user_id.clone(), joined));
        }
    });
    let mut live: BTreeMap<u8, Arc<ConnShared>> = BTreeMap::new();
    // Model: (conn, channel) subscriptions.
    let mut subs: BTreeSet<(u8, u8)> = BTreeSet::new();
    for op in ops {
        match *op {
            Op::Connect(c) => {
                if let std::collections::btree_map::Entry::Vacant(slot) = live.entry(c) {
                    let id = hub.inner.next_connection_id();
                    let conn = Arc::new(ConnShared::new(
                        id,
                        user(c),
                        crate::DEFAULT_APP.into(),
                        CodecId::NATIVE,
                        None,
                        None,
                    ));
                    hub.inner.register(&conn);
                    slot.insert(conn);
                }
            }
            Op::Subscribe(c, ch) => {
                if let Some(conn) = live.get(&c) {
                    let key = channel(ch);
                    let mine = subs.iter().filter(|(sc, _)| *sc == c).count();
                    let users_in: BTreeSet<Arc<str>> = subs
                        .iter()
                        .filter(|(_, sch)| *sch == ch)
                        .map(|(sc, _)| user(*sc))
                        .collect();
                    let presence_full = ch % 2 == 0 && !users_in.contains(&user(c)) && users_in.len() >= 3;
                    let result = hub.inner.subscribe(conn, &key, None);
                    if subs.contains(&(c, ch)) {
                        assert!(matches!(result, Ok(s) if !s.new));
                    } else if mine >= 4 {
                        assert_eq!(result, Err(crate::registry::SubscribeError::TooManyChannels));
                    } else if presence_full {
                        assert_eq!(result, Err(crate::registry::SubscribeError::PresenceFull));
                    } else {
                        assert!(matches!(result, Ok(s) if s.new));
                        subs.insert((c, ch));
                    }
                }
            }
            Op::Unsubscribe(c, ch) => {
                if let Some(conn) = live.get(&c) {
                    let was = hub.inner.unsubscribe(conn, &channel(ch));
                    assert_eq!(was, subs.remove(&(c, ch)));
                }
            }
            Op::Disconnect(c) => {
                if let Some(conn) = live.remove(&c) {
                    assert!(hub.inner.unregister(&conn));
                    assert!(!hub.inner.unregister(&conn), "unregister is idempotent");
                    subs.retain(|(sc, _)| *sc != c);
                }
            }
            Op::CloseUser(u) => {
                let name = format!("user-{u}");
                let ids: BTreeSet<_> = hub.user_connections(&name).into_iter().collect();
                let gone: Vec<u8> = live
                    .iter()
                    .filter(|(_, c)| ids.contains(&c.id))
                    .map(|(k, _)| *k)
                    .collect();
                assert_eq!(gone.len(), ids.len());
                for c in gone {
                    if let Some(conn) = live.remove(&c) {
                        hub.inner.unregister(&conn);
                    }
                    subs.retain(|(sc, _)| *sc != c);
                }
            }
            Op::Publish(ch) => {
                let delivery = hub.publish(&channel(ch), Some("e"), "x");
                let expected = subs.iter().filter(|(_, sch)| *sch == ch).count();
                assert_eq!(delivery.queued + delivery.disconnected, expected);
            }
            Op::Delete(ch) => {
                let existed = hub.delete_channel(&channel(ch));
                assert_eq!(existed, subs.iter().any(|(_, sch)| *sch == ch));
                subs.retain(|(_, sch)| *sch != ch);
            }
        }
        check(&hub, &live, &subs);
    }
    for (_, conn) in std::mem::take(&mut live) {
        hub.inner.unregister(&conn);
    }
    subs.clear();
    check(&hub, &live, &subs);
    assert!(hub.channels().is_empty(), "channels left: {:?}", hub.channels());
    assert_eq!(hub.connection_count(), 0);
    assert_eq!(hub.inner.users.len(), 0);
    let snapshot = hub.snapshot();
    assert_eq!(
        (snapshot.connections, snapshot.channels, snapshot.subscriptions),
        (0, 0, 0)
    );
    // Join and leave alternate per (channel, user), starting with a join, and balance out.
    let events = events.lock().unwrap_or_else(|e| e.into_inner());
    let mut state: BTreeMap<(ChannelKey, Arc<str>), bool> = BTreeMap::new();
    for (ch, u, joined) in events.iter() {
        let inside = state.entry((ch.clone(), u.clone())).or_insert(false);
        assert_ne!(
            *inside,
            *joined,
            "{u} {} twice in {ch:?}",
            if *joined { "joined" } else { "left" }
        );
        *inside = *joined;
    }
    assert!(state.values().all(|inside| !inside), "someone never left");
}

fn check(hub: &Hub, live: &BTreeMap<u8, Arc<ConnShared>>, subs: &BTreeSet<(u8, u8)>) {
    for ch in 0..CHANNELS {
        let key = channel(ch);
        let expected: BTreeSet<_> = subs
            .iter()
            .filter(|(_, sch)| *sch == ch)
            .filter_map(|(c, _)| live.get(c).map(|conn| conn.id))
            .collect();
        let actual: BTreeSet<_> = hub.subscribers(&key).into_iter().collect();
        assert_eq!(actual, expected, "subscribers of {key:?}");
        assert_eq!(hub.channel_size(&key), expected.len());
        assert_eq!(hub.stats().subscribers(key.app(), key.name()), expected.len() as u64);
        if ch % 2 == 0 {
            let users: BTreeSet<Arc<str>> = subs
                .iter()
                .filter(|(_, sch)| *sch == ch)
                .map(|(c, _)| user(*c))
                .collect();
            let members: BTreeSet<Arc<str>> = hub.presence(&key).into_iter().map(|m| m.user_id).collect();
            assert_eq!(members, users, "presence of {key:?}");
        } else {
            assert!(hub.presence(&key).is_empty());
        }
        assert_eq!(
            hub.channels().contains(&key),
            !expected.is_empty(),
            "empty channels are removed"
        );
    }
    assert_eq!(hub.connection_count(), live.len());
    for (c, conn) in live {
        let mine: BTreeSet<ChannelKey> = subs
            .iter()
            .filter(|(sc, _)| sc == c)
            .map(|(_, ch)| channel(*ch))
            .collect();
        let theirs: BTreeSet<ChannelKey> = conn.state().channels.iter().cloned().collect();
        assert_eq!(mine, theirs);
        assert!(hub.user_connections(&conn.user).contains(&conn.id));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => (0..CONNS).prop_map(Op::Connect),
            4 => (0..CONNS, 0..CHANNELS).prop_map(|(c, ch)| Op::Subscribe(c, ch)),
            2 => (0..CONNS, 0..CHANNELS).prop_map(|(c, ch)| Op::Unsubscribe(c, ch)),
            1 => (0..CONNS).prop_map(Op::Disconnect),
            1 => (0..USERS).prop_map(Op::CloseUser),
            1 => (0..CHANNELS).prop_map(Op::Publish),
            1 => (0..CHANNELS).prop_map(Op::Delete),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn bookkeeping_matches_the_model(ops in proptest::collection::vec(op(), 0..120)) {
            run(&ops);
        }
    }
}

#[cfg(test)]
mod concurrent {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use crate::channel::ChannelKey;
    use crate::codec::CodecId;
    use crate::conn::ConnShared;
    use crate::events::HubEvent;
    use crate::hub::Hub;

    /// Four threads, each driving its own connections (users shared across threads) over five
    /// shared channels: no deadlock, joins and leaves alternate per user, nothing is left.
    #[test]
    fn threads_keep_the_invariants() {
        for round in 0..10u64 {
            let hub = Hub::default();
            let events = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&events);
            hub.on_event(move |event| match event {
                HubEvent::PresenceJoined { channel, user_id } => {
                    sink.lock().unwrap().push((channel.clone(), user_id.clone(), true));
                }
                HubEvent::PresenceLeft { channel, user_id } => {
                    sink.lock().unwrap().push((channel.clone(), user_id.clone(), false));
                }
                _ => {}
            });
            let threads: Vec<_> = (0..4u64)
                .map(|t| {
                    let hub = hub.clone();
                    std::thread::spawn(move || {
                        let mut state = (round << 8 | t).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                        let mut next = move || {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            state
                        };
                        let conns: Vec<Arc<ConnShared>> = (0..3)
                            .map(|i| {
                                let id = hub.inner.next_connection_id();
                                let user: Arc<str> = format!("u{}", (t * 3 + i) % 4).into();
                                let conn =
                                    Arc::new(ConnShared::new(id, user, "default".into(), CodecId::NATIVE, None, None));
                                hub.inner.register(&conn);
                                conn
                            })
                            .collect();
                        for _ in 0..1500 {
                            let conn = &conns[(next() % 3) as usize];
                            let name = if next() % 2 == 0 { "presence-p" } else { "room" };
                            let key = ChannelKey::named(format!("{name}{}", next() % 3));
                            match next() % 4 {
                                0 | 1 => {
                                    let _ = hub.inner.subscribe(conn, &key, None);
                                }
                                2 => {
                                    hub.inner.unsubscribe(conn, &key);
                                }
                                _ => {
                                    hub.publish(&key, None, "x");
                                }
                            }
                        }
                        for conn in &conns {
                            hub.inner.unregister(conn);
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().expect("no panic");
            }
            assert!(hub.channels().is_empty());
            assert_eq!(hub.connection_count(), 0);
            let snapshot = hub.snapshot();
            assert_eq!((snapshot.connections, snapshot.subscriptions), (0, 0));
            let mut inside: BTreeMap<(ChannelKey, Arc<str>), bool> = BTreeMap::new();
            for (channel, user, joined) in events.lock().unwrap().iter() {
                let was = inside.entry((channel.clone(), user.clone())).or_insert(false);
                assert_ne!(*was, *joined, "{user} in {channel:?}");
                *was = *joined;
            }
            assert!(inside.values().all(|v| !v));
        }
    }
}
