//! What only the PostgreSQL backend has to show: notifications between processes, the master
//! key shared by every host, and a request PostgreSQL cannot store.

use tenure_store::EventStore;
use tenure_store::conformance::{self, TestDatabase};
use tenure_store::postgres::{Open, PgStore};

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
