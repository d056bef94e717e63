//! The tree on PostgreSQL: each event's leaf in its row, the kept subtree roots in
//! `merkle_nodes`, the frontier in the `head` row (so the lock that numbers events also guards
//! it), signed heads in `tree_heads`; written in the transaction that appends the events.

use deadpool_postgres::GenericClient;
use deadpool_postgres::Pool;

use super::heads::SignedHead;
use super::{Frontier, Hash, Node, TreeWriter, missing, removed};
use crate::event_store::{Position, RecordedEvent, StoreError};
use crate::postgres::events::{COLUMNS, row_to_event};
use crate::postgres::{pg_error, pool_error};

const PAGE: i64 = 4096;

/// Checks the frontier read under the head lock against the head. Every append moves both in one
/// statement, so they differ only in a database written before the tree existed (no tree: it is
/// built now) or by someone else (never taken into the tree).
pub async fn reconcile(client: &impl GenericClient, tree: &mut TreeWriter, head: Position) -> Result<(), StoreError> {
    match tree.frontier.size() {
        size if size == head => Ok(()),
        size if size > head => Err(removed(size, head)),
        0 => {
            tracing::info!(events = head, "building the Merkle tree over the log");
            extend(client, tree, head).await
        }
        size => Err(StoreError::Corrupt(format!(
            "positions {} to {head} were written without the Merkle tree (not by Tenure); \
             nothing is appended until `tenure audit verify-store` has been run",
            size + 1
        ))),
    }
}

/// Extends `tree` over the events after it up to `head`, inside the caller's transaction (which
/// holds the head lock), recording their leaves and the completed roots.
async fn extend(client: &impl GenericClient, tree: &mut TreeWriter, head: Position) -> Result<(), StoreError> {
    let failed = |e: tokio_postgres::Error| pg_error("cannot extend the Merkle tree", &e);
    while tree.frontier.size() < head {
        let page = read_page(client, tree.frontier.size() as i64, PAGE).await?;
        if page.is_empty() {
            break;
        }
        let mut positions = Vec::with_capacity(page.len());
        let mut leaves = Vec::with_capacity(page.len());
        for (event, _) in &page {
            if event.position != tree.next_position() {
                return Err(missing(tree.next_position()));
            }
            leaves.push(tree.push(&event.stream, event.version, &event.hash).to_vec());
            positions.push(event.position as i64);
        }
        client
            .execute(
                "UPDATE events SET leaf = v.leaf FROM unnest($1::bigint[], $2::bytea[]) AS v(position, leaf) \
                 WHERE events.position = v.position",
                &[&positions, &leaves],
            )
            .await
            .map_err(failed)?;
        store_nodes(client, tree).await?;
    }
    Ok(())
}

/// Writes the roots completed so far; the caller writes the frontier with the head.
pub async fn store_nodes(client: &impl GenericClient, tree: &mut TreeWriter) -> Result<(), StoreError> {
    if tree.completed.is_empty() {
        return Ok(());
    }
    let NodeColumns { levels, indices, hashes } = NodeColumns::of(&tree.completed);
    tree.completed.clear();
    client
        .execute(
            "INSERT INTO merkle_nodes (level, idx, hash) SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[]) \
             ON CONFLICT (level, idx) DO UPDATE SET hash = excluded.hash",
            &[&levels, &indices, &hashes],
        )
        .await
        .map_err(|e| pg_error("cannot write the Merkle tree", &e))?;
    Ok(())
}

/// Kept roots as the arrays of one `INSERT … SELECT unnest(…)`.
pub struct NodeColumns {
    pub levels: Vec<i16>,
    pub indices: Vec<i64>,
    pub hashes: Vec<Vec<u8>>,
}

impl NodeColumns {
    pub fn of(nodes: &[Node]) -> NodeColumns {
        NodeColumns {
            levels: nodes.iter().map(|n| n.level as i16).collect(),
            indices: nodes.iter().map(|n| n.index as i64).collect(),
            hashes: nodes.iter().map(|n| n.hash.to_vec()).collect(),
        }
    }
}

/// Makes the tree cover the whole log; a no-op when it already does.
pub async fn catch_up(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let failed = |e: tokio_postgres::Error| pg_error("cannot extend the Merkle tree", &e);
    let tx = client.transaction().await.map_err(failed)?;
    let row = tx.query_one("SELECT position, tree FROM head FOR UPDATE", &[]).await.map_err(failed)?;
    let head = row.get::<_, i64>(0) as Position;
    let mut tree = TreeWriter::new(Frontier::decode(row.get(1))?);
    if tree.frontier.size() != 0 || head == 0 {
        return Ok(());
    }
    reconcile(&tx, &mut tree, head).await?;
    tx.execute("UPDATE head SET tree = $1", &[&tree.frontier.encode()]).await.map_err(failed)?;
    tx.commit().await.map_err(failed)
}

