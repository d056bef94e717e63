//! One scheduler at a time on PostgreSQL: the lease is a session advisory lock. A second
//! scheduler waits while the first holds it and takes over when it goes; a lease whose
//! connection the server ended is known to be lost.

use std::time::Duration;

use tenure_scheduler::lease::acquire_at;
use tenure_store::Location;
use tenure_store::conformance::TestDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_scheduler_waits_for_the_postgres_lease_and_takes_over() {
    let database = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let location = Location::parse(Some(&database.url), dir.path()).unwrap();
    let first = acquire_at(&location).await.expect("the lease is free");
    assert!(first.held().await);
    let waiting = tokio::spawn({
        let location = location.clone();
        async move { acquire_at(&location).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished(), "the second waits while the first holds the lease");
    drop(first);
    let second = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("taken over within 5 s")
        .unwrap()
        .expect("the lease");
    assert!(second.held().await);

    // The server ends the lease's session (a restart, an administrator): the lease is lost, and
    // another scheduler can take it.
    let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let ended: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ended, 1);
    assert!(!second.held().await, "a lease whose session ended is lost");
    let third = tokio::time::timeout(Duration::from_secs(5), acquire_at(&location)).await.expect("free again");
    assert!(third.expect("the lease").held().await);
}
