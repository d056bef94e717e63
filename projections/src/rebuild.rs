//! Rebuilds: replay `$all` from position 0 into memory, write a fresh copy of the tables
//! (`<table>__next`), then, under the write lock, apply what arrived meanwhile and rename the
//! copy into place with its checkpoint, in one transaction. The serving copy answers queries
//! until that moment; a rebuild that is interrupted (Ctrl-C, kill -9) leaves it untouched, and
//! the next rebuild starts by dropping the half-written copy.

use std::time::{Duration, Instant};

use rusqlite::{TransactionBehavior, params};
use tenure_store::{Envelope, EventStore, Position, RecordedEvent, codec};
use tokio::runtime::Handle;

use crate::db::{self, Backend, ProjectionDb, ProjectionError, SqliteDb, read_checkpoint};
use crate::rows::{self, MemoryRows, RowError};
use crate::schema::{self, NEXT, Projection, SqlRows};

const PAGE: usize = 8192;
/// Pages read and decoded ahead of the one being applied.
const READ_AHEAD: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildReport {
    /// Events read from the store, relevant or not.
    pub events: u64,
    /// The checkpoint of the swapped-in copy.
    pub position: Position,
    pub elapsed: Duration,
    /// Reading and applying every event in memory.
    pub replay: Duration,
    /// Writing the fresh copy.
    pub write: Duration,
    /// Catching up and swapping it in.
    pub swap: Duration,
}

/// Where a rebuild is, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Replaying `$all` into memory: `position` of `head` so far.
    Replay { position: Position, head: Position },
    /// Writing the fresh copy.
    Writing,
    /// Catching up with what arrived meanwhile and swapping the copy in.
    Swapping,
}

/// Rebuilds `projections`, telling `progress` where it is.
pub async fn rebuild<S: EventStore>(
    store: &S,
    db: &ProjectionDb,
    projections: &[Projection],
    mut progress: impl FnMut(Phase),
) -> Result<RebuildReport, ProjectionError> {
    let started = Instant::now();
    let mut locks = Vec::new();
    for projection in projections {
        let lock = db.try_lock(&format!("rebuild-{}", projection.name())).await?;
        locks.push(lock.ok_or(ProjectionError::RebuildRunning(projection.name()))?);
    }

    // Replay. Pages are read and decoded on other threads, several ahead, and applied here in
    // order: decoding costs as much as reading, and both cores are put to work. Page k covers
    // positions [1 + k·PAGE, 1 + (k+1)·PAGE); `read_all(from, PAGE)` returns at least that range
    // even where positions have gaps.
    let fetch = |from: Position| {
        let (store, wanted) = (store.clone(), projections.to_vec());
        tokio::spawn(async move {
            let page = store.read_all(from, PAGE).await?;
            tokio::task::spawn_blocking(move || decode_page(page, from, &wanted))
                .await
                .map_err(|e| ProjectionError::Db(format!("decoding failed: {e}")))?
        })
    };
    let mut memory = MemoryRows::default();
    let mut next: Position = 1;
    let mut events = 0u64;
    let mut head = store.head().await?;
    let mut in_flight = std::collections::VecDeque::new();
    let mut ahead: Position = 1;
    while in_flight.len() < READ_AHEAD {
        in_flight.push_back(fetch(ahead));
        ahead += PAGE as Position;
    }
    while let Some(pending) = in_flight.pop_front() {
        let page = pending.await.map_err(|e| ProjectionError::Db(format!("reader failed: {e}")))??;
        let complete = page.complete;
        if complete {
            in_flight.push_back(fetch(ahead));
            ahead += PAGE as Position;
        } else {
            in_flight.iter().for_each(|task| task.abort());
            in_flight.clear();
        }
        events += page.seen;
        let Some(last) = page.last else { continue };
        memory = tokio::task::spawn_blocking(move || {
            for (projection, envelope) in &page.envelopes {
                let applied = match projection {
                    Projection::Accounts => rows::apply_account(&mut memory, envelope),
                    Projection::OrgWidgets => rows::apply_org(&mut memory, envelope),
                };
                if let Err(RowError::Apply(reason)) = applied {
                    return Err(db::poison(*projection, envelope, reason.to_string()));
                }
            }
            Ok(memory)
        })
        .await
        .map_err(|e| ProjectionError::Db(format!("replay failed: {e}")))??;
        next = last + 1;
        head = head.max(last);
        progress(Phase::Replay { position: last, head });
    }
    let replayed = started.elapsed();
    progress(Phase::Writing);

    let (events, position, written_at) = match db.backend() {
        Backend::Sqlite(db) => {
            let (events_after, position, written_at) =
                write_and_swap_sqlite(store, db, projections, memory, next, started, &mut progress).await?;
            (events + events_after, position, written_at)
        }
        Backend::Postgres(db) => {
            db.write_copy(projections, &memory).await?;
            let written_at = started.elapsed();
            progress(Phase::Swapping);
            let (events_after, position) = db.swap(store, projections, next).await?;
            (events + events_after, position, written_at)
        }
    };
    drop(locks);
    let elapsed = started.elapsed();
    Ok(RebuildReport {
        events,
        position,
        elapsed,
        replay: replayed,
        write: written_at - replayed,
        swap: elapsed - written_at,
    })
}

