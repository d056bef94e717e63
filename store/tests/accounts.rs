//! `Accounts`: invitations with atomic username claims, execute with retries, sealing and
//! erasure of personal data, upcasting on read.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use tenure_domain::decide::{Command, Ctx, Factor, Invite};
use tenure_domain::events::*;
use tenure_domain::username_claim::ClaimError;
use tenure_domain::{AccountError, AccountEvent, AccountId, Event, OrgId, Personal, SecretDigest, Status, Username};
use tenure_store::keys::key_store_paths;
use tenure_store::sqlite::{Open, SqliteStore};
use tenure_store::{Accounts, Actor, EventStore, ExecuteError, Expected, KeyStore, Meta, SqliteKeyStore, codec};
use uuid::Uuid;

type Repo = Accounts<SqliteStore, SqliteKeyStore>;

fn open(dir: &Path) -> Repo {
    let store = SqliteStore::open(&dir.join("events.db"), Open::CreateIfMissing).expect("events");
    let (keys, master) = key_store_paths(dir);
    Accounts::new(store, SqliteKeyStore::open(&keys, &master, true).expect("keys"))
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn invite(username: &str, email: &str, name: &str) -> Invite {
    Invite {
        all_orgs: false,
        account_id: AccountId(Uuid::now_v7()),
        username: Username::parse(username).unwrap(),
        org: Org { id: OrgId("acme".into()), name: "Acme".into(), wholesale: false },
        role: Role::User,
        mfa: MfaRequirement::None,
        email: email.into(),
        display_name: Some(name.into()),
        token_digest: SecretDigest([3; 32]),
    }
}

fn meta() -> Meta {
    Meta::new(Actor::Operator("test".into()))
}

fn ctx(now: DateTime<Utc>) -> Ctx {
    Ctx { now }
}

async fn activate(repo: &Repo, id: AccountId) {
    let token = Some(SecretDigest([3; 32]));
    repo.execute(
        id,
        Command::SetPassword {
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            via: tenure_domain::decide::PasswordVia::Invitation { token_digest: SecretDigest([3; 32]) },
        },
        &ctx(t0()),
        &meta(),
    )
    .await
    .expect("password");
    repo.execute(id, Command::AcceptTerms { version: 1, invitation: token }, &ctx(t0()), &meta()).await.expect("terms");
}

fn sign_in(correct: bool) -> Command {
    Command::SignIn {
        factor: Factor::Password { correct },
        client: Client { address: "192.0.2.44".into(), user_agent: "Mozilla/5.0 Quokka".into() },
    }
}

#[tokio::test]
async fn an_invitation_claims_the_username_and_seals_personal_fields() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path());
    let invitation = invite("JDoe", "jane@example.com", "Jane Doe");
    let id = invitation.account_id;
    repo.invite(invitation, &ctx(t0()), &meta(), vec![]).await.expect("invite");

    let (state, events) = repo.load(id).await.expect("load");
    assert_eq!(state.status(), Status::Invited);
    let invited = state.invited.expect("invited");
    assert_eq!(invited.username.as_str(), "jdoe");
    assert_eq!(invited.invitee.known().map(|i| i.email.as_str()), Some("jane@example.com"));
    assert_eq!(events[0].recorded.actor, "operator:test");
    let raw = String::from_utf8(events[0].recorded.data.clone()).unwrap();
    assert!(!raw.contains("jane@example.com") && raw.contains("\"sealed\""), "{raw}");
    assert_eq!(repo.resolve("JDOE").await.unwrap(), Some(id));
    assert_eq!(repo.resolve(&id.to_string()).await.unwrap(), Some(id));
    assert_eq!(repo.resolve("nobody").await.unwrap(), None);
}

