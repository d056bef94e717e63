//! The tree on SQLite: each event's leaf in its row, the kept subtree roots in `merkle_nodes`,
//! the frontier in `merkle_frontier`, signed heads in `tree_heads`; all in the events' file, all
//! written in the transaction that appends the events they cover.

use rusqlite::{Connection, OptionalExtension, params};

use super::heads::SignedHead;
use super::{Frontier, Hash, TreeWriter, missing, removed};
use crate::event_store::{Position, RecordedEvent, StoreError};
use crate::sqlite::{COLUMNS, current_head, row_to_event, write_error};

/// Schema version 3 of the events' file.
pub const SCHEMA: &str = "
ALTER TABLE events ADD COLUMN leaf BLOB;
CREATE TABLE merkle_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB    NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE tree_heads (
    tree_size INTEGER PRIMARY KEY,
    root_hash BLOB    NOT NULL,
    timestamp INTEGER NOT NULL,
    key_id    BLOB    NOT NULL,
    signature BLOB    NOT NULL
);
";

fn read_failed(e: rusqlite::Error) -> StoreError {
    write_error("cannot read the Merkle tree", &e)
}

/// The frontier of the first `size` events, from their leaves and the kept roots.
pub fn frontier_at(connection: &Connection, size: u64) -> Result<Frontier, StoreError> {
    Frontier::from_kept(size, |level, from, to| {
        match level {
            0 => leaves(connection, from, to),
            _ => nodes(connection, level, from, to),
        }
        .map_err(read_failed)
    })
}

/// The tree to extend with the next append. The writer keeps the frontier of its last commit
/// (`cached`), good while no other process appended since; otherwise it is read from the kept
/// hashes, which costs a few hundred reads, not a page written per commit. A signed head or a
/// kept root beyond the log's end means events were removed: nothing is appended then, since a
/// new event would take a position a signed head already covers.
pub fn load(connection: &Connection, cached: Option<Frontier>) -> Result<TreeWriter, StoreError> {
    let head = current_head(connection).map_err(read_failed)?;
    if let Some(frontier) = cached {
        if frontier.size() == head {
            return Ok(TreeWriter::new(frontier));
        }
        if frontier.size() > head {
            return Err(removed(frontier.size(), head));
        }
    }
    let covered: i64 = connection
        .prepare_cached(
            "SELECT max(coalesce((SELECT max(tree_size) FROM tree_heads), 0), \
                        coalesce((SELECT (max(idx) + 1) << 8 FROM merkle_nodes WHERE level = 8), 0))",
        )
        .and_then(|mut select| select.query_row([], |row| row.get(0)))
        .map_err(read_failed)?;
    if covered as u64 > head {
        return Err(removed(covered as u64, head));
    }
    Ok(TreeWriter::new(frontier_at(connection, head)?))
}

/// Writes the roots completed since the tree was loaded, inside the caller's transaction.
pub fn store(connection: &Connection, tree: &mut TreeWriter) -> Result<(), StoreError> {
    let failed = |e: rusqlite::Error| write_error("cannot write the Merkle tree", &e);
    let mut insert = connection
        .prepare_cached("INSERT OR REPLACE INTO merkle_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")
        .map_err(failed)?;
    for node in tree.completed.drain(..) {
        insert.execute(params![node.level, node.index as i64, node.hash]).map_err(failed)?;
    }
    Ok(())
}

/// Extends the tree over the events after it up to `head`, recording their leaves and roots.
fn extend(
    connection: &Connection,
    tree: &mut TreeWriter,
    head: Position,
    progress: &dyn Fn(u64),
) -> Result<(), StoreError> {
    let failed = |e: rusqlite::Error| write_error("cannot extend the Merkle tree", &e);
    let mut update = connection.prepare_cached("UPDATE events SET leaf = ?1 WHERE position = ?2").map_err(failed)?;
    while tree.frontier.size() < head {
        let page = read_page(connection, tree.frontier.size() as i64, 4096)?;
        if page.is_empty() {
            break;
        }
        for (event, _) in &page {
            if event.position != tree.next_position() {
                return Err(missing(tree.next_position()));
            }
            let leaf = tree.push(&event.stream, event.version, &event.hash);
            update.execute(params![leaf, event.position as i64]).map_err(failed)?;
        }
        store(connection, tree)?;
        progress(tree.frontier.size());
    }
    Ok(())
}

/// Builds the tree of a store written before the tree existed: its first event has no leaf.
/// Events without a leaf after others that have one were not written by Tenure: they are left
/// for `tenure audit verify-store` to report, never taken into the tree.
pub fn catch_up(connection: &mut Connection) -> Result<(), StoreError> {
    let failed = |e: rusqlite::Error| write_error("cannot build the Merkle tree", &e);
    let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(failed)?;
    let absent: bool = tx
        .query_row("SELECT leaf IS NULL FROM events ORDER BY position LIMIT 1", [], |row| row.get(0))
        .optional()
        .map_err(failed)?
        .unwrap_or(false);
    if !absent {
        return Ok(());
    }
    let head = current_head(&tx).map_err(failed)?;
    tracing::info!(events = head, "building the Merkle tree over the log");
    let mut tree = TreeWriter::new(Frontier::default());
    extend(&tx, &mut tree, head, &|_| {})?;
    tx.commit().map_err(failed)
}