/// The SQLite copy: written beside the serving tables, then caught up and renamed into place
/// under the write lock. Returns the events read while catching up, the new checkpoint and when
/// the copy was written.
async fn write_and_swap_sqlite<S: EventStore>(
    store: &S,
    db: &SqliteDb,
    projections: &[Projection],
    memory: MemoryRows,
    mut next: Position,
    started: Instant,
    progress: &mut impl FnMut(Phase),
) -> Result<(u64, Position, Duration), ProjectionError> {
    let projections = projections.to_vec();
    let written = projections.clone();
    db.write(move |c| {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for projection in &written {
            drop_next(&tx, *projection)?;
            tx.execute_batch(&projection.create_tables(NEXT))?;
        }
        if written.contains(&Projection::Accounts) {
            let mut insert = tx.prepare_cached(&schema::insert_account_sql(NEXT))?;
            // In key order, the B-tree only ever grows at its right edge.
            let mut rows: Vec<_> = memory.accounts.values().collect();
            rows.sort_unstable_by_key(|row| row.account_id);
            for row in rows {
                schema::write_account(&mut insert, row)?;
            }
        }
        if written.contains(&Projection::OrgWidgets) {
            let mut insert = tx.prepare_cached(&schema::insert_item_sql(NEXT))?;
            for item in memory.items.values() {
                schema::write_item(&mut insert, item)?;
            }
        }
        for projection in &written {
            let generation = read_checkpoint(&tx, *projection)?.generation + 1;
            tx.execute_batch(&projection.create_indexes(NEXT, generation))?;
        }
        tx.commit()?;
        Ok(())
    })
    .await?;

    let written_at = started.elapsed();
    progress(Phase::Swapping);
    let mut events = 0u64;
    let handle = Handle::current();
    let store = store.clone();
    let swapped = db
        .write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // What arrived while the copy was written; the live runner waits for this lock.
            loop {
                let page = handle.block_on(store.read_all(next, PAGE))?;
                let Some(last) = page.last().map(|e| e.position) else { break };
                let mut rows = SqlRows { connection: &tx, suffix: NEXT };
                events += page.len() as u64;
                for recorded in page {
                    let relevant: Vec<Projection> =
                        projections.iter().copied().filter(|p| p.handles(&recorded.stream)).collect();
                    let Some(first) = relevant.first() else { continue };
                    let envelope = decode(*first, recorded)?;
                    for projection in relevant {
                        db::apply(&mut rows, projection, &envelope)?;
                    }
                }
                next = last + 1;
            }
            for projection in &projections {
                let generation = read_checkpoint(&tx, *projection)?.generation + 1;
                for table in projection.tables() {
                    tx.execute_batch(&format!("DROP TABLE {table}; ALTER TABLE {table}{NEXT} RENAME TO {table};"))?;
                }
                tx.execute(
                    "UPDATE checkpoints SET position = ?2, generation = ?3, failed_position = NULL, error = NULL \
                     WHERE name = ?1",
                    params![projection.name(), (next - 1) as i64, generation as i64],
                )?;
            }
            tx.commit()?;
            Ok((events, next - 1))
        })
        .await;
    let (events, position) = swapped?;
    Ok((events, position, written_at))
}

pub(crate) fn decode(projection: Projection, recorded: RecordedEvent) -> Result<Envelope, ProjectionError> {
    let (event_id, position, event_type) = (recorded.id, recorded.position, recorded.event_type.clone());
    codec::decode_sealed(recorded).map_err(|error| ProjectionError::Poison {
        projection: projection.name(),
        event_id,
        position,
        reason: format!("{event_type} event: {error}"),
    })
}

/// One page of the replay, decoded: the events of its range that concern `projections`.
struct DecodedPage {
    envelopes: Vec<(Projection, Envelope)>,
    /// Events in the page's range, relevant or not.
    seen: u64,
    last: Option<Position>,
    /// Whether the page saw its whole range; if not, the replay stops there and the swap's
    /// catch-up reads the rest in order.
    complete: bool,
}

fn decode_page(
    page: Vec<RecordedEvent>,
    from: Position,
    projections: &[Projection],
) -> Result<DecodedPage, ProjectionError> {
    let end = from + PAGE as Position;
    // The range is fully known when the read was full or reached past it; otherwise the page
    // met the head, and later pages may have been read after more events arrived.
    let complete = page.len() == PAGE || page.last().is_some_and(|r| r.position >= end);
    let mut decoded = DecodedPage { envelopes: Vec::new(), seen: 0, last: None, complete };
    for recorded in page.into_iter().take_while(|r| r.position < from + PAGE as Position) {
        decoded.seen += 1;
        decoded.last = Some(recorded.position);
        // The projections read disjoint kinds of stream.
        if let Some(projection) = projections.iter().copied().find(|p| p.handles(&recorded.stream)) {
            decoded.envelopes.push((projection, decode(projection, recorded)?));
        }
    }
    Ok(decoded)
}

fn drop_next(tx: &rusqlite::Connection, projection: Projection) -> rusqlite::Result<()> {
    for table in projection.tables() {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {table}{NEXT};"))?;
    }
    Ok(())
}
