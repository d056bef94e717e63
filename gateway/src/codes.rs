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

impl CodeKey {
    /// The digest stored for a recovery code: as for emailed codes, under its own label. The code
    /// is read as typed, in any case, with or without its dash and spaces.
    pub fn recovery_digest(&self, account: &[u8], code: &str) -> SecretDigest {
        let normal: String =
            code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(b"tenure recovery code v1\0");
        mac.update(account);
        mac.update(b"\0");
        mac.update(normal.as_bytes());
        SecretDigest(mac.finalize().into_bytes().into())
    }

    /// A new set of recovery codes for `account`: the codes to show once, and their digests.
    pub fn recovery_set(&self, account: &[u8]) -> (Vec<String>, Vec<SecretDigest>) {
        let codes: Vec<String> = (0..tenure_domain::decide::RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let digests = codes.iter().map(|code| self.recovery_digest(account, code)).collect();
        (codes, digests)
    }
}

/// Letters and digits that cannot be mistaken for one another when copied by hand.
const RECOVERY_ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// A recovery code: ten characters of a 32-letter alphabet (50 bits), as `XXXXX-XXXXX`. Guesses
/// are throttled like sign-in codes, and a digest is kept only under the server key.
pub fn new_recovery_code() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut code = String::with_capacity(11);
    for i in 0..10 {
        if i == 5 {
            code.push('-');
        }
        code.push(RECOVERY_ALPHABET[rng.random_range(0..32)] as char);
    }
    code
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
    fn recovery_codes_are_ten_distinct_unambiguous_characters_read_in_any_case() {
        let key = CodeKey::new([1; 32]);
        let (codes, digests) = key.recovery_set(b"account-a");
        assert_eq!(codes.len(), 10);
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), 10);
        for (code, digest) in codes.iter().zip(&digests) {
            assert_eq!(code.len(), 11, "{code}");
            assert_eq!(&code[5..6], "-");
            assert!(code.chars().filter(|c| *c != '-').all(|c| RECOVERY_ALPHABET.contains(&(c as u8))), "{code}");
            assert_eq!(key.recovery_digest(b"account-a", &code.to_lowercase().replace('-', " ")), *digest);
            assert_ne!(key.recovery_digest(b"account-b", code), *digest);
            assert_ne!(key.digest(b"account-a", code), *digest, "not an emailed code's digest");
        }
    }

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let code = new_code();
            assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        }
    }
}
