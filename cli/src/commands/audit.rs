//! `tenure audit`: an account's full history for auditors, its state at a time, or a check of
//! its hash chain. Personal fields of an erased account read as erased; password hashes and
//! TOTP secrets are never printed.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use serde_json::Value;
use tenure_projections::history;
use tenure_store::sqlite::Open;
use tenure_store::{EventStore, KeyStore};

use crate::args::{Audit, Format, Global};
use crate::context;

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
        return super::audit_log::verify_account(&context, id, &recorded).await;
    }

    if let Some(as_of) = audit.as_of {
        if audit.format == Format::Cloudevents {
            bail!("--as-of prints a state, not events: use --format text or json");
        }
        let events = history::events_until(&recorded, key.as_ref(), as_of)?;
        let state = history::state_json(id, as_of, &events);
        match audit.format {
            Format::Json => println!("{}", serde_json::to_string_pretty(&state)?),
            _ => print_state(&state),
        }
        return Ok(ExitCode::SUCCESS);
    }

    let entries = history::entries(&recorded, key.as_ref());
    match audit.format {
        Format::Text => {
            let erased = if key.is_none() { " (personal data erased)" } else { "" };
            println!("account {id}: {} events{erased}", recorded.len());
            for entry in &entries {
                println!("{}", text_line(entry));
            }
        }
        Format::Json => {
            let list: Vec<Value> = entries.iter().map(history::json_event).collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        Format::Cloudevents => {
            let list: Vec<Value> = entries.iter().map(history::cloud_event).collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
    }
    let unreadable: Vec<&str> = entries.iter().filter_map(|e| e.unreadable.as_deref()).collect();
    if let Some(first) = unreadable.first() {
        eprintln!("error: {} event(s) could not be read; first: {first}", unreadable.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn text_line(entry: &history::Entry) -> String {
    let r = &entry.recorded;
    let facts = history::facts(&entry.payload).join(" ");
    format!("#{:<3} {}  {:<24} {:<24} {facts}", r.version, history::time(r.recorded_at), r.actor, r.event_type)
}

fn print_state(state: &Value) {
    for line in history::facts(state) {
        let (name, value) = line.split_once('=').unwrap_or((&line, ""));
        println!("{:<32} {value}", format!("{name}:"));
    }
}
