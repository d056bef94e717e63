//! The inactivity calendar of SPEC §5: every deadline follows from the last activity.

use chrono::{DateTime, Datelike, Duration, Months, Utc};

/// How long before a deactivation or deletion its warning goes out.
pub const WARNING_LEAD: Duration = Duration::days(30);
pub const DEACTIVATION_AFTER: Months = Months::new(6);
pub const DELETION_AFTER: Months = Months::new(12);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub deactivation_warning: DateTime<Utc>,
    pub deactivation: DateTime<Utc>,
    pub deletion_warning: DateTime<Utc>,
    pub deletion: DateTime<Utc>,
}

/// Calendar months are added in UTC; a day that does not exist in the target month is clamped to
/// its last day (31 August + 6 months = 28 or 29 February, SPEC §5), at the end of that day: an
/// activity on the 29th, 30th or 31st is later than one on the 28th, and must not get an earlier
/// deadline than it (keeping the time of day would give 29 August 00:00 a deadline before
/// 28 August 03:00's).
pub fn add_months(at: DateTime<Utc>, months: Months) -> DateTime<Utc> {
    // Only overflows near year 262,000: a true invariant for account activity.
    let same_time = at.checked_add_months(months).expect("deadline within chrono's range");
    if same_time.day() == at.day() {
        return same_time;
    }
    let end_of_day = chrono::NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).expect("a valid time");
    same_time.date_naive().and_time(end_of_day).and_utc()
}

pub fn deadlines(last_activity: DateTime<Utc>) -> Deadlines {
    let deactivation = add_months(last_activity, DEACTIVATION_AFTER);
    let deletion = add_months(last_activity, DELETION_AFTER);
    Deadlines {
        deactivation_warning: deactivation - WARNING_LEAD,
        deactivation,
        deletion_warning: deletion - WARNING_LEAD,
        deletion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn six_and_twelve_calendar_months_with_thirty_day_warnings() {
        let d = deadlines(utc(2026, 1, 15, 9));
        assert_eq!(d.deactivation, utc(2026, 7, 15, 9));
        assert_eq!(d.deactivation_warning, utc(2026, 6, 15, 9));
        assert_eq!(d.deletion, utc(2027, 1, 15, 9));
        assert_eq!(d.deletion_warning, utc(2026, 12, 16, 9));
    }

    fn end_of(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 23, 59, 59).unwrap() + Duration::nanoseconds(999_999_999)
    }

    #[test]
    fn the_end_of_august_clamps_to_the_end_of_february() {
        assert_eq!(deadlines(utc(2025, 8, 31, 12)).deactivation, end_of(2026, 2, 28));
        assert_eq!(deadlines(utc(2027, 8, 31, 12)).deactivation, end_of(2028, 2, 29));
        assert_eq!(deadlines(utc(2027, 2, 28, 0)).deletion, utc(2028, 2, 28, 0));
        assert_eq!(deadlines(utc(2028, 2, 29, 0)).deletion, end_of(2029, 2, 28));
        // The case proptest found: a day later never deactivates sooner.
        let (a, b) = (utc(2002, 8, 28, 3), utc(2002, 8, 29, 0));
        assert!(deadlines(b).deactivation > deadlines(a).deactivation);
    }

    fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
        // 2000-01-01 to 2100-01-01, to the second.
        (946_684_800i64..4_102_444_800).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
    }

    proptest! {
        #[test]
        fn deadlines_never_move_earlier_when_activity_moves_later(
            a in any_instant(), later_by in 0i64..400 * 86_400
        ) {
            let b = a + Duration::seconds(later_by);
            let (da, db) = (deadlines(a), deadlines(b));
            prop_assert!(db.deactivation_warning >= da.deactivation_warning);
            prop_assert!(db.deactivation >= da.deactivation);
            prop_assert!(db.deletion_warning >= da.deletion_warning);
            prop_assert!(db.deletion >= da.deletion);
        }

        #[test]
        fn deadlines_are_in_order(a in any_instant()) {
            let d = deadlines(a);
            prop_assert!(a < d.deactivation_warning);
            prop_assert!(d.deactivation_warning < d.deactivation);
            prop_assert!(d.deactivation < d.deletion_warning);
            prop_assert!(d.deletion_warning < d.deletion);
        }

        #[test]
        fn month_clamping_lands_on_the_same_day_or_the_last_day_of_the_month(a in any_instant()) {
            let d = deadlines(a).deactivation;
            prop_assert_eq!((d.year() * 12 + d.month0() as i32) - (a.year() * 12 + a.month0() as i32), 6);
            if d.day() == a.day() {
                prop_assert_eq!(d.time(), a.time());
            } else {
                prop_assert!(d.day() < a.day());
                prop_assert_eq!((d + Duration::days(1)).day(), 1, "clamped to the month's last day");
                prop_assert_eq!(d + Duration::nanoseconds(1), (d + Duration::days(1)).date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc());
            }
        }
    }
}
