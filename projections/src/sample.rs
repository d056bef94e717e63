//! Realistic account histories, for benchmarks and tests: invitations, onboarding with every
//! kind of second factor, sign-ins, failed attempts, profile edits, some deactivations, and org
//! widget items. Events are decided by the real domain and sealed by the real codec; only the
//! appends are batched.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tenure_domain::decide::{self, Command, Ctx, EnrollmentProof, Factor, Invite, PasswordVia};
use tenure_domain::events::{Client, CodePurpose, MfaRequirement, Org, Profile, Role};
use tenure_domain::org::{self, OrgCommand};
use tenure_domain::{Account, AccountEvent, AccountId, Event, OrgId, SecretDigest, Username};
use tenure_store::{Actor, EventStore, Expected, Keys, Meta, StoreError, StreamAppend, codec};
use uuid::Uuid;

/// Accounts per atomic append.
const CHUNK: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sample history: {0}")]
    Other(String),
}

/// Appends about ten events for each of `accounts` new accounts, plus a few org items; returns
/// how many events were appended.
pub async fn generate<S: EventStore>(store: &S, keys: &Keys, accounts: usize, seed: u64) -> Result<u64, SampleError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let meta = Meta::new(Actor::Operator("sample".into()));
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 8, 0, 0).single().expect("a valid date");
    let mut appended = 0u64;
    let mut first = 0;
    while first < accounts {
        let count = CHUNK.min(accounts - first);
        let ids: Vec<AccountId> = (0..count).map(|_| AccountId(Uuid::now_v7())).collect();
        let data_keys = keys.create_many(ids.clone()).await?;
        let mut appends = Vec::with_capacity(count * 2);
        for (offset, (id, key)) in ids.iter().zip(&data_keys).enumerate() {
            let n = first + offset;
            let at = start + Duration::seconds(n as i64 * 7);
            let (username, events) = history(&mut rng, *id, n, at)?;
            let claim = Event::from(tenure_domain::events::UsernameClaimed { account_id: *id, at });
            let stream = id.stream();
            let account_events = events
                .iter()
                .map(|e| codec::encode(e, &stream, Some(key), &meta, e.at()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SampleError::Other(e.to_string()))?;
            let claim = codec::encode(&claim, &username.stream(), None, &meta, claim.at())
                .map_err(|e| SampleError::Other(e.to_string()))?;
            appended += account_events.len() as u64 + 1;
            appends.push(StreamAppend { stream: username.stream(), expected: Expected::NoStream, events: vec![claim] });
            appends.push(StreamAppend { stream, expected: Expected::NoStream, events: account_events });
        }
        store.append_atomic(appends).await.map_err(|e| SampleError::Other(e.to_string()))?;
        first += count;
    }
    appended += org_items(store, &meta, start, accounts.div_ceil(100).max(1), &mut rng).await?;
    Ok(appended)
}

