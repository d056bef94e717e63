//! `tenure oidc rotate-keys`: a new key to sign tokens with (SPEC §13).

use std::process::ExitCode;

use chrono::Duration;
use tenure_store::sqlite::Open;

use crate::args::{Global, Oidc};
use crate::context;

pub async fn run(global: &Global, command: Oidc) -> anyhow::Result<ExitCode> {
    match command {
        Oidc::RotateKeys { grace_hours } => {
            let context = context::open(global, Open::MustExist).await?;
            let now = context.clock.now();
            let until = now + Duration::hours(i64::from(grace_hours));
            let keys = context.accounts.keys;
            let kept = keys.rotate_signing_key(tenure_gateway::oidc::keys::make, until, now).await?;
            println!("signing key: {}", kept[0].kid);
            for old in kept.iter().skip(1) {
                let end = old.dropped_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                println!("verifies until {}: {}", end.unwrap_or_default(), old.kid);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
