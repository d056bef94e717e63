//! Authenticator codes (RFC 6238): SHA-1, six digits, 30-second steps, one step of drift either
//! way. Checking returns the time step that matched, so that the domain can refuse a step that
//! was already used (replay).

use totp_rs::{Algorithm, Secret, TOTP};

pub const DIGITS: usize = 6;
pub const STEP_SECONDS: u64 = 30;
pub const DEFAULT_ISSUER: &str = "Tenure";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("the authenticator secret is not valid base32 of at least 128 bits")]
    BadSecret,
    #[error("cannot draw the QR code: {0}")]
    Qr(String),
}

/// A user's authenticator: the shared secret, and the issuer and label its app shows.
pub struct Authenticator {
    totp: TOTP,
}

impl Authenticator {
    /// A new random 160-bit secret, as RFC 4226 recommends.
    pub fn generate(issuer: &str, username: &str) -> Result<Authenticator, TotpError> {
        let secret = Secret::generate_secret().to_encoded().to_string();
        Authenticator::from_secret(&secret, issuer, username)
    }

    /// The authenticator of a stored base32 secret.
    pub fn from_secret(base32: &str, issuer: &str, username: &str) -> Result<Authenticator, TotpError> {
        let bytes = Secret::Encoded(base32.to_string()).to_bytes().map_err(|_| TotpError::BadSecret)?;
        let totp =
            TOTP::new(Algorithm::SHA1, DIGITS, 0, STEP_SECONDS, bytes, Some(issuer.to_string()), username.to_string())
                .map_err(|_| TotpError::BadSecret)?;
        Ok(Authenticator { totp })
    }

    /// The secret as base32, for desktop apps that take it typed in.
    pub fn secret_base32(&self) -> String {
        self.totp.get_secret_base32()
    }

    /// `otpauth://totp/Issuer:label?secret=…&issuer=…`, for the link and the QR code.
    pub fn uri(&self) -> String {
        self.totp.get_url()
    }

    /// A PNG of the QR code of `uri()`, base64.
    pub fn qr_png_base64(&self) -> Result<String, TotpError> {
        self.totp.get_qr_base64().map_err(TotpError::Qr)
    }

    /// The code for Unix time `at` (tests, and a user's app).
    pub fn code_at(&self, at: u64) -> String {
        self.totp.generate(at)
    }

    /// The time step (Unix time / 30) whose code `code` is, looking one step either side of
    /// `now`; `None` when it matches none. Comparisons are constant-time.
    pub fn matching_step(&self, code: &str, now: u64) -> Option<u64> {
        let current = now / STEP_SECONDS;
        let code = code.trim();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Every candidate is checked, so the time taken does not tell which one matched.
        let mut found = None;
        for step in [current.saturating_sub(1), current, current + 1] {
            if self.totp.check(code, step * STEP_SECONDS) && found.is_none() {
                found = Some(step);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1: the secret is the ASCII of "12345678901234567890"; the
    /// vectors have eight digits, of which a six-digit code is the last six.
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = b"12345678901234567890".to_vec();
        let vectors = [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        let eight = TOTP::new_unchecked(Algorithm::SHA1, 8, 0, 30, secret.clone(), None, String::new());
        let six = TOTP::new_unchecked(Algorithm::SHA1, 6, 0, 30, secret, None, String::new());
        for (time, expected) in vectors {
            assert_eq!(eight.generate(time), expected, "t = {time}");
            assert_eq!(six.generate(time), expected[2..], "t = {time}");
        }
    }

    #[test]
    fn a_code_matches_its_step_and_one_either_side_and_nothing_else() {
        let app = Authenticator::generate(DEFAULT_ISSUER, "jdoe").unwrap();
        let now = 1_800_000_015;
        let step = now / 30;
        assert_eq!(app.matching_step(&app.code_at(now), now), Some(step));
        assert_eq!(app.matching_step(&app.code_at(now - 30), now), Some(step - 1));
        assert_eq!(app.matching_step(&app.code_at(now + 30), now), Some(step + 1));
        assert_eq!(app.matching_step(&app.code_at(now - 60), now), None);
        assert_eq!(app.matching_step(&app.code_at(now + 60), now), None);
        assert_eq!(app.matching_step("12345", now), None);
        assert_eq!(app.matching_step("abcdef", now), None);
    }

    #[test]
    fn the_secret_round_trips_and_the_uri_names_issuer_and_user() {
        let app = Authenticator::generate("Tenure", "jdoe").unwrap();
        let again = Authenticator::from_secret(&app.secret_base32(), "Tenure", "jdoe").unwrap();
        assert_eq!(again.code_at(1_000_000), app.code_at(1_000_000));
        let uri = app.uri();
        assert!(uri.starts_with("otpauth://totp/Tenure:jdoe?"), "{uri}");
        assert!(uri.contains(&format!("secret={}", app.secret_base32())), "{uri}");
        assert!(uri.contains("issuer=Tenure"), "{uri}");
        assert!(!app.qr_png_base64().unwrap().is_empty());
        assert_eq!(Authenticator::from_secret("not base32!", "Tenure", "jdoe").err(), Some(TotpError::BadSecret));
    }
}
