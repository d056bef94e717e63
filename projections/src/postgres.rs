//! The read models in the shared PostgreSQL database (tables `rm_*`), for several gateways on
//! one store: every gateway reads the same rows, one runner (holding an advisory lock) writes
//! them, and a rebuild swaps a fresh copy in with transactional DDL.
//!
//! An account row is stored as JSON beside the columns the queries filter on, so that the rows
//! are exactly the ones `rows::apply_account` computes, with no second mapping to keep in step.
//! A batch of events is applied in memory to the rows it touches, loaded first, and the changed
//! rows are written back in the same transaction as the checkpoint.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tenure_domain::{AccountId, OrgId, SecretDigest, Username};
use tenure_store::{Envelope, Position};
use tokio_postgres::GenericClient;

use crate::db::{Checkpoint, DirectoryEntry, ProjectionError, poison};
use crate::rows::{self, AccountRow, AccountRows, ItemKind, OrgItem, OrgItems, RowError};
use crate::schema::{ALL, NEXT, Projection, mfa_requirement_name, role_name};

const SCHEMA_LOCK: i64 = 0x5445_4e55_0010;

fn db_error(error: tokio_postgres::Error) -> ProjectionError {
    ProjectionError::Db(tenure_store::postgres::pg_error("read models", &error).to_string())
}

fn pool_error(error: deadpool_postgres::PoolError) -> ProjectionError {
    ProjectionError::Store(tenure_store::postgres::pool_error(error))
}

fn corrupt(what: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Db(format!("read models: a stored row does not read back: {what}"))
}

fn create_table(projection: Projection, suffix: &str) -> String {
    match projection {
        Projection::Accounts => format!(
            "CREATE TABLE rm_accounts{suffix} (
                 account_id        uuid   PRIMARY KEY,
                 username          text   NOT NULL,
                 org_id            text   NOT NULL,
                 state             text   NOT NULL,
                 invitation_digest bytea,
                 invited_at        bigint NOT NULL,
                 row               text   NOT NULL
             );"
        ),
        Projection::OrgWidgets => format!(
            "CREATE TABLE rm_org_items{suffix} (
                 org_id    text   NOT NULL,
                 kind      text   NOT NULL,
                 item_id   text   NOT NULL,
                 title     text   NOT NULL,
                 opened_at bigint NOT NULL,
                 starts_at bigint,
                 ends_at   bigint,
                 PRIMARY KEY (org_id, kind, item_id)
             );"
        ),
    }
}

fn create_indexes(projection: Projection, suffix: &str, generation: u64) -> String {
    match projection {
        Projection::Accounts => format!(
            "CREATE INDEX rm_accounts_username_g{generation} ON rm_accounts{suffix} (username);
             CREATE INDEX rm_accounts_org_g{generation} ON rm_accounts{suffix} (org_id, username);
             CREATE INDEX rm_accounts_invitation_g{generation} ON rm_accounts{suffix} (invitation_digest);"
        ),
        Projection::OrgWidgets => String::new(),
    }
}

fn table(projection: Projection) -> &'static str {
    match projection {
        Projection::Accounts => "rm_accounts",
        Projection::OrgWidgets => "rm_org_items",
    }
}

/// The advisory lock key of a projection lock: the runner's, or a rebuild's of one projection.
pub(crate) fn lock_key(what: &str) -> i64 {
    let index = match what {
        "runner" => 0,
        "rebuild-accounts" => 1,
        "rebuild-org_widgets" => 2,
        other => unreachable!("no projection lock is named {other}"),
    };
    0x5445_4e55_0020 + index
}

#[derive(Clone)]
pub struct PgDb {
    pub(crate) pool: Pool,
    pub(crate) url: String,
}

impl PgDb {
    /// Connects, creating the tables on first use (under a lock, as several gateways may start
    /// at once).
    pub async fn open(url: &str) -> Result<PgDb, ProjectionError> {
        let pool = tenure_store::postgres::pool(url)?;
        let mut client = pool.get().await.map_err(pool_error)?;
        let tx = begin(&mut client).await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await.map_err(db_error)?;
        let exists: bool =
            tx.query_one("SELECT to_regclass('rm_checkpoints') IS NOT NULL", &[]).await.map_err(db_error)?.get(0);
        if !exists {
            tx.batch_execute(
                "CREATE TABLE rm_checkpoints (
                     name            text   PRIMARY KEY,
                     position        bigint NOT NULL,
                     generation      bigint NOT NULL,
                     failed_position bigint,
                     error           text
                 );",
            )
            .await
            .map_err(db_error)?;
            for projection in ALL {
                tx.batch_execute(&create_table(projection, "")).await.map_err(db_error)?;
                tx.batch_execute(&create_indexes(projection, "", 0)).await.map_err(db_error)?;
                tx.execute("INSERT INTO rm_checkpoints VALUES ($1, 0, 0, NULL, NULL)", &[&projection.name()])
                    .await
                    .map_err(db_error)?;
            }
        }
        tx.commit().await.map_err(db_error)?;
        Ok(PgDb { pool: pool.clone(), url: url.to_string() })
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, ProjectionError> {
        self.pool.get().await.map_err(pool_error)
    }

