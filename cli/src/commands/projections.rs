//! `tenure projections …`: status, rebuild and a runner.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tenure_projections::{ALL, Phase, Projection, ProjectionState};
use tenure_store::sqlite::Open;

use crate::args::{Global, Projections};
use crate::context;

pub async fn run(global: &Global, command: Projections) -> anyhow::Result<ExitCode> {
    let context = context::open(global, Open::MustExist)?;
    let store = context.accounts.store.clone();
    let db = context::projections(global)?;
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
            let progress = Progress::new();
            let report = tenure_projections::rebuild(&store, &db, &projections, |phase| progress.update(phase)).await?;
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
            let Some(runners) = tenure_projections::runner::start(store, db)? else {
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

/// A progress bar with events/s and ETA on a terminal; a plain line every few seconds otherwise.
enum Progress {
    Bar(ProgressBar),
    Lines { started: Instant, last: std::cell::Cell<Instant> },
}

impl Progress {
    fn new() -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  ETA {eta}  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Progress::Bar(bar)
        } else {
            let now = Instant::now();
            Progress::Lines { started: now, last: std::cell::Cell::new(now) }
        }
    }

    fn update(&self, phase: Phase) {
        let Phase::Replay { position, head } = phase else {
            let what =
                if phase == Phase::Writing { "writing the fresh copy" } else { "catching up and swapping it in" };
            match self {
                Progress::Bar(bar) => bar.set_message(what),
                Progress::Lines { .. } => eprintln!("rebuild: {what}"),
            }
            return;
        };
        match self {
            Progress::Bar(bar) => {
                bar.set_length(head);
                bar.set_position(position);
            }
            Progress::Lines { started, last } => {
                if last.get().elapsed() >= Duration::from_secs(2) {
                    last.set(Instant::now());
                    let rate = position as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    eprintln!("rebuild: {position}/{head} events, {rate:.0} events/s");
                }
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
