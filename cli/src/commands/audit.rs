//! `tenure audit`: an account's full history for auditors, its state at a time, or a check of
//! its hash chain. Personal fields of an erased account read as erased; password hashes and
//! TOTP secrets are never printed.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use tenure_domain::{Account, AccountEvent, AccountId};
use tenure_store::sqlite::Open;
use tenure_store::{EventStore, KeyStore, RecordedEvent, chain, codec};

use crate::args::{Audit, Format, Global};
use crate::context;

const ERASED: &str = "erased";
const REDACTED: &str = "redacted";
const SECRET_FIELDS: [&str; 2] = ["password_hash", "totp_secret"];

pub async fn run(global: &Global, audit: Audit) -> anyhow::Result<ExitCode> {
    if let Some(command) = audit.log {
        return super::audit_log::run(global, command).await;
    }
    let who = audit.who.ok_or_else(|| anyhow!("name an account, or a command such as `tenure audit head`"))?;
    let context = context::open(global, Open::MustExist).await?;
    let accounts = &context.accounts;
    let id = accounts.resolve(&who).await?.ok_or_else(|| anyhow!("no account named {who:?}"))?;
    let recorded = accounts.store.read_stream(&id.stream(), 1).await?;
    // Only a recorded deletion destroys a key: a key missing without one was lost, and its
    // personal data must not pass for erased, nor the history for intact.
    let key = accounts.keys.get(id).await?;
    if key.is_none() && !recorded.iter().any(|r| r.event_type == "Deleted") {
        bail!(
            "the data key of account {id} is missing, and no Deleted event destroyed it: its personal data is \
             lost, not erased; restore keys.db and master.key from a backup (docs/operations.md)"
        );
    }

    if audit.proof {
        return super::audit_log::prove_account(&context, id).await;
    }

    if audit.verify {
        return Ok(match chain::verify(&recorded) {
            Ok(count) => {
                let head = recorded.last().map(|e| hex::encode(e.hash)).unwrap_or_default();
                println!("hash chain intact: {count} events of {}, head {head}", id.stream());
                ExitCode::SUCCESS
            }
            Err(broken) => {
                eprintln!("error: hash chain broken at {broken}");
                ExitCode::FAILURE
            }
        });
    }

    if let Some(as_of) = audit.as_of {
        if audit.format == Format::Cloudevents {
            bail!("--as-of prints a state, not events: use --format text or json");
        }
        let mut events = Vec::new();
        for r in recorded.iter().filter(|r| r.recorded_at <= as_of) {
            events.push(codec::decode_as::<AccountEvent>(r.clone(), key.as_ref())?.event);
        }
        let state = state_json(id, as_of, &events);
        match audit.format {
            Format::Json => println!("{}", serde_json::to_string_pretty(&state)?),
            _ => print_state(&state),
        }
        return Ok(ExitCode::SUCCESS);
    }

    let mut unreadable = Vec::new();
    let mut entries = Vec::new();
    for r in &recorded {
        let payload = match codec::decode(r.clone(), key.as_ref()) {
            // Decoding proves the event is known and well-formed; the shown payload is the
            // current schema's.
            Ok(envelope) => present(envelope.event.to_json()),
            Err(error) => {
                unreadable.push(error.to_string());
                json!({ "unreadable": error.to_string() })
            }
        };
        entries.push((r, payload));
    }
    match audit.format {
        Format::Text => {
            let erased = if key.is_none() { " (personal data erased)" } else { "" };
            println!("account {id}: {} events{erased}", recorded.len());
            for (r, payload) in &entries {
                println!("{}", text_line(r, payload));
            }
        }
        Format::Json => {
            let list: Vec<Value> = entries.iter().map(|(r, p)| json_event(r, p)).collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        Format::Cloudevents => {
            let list: Vec<Value> = entries.iter().map(|(r, p)| cloud_event(r, p)).collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
    }
    if let Some(first) = unreadable.first() {
        eprintln!("error: {} event(s) could not be read; first: {first}", unreadable.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Erased personal data reads "erased"; secrets read "redacted".
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
                if SECRET_FIELDS.contains(&name.as_str()) && !field.is_null() {
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

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn text_line(r: &RecordedEvent, payload: &Value) -> String {
    let mut fields = Vec::new();
    flatten("", payload, &mut fields);
    format!("#{:<3} {}  {:<24} {:<24} {}", r.version, time(r.recorded_at), r.actor, r.event_type, fields.join(" "))
}

/// `key=value` pairs; the members of `personal` stand beside the others, digests are left out
/// (they mean nothing to a reader).
fn flatten(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                if name.ends_with("_digest") || name == "at" {
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

fn json_event(r: &RecordedEvent, payload: &Value) -> Value {
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
        "data": payload,
        "prev_hash": hex::encode(r.prev_hash),
        "hash": hex::encode(r.hash),
    })
}

/// CloudEvents 1.0 (JSON format); Tenure's envelope fields travel as extension attributes.
fn cloud_event(r: &RecordedEvent, payload: &Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": r.id,
        "source": format!("/tenure/{}", r.stream),
        "type": format!("tenure.{}.v{}", r.event_type, r.schema_version),
        "subject": r.stream,
        "time": time(r.recorded_at),
        "datacontenttype": "application/json",
        "data": payload,
        "tenureversion": r.version,
        "tenureposition": r.position,
        "tenureactor": r.actor,
        "tenurecorrelation": r.correlation_id,
        "tenurehash": hex::encode(r.hash),
    })
}

fn state_json(id: AccountId, as_of: DateTime<Utc>, events: &[AccountEvent]) -> Value {
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

fn print_state(state: &Value) {
    let mut lines = Vec::new();
    flatten("", state, &mut lines);
    for line in lines {
        let (name, value) = line.split_once('=').unwrap_or((&line, ""));
        println!("{:<32} {value}", format!("{name}:"));
    }
}