    pub async fn checkpoint(&self, projection: Projection) -> Result<Checkpoint, ProjectionError> {
        read_checkpoint(&**self.client().await?, projection, false).await
    }

    pub async fn apply_batch(
        &self,
        projection: Projection,
        events: Vec<Envelope>,
        through: Position,
    ) -> Result<Position, ProjectionError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        // The row lock also orders this against a rebuild's swap.
        let checkpoint = read_checkpoint(&*tx, projection, true).await?.position;
        let events: Vec<&Envelope> = events.iter().filter(|e| e.recorded.position > checkpoint).collect();
        apply_in(&*tx, "", projection, &events).await?;
        let position = checkpoint.max(through);
        tx.execute(
            "UPDATE rm_checkpoints SET position = $2 WHERE name = $1",
            &[&projection.name(), &(position as i64)],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(position)
    }

    pub async fn record_failure(
        &self,
        projection: Projection,
        position: Position,
        reason: String,
    ) -> Result<(), ProjectionError> {
        self.client()
            .await?
            .execute(
                "UPDATE rm_checkpoints SET failed_position = $2, error = $3 WHERE name = $1",
                &[&projection.name(), &(position as i64), &reason],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub async fn clear_failure(&self, projection: Projection) -> Result<(), ProjectionError> {
        self.client()
            .await?
            .execute(
                "UPDATE rm_checkpoints SET failed_position = NULL, error = NULL WHERE name = $1",
                &[&projection.name()],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Whether some session holds the advisory lock of `what`.
    pub async fn lock_is_held(&self, what: &str) -> Result<bool, ProjectionError> {
        let key = lock_key(what);
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND ((classid::bigint << 32) | objid::bigint) = $1 AND objsubid = 1)",
                &[&key],
            )
            .await
            .map_err(db_error)?;
        Ok(row.get(0))
    }

    async fn accounts_where(
        &self,
        filter: &str,
        value: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Vec<AccountRow>, ProjectionError> {
        let client = self.client().await?;
        let sql = format!("SELECT row FROM rm_accounts WHERE {filter} ORDER BY username, invited_at");
        let statement = client.prepare_cached(&sql).await.map_err(db_error)?;
        let rows = client.query(&statement, &[value]).await.map_err(db_error)?;
        rows.iter().map(|r| serde_json::from_str(r.get::<_, &str>(0)).map_err(corrupt)).collect()
    }

    pub async fn login_lookup(&self, username: &Username) -> Result<Option<AccountRow>, ProjectionError> {
        Ok(self.accounts_where("username = $1 AND state != 'deleted'", &username.as_str()).await?.pop())
    }

    pub async fn account_view(&self, account_id: AccountId) -> Result<Option<AccountRow>, ProjectionError> {
        Ok(self.accounts_where("account_id = $1", &account_id.0).await?.pop())
    }

    pub async fn account_by_invitation(&self, digest: SecretDigest) -> Result<Option<AccountRow>, ProjectionError> {
        Ok(self.accounts_where("invitation_digest = $1", &digest.0.as_slice()).await?.pop())
    }

    pub async fn org_directory(&self, org_id: &OrgId) -> Result<Vec<DirectoryEntry>, ProjectionError> {
        let rows = self.accounts_where("org_id = $1", &org_id.0.as_str()).await?;
        Ok(rows
            .into_iter()
            .map(|row| DirectoryEntry {
                account_id: row.account_id,
                role: role_name(row.role).to_string(),
                state: row.status().as_str().to_string(),
                mfa_requirement: mfa_requirement_name(row.mfa_requirement).to_string(),
                last_sign_in: row.last_sign_in,
                username: row.username,
            })
            .collect())
    }

    pub async fn org_items(&self, org_id: &OrgId) -> Result<Vec<OrgItem>, ProjectionError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT org_id, kind, item_id, title, opened_at, starts_at, ends_at FROM rm_org_items \
                 WHERE org_id = $1 ORDER BY coalesce(starts_at, opened_at), item_id",
            )
            .await
            .map_err(db_error)?;
        let rows = client.query(&statement, &[&org_id.0]).await.map_err(db_error)?;
        rows.iter().map(read_item).collect()
    }

    /// Every row and checkpoint, in key order (for checks that two builds agree).
    pub async fn dump(&self) -> Result<(Vec<AccountRow>, Vec<OrgItem>, Vec<Checkpoint>), ProjectionError> {
        let client = self.client().await?;
        let accounts = client.query("SELECT row FROM rm_accounts ORDER BY account_id", &[]).await.map_err(db_error)?;
        let accounts = accounts
            .iter()
            .map(|r| serde_json::from_str(r.get::<_, &str>(0)).map_err(corrupt))
            .collect::<Result<Vec<AccountRow>, _>>()?;
        let items = client
            .query(
                "SELECT org_id, kind, item_id, title, opened_at, starts_at, ends_at FROM rm_org_items \
                 ORDER BY org_id, kind, item_id",
                &[],
            )
            .await
            .map_err(db_error)?;
        let items = items.iter().map(read_item).collect::<Result<Vec<_>, _>>()?;
        let mut checkpoints = Vec::new();
        for projection in ALL {
            checkpoints.push(read_checkpoint(&**client, projection, false).await?);
        }
        Ok((accounts, items, checkpoints))
    }

    /// Writes a rebuilt copy (`rm_*__next`) from rows replayed in memory, indexes included.
    pub(crate) async fn write_copy(
        &self,
        projections: &[Projection],
        memory: &rows::MemoryRows,
    ) -> Result<(), ProjectionError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        // Only the rebuilt projections' copies: a rebuild of another may be writing its own.
        for projection in projections {
            let table = table(*projection);
            tx.batch_execute(&format!("DROP TABLE IF EXISTS {table}{NEXT}")).await.map_err(db_error)?;
            tx.batch_execute(&create_table(*projection, NEXT)).await.map_err(db_error)?;
        }
        if projections.contains(&Projection::Accounts) {
            let mut rows: Vec<&AccountRow> = memory.accounts.values().collect();
            rows.sort_unstable_by_key(|row| row.account_id);
            copy_accounts(&tx, NEXT, &rows).await?;
        }
        if projections.contains(&Projection::OrgWidgets) {
            for item in memory.items.values() {
                upsert_item(&*tx, NEXT, item).await?;
            }
        }
        for projection in projections {
            let generation = read_checkpoint(&*tx, *projection, false).await?.generation + 1;
            tx.batch_execute(&create_indexes(*projection, NEXT, generation)).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    /// Catches the copy up from `next` and swaps it in, in one transaction that holds the
    /// checkpoints' row locks (the live runner waits) and the tables' locks (readers wait a
    /// moment, then read the new copy). Returns the events read and the new checkpoint.
    pub(crate) async fn swap<S: tenure_store::EventStore>(
        &self,
        store: &S,
        projections: &[Projection],
        mut next: Position,
    ) -> Result<(u64, Position), ProjectionError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let mut generations = Vec::new();
        for projection in projections {
            generations.push(read_checkpoint(&*tx, *projection, true).await?.generation + 1);
        }
        let mut events = 0u64;
        loop {
            let page = store.read_all(next, crate::runner::PAGE).await?;
            let Some(last) = page.last().map(|e| e.position) else { break };
            events += page.len() as u64;
            for projection in projections {
                let mut envelopes = Vec::new();
                for recorded in page.iter().filter(|r| projection.handles(&r.stream)) {
                    envelopes.push(crate::rebuild::decode(*projection, recorded.clone())?);
                }
                apply_in(&*tx, NEXT, *projection, &envelopes.iter().collect::<Vec<_>>()).await?;
            }
            next = last + 1;
        }
        for (projection, generation) in projections.iter().zip(generations) {
            let table = table(*projection);
            tx.batch_execute(&format!("DROP TABLE {table}; ALTER TABLE {table}{NEXT} RENAME TO {table};"))
                .await
                .map_err(db_error)?;
            tx.execute(
                "UPDATE rm_checkpoints SET position = $2, generation = $3, failed_position = NULL, error = NULL \
                 WHERE name = $1",
                &[&projection.name(), &((next - 1) as i64), &(generation as i64)],
            )
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok((events, next - 1))
    }
}

/// A transaction at READ COMMITTED, whatever the database's default: the checkpoint row locks
/// order the runner and a rebuild's swap only if each statement sees what was committed before.
async fn begin(client: &mut deadpool_postgres::Object) -> Result<deadpool_postgres::Transaction<'_>, ProjectionError> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(db_error)
}

async fn read_checkpoint(
    client: &impl GenericClient,
    projection: Projection,
    for_update: bool,
) -> Result<Checkpoint, ProjectionError> {
    let sql = if for_update {
        "SELECT position, generation, failed_position, error FROM rm_checkpoints WHERE name = $1 FOR UPDATE"
    } else {
        "SELECT position, generation, failed_position, error FROM rm_checkpoints WHERE name = $1"
    };
    let row = client.query_one(sql, &[&projection.name()]).await.map_err(db_error)?;
    let failed = match (row.get::<_, Option<i64>>(2), row.get::<_, Option<String>>(3)) {
        (Some(position), Some(reason)) => Some((position as u64, reason)),
        _ => None,
    };
    Ok(Checkpoint { position: row.get::<_, i64>(0) as u64, generation: row.get::<_, i64>(1) as u64, failed })
}

/// The rows one batch touches, loaded before it and written back after it.
#[derive(Default)]
struct Batch {
    accounts: HashMap<AccountId, AccountRow>,
    changed: HashSet<AccountId>,
    /// Item changes in order: `Some` puts the item, `None` removes the key.
    items: Vec<((String, ItemKind, String), Option<OrgItem>)>,
}

impl AccountRows for Batch {
    type Error = std::convert::Infallible;

