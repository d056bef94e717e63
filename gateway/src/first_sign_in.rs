//! First sign-in from an invitation link (SPEC §3): a new password, the second factor the org
//! requires, the terms, then the first session. Leaving halfway and following the link again
//! resumes at the first unfinished step.

pub mod api;
pub mod flow;
pub mod pages;
