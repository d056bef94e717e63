//! Password hashing on the bounded pool.

use std::time::Instant;

use tenure_gateway::passwords::{HashCost, HashError, PasswordHasherPool};

fn cheap() -> HashCost {
    HashCost { memory_kib: 1024, iterations: 1, parallelism: 1 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_verifies_its_password_only() {
    let pool = PasswordHasherPool::new(HashCost::default(), 2, 8).unwrap();
    let phc = pool.hash("correct horse battery staple".into()).await.unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert!(pool.verify("correct horse battery staple".into(), Some(phc.clone())).await.unwrap());
    assert!(!pool.verify("correct horse battery stapler".into(), Some(phc.clone())).await.unwrap());
    let again = pool.hash("correct horse battery staple".into()).await.unwrap();
    assert_ne!(again, phc, "each hash has its own salt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_are_verified_against_a_dummy_and_refused() {
    let pool = PasswordHasherPool::new(cheap(), 2, 8).unwrap();
    assert!(!pool.verify("anything at all".into(), None).await.unwrap());
    assert!(!pool.verify("x".into(), Some("not a phc string".into())).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_busy_instead_of_piling_up() {
    let slow = HashCost { memory_kib: 19_456, iterations: 8, parallelism: 1 };
    let pool = PasswordHasherPool::new(slow, 1, 2).unwrap();
    let started = Instant::now();
    let attempts: Vec<_> = (0..6)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.hash(format!("password number {i}")).await })
        })
        .collect();
    let mut busy = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => {}
            Err(HashError::Busy) => busy += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(busy, 3, "one running and two waiting are admitted; the rest are turned away");
    assert_eq!(pool.depth(), 0);
    assert!(started.elapsed().as_secs() < 60);
}

/// Hashes made with other parameters (an older cost, another variant, a longer output) still
/// verify: the pool's threads grow their memory for them. One is the reference implementation's
/// own example (its README: `echo -n password | argon2 somesalt -t 2 -m 16 -p 4 -l 24`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashes_of_other_parameters_and_of_the_reference_implementation_verify() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let pool = PasswordHasherPool::new(HashCost::default(), 2, 8).unwrap();
    let reference = "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
    assert!(pool.verify("password".into(), Some(reference.into())).await.unwrap());
    assert!(!pool.verify("Password".into(), Some(reference.into())).await.unwrap());
    for (algorithm, m, t, p, len) in [
        (argon2::Algorithm::Argon2id, 19_456, 2, 1, 32),
        (argon2::Algorithm::Argon2id, 4_096, 3, 2, 48),
        (argon2::Algorithm::Argon2d, 2_048, 1, 1, 16),
    ] {
        let params = argon2::Params::new(m, t, p, Some(len)).unwrap();
        let hasher = argon2::Argon2::new(algorithm, argon2::Version::V0x13, params);
        let salt = SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap();
        let phc = hasher.hash_password(b"an older password", &salt).unwrap().to_string();
        assert!(pool.verify("an older password".into(), Some(phc.clone())).await.unwrap(), "{phc}");
        assert!(!pool.verify("an older passworD".into(), Some(phc.clone())).await.unwrap(), "{phc}");
    }
}

/// A stored hash whose cost is far above the configured one (damaged, or forged into the store)
/// is refused without being computed: it would otherwise take gigabytes or hours of a thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_of_an_outrageous_cost_is_refused_at_once_and_the_pool_goes_on() {
    let pool = PasswordHasherPool::new(cheap(), 1, 8).unwrap();
    let salt = "c29tZXNhbHQ";
    let output = "RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
    for forged in [
        format!("$argon2id$v=19$m=4000000000,t=2,p=1${salt}${output}"),
        format!("$argon2id$v=19$m=1024,t=4000000000,p=1${salt}${output}"),
    ] {
        let started = Instant::now();
        assert!(!pool.verify("password".into(), Some(forged.clone())).await.unwrap(), "{forged}");
        assert!(started.elapsed().as_secs() < 5, "{forged} was computed");
    }
    let phc = pool.hash("still here".into()).await.unwrap();
    assert!(pool.verify("still here".into(), Some(phc)).await.unwrap());
}
