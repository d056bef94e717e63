//! The event store on PostgreSQL: gap-free positions under the `head` row lock, group commit
//! through one writer task per process, and `NOTIFY` to wake other processes' subscribers.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::DateTime;
use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, GenericClient, Row};
use uuid::Uuid;

use super::{Open, ensure_schema, pg_error, pool, pool_error};
use crate::chain;
use crate::event_store::*;
use crate::merkle::{self, Frontier, TreeWriter};

/// The most requests one group commit takes.
const MAX_BATCH: usize = 512;
const NOTIFY_CHANNEL: &str = "tenure_events";

pub(crate) const COLUMNS: &str = "position, stream, version, event_id, event_type, schema_version, \
                       recorded_at, actor, correlation_id, data, prev_hash, hash";

#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    writer: mpsc::UnboundedSender<WriteRequest>,
    head: watch::Sender<Position>,
    /// Keeps the head channel open for as long as the store lives: the listener stops when the
    /// channel closes.
    _watching: watch::Receiver<Position>,
}

struct WriteRequest {
    appends: Vec<StreamAppend>,
    mail: Vec<QueuedMail>,
    reply: oneshot::Sender<Result<Vec<Appended>, AppendError>>,
}

/// Moves `head` forward to `position`, waking its watchers; never backward.
fn advance(head: &watch::Sender<Position>, position: Position) {
    head.send_if_modified(|current| {
        let moved = position > *current;
        *current = (*current).max(position);
        moved
    });
}

impl PgStore {
    /// Connects to the database at `url`, applying migrations first when `mode` allows it.
    pub async fn open(url: &str, mode: Open) -> Result<PgStore, StoreError> {
        let pool = pool(url)?;
        ensure_schema(url, &pool, mode).await?;
        // A database written before the tree existed gets it now; a tree that cannot be
        // extended (a hole in the log) is left for `tenure audit verify-store` to report.
        if let Err(error) = merkle::postgres::catch_up(&pool).await {
            tracing::warn!(%error, "the Merkle tree does not cover the log");
        }
        let client = pool.get().await.map_err(pool_error)?;
        let head = current_head(&**client).await?;
        drop(client);
        let (head, watching) = watch::channel(head);
        let (writer, queue) = mpsc::unbounded_channel();
        let store = PgStore { inner: Arc::new(Inner { pool: pool.clone(), writer, head, _watching: watching }) };
        tokio::spawn(write_loop(pool, queue, store.inner.head.clone()));
        listen(url.to_string(), store.inner.head.clone());
        Ok(store)
    }

    /// The store's connection pool, for the tables that live beside the events.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(pool_error)
    }

    async fn query_events(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(|e| pg_error("cannot read events", &e))?;
        let rows = client.query(&statement, params).await.map_err(|e| pg_error("cannot read events", &e))?;
        rows.iter().map(row_to_event).collect()
    }
}

