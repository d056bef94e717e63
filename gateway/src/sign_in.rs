//! Signing in (SPEC §2): the username, the password, a second factor (or a new authenticator the
//! org now requires), new terms, then the session; and signing out.

pub mod api;
pub mod flow;
mod flows;
pub mod pages;

pub use flow::RefusalTimes;
pub use flows::{Flow, Flows, Step};
