//! Tenure's read models: what answers the login and dashboard queries. They are built from the
//! event store by a runner that follows `$all` and writes rows and checkpoint in one
//! transaction, and they can be rebuilt from position 0 into a fresh copy that is swapped in
//! atomically while the old copy keeps answering.

pub mod db;
pub mod postgres;
pub mod rebuild;
pub mod rows;
pub mod runner;
pub mod sample;
pub mod schema;

pub use db::{Checkpoint, ProjectionDb, ProjectionError, ProjectionState, ProjectionStatus};
pub use rebuild::{Phase, RebuildReport, rebuild};
pub use rows::{AccountRow, ItemKind, OrgItem, PersonalAt, SignInEntry};
pub use runner::{catch_up, run};
pub use schema::{ALL, Projection};
