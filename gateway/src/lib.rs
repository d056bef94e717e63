//! The web gateway of Tenure. So far: the credentials it checks — passwords (argon2id on a
//! bounded pool), authenticator codes (TOTP, RFC 6238) and emailed codes (keyed digests).

pub mod codes;
pub mod mail;
pub mod passwords;
pub mod totp;
