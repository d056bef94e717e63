//! kill -9 during incremental apply and during a rebuild: after a restart the read models equal
//! a fresh rebuild, and an interrupted rebuild never touched the serving copy.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use tenure_projections::{ALL, catch_up, rebuild, sample};
use tenure_store::EventStore;

const CHILD_MODE: &str = "TENURE_PROJECTIONS_CHILD";
const CHILD_DIR: &str = "TENURE_PROJECTIONS_DIR";

/// The process that gets killed: it catches up or rebuilds the read models in CHILD_DIR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of the kill -9 tests"]
async fn crash_child() {
    let dir = std::path::PathBuf::from(std::env::var(CHILD_DIR).expect("started by a parent test"));
    let repo = open_repo(&dir);
    let db = open_db(&dir, "projections.db");
    match std::env::var(CHILD_MODE).as_deref() {
        Ok("catch_up") => {
            println!("started");
            for projection in ALL {
                catch_up(&repo.store, &db, projection).await.unwrap();
            }
        }
        Ok("rebuild") => {
            rebuild(&repo.store, &db, &ALL, |phase| println!("{phase:?}")).await.unwrap();
        }
        other => panic!("unknown mode {other:?}"),
    }
    println!("done");
}

fn spawn_child(mode: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_MODE, mode)
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn generated_store(dir: &Path) -> u64 {
    let repo = open_repo(dir);
    sample::generate(&repo.store, &repo.keys, 2_000, 7).await.unwrap();
    repo.store.head().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_incremental_apply_then_restart_equals_a_fresh_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let head = generated_store(dir.path()).await;
    let mut interrupted = 0;
    for round in 0..4u64 {
        let mut child = spawn_child("catch_up", dir.path());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // libtest prints its own lines first.
        // libtest prints its own words first, on the same line.
        assert!(lines.by_ref().map_while(Result::ok).any(|l| l.ends_with("started")), "the child did not start");
        std::thread::sleep(Duration::from_millis(40 + round * 60));
        child.kill().unwrap();
        child.wait().unwrap();
        let db = open_db(dir.path(), "projections.db");
        let reached = db.checkpoint(tenure_projections::Projection::Accounts).await.unwrap().position;
        if reached < head {
            interrupted += 1;
        }
    }
    assert!(interrupted > 0, "the child was never killed mid-way; grow the store");

    let repo = open_repo(dir.path());
    let db = open_db(dir.path(), "projections.db");
    for projection in ALL {
        assert_eq!(catch_up(&repo.store, &db, projection).await.unwrap(), head);
    }
    let fresh = open_db(dir.path(), "fresh.db");
    rebuild(&repo.store, &fresh, &ALL, |_| {}).await.unwrap();
    assert_eq!(dump(&open_db(dir.path(), "projections.db")).await, dump(&fresh).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_rebuild_leaves_the_serving_copy_intact_and_a_rerun_starts_clean() {
    let dir = tempfile::tempdir().unwrap();
    let head = generated_store(dir.path()).await;
    let repo = open_repo(dir.path());
    let db = open_db(dir.path(), "projections.db");
    for projection in ALL {
        catch_up(&repo.store, &db, projection).await.unwrap();
    }
    let serving = dump(&open_db(dir.path(), "projections.db")).await;
    let generation = || async { db.checkpoint(tenure_projections::Projection::Accounts).await.unwrap().generation };
    let mut swapped = 0;

    // Killed while replaying, while writing the fresh copy, and while swapping it in.
    for phase in ["Replay", "Writing", "Swapping"] {
        let before = generation().await;
        let mut child = spawn_child("rebuild", dir.path());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let reached = lines.by_ref().map_while(Result::ok).find(|l| l.contains(phase) || l.contains("done"));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(reached.as_deref().is_some_and(|l| l.contains(phase)), "{phase}: {reached:?}");
        // Old copy or new copy, never a mix: the rows are the same either way, and only a
        // completed swap moves the generation.
        assert_eq!(dump(&open_db(dir.path(), "projections.db")).await, serving, "{phase}");
        let after = generation().await;
        match phase {
            "Swapping" => assert!(after == before || after == before + 1),
            _ => assert_eq!(after, before, "{phase}: the serving copy was replaced"),
        }
        swapped += after - before;
        let statuses = db.status(&repo.store).await.unwrap();
        assert!(
            statuses.iter().all(|s| s.state == tenure_projections::ProjectionState::Stopped),
            "{phase}: a dead rebuild's lock is gone"
        );
    }

    let report = rebuild(&repo.store, &db, &ALL, |_| {}).await.unwrap();
    assert_eq!(report.position, head);
    assert_eq!(generation().await, 1 + swapped);
    let leftovers: i64 = rusqlite::Connection::open(dir.path().join("projections.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM sqlite_schema WHERE name LIKE '%__next%'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(leftovers, 0, "the half-written copy is gone");
    let fresh = open_db(dir.path(), "fresh.db");
    rebuild(&repo.store, &fresh, &ALL, |_| {}).await.unwrap();
    assert_eq!(dump(&open_db(dir.path(), "projections.db")).await, dump(&fresh).await);
    assert_eq!(dump(&open_db(dir.path(), "projections.db")).await, serving, "the same events give the same rows");
}
