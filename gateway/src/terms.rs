//! Agreeing to the terms, at first sign-in and at the first sign-in after they changed.

use crate::error::Error;
use crate::state::App;

/// The box must be ticked, for the version in force.
pub fn check(app: &App, accept: bool, version: u32) -> Result<(), Error> {
    if !accept {
        return Err(Error::TermsNotAccepted);
    }
    if version != app.config.terms_version {
        return Err(Error::StaleTerms { current: app.config.terms_version });
    }
    Ok(())
}
