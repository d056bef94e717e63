//! Password hashing with argon2id (m = 19 MiB, t = 2, p = 1 by default) on a bounded pool: at
//! most one hash per core runs at once, a bounded number wait, and beyond that callers are
//! told to come back later (the gateway answers 503) instead of piling up. Unknown usernames
//! are verified against a dummy hash, so they cost the same time as known ones.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        HashCost { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("too many sign-ins at once; try again in a moment")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

#[derive(Clone)]
pub struct PasswordHasherPool {
    argon2: Arc<Argon2<'static>>,
    /// Permits to run: one per core.
    running: Arc<Semaphore>,
    /// Permits to wait or run: the queue's bound.
    admitted: Arc<Semaphore>,
    capacity: usize,
    dummy: Arc<String>,
    /// How long one verification took at start-up.
    typical_verify: std::time::Duration,
}

impl PasswordHasherPool {
    pub fn new(cost: HashCost, workers: usize, queue: usize) -> Result<PasswordHasherPool, HashError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| HashError::Failed(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        // The dummy is a real hash of a random password with the same cost, so verifying
        // against it takes exactly as long as verifying a real one.
        let dummy = argon2
            .hash_password(salt.as_str().as_bytes(), &salt)
            .map_err(|e| HashError::Failed(e.to_string()))?
            .to_string();
        let started = std::time::Instant::now();
        let parsed = PasswordHash::new(&dummy).map_err(|e| HashError::Failed(e.to_string()))?;
        let _ = argon2.verify_password(b"timing probe", &parsed);
        let typical_verify = started.elapsed();
        let workers = workers.max(1);
        Ok(PasswordHasherPool {
            argon2: Arc::new(argon2),
            running: Arc::new(Semaphore::new(workers)),
            admitted: Arc::new(Semaphore::new(workers + queue)),
            capacity: workers + queue,
            dummy: Arc::new(dummy),
            typical_verify,
        })
    }

    /// How long one verification takes on this machine, measured at start-up.
    pub fn typical_verify(&self) -> std::time::Duration {
        self.typical_verify
    }

    /// Hashes waiting or running now (for the metrics).
    pub fn depth(&self) -> usize {
        self.capacity - self.admitted.available_permits()
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _admitted = self.admitted.clone().try_acquire_owned().map_err(|_| HashError::Busy)?;
        let _running = self.running.clone().acquire_owned().await.map_err(|_| HashError::Busy)?;
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || work(&argon2)).await.map_err(|e| HashError::Failed(e.to_string()))
    }

    /// A PHC string for a new password.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move |argon2| {
            let salt = SaltString::generate(&mut OsRng);
            argon2
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await?
    }

    /// Whether `password` matches `phc`; with `None` (an unknown user, or a user without a
    /// password) it verifies against the dummy and answers false, in the same time.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, HashError> {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.as_str().to_string());
        self.run(move |argon2| {
            let matches = PasswordHash::new(&phc)
                .is_ok_and(|parsed| argon2.verify_password(password.as_bytes(), &parsed).is_ok());
            matches && known
        })
        .await
    }
}
