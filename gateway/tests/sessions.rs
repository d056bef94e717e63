//! Sessions: idle and absolute expiry on an injected clock, revocation, hashed ids, CSRF tokens.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
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

async fn fixture(backend: Backend) -> Fixture {
    let place = TestLocation::create(backend).await;
    let clock = Arc::new(ManualClock(Mutex::new(Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap())));
    place.location.open(Open::CreateIfMissing).await.unwrap(); // the schema
    let store = SessionStore::open_at(&place.location, clock.clone(), Lifetimes::default(), [9; 32]).unwrap();
    (place, clock, store)
}

async fn a_session_lives_while_used_and_ends_after_thirty_idle_minutes((_place, clock, store): Fixture) {
    let account = AccountId(Uuid::now_v7());
    let cookie = store.create(account).await.unwrap();
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
    let cookie = store.create(AccountId(Uuid::now_v7())).await.unwrap();
    for _ in 0..(12 * 4 - 1) {
        clock.advance(Duration::minutes(15));
        assert!(store.get(&cookie).await.unwrap().is_some());
    }
    clock.advance(Duration::minutes(15));
    assert_eq!(store.get(&cookie).await.unwrap(), None);
}

async fn sign_out_and_revocation_end_sessions((_place, _clock, store): Fixture) {
    let (jane, bob) = (AccountId(Uuid::now_v7()), AccountId(Uuid::now_v7()));
    let laptop = store.create(jane).await.unwrap();
    let phone = store.create(jane).await.unwrap();
    let tablet = store.create(jane).await.unwrap();
    let bobs = store.create(bob).await.unwrap();
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
    let cookie = store.create(AccountId(Uuid::now_v7())).await.unwrap();
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
    let a = store.create(AccountId(Uuid::now_v7())).await.unwrap();
    let b = store.create(AccountId(Uuid::now_v7())).await.unwrap();
    let token = store.csrf_token(&a);
    assert!(store.csrf_matches(&a, &token));
    assert!(!store.csrf_matches(&b, &token));
    assert!(!store.csrf_matches(&a, ""));
    assert!(!store.csrf_matches(&a, &token[1..]));
}

tenure_store::on_both_backends! {
    super::fixture;
    a_session_lives_while_used_and_ends_after_thirty_idle_minutes,
    a_session_ends_twelve_hours_after_sign_in_however_busy,
    sign_out_and_revocation_end_sessions,
    only_digests_of_session_ids_are_stored,
    csrf_tokens_belong_to_their_session,
}
