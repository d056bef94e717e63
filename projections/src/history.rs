//! An account's history as auditors read it, for `tenure audit` and the Audit tab alike: each
//! event with its facts (personal fields shown, or "erased" once the key is destroyed; password
//! hashes and TOTP secrets never), in JSON, CloudEvents, CSV or words; and the account's state as
//! of a time.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, SecondsFormat, Timelike, Utc};
use serde_json::{Map, Value, json};
use tenure_domain::{Account, AccountEvent, AccountId};
use tenure_store::{DataKey, RecordedEvent, codec};

pub const ERASED: &str = "erased";
const REDACTED: &str = "redacted";
const SECRET_FIELDS: [&str; 2] = ["password_hash", "totp_secret"];

/// One event as shown: what was stored, and its payload as presented.
pub struct Entry {
    pub recorded: RecordedEvent,
    /// The payload at the current schema, erased and redacted; `{"unreadable": …}` when it cannot
    /// be decoded.
    pub payload: Value,
    /// Why it could not be decoded, if it could not.
    pub unreadable: Option<String>,
}

/// The events of a stream, decoded with the account's key (`None` once it is destroyed).
pub fn entries(recorded: &[RecordedEvent], key: Option<&DataKey>) -> Vec<Entry> {
    recorded
        .iter()
        .map(|r| match codec::decode(r.clone(), key) {
            // Decoding proves the event is known and well-formed; the shown payload is the
            // current schema's.
            Ok(envelope) => Entry { recorded: r.clone(), payload: present(envelope.event.to_json()), unreadable: None },
            Err(error) => Entry {
                recorded: r.clone(),
                payload: json!({ "unreadable": error.to_string() }),
                unreadable: Some(error.to_string()),
            },
        })
        .collect()
}

/// The account's events up to `as_of`, decoded, to fold.
pub fn events_until(
    recorded: &[RecordedEvent],
    key: Option<&DataKey>,
    as_of: DateTime<Utc>,
) -> Result<Vec<AccountEvent>, codec::CodecError> {
    recorded
        .iter()
        .filter(|r| r.recorded_at <= as_of)
        .map(|r| codec::decode_as::<AccountEvent>(r.clone(), key).map(|e| e.event))
        .collect()
}

/// A time as an auditor types it, taken to the end of what it names: RFC 3339 (to the end of
/// its last digit, so that an event shown at `…13.584Z` is in the state as of `…13.584Z`), a date
/// and time without a zone (UTC, to the end of its second or minute, as a browser's
/// `datetime-local` sends it), or a date (to its end).
pub fn parse_as_of(raw: &str) -> Result<DateTime<Utc>, String> {
    let raw = raw.trim();
    let naive = |format: &str| NaiveDateTime::parse_from_str(raw, format).ok().map(|t| t.and_utc());
    let (start, span) = if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        let nanos = t.timestamp_subsec_nanos();
        let span = match nanos {
            0 => Duration::seconds(1),
            n if n % 1_000_000 == 0 => Duration::milliseconds(1),
            n if n % 1_000 == 0 => Duration::microseconds(1),
            _ => Duration::nanoseconds(1),
        };
        (t.with_timezone(&Utc), span)
    } else if let Some(t) = naive("%Y-%m-%dT%H:%M:%S") {
        (t, Duration::seconds(1))
    } else if let Some(t) = naive("%Y-%m-%dT%H:%M") {
        (t, Duration::minutes(1))
    } else if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        (day.and_time(chrono::NaiveTime::MIN).and_utc(), Duration::days(1))
    } else {
        return Err("give an RFC 3339 time such as 2026-06-30T12:00:00Z, or a date such as 2026-06-30".into());
    };
    if start.nanosecond() >= 1_000_000_000 {
        return Err(format!("{raw:?} names a leap second: give the second before or after it"));
    }
    if !(1970..=9999).contains(&start.year()) || raw.starts_with(['-', '+']) {
        return Err(format!("{raw:?} is not a time between 1970 and 9999"));
    }
    Ok(start + span - Duration::nanoseconds(1))
}

/// Erased personal data reads "erased"; secrets, and digests of tokens and codes, read "redacted".
fn present(mut payload: Value) -> Value {
    if let Some(personal) = payload.get_mut("personal").filter(|p| p.is_null()) {
        *personal = Value::String(ERASED.into());
    }
    redact(&mut payload);
    payload
}

