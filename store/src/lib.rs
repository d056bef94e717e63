//! Tenure's event store: a small `EventStore` trait with strong guarantees, the SQLite backend
//! that runs out of the box, the codec between domain events and stored bytes (schema
//! versions, upcasting, sealing of personal data with per-account keys, the per-stream hash
//! chain), and `Accounts::execute`: load, fold, decide, append with the expected version.

pub mod accounts;
pub mod audit_log;
pub mod backend;
pub mod chain;
pub mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod disposable;
pub mod event_store;
pub mod keys;
pub mod merkle;
pub mod outbox;
pub mod postgres;
pub mod secrets;
pub mod sqlite;

pub use accounts::{Accounts, ExecuteError};
pub use backend::{Keys, Location, Store};
pub use codec::{Actor, CodecError, Envelope, Meta};
pub use event_store::{
    AppendError, Appended, EventRef, EventStore, Expected, NewEvent, Position, QueuedMail, RecordedEvent, StoreError,
    StreamAppend, Version,
};
pub use keys::{DataKey, KeyStore, PgKeyStore, SqliteKeyStore};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
