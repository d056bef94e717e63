//! The conformance suite every event-store backend must pass. Each check takes a fresh, empty
//! store; `tests/conformance.rs` lists them once and runs each on every backend.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use uuid::Uuid;

use crate::event_store::*;

/// A test event; the events of one call to `events` share a correlation id.
pub fn event(event_type: &str, data: &[u8]) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        event_type: event_type.to_string(),
        schema_version: 1,
        data: data.to_vec(),
        recorded_at: DateTime::<Utc>::from_timestamp_micros(1_767_225_600_123_456).expect("valid time"),
        actor: "operator:conformance".into(),
        correlation_id: Uuid::now_v7(),
    }
}

fn events(n: usize, event_type: &str) -> Vec<NewEvent> {
    let correlation_id = Uuid::now_v7();
    (0..n).map(|i| NewEvent { correlation_id, ..event(event_type, format!("{{\"n\":{i}}}").as_bytes()) }).collect()
}

/// Streams keep their order and versions; `$all` keeps the global order of appends; every
/// field round-trips byte for byte.
pub async fn ordering<S: EventStore>(store: &S) {
    let a1 = events(3, "A");
    store.append("s-a", Expected::NoStream, a1.clone()).await.expect("append a");
    let b1 = events(2, "B");
    store.append("s-b", Expected::NoStream, b1.clone()).await.expect("append b");
    let a2 = events(1, "A");
    store.append("s-a", Expected::Exact(3), a2.clone()).await.expect("append a again");

    let stream_a = store.read_stream("s-a", 1).await.expect("read a");
    assert_eq!(stream_a.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let sent: Vec<_> = a1.iter().chain(&a2).collect();
    for (stored, sent) in stream_a.iter().zip(sent) {
        assert_eq!(stored.id, sent.id);
        assert_eq!(stored.data, sent.data);
        assert_eq!(stored.event_type, sent.event_type);
        assert_eq!(stored.recorded_at, sent.recorded_at);
        assert_eq!(stored.actor, sent.actor);
        assert_eq!(stored.correlation_id, sent.correlation_id);
    }
    assert_eq!(store.read_stream("s-a", 3).await.expect("read from 3").len(), 2);
    let all = store.read_all(1, 100).await.expect("read all");
    assert_eq!(all.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    assert_eq!(all.iter().map(|e| e.stream.as_str()).collect::<Vec<_>>(), ["s-a", "s-a", "s-a", "s-b", "s-b", "s-a"]);
    assert_eq!(store.read_all(5, 1).await.expect("page").len(), 1);
    assert_eq!(store.head().await.expect("head"), 6);
    assert!(store.read_stream("nothing-here", 1).await.expect("read empty").is_empty());
}

/// Wrong expectations are conflicts that report the actual version and write nothing.
pub async fn expectations<S: EventStore>(store: &S) {
    store.append("s", Expected::NoStream, events(2, "E")).await.expect("first");
    let conflict = store.append("s", Expected::NoStream, events(1, "E")).await.unwrap_err();
    assert!(matches!(conflict, AppendError::Conflict { actual: 2, .. }), "{conflict:?}");
    let conflict = store.append("s", Expected::Exact(1), events(1, "E")).await.unwrap_err();
    assert!(matches!(conflict, AppendError::Conflict { actual: 2, .. }), "{conflict:?}");
    let conflict = store.append("s", Expected::Exact(5), events(1, "E")).await.unwrap_err();
    assert!(matches!(conflict, AppendError::Conflict { actual: 2, .. }), "{conflict:?}");
    let conflict = store.append("new", Expected::Exact(1), events(1, "E")).await.unwrap_err();
    assert!(matches!(conflict, AppendError::Conflict { actual: 0, .. }), "{conflict:?}");
    // Version 0 names no event: an empty stream is expected with `NoStream`, not `Exact(0)`.
    for batch in [events(1, "E"), vec![]] {
        let conflict = store.append("new", Expected::Exact(0), batch).await.unwrap_err();
        assert!(matches!(conflict, AppendError::Conflict { actual: 0, .. }), "{conflict:?}");
    }
    let appended = store.append("s", Expected::Any, events(1, "E")).await.expect("any");
    assert_eq!(appended.version, 3);
    assert_eq!(store.head().await.expect("head"), 3);
    // An append of nothing still checks its expectation.
    let empty = store.append("s", Expected::NoStream, vec![]).await.unwrap_err();
    assert!(matches!(empty, AppendError::Conflict { actual: 3, .. }), "{empty:?}");
    let empty = store.append("s", Expected::Exact(2), vec![]).await.unwrap_err();
    assert!(matches!(empty, AppendError::Conflict { actual: 3, .. }), "{empty:?}");
    assert_eq!(store.append("s", Expected::Exact(3), vec![]).await.expect("holds").version, 3);
    assert_eq!(store.append("s", Expected::Exact(3), events(1, "E")).await.expect("after").version, 4);
}

/// 100 appenders race for the same expected version: exactly one wins each round, and the
/// losers write nothing.
pub async fn optimistic_concurrency<S: EventStore>(store: &S) {
    const WRITERS: usize = 100;
    const ROUNDS: u64 = 5;
    for round in 0..ROUNDS {
        let expected = if round == 0 { Expected::NoStream } else { Expected::Exact(round) };
        let attempts = (0..WRITERS).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.append("contested", expected, vec![event("Race", b"{}")]).await })
        });
        let results = futures_util::future::join_all(attempts).await;
        let mut wins = 0;
        for result in results {
            match result.expect("task") {
                Ok(appended) => {
                    wins += 1;
                    assert_eq!(appended.version, round + 1);
                }
                Err(AppendError::Conflict { actual, .. }) => assert_eq!(actual, round + 1),
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
    let stream = store.read_stream("contested", 1).await.expect("read");
    assert_eq!(stream.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=ROUNDS).collect::<Vec<_>>());
    assert_eq!(store.head().await.expect("head"), ROUNDS);
}

