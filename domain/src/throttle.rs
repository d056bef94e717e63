//! Brute-force throttling of SPEC §2, keyed on the account *and* the client address, so that an
//! attacker elsewhere cannot lock the owner out:
//! - after 5 consecutive failures from one address, that address waits: one minute, doubling with
//!   each further failure, capped at one hour;
//! - more than 50 failures from all addresses together in 24 hours put on the brake: the password
//!   step then takes one attempt per 10 seconds per address, and the owner gets a notice, at most
//!   one a day;
//! - a successful sign-in clears the throttle of the address it came from; the brake ends a day
//!   after the failures that put it on (ADR 0012 says why a sign-in does not lift it).
//!
//! The same `Guard` throttles an account (folded from its stream) and a username nobody holds
//! (kept by the gateway), so that neither the answers nor `Retry-After` tell the two apart.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub const FREE_FAILURES: u32 = 5;
pub const FIRST_LOCK: Duration = Duration::minutes(1);
pub const LONGEST_LOCK: Duration = Duration::hours(1);
/// More failures than this within `BRAKE_WINDOW` put on the brake.
pub const BRAKE_FAILURES: usize = 50;
pub const BRAKE_WINDOW: Duration = Duration::hours(24);
/// Under the brake, each address may try a password once per this long.
pub const BRAKE_PACE: Duration = Duration::seconds(10);
/// At most one security notice per this long.
pub const NOTICE_INTERVAL: Duration = Duration::hours(24);
/// Addresses remembered per account: beyond it the one that failed longest ago is forgotten, so a
/// guard stays small however many addresses an attack comes from.
pub const TRACKED_ADDRESSES: usize = 1024;

/// Where wrong codes typed while setting up a second factor are counted: that needs the
/// invitation link or a session, so it is not a client address of a sign-in.
pub const ENROLLMENT: &str = "enrollment";

/// The failures of one address since the account's last successful sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressFailures {
    pub consecutive: u32,
    pub locked_until: Option<DateTime<Utc>>,
    pub last: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Guard {
    addresses: BTreeMap<String, AddressFailures>,
    /// The latest sign-in failures from any address, oldest first: at most `BRAKE_FAILURES + 1`.
    recent: VecDeque<DateTime<Utc>>,
    /// When the owner was last sent a notice of them.
    noticed: Option<DateTime<Utc>>,
}

/// Which step an attempt is for: only passwords are paced by the brake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Password,
    Code,
}

impl Guard {
    /// Until when an attempt from `address` is refused, if it is at `now`.
    pub fn refused_until(&self, address: &str, attempt: Attempt, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let failures = self.addresses.get(&address_key(address))?;
        let locked = failures.locked_until.filter(|until| *until > now);
        let paced = (attempt == Attempt::Password && self.braked(now))
            .then_some(failures.last + BRAKE_PACE)
            .filter(|until| *until > now);
        locked.max(paced)
    }

    /// Counts a failure from `address`; `sign_in` says whether it counts towards the brake.
    pub fn failed(&mut self, address: &str, at: DateTime<Utc>, sign_in: bool) {
        let key = address_key(address);
        if !self.addresses.contains_key(&key) && self.addresses.len() >= TRACKED_ADDRESSES {
            let oldest = self.addresses.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.addresses.remove(&oldest);
            }
        }
        let entry =
            self.addresses.entry(key).or_insert(AddressFailures { consecutive: 0, locked_until: None, last: at });
        entry.consecutive = entry.consecutive.saturating_add(1);
        entry.locked_until = lock_after(entry.consecutive).map(|lock| at + lock);
        entry.last = at;
        if sign_in {
            self.recent.push_back(at);
            if self.recent.len() > BRAKE_FAILURES + 1 {
                self.recent.pop_front();
            }
        }
    }

    /// Whether more than `BRAKE_FAILURES` failed within the `BRAKE_WINDOW` before `now`.
    pub fn braked(&self, now: DateTime<Utc>) -> bool {
        self.recent.len() > BRAKE_FAILURES && self.recent.front().is_some_and(|oldest| now - *oldest < BRAKE_WINDOW)
    }

    /// Whether the owner should be told now: the brake is on and no notice went out within a day.
    pub fn notice_due(&self, now: DateTime<Utc>) -> bool {
        self.braked(now) && self.noticed.is_none_or(|at| now - at >= NOTICE_INTERVAL)
    }

    pub fn noticed(&mut self, at: DateTime<Utc>) {
        self.noticed = Some(at);
    }

    /// A successful sign-in from `address`: that address starts afresh. Other addresses keep
    /// their locks and the brake runs its course: lifting them would tell whoever holds one that
    /// a real user just signed in, which a made-up name never does.
    pub fn succeeded(&mut self, address: &str) {
        self.addresses.remove(&address_key(address));
    }

    /// How many sign-in failures are remembered towards the brake (at most `BRAKE_FAILURES + 1`).
    pub fn recent_failures(&self) -> usize {
        self.recent.len()
    }

    /// The addresses locked at `now`, for auditors.
    pub fn locked_addresses(&self, now: DateTime<Utc>) -> usize {
        self.addresses.values().filter(|f| f.locked_until.is_some_and(|until| until > now)).count()
    }
}

