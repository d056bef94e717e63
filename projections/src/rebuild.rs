//! Rebuilds: replay `$all` from position 0 into memory, write a fresh copy of the tables
//! (`<table>__next`), then, under the write lock, apply what arrived meanwhile and rename the
//! copy into place with its checkpoint, in one transaction. The serving copy answers queries
//! until that moment; a rebuild that is interrupted (Ctrl-C, kill -9) leaves it untouched, and
//! the next rebuild starts by dropping the half-written copy.

use std::time::{Duration, Instant};

use rusqlite::{TransactionBehavior, params};
use tenure_store::{Envelope, EventStore, Position, RecordedEvent, codec};
use tokio::runtime::Handle;

use crate::db::{self, ProjectionDb, ProjectionError, read_checkpoint};
use crate::rows::{self, MemoryRows, RowError};
use crate::schema::{self, NEXT, Projection, SqlRows};

const PAGE: usize = 8192;

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

/// Rebuilds `projections`; `progress(position, head)` is called after each page read.
pub async fn rebuild<S: EventStore>(
    store: &S,
    db: &ProjectionDb,
    projections: &[Projection],
    mut progress: impl FnMut(Position, Position),
) -> Result<RebuildReport, ProjectionError> {
    let started = Instant::now();
    let mut locks = Vec::new();
    for projection in projections {
        let lock = db.try_lock(&format!("rebuild-{}", projection.name()))?;
        locks.push(lock.ok_or(ProjectionError::RebuildRunning(projection.name()))?);
    }

    // Replay: the next page is read on another thread while this one is applied.
    let fetch = |from: Position| {
        let store = store.clone();
        tokio::spawn(async move { store.read_all(from, PAGE).await })
    };
    let mut memory = MemoryRows::default();
    let mut next: Position = 1;
    let mut events = 0u64;
    let mut head = store.head().await?;
    let mut pending = fetch(next);
    loop {
        let page = pending.await.map_err(|e| ProjectionError::Db(format!("reader failed: {e}")))??;
        let Some(last) = page.last().map(|e| e.position) else { break };
        pending = fetch(last + 1);
        events += page.len() as u64;
        let wanted = projections.to_vec();
        memory = tokio::task::spawn_blocking(move || {
            for recorded in page {
                apply_to_memory(&mut memory, &wanted, recorded)?;
            }
            Ok::<_, ProjectionError>(memory)
        })
        .await
        .map_err(|e| ProjectionError::Db(format!("replay failed: {e}")))??;
        next = last + 1;
        head = head.max(last);
        progress(last, head);
    }
    let replayed = started.elapsed();

    let projections = projections.to_vec();
    let written = projections.clone();
    db.write(move |c| {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for projection in &written {
            drop_next(&tx, *projection)?;
            tx.execute_batch(&projection.create_tables(NEXT))?;
        }
        let mut insert = tx.prepare_cached(&schema::insert_account_sql(NEXT))?;
        if written.contains(&Projection::Accounts) {
            // In key order, the B-tree only ever grows at its right edge.
            let mut rows: Vec<_> = memory.accounts.values().collect();
            rows.sort_unstable_by_key(|row| row.account_id);
            for row in rows {
                schema::write_account(&mut insert, row)?;
            }
        }
        drop(insert);
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

fn decode(projection: Projection, recorded: RecordedEvent) -> Result<Envelope, ProjectionError> {
    let (event_id, position, event_type) = (recorded.id, recorded.position, recorded.event_type.clone());
    codec::decode_sealed(recorded).map_err(|error| ProjectionError::Poison {
        projection: projection.name(),
        event_id,
        position,
        reason: format!("{event_type} event: {error}"),
    })
}

fn apply_to_memory(
    memory: &mut MemoryRows,
    projections: &[Projection],
    recorded: RecordedEvent,
) -> Result<(), ProjectionError> {
    let relevant: Vec<Projection> = projections.iter().copied().filter(|p| p.handles(&recorded.stream)).collect();
    let Some(first) = relevant.first() else { return Ok(()) };
    let envelope = decode(*first, recorded)?;
    for projection in &relevant {
        let applied = match projection {
            Projection::Accounts => rows::apply_account(memory, &envelope),
            Projection::OrgWidgets => rows::apply_org(memory, &envelope),
        };
        if let Err(RowError::Apply(reason)) = applied {
            return Err(db::poison(*projection, &envelope, reason.to_string()));
        }
    }
    Ok(())
}

fn drop_next(tx: &rusqlite::Connection, projection: Projection) -> rusqlite::Result<()> {
    for table in projection.tables() {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {table}{NEXT};"))?;
    }
    Ok(())
}