/// Many writers on many streams: global positions are exactly 1..=n with no gap or duplicate,
/// stream versions likewise, and what an append acknowledged is what a reader finds.
pub async fn concurrent_writers_leave_no_gaps<S: EventStore>(store: &S) {
    const WRITERS: usize = 64;
    const APPENDS: usize = 20;
    let tasks = (0..WRITERS).map(|writer| {
        let store = store.clone();
        tokio::spawn(async move {
            let stream = format!("w-{}", writer % 8);
            let mut acknowledged = Vec::new();
            for _ in 0..APPENDS {
                let batch = events(1 + writer % 3, "W");
                let ids: Vec<Uuid> = batch.iter().map(|e| e.id).collect();
                let appended = store.append(&stream, Expected::Any, batch).await.expect("append");
                acknowledged.push((ids, appended));
            }
            acknowledged
        })
    });
    let acknowledged: Vec<_> =
        futures_util::future::join_all(tasks).await.into_iter().flat_map(|r| r.expect("task")).collect();
    let all = store.read_all(1, usize::MAX >> 1).await.expect("read all");
    let total: usize = acknowledged.iter().map(|(ids, _)| ids.len()).sum();
    assert_eq!(all.len(), total);
    assert_eq!(all.iter().map(|e| e.position).collect::<Vec<_>>(), (1..=total as u64).collect::<Vec<_>>());
    for (ids, appended) in &acknowledged {
        let last = all.iter().find(|e| e.position == appended.position).expect("acknowledged position exists");
        assert_eq!(last.id, *ids.last().expect("non-empty"));
        assert_eq!(last.version, appended.version);
    }
    for s in 0..8 {
        let stream = store.read_stream(&format!("w-{s}"), 1).await.expect("read");
        assert_eq!(stream.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=stream.len() as u64).collect::<Vec<_>>());
    }
    let ids: HashSet<Uuid> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), total, "no event stored twice");
}

