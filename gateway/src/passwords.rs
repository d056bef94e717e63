//! Password hashing with argon2id (m = 19 MiB, t = 2, p = 1 by default) on a bounded pool: one
//! thread per core, each with its own argon2 memory that every verification reuses, a bounded
//! number of requests waiting, and beyond that callers are told to come back later (the
//! gateway answers 503) instead of piling up. Unknown usernames are verified against a dummy
//! hash, so they cost the same time as known ones.
//!
//! Own threads with their own memory, not the blocking pool: there each hash landed on any of
//! dozens of threads, each allocating 19 MiB in its own malloc arena, and a soak test saw the
//! gateway's memory climb to 750 MiB.

use std::sync::{Arc, Mutex, mpsc};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
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

/// Work for a hashing thread, given its argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// A hashing thread's life: jobs one after another, each in the thread's memory. A job that
/// panics is answered as failed (its result channel drops) and the thread goes on; memory grown
/// for an old hash's larger cost is given back after it.
fn hashing_thread(received: &Mutex<mpsc::Receiver<Job>>, mut memory: Vec<Block>, usual: usize) {
    loop {
        // The lock is held only while waiting for the next job.
        let job = match received.lock() {
            Ok(received) => received.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut memory))).is_err() {
            tracing::error!("a password hashing job panicked");
        }
        if memory.len() > usual {
            memory.truncate(usual);
            memory.shrink_to_fit();
        }
    }
}

#[derive(Clone)]
pub struct PasswordHasherPool {
    argon2: Arc<Argon2<'static>>,
    cost: HashCost,
    /// To the hashing threads; they end when the last pool handle is dropped.
    jobs: mpsc::Sender<Job>,
    /// Permits to wait or run: the queue's bound.
    admitted: Arc<Semaphore>,
    capacity: usize,
    dummy: Arc<String>,
    /// How long one verification took at start-up.
    typical_verify: std::time::Duration,
}

/// How far a stored hash's cost may exceed the configured one and still be computed: hashes of
/// an earlier, higher setting verify, while a damaged or forged one cannot make a thread
/// allocate gigabytes or spin for hours.
const COST_MARGIN: u32 = 4;

/// Whether `password` hashes to `phc`'s output with `phc`'s own parameters, computed in
/// `memory` (grown when the parameters ask for more, within `COST_MARGIN` of `cost`); the
/// outputs are compared in constant time.
fn verify_in(memory: &mut Vec<Block>, cost: HashCost, password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else { return false };
    let version = parsed.version.map_or(Ok(Version::default()), Version::try_from);
    let (Ok(version), Ok(params)) = (version, Params::try_from(&parsed)) else { return false };
    if params.m_cost() > cost.memory_kib.saturating_mul(COST_MARGIN)
        || params.t_cost() > cost.iterations.saturating_mul(COST_MARGIN)
        || params.p_cost() > cost.parallelism.saturating_mul(COST_MARGIN)
    {
        tracing::warn!(
            m = params.m_cost(),
            t = params.t_cost(),
            p = params.p_cost(),
            "a stored password hash costs far more than the configured cost; it is not computed"
        );
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    argon2.hash_password_into_with_memory(password, salt, &mut out, &mut memory[..]).is_ok()
        && bool::from(out.ct_eq(expected.as_bytes()))
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
        verify_in(&mut Vec::new(), cost, b"timing probe", &dummy);
        let typical_verify = started.elapsed();
        let usual = argon2.params().block_count();
        let workers = workers.max(1);
        let (jobs, received) = mpsc::channel::<Job>();
        let received = Arc::new(Mutex::new(received));
        for n in 0..workers {
            let received = received.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || hashing_thread(&received, Vec::new(), usual))
                .map_err(|e| HashError::Failed(format!("no hashing thread: {e}")))?;
        }
        Ok(PasswordHasherPool {
            argon2: Arc::new(argon2),
            cost,
            jobs,
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
        work: impl FnOnce(&Argon2<'static>, &mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| HashError::Busy)?;
        let argon2 = self.argon2.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        // The permit goes with the job: a caller that gave up frees no room while its hash
        // still waits, and the hash is then not computed at all.
        let job: Job = Box::new(move |memory| {
            if done.is_closed() {
                return;
            }
            let result = work(&argon2, memory);
            // Room is freed before the answer, so that whoever has it sees the queue as it is.
            drop(admitted);
            let _ = done.send(result);
        });
        self.jobs.send(job).map_err(|_| HashError::Failed("the hashing threads are gone".into()))?;
        result.await.map_err(|_| HashError::Failed("a hashing thread failed".into()))
    }

    /// A PHC string for a new password.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move |argon2, _| {
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
        let cost = self.cost;
        self.run(move |_, memory| verify_in(memory, cost, password.as_bytes(), &phc) && known).await
    }
}
