//! Sessions: idle and absolute expiry on an injected clock, revocation, hashed ids, CSRF tokens.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use tenure_domain::events::Client;
use tenure_domain::{AccountId, Clock};
use tenure_gateway::sessions::{Lifetimes, SessionStore};
use tenure_store::conformance::{Backend, TestLocation};
use tenure_store::sqlite::Open;
use uuid::Uuid;

struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

type Fixture = (TestLocation, Arc<ManualClock>, SessionStore);

fn client() -> Client {
    Client {
        address: "203.0.113.9".into(),
        user_agent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Firefox/133.0".into(),
    }
}

async fn fixture(backend: Backend) -> Fixture {
    let place = TestLocation::create(backend).await;
    let clock = Arc::new(ManualClock(Mutex::new(Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap())));
    place.location.open(Open::CreateIfMissing).await.unwrap(); // the schema
    let store = SessionStore::open_at(&place.location, clock.clone(), Lifetimes::default(), [9; 32]).unwrap();
    (place, clock, store)
}

async fn a_session_lives_while_used_and_ends_after_thirty_idle_minutes((_place, clock, store): Fixture) {
    let account = AccountId(Uuid::now_v7());
    let cookie = store.create(account, &client()).await.unwrap();
    assert_eq!(cookie.len(), 43, "256 bits, URL-safe base64");
    for _ in 0..10 {
        clock.advance(Duration::minutes(29));
        assert_eq!(store.get(&cookie).await.unwrap().map(|s| s.account_id), Some(account));
    }
    clock.advance(Duration::minutes(30));
    assert_eq!(store.get(&cookie).await.unwrap(), None);
    assert_eq!(store.get(&cookie).await.unwrap(), None, "and it stays gone");
}

async fn a_session_ends_twelve_hours_after_sign_in_however_busy((_place, clock, store): Fixture) {
    let cookie = store.create(AccountId(Uuid::now_v7()), &client()).await.unwrap();
    for _ in 0..(12 * 4 - 1) {
        clock.advance(Duration::minutes(15));
        assert!(store.get(&cookie).await.unwrap().is_some());
    }
    clock.advance(Duration::minutes(15));
    assert_eq!(store.get(&cookie).await.unwrap(), None);
}

async fn sign_out_and_revocation_end_sessions((_place, _clock, store): Fixture) {
    let (jane, bob) = (AccountId(Uuid::now_v7()), AccountId(Uuid::now_v7()));
    let laptop = store.create(jane, &client()).await.unwrap();
    let phone = store.create(jane, &client()).await.unwrap();
    let tablet = store.create(jane, &client()).await.unwrap();
    let bobs = store.create(bob, &client()).await.unwrap();
    assert_ne!(laptop, phone, "every sign-in gets a fresh id");
    store.revoke(&phone).await.unwrap();
    assert!(store.get(&phone).await.unwrap().is_none());
    assert_eq!(store.revoke_all(jane, Some(&laptop)).await.unwrap(), 1, "the tablet; the laptop changes the password");
    assert!(store.get(&laptop).await.unwrap().is_some());
    assert!(store.get(&tablet).await.unwrap().is_none());
    assert_eq!(store.revoke_all(jane, None).await.unwrap(), 1);
    assert!(store.get(&bobs).await.unwrap().is_some(), "other accounts keep theirs");
    assert!(store.get("made-up-cookie").await.unwrap().is_none());
}

async fn only_digests_of_session_ids_are_stored((place, _clock, store): Fixture) {
    let cookie = store.create(AccountId(Uuid::now_v7()), &client()).await.unwrap();
    let holds_cookie = |bytes: &[u8]| bytes.windows(cookie.len()).any(|w| w == cookie.as_bytes());
    match &place.database {
        None => {
            for name in ["sessions.db", "sessions.db-wal"] {
                let bytes = std::fs::read(place.dir.path().join(name)).unwrap_or_default();
                assert!(!holds_cookie(&bytes), "{name} holds the session id");
            }
        }
        Some(database) => {
            let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            let rows = client.query("SELECT id_digest, account_id::text FROM sessions", &[]).await.unwrap();
            assert_eq!(rows.len(), 1);
            let digest: Vec<u8> = rows[0].get(0);
            assert_eq!(digest.len(), 32, "a SHA-256, not the id");
            assert!(!holds_cookie(&digest));
        }
    }
}

async fn csrf_tokens_belong_to_their_session((_place, _clock, store): Fixture) {
    let a = store.create(AccountId(Uuid::now_v7()), &client()).await.unwrap();
    let b = store.create(AccountId(Uuid::now_v7()), &client()).await.unwrap();
    let token = store.csrf_token(&a);
    assert!(store.csrf_matches(&a, &token));
    assert!(!store.csrf_matches(&b, &token));
    assert!(!store.csrf_matches(&a, ""));
    assert!(!store.csrf_matches(&a, &token[1..]));
}

async fn the_sessions_list_shows_each_session_by_an_id_that_opens_nothing((place, clock, store): Fixture) {
    let (jane, bob) = (AccountId(Uuid::now_v7()), AccountId(Uuid::now_v7()));
    let laptop = store.create(jane, &client()).await.unwrap();
    clock.advance(Duration::minutes(5));
    let phone_client = Client { address: "198.51.100.4".into(), user_agent: "curl/8.11".into() };
    let phone = store.create(jane, &phone_client).await.unwrap();
    let bobs = store.create(bob, &client()).await.unwrap();
    let listed = store.list(jane).await.unwrap();
    assert_eq!(listed.len(), 2, "only jane's: {listed:?}");
    assert_eq!(listed[0].id, store.shown_id(&phone), "the most recently used first");
    assert_eq!(listed[0].client_address.as_deref(), Some("198.51.100.4"));
    assert_eq!(listed[1].user_agent.as_deref(), Some(client().user_agent.as_str()));
    for session in &listed {
        assert_eq!(session.id.len(), 32);
        assert!(session.id != laptop && session.id != phone && !laptop.contains(&session.id));
    }
    assert!(!store.revoke_shown(bob, &listed[0].id).await.unwrap(), "another account's session id ends nothing");
    assert!(!store.revoke_shown(jane, "00000000000000000000000000000000").await.unwrap());
    assert!(store.revoke_shown(jane, &listed[0].id).await.unwrap());
    assert!(store.get(&phone).await.unwrap().is_none(), "that session ended");
    assert!(store.get(&laptop).await.unwrap().is_some() && store.get(&bobs).await.unwrap().is_some());
    clock.advance(Duration::minutes(31));
    assert!(store.list(jane).await.unwrap().is_empty(), "an expired session is not listed");
    assert_eq!(store.sweep(clock.now()).await.unwrap(), 2, "and is swept, with its address");
    assert_eq!(store.sweep(clock.now()).await.unwrap(), 0);
    drop(place);
}

tenure_store::on_both_backends! {
    super::fixture;
    the_sessions_list_shows_each_session_by_an_id_that_opens_nothing,
    a_session_lives_while_used_and_ends_after_thirty_idle_minutes,
    a_session_ends_twelve_hours_after_sign_in_however_busy,
    sign_out_and_revocation_end_sessions,
    only_digests_of_session_ids_are_stored,
    csrf_tokens_belong_to_their_session,
}