/// Follows `NOTIFY tenure_events` from every process on the database, so that subscriptions
/// here wake as soon as another gateway appends. While the listening connection is down it is
/// reopened every second; meanwhile subscriptions still find new events by polling. It ends
/// when the store and every subscription to it are gone.
fn listen(url: String, head: watch::Sender<Position>) {
    let connect = async |url: &str| match super::Connector::parse(url) {
        Ok(connector) => connector.connect().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    tokio::spawn(async move {
        loop {
            if let Ok((client, mut connection)) = connect(&url).await {
                let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                // LISTEN goes out once the connection is polled, which the loop below does.
                let command = format!("LISTEN {NOTIFY_CHANNEL}");
                let mut listen = std::pin::pin!(client.batch_execute(&command));
                let mut listening = false;
                loop {
                    tokio::select! {
                        done = &mut listen, if !listening => match done {
                            Ok(()) => listening = true,
                            Err(_) => break,
                        },
                        message = messages.next() => match message {
                            Some(Ok(AsyncMessage::Notification(n))) => {
                                if let Ok(position) = n.payload().parse::<Position>() {
                                    advance(&head, position);
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(_)) | None => break,
                        },
                        () = head.closed() => return,
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                () = head.closed() => return,
            }
        }
    });
}

async fn current_head(client: &impl GenericClient) -> Result<Position, StoreError> {
    let row =
        client.query_one("SELECT position FROM head", &[]).await.map_err(|e| pg_error("cannot read the head", &e))?;
    Ok(row.get::<_, i64>(0) as Position)
}

impl EventStore for PgStore {
    async fn append_with_mail(
        &self,
        appends: Vec<StreamAppend>,
        mail: Vec<QueuedMail>,
    ) -> Result<Vec<Appended>, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.inner.writer.send(WriteRequest { appends, mail, reply }).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(&self, stream: &str, from: Version) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM events WHERE stream = $1 AND version >= $2 ORDER BY version");
        self.query_events(&sql, &[&stream, &(from as i64)]).await
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM events WHERE position >= $1 ORDER BY position LIMIT $2");
        self.query_events(&sql, &[&(from as i64), &(limit as i64)]).await
    }

    async fn scan_all<T, F>(&self, from: Position, limit: usize, mut state: T, mut each: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut T, EventRef<'_>) + Send + 'static,
    {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT position, stream, version, event_id, event_type, schema_version, recorded_at, data \
                 FROM events WHERE position >= $1 ORDER BY position LIMIT $2",
            )
            .await
            .map_err(|e| pg_error("cannot read events", &e))?;
        let rows = client
            .query(&statement, &[&(from as i64), &(limit as i64)])
            .await
            .map_err(|e| pg_error("cannot read events", &e))?;
        drop(client);
        // What `each` does with the events (decoding them, say) is work for a blocking thread.
        tokio::task::spawn_blocking(move || {
            for row in &rows {
                each(&mut state, event_ref(row)?);
            }
            Ok(state)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("a scan of the events failed: {e}")))?
    }

    async fn read_all_of_types(
        &self,
        from: Position,
        limit: usize,
        types: &'static [&'static str],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE position >= $1 AND event_type = ANY($3) ORDER BY position LIMIT $2"
        );
        let types: Vec<&str> = types.to_vec();
        self.query_events(&sql, &[&(from as i64), &(limit as i64), &types]).await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        current_head(&**self.client().await?).await
    }

    fn appended(&self) -> watch::Receiver<Position> {
        self.inner.head.subscribe()
    }
}

fn corrupt_at(position: i64) -> impl Fn(&str) -> StoreError {
    move |what| StoreError::Corrupt(format!("event at position {position}: {what}"))
}

/// The first seven columns of `COLUMNS` and the payload at `data`, borrowed from `row`.
fn read_ref(row: &Row, data: usize) -> Result<EventRef<'_>, StoreError> {
    let position = row.try_get::<_, i64>(0).map_err(|e| StoreError::Corrupt(format!("an event's position: {e}")))?;
    let corrupt = corrupt_at(position);
    let column = |e: tokio_postgres::Error| corrupt(&e.to_string());
    let micros: i64 = row.try_get(6).map_err(column)?;
    Ok(EventRef {
        position: position as Position,
        stream: row.try_get(1).map_err(column)?,
        version: row.try_get::<_, i64>(2).map_err(column)? as Version,
        id: row.try_get(3).map_err(column)?,
        event_type: row.try_get(4).map_err(column)?,
        schema_version: row.try_get::<_, i32>(5).map_err(column)? as u32,
        recorded_at: DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt("time out of range"))?,
        data: row.try_get(data).map_err(column)?,
    })
}

/// A row of `scan_all`'s columns: those of `COLUMNS` a fold reads, the payload last.
fn event_ref(row: &Row) -> Result<EventRef<'_>, StoreError> {
    read_ref(row, 7)
}

