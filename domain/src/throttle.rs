//! Brute-force throttling of SPEC §2: after 5 consecutive failures, a back-off that starts at one
//! minute and doubles with each further failure, capped at one hour.

use chrono::{DateTime, Duration, Utc};

pub const FREE_FAILURES: u32 = 5;
pub const FIRST_LOCK: Duration = Duration::minutes(1);
pub const LONGEST_LOCK: Duration = Duration::hours(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Throttle {
    pub consecutive_failures: u32,
    pub locked_until: Option<DateTime<Utc>>,
}

impl Throttle {
    pub fn after_failure(self, at: DateTime<Utc>) -> Throttle {
        let consecutive_failures = self.consecutive_failures.saturating_add(1);
        let locked_until = lock_after(consecutive_failures).map(|lock| at + lock);
        Throttle { consecutive_failures, locked_until }
    }

    pub fn is_locked(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.locked_until.filter(|until| *until > now)
    }
}

/// The lock that follows the `failures`-th consecutive failure.
pub fn lock_after(failures: u32) -> Option<Duration> {
    let doublings = failures.checked_sub(FREE_FAILURES)?;
    // 2^6 minutes already exceeds the cap; stop doubling before it can overflow.
    let lock = FIRST_LOCK * 2i32.pow(doublings.min(6));
    Some(lock.min(LONGEST_LOCK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_for_a_minute_then_the_lock_doubles_up_to_an_hour() {
        assert_eq!(lock_after(4), None);
        assert_eq!(lock_after(5), Some(Duration::minutes(1)));
        assert_eq!(lock_after(6), Some(Duration::minutes(2)));
        assert_eq!(lock_after(7), Some(Duration::minutes(4)));
        assert_eq!(lock_after(10), Some(Duration::minutes(32)));
        assert_eq!(lock_after(11), Some(Duration::hours(1)));
        assert_eq!(lock_after(u32::MAX), Some(Duration::hours(1)));
    }
}
