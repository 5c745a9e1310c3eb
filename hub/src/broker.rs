//! Carrying publications and presence to other nodes. The default, [`LocalBroker`], is a
//! single node; the Redis broker lives in its own crate.
//!
//! The hub calls the broker after delivering locally; a broker delivers what other nodes sent
//! with [`Hub::deliver_remote`](crate::Hub::deliver_remote).

use std::sync::Arc;

use crate::channel::ChannelKey;
use crate::codec::{Member, Publication};

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
    /// A presence change on this node (already delivered here).
    fn presence(&self, change: &PresenceChange) {
        let _ = change;
    }
}

/// One node: nothing to carry.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalBroker;

impl Broker for LocalBroker {}