pub(crate) fn row_to_event(row: &Row) -> Result<RecordedEvent, StoreError> {
    let event = read_ref(row, 9)?;
    let corrupt = corrupt_at(event.position as i64);
    let column = |e: tokio_postgres::Error| corrupt(&e.to_string());
    let hash = |index: usize| -> Result<[u8; 32], StoreError> {
        let bytes: &[u8] = row.try_get(index).map_err(column)?;
        bytes.try_into().map_err(|_| corrupt("a hash is not 32 bytes"))
    };
    Ok(RecordedEvent {
        data: event.data.to_vec(),
        actor: row.try_get(7).map_err(column)?,
        correlation_id: row.try_get(8).map_err(column)?,
        prev_hash: hash(10)?,
        hash: hash(11)?,
        ..event.to_folded()
    })
}

/// Queues the mail of the batch's requests that stand, inside the batch's transaction.
async fn insert_mail(client: &deadpool_postgres::Object, mail: &[&QueuedMail]) -> Result<(), StoreError> {
    let insert = client
        .prepare_cached(
            "INSERT INTO outbox (id, account, kind, created_at, body) \
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::bytea[])",
        )
        .await
        .map_err(|e| pg_error("queueing mail failed", &e))?;
    let ids: Vec<Uuid> = mail.iter().map(|m| m.id).collect();
    let accounts: Vec<Uuid> = mail.iter().map(|m| m.account).collect();
    let kinds: Vec<&str> = mail.iter().map(|m| m.kind.as_str()).collect();
    let created: Vec<i64> = mail.iter().map(|m| m.created_at.timestamp_micros()).collect();
    let bodies: Vec<&[u8]> = mail.iter().map(|m| m.sealed.as_slice()).collect();
    client
        .execute(&insert, &[&ids, &accounts, &kinds, &created, &bodies])
        .await
        .map_err(|e| pg_error("queueing mail failed", &e))?;
    Ok(())
}

/// Commits whatever is queued, batch after batch, until every handle to the store is gone.
async fn write_loop(pool: Pool, mut queue: mpsc::UnboundedReceiver<WriteRequest>, head: watch::Sender<Position>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let results = match pool.get().await {
            Ok(client) => commit_batch(client, &batch).await,
            Err(error) => {
                let error = AppendError::Store(pool_error(error));
                batch.iter().map(|_| Err(error.clone())).collect()
            }
        };
        if let Some(position) = results.iter().flatten().flatten().map(|a| a.position).max() {
            advance(&head, position);
        }
        for (request, result) in batch.into_iter().zip(results) {
            // The caller may have given up waiting; the append stands either way.
            let _ = request.reply.send(result);
        }
    }
}

/// The columns of the events one batch inserts, as arrays for one `INSERT … SELECT unnest(…)`.
#[derive(Default)]
struct Rows {
    position: Vec<i64>,
    stream: Vec<String>,
    version: Vec<i64>,
    id: Vec<Uuid>,
    event_type: Vec<String>,
    schema_version: Vec<i32>,
    recorded_at: Vec<i64>,
    actor: Vec<String>,
    correlation_id: Vec<Uuid>,
    data: Vec<Vec<u8>>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
    leaf: Vec<Vec<u8>>,
}

type Heads = HashMap<String, (Version, [u8; 32])>;

async fn commit_batch(
    client: deadpool_postgres::Object,
    batch: &[WriteRequest],
) -> Vec<Result<Vec<Appended>, AppendError>> {
    match try_commit_batch(&client, batch).await {
        Ok(results) => results,
        Err(error) => {
            // A pooled connection must not stay inside a transaction; one that cannot say
            // ROLLBACK is dropped rather than pooled.
            if client.batch_execute("ROLLBACK").await.is_err() {
                drop(deadpool_postgres::Object::take(client));
            }
            batch.iter().map(|_| Err(AppendError::Store(error.clone()))).collect()
        }
    }
}

