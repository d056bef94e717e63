//! An acknowledged append is never lost, and an unacknowledged one is all or nothing: a child
//! process appends under load and reports each acknowledgement; the parent kills it with
//! SIGKILL mid-flight, reopens the store and checks every acknowledged event is there.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tenure_store::conformance::{TestDatabase, event};
use tenure_store::sqlite::Open;
use tenure_store::{EventStore, Expected, Location, Store, chain};
use uuid::Uuid;

/// The store the child appends to, as `--store` would name it.
const CHILD_STORE: &str = "TENURE_CRASH_CHILD_STORE";

async fn open(url: &str, mode: Open) -> Store {
    let location = Location::parse(Some(url), std::path::Path::new("/nonexistent")).unwrap();
    location.open_events(mode).await.unwrap()
}

/// The writing process. It only runs when the parent starts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of the kill -9 tests"]
async fn crash_child_appends_until_killed() {
    let url = std::env::var(CHILD_STORE).expect("started by the parent test");
    let store = open(&url, Open::CreateIfMissing).await;
    let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let writers = (0..32).map(|w| {
        let (store, out) = (store.clone(), out.clone());
        tokio::spawn(async move {
            for i in 0.. {
                let size = 1 + (w + i) % 3;
                let correlation_id = Uuid::now_v7();
                let batch: Vec<_> = (0..size)
                    .map(|_| tenure_store::NewEvent {
                        correlation_id,
                        ..event("Crash", format!("{{\"of\":{size}}}").as_bytes())
                    })
                    .collect();
                let ids: Vec<String> = batch.iter().map(|e| e.id.to_string()).collect();
                let stream = format!("crash-{}", w % 8);
                let appended = store.append(&stream, Expected::Any, batch).await.unwrap();
                let mut out = out.lock().unwrap();
                writeln!(out, "ack {} {}", appended.position, ids.join(",")).unwrap();
                out.flush().unwrap();
            }
        })
    });
    futures_util::future::join_all(writers).await;
}

/// Records the event ids of one `ack <position> <id>,<id>…` line; false for anything else.
fn record_ack(line: &str, acknowledged: &mut HashMap<Uuid, u64>) -> bool {
    let Some((position, ids)) = line.strip_prefix("ack ").and_then(|a| a.split_once(' ')) else { return false };
    let Ok(position) = position.parse::<u64>() else { return false };
    let Ok(ids) = ids.split(',').map(str::parse).collect::<Result<Vec<Uuid>, _>>() else { return false };
    acknowledged.extend(ids.into_iter().map(|id| (id, position)));
    true
}

#[tokio::test]
async fn an_acknowledged_append_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    kill_9_rounds(&format!("sqlite://{}", dir.path().join("events.db").display())).await;
}

#[tokio::test]
async fn an_acknowledged_append_survives_kill_9_on_postgres() {
    let database = TestDatabase::create().await;
    kill_9_rounds(&database.url).await;
}

/// Three rounds of: a child appends with 32 writers, and is killed mid-flight.
async fn kill_9_rounds(url: &str) {
    let mut acknowledged: HashMap<Uuid, u64> = HashMap::new();
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child_appends_until_killed", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_STORE, url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let started = Instant::now();
        let mut acks_this_round = 0;
        // Kill at a different load each round, while appends are in flight.
        let kill_after = 500 + round * 700;
        while acks_this_round < kill_after && started.elapsed() < Duration::from_secs(60) {
            let Some(Ok(line)) = lines.next() else { break };
            if record_ack(&line, &mut acknowledged) {
                acks_this_round += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        // Acknowledgements printed before the kill landed still count; the last line may be cut.
        for line in lines.map_while(Result::ok) {
            record_ack(&line, &mut acknowledged);
        }
        child.wait().unwrap();
        assert!(acks_this_round >= kill_after, "round {round}: the child stopped early after {acks_this_round} acks");

        let store = open(url, Open::MustExist).await;
        let all = store.read_all(1, usize::MAX >> 1).await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.position).collect::<Vec<_>>(),
            (1..=all.len() as u64).collect::<Vec<_>>(),
            "no gaps"
        );
        let stored: HashMap<Uuid, u64> = all.iter().map(|e| (e.id, e.position)).collect();
        for (id, acked_at) in &acknowledged {
            let position = stored.get(id).unwrap_or_else(|| panic!("round {round}: acknowledged event {id} is lost"));
            assert!(position <= acked_at, "event {id} moved after its acknowledgement");
        }
        // An append is all or nothing: every correlation id has all its events.
        let mut by_append: HashMap<Uuid, (usize, usize)> = HashMap::new();
        for e in &all {
            let size: serde_json::Value = serde_json::from_slice(&e.data).unwrap();
            let entry = by_append.entry(e.correlation_id).or_insert((0, size["of"].as_u64().unwrap() as usize));
            entry.0 += 1;
        }
        assert!(by_append.values().all(|(found, size)| found == size), "a partial append survived the crash");
        for s in 0..8 {
            let stream = store.read_stream(&format!("crash-{s}"), 1).await.unwrap();
            assert_eq!(chain::verify(&stream), Ok(stream.len()));
        }
    }
    assert!(acknowledged.len() > 3000);
}
