//! `tenure audit head | public-key | verify-store | consistency | check-proof | rebuild-tree`,
//! and `tenure audit <account> --proof`: the verifiable log for auditors (SPEC §12).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, anyhow, bail};
use tenure_domain::AccountId;
use tenure_store::EventStore;
use tenure_store::audit_log::{Heads, proof_file, verify};
use tenure_store::merkle::heads::{PublicKey, SignedHead};
use tenure_store::merkle::proofs;

use crate::args::{AuditLog, Global};
use crate::context;
use crate::progress::Progress;

pub async fn run(global: &Global, command: AuditLog) -> anyhow::Result<ExitCode> {
    match command {
        AuditLog::CheckProof { file, public_key } => return check_proof(&file, public_key.as_deref()),
        AuditLog::Head => {
            let context = context::open_for_audit(global).await?;
            let head = latest_head(&context).await?;
            println!("{}", serde_json::to_string_pretty(&head)?);
        }
        AuditLog::PublicKey => {
            let context = context::open_for_audit(global).await?;
            print!("{}", context.accounts.keys.log_key().await?.public().pem());
        }
        AuditLog::VerifyStore { head } => return verify_store(global, head.as_deref()).await,
        AuditLog::Consistency { from, to } => return consistency(global, &from, &to).await,
        AuditLog::RebuildTree => return rebuild_tree(global).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// The latest signed head, after signing one for the tree as it is now if it grew since.
pub async fn latest_head(context: &context::Context) -> anyhow::Result<SignedHead> {
    let key = context.accounts.keys.log_key().await?;
    let now = context.clock.now().timestamp_millis().max(0) as u64;
    Ok(context.accounts.store.sign_head(&key, now).await?)
}

fn read_head(path: &Path) -> anyhow::Result<SignedHead> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a signed tree head", path.display()))
}

/// `tenure audit <account> --proof`: every event of the account with its inclusion proof.
pub async fn prove_account(context: &context::Context, id: AccountId) -> anyhow::Result<ExitCode> {
    let head = latest_head(context).await?;
    let key = context.accounts.keys.log_key().await?.public();
    let stream = id.stream();
    let events = context.accounts.store.read_stream(&stream, 1).await?;
    let proof = proof_file::prove(&context.accounts.store, &head, &key, &stream, &events).await?;
    println!("{}", serde_json::to_string_pretty(&proof)?);
    Ok(ExitCode::SUCCESS)
}

/// `tenure audit <account> --verify`: the account's hash chain, and the whole log it belongs to.
/// A chain alone cannot see its own missing tail, a missing stream, or an event moved to another
/// stream; the log's tree and positions can, so the store is verified too.
pub async fn verify_account(
    context: &context::Context,
    id: AccountId,
    recorded: &[tenure_store::RecordedEvent],
) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    match tenure_store::chain::verify(recorded) {
        Ok(count) => {
            let head = recorded.last().map(|e| hex::encode(e.hash)).unwrap_or_default();
            println!("hash chain intact: {count} events of {}, head {head}", id.stream());
        }
        Err(broken) => {
            eprintln!("error: hash chain broken at {broken}");
            failed = true;
        }
    }
    if recorded.is_empty() {
        eprintln!("error: account {id} is named by its username but its stream holds no events");
        failed = true;
    }
    let key = context.accounts.keys.log_key().await?.public();
    let progress = Progress::new("verify-store");
    let report =
        verify::verify_store(&context.accounts.store, &key, None, |done, head| progress.set(done, head)).await?;
    progress.finish();
    for finding in &report.findings {
        println!("error: {finding}");
    }
    if report.unlisted > 0 {
        println!("error: … and {} more of the same kinds", report.unlisted);
    }
    if report.findings.is_empty() {
        println!(
            "log verified: {} events in {} streams, root {}, {} signed heads checked",
            report.events,
            report.streams,
            verify::base64(&report.root),
            report.heads_checked
        );
    } else {
        println!(
            "log NOT verified: {} problems (see `tenure audit verify-store`)",
            report.findings.len() + report.unlisted
        );
        failed = true;
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn check_proof(file: &Path, public_key: Option<&Path>) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let proof: proof_file::AccountProof =
        serde_json::from_str(&text).with_context(|| format!("{} is not a Tenure inclusion proof", file.display()))?;
    let (key, whose) = match public_key {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            (PublicKey::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?, "your copy of the log key")
        }
        None => (
            PublicKey::from_raw(&proof.public_key).map_err(anyhow::Error::msg)?,
            "the key written in the proof (pass --public-key to check against your own copy)",
        ),
    };
    match proof_file::check(&proof, &key) {
        Ok(count) => {
            println!(
                "proof verified: {count} events of {} are in the log of {} events signed at {} with {whose}, key id {}",
                proof.stream,
                proof.head.tree_size,
                millis(proof.head.timestamp),
                base64(&key.id())
            );
            println!(
                "(it shows that these events are in the log, unchanged and in order from the account's first; not \
                 that the account has no later ones: `tenure audit verify-store --head` on the store shows that)"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for problem in problems {
                eprintln!("error: {problem}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn verify_store(global: &Global, saved: Option<&Path>) -> anyhow::Result<ExitCode> {
    let saved = saved.map(read_head).transpose()?;
    let context = context::open_for_audit(global).await?;
    let key = context.accounts.keys.log_key().await?.public();
    let progress = Progress::new("verify-store");
    let started = std::time::Instant::now();
    let report =
        verify::verify_store(&context.accounts.store, &key, saved.as_ref(), |done, head| progress.set(done, head))
            .await?;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    for finding in &report.findings {
        println!("error: {finding}");
    }
    if report.unlisted > 0 {
        println!("error: … and {} more of the same kinds", report.unlisted);
    }
    let summary = format!(
        "{} events in {} streams, {} signed heads checked, root {} ({:.1} s, {:.0} events/s)",
        report.events,
        report.streams,
        report.heads_checked,
        verify::base64(&report.root),
        seconds,
        report.events as f64 / seconds.max(1e-9)
    );
    if report.findings.is_empty() {
        println!("store verified: {summary}");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("store NOT verified: {} problems; {summary}", report.findings.len() + report.unlisted);
        Ok(ExitCode::FAILURE)
    }
}

async fn consistency(global: &Global, from: &Path, to: &Path) -> anyhow::Result<ExitCode> {
    let (first, second) = (read_head(from)?, read_head(to)?);
    if first.tree_size > second.tree_size {
        bail!("--from must be the older head: it has {} events, --to has {}", first.tree_size, second.tree_size);
    }
    let context = context::open_for_audit(global).await?;
    let key = context.accounts.keys.log_key().await?.public();
    for (head, name) in [(&first, "--from"), (&second, "--to")] {
        head.verify(&key).map_err(|e| anyhow!("{name}: {e}"))?;
    }
    let path = context.accounts.store.consistency_proof(first.tree_size, second.tree_size).await?;
    let verdict =
        proofs::verify_consistency((first.tree_size, &first.root_hash), (second.tree_size, &second.root_hash), &path);
    let out = serde_json::json!({
        "first": first.tree_size,
        "second": second.tree_size,
        "consistency_path": path.iter().map(|h| base64(h)).collect::<Vec<_>>(),
        "consistent": verdict.is_ok(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    match verdict {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            eprintln!(
                "error: the log of {} events is not an extension of the log of {} events: {error}",
                second.tree_size, first.tree_size
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn rebuild_tree(global: &Global) -> anyhow::Result<ExitCode> {
    let context = context::open_for_audit(global).await?;
    let store = &context.accounts.store;
    let total = store.head().await?;
    let progress = Progress::new("rebuild-tree");
    let done = Arc::new(AtomicU64::new(0));
    let counter = done.clone();
    let mut rebuild = std::pin::pin!(store.rebuild_tree(move |n| counter.store(n, Ordering::Relaxed)));
    let frontier = loop {
        tokio::select! {
            result = &mut rebuild => break result?,
            () = tokio::time::sleep(std::time::Duration::from_millis(200)) => progress.set(done.load(Ordering::Relaxed), total),
        }
    };
    progress.finish();
    println!("tree rebuilt: {} events, root {}", frontier.size(), base64(&frontier.root()));
    // The tree now says what the events say; the signed heads say what they said when signed.
    let mut differ = 0;
    for head in store.signed_heads(Heads::All).await? {
        if head.tree_size <= frontier.size() && proofs::root_at(store, head.tree_size).await? != head.root_hash {
            differ += 1;
            eprintln!(
                "error: the events up to position {} no longer have the root signed at {}: run `tenure audit verify-store`",
                head.tree_size,
                millis(head.timestamp)
            );
        }
    }
    Ok(if differ == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn base64(bytes: &[u8]) -> String {
    verify::base64(bytes)
}

fn millis(timestamp: u64) -> String {
    chrono::DateTime::from_timestamp_millis(timestamp as i64)
        .map_or_else(|| timestamp.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}
