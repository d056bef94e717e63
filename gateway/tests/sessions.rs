//! Sessions: idle and absolute expiry on an injected clock, revocation, hashed ids, CSRF tokens.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use tenure_domain::{AccountId, Clock};
use tenure_gateway::sessions::{Lifetimes, SessionStore};
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

fn fixture() -> (tempfile::TempDir, Arc<ManualClock>, SessionStore) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(Mutex::new(Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap())));
    let store =
        SessionStore::open(&dir.path().join("sessions.db"), clock.clone(), Lifetimes::default(), [9; 32]).unwrap();
    (dir, clock, store)
}

#[tokio::test]
async fn a_session_lives_while_used_and_ends_after_thirty_idle_minutes() {
    let (_dir, clock, store) = fixture();
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

#[tokio::test]
async fn a_session_ends_twelve_hours_after_sign_in_however_busy() {
    let (_dir, clock, store) = fixture();
    let cookie = store.create(AccountId(Uuid::now_v7())).await.unwrap();
    for _ in 0..(12 * 4 - 1) {
        clock.advance(Duration::minutes(15));
        assert!(store.get(&cookie).await.unwrap().is_some());
    }
    clock.advance(Duration::minutes(15));
    assert_eq!(store.get(&cookie).await.unwrap(), None);
}

#[tokio::test]
async fn sign_out_and_revocation_end_sessions() {
    let (_dir, _clock, store) = fixture();
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

#[tokio::test]
async fn only_digests_of_session_ids_are_stored() {
    let (dir, _clock, store) = fixture();
    let cookie = store.create(AccountId(Uuid::now_v7())).await.unwrap();
    for name in ["sessions.db", "sessions.db-wal"] {
        let bytes = std::fs::read(dir.path().join(name)).unwrap_or_default();
        assert!(!bytes.windows(cookie.len()).any(|w| w == cookie.as_bytes()), "{name} holds the session id");
    }
}

#[tokio::test]
async fn csrf_tokens_belong_to_their_session() {
    let (_dir, _clock, store) = fixture();
    let a = store.create(AccountId(Uuid::now_v7())).await.unwrap();
    let b = store.create(AccountId(Uuid::now_v7())).await.unwrap();
    let token = store.csrf_token(&a);
    assert!(store.csrf_matches(&a, &token));
    assert!(!store.csrf_matches(&b, &token));
    assert!(!store.csrf_matches(&a, ""));
    assert!(!store.csrf_matches(&a, &token[1..]));
}
