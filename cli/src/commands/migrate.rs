//! `tenure migrate` (the schema) and `tenure migrate-store` (the events and keys, from one
//! backend to another).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use tenure_store::sqlite::Open;
use tenure_store::{EventStore, Expected, KeyStore, Location, RecordedEvent, StreamAppend, chain};

use crate::args::{Global, MigrateStore};
use crate::progress::Progress;

/// Events read and appended at a time.
const PAGE: usize = 2000;

pub async fn schema(global: &Global) -> anyhow::Result<ExitCode> {
    let location = crate::context::location(global)?;
    match &location {
        Location::Postgres { url, .. } => {
            let (from, to) = tenure_store::postgres::migrate(url).await?;
            // The read models' tables, which their own crate owns.
            tenure_projections::ProjectionDb::open_postgres(url).await?;
            if from == to {
                println!("{}: the schema is at version {to}, up to date", location.describe());
            } else {
                println!("{}: the schema moved from version {from} to {to}", location.describe());
            }
        }
        Location::Embedded { .. } => {
            std::fs::create_dir_all(location.data_dir())
                .with_context(|| format!("cannot create {}", location.data_dir().display()))?;
            location.open(Open::CreateIfMissing).await?;
            println!("{}: the schema is up to date", location.describe());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn store(global: &Global, args: MigrateStore) -> anyhow::Result<ExitCode> {
    let from = Location::parse(Some(&args.from), &global.data_dir).map_err(anyhow::Error::msg)?;
    let to = Location::parse(Some(&args.to), &global.data_dir).map_err(anyhow::Error::msg)?;
    ensure!(from != to, "--from and --to name the same store");
    let (source, source_keys) = from.open(Open::MustExist).await.context("the source store")?;
    let (target, target_keys) = to.open(Open::CreateIfMissing).await.context("the target store")?;
    let started = Instant::now();
    let head = source.head().await?;
    // A copy that stopped part-way is resumed: what the target holds must be the source's
    // beginning, event for event.
    let resume_after = target.head().await?;
    if resume_after > head {
        bail!("{} holds {resume_after} events, more than the source's {head}: it is not a copy of it", to.describe());
    }

    // Keys first: an event whose key has not arrived would read as erased. A key destroyed in the
    // source since an earlier run is destroyed in the target too: erasure must not be undone.
    let keys = source_keys.export_wrapped().await?;
    let key_count = keys.len();
    let kept: std::collections::HashSet<_> = keys.iter().map(|(account, _)| *account).collect();
    for (account, _) in target_keys.export_wrapped().await? {
        if !kept.contains(&account) {
            target_keys.destroy(account).await?;
        }
    }
    target_keys.import_wrapped(keys).await?;

    let progress = Progress::new("migrate-store");
    progress.message(if resume_after > 0 { "resuming the copy" } else { "copying" });
    // Each stream's (version, hash) so far: the source's chains are checked as they are read.
    let mut streams: HashMap<String, (u64, [u8; 32])> = HashMap::new();
    let mut next = 1;
    while next <= head {
        let mut page = source.read_all(next, PAGE).await?;
        // The source may still take appends: this run copies up to the head it started from.
        page.retain(|e| e.position <= head);
        let Some(last) = page.last() else { break };
        next = last.position + 1;
        for event in &page {
            let prev = streams.get(&event.stream).copied().unwrap_or((0, chain::GENESIS));
            chain::check_link(event, prev).context("the source's hash chain is broken; nothing more is copied")?;
            streams.insert(event.stream.clone(), (event.version, event.hash));
        }
        let (present, missing) = page.split_at(page.partition_point(|e| e.position <= resume_after));
        if let Some(first) = present.first() {
            let held = target.read_all(first.position, present.len()).await?;
            ensure!(
                held.as_slice() == present,
                "{} is not a copy of the source: it differs within its first {resume_after} events",
                to.describe()
            );
        }
        if !missing.is_empty() {
            target.append_atomic(runs(missing)).await.context("copying into the target")?;
        }
        progress.set(next - 1, head);
    }
    progress.message("verifying the copy");
    let copied = verify_copy(&source, &target, head, &progress).await?;
    progress.finish();
    // Which warnings were sent is in the events themselves; mail still queued stays with the
    // source's outbox, which the gateways still running on it send.
    let queued = tenure_store::outbox::Outbox::of(&source)?.status().await?.queued;
    if queued > 0 {
        eprintln!(
            "{queued} mails are still queued in {}: they are not copied; keep a gateway on the source running until \
             `tenure mail status` shows none queued",
            from.describe()
        );
    }
    println!(
        "{} now holds all {copied} events of {} streams from {} ({} copied by this run) and its {key_count} data \
         keys, in {:.1} s; every hash chain verified on both sides",
        to.describe(),
        streams.len(),
        from.describe(),
        copied - resume_after,
        started.elapsed().as_secs_f64()
    );
    println!("serve from the copy with --store {}", to.describe());
    Ok(ExitCode::SUCCESS)
}

/// A page of `$all` as appends that keep its order: one per run of consecutive events of a
/// stream, each expecting exactly the version before its first event, so that a copy that
/// skipped or doubled an event fails rather than goes on.
fn runs(page: &[RecordedEvent]) -> Vec<StreamAppend> {
    let mut appends: Vec<StreamAppend> = Vec::new();
    for event in page {
        let new = event.to_new();
        match appends.last_mut() {
            Some(run) if run.stream == event.stream => run.events.push(new),
            _ => appends.push(StreamAppend {
                stream: event.stream.clone(),
                expected: if event.version == 1 { Expected::NoStream } else { Expected::Exact(event.version - 1) },
                events: vec![new],
            }),
        }
    }
    appends
}

/// Reads both stores side by side: every event must be the same, position and hash included
/// (the target computed its own hashes, so equal hashes prove equal bytes).
async fn verify_copy(
    source: &impl EventStore,
    target: &impl EventStore,
    head: u64,
    progress: &Progress,
) -> anyhow::Result<u64> {
    let mut next = 1;
    while next <= head {
        let (mut a, b) = (source.read_all(next, PAGE).await?, target.read_all(next, PAGE).await?);
        a.retain(|e| e.position <= head);
        ensure!(!a.is_empty(), "the source ended before position {next}");
        for (a, b) in a.iter().zip(&b) {
            ensure!(a == b, "the copy differs from the source at position {}", a.position);
        }
        ensure!(a.len() == b.len(), "the copy lacks events after position {}", next + b.len() as u64 - 1);
        next += a.len() as u64;
        progress.set(next - 1, head);
    }
    let target_head = target.head().await?;
    ensure!(target_head == head, "the copy holds {target_head} events, the source {head}");
    Ok(head)
}
