//! Cluster-wide connection caps checked at upgrade ([`Broker::check_caps`]), from counts this
//! node already holds: the hub asks synchronously, before the handshake, so nothing here waits
//! for Redis.
//!
//! A count is the cluster's figure returned by this node's last write of it (and, for the
//! total, the figure read at each heartbeat), plus the connections this node gained or lost
//! since that write. A user or IP with no connection on this node has no count here: its
//! connection is admitted and, if it puts the cluster over the cap, closed once written
//! (1008), as are connections that race on several nodes.
//!
//! [`Broker::check_caps`]: wsengine_hub::Broker::check_caps

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use wsengine_hub::limits::CapExceeded;

use crate::Shared;

/// A cluster figure as of this node's last write, and this node's own count in that write.
type Count = (i64, usize);

#[derive(Default)]
pub(crate) struct Known {
    total: Option<Count>,
    users: HashMap<Arc<str>, Count>,
    ips: HashMap<IpAddr, Count>,
}

impl Known {
    /// The cluster count written for a user (forgotten with its last local connection).
    pub(crate) fn user(&mut self, user: &Arc<str>, cluster: i64, local: usize) {
        if local == 0 {
            self.users.remove(user);
        } else {
            self.users.insert(Arc::clone(user), (cluster, local));
        }
    }

    /// The cluster count written for a client IP.
    pub(crate) fn ip(&mut self, ip: IpAddr, cluster: i64, local: usize) {
        if local == 0 {
            self.ips.remove(&ip);
        } else {
            self.ips.insert(ip, (cluster, local));
        }
    }

    /// The cluster's connections as written by this node.
    pub(crate) fn total(&mut self, cluster: i64, local: usize) {
        self.total = Some((cluster, local));
    }

    /// The cluster's connections as read at a heartbeat (this node's part is its last write).
    pub(crate) fn total_read(&mut self, cluster: u64) {
        let local = self.total.map_or(0, |(_, local)| local);
        self.total = Some((i64::try_from(cluster).unwrap_or(i64::MAX), local));
    }
}

fn over(count: Option<&Count>, local_now: usize, max: Option<u64>) -> Option<usize> {
    let max = max?;
    let (cluster, at_write) = *count?;
    let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let estimate = cluster
        .saturating_sub(as_i64(at_write))
        .saturating_add(as_i64(local_now));
    (estimate >= i64::try_from(max).unwrap_or(i64::MAX)).then(|| usize::try_from(max).unwrap_or(usize::MAX))
}

pub(crate) fn check(shared: &Shared, ip: Option<IpAddr>, user: &str) -> Result<(), CapExceeded> {
    let config = &shared.config;
    if (config.max_connections.is_none()
        && config.max_connections_per_user.is_none()
        && config.max_connections_per_ip.is_none())
        || !shared.connected.load(Ordering::Relaxed)
    {
        // Redis down: this node's own caps only.
        return Ok(());
    }
    // Lock order: local, then known (the writer takes them one at a time).
    let local = shared.lock_local();
    let known = shared.lock_known();
    if let Some(limit) = over(known.total.as_ref(), local.conns.len(), config.max_connections) {
        return Err(CapExceeded::Total { limit });
    }
    let user_now = local.users.get(user).map_or(0, Vec::len);
    if let Some(limit) = over(known.users.get(user), user_now, config.max_connections_per_user) {
        return Err(CapExceeded::PerUser { limit });
    }
    if let Some(ip) = ip {
        let ip_now = local.ips.get(&ip).map_or(0, Vec::len);
        if let Some(limit) = over(known.ips.get(&ip), ip_now, config.max_connections_per_ip) {
            return Err(CapExceeded::PerIp { limit });
        }
    }
    Ok(())
}
