//! Rate limits so one misbehaving tab or script cannot starve the others: REST writes per
//! caller ([`RateKey`]: a user, or a client address when the operator asks for it) and socket
//! commands per connection. Token buckets from `governor`; a limit of 0 turns a limiter off.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

use crate::domain::error::{Error, Result};

/// How many checks pass between sweeps of idle keys, so the key map stays small.
const SWEEP_EVERY: u64 = 4096;

/// Who shares one REST write budget.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// An authenticated user; the same `sub` in two workspaces is two users.
    User {
        /// The token's workspace.
        workspace: String,
        /// The token's `sub`.
        user: String,
    },
    /// A client address: IPv4 as is, IPv6 by its /64, since one host usually holds a whole /64
    /// and could otherwise pick a fresh address per request.
    Address(IpAddr),
}

impl RateKey {
    /// The key of a client address (IPv4-mapped IPv6 counts as the IPv4 address).
    pub fn address(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => RateKey::Address(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                RateKey::Address(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
        }
    }
}

/// A per-caller limit: a sustained rate and a burst, one bucket per [`RateKey`].
pub struct KeyedLimit {
    limiter: Option<DefaultKeyedRateLimiter<RateKey>>,
    checks: AtomicU64,
}

impl KeyedLimit {
    /// `per_second` requests per second once a burst of `burst` is spent; `per_second` 0 =
    /// unlimited, `burst` 0 = the same as `per_second`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        KeyedLimit {
            limiter: quota(per_second, burst).map(governor::RateLimiter::keyed),
            checks: AtomicU64::new(0),
        }
    }

    /// `per_second` requests per second with a burst of the same size; 0 = unlimited.
    pub fn per_second(per_second: u32) -> Self {
        Self::new(per_second, per_second)
    }

    /// Whether the limit is on at all.
    pub fn is_on(&self) -> bool {
        self.limiter.is_some()
    }

    /// Takes one unit for `key`, or says how long to wait.
    pub fn check(&self, key: &RateKey) -> Result<()> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter
            .check_key(key)
            .map_err(|not_until| Error::RateLimited {
                retry_after: wait(not_until.wait_time_from(DefaultClock::default().now())),
            })
    }
}

/// A limit for one connection.
#[derive(Clone)]
pub struct ConnectionLimit {
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

impl ConnectionLimit {
    /// `per_second` commands per second once a burst of `burst` is spent; `per_second` 0 =
    /// unlimited, `burst` 0 = the same as `per_second`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        ConnectionLimit {
            limiter: quota(per_second, burst).map(|q| Arc::new(governor::RateLimiter::direct(q))),
        }
    }

    /// Takes one unit, or says how long to wait.
    pub fn check(&self) -> Result<()> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check().map_err(|not_until| Error::RateLimited {
            retry_after: wait(not_until.wait_time_from(DefaultClock::default().now())),
        })
    }
}

/// The bucket of both limits: `None` (unlimited) for a rate of 0, a burst of 0 = the rate.
fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    Some(Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate)))
}

/// Retry-After is in whole seconds; never tell a client to retry at once.
fn wait(d: Duration) -> Duration {
    d.max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> RateKey {
        RateKey::User {
            workspace: "acme".into(),
            user: name.into(),
        }
    }

    #[test]
    fn a_keyed_limit_refuses_past_its_burst_per_key() {
        let limit = KeyedLimit::per_second(3);
        for _ in 0..3 {
            limit.check(&user("alice")).unwrap();
        }
        assert!(matches!(
            limit.check(&user("alice")),
            Err(Error::RateLimited { retry_after }) if retry_after >= Duration::from_secs(1)
        ));
        limit
            .check(&user("bob"))
            .expect("other callers are not affected");
    }

    #[test]
    fn the_burst_can_be_larger_than_the_rate() {
        let limit = KeyedLimit::new(2, 50);
        for i in 0..50 {
            limit
                .check(&user("alice"))
                .unwrap_or_else(|e| panic!("write {i} of the burst: {e}"));
        }
        assert!(limit.check(&user("alice")).is_err());
    }

    #[test]
    fn the_same_sub_in_another_workspace_is_another_caller() {
        let limit = KeyedLimit::per_second(1);
        limit.check(&user("alice")).unwrap();
        let elsewhere = RateKey::User {
            workspace: "other".into(),
            user: "alice".into(),
        };
        limit.check(&elsewhere).expect("own budget");
    }

    #[test]
    fn ipv6_addresses_share_a_budget_per_64_and_mapped_ipv4_is_ipv4() {
        let a = RateKey::address("2001:db8:1:2::1".parse().unwrap());
        let b = RateKey::address("2001:db8:1:2:ffff::9".parse().unwrap());
        let c = RateKey::address("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            RateKey::address("::ffff:192.0.2.7".parse().unwrap()),
            RateKey::address("192.0.2.7".parse().unwrap())
        );
    }

    #[test]
    fn zero_means_unlimited() {
        let limit = KeyedLimit::per_second(0);
        let conn = ConnectionLimit::new(0, 5);
        assert!(!limit.is_on());
        for _ in 0..10_000 {
            limit.check(&user("a")).unwrap();
            conn.check().unwrap();
        }
    }

    #[test]
    fn a_connection_limit_refuses_past_its_burst() {
        let conn = ConnectionLimit::new(2, 0);
        conn.check().unwrap();
        conn.check().unwrap();
        assert!(conn.check().is_err());
    }

    #[test]
    fn a_connection_burst_can_be_larger_than_the_rate() {
        let conn = ConnectionLimit::new(2, 50);
        for i in 0..50 {
            conn.check()
                .unwrap_or_else(|e| panic!("command {i} of the burst: {e}"));
        }
        assert!(matches!(
            conn.check(),
            Err(Error::RateLimited { retry_after }) if retry_after >= Duration::from_secs(1)
        ));
    }
}
