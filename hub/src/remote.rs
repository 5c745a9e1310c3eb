//! What other nodes send this hub through its [`Broker`](crate::Broker): publications,
//! whispers and presence changes, delivered to this node's subscribers without going back to
//! the broker.

use crate::channel::ChannelKey;
use crate::codec::{Output, Publication};
use crate::fanout::{Delivery, Frames, Skip};
use crate::hub::Hub;

impl Hub {
    /// Delivers a publication that came from another node (no broker call).
    pub fn deliver_remote(&self, publication: &Publication) -> Delivery {
        let delivery = self.inner.publish_local(publication, Skip::default());
        self.inner.events.flush();
        delivery
    }

    /// Delivers a whisper that came from another node ([`Broker::whisper`](crate::Broker::whisper)) to this node's
    /// subscribers of its channel; `None` when it names no sender or event.
    pub fn deliver_remote_whisper(&self, whisper: &Publication) -> Option<Delivery> {
        let (from, event) = (whisper.from.as_deref()?, whisper.event.as_deref()?);
        let Some(channel) = self.inner.channel(&whisper.channel) else {
            return Some(Delivery::default());
        };
        let mut frames = Frames::encoded(Output::Whisper {
            channel: &whisper.channel,
            from,
            event,
            data: &whisper.data,
        });
        let delivery = self
            .inner
            .deliver(channel.read().subs.iter(), &mut frames, Skip::default());
        self.inner.events.flush();
        Some(delivery)
    }

    /// Delivers a presence change that came from another node to this node's subscribers of
    /// its channel, each in its protocol (no broker call; this node's member list is not
    /// changed).
    pub fn deliver_remote_presence(&self, change: &crate::broker::PresenceChange) -> Delivery {
        use crate::broker::PresenceChange;
        let (key, output) = match change {
            PresenceChange::Joined { channel, member } => (channel, Output::PresenceJoin { channel, member }),
            PresenceChange::Left { channel, user_id } => (channel, Output::PresenceLeave { channel, user_id }),
        };
        let Some(channel) = self.inner.channel(key) else {
            return Delivery::default();
        };
        let mut frames = Frames::encoded(output);
        let inner = channel.read();
        self.inner.deliver(inner.subs.iter(), &mut frames, Skip::default())
    }

    /// Applies presence changes from other nodes: `apply` runs under the channel's lock (the
    /// lock a local join or leave asks [`Broker::present_elsewhere`](crate::Broker::present_elsewhere) under), updates the
    /// broker's view of other nodes and returns what changed in it: a user now present
    /// elsewhere (`Joined`) or no longer (`Left`). Each change is delivered to this node's
    /// subscribers unless the user has connections here (then nothing changed for them).
    /// `apply` must not call the hub.
    pub fn apply_remote_presence(
        &self,
        channel: &ChannelKey,
        apply: impl FnOnce() -> Vec<crate::broker::PresenceChange>,
    ) -> Delivery {
        use crate::broker::PresenceChange;
        let mut apply = Some(apply);
        let mut delivery = Delivery::default();
        // The channel is made if missing, so a subscriber arriving now finds the change either
        // in the member list or as an event. A deleted channel is replaced at once; the bound
        // only guards against a delete storm.
        for _ in 0..16 {
            let ch = self.inner.channel_or_create(channel);
            let inner = ch.write();
            if inner.is_deleted() {
                continue;
            }
            let changes = apply.take().map(|f| f()).unwrap_or_default();
            for change in &changes {
                let (user, output) = match change {
                    PresenceChange::Joined { channel, member } => {
                        (&member.user_id, Output::PresenceJoin { channel, member })
                    }
                    PresenceChange::Left { channel, user_id } => (user_id, Output::PresenceLeave { channel, user_id }),
                };
                if inner.presence.contains_key(user) {
                    continue;
                }
                let mut frames = Frames::encoded(output);
                let d = self.inner.deliver(inner.subs.iter(), &mut frames, Skip::default());
                delivery.queued += d.queued;
                delivery.dropped += d.dropped;
                delivery.disconnected += d.disconnected;
            }
            let empty = inner.subs.is_empty();
            drop(inner);
            if empty {
                self.inner.remove_if_empty(channel);
            }
            break;
        }
        self.inner.events.flush();
        delivery
    }

    /// Whether publications reach other nodes now ([`Broker::is_available`](crate::Broker::is_available)); always true on
    /// one node. HTTP publish APIs answer 503 while it is false.
    pub fn is_broker_available(&self) -> bool {
        self.inner.broker.is_available()
    }
}