/// Builds the tree again from the events: every leaf and kept root.
pub fn rebuild(connection: &mut Connection, progress: &dyn Fn(u64)) -> Result<Frontier, StoreError> {
    let failed = |e: rusqlite::Error| write_error("cannot rebuild the Merkle tree", &e);
    let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(failed)?;
    tx.execute_batch("DELETE FROM merkle_nodes; UPDATE events SET leaf = NULL;").map_err(failed)?;
    let head = current_head(&tx).map_err(failed)?;
    let mut tree = TreeWriter::new(Frontier::default());
    extend(&tx, &mut tree, head, progress)?;
    tx.commit().map_err(failed)?;
    Ok(tree.frontier)
}

/// Events after position `after`, each with the leaf stored beside it.
pub fn read_page(
    connection: &Connection,
    after: i64,
    limit: usize,
) -> Result<Vec<(RecordedEvent, Option<Hash>)>, StoreError> {
    let sql = format!("SELECT {COLUMNS}, leaf FROM events WHERE position > ?1 ORDER BY position LIMIT ?2");
    let read = || -> rusqlite::Result<Vec<(RecordedEvent, Option<Hash>)>> {
        let mut select = connection.prepare_cached(&sql)?;
        let rows = select.query_map(params![after, limit as i64], |row| {
            let leaf: Option<Vec<u8>> = row.get(12)?;
            Ok((row_to_event(row)?, leaf.and_then(|l| l.try_into().ok())))
        })?;
        rows.collect()
    };
    read().map_err(|e| StoreError::Corrupt(format!("cannot read events: {e}")))
}

pub fn leaves(connection: &Connection, from: u64, to: u64) -> rusqlite::Result<Vec<Hash>> {
    let mut select = connection
        .prepare_cached("SELECT leaf FROM events WHERE position > ?1 AND position <= ?2 ORDER BY position")?;
    let rows = select.query_map(params![from as i64, to as i64], |row| row.get::<_, Option<[u8; 32]>>(0))?;
    // A missing leaf ends the list: the caller reports the tree as incomplete.
    Ok(rows.map_while(|row| row.ok().flatten()).collect())
}

pub fn nodes(connection: &Connection, level: u32, from: u64, to: u64) -> rusqlite::Result<Vec<Hash>> {
    let mut select = connection
        .prepare_cached("SELECT hash FROM merkle_nodes WHERE level = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx")?;
    let rows = select.query_map(params![level, from as i64, to as i64], |row| row.get::<_, [u8; 32]>(0))?;
    rows.collect()
}

pub fn put_head(connection: &Connection, head: &SignedHead) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT OR IGNORE INTO tree_heads (tree_size, root_hash, timestamp, key_id, signature) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            head.tree_size as i64,
            head.root_hash,
            head.timestamp as i64,
            head.key_id,
            head.signature.as_slice()
        ])
        .map(|_| ())
}

/// Signed heads, oldest first; with `size`, only the head of that size; with `latest`, only the
/// largest.
pub fn heads(connection: &Connection, size: Option<u64>, latest: bool) -> rusqlite::Result<Vec<SignedHead>> {
    const COLUMNS: &str = "tree_size, root_hash, timestamp, key_id, signature";
    let (filter, size) = match (size, latest) {
        (Some(size), _) => ("WHERE tree_size = ?1", size as i64),
        (None, true) => ("WHERE tree_size >= ?1 ORDER BY tree_size DESC LIMIT 1", 0),
        (None, false) => ("WHERE tree_size >= ?1 ORDER BY tree_size", 0),
    };
    let mut select = connection.prepare_cached(&format!("SELECT {COLUMNS} FROM tree_heads {filter}"))?;
    let rows = select.query_map([size], |row| {
        let bytes = |index: usize| -> rusqlite::Result<Vec<u8>> { row.get(index) };
        let fixed = |index: usize, bytes: Vec<u8>| {
            rusqlite::Error::FromSqlConversionFailure(
                index,
                rusqlite::types::Type::Blob,
                format!("a signed head's field has {} bytes", bytes.len()).into(),
            )
        };
        let signature = bytes(4)?;
        Ok(SignedHead {
            tree_size: row.get::<_, i64>(0)? as u64,
            root_hash: row.get(1)?,
            timestamp: row.get::<_, i64>(2)? as u64,
            key_id: row.get(3)?,
            signature: signature.clone().try_into().map_err(|_| fixed(4, signature))?,
        })
    })?;
    rows.collect()
}