fn redact(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                let secret = SECRET_FIELDS.contains(&name.as_str()) || name.ends_with("_digest") || name == "digests";
                if secret && !field.is_null() {
                    *field = Value::String(REDACTED.into());
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `key=value` pairs of a payload; the members of `personal` stand beside the others, digests
/// and the repeated time are left out (they mean nothing to a reader).
pub fn facts(payload: &Value) -> Vec<String> {
    let mut out = Vec::new();
    flatten("", payload, &mut out);
    out
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                if name.ends_with("_digest") || name == "at" || name == "digests" {
                    continue;
                }
                let path = match (prefix, name.as_str()) {
                    (_, "personal") if field.is_object() => prefix.to_string(),
                    ("", _) => name.clone(),
                    _ => format!("{prefix}.{name}"),
                };
                flatten(&path, field, out);
            }
        }
        Value::String(text) if text.contains(char::is_whitespace) || text.is_empty() => {
            out.push(format!("{prefix}={text:?}"))
        }
        Value::String(text) => out.push(format!("{prefix}={text}")),
        other => out.push(format!("{prefix}={other}")),
    }
}

pub fn json_event(entry: &Entry) -> Value {
    let r = &entry.recorded;
    json!({
        "id": r.id,
        "stream": r.stream,
        "version": r.version,
        "position": r.position,
        "type": r.event_type,
        "schema_version": r.schema_version,
        "recorded_at": time(r.recorded_at),
        "actor": r.actor,
        "correlation_id": r.correlation_id,
        "data": entry.payload,
        "prev_hash": hex::encode(r.prev_hash),
        "hash": hex::encode(r.hash),
    })
}

/// CloudEvents 1.0 (JSON format); Tenure's envelope fields travel as extension attributes.
pub fn cloud_event(entry: &Entry) -> Value {
    let r = &entry.recorded;
    json!({
        "specversion": "1.0",
        "id": r.id,
        "source": format!("/tenure/{}", r.stream),
        "type": format!("tenure.{}.v{}", r.event_type, r.schema_version),
        "subject": r.stream,
        "time": time(r.recorded_at),
        "datacontenttype": "application/json",
        "data": entry.payload,
        "tenureversion": r.version,
        "tenureposition": r.position,
        "tenureactor": r.actor,
        "tenurecorrelation": r.correlation_id,
        "tenurehash": hex::encode(r.hash),
    })
}

/// One row per event: where it stands, when, who, what, and the facts in one column.
pub fn csv(entries: &[Entry]) -> Result<String, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(["position", "version", "recorded_at", "actor", "type", "facts", "event_id", "hash"])?;
    for entry in entries {
        let r = &entry.recorded;
        out.write_record([
            r.position.to_string(),
            r.version.to_string(),
            time(r.recorded_at),
            r.actor.clone(),
            r.event_type.clone(),
            describe(&r.event_type, &entry.payload),
            r.id.to_string(),
            hex::encode(r.hash),
        ])?;
    }
    let bytes = out.into_inner().map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// An event's facts in words, for a timeline: "Signed in with password from 203.0.113.7
/// (Firefox)". A type without words of its own reads as its facts.
pub fn describe(event_type: &str, payload: &Value) -> String {
    let text = |name: &str| payload.get(name).and_then(Value::as_str).unwrap_or("").replace('_', " ");
    let personal = |name: &str| match payload.get("personal") {
        Some(Value::Object(fields)) => fields.get(name).and_then(Value::as_str).unwrap_or("none").to_string(),
        _ => ERASED.to_string(),
    };
    let client = || match payload.get("personal") {
        Some(Value::Object(_)) => format!("from {} ({})", personal("address"), personal("user_agent")),
        _ => "from an erased address".to_string(),
    };
    let day = |name: &str| payload.get(name).and_then(Value::as_str).map(|t| t.get(..10).unwrap_or(t).to_string());
    match event_type {
        "AccountInvited" => {
            let org = payload.pointer("/org/name").and_then(Value::as_str).unwrap_or("");
            format!(
                "Invited as {} ({}) into {org}, email {}, second factor {}",
                text("username"),
                text("role"),
                personal("email"),
                text("mfa")
            )
        }
        "PasswordSet" => format!("Password set ({})", text("reason")),
        "SignedIn" => format!("Signed in with {} {}", text("method"), client()),
        "SignInFailed" => format!("Sign-in failed: {} {}", text("reason"), client()),
        "TermsAccepted" => format!("Accepted terms version {}", payload["version"]),
        "MfaEnrolled" => format!("Second factor set up: {}", text("method")),
        "MfaEnrollmentFailed" => format!("Wrong code while setting up {}", text("method")),
        "MfaRequirementChanged" => format!("Second factor required: {}", text("mfa")),
        "ProfileUpdated" => format!(
            "Profile: display name {}, phone {}, address {}",
            personal("display_name"),
            personal("phone"),
            personal("address")
        ),
        "Deactivated" => "Deactivated after six months without sign-in".into(),
        "Reactivated" => "Reactivated".into(),
        "Deleted" => "Deleted; its data key destroyed".into(),
        "DeactivationWarningSent" => {
            format!("Warned by email: deactivation on {}", day("deadline").unwrap_or_default())
        }
        "DeletionWarningSent" => format!("Warned by email: deletion on {}", day("deadline").unwrap_or_default()),
        "AuditorRead" => match payload.get("subject").and_then(Value::as_str) {
            Some(subject) => format!("Read as auditor: {} of account {subject}", text("what")),
            None => format!("Read as auditor: {}", text("what")),
        },
        _ => facts(payload).join(" "),
    }
}

