//! `tenure scheduler`: the inactivity scheduler as its own process (or inside `tenure serve
//! --with-scheduler`), holding the lease so that only one acts at a time.

use std::process::ExitCode;

use chrono::{DateTime, Duration, Utc};
use tenure_gateway::sessions::SessionStore;
use tenure_scheduler::{Deliver, Scheduler};
use tenure_store::sqlite::Open;

use crate::args::{Global, Scheduler as SchedulerArgs};
use crate::context::Repo;

/// The gateway's sessions, which a deactivation or deletion ends.
pub struct WarningMails {
    pub sessions: SessionStore,
}

impl Deliver for WarningMails {
    async fn end_sessions(&self, account: tenure_domain::AccountId) -> Result<(), String> {
        self.sessions.revoke_all(account, None).await.map(|_| ()).map_err(|e| e.to_string())
    }
}

/// The scheduler over the global options' store, after taking the lease unless `dry_run` (a
/// dry run changes nothing, so it need not wait for a scheduler that is running).
pub async fn open(
    global: &Global,
    quarantine_days: u32,
    dry_run: bool,
) -> anyhow::Result<(
    Option<tenure_scheduler::lease::Lease>,
    Scheduler<tenure_store::Store, tenure_store::Keys, WarningMails>,
)> {
    let context = crate::context::open(global, Open::CreateIfMissing).await?;
    let location = crate::context::location(global)?;
    let lease = if dry_run { None } else { Some(tenure_scheduler::lease::acquire_at(&location).await?) };
    let sessions = SessionStore::open_at(
        &location,
        std::sync::Arc::new(crate::context::SystemClock),
        Default::default(),
        context.accounts.keys.derive("csrf tokens"),
    )?;
    let deliver = WarningMails { sessions };
    let accounts: Repo = context.accounts;
    let quarantine = Duration::days(i64::from(quarantine_days));
    let snapshots = tenure_scheduler::Snapshots::at(&location)?;
    let scheduler = Scheduler::open(accounts, deliver, context.public_url, quarantine, snapshots).await?;
    Ok((lease, scheduler))
}

pub async fn run(global: &Global, args: SchedulerArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.log_format);
    let (_lease, mut scheduler) = open(global, args.quarantine.days, args.dry_run).await?;
    // A --now override keeps the clock running from the time given.
    let offset = args.now.map_or(Duration::zero(), |now| now - Utc::now());
    let clock = move || -> DateTime<Utc> { Utc::now() + offset };
    if args.once || args.dry_run {
        let (summary, lines) = scheduler.pass(clock(), args.dry_run).await?;
        for line in lines {
            println!("{line}");
        }
        println!("{summary}");
        if !args.dry_run {
            save_snapshot(&scheduler).await;
            let context = crate::context::open(global, Open::MustExist).await?;
            crate::context::send_queued(global, &context, &scheduler.take_queued_mail()).await?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    // On its own, the scheduler sends the warnings it queues (as would any gateway on the store).
    let context = crate::context::open(global, Open::MustExist).await?;
    let (_stop, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(crate::context::delivery(global, &context)?.run(stop));
    follow(&mut scheduler, _lease.as_ref(), clock, None).await?;
    Ok(ExitCode::SUCCESS)
}

/// Passes whenever something comes due, until interrupted or until `lease` is lost; `metrics`
/// (the gateway's, with `serve --with-scheduler`) learns what each pass did.
pub async fn follow(
    scheduler: &mut Scheduler<tenure_store::Store, tenure_store::Keys, WarningMails>,
    lease: Option<&tenure_scheduler::lease::Lease>,
    clock: impl Fn() -> DateTime<Utc>,
    metrics: Option<&tenure_gateway::metrics::Metrics>,
) -> anyhow::Result<()> {
    tracing::info!(accounts = scheduler.tracker().len(), "scheduler running");
    let stop = tenure_gateway::server::stop_signal();
    tokio::pin!(stop);
    // Polled once now, so that the signal handlers are in place before the first pass.
    let _ = futures_util::FutureExt::now_or_never(&mut stop);
    // When the snapshot was saved and where it stood. After a whole-log replay there is none
    // yet: the first one is due at once, for the next start.
    let mut saved = scheduler.started_from().map(|at| (std::time::Instant::now(), at));
    loop {
        // Once the lease is lost another scheduler may hold it: acting on would make two.
        if let Some(lease) = lease
            && !lease.held().await
        {
            anyhow::bail!("the scheduler lease was lost (its database connection ended)");
        }
        // The store may be briefly unavailable: the scheduler waits and tries again.
        let (summary, _) = match scheduler.pass(clock(), false).await {
            Ok(done) => done,
            Err(error) => {
                tracing::error!(%error, "a scheduler pass failed; trying again shortly");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        // The delivery worker of this process, or of any gateway, sends what the pass queued.
        scheduler.take_queued_mail();
        let next_due = scheduler.tracker().next_due();
        if summary != Default::default() {
            tracing::info!(%summary, accounts = scheduler.tracker().len(), next_due = ?next_due, "scheduler pass");
        }
        if let Some(metrics) = metrics {
            use tenure_gateway::metrics::ActionLabel;
            metrics.scheduler_accounts.set(scheduler.tracker().len() as i64);
            metrics.scheduler_next_due.set(next_due.map_or(0, |at| at.timestamp()));
            for (kind, count) in [
                ("warning", summary.warned),
                ("deactivation", summary.deactivated),
                ("deletion", summary.deleted),
                ("username_release", summary.released),
            ] {
                metrics.scheduler_actions.get_or_create(&ActionLabel { kind }).inc_by(count as u64);
            }
        }
        // Other processes' events (sign-ins through a gateway) are seen at the next pass: wait
        // for the next due step, but not longer than a poll interval.
        let wait =
            scheduler.tracker().next_due().map_or(POLL, |due| (due - clock()).to_std().unwrap_or_default().min(POLL));
        let due = saved.is_none_or(|(at, position)| at.elapsed() >= SNAPSHOT_EVERY && position != scheduler.position());
        if due {
            save_snapshot(scheduler).await;
            saved = Some((std::time::Instant::now(), scheduler.position()));
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut stop => {
                // The next start then reads only what comes after this.
                if saved.is_none_or(|(_, position)| position != scheduler.position()) {
                    save_snapshot(scheduler).await;
                }
                return Ok(());
            }
        }
    }
}

async fn save_snapshot(scheduler: &Scheduler<tenure_store::Store, tenure_store::Keys, WarningMails>) {
    let started = std::time::Instant::now();
    match scheduler.save_snapshot().await {
        Ok(()) => tracing::info!(
            accounts = scheduler.tracker_len(),
            position = scheduler.position() - 1,
            took_ms = started.elapsed().as_millis() as u64,
            "scheduler snapshot saved"
        ),
        // Only the next start's speed depends on it: it replays the whole log without one.
        Err(error) => tracing::warn!("the scheduler's snapshot was not saved: {error}"),
    }
}

/// How often a running scheduler saves its snapshot, when anything changed.
const SNAPSHOT_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

const POLL: std::time::Duration = std::time::Duration::from_secs(30);
const RETRY: std::time::Duration = std::time::Duration::from_secs(5);
