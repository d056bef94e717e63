//! How the process keeps its memory with glibc's malloc (docs/performance.md, "Memory under a
//! mixed load"; ADR 0019).
//!
//! glibc gives each thread that meets a locked arena an arena of its own, up to eight per core,
//! and keeps what each grew to. Under tokio's blocking pool, whose threads come and go, that is
//! resident memory that grows with the number of threads ever seen, not with what is held.

/// Threads for blocking work, where tokio's default is 512. Almost all of it is SQLite, which
/// runs at most eight readers of a database at once and one writer; more threads only wait, and
/// under a steady load tokio starts a new one whenever none is idle at that instant, so the pool
/// grew by a thread or two a minute (47 to 77 in ten minutes of `bench soak`), each with its
/// stack and its share of malloc's memory. A task beyond them waits for one in tokio's queue.
pub const BLOCKING_THREADS: usize = 32;

/// At most two arenas: the two runtime workers and the hashing threads seldom meet in malloc,
/// and the blocking pool's threads share what they have.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called before any other thread exists; mallopt only sets a tunable.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands the free pages inside the arenas back to the system once a minute, so that a burst's
/// memory does not stay resident after it.
pub fn trim_every_minute() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        every.tick().await;
        loop {
            every.tick().await;
            // It walks every arena under its lock: a few milliseconds, off the workers.
            // SAFETY: malloc_trim is thread-safe.
            let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        }
    });
}
