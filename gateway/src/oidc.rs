//! Tenure as the OpenID Connect provider of the portal's applications (SPEC §13). So far: the
//! keys that sign its tokens.

pub mod keys;
