//! Emailed six-digit codes. A six-digit code has a million values, so an unkeyed hash of it
//! could be reversed by trying them all: events keep an HMAC-SHA256 digest under a server key
//! that lives with the other keys, never in the event log.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tenure_domain::SecretDigest;

/// The server key for code digests.
pub struct CodeKey([u8; 32]);

impl CodeKey {
    pub fn new(key: [u8; 32]) -> CodeKey {
        CodeKey(key)
    }

    /// The digest stored for `code`, bound to the account so that a digest cannot be replayed
    /// against another account.
    pub fn digest(&self, account: &[u8], code: &str) -> SecretDigest {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(b"tenure email code v1\0");
        mac.update(account);
        mac.update(b"\0");
        mac.update(code.trim().as_bytes());
        SecretDigest(mac.finalize().into_bytes().into())
    }
}

/// A fresh six-digit code, uniformly drawn from the OS's randomness.
pub fn new_code() -> String {
    use rand::Rng;
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_depend_on_key_account_and_code() {
        let key = CodeKey::new([1; 32]);
        let other_key = CodeKey::new([2; 32]);
        let d = key.digest(b"account-a", "123456");
        assert_eq!(d, key.digest(b"account-a", " 123456 "), "surrounding spaces are not part of a code");
        assert_ne!(d, key.digest(b"account-b", "123456"));
        assert_ne!(d, key.digest(b"account-a", "123457"));
        assert_ne!(d, other_key.digest(b"account-a", "123456"));
    }

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let code = new_code();
            assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        }
    }
}
