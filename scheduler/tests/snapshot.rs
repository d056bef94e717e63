//! A scheduler that starts from its snapshot knows what one that replays the whole log knows,
//! and a snapshot that is damaged, of another version, cut short or made from another log is
//! passed over for the full replay.

mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use support::{Outbox, World, world};
use tenure_domain::{AccountId, Lifecycle};
use tenure_scheduler::{Scheduler, Snapshots};
use tenure_store::conformance::Backend;
use tenure_store::{Keys, Location, Store};

type Running = Scheduler<Store, Keys, Outbox>;

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

/// What a scheduler knows: every account's lifecycle, by id, and when the next step is due.
fn known(scheduler: &mut Running) -> (Vec<(AccountId, Lifecycle)>, Option<DateTime<Utc>>) {
    let mut accounts: Vec<_> = scheduler.tracker().accounts().collect();
    accounts.sort_by_key(|(id, _)| id.0);
    (accounts, scheduler.tracker().next_due())
}

/// Twenty accounts, a pass half a year on (deactivations, warnings), a saved snapshot, and then
/// more: new accounts and sign-ins the snapshot does not hold.
async fn history(w: &World) -> DateTime<Utc> {
    let t0 = at(2026, 1, 15);
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(w.active(&format!("early{i}"), t0 + Duration::days(i * 9)).await);
    }
    let mut first = w.scheduler_from(w.snapshots()).await;
    assert_eq!(first.started_from(), None, "no snapshot yet: the whole log");
    let (summary, _) = first.pass(t0 + Duration::days(200), false).await.unwrap();
    assert!(summary.deactivated > 0 && summary.warned > 0, "{summary}");
    first.save_snapshot().await.unwrap();
    for i in 0..5 {
        w.active(&format!("late{i}"), t0 + Duration::days(210 + i)).await;
    }
    for id in &ids[15..] {
        assert!(w.sign_in(*id, t0 + Duration::days(205)).await);
    }
    t0
}

async fn a_start_from_the_snapshot_knows_what_a_full_replay_knows(w: World) {
    let t0 = history(&w).await;
    let mut from_snapshot = w.scheduler_from(w.snapshots()).await;
    assert!(from_snapshot.started_from().is_some(), "the saved snapshot is used");
    let mut replayed = w.scheduler_from(Snapshots::Nowhere).await;
    assert_eq!(known(&mut from_snapshot), known(&mut replayed));
    assert_eq!(from_snapshot.tracker().len(), 25);
    // And they act alike.
    let later = t0 + Duration::days(400);
    let mut planned = Vec::new();
    for scheduler in [&mut from_snapshot, &mut replayed] {
        let (summary, mut lines) = scheduler.pass(later, true).await.unwrap();
        lines.sort();
        planned.push((summary, lines));
    }
    assert_eq!(planned[0], planned[1]);
}

/// The snapshot's bytes as saved, and a way to put others in their place.
async fn saved(w: &World) -> Vec<u8> {
    match &w.place.location {
        Location::Embedded { data_dir, .. } => std::fs::read(data_dir.join("scheduler.snapshot")).unwrap(),
        Location::Postgres { url, .. } => {
            let client = tenure_store::postgres::pool(url).unwrap().get().await.unwrap();
            let rows = client.query("SELECT body FROM scheduler_snapshot ORDER BY part", &[]).await.unwrap();
            rows.iter().flat_map(|r| r.get::<_, Vec<u8>>(0)).collect()
        }
    }
}

async fn replace(w: &World, bytes: &[u8]) {
    match &w.place.location {
        Location::Embedded { data_dir, .. } => std::fs::write(data_dir.join("scheduler.snapshot"), bytes).unwrap(),
        Location::Postgres { url, .. } => {
            let client = tenure_store::postgres::pool(url).unwrap().get().await.unwrap();
            client.execute("DELETE FROM scheduler_snapshot", &[]).await.unwrap();
            client.execute("INSERT INTO scheduler_snapshot (part, body) VALUES (0, $1)", &[&bytes]).await.unwrap();
        }
    }
}

async fn a_damaged_old_short_or_foreign_snapshot_is_passed_over_for_the_full_replay(w: World) {
    history(&w).await;
    let good = saved(&w).await;
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x40;
    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&2u32.to_le_bytes());
    let short = good[..good.len() - 7].to_vec();
    let mut longer = good.clone();
    longer.push(0);
    // A snapshot as good as this one, of another store of the same size.
    let other =
        world(if matches!(w.place.location, Location::Embedded { .. }) { Backend::Sqlite } else { Backend::Postgres })
            .await;
    history(&other).await;
    let foreign = saved(&other).await;
    let expected = known(&mut w.scheduler_from(Snapshots::Nowhere).await);
    for (what, bytes) in [
        ("a flipped bit", flipped),
        ("another version", newer),
        ("cut short", short),
        ("a byte too many", longer),
        ("made from another log", foreign),
        ("not a snapshot", b"hello".to_vec()),
    ] {
        replace(&w, &bytes).await;
        let mut started = w.scheduler_from(w.snapshots()).await;
        assert_eq!(started.started_from(), None, "{what}: passed over");
        assert_eq!(known(&mut started), expected, "{what}: the full replay's view");
    }
    replace(&w, &good).await;
    assert!(w.scheduler_from(w.snapshots()).await.started_from().is_some(), "the good one still serves");
}

tenure_store::on_both_backends! {
    super::world;
    a_start_from_the_snapshot_knows_what_a_full_replay_knows,
    a_damaged_old_short_or_foreign_snapshot_is_passed_over_for_the_full_replay,
}