/// An append to several streams is all or nothing.
pub async fn atomic_multi_stream_append<S: EventStore>(store: &S) {
    store.append("taken", Expected::NoStream, events(1, "T")).await.expect("setup");
    let refused = store
        .append_atomic(vec![
            StreamAppend { stream: "fresh".into(), expected: Expected::NoStream, events: events(2, "F") },
            StreamAppend { stream: "taken".into(), expected: Expected::NoStream, events: events(1, "T") },
        ])
        .await;
    assert!(matches!(refused, Err(AppendError::Conflict { ref stream, .. }) if stream == "taken"), "{refused:?}");
    assert!(store.read_stream("fresh", 1).await.expect("read").is_empty(), "nothing of a refused append is stored");
    assert_eq!(store.head().await.expect("head"), 1);
    let appended = store
        .append_atomic(vec![
            StreamAppend { stream: "fresh".into(), expected: Expected::NoStream, events: events(2, "F") },
            StreamAppend { stream: "taken".into(), expected: Expected::Exact(1), events: events(1, "T") },
        ])
        .await
        .expect("atomic append");
    assert_eq!(appended.iter().map(|a| a.version).collect::<Vec<_>>(), [2, 2]);
    assert_eq!(store.head().await.expect("head"), 4);
}

/// Appends racing in one group commit fail alone: a conflict in one does not undo another.
pub async fn a_failed_append_does_not_sink_its_neighbours<S: EventStore>(store: &S) {
    let tasks = (0..50).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            // Every other append is doomed: its stream cannot be at version 7.
            let expected = if i % 2 == 0 { Expected::NoStream } else { Expected::Exact(7) };
            store.append(&format!("n-{i}"), expected, events(2, "N")).await
        })
    });
    let results = futures_util::future::join_all(tasks).await;
    for (i, result) in results.into_iter().enumerate() {
        let result = result.expect("task");
        assert_eq!(result.is_ok(), i % 2 == 0, "append {i}: {result:?}");
        let stored = store.read_stream(&format!("n-{i}"), 1).await.expect("read").len();
        assert_eq!(stored, if i % 2 == 0 { 2 } else { 0 });
    }
    assert_eq!(store.head().await.expect("head"), 50);
}

/// What an append acknowledged, the next read sees.
pub async fn read_after_write<S: EventStore>(store: &S) {
    for i in 0..200u64 {
        let appended = store.append("raw", Expected::Any, events(1, "R")).await.expect("append");
        assert_eq!(appended.version, i + 1);
        assert_eq!(store.read_stream("raw", i + 1).await.expect("read").len(), 1);
        assert_eq!(store.head().await.expect("head"), appended.position);
    }
}

/// Reading `$all` for some event types: only those, in order, at most `limit`, across pages.
pub async fn reading_some_types_of_all<S: EventStore>(store: &S) {
    for i in 0..3000u64 {
        let kind = if i % 7 == 0 {
            "Wanted"
        } else if i % 7 == 3 {
            "AlsoWanted"
        } else {
            "Other"
        };
        store.append(&format!("s-{}", i % 13), Expected::Any, vec![event(kind, b"{}")]).await.expect("append");
    }
    const TYPES: &[&str] = &["Wanted", "AlsoWanted"];
    let all = store.read_all(1, 10_000).await.expect("read");
    let expected: Vec<u64> =
        all.iter().filter(|e| TYPES.contains(&e.event_type.as_str())).map(|e| e.position).collect();
    let mut found = Vec::new();
    let mut next = 1;
    loop {
        let page = store.read_all_of_types(next, 100, TYPES).await.expect("read some types");
        assert!(page.len() <= 100);
        let Some(last) = page.last() else { break };
        next = last.position + 1;
        found.extend(page.iter().map(|e| e.position));
    }
    assert_eq!(found, expected);
    assert_eq!(expected.len(), 858);
}

