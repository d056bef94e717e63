//! The conformance suite on the SQLite backend.

use tenure_store::conformance;
use tenure_store::sqlite::{Open, SqliteStore};

fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("events.db"), Open::CreateIfMissing).expect("open");
    (dir, store)
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $check() {
            let (_dir, store) = fresh();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_never_see_a_gap() {
    let (_dir, store) = fresh();
    conformance::readers_never_see_a_gap(&[store.clone(), store]).await;
}
