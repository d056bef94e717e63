//! `tenure projections …`: status, rebuild and a runner.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use tenure_projections::{ALL, Phase, Projection, ProjectionState};
use tenure_store::sqlite::Open;

use crate::args::{Global, Projections};
use crate::context;
use crate::progress::Progress;

pub async fn run(global: &Global, command: Projections) -> anyhow::Result<ExitCode> {
    let context = context::open(global, Open::MustExist).await?;
    let store = context.accounts.store.clone();
    let db = context::projections(global).await?;
    match command {
        Projections::Status => {
            let statuses = db.status(&store).await?;
            println!("{:<12} {:>12} {:>12} {:>10}  state", "projection", "checkpoint", "head", "lag");
            let mut failed = false;
            for status in &statuses {
                let state = match &status.state {
                    ProjectionState::Running => "running".to_string(),
                    ProjectionState::Stopped => "stopped (no runner follows the store)".to_string(),
                    ProjectionState::Rebuilding => "rebuilding".to_string(),
                    ProjectionState::Failed { position, reason } => {
                        failed = true;
                        format!("failed at position {position}: {reason}")
                    }
                };
                println!(
                    "{:<12} {:>12} {:>12} {:>10}  {state}",
                    status.name,
                    status.checkpoint,
                    status.head,
                    status.lag()
                );
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Projections::Rebuild { names } => {
            let projections = if names.is_empty() {
                ALL.to_vec()
            } else {
                names
                    .iter()
                    .map(|name| {
                        Projection::parse(name)
                            .ok_or_else(|| anyhow!("no projection named {name:?} (there are: accounts, org_widgets)"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?
            };
            let progress = Progress::new("rebuild");
            let report = tenure_projections::rebuild(&store, &db, &projections, |phase| match phase {
                Phase::Replay { position, head } => progress.set(position, head),
                Phase::Writing => progress.message("writing the fresh copy"),
                _ => progress.message("catching up and swapping it in"),
            })
            .await?;
            progress.finish();
            let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
            println!(
                "rebuilt {} from {} events in {:.2} s ({:.0} events/s); swapped in at position {}",
                names.join(", "),
                report.events,
                report.elapsed.as_secs_f64(),
                report.events as f64 / report.elapsed.as_secs_f64().max(1e-9),
                report.position
            );
            Ok(ExitCode::SUCCESS)
        }
        Projections::Run => {
            crate::logging::init(crate::args::LogFormat::Text);
            let Some(runners) = tenure_projections::runner::start(store, db).await? else {
                bail!("another process is already running the projections");
            };
            tracing::info!("following the event store; Ctrl-C stops");
            tokio::select! {
                result = runners => result?,
                _ = tokio::signal::ctrl_c() => tracing::info!("stopped"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