/// A scan hands over the same events as `read_all`, in order, page by page, with the columns a
/// fold reads.
pub async fn scanning_all<S: EventStore>(store: &S) {
    for i in 0..300u32 {
        let data = format!("{{\"n\":{i}}}");
        store
            .append(&format!("s-{}", i % 7), Expected::Any, vec![event("Scanned", data.as_bytes())])
            .await
            .expect("append");
    }
    let all = store.read_all(1, 10_000).await.expect("read");
    let mut scanned: Vec<RecordedEvent> = Vec::new();
    let mut next = 1;
    loop {
        let page = store
            .scan_all(next, 64, Vec::new(), |page: &mut Vec<(RecordedEvent, Vec<u8>)>, event| {
                page.push((event.to_folded(), event.data.to_vec()))
            })
            .await
            .expect("scan");
        assert!(page.len() <= 64);
        let Some((last, _)) = page.last() else { break };
        next = last.position + 1;
        scanned.extend(page.into_iter().map(|(event, data)| RecordedEvent { data, ..event }));
    }
    assert_eq!(scanned.len(), 300);
    for (scanned, read) in scanned.iter().zip(&all) {
        let folded = RecordedEvent {
            actor: String::new(),
            correlation_id: Uuid::nil(),
            prev_hash: [0; 32],
            hash: [0; 32],
            ..read.clone()
        };
        assert_eq!(scanned, &folded);
    }
    let count = store.scan_all(290, 5, 0usize, |count, _| *count += 1).await.expect("scan the tail");
    assert_eq!(count, 5);
    assert_eq!(store.scan_all(301, 5, 0usize, |count, _| *count += 1).await.expect("past the head"), 0);
}

/// A subscription delivers the history first, then live appends, in order, without loss.
pub async fn subscription_catches_up_then_follows<S: EventStore>(store: &S) {
    store.append("sub", Expected::NoStream, events(5, "Past")).await.expect("history");
    let mut subscription = Box::pin(store.subscribe_all(3));
    for position in 3..=5 {
        let event = subscription.next().await.expect("open").expect("event");
        assert_eq!(event.position, position);
    }
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                store.append("sub", Expected::Any, events(1, "Live")).await.expect("live append");
            }
        })
    };
    for position in 6..=25 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), subscription.next())
            .await
            .expect("live event within 10 s")
            .expect("open")
            .expect("event");
        assert_eq!(event.position, position);
        assert_eq!(event.event_type, "Live");
    }
    writer.await.expect("writer");
}

/// Long streams read back whole and in order.
pub async fn large_streams<S: EventStore>(store: &S) {
    const N: usize = 10_000;
    let data = vec![b'x'; 512];
    for chunk in 0..(N / 500) {
        let batch: Vec<_> = (0..500).map(|_| event("Big", &data)).collect();
        let expected = if chunk == 0 { Expected::NoStream } else { Expected::Exact((chunk * 500) as u64) };
        store.append("big", expected, batch).await.expect("append");
    }
    let stream = store.read_stream("big", 1).await.expect("read");
    assert_eq!(stream.len(), N);
    assert!(stream.iter().enumerate().all(|(i, e)| e.version == i as u64 + 1 && e.data == data));
    assert_eq!(store.read_stream("big", 9_990).await.expect("tail").len(), 11);
}

/// The store keeps types and payloads it does not understand: decoding is the codec's
/// business, and nothing is lost because a reader is older than a writer.
pub async fn unknown_event_types_are_kept<S: EventStore>(store: &S) {
    let strange = NewEvent { schema_version: 99, ..event("FromTheFuture", &[0, 159, 146, 150, 255]) };
    store.append("odd", Expected::NoStream, vec![strange.clone()]).await.expect("append");
    let stored = store.read_stream("odd", 1).await.expect("read");
    assert_eq!(stored[0].event_type, "FromTheFuture");
    assert_eq!(stored[0].schema_version, 99);
    assert_eq!(stored[0].data, strange.data);
}

