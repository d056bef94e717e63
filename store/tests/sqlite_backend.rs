//! What only the SQLite backend has: several handles (or processes) writing one file.

use tenure_store::conformance::event;
use tenure_store::sqlite::{Open, SqliteStore};
use tenure_store::{AppendError, EventStore, Expected, chain};

/// Two handles keep their own cache of stream heads. Each appends with the exact version it
/// believes current; a head made stale by the other handle must end in a conflict (reported from
/// the `(stream, version)` constraint), never in a forked or broken chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_file_never_fork_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let a = SqliteStore::open(&path, Open::CreateIfMissing).unwrap();
    let b = SqliteStore::open(&path, Open::CreateIfMissing).unwrap();
    a.append("shared", Expected::NoStream, vec![event("A", b"{}")]).await.unwrap();
    // b learns the head (version 1), then a moves on without b's knowledge.
    b.append("shared", Expected::Exact(1), vec![event("B", b"{}")]).await.unwrap();
    a.append("other", Expected::NoStream, vec![event("A", b"{}")]).await.unwrap();
    // a's cached head for "shared" is version 1, now stale: b wrote version 2.
    let stale = a.append("shared", Expected::Exact(1), vec![event("A", b"{}")]).await.unwrap_err();
    assert!(matches!(stale, AppendError::Conflict { actual: 2, .. }), "{stale:?}");
    let fresh = a.append("shared", Expected::Exact(2), vec![event("A", b"{}")]).await.unwrap();
    assert_eq!(fresh.version, 3);

    let mut tasks = Vec::new();
    for (name, store) in [("a", a.clone()), ("b", b.clone())] {
        tasks.push(tokio::spawn(async move {
            let mut wins = 0;
            for _ in 0..200 {
                let version = store.read_stream("shared", 1).await.unwrap().len() as u64;
                match store.append("shared", Expected::Exact(version), vec![event(name, b"{}")]).await {
                    Ok(_) => wins += 1,
                    Err(AppendError::Conflict { .. }) => {}
                    Err(other) => panic!("{other:?}"),
                }
            }
            wins
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += task.await.unwrap();
    }
    let stream = a.read_stream("shared", 1).await.unwrap();
    assert_eq!(stream.len(), 3 + wins);
    assert_eq!(chain::verify(&stream), Ok(stream.len()));
}

/// A flood of reads runs on a bounded set of connections: the reads past the bound wait for one
/// to come back rather than opening more (each connection opened and closed under load cost a
/// schema parse and a page cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_reads_shares_a_bounded_set_of_connections() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tenure_store::sqlite::ReadPool;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    drop(SqliteStore::open(&path, Open::CreateIfMissing).unwrap());
    let pool = ReadPool::new(&path);
    let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut reads = Vec::new();
    for _ in 0..64 {
        let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
        reads.push(tokio::spawn(async move {
            pool.read(move |c| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
                c.query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0))
            })
            .await
        }));
    }
    for read in reads {
        assert_eq!(read.await.unwrap().unwrap(), 0);
    }
    let most = most.load(Ordering::SeqCst);
    assert!((2..=8).contains(&most), "{most} reads ran at once");
}
