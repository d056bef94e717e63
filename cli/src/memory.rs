//! How the process keeps its memory flat under load (ADR 0019; docs/performance.md, "Memory
//! under a mixed load").

/// jemalloc, not glibc's malloc: with glibc, resident memory kept growing under a steady load
/// (+4 % in ten minutes of `bench soak`, even with two arenas and free memory handed back each
/// minute) where jemalloc's stayed within 1.5 %.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Threads for blocking work, where tokio's default is 512. Almost all of it is SQLite, which
/// runs at most eight readers of a database at once and one writer; more threads only wait, and
/// under a steady load tokio starts a new one whenever none is idle at that instant, so the pool
/// grew by a thread or two a minute (49 to 77 in ten minutes of `bench soak`), each with its
/// stack and its share of the allocator's memory. A task beyond them waits in tokio's queue.
pub const BLOCKING_THREADS: usize = 32;
