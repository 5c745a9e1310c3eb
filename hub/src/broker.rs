//! Carrying publications and presence to other nodes. The default, [`LocalBroker`], is a
//! single node; the Redis broker lives in its own crate.
//!
//! The hub calls the broker after delivering locally; a broker delivers what other nodes sent
//! with [`Hub::deliver_remote`](crate::Hub::deliver_remote).

use std::net::IpAddr;
use std::sync::Arc;

use crate::channel::ChannelKey;
use crate::codec::{Member, Publication};
use crate::limits::CapExceeded;

/// A presence change on this node, for other nodes.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PresenceChange {
    /// A user's first connection on this node joined.
    Joined {
        /// The channel.
        channel: ChannelKey,
        /// The member.
        member: Member,
    },
    /// A user's last connection on this node left.
    Left {
        /// The channel.
        channel: ChannelKey,
        /// The user.
        user_id: Arc<str>,
    },
}

/// Other nodes.
///
/// Presence changes are reported under the channel's lock, which is what orders a user's
/// joins and leaves: implementations must not block or call back into the hub (hand the change
/// to a queue or a task).
pub trait Broker: Send + Sync + 'static {
    /// A publication made on this node (already delivered here).
    fn publish(&self, publication: &Publication) {
        let _ = publication;
    }
    /// A whisper (a client's event for the channel's other subscribers, not kept or
    /// published) made on this node, already delivered here: `publication.from` is the sender
    /// and `publication.event` its event. Other nodes deliver it with
    /// [`Hub::deliver_remote_whisper`](crate::Hub::deliver_remote_whisper).
    fn whisper(&self, publication: &Publication) {
        let _ = publication;
    }
    /// A presence change on this node (already delivered here).
    fn presence(&self, change: &PresenceChange) {
        let _ = change;
    }
    /// Whether `user_id` is in the presence channel on another node, as far as this node
    /// knows now. Asked under the channel's lock when a user's first (last) connection on this
    /// node joins (leaves): a user present elsewhere is not announced again to this node's
    /// subscribers. Must answer from memory, without blocking.
    fn present_elsewhere(&self, channel: &ChannelKey, user_id: &str) -> bool {
        let _ = (channel, user_id);
        false
    }
    /// The members of the presence channel on other nodes, as far as this node knows now
    /// (merged into the member list a subscriber gets). Asked under the channel's lock: must
    /// answer from memory, without blocking.
    fn remote_members(&self, channel: &ChannelKey) -> Vec<Member> {
        let _ = channel;
        Vec::new()
    }
    /// Asked at upgrade, after this node's own caps: a cluster-wide cap this connection would
    /// exceed, from what the broker knows in memory now (it must not block). The upgrade is
    /// refused with the cap's status (503 total, 429 per IP or user). `client_ip` is `None`
    /// when the peer is unknown.
    fn check_caps(&self, client_ip: Option<IpAddr>, user_id: &str) -> Result<(), CapExceeded> {
        let _ = (client_ip, user_id);
        Ok(())
    }
    /// Whether publications reach the other nodes right now. An HTTP publication is refused
    /// (503) while this is false; a client's publication is still delivered on this node.
    fn is_available(&self) -> bool {
        true
    }
}

/// One node: nothing to carry.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalBroker;

impl Broker for LocalBroker {}