    fn insert(&mut self, row: AccountRow) -> Result<(), Self::Error> {
        self.changed.insert(row.account_id);
        self.accounts.insert(row.account_id, row);
        Ok(())
    }

    fn update(&mut self, id: AccountId, change: impl FnOnce(&mut AccountRow)) -> Result<bool, Self::Error> {
        let Some(row) = self.accounts.get_mut(&id) else { return Ok(false) };
        change(row);
        self.changed.insert(id);
        Ok(true)
    }
}

impl OrgItems for Batch {
    type Error = std::convert::Infallible;

    fn insert(&mut self, item: OrgItem) -> Result<(), Self::Error> {
        self.items.push(((item.org_id.clone(), item.kind, item.item_id.clone()), Some(item)));
        Ok(())
    }

    fn remove(&mut self, org_id: &str, kind: ItemKind, item_id: &str) -> Result<(), Self::Error> {
        self.items.push(((org_id.to_string(), kind, item_id.to_string()), None));
        Ok(())
    }
}

/// Applies `events` to the tables with `suffix`: the rows they touch are loaded, changed in
/// memory by the same code as everywhere else, and written back.
async fn apply_in(
    client: &impl GenericClient,
    suffix: &str,
    projection: Projection,
    events: &[&Envelope],
) -> Result<(), ProjectionError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut batch = Batch::default();
    if projection == Projection::Accounts {
        let ids: Vec<uuid::Uuid> =
            events.iter().filter_map(|e| AccountId::from_stream(&e.recorded.stream)).map(|a| a.0).collect();
        let sql = format!("SELECT row FROM rm_accounts{suffix} WHERE account_id = ANY($1)");
        for row in client.query(&sql, &[&ids]).await.map_err(db_error)? {
            let row: AccountRow = serde_json::from_str(row.get::<_, &str>(0)).map_err(corrupt)?;
            batch.accounts.insert(row.account_id, row);
        }
    }
    for envelope in events {
        let applied = match projection {
            Projection::Accounts => rows::apply_account(&mut batch, envelope),
            Projection::OrgWidgets => rows::apply_org(&mut batch, envelope),
        };
        if let Err(RowError::Apply(reason)) = applied {
            return Err(poison(projection, envelope, reason.to_string()));
        }
    }
    let changed: Vec<&AccountRow> = batch.changed.iter().filter_map(|id| batch.accounts.get(id)).collect();
    upsert_accounts(client, suffix, &changed).await?;
    for ((org_id, kind, item_id), item) in &batch.items {
        match item {
            Some(item) => upsert_item(client, suffix, item).await?,
            None => {
                let sql = format!("DELETE FROM rm_org_items{suffix} WHERE org_id = $1 AND kind = $2 AND item_id = $3");
                client.execute(&sql, &[org_id, &kind.as_str(), item_id]).await.map_err(db_error)?;
            }
        }
    }
    Ok(())
}

