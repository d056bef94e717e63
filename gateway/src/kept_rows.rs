//! The read-model rows that signed-in requests read on every call, kept in memory: account rows
//! (with the profile view made from one) and the org items behind the dashboard's widgets.
//!
//! They stay true by following `$all` (`follow`): any event on an account's or an org's stream
//! drops what is kept of it. A row read from the read models is kept only if the read models
//! already reflected every event the follower has passed, so no event can slip between the read
//! and the keeping. Kept rows are believed only while the follower keeps up (its last completed
//! look began less than `followed::FRESH_FOR` ago) and has passed every append this process
//! made, which
//! gives a request the effects of this gateway's own writes at once and other gateways' within
//! `followed::FRESH_FOR` (ADR 0018).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tenure_domain::{AccountId, OrgId};
use tenure_projections::{AccountRow, OrgWidgets, Projection, ProjectionDb, ProjectionError};
use tenure_store::{EventStore, Position, Store};
use tokio::sync::watch;

use crate::followed::{Freshness, insert_bounded};
use crate::profile::flow::ProfileView;

/// How often the follower looks for other processes' events (this one's wake it at once).
const LOOK_EVERY: Duration = Duration::from_millis(100);
const PAGE: usize = 1024;
const ACCOUNTS: usize = 100_000;
const ORGS: usize = 10_000;

/// An account row, and the profile view made from it once asked for.
pub struct AccountEntry {
    pub row: AccountRow,
    profile: Mutex<Option<Arc<ProfileView>>>,
}

impl AccountEntry {
    pub fn profile(&self) -> Option<Arc<ProfileView>> {
        self.profile.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn keep_profile(&self, view: Arc<ProfileView>) {
        *self.profile.lock().unwrap_or_else(|p| p.into_inner()) = Some(view);
    }
}

struct Kept {
    /// Every event up to here has dropped what it changed.
    through: Position,
    accounts: HashMap<AccountId, Arc<AccountEntry>>,
    /// Each org's widgets with every maintenance window, past ones too: they are cut by time
    /// when read.
    orgs: HashMap<OrgId, Arc<OrgWidgets>>,
}

pub struct KeptRows {
    kept: Mutex<Kept>,
    /// The last position this process appended.
    appended: watch::Receiver<Position>,
    freshness: Freshness,
}

impl KeptRows {
    pub fn new(store: &Store) -> Arc<KeptRows> {
        Arc::new(KeptRows {
            kept: Mutex::new(Kept { through: Position::MAX, accounts: HashMap::new(), orgs: HashMap::new() }),
            appended: store.appended(),
            freshness: Freshness::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether kept rows may be believed now (see the module's comment); `kept` is locked.
    fn believed(&self, kept: &Kept) -> bool {
        self.freshness.fresh() && kept.through >= *self.appended.borrow()
    }

    /// The account's row, from memory when it is kept and believed.
    pub async fn account_entry(
        &self,
        read_models: &ProjectionDb,
        account: AccountId,
    ) -> Result<Option<Arc<AccountEntry>>, ProjectionError> {
        {
            let kept = self.lock();
            if self.believed(&kept)
                && let Some(entry) = kept.accounts.get(&account)
            {
                return Ok(Some(entry.clone()));
            }
        }
        let reflects = read_models.checkpoint(Projection::Accounts).await?.position;
        let Some(row) = read_models.account_view(account).await? else { return Ok(None) };
        let entry = Arc::new(AccountEntry { row, profile: Mutex::new(None) });
        let mut kept = self.lock();
        if reflects >= kept.through {
            insert_bounded(&mut kept.accounts, ACCOUNTS, account, entry.clone());
        }
        Ok(Some(entry))
    }

    /// The org's widgets as they stand at `now`, from memory when kept and believed.
    pub async fn org_widgets(
        &self,
        read_models: &ProjectionDb,
        org: &OrgId,
        now: DateTime<Utc>,
    ) -> Result<OrgWidgets, ProjectionError> {
        let found = {
            let kept = self.lock();
            if self.believed(&kept) { kept.orgs.get(org).cloned() } else { None }
        };
        let all = match found {
            Some(all) => all,
            None => {
                let reflects = read_models.checkpoint(Projection::OrgWidgets).await?.position;
                let all = Arc::new(read_models.org_widgets(org, DateTime::<Utc>::MIN_UTC).await?);
                let mut kept = self.lock();
                if reflects >= kept.through {
                    insert_bounded(&mut kept.orgs, ORGS, org.clone(), all.clone());
                }
                all
            }
        };
        let mut widgets = (*all).clone();
        widgets.upcoming_maintenance.retain(|item| item.ends_at.is_some_and(|end| end > now));
        Ok(widgets)
    }

    /// Follows `$all` from its head, dropping what each event changes, until `stop` is sent.
    pub async fn follow(self: Arc<Self>, store: Store, mut stop: watch::Receiver<bool>) {
        let mut appended = store.appended();
        // Once the store's announcements end (it shut down), only the poll wakes the follower.
        let mut announced = true;
        let mut next = None;
        loop {
            let began = Instant::now();
            match self.look(&store, next).await {
                Ok(through) => {
                    next = Some(through + 1);
                    self.freshness.looked(began);
                }
                Err(error) => tracing::warn!(
                    "read models are read from the database until the log can be followed again: {error}"
                ),
            }
            tokio::select! {
                changed = appended.changed(), if announced => announced = changed.is_ok(),
                _ = tokio::time::sleep(LOOK_EVERY) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Reads the events from `next` (the head at first) and drops what they change; returns the
    /// last position passed.
    async fn look(&self, store: &Store, next: Option<Position>) -> Result<Position, tenure_store::StoreError> {
        let mut next = match next {
            Some(next) => next,
            None => {
                let head = store.head().await?;
                let mut kept = self.lock();
                kept.accounts.clear();
                kept.orgs.clear();
                kept.through = head;
                return Ok(head);
            }
        };
        loop {
            let page = store.read_all(next, PAGE).await?;
            let Some(last) = page.last().map(|e| e.position) else { return Ok(next - 1) };
            let mut kept = self.lock();
            for event in &page {
                if let Some(account) = AccountId::from_stream(&event.stream) {
                    kept.accounts.remove(&account);
                } else if let Some(org) = event.stream.strip_prefix(OrgId::STREAM_PREFIX) {
                    kept.orgs.remove(&OrgId(org.to_string()));
                }
            }
            kept.through = last;
            next = last + 1;
            if page.len() < PAGE {
                return Ok(last);
            }
        }
    }
}
