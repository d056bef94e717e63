//! The web gateway of Tenure: the HTML pages and the JSON API of SPEC §8, by feature. Each
//! feature holds its use cases (`flow`, free of HTTP, answering typed `Error`s) and its two thin
//! front ends (`api` and `pages`); `http` holds what they share; `routes` names every handler.
//! Credentials (argon2id on a bounded pool, TOTP, keyed digests of emailed codes), sessions with
//! their CSRF tokens, and metrics live beside them.

pub mod admin;
pub mod attempts;
pub mod audit;
pub mod browser;
pub mod codes;
pub mod dashboard;
pub mod error;
pub mod first_sign_in;
pub mod followed;
pub mod gateway_db;
pub mod http;
pub mod kept_rows;
pub mod limits;
pub mod metrics;
pub mod mfa;
pub mod new_password;
pub mod notices;
pub mod offered_keys;
pub mod oidc;
pub mod ops;
pub mod passwords;
pub mod personal;
pub mod profile;
pub mod recovery;
pub mod routes;
pub mod server;
pub mod sessions;
pub mod sign_in;
pub mod state;
pub mod terms;
pub mod totp;