/// One transaction for the whole batch. Expectations are checked against the heads read under
/// the lock, then against the batch's own earlier requests; a request that fails its check
/// writes nothing and the others go on, so no savepoints are needed.
async fn try_commit_batch(
    client: &deadpool_postgres::Object,
    batch: &[WriteRequest],
) -> Result<Vec<Result<Vec<Appended>, AppendError>>, StoreError> {
    let failed = |e: tokio_postgres::Error| pg_error("append failed", &e);
    let lock = client.prepare_cached("SELECT position, tree FROM head FOR UPDATE").await.map_err(failed)?;
    let heads_sql = client
        .prepare_cached(
            // One index probe per stream, whatever its length.
            "SELECT s.stream, e.version, e.hash FROM unnest($1::text[]) AS s(stream) \
             CROSS JOIN LATERAL (SELECT version, hash FROM events WHERE events.stream = s.stream \
             ORDER BY version DESC LIMIT 1) AS e",
        )
        .await
        .map_err(failed)?;
    // PostgreSQL's text cannot hold NUL: such a request is refused alone, before it can fail the
    // batch's statements.
    let storable: Vec<bool> = batch
        .iter()
        .map(|r| {
            !r.appends.iter().any(|a| {
                a.stream.contains('\0')
                    || a.events.iter().any(|e| e.event_type.contains('\0') || e.actor.contains('\0'))
            })
        })
        .collect();
    let mut streams: Vec<&str> = batch
        .iter()
        .zip(&storable)
        .filter(|(_, storable)| **storable)
        .flat_map(|(r, _)| r.appends.iter().map(|a| a.stream.as_str()))
        .collect::<Vec<_>>();
    streams.sort_unstable();
    streams.dedup();
    // Pipelined: the three go out together and cost one round trip. `try_join3` polls them in
    // order, which is the order they are sent in.
    let (_, head, found) = futures_util::future::try_join3(
        // The numbering relies on READ COMMITTED: `FOR UPDATE` then reads the row as the
        // previous writer left it, whatever the database's default isolation.
        client.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED"),
        client.query_one(&lock, &[]),
        client.query(&heads_sql, &[&streams]),
    )
    .await
    .map_err(failed)?;
    let mut position = head.get::<_, i64>(0) as Position;
    let mut tree = TreeWriter::new(Frontier::decode(head.get(1))?);
    if tree.frontier.size() != position {
        merkle::postgres::reconcile(client, &mut tree, position).await?;
    }
    let mut heads = Heads::new();
    for row in found {
        let stream: String = row.get(0);
        let bytes: &[u8] = row.get(2);
        let hash: [u8; 32] = bytes
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("the head of {stream}: a hash is not 32 bytes")))?;
        heads.insert(stream, (row.get::<_, i64>(1) as Version, hash));
    }

    let mut rows = Rows::default();
    let mut mail: Vec<&QueuedMail> = Vec::new();
    let mut results = Vec::with_capacity(batch.len());
    for (request, storable) in batch.iter().zip(storable) {
        if !storable {
            let refused = StoreError::Backend("a stream name, event type or actor contains a NUL character".into());
            results.push(Err(refused.into()));
            continue;
        }
        // Every expectation is checked before anything of the request is taken, so that a
        // request that fails writes nothing and the rest of the batch goes on.
        let mut staged: HashMap<&str, Version> = HashMap::new();
        let conflict = request.appends.iter().find_map(|append| {
            let stream = append.stream.as_str();
            let actual = staged.get(stream).copied().or_else(|| heads.get(stream).map(|h| h.0)).unwrap_or(0);
            staged.insert(stream, actual + append.events.len() as Version);
            let holds = match append.expected {
                Expected::NoStream => actual == 0,
                // Version 0 names no event: a stream is expected empty with `NoStream`.
                Expected::Exact(expected) => expected > 0 && actual == expected,
                Expected::Any => true,
            };
            (!holds).then(|| AppendError::Conflict { stream: append.stream.clone(), expected: append.expected, actual })
        });
        if let Some(conflict) = conflict {
            results.push(Err(conflict));
            continue;
        }
        let mut appended = Vec::with_capacity(request.appends.len());
        for append in &request.appends {
            let (mut version, mut prev_hash) = heads.get(&append.stream).copied().unwrap_or((0, chain::GENESIS));
            for event in &append.events {
                version += 1;
                position += 1;
                let hash = chain::hash(event, &append.stream, version, &prev_hash);
                rows.leaf.push(tree.push(&append.stream, version, &hash).to_vec());
                rows.position.push(position as i64);
                rows.stream.push(append.stream.clone());
                rows.version.push(version as i64);
                rows.id.push(event.id);
                rows.event_type.push(event.event_type.clone());
                rows.schema_version.push(event.schema_version as i32);
                rows.recorded_at.push(event.recorded_at.timestamp_micros());
                rows.actor.push(event.actor.clone());
                rows.correlation_id.push(event.correlation_id);
                rows.data.push(event.data.clone());
                rows.prev_hash.push(prev_hash.to_vec());
                rows.hash.push(hash.to_vec());
                prev_hash = hash;
            }
            heads.insert(append.stream.clone(), (version, prev_hash));
            // With no events, the head as of this request's place in the batch.
            appended.push(Appended { version, position });
        }
        mail.extend(&request.mail);
        results.push(Ok(appended));
    }
    if !mail.is_empty() {
        insert_mail(client, &mail).await?;
    }

    if rows.position.is_empty() {
        client.batch_execute("COMMIT").await.map_err(failed)?;
        return Ok(results);
    }
    // The events, the new head and the notification in one statement, pipelined with the
    // commit: one more round trip. Should the insert fail, PostgreSQL turns that COMMIT into a
    // rollback.
    let insert = client
        .prepare_cached(&format!(
            "WITH inserted AS (INSERT INTO events ({COLUMNS}, leaf) SELECT * FROM unnest($1::bigint[], $2::text[], \
             $3::bigint[], $4::uuid[], $5::text[], $6::int[], $7::bigint[], $8::text[], $9::uuid[], \
             $10::bytea[], $11::bytea[], $12::bytea[], $13::bytea[])), \
             moved AS (UPDATE head SET position = $14::bigint, tree = $15::bytea), \
             nodes AS (INSERT INTO merkle_nodes (level, idx, hash) \
             SELECT * FROM unnest($16::smallint[], $17::bigint[], $18::bytea[])) \
             SELECT pg_notify('{NOTIFY_CHANNEL}', ($14::bigint)::text)"
        ))
        .await
        .map_err(failed)?;
    let head = position as i64;
    let frontier = tree.frontier.encode();
    let nodes = merkle::postgres::NodeColumns::of(&tree.completed);
    let (inserted, committed) = futures_util::future::join(
        client.query(
            &insert,
            &[
                &rows.position,
                &rows.stream,
                &rows.version,
                &rows.id,
                &rows.event_type,
                &rows.schema_version,
                &rows.recorded_at,
                &rows.actor,
                &rows.correlation_id,
                &rows.data,
                &rows.prev_hash,
                &rows.hash,
                &rows.leaf,
                &head,
                &frontier,
                &nodes.levels,
                &nodes.indices,
                &nodes.hashes,
            ],
        ),
        client.batch_execute("COMMIT"),
    )
    .await;
    if let Err(error) = inserted {
        // Only a writer that ignores the head lock (none of ours) could collide here.
        if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            return Err(StoreError::Corrupt(format!(
                "an append collided with an event written without the head lock: {}",
                pg_error("", &error)
            )));
        }
        return Err(failed(error));
    }
    committed.map_err(failed)?;
    Ok(results)
}
