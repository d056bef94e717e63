//! A new password as the forms take it: first sign-in, a change in My Profile, a reset by link.

use crate::error::Error;
use crate::passwords::PasswordHasherPool;

/// A new password as typed twice (first sign-in, a change, a reset): the same both times, held
/// to the policy (SPEC §3), then hashed. With `on_fields` the errors name the form fields
/// `confirm_password` and `new_password`.
pub async fn hash_new(
    hasher: &PasswordHasherPool,
    username: &str,
    new_password: String,
    confirm_password: &str,
    on_fields: bool,
) -> Result<String, Error> {
    if new_password != confirm_password {
        return Err(Error::PasswordMismatch { field: on_fields.then_some("confirm_password") });
    }
    let username = tenure_domain::Username::parse(username).map_err(Error::internal)?;
    tenure_domain::password::check(&new_password, &username)
        .map_err(|rule| Error::WeakPassword { reason: rule.to_string(), field: on_fields.then_some("new_password") })?;
    Ok(hasher.hash(new_password).await?)
}
