//! The write side for accounts: load an account's stream, fold it, decide, and append with the
//! expected version, retrying on a conflict with the fresh state.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use tenure_domain::decide::{self, Command, Ctx, Invite};
use tenure_domain::org::{Org, OrgCommand, OrgError, decide_org};
use tenure_domain::username_claim::{ClaimError, UsernameClaim};
use tenure_domain::{
    Account, AccountError, AccountEvent, AccountId, Catalogued, Event, OrgEvent, OrgId, Username, UsernameClaimEvent,
    events::ClientRegistered,
};

use crate::codec::{self, CodecError, Envelope, Meta};
use crate::event_store::{AppendError, EventStore, Expected, Position, QueuedMail, StoreError, StreamAppend, Version};
use crate::keys::{DataKey, KeyStore};
use crate::outbox::{self, Letter};

/// How often `execute` re-decides after losing a race before giving up. Each round reads only
/// what is new; gateways on one database that take turns on an account's attempts can make one
/// of them lose several rounds in a row, and giving up would answer a real account with "try
/// again" where a made-up name never gets it.
pub const MAX_ATTEMPTS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error(transparent)]
    Rejected(#[from] AccountError),
    #[error(transparent)]
    Username(#[from] ClaimError),
    #[error(transparent)]
    Org(#[from] OrgError),
    #[error("the account kept changing under concurrent writers; try again")]
    Contended,
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AppendError> for ExecuteError {
    fn from(error: AppendError) -> Self {
        match error {
            AppendError::Conflict { .. } => ExecuteError::Contended,
            AppendError::Store(error) => ExecuteError::Store(error),
        }
    }
}

/// Seals each letter with the account's key, bound to its id: the mail is erased with the
/// account, and cannot be moved to another account's row.
fn seal(
    id: AccountId,
    key: Option<&DataKey>,
    ctx: &Ctx,
    letters: Vec<Letter>,
) -> Result<Vec<QueuedMail>, ExecuteError> {
    if letters.is_empty() {
        return Ok(Vec::new());
    }
    let key = key.ok_or_else(|| StoreError::Backend(format!("no data key to seal mail to {id} with")))?;
    letters
        .into_iter()
        .map(|letter| {
            Ok(QueuedMail {
                id: letter.id,
                account: id.0,
                kind: letter.kind.to_string(),
                created_at: ctx.now,
                sealed: key.seal(&outbox::context(letter.id, id.0), &letter.body)?,
            })
        })
        .collect()
}

fn expected(version: Version) -> Expected {
    if version == 0 { Expected::NoStream } else { Expected::Exact(version) }
}

/// Accounts whose folded state is kept, so that a command reads only the events appended since:
/// a stream that grows long (an attack leaves a failure per guess) then costs no more to decide
/// on than a short one. Beyond this many, the cache starts again empty.
const CACHED_STATES: usize = 10_000;

#[derive(Clone)]
pub struct Accounts<S, K> {
    pub store: S,
    pub keys: K,
    /// Folded states by account, at the version they were folded to. They hold opened personal
    /// data, as a state being decided on does; a deleted account's is never kept.
    states: Arc<Mutex<HashMap<AccountId, Account>>>,
    orgs: Arc<Mutex<HashMap<OrgId, Org>>>,
    /// The orgs that have registered clients, as of the position before the one kept, so that
    /// finding every client reads only the log's tail since the last time.
    client_orgs: Arc<Mutex<(Position, BTreeSet<String>)>>,
}

impl<S: EventStore, K: KeyStore> Accounts<S, K> {
    pub fn new(store: S, keys: K) -> Self {
        Accounts { store, keys, states: Arc::default(), orgs: Arc::default(), client_orgs: Arc::default() }
    }

    /// The account's state now: the kept state brought up to date with the events appended since
    /// it was folded (all of them the first time).
    pub async fn state(&self, id: AccountId) -> Result<Account, ExecuteError> {
        let key = self.keys.get(id).await?;
        self.state_with(id, key.as_ref()).await
    }

    async fn state_with(&self, id: AccountId, key: Option<&DataKey>) -> Result<Account, ExecuteError> {
        let mut state = self.kept(id).unwrap_or_default();
        let mut recorded = self.store.read_stream(&id.stream(), state.version + 1).await?;
        if recorded.first().is_some_and(|event| event.version != state.version + 1) {
            // Not the stream the state was folded from (a store replaced under a running
            // process): fold it all again.
            state = Account::default();
            recorded = self.store.read_stream(&id.stream(), 1).await?;
        }
        for event in recorded {
            state = tenure_domain::account::evolve(state, &codec::decode_as(event, key)?.event);
        }
        self.keep(id, &state);
        Ok(state)
    }

    fn kept(&self, id: AccountId) -> Option<Account> {
        self.states.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    fn keep(&self, id: AccountId, state: &Account) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        if state.deleted_at.is_some() {
            states.remove(&id);
            return;
        }
        if states.len() >= CACHED_STATES && !states.contains_key(&id) {
            states.clear();
        }
        states.insert(id, state.clone());
    }

    /// The account's events, decoded, and its folded state.
    pub async fn load(&self, id: AccountId) -> Result<(Account, Vec<Envelope<AccountEvent>>), ExecuteError> {
        let recorded = self.store.read_stream(&id.stream(), 1).await?;
        let key = self.keys.get(id).await?;
        let envelopes =
            recorded.into_iter().map(|r| codec::decode_as(r, key.as_ref())).collect::<Result<Vec<_>, _>>()?;
        let state = Account::fold(envelopes.iter().map(|e| &e.event));
        Ok((state, envelopes))
    }

    /// Decides `command` on the account's state and appends what it decides. The kept state is
    /// tried first without reading the stream: appending expects its version, so a state that
    /// fell behind (another gateway wrote) loses the race and is brought up to date, and a
    /// refusal from it is checked again on the up-to-date state before it is believed.
    pub async fn execute(
        &self,
        id: AccountId,
        command: Command,
        ctx: &Ctx,
        meta: &Meta,
    ) -> Result<Vec<AccountEvent>, ExecuteError> {
        self.execute_mailing(id, command, ctx, meta, |_, _| Vec::new()).await
    }

    /// As `execute`; `compose` names the mail the decided events call for, given the state they
    /// were decided on, and that mail is queued in the same transaction as the events.
    pub async fn execute_mailing(
        &self,
        id: AccountId,
        command: Command,
        ctx: &Ctx,
        meta: &Meta,
        compose: impl Fn(&Account, &[AccountEvent]) -> Vec<Letter>,
    ) -> Result<Vec<AccountEvent>, ExecuteError> {
        let key = self.keys.get(id).await?;
        let stream = id.stream();
        let (mut state, mut fresh) = match self.kept(id) {
            Some(state) => (state, false),
            None => (self.state_with(id, key.as_ref()).await?, true),
        };
        for _ in 0..MAX_ATTEMPTS {
            let events = match decide::decide(&state, command.clone(), ctx) {
                Ok(events) if !events.is_empty() => events,
                Ok(_) | Err(_) if !fresh => {
                    state = self.state_with(id, key.as_ref()).await?;
                    fresh = true;
                    continue;
                }
                Ok(nothing) => return Ok(nothing),
                Err(rule) => return Err(rule.into()),
            };
            let encoded = events
                .iter()
                .map(|e| codec::encode(e, &stream, key.as_ref(), meta, ctx.now))
                .collect::<Result<Vec<_>, _>>()?;
            let mail = seal(id, key.as_ref(), ctx, compose(&state, &events))?;
            let append = StreamAppend { stream: stream.clone(), expected: expected(state.version), events: encoded };
            match self.store.append_with_mail(vec![append], mail).await {
                Ok(_) => {
                    let appended = events.iter().fold(state, tenure_domain::account::evolve);
                    self.keep(id, &appended);
                    return Ok(events);
                }
                Err(AppendError::Conflict { .. }) => {
                    state = self.state_with(id, key.as_ref()).await?;
                    fresh = true;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(ExecuteError::Contended)
    }

    /// Decides `command` on the account as the caller last saw it, at stream version `version`,
    /// and appends only if the stream is still there: a concurrent write (a sign-in racing a
    /// deactivation, say) makes it fail with `Contended` instead of being decided again, so the
    /// caller recomputes from the new state. Returns the events appended with their ids.
    pub async fn execute_expecting(
        &self,
        id: AccountId,
        command: Command,
        version: Version,
        ctx: &Ctx,
        meta: &Meta,
        compose: impl Fn(&Account, &[AccountEvent]) -> Vec<Letter>,
    ) -> Result<Vec<(uuid::Uuid, AccountEvent)>, ExecuteError> {
        let key = self.keys.get(id).await?;
        let stream = id.stream();
        let recorded = self.store.read_stream(&stream, 1).await?;
        if recorded.len() as Version != version {
            return Err(ExecuteError::Contended);
        }
        let history = recorded
            .into_iter()
            .map(|r| codec::decode_as(r, key.as_ref()).map(|e| e.event))
            .collect::<Result<Vec<_>, _>>()?;
        let state = Account::fold(&history);
        let events = decide::decide(&state, command, ctx)?;
        if events.is_empty() {
            return Ok(vec![]);
        }
        let encoded = events
            .iter()
            .map(|e| codec::encode(e, &stream, key.as_ref(), meta, ctx.now))
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<uuid::Uuid> = encoded.iter().map(|e| e.id).collect();
        let mail = seal(id, key.as_ref(), ctx, compose(&state, &events))?;
        let append = StreamAppend { stream, expected: expected(version), events: encoded };
        self.store.append_with_mail(vec![append], mail).await?;
        Ok(ids.into_iter().zip(events).collect())
    }

    /// Ends the quarantine of a deleted account's username: `false` when `account` does not hold
    /// it (already released, or never held).
    pub async fn release_username(
        &self,
        username: &Username,
        account: AccountId,
        ctx: &Ctx,
        meta: &Meta,
    ) -> Result<bool, ExecuteError> {
        let stream = username.stream();
        for _ in 0..MAX_ATTEMPTS {
            let claim = self.username_claim(&stream).await?;
            let Ok(released) = claim.release(account, ctx.now) else { return Ok(false) };
            let event = codec::encode(&released, &stream, None, meta, ctx.now)?;
            match self.store.append(&stream, expected(claim.version), vec![event]).await {
                Ok(_) => return Ok(true),
                Err(AppendError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(ExecuteError::Contended)
    }

    /// Posts an org-level item (order, ticket, maintenance window) to the org's stream.
    pub async fn execute_org(
        &self,
        org_id: &OrgId,
        command: OrgCommand,
        ctx: &Ctx,
        meta: &Meta,
    ) -> Result<OrgEvent, ExecuteError> {
        let mut events = self
            .decide_and_append(&org_id.stream(), None, ctx, meta, |events| {
                Ok(vec![decide_org(&Org::fold(events), org_id, command.clone(), ctx.now)?])
            })
            .await?;
        Ok(events.remove(0))
    }

    /// The org's state: its widget items and its registered clients. Every call reads the
    /// stream's tail past the state kept from the last, so it is never stale, and a token request
    /// that names a client decodes nothing new.
    pub async fn org(&self, org_id: &OrgId) -> Result<Org, ExecuteError> {
        let kept = self.orgs.lock().unwrap_or_else(|p| p.into_inner()).get(org_id).cloned();
        let mut org = kept.unwrap_or_default();
        let mut recorded = self.store.read_stream(&org_id.stream(), org.version + 1).await?;
        if recorded.first().is_some_and(|event| event.version != org.version + 1) {
            org = Org::default();
            recorded = self.store.read_stream(&org_id.stream(), 1).await?;
        }
        if recorded.is_empty() {
            return Ok(org);
        }
        let events = recorded
            .into_iter()
            .map(|r| codec::decode_as::<OrgEvent>(r, None).map(|e| e.event))
            .collect::<Result<Vec<_>, _>>()?;
        let org = org.then(&events);
        let mut orgs = self.orgs.lock().unwrap_or_else(|p| p.into_inner());
        if orgs.len() >= CACHED_STATES && !orgs.contains_key(org_id) {
            orgs.clear();
        }
        orgs.insert(org_id.clone(), org.clone());
        Ok(org)
    }

    /// Every client registered with any org and not removed, by org and id. The log is read
    /// from where the last call stopped: SQLite walks every row it reads past.
    pub async fn clients(&self) -> Result<Vec<ClientRegistered>, ExecuteError> {
        const TYPES: &[&str] = &["ClientRegistered", "ClientSecretRotated", "ClientRemoved"];
        let (mut from, mut orgs) = self.client_orgs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if from > self.store.head().await? + 1 {
            // Not the log these were read from (a store replaced under a running process).
            (from, orgs) = (0, BTreeSet::new());
        }
        loop {
            let page = self.store.read_all_of_types(from, 1000, TYPES).await?;
            let Some(last) = page.last() else { break };
            from = last.position + 1;
            orgs.extend(page.iter().filter_map(|r| r.stream.strip_prefix(OrgId::STREAM_PREFIX).map(String::from)));
        }
        *self.client_orgs.lock().unwrap_or_else(|p| p.into_inner()) = (from, orgs.clone());
        let mut clients = Vec::new();
        for org in orgs {
            clients.extend(self.org(&OrgId(org)).await?.clients.into_values());
        }
        Ok(clients)
    }

    /// Reads `stream`, lets `decide` turn its history into new events and appends them with the
    /// stream's version as the expectation; after a conflict it reads and decides again.
    async fn decide_and_append<E: TryFrom<Event, Error = Event> + Catalogued>(
        &self,
        stream: &str,
        key: Option<&DataKey>,
        ctx: &Ctx,
        meta: &Meta,
        decide: impl Fn(&[E]) -> Result<Vec<E>, ExecuteError>,
    ) -> Result<Vec<E>, ExecuteError> {
        for _ in 0..MAX_ATTEMPTS {
            let recorded = self.store.read_stream(stream, 1).await?;
            let history = recorded
                .into_iter()
                .map(|r| codec::decode_as(r, key).map(|e| e.event))
                .collect::<Result<Vec<_>, _>>()?;
            let events = decide(&history)?;
            if events.is_empty() {
                return Ok(events);
            }
            let encoded =
                events.iter().map(|e| codec::encode(e, stream, key, meta, ctx.now)).collect::<Result<Vec<_>, _>>()?;
            match self.store.append(stream, expected(history.len() as Version), encoded).await {
                Ok(_) => return Ok(events),
                Err(AppendError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(ExecuteError::Contended)
    }

    /// Invites a new account and claims its username in one atomic append, so that a name is
    /// never claimed without its account nor an account created without its name.
    pub async fn invite(
        &self,
        invite: Invite,
        ctx: &Ctx,
        meta: &Meta,
        mail: Vec<Letter>,
    ) -> Result<AccountEvent, ExecuteError> {
        let id = invite.account_id;
        let username_stream = invite.username.stream();
        let invited = decide::decide(&Account::default(), Command::Invite(invite), ctx)?;
        let key = self.keys.create(id).await?;
        let result = async {
            let mail = seal(id, Some(&key), ctx, mail)?;
            let account_events = invited
                .iter()
                .map(|e| codec::encode(e, &id.stream(), Some(&key), meta, ctx.now))
                .collect::<Result<Vec<_>, _>>()?;
            self.claim_and_append(id, &username_stream, account_events, ctx, meta, mail).await
        }
        .await;
        if result.is_err() {
            // The unused key must not linger, but a store error may hide a committed append:
            // only a stream known to be empty lets the key go.
            if self.store.read_stream(&id.stream(), 1).await.is_ok_and(|events| events.is_empty()) {
                let _ = self.keys.destroy(id).await;
            }
        }
        result?;
        Ok(invited.into_iter().next().expect("an invitation decides one event"))
    }

    async fn claim_and_append(
        &self,
        id: AccountId,
        username_stream: &str,
        account_events: Vec<crate::NewEvent>,
        ctx: &Ctx,
        meta: &Meta,
        mail: Vec<QueuedMail>,
    ) -> Result<(), ExecuteError> {
        let account_stream = id.stream();
        for _ in 0..MAX_ATTEMPTS {
            let claim = self.username_claim(username_stream).await?;
            let claimed = claim.claim(id, ctx.now)?;
            let claim_event = codec::encode(&claimed, username_stream, None, meta, ctx.now)?;
            let appends = vec![
                StreamAppend {
                    stream: username_stream.to_string(),
                    expected: expected(claim.version),
                    events: vec![claim_event],
                },
                StreamAppend {
                    stream: account_stream.clone(),
                    expected: Expected::NoStream,
                    events: account_events.clone(),
                },
            ];
            match self.store.append_with_mail(appends, mail.clone()).await {
                Ok(_) => return Ok(()),
                Err(AppendError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(ExecuteError::Contended)
    }

    async fn username_claim(&self, stream: &str) -> Result<UsernameClaim, ExecuteError> {
        let recorded = self.store.read_stream(stream, 1).await?;
        let events = recorded
            .into_iter()
            .map(|r| codec::decode_as::<UsernameClaimEvent>(r, None).map(|e| e.event))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(UsernameClaim::fold(&events))
    }

    /// The account's event at `position`, opened with its key: how read models, which keep only
    /// positions, reach personal data. `None` when that position holds no event of the account.
    pub async fn event_at(&self, id: AccountId, position: Position) -> Result<Option<AccountEvent>, ExecuteError> {
        let Some(recorded) = self.store.read_all(position, 1).await?.pop() else { return Ok(None) };
        if recorded.position != position || recorded.stream != id.stream() {
            return Ok(None);
        }
        let key = self.keys.get(id).await?;
        Ok(Some(codec::decode_as(recorded, key.as_ref())?.event))
    }

    /// The account a username or account id names: the current holder of the username, or the
    /// account with that id if its stream exists.
    pub async fn resolve(&self, who: &str) -> Result<Option<AccountId>, ExecuteError> {
        if let Ok(id) = who.parse::<AccountId>()
            && !self.store.read_stream(&id.stream(), 1).await?.is_empty()
        {
            return Ok(Some(id));
        }
        let Ok(username) = Username::parse(who) else {
            return Ok(None);
        };
        // A released name still resolves to its last holder, for auditors.
        let recorded = self.store.read_stream(&username.stream(), 1).await?;
        let last_holder = recorded.into_iter().rev().find_map(|r| match codec::decode(r, None) {
            Ok(Envelope { event: Event::UsernameClaim(UsernameClaimEvent::UsernameClaimed(claimed)), .. }) => {
                Some(claimed.account_id)
            }
            _ => None,
        });
        Ok(last_holder)
    }
}
