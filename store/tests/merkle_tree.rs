//! The Merkle tree over the log, on both backends: maintained by every append (concurrent ones,
//! and batches where some requests fail), built for a store that has none, signed only while it
//! extends the last signed head, and never extended over a log that lost events.

use tenure_store::audit_log::Heads;
use tenure_store::conformance::{Backend, TestLocation, event};
use tenure_store::merkle::{self, proofs};
use tenure_store::sqlite::Open;
use tenure_store::{EventStore, Expected, Location, Store, StoreError};

struct Setup {
    place: TestLocation,
    store: Store,
}

async fn setup(backend: Backend) -> Setup {
    let place = TestLocation::create(backend).await;
    let (store, _) = place.location.open(Open::CreateIfMissing).await.expect("open");
    Setup { place, store }
}

/// SQL straight on the store, as someone with access to the database file or server would.
async fn tamper(location: &Location, sql: &str) {
    match location {
        Location::Embedded { events, .. } => {
            rusqlite::Connection::open(events).unwrap().execute_batch(sql).unwrap();
        }
        Location::Postgres { url, .. } => {
            let pool = tenure_store::postgres::pool(url).unwrap();
            pool.get().await.unwrap().batch_execute(sql).await.unwrap();
        }
    }
}

/// 16 writers, each appending 40 times to its own stream and once, in vain, to a stream another
/// writer owns: 640 events, with failed requests inside group commits.
async fn concurrent_appends(store: &Store) {
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..40u64 {
                    let expected = if i == 0 { Expected::NoStream } else { Expected::Exact(i) };
                    store.append(&format!("s-{w}"), expected, vec![event("E", b"{}")]).await.expect("append");
                    if i == 20 {
                        let taken = format!("s-{}", (w + 1) % 16);
                        assert!(store.append(&taken, Expected::NoStream, vec![event("E", b"{}")]).await.is_err());
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
}

/// The root recomputed from the events as they are stored now.
async fn recomputed(store: &Store) -> merkle::Frontier {
    let mut frontier = merkle::Frontier::default();
    for event in store.read_all(1, 100_000).await.unwrap() {
        frontier.push(merkle::recorded_leaf(&event), |_| {});
    }
    frontier
}

async fn the_tree_covers_every_append(s: Setup) {
    concurrent_appends(&s.store).await;
    let head = s.store.head().await.unwrap();
    assert_eq!(head, 640);
    let stored = s.store.tree_frontier().await.unwrap();
    assert_eq!(stored.size(), head);
    assert_eq!(stored.root(), recomputed(&s.store).await.root());
    let all = s.store.read_all(1, 1000).await.unwrap();
    for size in [1, 255, 256, 257, 640] {
        let root = proofs::root_at(&s.store, size).await.unwrap();
        for event in all.iter().filter(|e| e.position <= size).step_by(37) {
            let path = s.store.inclusion_proof(event.position, size).await.unwrap();
            let input = merkle::leaf_input(event.position, &event.stream, event.version, &event.hash);
            proofs::verify_inclusion(&input, event.position - 1, size, &root, &path).unwrap();
        }
        let path = s.store.consistency_proof(size, 640).await.unwrap();
        proofs::verify_consistency((size, &root), (640, &stored.root()), &path).unwrap();
    }
    assert!(s.store.inclusion_proof(641, 640).await.is_err());
    assert!(s.store.consistency_proof(10, 641).await.is_err());
}

async fn a_store_without_a_tree_gets_one_when_opened(s: Setup) {
    concurrent_appends(&s.store).await;
    let before = s.store.tree_frontier().await.unwrap();
    let wipe = match s.place.location {
        Location::Embedded { .. } => "DELETE FROM merkle_nodes; UPDATE events SET leaf = NULL;",
        Location::Postgres { .. } => {
            "DELETE FROM merkle_nodes; UPDATE head SET tree = decode('0000000000000000', 'hex'); UPDATE events SET leaf = NULL;"
        }
    };
    tamper(&s.place.location, wipe).await;
    drop(s.store);
    let store = s.place.location.open_events(Open::CreateIfMissing).await.unwrap();
    assert_eq!(store.tree_frontier().await.unwrap(), before);
    let path = store.inclusion_proof(300, 640).await.unwrap();
    assert!(!path.is_empty());
    store.append("after", Expected::NoStream, vec![event("E", b"{}")]).await.unwrap();
    assert_eq!(store.tree_frontier().await.unwrap().root(), recomputed(&store).await.root());
    let rebuilt = store.rebuild_tree(|_| {}).await.unwrap();
    assert_eq!(rebuilt, store.tree_frontier().await.unwrap());
    assert_eq!(rebuilt.size(), 641);
}

async fn heads_are_signed_only_while_the_tree_extends_the_last(s: Setup) {
    let (_, keys) = s.place.location.open(Open::MustExist).await.unwrap();
    let key = keys.log_key().await.unwrap();
    assert_eq!(keys.log_key().await.unwrap().public(), key.public(), "one log key per store");
    concurrent_appends(&s.store).await;
    let first = s.store.sign_head(&key, 1_000).await.unwrap();
    assert_eq!(first.tree_size, 640);
    first.verify(&key.public()).unwrap();
    assert_eq!(s.store.sign_head(&key, 2_000).await.unwrap(), first, "nothing new: the same head");
    s.store.append("more", Expected::NoStream, vec![event("E", b"{}"), event("E", b"{}")]).await.unwrap();
    let second = s.store.sign_head(&key, 3_000).await.unwrap();
    assert_eq!(second.tree_size, 642);
    assert_eq!(s.store.signed_heads(Heads::All).await.unwrap(), vec![first.clone(), second.clone()]);
    assert_eq!(s.store.signed_heads(Heads::OfSize(640)).await.unwrap(), vec![first.clone()]);
    let path = s.store.consistency_proof(640, 642).await.unwrap();
    proofs::verify_consistency((640, &first.root_hash), (642, &second.root_hash), &path).unwrap();

    // The last two events go, and the tree with them: the log no longer extends what was signed.
    let drop_tail = match s.place.location {
        Location::Embedded { .. } => "DELETE FROM events WHERE position > 640",
        Location::Postgres { .. } => "DELETE FROM events WHERE position > 640; UPDATE head SET position = 640",
    };
    tamper(&s.place.location, drop_tail).await;
    let refused = s.store.append("after", Expected::NoStream, vec![event("E", b"{}")]).await;
    assert!(
        matches!(refused, Err(tenure_store::AppendError::Store(StoreError::Corrupt(ref m))) if m.contains("removed")),
        "{refused:?}"
    );
    assert_eq!(s.store.head().await.unwrap(), 640, "nothing was appended at a position a head covers");
}

tenure_store::on_both_backends!(
    super::setup;
    the_tree_covers_every_append,
    a_store_without_a_tree_gets_one_when_opened,
    heads_are_signed_only_while_the_tree_extends_the_last,
);

/// Two processes appending to one SQLite file in turn: each writer's remembered frontier goes
/// stale when the other appends, and is read again from the kept hashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sqlite_writers_in_turn_keep_one_tree() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let first = tenure_store::SqliteStore::open(&path, Open::CreateIfMissing).unwrap();
    let second = tenure_store::SqliteStore::open(&path, Open::CreateIfMissing).unwrap();
    for i in 0..300u64 {
        let (store, stream) = if i % 3 == 0 { (&second, "b") } else { (&first, "a") };
        store.append(stream, Expected::Any, vec![event("E", b"{}")]).await.unwrap();
    }
    let store = Store::Sqlite(first);
    assert_eq!(store.tree_frontier().await.unwrap(), recomputed(&store).await);
    assert_eq!(store.tree_frontier().await.unwrap().size(), 300);
}
