//! Ways back without a session (SPEC §10): a forgotten password (a reset link by mail), a
//! forgotten username (the usernames an address holds, by mail). Requests are answered at once
//! and worked off the request, so that the answer and its timing are the same for every name and
//! address; links are checked and used here too.

pub mod api;
pub mod email_index;
pub mod flow;
pub mod pages;
pub mod requests;
