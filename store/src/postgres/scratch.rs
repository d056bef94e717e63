//! Scratch databases for benchmarks and tests.

use tokio_postgres::Config;
use uuid::Uuid;

use super::{pg_error, redacted};
use crate::event_store::StoreError;

/// A database of its own on a PostgreSQL server, for a benchmark or a test: created under a
/// fresh name through `admin_url` (any database on the server the role may connect to) and
/// dropped when the value goes.
pub struct ScratchDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl ScratchDatabase {
    pub async fn create(admin_url: &str, prefix: &str) -> Result<ScratchDatabase, StoreError> {
        let connector = super::Connector::parse(admin_url)?;
        let mut config = connector.config.clone();
        let name = format!("{prefix}_{}", Uuid::now_v7().simple());
        let unreachable =
            |e: tokio_postgres::Error| pg_error(&format!("cannot reach PostgreSQL at {}", redacted(admin_url)), &e);
        let (client, connection) = connector.connect().await.map_err(unreachable)?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| pg_error("cannot create a scratch database", &e))?;
        config.dbname(&name);
        // The TLS parameters go along: tokio-postgres's Config does not hold them all.
        let tls: Vec<&str> = admin_url
            .split_once('?')
            .map(|(_, query)| {
                query.split('&').filter(|p| p.starts_with("sslmode=") || p.starts_with("sslrootcert=")).collect()
            })
            .unwrap_or_default();
        let url = if tls.is_empty() { to_url(&config) } else { format!("{}?{}", to_url(&config), tls.join("&")) };
        Ok(ScratchDatabase { url, admin_url: admin_url.to_string(), name })
    }
}

/// A URL for `config`: tokio-postgres has no way back from a `Config` to a URL.
fn to_url(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let password = config.get_password().map(|p| format!(":{}", String::from_utf8_lossy(p))).unwrap_or_default();
    format!("postgres://{user}{password}@{host}:{port}/{}", config.get_dbname().unwrap_or("postgres"))
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside async code: a small runtime of its own does the drop.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async {
                let Ok(connector) = super::Connector::parse(&admin_url) else { return };
                if let Ok((client, connection)) = connector.connect().await {
                    tokio::spawn(connection);
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}
