//! [`RelayLimits`]: what the relay as a whole accepts, whatever each session's own limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Relay-wide ceilings. Past one, the newcomer gets code 11 (BoundsExceeded) and a reason,
/// and nobody else notices. Per-session limits are in
/// [`SessionConfig`](moq_session::SessionConfig).
///
/// ```
/// use moq_relay::RelayLimits;
///
/// let limits = RelayLimits::default().max_sessions(100).max_sessions_per_ip(4);
/// assert_eq!(limits.max_sessions, 100);
/// assert_eq!(limits.max_announced, RelayLimits::DEFAULT_MAX_ANNOUNCED);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RelayLimits {
    /// Sessions at once, those still in their handshake included. One more connection is
    /// closed with 11 before anything else is done for it.
    pub max_sessions: usize,
    /// Sessions at once from one IP address (handshaking ones included; IPv6 addresses
    /// count by their /64 network, which one host usually has whole); one more is closed
    /// with 11.
    pub max_sessions_per_ip: usize,
    /// Distinct paths announced across every session. A session whose announcement would
    /// pass it is closed with 11 (its announcements end with it).
    pub max_announced: usize,
    /// Subscriptions served across every session; one more is reset with 11, the session
    /// goes on.
    pub max_subscriptions: usize,
    /// Payload bytes the relay holds for all its tracks together (cached groups and groups
    /// being forwarded). A group whose next frame would pass it is aborted: its publisher's
    /// stream is stopped with 11 and its subscribers see the group end with 11; the track
    /// goes on with its next group. The bytes come back as the groups leave the cache.
    pub max_memory: usize,
    /// Payload bytes one group may hold; a group past it is aborted as above.
    pub max_group_bytes: usize,
}

impl RelayLimits {
    /// Default of [`max_sessions`](Self::max_sessions): 10,000 (an idle session costs about
    /// 100 KB).
    pub const DEFAULT_MAX_SESSIONS: usize = 10_000;
    /// Default of [`max_sessions_per_ip`](Self::max_sessions_per_ip): 1,000 (many users may
    /// share an address behind a NAT; local load tests open hundreds).
    pub const DEFAULT_MAX_SESSIONS_PER_IP: usize = 1_000;
    /// Default of [`max_announced`](Self::max_announced): 100,000 (about 1 KB each).
    pub const DEFAULT_MAX_ANNOUNCED: usize = 100_000;
    /// Default of [`max_subscriptions`](Self::max_subscriptions): 100,000.
    pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 100_000;
    /// Default of [`max_memory`](Self::max_memory): 1 GiB.
    pub const DEFAULT_MAX_MEMORY: usize = 1 << 30;
    /// Default of [`max_group_bytes`](Self::max_group_bytes): 64 MiB, the largest frame a
    /// session accepts.
    pub const DEFAULT_MAX_GROUP_BYTES: usize = 64 << 20;

    /// Sets [`max_sessions`](Self::max_sessions).
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max;
        self
    }

    /// Sets [`max_sessions_per_ip`](Self::max_sessions_per_ip).
    pub fn max_sessions_per_ip(mut self, max: usize) -> Self {
        self.max_sessions_per_ip = max;
        self
    }

    /// Sets [`max_announced`](Self::max_announced).
    pub fn max_announced(mut self, max: usize) -> Self {
        self.max_announced = max;
        self
    }

    /// Sets [`max_subscriptions`](Self::max_subscriptions).
    pub fn max_subscriptions(mut self, max: usize) -> Self {
        self.max_subscriptions = max;
        self
    }

    /// Sets [`max_memory`](Self::max_memory).
    pub fn max_memory(mut self, bytes: usize) -> Self {
        self.max_memory = bytes;
        self
    }

    /// Sets [`max_group_bytes`](Self::max_group_bytes).
    pub fn max_group_bytes(mut self, bytes: usize) -> Self {
        self.max_group_bytes = bytes;
        self
    }
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            max_sessions: Self::DEFAULT_MAX_SESSIONS,
            max_sessions_per_ip: Self::DEFAULT_MAX_SESSIONS_PER_IP,
            max_announced: Self::DEFAULT_MAX_ANNOUNCED,
            max_subscriptions: Self::DEFAULT_MAX_SUBSCRIPTIONS,
            max_memory: Self::DEFAULT_MAX_MEMORY,
            max_group_bytes: Self::DEFAULT_MAX_GROUP_BYTES,
        }
    }
}

/// The sessions open now, in all and by IP address.
#[derive(Clone, Debug, Default)]
pub(crate) struct Admission {
    inner: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// One admitted session; given back when dropped.
#[derive(Debug)]
pub(crate) struct Admitted {
    admission: Admission,
    ip: IpAddr,
}

impl Admission {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sessions admitted right now, in all.
    pub(crate) fn total(&self) -> usize {
        self.lock().total
    }

    /// Admits one more session from `ip`, or says which limit it would pass.
    pub(crate) fn admit(&self, ip: IpAddr, limits: &RelayLimits) -> Result<Admitted, String> {
        let ip = network(ip);
        let mut counts = self.lock();
        if counts.total >= limits.max_sessions {
            return Err(format!(
                "the relay is full ({} sessions)",
                limits.max_sessions
            ));
        }
        let from_ip = counts.by_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= limits.max_sessions_per_ip {
            return Err(format!(
                "too many sessions from {ip} ({})",
                limits.max_sessions_per_ip
            ));
        }
        counts.total += 1;
        counts.by_ip.insert(ip, from_ip + 1);
        Ok(Admitted {
            admission: self.clone(),
            ip,
        })
    }
}

/// The address sessions are counted by: an IPv4 address itself (also when mapped into
/// IPv6), an IPv6 address's /64 network.
fn network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.admission.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_counted_in_all_and_by_address() {
        let admission = Admission::default();
        let limits = RelayLimits::default()
            .max_sessions(3)
            .max_sessions_per_ip(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = admission.admit(a, &limits).unwrap();
        let _a2 = admission.admit(a, &limits).unwrap();
        assert!(
            admission
                .admit(a, &limits)
                .unwrap_err()
                .contains("10.0.0.1")
        );
        let _b1 = admission.admit(b, &limits).unwrap();
        assert!(admission.admit(b, &limits).unwrap_err().contains("full"));
        drop(a1);
        assert!(admission.admit(a, &limits).is_ok());
        assert_eq!(admission.lock().by_ip.len(), 2);
    }

    #[test]
    fn ipv6_hosts_count_by_their_64_network() {
        let admission = Admission::default();
        let limits = RelayLimits::default().max_sessions_per_ip(1);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _a = admission.admit(a, &limits).unwrap();
        assert!(admission.admit(b, &limits).is_err(), "same /64");
        let _c = admission.admit(c, &limits).unwrap();
        // An IPv4 address mapped into IPv6 is that IPv4 address.
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let _v4 = admission.admit(v4, &limits).unwrap();
        assert!(admission.admit(mapped, &limits).is_err());
    }
}