/// The account's state after `events`, as of `as_of`.
pub fn state_json(id: AccountId, as_of: DateTime<Utc>, events: &[AccountEvent]) -> Value {
    let state = Account::fold(events);
    let mut out = Map::new();
    let mut put = |name: &str, value: Value| {
        out.insert(name.to_string(), value);
    };
    let erased_or = |value: Option<Value>| value.unwrap_or(Value::String(ERASED.into()));
    put("account_id", json!(id));
    put("as_of", json!(time(as_of)));
    put("events", json!(events.len()));
    put("status", json!(state.status().as_str()));
    if let Some(invited) = &state.invited {
        put("username", json!(invited.username));
        put("org", json!({"id": invited.org.id, "name": invited.org.name, "wholesale": invited.org.wholesale}));
        put("role", to_json(&invited.role));
        put("email", erased_or(invited.invitee.known().map(|i| json!(i.email))));
        put("invited_at", json!(time(invited.at)));
    }
    put("display_name", erased_or(state.profile.known().map(|p| json!(p.display_name))));
    put("phone", erased_or(state.profile.known().map(|p| json!(p.phone))));
    put("address", erased_or(state.profile.known().map(|p| json!(p.address))));
    put("mfa_requirement", to_json(&state.mfa_requirement));
    put("mfa_enrolled", state.enrollment.as_ref().map_or(Value::Null, |e| to_json(&e.method)));
    put("password_set", json!(state.password.is_some()));
    put("terms_version", json!(state.terms_version));
    put("last_sign_in", json!(state.last_sign_in.map(time)));
    put("last_activity", json!(state.last_activity.map(time)));
    put("recent_failures", json!(state.guard.recent_failures()));
    put("locked_addresses", json!(state.guard.locked_addresses(as_of)));
    put("braked", json!(state.guard.braked(as_of)));
    if let Some(d) = state.deadlines().filter(|_| state.deleted_at.is_none()) {
        put(
            "deadlines",
            json!({
                "deactivation_warning": time(d.deactivation_warning),
                "deactivation": time(d.deactivation),
                "deletion_warning": time(d.deletion_warning),
                "deletion": time(d.deletion),
            }),
        );
    }
    put("deactivated_at", json!(state.deactivated_at.map(time)));
    put("deleted_at", json!(state.deleted_at.map(time)));
    Value::Object(out)
}

/// A domain enum's JSON name.
fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::parse_as_of;

    #[test]
    fn a_time_reaches_to_the_end_of_what_it_names() {
        let at = |raw: &str| parse_as_of(raw).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        assert_eq!(at("2026-12-03T05:54:13.584Z"), "2026-12-03T05:54:13.584999999Z");
        assert_eq!(at("2026-12-03T05:54:13Z"), "2026-12-03T05:54:13.999999999Z");
        assert_eq!(at("2026-12-03T06:54:13+01:00"), "2026-12-03T05:54:13.999999999Z");
        assert_eq!(at("2026-12-03T05:54"), "2026-12-03T05:54:59.999999999Z");
        assert_eq!(at("2026-12-03"), "2026-12-03T23:59:59.999999999Z");
        for bad in ["yesterday", "2026-12-03T06:00:60Z", "-2026-01-01", "+2026-01-01", "0000-01-01", ""] {
            assert!(parse_as_of(bad).is_err(), "{bad:?}");
        }
    }
}
