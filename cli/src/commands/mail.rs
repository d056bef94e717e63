//! `tenure mail`: where the outbox stands, and sending it now.

use std::process::ExitCode;

use chrono::Utc;
use tenure_store::outbox::Status;
use tenure_store::sqlite::Open;

use crate::args::{Global, Mail};

pub async fn run(global: &Global, command: Mail) -> anyhow::Result<ExitCode> {
    let context = crate::context::open(global, Open::MustExist).await?;
    let status = match command {
        Mail::Status => tenure_store::outbox::Outbox::of(&context.accounts.store)?.status().await?,
        Mail::Send => crate::context::delivery(global, &context)?.drain(std::time::Duration::from_secs(30)).await?,
    };
    print(&status);
    // A mail that fails, or that the server refused for good (kept 30 days), needs a look.
    Ok(if status.failing_count == 0 && status.refused == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print(status: &Status) {
    let oldest = status
        .oldest_queued
        .map_or(String::new(), |at| format!(" (oldest queued {} s ago)", (Utc::now() - at).num_seconds().max(0)));
    println!("queued: {}{oldest}", status.queued);
    println!("failing: {}", status.failing_count);
    println!("sent: {} (of them sent more than once, with the same Message-ID: {})", status.sent, status.sent_again);
    println!(
        "dropped: {} (of them refused for good by the mail server: {}; the others belonged to erased accounts or \
         were codes replaced before they left)",
        status.dropped, status.refused
    );
    for failing in &status.failing {
        println!(
            "  {} {} queued {} ago, {} failures: {}",
            failing.kind,
            failing.id,
            humanize(Utc::now() - failing.created_at),
            failing.failures,
            failing.last_error
        );
    }
}

fn humanize(age: chrono::Duration) -> String {
    match age.num_seconds().max(0) {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}
