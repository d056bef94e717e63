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
CREATE TABLE merkle_frontier (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    frontier BLOB    NOT NULL
);
INSERT INTO merkle_frontier VALUES (1, x'0000000000000000');
CREATE TABLE tree_heads (
    tree_size INTEGER PRIMARY KEY,
    root_hash BLOB    NOT NULL,
    timestamp INTEGER NOT NULL,
    key_id    BLOB    NOT NULL,
    signature BLOB    NOT NULL
);
";

/// The tree as stored, caught up with events it does not cover yet. A tree that covers more
/// events than the log holds means events were removed: nothing is appended then, since a new
/// event would take a position a signed head already covers.
pub fn load(connection: &Connection) -> Result<TreeWriter, StoreError> {
    let failed = |e: rusqlite::Error| write_error("cannot read the Merkle tree", &e);
    let mut tree = TreeWriter::new(frontier(connection)?);
    let head = current_head(connection).map_err(failed)?;
    if tree.frontier.size() > head {
        return Err(removed(tree.frontier.size(), head));
    }
    if tree.frontier.size() < head {
        extend(connection, &mut tree, head)?;
        store(connection, &mut tree)?;
    }
    Ok(tree)
}

/// Writes the completed roots and the frontier, inside the caller's transaction.
pub fn store(connection: &Connection, tree: &mut TreeWriter) -> Result<(), StoreError> {
    let failed = |e: rusqlite::Error| write_error("cannot write the Merkle tree", &e);
    let mut insert = connection
        .prepare_cached("INSERT OR REPLACE INTO merkle_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")
        .map_err(failed)?;
    for node in tree.completed.drain(..) {
        insert.execute(params![node.level, node.index as i64, node.hash]).map_err(failed)?;
    }
    connection
        .prepare_cached("UPDATE merkle_frontier SET frontier = ?1")
        .and_then(|mut update| update.execute([tree.frontier.encode()]))
        .map_err(failed)?;
    Ok(())
}

/// Extends the tree over the events after it up to `head`, recording their leaves.
fn extend(connection: &Connection, tree: &mut TreeWriter, head: Position) -> Result<(), StoreError> {
    tracing::info!(from = tree.frontier.size(), to = head, "extending the Merkle tree over the log");
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
    }
    Ok(())
}

fn frontier(connection: &Connection) -> Result<Frontier, StoreError> {
    let stored: Option<Vec<u8>> = connection
        .prepare_cached("SELECT frontier FROM merkle_frontier")
        .and_then(|mut select| select.query_row([], |row| row.get(0)).optional())
        .map_err(|e| write_error("cannot read the Merkle tree", &e))?;
    // A removed row is a tree to build again from the first event.
    stored.map_or(Ok(Frontier::default()), |bytes| Frontier::decode(&bytes))
}

/// Makes the tree cover the whole log, in one transaction; a no-op when it already does.
pub fn catch_up(connection: &mut Connection) -> Result<(), StoreError> {
    let failed = |e: rusqlite::Error| write_error("cannot extend the Merkle tree", &e);
    let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(failed)?;
    let stored = frontier(&tx)?;
    if stored.size() >= current_head(&tx).map_err(failed)? {
        return Ok(());
    }
    load(&tx)?;
    tx.commit().map_err(failed)
}

/// Builds the tree again from the events: every leaf, kept root and the frontier.
pub fn rebuild(connection: &mut Connection, progress: &dyn Fn(u64)) -> Result<Frontier, StoreError> {
    let failed = |e: rusqlite::Error| write_error("cannot rebuild the Merkle tree", &e);
    let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(failed)?;
    tx.execute_batch("DELETE FROM merkle_nodes; DELETE FROM merkle_frontier; UPDATE events SET leaf = NULL;")
        .map_err(failed)?;
    tx.execute("INSERT INTO merkle_frontier VALUES (1, ?1)", [Frontier::default().encode()]).map_err(failed)?;
    let mut tree = TreeWriter::new(Frontier::default());
    let mut update = tx.prepare("UPDATE events SET leaf = ?1 WHERE position = ?2").map_err(failed)?;
    let mut after = 0i64;
    loop {
        let page = read_page(&tx, after, 4096)?;
        let Some((last, _)) = page.last() else { break };
        after = last.position as i64;
        for (event, _) in &page {
            if event.position != tree.next_position() {
                return Err(missing(tree.next_position()));
            }
            let leaf = tree.push(&event.stream, event.version, &event.hash);
            update.execute(params![leaf, event.position as i64]).map_err(failed)?;
        }
        progress(tree.frontier.size());
    }
    drop(update);
    store(&tx, &mut tree)?;
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

pub fn stored_frontier(connection: &Connection) -> rusqlite::Result<Option<Vec<u8>>> {
    connection.query_row("SELECT frontier FROM merkle_frontier", [], |row| row.get(0)).optional()
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
    let sql = match (size, latest) {
        (Some(_), _) => {
            "SELECT tree_size, root_hash, timestamp, key_id, signature FROM tree_heads WHERE tree_size = ?1"
        }
        (None, true) => {
            "SELECT tree_size, root_hash, timestamp, key_id, signature FROM tree_heads \
                         WHERE ?1 IS NULL ORDER BY tree_size DESC LIMIT 1"
        }
        (None, false) => {
            "SELECT tree_size, root_hash, timestamp, key_id, signature FROM tree_heads \
                          WHERE ?1 IS NULL ORDER BY tree_size"
        }
    };
    let mut select = connection.prepare_cached(sql)?;
    let rows = select.query_map([size.map(|s| s as i64)], |row| {
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
