//! The keys that sign tokens, on both backends: one is made at first use and shared by every
//! process; rotation makes a new one and keeps the replaced one until the end of its grace; two
//! processes starting together make one, not two.

use chrono::{Duration, Utc};
use tenure_store::StoreError;
use tenure_store::conformance::{Backend, TestLocation};
use tenure_store::sqlite::Open;

/// A key as far as the store is concerned: a name and secret bytes.
fn make() -> Result<(String, Vec<u8>), StoreError> {
    let secret = *uuid::Uuid::now_v7().as_bytes();
    Ok((uuid::Uuid::from_bytes(secret).to_string(), secret.to_vec()))
}

async fn setup(backend: Backend) -> Backend {
    backend
}

async fn keys_are_made_once_shared_and_rotated_with_a_grace(backend: Backend) {
    let place = TestLocation::create(backend).await;
    let (_, keys) = place.location.open(Open::CreateIfMissing).await.expect("open");
    let (_, other) = place.location.open(Open::MustExist).await.expect("a second process");
    let now = Utc::now();
    let (a, b) = tokio::join!(keys.signing_keys(make, now), other.signing_keys(make, now));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len(), 1, "made once");
    assert_eq!((a[0].kid.as_str(), a[0].secret.as_slice()), (b[0].kid.as_str(), b[0].secret.as_slice()));
    assert_eq!(keys.signing_keys(make, now).await.unwrap()[0].kid, a[0].kid, "kept, not made again");

    let rotated = keys.rotate_signing_key(make, now + Duration::hours(24), now).await.unwrap();
    assert_eq!(rotated.len(), 2);
    assert_ne!(rotated[0].kid, a[0].kid);
    assert_eq!(
        (rotated[1].kid.as_str(), rotated[1].dropped_at),
        (a[0].kid.as_str(), Some(now_micros(now + Duration::hours(24))))
    );
    assert_eq!(
        other.signing_keys(make, now).await.unwrap()[0].kid,
        rotated[0].kid,
        "every process signs with the new one"
    );
    let later = now + Duration::hours(25);
    let kept = other.signing_keys(make, later).await.unwrap();
    assert_eq!(kept.len(), 1, "the replaced key is dropped after its grace");
    assert_eq!(kept[0].kid, rotated[0].kid);
}

/// Times are kept in microseconds.
fn now_micros(at: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap()
}

tenure_store::on_both_backends!(
    super::setup;
    keys_are_made_once_shared_and_rotated_with_a_grace,
);
