//! The auditor's view (SPEC §12): an account's history (deleted ones too), its state as of a
//! time, a badge that checks it against the log's signed head, exports, and the log's heads and
//! proofs. Auditors read and change nothing; every read is itself an event on the auditor's
//! stream. An org's auditor reads that org; an operator's auditor (`--all-orgs`) reads every org.

pub mod api;
pub mod flow;
pub mod pages;
pub mod reads;