#[tokio::test]
async fn usernames_are_unique_case_insensitively_and_a_refused_invitation_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path());
    repo.invite(invite("jdoe", "a@example.com", "A"), &ctx(t0()), &meta(), vec![]).await.expect("first");
    let second = invite("JDOE", "b@example.com", "B");
    let second_id = second.account_id;
    let refused = repo.invite(second, &ctx(t0()), &meta(), vec![]).await.unwrap_err();
    assert!(matches!(refused, ExecuteError::Username(ClaimError::Unavailable)), "{refused:?}");
    assert!(repo.store.read_stream(&second_id.stream(), 1).await.unwrap().is_empty());
    assert_eq!(repo.keys.get(second_id).await.unwrap(), None, "the unused key is destroyed");
    assert_eq!(repo.store.head().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_invitations_for_one_name_produce_exactly_one_account() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Arc::new(open(dir.path()));
    let tasks = (0..20).map(|i| {
        let repo = repo.clone();
        tokio::spawn(async move {
            repo.invite(invite("contested", &format!("{i}@example.com"), "X"), &ctx(t0()), &meta(), vec![]).await
        })
    });
    let results = futures_util::future::join_all(tasks).await;
    let wins = results.iter().filter(|r| r.as_ref().unwrap().is_ok()).count();
    assert_eq!(wins, 1);
    for result in results {
        if let Err(e) = result.unwrap() {
            assert!(matches!(e, ExecuteError::Username(ClaimError::Unavailable)), "{e:?}");
        }
    }
    assert_eq!(repo.store.read_stream("username-contested", 1).await.unwrap().len(), 1);
    assert_eq!(repo.store.head().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sign_in_racing_a_deactivation_never_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Arc::new(open(dir.path()));
    let deadline = t0() + Duration::days(184); // 2026-09-01 12:00, six months on
    let (mut signed_in, mut deactivated) = (0, 0);
    for round in 0..100 {
        let invitation = invite(&format!("racer{round}"), "r@example.com", "R");
        let id = invitation.account_id;
        repo.invite(invitation, &ctx(t0()), &meta(), vec![]).await.unwrap();
        activate(&repo, id).await;
        let sign = {
            let repo = repo.clone();
            // A sign-in a millisecond before the deadline, decided on the same state as the deactivation.
            let just_before = deadline - Duration::milliseconds(1);
            tokio::spawn(async move { repo.execute(id, sign_in(true), &ctx(just_before), &meta()).await })
        };
        let deactivate = {
            let repo = repo.clone();
            tokio::spawn(async move {
                repo.execute(id, Command::Deactivate, &ctx(deadline), &Meta::new(Actor::Scheduler)).await
            })
        };
        let (sign, deactivate) = (sign.await.unwrap(), deactivate.await.unwrap());
        match (&sign, &deactivate) {
            (Ok(_), Err(ExecuteError::Rejected(AccountError::NotDue { .. }))) => signed_in += 1,
            (Err(ExecuteError::Rejected(AccountError::Deactivated)), Ok(_)) => deactivated += 1,
            other => panic!("round {round}: {other:?}"),
        }
        let (state, events) = repo.load(id).await.unwrap();
        let both = events.iter().any(|e| matches!(e.event, AccountEvent::SignedIn(_)))
            && events.iter().any(|e| matches!(e.event, AccountEvent::Deactivated(_)));
        assert!(!both, "round {round}: {state:?}");
    }
    assert_eq!(signed_in + deactivated, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_on_one_account_are_all_recorded_through_retries() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Arc::new(open(dir.path()));
    let invitation = invite("busy", "b@example.com", "B");
    let id = invitation.account_id;
    repo.invite(invitation, &ctx(t0()), &meta(), vec![]).await.unwrap();
    activate(&repo, id).await;
    let tasks = (0..4).map(|_| {
        let repo = repo.clone();
        tokio::spawn(async move { repo.execute(id, sign_in(false), &ctx(t0()), &meta()).await })
    });
    for result in futures_util::future::join_all(tasks).await {
        assert!(matches!(result.unwrap().as_deref(), Ok([AccountEvent::SignInFailed(_)])));
    }
    let (state, _) = repo.load(id).await.unwrap();
    assert_eq!(state.guard.recent_failures(), 4);
}

#[tokio::test]
async fn a_kept_state_follows_what_another_process_appended() {
    let dir = tempfile::tempdir().unwrap();
    let (here, there) = (open(dir.path()), open(dir.path()));
    let invitation = invite("kept", "k@example.com", "K");
    let id = invitation.account_id;
    here.invite(invitation, &ctx(t0()), &meta(), vec![]).await.unwrap();
    // Kept here while only invited; the first sign-in finishes on another gateway. A refusal the
    // kept state would give ("not onboarded") is checked on the stream before it is believed.
    here.state(id).await.unwrap();
    activate(&there, id).await;
    let signed_in = here.execute(id, sign_in(true), &ctx(t0()), &meta()).await.unwrap();
    assert!(matches!(signed_in.as_slice(), [AccountEvent::SignedIn(_)]), "{signed_in:?}");
    assert_eq!(here.state(id).await.unwrap(), here.load(id).await.unwrap().0);
    // Another gateway records failures; this one's kept state reads them on its next look.
    for _ in 0..3 {
        there.execute(id, sign_in(false), &ctx(t0()), &meta()).await.unwrap();
    }
    let (folded, _) = there.load(id).await.unwrap();
    assert_eq!(here.state(id).await.unwrap(), folded);
    assert_eq!(folded.guard.recent_failures(), 3);
    // A command decided here on a stale kept state loses the race and decides again on the new.
    here.execute(id, sign_in(false), &ctx(t0()), &meta()).await.unwrap();
    there.execute(id, sign_in(false), &ctx(t0()), &meta()).await.unwrap();
    let refused = here.execute(id, sign_in(true), &ctx(t0()), &meta()).await;
    assert!(matches!(refused, Err(ExecuteError::Rejected(AccountError::Throttled { .. }))), "{refused:?}");
    assert_eq!(here.state(id).await.unwrap(), there.load(id).await.unwrap().0);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn database_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap().to_string_lossy().contains(".db"))
        .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap()))
        .collect()
}

