//! Rate limits so one misbehaving tab cannot flood a workspace: REST writes per caller (user,
//! or IP without auth) and socket commands per connection. Token buckets from `governor`;
//! a limit of 0 turns a limiter off.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

use crate::domain::error::{Error, Result};

/// How many checks pass between sweeps of idle keys, so the key map stays small.
const SWEEP_EVERY: u64 = 4096;

/// A per-caller limit, keyed by user id or client address.
pub struct KeyedLimit {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    checks: AtomicU64,
}

impl KeyedLimit {
    /// `per_second` requests per second with a burst of the same size; 0 = unlimited.
    pub fn per_second(per_second: u32) -> Self {
        KeyedLimit {
            limiter: NonZeroU32::new(per_second)
                .map(|n| governor::RateLimiter::keyed(Quota::per_second(n))),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one unit for `key`, or says how long to wait.
    pub fn check(&self, key: &str) -> Result<()> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter
            .check_key(&key.to_owned())
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
    /// `per_second` commands per second with a burst of the same size; 0 = unlimited.
    pub fn per_second(per_second: u32) -> Self {
        ConnectionLimit {
            limiter: NonZeroU32::new(per_second)
                .map(|n| Arc::new(governor::RateLimiter::direct(Quota::per_second(n)))),
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

/// Retry-After is in whole seconds; never tell a client to retry at once.
fn wait(d: Duration) -> Duration {
    d.max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyed_limit_refuses_past_its_burst_per_key() {
        let limit = KeyedLimit::per_second(3);
        for _ in 0..3 {
            limit.check("alice").unwrap();
        }
        assert!(matches!(
            limit.check("alice"),
            Err(Error::RateLimited { retry_after }) if retry_after >= Duration::from_secs(1)
        ));
        limit.check("bob").expect("other callers are not affected");
    }

    #[test]
    fn zero_means_unlimited() {
        let limit = KeyedLimit::per_second(0);
        let conn = ConnectionLimit::per_second(0);
        for _ in 0..10_000 {
            limit.check("a").unwrap();
            conn.check().unwrap();
        }
    }

    #[test]
    fn a_connection_limit_refuses_past_its_burst() {
        let conn = ConnectionLimit::per_second(2);
        conn.check().unwrap();
        conn.check().unwrap();
        assert!(conn.check().is_err());
    }
}