async fn upsert_accounts(
    client: &impl GenericClient,
    suffix: &str,
    rows: &[&AccountRow],
) -> Result<(), ProjectionError> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.account_id.0).collect();
    let usernames: Vec<&str> = rows.iter().map(|r| r.username.as_str()).collect();
    let orgs: Vec<&str> = rows.iter().map(|r| r.org_id.as_str()).collect();
    let states: Vec<&str> = rows.iter().map(|r| r.status().as_str()).collect();
    let digests: Vec<Option<&[u8]>> =
        rows.iter().map(|r| r.invitation.as_ref().map(|i| i.token_digest.0.as_slice())).collect();
    let invited: Vec<i64> = rows.iter().map(|r| r.invited_at.timestamp_micros()).collect();
    let json = rows.iter().map(|r| serde_json::to_string(r).map_err(corrupt)).collect::<Result<Vec<_>, _>>()?;
    let sql = format!(
        "INSERT INTO rm_accounts{suffix} (account_id, username, org_id, state, invitation_digest, invited_at, row) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bigint[], $7::text[]) \
         ON CONFLICT (account_id) DO UPDATE SET username = excluded.username, org_id = excluded.org_id, \
         state = excluded.state, invitation_digest = excluded.invitation_digest, invited_at = excluded.invited_at, \
         row = excluded.row"
    );
    client.execute(&sql, &[&ids, &usernames, &orgs, &states, &digests, &invited, &json]).await.map_err(db_error)?;
    Ok(())
}