/// Builds the tree again from the events: every leaf, kept root and the frontier.
pub async fn rebuild(pool: &Pool, progress: &(dyn Fn(u64) + Sync)) -> Result<Frontier, StoreError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let failed = |e: tokio_postgres::Error| pg_error("cannot rebuild the Merkle tree", &e);
    let tx = client.transaction().await.map_err(failed)?;
    let head = tx.query_one("SELECT position FROM head FOR UPDATE", &[]).await.map_err(failed)?.get::<_, i64>(0);
    tx.batch_execute("DELETE FROM merkle_nodes; UPDATE events SET leaf = NULL;").await.map_err(failed)?;
    let mut tree = TreeWriter::new(Frontier::default());
    // Page by page, so that the bar moves.
    while tree.frontier.size() < head as u64 {
        let next = (tree.frontier.size() + PAGE as u64).min(head as u64);
        extend(&tx, &mut tree, next).await?;
        progress(tree.frontier.size());
    }
    tx.execute("UPDATE head SET tree = $1", &[&tree.frontier.encode()]).await.map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok(tree.frontier)
}

/// Events after position `after`, each with the leaf stored beside it.
pub async fn read_page(
    client: &impl GenericClient,
    after: i64,
    limit: i64,
) -> Result<Vec<(RecordedEvent, Option<Hash>)>, StoreError> {
    let sql = format!("SELECT {COLUMNS}, leaf FROM events WHERE position > $1 ORDER BY position LIMIT $2");
    let rows = client.query(&sql, &[&after, &limit]).await.map_err(|e| pg_error("cannot read events", &e))?;
    rows.iter()
        .map(|row| {
            let leaf: Option<&[u8]> = row.try_get(12).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok((row_to_event(row)?, leaf.and_then(|l| l.try_into().ok())))
        })
        .collect()
}

pub async fn leaves(client: &impl GenericClient, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
    let rows = client
        .query(
            "SELECT leaf FROM events WHERE position > $1 AND position <= $2 ORDER BY position",
            &[&(from as i64), &(to as i64)],
        )
        .await
        .map_err(|e| pg_error("cannot read the Merkle tree", &e))?;
    // A missing leaf ends the list: the caller reports the tree as incomplete.
    Ok(rows.iter().map_while(|row| row.get::<_, Option<&[u8]>>(0).and_then(|l| l.try_into().ok())).collect())
}

pub async fn nodes(client: &impl GenericClient, level: u32, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
    let rows = client
        .query(
            "SELECT hash FROM merkle_nodes WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
            &[&(level as i16), &(from as i64), &(to as i64)],
        )
        .await
        .map_err(|e| pg_error("cannot read the Merkle tree", &e))?;
    Ok(rows.iter().map_while(|row| row.get::<_, &[u8]>(0).try_into().ok()).collect())
}

pub async fn frontier(client: &impl GenericClient) -> Result<Frontier, StoreError> {
    let row = client.query_one("SELECT tree FROM head", &[]).await.map_err(|e| pg_error("cannot read the tree", &e))?;
    Frontier::decode(row.get(0))
}

pub async fn put_head(client: &impl GenericClient, head: &SignedHead) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO tree_heads (tree_size, root_hash, timestamp, key_id, signature) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tree_size) DO NOTHING",
            &[
                &(head.tree_size as i64),
                &head.root_hash.as_slice(),
                &(head.timestamp as i64),
                &head.key_id.as_slice(),
                &head.signature.as_slice(),
            ],
        )
        .await
        .map_err(|e| pg_error("cannot keep the signed head", &e))?;
    Ok(())
}

/// Signed heads, oldest first; with `size`, only the head of that size; with `latest`, only the
/// largest.
pub async fn heads(
    client: &impl GenericClient,
    size: Option<u64>,
    latest: bool,
) -> Result<Vec<SignedHead>, StoreError> {
    let columns = "tree_size, root_hash, timestamp, key_id, signature";
    let rows = match (size, latest) {
        (Some(size), _) => {
            client.query(&format!("SELECT {columns} FROM tree_heads WHERE tree_size = $1"), &[&(size as i64)]).await
        }
        (None, true) => {
            client.query(&format!("SELECT {columns} FROM tree_heads ORDER BY tree_size DESC LIMIT 1"), &[]).await
        }
        (None, false) => client.query(&format!("SELECT {columns} FROM tree_heads ORDER BY tree_size"), &[]).await,
    }
    .map_err(|e| pg_error("cannot read the signed heads", &e))?;
    rows.iter()
        .map(|row| {
            let corrupt =
                || StoreError::Corrupt(format!("the signed head of size {} is malformed", row.get::<_, i64>(0)));
            Ok(SignedHead {
                tree_size: row.get::<_, i64>(0) as u64,
                root_hash: row.get::<_, &[u8]>(1).try_into().map_err(|_| corrupt())?,
                timestamp: row.get::<_, i64>(2) as u64,
                key_id: row.get::<_, &[u8]>(3).try_into().map_err(|_| corrupt())?,
                signature: row.get::<_, &[u8]>(4).try_into().map_err(|_| corrupt())?,
            })
        })
        .collect()
}