/// What an address is counted as: an IPv4 address, or an IPv6 /64 (what one subscriber gets).
/// Anything that is not an address is counted as itself.
pub fn address_key(address: &str) -> String {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) => address.to_string(),
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

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

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

    #[test]
    fn a_locked_address_leaves_every_other_address_free() {
        let mut guard = Guard::default();
        for i in 0..5 {
            assert_eq!(guard.refused_until("203.0.113.9", Attempt::Password, t(i)), None);
            guard.failed("203.0.113.9", t(i), true);
        }
        assert_eq!(guard.refused_until("203.0.113.9", Attempt::Password, t(5)), Some(t(4) + FIRST_LOCK));
        assert_eq!(guard.refused_until("203.0.113.9", Attempt::Code, t(5)), Some(t(4) + FIRST_LOCK));
        assert_eq!(guard.refused_until("198.51.100.1", Attempt::Password, t(5)), None);
        assert_eq!(guard.refused_until("203.0.113.9", Attempt::Password, t(4) + FIRST_LOCK), None);
        // A sign-in elsewhere lifts nothing here; one from the address itself does.
        guard.succeeded("198.51.100.1");
        assert!(guard.refused_until("203.0.113.9", Attempt::Password, t(6)).is_some());
        guard.succeeded("203.0.113.9");
        assert_eq!(guard.refused_until("203.0.113.9", Attempt::Password, t(6)), None);
    }

    #[test]
    fn one_ipv6_subscriber_is_one_address() {
        assert_eq!(address_key("2001:db8:1:2:aaaa::1"), address_key("2001:db8:1:2:bbbb::2"));
        assert_ne!(address_key("2001:db8:1:2::1"), address_key("2001:db8:1:3::1"));
        assert_eq!(address_key("::ffff:192.0.2.7"), "192.0.2.7");
        let mut guard = Guard::default();
        for i in 0..5 {
            guard.failed(&format!("2001:db8:1:2::{i}"), t(i), true);
        }
        assert!(guard.refused_until("2001:db8:1:2::ffff", Attempt::Password, t(5)).is_some());
    }

    #[test]
    fn more_than_fifty_failures_in_a_day_pace_passwords_and_ask_for_one_notice() {
        let mut guard = Guard::default();
        // 51 failures from 51 addresses, one a minute: none is locked.
        for i in 0..51 {
            assert!(!guard.braked(t(i * 60)));
            guard.failed(&format!("198.51.100.{i}"), t(i * 60), true);
        }
        let now = t(50 * 60 + 1);
        assert!(guard.braked(now));
        assert!(guard.notice_due(now));
        // The address that just failed waits 10 s for its next password, not for a code.
        assert_eq!(guard.refused_until("198.51.100.50", Attempt::Password, now), Some(t(50 * 60) + BRAKE_PACE));
        assert_eq!(guard.refused_until("198.51.100.50", Attempt::Code, now), None);
        // An address that failed long ago, and a new one, may try at once.
        assert_eq!(guard.refused_until("198.51.100.1", Attempt::Password, now), None);
        assert_eq!(guard.refused_until("192.0.2.1", Attempt::Password, now), None);
        guard.noticed(now);
        assert!(!guard.notice_due(now + Duration::hours(23)));
        // A day after the oldest of the 51, the brake is off by itself; a sign-in does not lift it.
        assert!(!guard.braked(t(0) + BRAKE_WINDOW));
        guard.succeeded("192.0.2.99");
        assert!(guard.braked(now));
        // Notices stay at most one a day, whatever happens in between.
        let again = now + Duration::hours(1);
        for i in 0..51 {
            guard.failed(&format!("192.0.2.{i}"), again + Duration::seconds(i), true);
        }
        assert!(guard.braked(again + Duration::minutes(1)));
        assert!(!guard.notice_due(again + Duration::minutes(1)));
        assert!(guard.notice_due(now + NOTICE_INTERVAL));
    }

    #[test]
    fn enrollment_failures_lock_enrollment_and_never_brake() {
        let mut guard = Guard::default();
        for i in 0..60 {
            guard.failed(ENROLLMENT, t(i), false);
        }
        assert!(!guard.braked(t(61)));
        assert!(guard.refused_until(ENROLLMENT, Attempt::Code, t(61)).is_some());
        assert_eq!(guard.refused_until("192.0.2.1", Attempt::Password, t(61)), None);
    }

    #[test]
    fn a_flood_of_addresses_keeps_the_guard_bounded() {
        let mut guard = Guard::default();
        for i in 0..(TRACKED_ADDRESSES as i64 + 100) {
            guard.failed(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255), t(i), true);
        }
        assert_eq!(guard.addresses.len(), TRACKED_ADDRESSES);
        assert_eq!(guard.recent.len(), BRAKE_FAILURES + 1);
        // The newest are kept.
        let newest = TRACKED_ADDRESSES as i64 + 99;
        assert!(guard.addresses.contains_key(&format!("10.0.{}.{}", newest >> 8, newest & 255)));
    }
}