#[tokio::test]
async fn destroying_the_key_erases_personal_fields_from_every_file_but_keeps_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path());
    let email = "zebulon.quixote@example.org";
    let name = "Zebulon Quixote";
    let invitation = invite("zquixote", email, name);
    let id = invitation.account_id;
    repo.invite(invitation, &ctx(t0()), &meta(), vec![]).await.unwrap();
    activate(&repo, id).await;
    repo.execute(id, sign_in(true), &ctx(t0()), &meta()).await.unwrap();

    let keys = rusqlite::Connection::open(dir.path().join("keys.db")).unwrap();
    let wrapped: Vec<u8> = keys
        .query_row("SELECT wrapped FROM account_keys WHERE account_id = ?1", [id.0.as_bytes()], |r| r.get(0))
        .unwrap();
    drop(keys);
    let secrets: [&[u8]; 5] = [email.as_bytes(), name.as_bytes(), b"192.0.2.44", b"Quokka", b"$argon2id$"];
    for (file, bytes) in database_bytes(dir.path()) {
        for secret in secrets {
            assert!(!contains(&bytes, secret), "{file} holds {:?} in plaintext", String::from_utf8_lossy(secret));
        }
    }

    repo.keys.destroy(id).await.unwrap();

    for (file, bytes) in database_bytes(dir.path()) {
        assert!(!contains(&bytes, &wrapped), "{file} still holds the wrapped key");
    }
    let (state, events) = repo.load(id).await.expect("history stays readable");
    assert_eq!(events.len(), 4);
    assert_eq!(state.status(), Status::Active);
    assert_eq!(state.invited.unwrap().invitee, Personal::Erased);
    match &events[3].event {
        AccountEvent::SignedIn(signed) => assert_eq!(signed.personal, Personal::Erased),
        other => panic!("{other:?}"),
    }
    assert!(state.last_sign_in.is_some(), "times survive erasure");
}

#[tokio::test]
async fn personal_data_stored_in_plaintext_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path());
    let id = AccountId(Uuid::now_v7());
    let forged = Event::from(ProfileUpdated {
        at: t0(),
        personal: Personal::Known(Profile { display_name: Some("Mallory".into()), phone: None, address: None }),
    });
    let mut new =
        codec::encode(&forged, &id.stream(), Some(&tenure_store::DataKey::generate().unwrap()), &meta(), t0()).unwrap();
    new.data = serde_json::to_vec(&forged.to_json()).unwrap();
    repo.store.append(&id.stream(), Expected::NoStream, vec![new]).await.unwrap();
    let error = repo.load(id).await.unwrap_err().to_string();
    assert!(error.contains("stored unsealed"), "{error}");
}