fn history(
    rng: &mut StdRng,
    id: AccountId,
    n: usize,
    invited_at: DateTime<Utc>,
) -> Result<(Username, Vec<AccountEvent>), SampleError> {
    let username = Username::parse(&format!("user{n:07}")).map_err(|e| SampleError::Other(e.to_string()))?;
    let token = SecretDigest(rng.random());
    let mfa = match rng.random_range(0..10) {
        0..5 => MfaRequirement::None,
        5..8 => MfaRequirement::App,
        _ => MfaRequirement::Email,
    };
    let org = n % 97;
    let invite = Invite {
        all_orgs: false,
        account_id: id,
        username: username.clone(),
        org: Org {
            id: OrgId(format!("org{org:03}")),
            name: format!("Customer {org}"),
            wholesale: org.is_multiple_of(5),
        },
        role: if n.is_multiple_of(20) { Role::Admin } else { Role::User },
        mfa,
        email: format!("user{n}@example.com"),
        display_name: Some(format!("User Number {n}")),
        token_digest: token,
    };
    let mut history = History { state: Account::default(), events: Vec::new(), now: invited_at };
    history.run(Command::Invite(invite))?;
    history.later(Duration::hours(rng.random_range(1..48)));
    let password_hash = format!("$argon2id$v=19$m=19456,t=2,p=1${n:016x}${:032x}", rng.random::<u128>()).into();
    history.run(Command::SetPassword { password_hash, via: PasswordVia::Invitation { token_digest: token } })?;
    let mut step = (history.now.timestamp() / 30) as u64;
    let code = SecretDigest(rng.random());
    match mfa {
        MfaRequirement::None => {}
        MfaRequirement::App => {
            let proof = EnrollmentProof::App {
                secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
                step: Some(step),
                recovery: vec![],
                spent: None,
            };
            history.run(Command::EnrollMfa { proof, invitation: Some(token) })?;
        }
        MfaRequirement::Email => {
            history.run(Command::IssueEmailCode {
                purpose: CodePurpose::Enrollment,
                code_digest: code,
                invitation: Some(token),
                previous_unsent: false,
            })?;
            history.run(Command::EnrollMfa {
                proof: EnrollmentProof::Email { presented: code },
                invitation: Some(token),
            })?;
        }
    }
    history.run(Command::AcceptTerms { version: 1, invitation: Some(token) })?;
    let client = Client {
        address: format!("198.51.100.{}", rng.random_range(1..255)),
        user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/140.0 Safari/537.36".into(),
    };
    for _ in 0..rng.random_range(0..3) {
        history.later(Duration::minutes(rng.random_range(1..600)));
        history.run(Command::SignIn { factor: Factor::Password { correct: false }, client: client.clone() })?;
    }
    for _ in 0..rng.random_range(2..5) {
        history.later(Duration::hours(rng.random_range(1..400)));
        step = step.max((history.now.timestamp() / 30) as u64);
        let factor = match mfa {
            MfaRequirement::None => Factor::Password { correct: true },
            MfaRequirement::App => Factor::Totp { step: Some(step) },
            MfaRequirement::Email => {
                let code = SecretDigest(rng.random());
                history.run(Command::IssueEmailCode {
                    purpose: CodePurpose::SignIn,
                    code_digest: code,
                    invitation: None,
                    previous_unsent: false,
                })?;
                Factor::EmailCode { presented: code }
            }
        };
        history.run(Command::SignIn { factor, client: client.clone() })?;
    }
    if rng.random_bool(0.4) {
        let profile = Profile {
            display_name: Some(format!("User {n}")),
            phone: Some(format!("+4420{:08}", rng.random_range(0..100_000_000))),
            address: Some(format!("{} High Street, London", rng.random_range(1..200))),
        };
        history.run(Command::UpdateProfile { profile })?;
    }
    if rng.random_bool(0.1) {
        history.later(Duration::days(200));
        history.run(Command::Deactivate)?;
    }
    Ok((username, history.events))
}

struct History {
    state: Account,
    events: Vec<AccountEvent>,
    now: DateTime<Utc>,
}

impl History {
    fn later(&mut self, by: Duration) {
        self.now += by;
    }

    fn run(&mut self, command: Command) -> Result<(), SampleError> {
        let described = format!("{command:?}");
        let events = decide::decide(&self.state, command, &Ctx { now: self.now })
            .map_err(|e| SampleError::Other(format!("{described}: {e}")))?;
        for event in events {
            self.state = tenure_domain::account::evolve(std::mem::take(&mut self.state), &event);
            self.events.push(event);
        }
        Ok(())
    }
}

async fn org_items<S: EventStore>(
    store: &S,
    meta: &Meta,
    start: DateTime<Utc>,
    orgs: usize,
    rng: &mut StdRng,
) -> Result<u64, SampleError> {
    let mut appends = Vec::new();
    let mut count = 0;
    for n in 0..orgs {
        let org_id = OrgId(format!("org{n:03}"));
        let mut state = org::Org::default();
        let mut events = Vec::new();
        let commands = [
            OrgCommand::OpenOrder { order_id: format!("O-{n}-1"), title: "Dark fibre, 10 Gbit/s".into() },
            OrgCommand::OpenTicket { ticket_id: format!("T-{n}-1"), title: "Packet loss on the London circuit".into() },
            OrgCommand::ScheduleMaintenance {
                window_id: format!("M-{n}-1"),
                title: "Core router software upgrade".into(),
                starts_at: start + Duration::days(rng.random_range(1..400)),
                ends_at: start + Duration::days(400),
            },
            OrgCommand::CloseTicket { ticket_id: format!("T-{n}-1") },
        ];
        for command in commands {
            let event =
                org::decide_org(&state, &org_id, command, start).map_err(|e| SampleError::Other(e.to_string()))?;
            state = org::Org::fold(events.iter().chain([&event]));
            events.push(event);
        }
        let encoded = events
            .iter()
            .map(|e| codec::encode(e, &org_id.stream(), None, meta, start))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SampleError::Other(e.to_string()))?;
        count += encoded.len() as u64;
        appends.push(StreamAppend { stream: org_id.stream(), expected: Expected::Any, events: encoded });
    }
    store.append_atomic(appends).await.map_err(|e| SampleError::Other(e.to_string()))?;
    Ok(count)
}
