//! The password policy of SPEC §3 (NIST SP 800-63B): length only, no composition rules; refuse
//! passwords that contain the username, and passwords that zxcvbn can guess within a million
//! tries. The latter covers zxcvbn's bundled list of 30,000 common passwords (an entry is
//! guessed within its rank) as well as repeats, sequences, keyboard walks and dictionary words
//! with digits appended. A list entry may be matched by a cheaper pattern first (a keyboard walk
//! such as `1qaz2wsx3edc`), so both cases give one answer: too common or easy to guess.

use crate::ids::Username;

pub const MIN_CHARS: usize = 12;
pub const MAX_CHARS: usize = 128;
/// Below this many guesses zxcvbn rates a password "too guessable" (its score 0 or 1).
pub const MIN_GUESSES: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejection {
    #[error("Use at least {MIN_CHARS} characters.")]
    TooShort,
    #[error("Use at most {MAX_CHARS} characters.")]
    TooLong,
    #[error("The password must not contain your username.")]
    ContainsUsername,
    #[error("This password is commonly used or easy to guess; try a few unrelated words.")]
    Guessable,
}

pub fn check(password: &str, username: &Username) -> Result<(), PasswordRejection> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordRejection::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(PasswordRejection::TooLong);
    }
    if password.to_lowercase().contains(username.as_str()) {
        return Err(PasswordRejection::ContainsUsername);
    }
    let entropy = zxcvbn::zxcvbn(password, &[username.as_str()]);
    if entropy.guesses() < MIN_GUESSES {
        return Err(PasswordRejection::Guessable);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jdoe() -> Username {
        Username::parse("jdoe").unwrap()
    }

    #[test]
    fn long_unusual_passwords_pass() {
        assert_eq!(check("correct horse battery staple", &jdoe()), Ok(()));
        assert_eq!(check("mauve-otter-gravel-1987", &jdoe()), Ok(()));
        assert_eq!(check("ñandú sobre el tejado", &jdoe()), Ok(()), "any Unicode is fine");
    }

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        assert_eq!(check("qwfpgjluy;a", &jdoe()), Err(PasswordRejection::TooShort));
        assert_eq!(check(&"ü".repeat(11), &jdoe()), Err(PasswordRejection::TooShort));
        assert_eq!(check(&"x7".repeat(65), &jdoe()), Err(PasswordRejection::TooLong));
    }

    #[test]
    fn passwords_containing_the_username_are_refused_whatever_their_case() {
        assert_eq!(check("my name is JDoe, ok?", &jdoe()), Err(PasswordRejection::ContainsUsername));
    }

    #[test]
    fn common_passwords_from_the_bundled_list_are_refused() {
        for common in ["123qweasdzxc", "1qaz2wsx3edc", "qazwsxedcrfv", "leavemealone", "123456654321"] {
            assert_eq!(check(common, &jdoe()), Err(PasswordRejection::Guessable), "{common}");
            assert_eq!(check(&common.to_uppercase(), &jdoe()), Err(PasswordRejection::Guessable), "{common}");
        }
    }

    #[test]
    fn repeats_and_sequences_are_refused_as_guessable() {
        assert_eq!(check("aaaaaaaaaaaa", &jdoe()), Err(PasswordRejection::Guessable));
        assert_eq!(check("abcdefghijklmnop", &jdoe()), Err(PasswordRejection::Guessable));
        assert_eq!(check("password1234", &jdoe()), Err(PasswordRejection::Guessable));
    }
}