/// An event of another kind of stream, moved onto an account's stream by hand, is corruption
/// that names the event: folding it into the account as if it were not there would hide it.
#[tokio::test]
async fn an_event_of_another_kind_of_stream_on_an_account_stream_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path());
    let id = AccountId(Uuid::now_v7());
    let order = Event::from(tenure_domain::events::OrderOpened {
        org_id: OrgId("acme".into()),
        order_id: "O-1".into(),
        title: "Fibre".into(),
        at: t0(),
    });
    let moved = codec::encode(&order, &id.stream(), None, &meta(), t0()).unwrap();
    repo.store.append(&id.stream(), Expected::NoStream, vec![moved]).await.unwrap();
    let error = repo.load(id).await.unwrap_err().to_string();
    assert!(error.contains("OrderOpened does not belong on stream account-"), "{error}");
}

#[tokio::test]
async fn stored_v1_invitations_are_upcast_when_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path());
    let id = AccountId(Uuid::now_v7());
    let key = repo.keys.create(id).await.unwrap();
    // Encode a current event, then rewrite its payload into the v1 shape before storing it.
    let current = Event::from(AccountInvited {
        account_id: id,
        username: Username::parse("old.timer").unwrap(),
        org: Org { id: OrgId("legacy".into()), name: "Legacy Ltd".into(), wholesale: true },
        role: Role::Admin,
        mfa: MfaRequirement::Email,
        invitation: Invitation { token_digest: SecretDigest([0; 32]), expires_at: t0() },
        all_orgs: false,
        at: t0(),
        personal: Personal::Known(Invitee { email: "old@example.com".into(), display_name: None }),
    });
    let mut new = codec::encode(&current, &id.stream(), Some(&key), &meta(), t0()).unwrap();
    let mut payload: serde_json::Value = serde_json::from_slice(&new.data).unwrap();
    let org = payload.as_object_mut().unwrap().remove("org").unwrap();
    payload["org_id"] = org["id"].clone();
    payload["org_name"] = org["name"].clone();
    payload["wholesale"] = org["wholesale"].clone();
    new.data = serde_json::to_vec(&payload).unwrap();
    new.schema_version = 1;
    repo.store.append(&id.stream(), Expected::NoStream, vec![new]).await.unwrap();

    let (state, _) = repo.load(id).await.unwrap();
    let invited = state.invited.unwrap();
    assert_eq!(invited.org, Org { id: OrgId("legacy".into()), name: "Legacy Ltd".into(), wholesale: true });
    assert_eq!(invited.invitee.known().unwrap().email, "old@example.com");
}

#[tokio::test]
async fn an_unknown_or_corrupt_event_is_an_error_naming_it_not_a_silent_skip() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path());
    let invitation = invite("odd", "o@example.com", "O");
    let id = invitation.account_id;
    repo.invite(invitation, &ctx(t0()), &meta(), vec![]).await.unwrap();
    let strange = tenure_store::conformance::event("AccountTeleported", b"{}");
    let strange_id = strange.id;
    repo.store.append(&id.stream(), Expected::Exact(1), vec![strange]).await.unwrap();
    let error = repo.load(id).await.unwrap_err().to_string();
    assert!(error.contains(&strange_id.to_string()) && error.contains("AccountTeleported"), "{error}");
    let refused = repo.execute(id, Command::Reactivate, &ctx(t0()), &meta()).await;
    assert!(matches!(refused, Err(ExecuteError::Codec(_))), "nothing is decided over an unreadable history");
    assert_eq!(repo.store.head().await.unwrap(), 3);
}

#[test]
fn derived_server_keys_differ_by_purpose_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, master) = key_store_paths(dir.path());
    let store = SqliteKeyStore::open(&keys, &master, true).unwrap();
    let codes = store.derive("email codes");
    assert_ne!(codes, store.derive("sessions"));
    drop(store);
    assert_eq!(SqliteKeyStore::open(&keys, &master, false).unwrap().derive("email codes"), codes);
}
