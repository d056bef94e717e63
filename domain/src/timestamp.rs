//! How stored times are read. Every event carries one or more times, written by chrono in
//! RFC 3339 (`2026-01-02T22:46:00Z`); a replay reads millions of them. chrono's own `Deserialize`
//! goes through its lenient parser, which accepts more (a space for the `T`, spaces around the
//! separators) and walks a list of format items to do it. Its strict RFC 3339 parser reads the
//! usual form directly: it is tried first, and the lenient one still reads anything the strict
//! one refuses, so that every stored time reads as it did before.

use chrono::{DateTime, Utc};
use serde::Deserializer;
use serde::de::{Error, Visitor};

/// `#[serde(deserialize_with = "crate::timestamp::rfc3339")]`
pub fn rfc3339<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    deserializer.deserialize_str(Rfc3339)
}

struct Rfc3339;

impl Visitor<'_> for Rfc3339 {
    type Value = DateTime<Utc>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an RFC 3339 formatted date and time string")
    }

    fn visit_str<E: Error>(self, value: &str) -> Result<DateTime<Utc>, E> {
        match DateTime::parse_from_rfc3339(value) {
            Ok(time) => Ok(time.to_utc()),
            Err(_) => value.parse::<DateTime<Utc>>().map_err(E::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    struct Fast(#[serde(deserialize_with = "rfc3339")] DateTime<Utc>);

    fn both(json: &str) -> (Result<DateTime<Utc>, String>, Result<DateTime<Utc>, String>) {
        let fast = serde_json::from_str::<Fast>(json).map(|f| f.0).map_err(|e| e.to_string());
        let chrono = serde_json::from_str::<DateTime<Utc>>(json).map_err(|e| e.to_string());
        (fast, chrono)
    }

    #[test]
    fn every_time_reads_as_chrono_reads_it() {
        let cases = [
            r#""2026-01-02T22:46:00Z""#,
            r#""2026-01-02T22:46:00.123456Z""#,
            r#""2026-01-02T22:46:00.123456789Z""#,
            r#""2026-01-02T23:46:00+01:00""#,
            r#""2026-01-02t22:46:00z""#,
            r#""2026-01-02 22:46:00Z""#,
            r#""2026-01-02T22:46:00 Z""#,
            r#""2026-01-02T22:46:00 +01:00""#,
            r#""2026-01-02T22:46:00-00:00""#,
            r#""2016-12-31T23:59:60Z""#,
            r#""0001-01-01T00:00:00Z""#,
            r#""9999-12-31T23:59:59.999999999Z""#,
        ];
        for json in cases {
            let (fast, chrono) = both(json);
            assert!(fast.is_ok(), "{json}: {fast:?}");
            assert_eq!(fast, chrono, "{json}");
        }
        let fast = both(r#""2026-01-02T22:46:00.5Z""#).0.expect("a fraction of a second");
        assert_eq!(fast.timestamp_subsec_millis(), 500);
    }

    #[test]
    fn what_chrono_refuses_is_refused() {
        for json in [
            r#""2026-01-02T22:46:00""#,
            r#""2026-02-30T22:46:00Z""#,
            r#""2026-01-02T24:00:00Z""#,
            r#""2026-01-02""#,
            r#""yesterday""#,
            r#""""#,
            "1767394000",
            "null",
        ] {
            let (fast, chrono) = both(json);
            assert!(fast.is_err(), "{json} read as {fast:?}");
            assert!(chrono.is_err(), "{json} read by chrono as {chrono:?}");
        }
    }
}
