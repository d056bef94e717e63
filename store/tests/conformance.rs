//! The conformance suite, each check listed once and run on every backend: SQLite in a
//! temporary directory, PostgreSQL in a database of its own per check.

use tenure_store::conformance::{self, TestDatabase};
use tenure_store::postgres::PgStore;
use tenure_store::sqlite::{Open, SqliteStore};

/// One handle on a fresh SQLite store, with the directory that holds it.
async fn sqlite() -> (tempfile::TempDir, Vec<SqliteStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("events.db"), Open::CreateIfMissing).expect("open");
    (dir, vec![store])
}

/// Two handles on one SQLite store: one process's writer, seen by two readers.
async fn sqlite_handles() -> (tempfile::TempDir, Vec<SqliteStore>) {
    let (dir, mut stores) = sqlite().await;
    stores.push(stores[0].clone());
    (dir, stores)
}

async fn postgres() -> (TestDatabase, Vec<PgStore>) {
    let database = TestDatabase::create().await;
    let store = PgStore::open(&database.url, Open::CreateIfMissing).await.expect("open");
    (database, vec![store])
}

/// Four handles, each with its own pool and writer, as four processes would have.
async fn postgres_handles() -> (TestDatabase, Vec<PgStore>) {
    let database = TestDatabase::create().await;
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(PgStore::open(&database.url, Open::CreateIfMissing).await.expect("open"));
    }
    (database, stores)
}

/// `one`: checks on one handle; `several`: checks on several handles of the same store.
macro_rules! conformance {
    (one: [$($check:ident),* $(,)?], several: [$($shared:ident),* $(,)?] $(,)?) => {
        conformance!(@backend sqlite, sqlite, sqlite_handles; [$($check),*]; [$($shared),*]);
        conformance!(@backend postgres, postgres, postgres_handles; [$($check),*]; [$($shared),*]);
    };
    (@backend $backend:ident, $one:ident, $several:ident; [$($check:ident),*]; [$($shared:ident),*]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let (_place, stores) = $one().await;
                    conformance::$check(&stores[0]).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $shared() {
                    let (_place, stores) = $several().await;
                    conformance::$shared(&stores).await;
                }
            )*
        }
    };
}

conformance! {
    one: [
        ordering,
        expectations,
        optimistic_concurrency,
        concurrent_writers_leave_no_gaps,
        atomic_multi_stream_append,
        a_failed_append_does_not_sink_its_neighbours,
        read_after_write,
        reading_some_types_of_all,
        scanning_all,
        subscription_catches_up_then_follows,
        large_streams,
        unknown_event_types_are_kept,
        hash_chains_link_each_stream,
    ],
    several: [readers_never_see_a_gap],
}
