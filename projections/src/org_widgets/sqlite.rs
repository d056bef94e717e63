//! The org items table in `projections.db`, and the query on it.

use rusqlite::types::Value;
use rusqlite::{Connection, Row, params};
use tenure_domain::OrgId;

use super::{ItemKey, ItemKind, OrgItem, OrgItems};
use crate::storage::ProjectionError;
use crate::storage::sqlite::{SqliteStorage, SqliteTables, bad, optional_time, time};

const COLUMNS: &str = "org_id, kind, item_id, title, opened_at, starts_at, ends_at";

impl SqliteTables for OrgItems {
    const TABLES: &'static [&'static str] = &["org_items"];

    fn create_tables(suffix: &str) -> String {
        format!(
            "CREATE TABLE org_items{suffix} (
                org_id    TEXT NOT NULL,
                kind      TEXT NOT NULL,
                item_id   TEXT NOT NULL,
                title     TEXT NOT NULL,
                opened_at INTEGER NOT NULL,
                starts_at INTEGER,
                ends_at   INTEGER,
                PRIMARY KEY (org_id, kind, item_id)
            ) WITHOUT ROWID;"
        )
    }

    fn create_indexes(_: &str, _: u64) -> String {
        String::new()
    }

    fn load(_: &Connection, _: &str, _: &[ItemKey]) -> rusqlite::Result<Vec<OrgItem>> {
        // The definition reads no item before changing it.
        Ok(Vec::new())
    }

    fn insert_sql(suffix: &str) -> String {
        format!("INSERT OR REPLACE INTO org_items{suffix} ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
    }

    fn values(item: &OrgItem) -> Vec<Value> {
        vec![
            item.org_id.clone().into(),
            item.kind.as_str().to_string().into(),
            item.item_id.clone().into(),
            item.title.clone().into(),
            item.opened_at.timestamp_micros().into(),
            item.starts_at.map(|t| t.timestamp_micros()).into(),
            item.ends_at.map(|t| t.timestamp_micros()).into(),
        ]
    }

    fn remove(c: &Connection, suffix: &str, (org_id, kind, item_id): &ItemKey) -> rusqlite::Result<()> {
        let sql = format!("DELETE FROM org_items{suffix} WHERE org_id = ?1 AND kind = ?2 AND item_id = ?3");
        c.prepare_cached(&sql)?.execute(params![org_id, kind.as_str(), item_id])?;
        Ok(())
    }

    fn all(c: &Connection) -> rusqlite::Result<Vec<OrgItem>> {
        let mut items: Vec<OrgItem> =
            c.prepare(&format!("SELECT {COLUMNS} FROM org_items"))?.query_map([], read)?.collect::<Result<_, _>>()?;
        items.sort_by_key(<OrgItems as crate::projection::Definition>::key);
        Ok(items)
    }
}

fn read(row: &Row<'_>) -> rusqlite::Result<OrgItem> {
    let kind: String = row.get(1)?;
    Ok(OrgItem {
        org_id: row.get(0)?,
        kind: ItemKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        item_id: row.get(2)?,
        title: row.get(3)?,
        opened_at: time(row.get(4)?)?,
        starts_at: optional_time(row.get(5)?)?,
        ends_at: optional_time(row.get(6)?)?,
    })
}

impl SqliteStorage {
    pub(crate) async fn org_items(&self, org_id: &OrgId) -> Result<Vec<OrgItem>, ProjectionError> {
        let org_id = org_id.0.clone();
        self.read(move |c| {
            let mut statement = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM org_items WHERE org_id = ?1 ORDER BY coalesce(starts_at, opened_at), item_id"
            ))?;
            statement.query_map([org_id], read)?.collect::<rusqlite::Result<Vec<_>>>()
        })
        .await
    }
}
