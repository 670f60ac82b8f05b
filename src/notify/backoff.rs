//! When to try a failed notification again: a schedule of waits (the last one repeats), each
//! spread by ±20 % so receivers that come back are not hit by every retry at once.

use std::time::Duration;

/// The wait after attempt `attempt` (1-based) failed.
pub fn delay(schedule: &[u64], attempt: i64) -> Duration {
    let index = usize::try_from(attempt.max(1) - 1).unwrap_or(usize::MAX);
    let base = schedule
        .get(index)
        .or(schedule.last())
        .copied()
        .unwrap_or(60);
    let jitter = 0.8 + fastrand::f64() * 0.4;
    Duration::from_secs_f64(base as f64 * jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_schedule_within_the_jitter_and_repeats_the_last() {
        let schedule = [5, 30, 120];
        for (attempt, base) in [(1, 5.0), (2, 30.0), (3, 120.0), (9, 120.0)] {
            for _ in 0..50 {
                let d = delay(&schedule, attempt).as_secs_f64();
                assert!((base * 0.8..=base * 1.2).contains(&d), "{attempt}: {d}");
            }
        }
    }

    #[test]
    fn an_empty_schedule_still_waits() {
        assert!(delay(&[], 1) >= Duration::from_secs(48));
    }
}