/// Fills a fresh table with binary `COPY`, the fastest way in.
async fn copy_accounts(
    tx: &deadpool_postgres::Transaction<'_>,
    suffix: &str,
    rows: &[&AccountRow],
) -> Result<(), ProjectionError> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::Type;
    let sink = tx
        .copy_in(&format!(
            "COPY rm_accounts{suffix} (account_id, username, org_id, state, invitation_digest, invited_at, row) \
             FROM STDIN BINARY"
        ))
        .await
        .map_err(db_error)?;
    let types = [Type::UUID, Type::TEXT, Type::TEXT, Type::TEXT, Type::BYTEA, Type::INT8, Type::TEXT];
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for row in rows {
        let json = serde_json::to_string(row).map_err(corrupt)?;
        let digest = row.invitation.as_ref().map(|i| i.token_digest.0.as_slice());
        writer
            .as_mut()
            .write(&[
                &row.account_id.0,
                &row.username,
                &row.org_id,
                &row.status().as_str(),
                &digest,
                &row.invited_at.timestamp_micros(),
                &json,
            ])
            .await
            .map_err(db_error)?;
    }
    writer.finish().await.map_err(db_error)?;
    Ok(())
}

async fn upsert_item(client: &impl GenericClient, suffix: &str, item: &OrgItem) -> Result<(), ProjectionError> {
    let micros = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_micros());
    let sql = format!(
        "INSERT INTO rm_org_items{suffix} (org_id, kind, item_id, title, opened_at, starts_at, ends_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, kind, item_id) DO UPDATE SET \
         title = excluded.title, opened_at = excluded.opened_at, starts_at = excluded.starts_at, ends_at = excluded.ends_at"
    );
    client
        .execute(
            &sql,
            &[
                &item.org_id,
                &item.kind.as_str(),
                &item.item_id,
                &item.title,
                &item.opened_at.timestamp_micros(),
                &micros(item.starts_at),
                &micros(item.ends_at),
            ],
        )
        .await
        .map_err(db_error)?;
    Ok(())
}

fn read_item(row: &tokio_postgres::Row) -> Result<OrgItem, ProjectionError> {
    let time = |micros: i64| DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt("a time out of range"));
    let kind: String = row.get(1);
    Ok(OrgItem {
        org_id: row.get(0),
        kind: ItemKind::parse(&kind).ok_or_else(|| corrupt(format!("kind = {kind:?}")))?,
        item_id: row.get(2),
        title: row.get(3),
        opened_at: time(row.get(4))?,
        starts_at: row.get::<_, Option<i64>>(5).map(time).transpose()?,
        ends_at: row.get::<_, Option<i64>>(6).map(time).transpose()?,
    })
}

/// Takes the advisory lock of `what`; `None` when another session holds it.
pub(crate) async fn try_lock(url: &str, what: &str) -> Result<Option<PgLock>, ProjectionError> {
    Ok(tenure_store::postgres::try_advisory_lock(url, lock_key(what)).await?)
}

pub(crate) type PgLock = tenure_store::postgres::AdvisoryLock;
