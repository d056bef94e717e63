//! The conformance suite on the PostgreSQL backend, each check on a database of its own.

use tenure_store::EventStore;
use tenure_store::conformance::{self, TestDatabase};
use tenure_store::postgres::{Open, PgStore};

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $check() {
            let database = TestDatabase::create().await;
            let store = PgStore::open(&database.url, Open::CreateIfMissing).await.expect("open");
            conformance::$check(&store).await;
        }
    )*};
}

conformance! {
    ordering,
    expectations,
    optimistic_concurrency,
    concurrent_writers_leave_no_gaps,
    atomic_multi_stream_append,
    a_failed_append_does_not_sink_its_neighbours,
    read_after_write,
    reading_some_types_of_all,
    subscription_catches_up_then_follows,
    large_streams,
    unknown_event_types_are_kept,
    hash_chains_link_each_stream,
}

/// Four handles, each with its own pool and writer as four processes would have, append at
/// once; readers on every handle never see a later position before an earlier one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_never_see_a_gap_between_processes() {
    let database = TestDatabase::create().await;
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(PgStore::open(&database.url, Open::CreateIfMissing).await.expect("open"));
    }
    conformance::readers_never_see_a_gap(&stores).await;
}

/// An append through one handle (one process) wakes the subscribers of another at once, through
/// `NOTIFY`, not only at their next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_elsewhere_is_announced_by_notify() {
    let database = TestDatabase::create().await;
    let here = PgStore::open(&database.url, Open::CreateIfMissing).await.expect("open");
    let elsewhere = PgStore::open(&database.url, Open::CreateIfMissing).await.expect("open");
    let mut announced = here.appended();
    // The listening connection is opened in the background; give it a moment to LISTEN.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let appended = elsewhere
        .append("s-notify", tenure_store::Expected::NoStream, vec![conformance::event("N", b"{}")])
        .await
        .expect("append");
    tokio::time::timeout(std::time::Duration::from_secs(5), announced.changed())
        .await
        .expect("announced within 5 s")
        .expect("the store is alive");
    assert_eq!(*announced.borrow(), appended.position);
}

/// Every host must hold the master key that wrapped the database's keys: a host with another key
/// is refused, and a host with none is refused rather than given a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_key_that_did_not_wrap_the_keys_is_refused() {
    use tenure_store::{KeyStore, PgKeyStore, StoreError};
    let database = TestDatabase::create().await;
    let (first, other, bare) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let keys = PgKeyStore::open(&database.url, &first.path().join("master.key"), true).await.expect("the first host");
    let account = tenure_domain::AccountId(uuid::Uuid::now_v7());
    keys.create(account).await.expect("a key");
    std::fs::write(other.path().join("master.key"), "ab".repeat(32)).unwrap();
    let refused = PgKeyStore::open(&database.url, &other.path().join("master.key"), true).await.err();
    assert!(matches!(&refused, Some(StoreError::Corrupt(m)) if m.contains("not the master key")), "{refused:?}");
    let refused = PgKeyStore::open(&database.url, &bare.path().join("master.key"), true).await.err();
    assert!(matches!(&refused, Some(StoreError::Missing(m)) if m.contains("copy master.key")), "{refused:?}");
    assert!(!bare.path().join("master.key").exists(), "no key of its own");
    std::fs::copy(first.path().join("master.key"), bare.path().join("master.key")).unwrap();
    let copied = PgKeyStore::open(&database.url, &bare.path().join("master.key"), true).await.expect("the copied key");
    assert_eq!(copied.get(account).await.expect("read"), keys.get(account).await.expect("read"));
}

/// A request PostgreSQL cannot store (a NUL in its stream name) fails alone; the appends that
/// share its group commit are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_postgres_cannot_store_fails_alone() {
    let database = TestDatabase::create().await;
    let store = PgStore::open(&database.url, Open::CreateIfMissing).await.expect("open");
    let tasks = (0..20).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let stream = if i == 7 { "bad\0stream".to_string() } else { format!("ok-{i}") };
            store.append(&stream, tenure_store::Expected::NoStream, vec![conformance::event("N", b"{}")]).await
        })
    });
    let results = futures_util::future::join_all(tasks).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.expect("task").is_ok(), i != 7, "append {i}");
    }
    assert_eq!(store.head().await.expect("head"), 19);
}
