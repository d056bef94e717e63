//! My Profile (SPEC §4): contact details, the password, moving to a new authenticator, and
//! recent sign-ins.

pub mod api;
pub mod flow;
pub mod pages;
