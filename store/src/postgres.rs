//! The scale-out backend: PostgreSQL, shared by any number of gateways, CLI commands and one
//! active scheduler.
//!
//! Positions in `$all` are gap-free for readers (ADR 0008). Every append transaction first takes
//! the row lock on the one-row `head` table, numbers its events from the head it finds there,
//! and holds the lock until it commits. PostgreSQL makes a transaction visible before it
//! releases its locks, so the next writer numbers its events only after the previous ones are
//! visible: a reader can never see position n+1 while n is still invisible, and a rolled-back
//! transaction leaves no hole because it also rolls back its update of `head`.
//!
//! Within one process the appends are funnelled to one writer task that commits everything
//! queued since its last commit in one transaction (group commit), so the lock is taken once
//! per batch rather than once per append. Other processes learn of appends through
//! `NOTIFY tenure_events`, and subscriptions also poll, so a lost notification only delays.

pub(crate) mod events;
mod lock;
mod migrations;
mod pool;
mod scratch;
mod tls;

pub use crate::sqlite::Open;
pub use events::PgStore;
pub use lock::{AdvisoryLock, try_advisory_lock};
pub use migrations::{SCHEMA_VERSION, ensure_schema, migrate};
pub use pool::{pg_error, pool, pool_error, redacted};
pub use scratch::ScratchDatabase;
pub use tls::Connector;