/// Every appended event carries the hash chain of its stream.
pub async fn hash_chains_link_each_stream<S: EventStore>(store: &S) {
    store.append("c", Expected::NoStream, events(3, "C")).await.expect("append");
    store.append("d", Expected::NoStream, events(1, "D")).await.expect("append");
    store.append("c", Expected::Exact(3), events(2, "C")).await.expect("append");
    let stream = store.read_stream("c", 1).await.expect("read");
    assert_eq!(crate::chain::verify(&stream), Ok(5));
    assert_eq!(stream[0].prev_hash, crate::chain::GENESIS);
    assert_eq!(stream[3].prev_hash, stream[2].hash);
}

/// Readers polling `$all` while many writers append never see a position before every earlier
/// one is visible: each page they read starts exactly where their last one ended. `stores` are
/// handles that share one store but not a process-local writer (separate connections pools for
/// PostgreSQL), so the ordering between writers is the backend's, not the handle's.
pub async fn readers_never_see_a_gap<S: EventStore>(stores: &[S]) {
    const WRITERS: usize = 48;
    const APPENDS: usize = 25;
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = stores[writer % stores.len()].clone();
            tokio::spawn(async move {
                for _ in 0..APPENDS {
                    let stream = format!("g-{}", writer % 12);
                    store.append(&stream, Expected::Any, events(1 + writer % 4, "G")).await.expect("append");
                }
            })
        })
        .collect();
    let total: u64 = (0..WRITERS).map(|w| (1 + w % 4) as u64 * APPENDS as u64).sum();
    let readers: Vec<_> = (0..4)
        .map(|reader| {
            let store = stores[reader % stores.len()].clone();
            tokio::spawn(async move {
                let mut next = 1u64;
                while next <= total {
                    let page = store.read_all(next, 64).await.expect("read all");
                    for event in &page {
                        assert_eq!(
                            event.position, next,
                            "reader {reader} saw position {} before {next}",
                            event.position
                        );
                        next += 1;
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    for reader in readers {
        reader.await.expect("reader");
    }
}

/// A fresh PostgreSQL database for one test, dropped when the guard goes. The server is the
/// one `TENURE_TEST_POSTGRES` names (default: the local server, as `./scripts/test` starts it);
/// a test that cannot reach it fails with the reason.
pub struct TestDatabase {
    pub url: String,
    _scratch: crate::postgres::ScratchDatabase,
}

pub const DEFAULT_TEST_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let admin_url = std::env::var("TENURE_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_TEST_POSTGRES.into());
        let scratch = crate::postgres::ScratchDatabase::create(&admin_url, "tenure_test").await.unwrap_or_else(|e| {
            panic!("{e}; start PostgreSQL, or run ./scripts/test, which does (TENURE_TEST_POSTGRES names the server)")
        });
        TestDatabase { url: scratch.url.clone(), _scratch: scratch }
    }
}

/// The backends every suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh place for one test's state on `backend`: a data directory and, on PostgreSQL, a
/// database of its own. Both go with the value.
pub struct TestLocation {
    pub location: crate::Location,
    pub dir: tempfile::TempDir,
    pub database: Option<TestDatabase>,
}

impl TestLocation {
    pub async fn create(backend: Backend) -> TestLocation {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create().await),
        };
        let location =
            crate::Location::parse(database.as_ref().map(|d| d.url.as_str()), dir.path()).expect("a location");
        TestLocation { location, dir, database }
    }
}

/// Each scenario on both backends: `on_both_backends!(super::setup; a, b)` makes the tests
/// `sqlite::a`, `postgres::a`, … each running `a(setup(backend).await)`.
#[macro_export]
macro_rules! on_both_backends {
    ($setup:path; $($scenario:ident),* $(,)?) => {
        mod sqlite {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                super::$scenario($setup($crate::conformance::Backend::Sqlite).await).await
            }
        )*}
        mod postgres {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                super::$scenario($setup($crate::conformance::Backend::Postgres).await).await
            }
        )*}
    };
}
