//! The web gateway of Tenure. So far: the credentials it checks — passwords (argon2id on a
//! bounded pool), authenticator codes (TOTP, RFC 6238) and emailed codes (keyed digests) —,
//! outbound mail, and server-side sessions with their CSRF tokens.

pub mod api;
pub mod app;
pub mod codes;
pub mod error;
pub mod flows;
pub mod metrics;
pub mod pages;
pub mod passwords;
pub mod portal;
pub mod service;
pub mod sessions;
pub mod totp;
