//! The accounts table on PostgreSQL (`rm_accounts`), and the queries on it. A row is stored as
//! JSON beside the columns the queries filter on, so that the rows are exactly the ones the
//! definition computes, with no second mapping to keep in step.

use tenure_domain::{AccountId, OrgId, SecretDigest, Username};
use tokio_postgres::{Client, Transaction};

use super::{AccountRow, Accounts, DirectoryEntry};
use crate::storage::ProjectionError;
use crate::storage::copy_rows::CopyRows;
use crate::storage::postgres::{PgStorage, PgTables, corrupt, db_error};

const COLUMNS: &str = "account_id, username, org_id, state, invitation_digest, invited_at, row";

fn parse(row: &tokio_postgres::Row) -> Result<AccountRow, ProjectionError> {
    serde_json::from_str(row.get::<_, &str>(0)).map_err(corrupt)
}

impl PgTables for Accounts {
    const TABLE: &'static str = "rm_accounts";

    fn create_table(suffix: &str) -> String {
        format!(
            "CREATE TABLE rm_accounts{suffix} (
                 account_id        uuid   PRIMARY KEY,
                 username          text   NOT NULL,
                 org_id            text   NOT NULL,
                 state             text   NOT NULL,
                 invitation_digest bytea,
                 invited_at        bigint NOT NULL,
                 row               text   NOT NULL
             );"
        )
    }

    fn create_indexes(suffix: &str, generation: u64) -> String {
        format!(
            "CREATE INDEX rm_accounts_username_g{generation} ON rm_accounts{suffix} (username);
             CREATE INDEX rm_accounts_org_g{generation} ON rm_accounts{suffix} (org_id, username);
             CREATE INDEX rm_accounts_invitation_g{generation} ON rm_accounts{suffix} (invitation_digest)
                 WHERE invitation_digest IS NOT NULL;"
        )
    }

    async fn load(tx: &Transaction<'_>, suffix: &str, keys: &[AccountId]) -> Result<Vec<AccountRow>, ProjectionError> {
        let ids: Vec<uuid::Uuid> = keys.iter().map(|a| a.0).collect();
        let sql = format!("SELECT row FROM rm_accounts{suffix} WHERE account_id = ANY($1)");
        tx.query(&sql, &[&ids]).await.map_err(db_error)?.iter().map(parse).collect()
    }

    async fn put(tx: &Transaction<'_>, suffix: &str, rows: &[&AccountRow]) -> Result<(), ProjectionError> {
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
            "INSERT INTO rm_accounts{suffix} ({COLUMNS}) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bigint[], $7::text[]) \
             ON CONFLICT (account_id) DO UPDATE SET username = excluded.username, org_id = excluded.org_id, \
             state = excluded.state, invitation_digest = excluded.invitation_digest, invited_at = excluded.invited_at, \
             row = excluded.row"
        );
        tx.execute(&sql, &[&ids, &usernames, &orgs, &states, &digests, &invited, &json]).await.map_err(db_error)?;
        Ok(())
    }

    async fn remove(tx: &Transaction<'_>, suffix: &str, key: &AccountId) -> Result<(), ProjectionError> {
        let sql = format!("DELETE FROM rm_accounts{suffix} WHERE account_id = $1");
        tx.execute(&sql, &[&key.0]).await.map_err(db_error)?;
        Ok(())
    }

    /// Binary `COPY`, the fastest way into a fresh table.
    async fn fill(tx: &Transaction<'_>, suffix: &str, rows: &[&AccountRow]) -> Result<(), ProjectionError> {
        use tokio_postgres::types::Type;
        const TYPES: [Type; 7] = [Type::UUID, Type::TEXT, Type::TEXT, Type::TEXT, Type::BYTEA, Type::INT8, Type::TEXT];
        let copy = format!("COPY rm_accounts{suffix} ({COLUMNS}) FROM STDIN BINARY");
        let mut copying = CopyRows::start(tx, &copy, &TYPES).await?;
        for row in rows {
            let json = serde_json::to_string(row).map_err(corrupt)?;
            let digest = row.invitation.as_ref().map(|i| i.token_digest.0.as_slice());
            copying
                .push(&[
                    &row.account_id.0,
                    &row.username,
                    &row.org_id,
                    &row.status().as_str(),
                    &digest,
                    &row.invited_at.timestamp_micros(),
                    &json,
                ])
                .await?;
        }
        copying.finish().await
    }

    async fn all(client: &Client) -> Result<Vec<AccountRow>, ProjectionError> {
        let rows = client.query("SELECT row FROM rm_accounts ORDER BY account_id", &[]).await.map_err(db_error)?;
        rows.iter().map(parse).collect()
    }
}

impl PgStorage {
    async fn accounts_where(
        &self,
        filter: &str,
        value: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Vec<AccountRow>, ProjectionError> {
        let client = self.client().await?;
        let sql = format!("SELECT row FROM rm_accounts WHERE {filter} ORDER BY username, invited_at");
        let statement = client.prepare_cached(&sql).await.map_err(db_error)?;
        client.query(&statement, &[value]).await.map_err(db_error)?.iter().map(parse).collect()
    }

    pub(crate) async fn login_lookup(&self, username: &Username) -> Result<Option<AccountRow>, ProjectionError> {
        Ok(self.accounts_where("username = $1 AND state != 'deleted'", &username.as_str()).await?.pop())
    }

    pub(crate) async fn account_view(&self, account_id: AccountId) -> Result<Option<AccountRow>, ProjectionError> {
        Ok(self.accounts_where("account_id = $1", &account_id.0).await?.pop())
    }

    pub(crate) async fn account_by_invitation(
        &self,
        digest: SecretDigest,
    ) -> Result<Option<AccountRow>, ProjectionError> {
        Ok(self.accounts_where("invitation_digest = $1", &digest.0.as_slice()).await?.pop())
    }

    pub(crate) async fn find_accounts(
        &self,
        org_id: Option<&OrgId>,
        query: &str,
        limit: usize,
    ) -> Result<Vec<AccountRow>, ProjectionError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT row FROM rm_accounts WHERE strpos(username, $1) > 0 AND ($2::text IS NULL OR org_id = $2) \
                 ORDER BY username, invited_at LIMIT $3",
            )
            .await
            .map_err(db_error)?;
        let org_id = org_id.map(|o| o.0.as_str());
        let rows = client.query(&statement, &[&query, &org_id, &(limit as i64)]).await.map_err(db_error)?;
        rows.iter().map(parse).collect()
    }

    pub(crate) async fn org_directory(&self, org_id: &OrgId) -> Result<Vec<DirectoryEntry>, ProjectionError> {
        let rows = self.accounts_where("org_id = $1", &org_id.0.as_str()).await?;
        Ok(rows
            .into_iter()
            .map(|row| DirectoryEntry {
                account_id: row.account_id,
                role: row.role.as_str().to_string(),
                state: row.status().as_str().to_string(),
                mfa_requirement: row.mfa_requirement.as_str().to_string(),
                last_sign_in: row.last_sign_in,
                username: row.username,
            })
            .collect())
    }
}
