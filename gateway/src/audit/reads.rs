//! Who may read what, and the record of every read: each auditor read is an `AuditorRead` event
//! on the auditor's own stream, appended before the answer is given (an answer that cannot be
//! recorded is not given), refused reads included.

use std::time::Duration;

use tenure_domain::OrgId;
use tenure_domain::decide::Command;
use tenure_domain::events::{AuditorRead, Role};
use tenure_store::{Actor, ExecuteError};

use crate::error::Error;
use crate::http::session::SignedIn;
use crate::state::App;

/// How often a read is tried again when the auditor's other reads took the stream's next
/// version first.
const CONTENDED_RETRIES: u32 = 30;

/// Whose histories an auditor may read.
pub enum Scope {
    Org(OrgId),
    AllOrgs,
}

impl Scope {
    /// Whether the scope covers an account of `org`, which audits every org if `all_orgs`: an
    /// operator's auditor is read only by auditors of every org, since its reads name accounts
    /// of every org.
    pub fn covers(&self, org: &OrgId, all_orgs: bool) -> bool {
        match self {
            Scope::Org(own) => own == org && !all_orgs,
            Scope::AllOrgs => true,
        }
    }

    pub fn org(&self) -> Option<&OrgId> {
        match self {
            Scope::Org(own) => Some(own),
            Scope::AllOrgs => None,
        }
    }
}

pub fn require_auditor(signed_in: &SignedIn) -> Result<(), Error> {
    if signed_in.account.role == Role::Auditor { Ok(()) } else { Err(Error::AuditorsOnly) }
}

/// The auditor's scope, from the auditor's own history; anyone else is refused.
pub async fn scope(app: &App, auditor: &SignedIn) -> Result<Scope, Error> {
    require_auditor(auditor)?;
    let state = app.accounts.state(auditor.account.account_id).await.map_err(|e| Error::refused(e, app.clock.now()))?;
    let invited = state.invited.filter(|i| i.role == Role::Auditor).ok_or(Error::AuditorsOnly)?;
    Ok(if invited.all_orgs { Scope::AllOrgs } else { Scope::Org(invited.org.id) })
}

/// Records `read` on the auditor's stream.
pub async fn record(app: &App, auditor: &SignedIn, read: AuditorRead) -> Result<(), Error> {
    let id = auditor.account.account_id;
    let meta = crate::state::meta(Actor::User(id));
    let mut attempt = 0;
    loop {
        let ctx = app.ctx();
        match app.accounts.execute(id, Command::RecordAuditRead(read.clone()), &ctx, &meta).await {
            Ok(_) => return Ok(()),
            // One auditor's reads in parallel race for the stream's next version: each is
            // recorded in turn.
            Err(ExecuteError::Contended) if attempt < CONTENDED_RETRIES => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(rand::random_range(1..=10))).await;
            }
            Err(error) => return Err(Error::refused(error, ctx.now)),
        }
    }
}

/// Records `read`, refused if `answer` is an error, then gives the answer.
pub async fn recorded<T>(
    app: &App,
    auditor: &SignedIn,
    read: AuditorRead,
    answer: Result<T, Error>,
) -> Result<T, Error> {
    record(app, auditor, AuditorRead { refused: answer.is_err(), ..read }).await?;
    answer
}
