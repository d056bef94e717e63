//! The org items table on PostgreSQL (`rm_org_items`), and the query on it.

use chrono::{DateTime, Utc};
use tenure_domain::OrgId;
use tokio_postgres::{Client, Transaction};

use super::{ItemKey, ItemKind, OrgItem, OrgItems};
use crate::storage::ProjectionError;
use crate::storage::postgres::{PgStorage, PgTables, corrupt, db_error};

const COLUMNS: &str = "org_id, kind, item_id, title, opened_at, starts_at, ends_at";

impl PgTables for OrgItems {
    const TABLE: &'static str = "rm_org_items";

    fn create_table(suffix: &str) -> String {
        format!(
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
        )
    }

    fn create_indexes(_: &str, _: u64) -> String {
        String::new()
    }

    async fn load(_: &Transaction<'_>, _: &str, _: &[ItemKey]) -> Result<Vec<OrgItem>, ProjectionError> {
        // The definition reads no item before changing it.
        Ok(Vec::new())
    }

    /// All in one statement: one by one, each item was two round trips (a rebuild's 3,000
    /// items took half a second).
    async fn put(tx: &Transaction<'_>, suffix: &str, items: &[&OrgItem]) -> Result<(), ProjectionError> {
        if items.is_empty() {
            return Ok(());
        }
        let micros = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_micros());
        let orgs: Vec<&str> = items.iter().map(|i| i.org_id.as_str()).collect();
        let kinds: Vec<&str> = items.iter().map(|i| i.kind.as_str()).collect();
        let ids: Vec<&str> = items.iter().map(|i| i.item_id.as_str()).collect();
        let titles: Vec<&str> = items.iter().map(|i| i.title.as_str()).collect();
        let opened: Vec<i64> = items.iter().map(|i| i.opened_at.timestamp_micros()).collect();
        let starts: Vec<Option<i64>> = items.iter().map(|i| micros(i.starts_at)).collect();
        let ends: Vec<Option<i64>> = items.iter().map(|i| micros(i.ends_at)).collect();
        // Keys are unique within a call (rows changed in a batch, or all rows of a copy), as
        // `ON CONFLICT … DO UPDATE` requires within one statement.
        let sql = format!(
            "INSERT INTO rm_org_items{suffix} ({COLUMNS}) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[]) \
             ON CONFLICT (org_id, kind, item_id) DO UPDATE SET title = excluded.title, \
             opened_at = excluded.opened_at, starts_at = excluded.starts_at, ends_at = excluded.ends_at"
        );
        tx.execute(&sql, &[&orgs, &kinds, &ids, &titles, &opened, &starts, &ends]).await.map_err(db_error)?;
        Ok(())
    }

    async fn remove(
        tx: &Transaction<'_>,
        suffix: &str,
        (org_id, kind, item_id): &ItemKey,
    ) -> Result<(), ProjectionError> {
        let sql = format!("DELETE FROM rm_org_items{suffix} WHERE org_id = $1 AND kind = $2 AND item_id = $3");
        tx.execute(&sql, &[org_id, &kind.as_str(), item_id]).await.map_err(db_error)?;
        Ok(())
    }

    async fn all(client: &Client) -> Result<Vec<OrgItem>, ProjectionError> {
        let rows = client.query(&format!("SELECT {COLUMNS} FROM rm_org_items"), &[]).await.map_err(db_error)?;
        let mut items = rows.iter().map(read).collect::<Result<Vec<_>, _>>()?;
        items.sort_by_key(<OrgItems as crate::projection::Definition>::key);
        Ok(items)
    }
}

fn read(row: &tokio_postgres::Row) -> Result<OrgItem, ProjectionError> {
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

impl PgStorage {
    pub(crate) async fn org_items(&self, org_id: &OrgId) -> Result<Vec<OrgItem>, ProjectionError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM rm_org_items WHERE org_id = $1 ORDER BY coalesce(starts_at, opened_at), item_id"
            ))
            .await
            .map_err(db_error)?;
        client.query(&statement, &[&org_id.0]).await.map_err(db_error)?.iter().map(read).collect()
    }
}
