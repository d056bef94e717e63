//! Tenure's read models: what answers the login and dashboard queries. Each projection is a
//! definition (`projection.rs`) in a file of its own: `accounts` and `org_widgets`. A runner
//! follows `$all` and writes each batch of rows with its checkpoint in one transaction; a
//! rebuild replays from position 0 into a fresh copy that is swapped in atomically while the old
//! copy keeps answering. Where the rows live, SQLite or PostgreSQL, is `storage`'s business.

pub mod accounts;
pub mod history;
pub mod org_widgets;
pub mod projection;
pub mod rebuild;
pub mod runner;
pub mod sample;
pub mod storage;

pub use accounts::{AccountRow, DirectoryEntry, PersonalAt, SignInEntry};
pub use org_widgets::{ItemKind, OrgItem, OrgWidgets};
pub use projection::{ALL, Projection};
pub use rebuild::{Phase, RebuildReport, rebuild};
pub use runner::{catch_up, run};
pub use storage::{Checkpoint, ProjectionDb, ProjectionError, ProjectionState, ProjectionStatus};
