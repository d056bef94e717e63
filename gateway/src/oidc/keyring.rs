//! The signing keys as this gateway holds them: read from the key store, which every gateway
//! shares, and read again at most every half minute, so that a rotation reaches every gateway
//! within that time without a read per token.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use tenure_store::Keys;

use super::keys::{self, TokenKeys};
use crate::error::Error;

const FRESH_FOR: Duration = Duration::seconds(30);

#[derive(Default)]
pub struct Keyring {
    held: Mutex<Option<(DateTime<Utc>, Arc<TokenKeys>)>>,
}

impl Keyring {
    /// The keys in use at `now`.
    pub async fn keys(&self, store: &Keys, now: DateTime<Utc>) -> Result<Arc<TokenKeys>, Error> {
        if let Some((read_at, held)) = self.held.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
            && now - *read_at < FRESH_FOR
            && now >= *read_at
        {
            return Ok(held.clone());
        }
        let records = store.signing_keys(keys::make, now).await?;
        let fresh = Arc::new(TokenKeys::new(&records, now).map_err(Error::internal)?);
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, fresh.clone()));
        Ok(fresh)
    }
}
