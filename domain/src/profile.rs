//! What a user may write into their profile: display name, phone (E.164) and postal address.

use crate::events::Profile;

pub const MAX_DISPLAY_NAME: usize = 100;
pub const MAX_ADDRESS: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProfileError {
    /// The field the message belongs to.
    pub field: &'static str,
    pub message: String,
}

fn error(field: &'static str, message: impl Into<String>) -> ProfileError {
    ProfileError { field, message: message.into() }
}

/// Checks every field; the first problem found is returned, tied to its field.
pub fn check(profile: &Profile) -> Result<(), ProfileError> {
    if let Some(name) = &profile.display_name {
        let chars = name.trim().chars().count();
        if chars == 0 || chars > MAX_DISPLAY_NAME {
            return Err(error("display_name", format!("Use 1 to {MAX_DISPLAY_NAME} characters.")));
        }
        if name.chars().any(char::is_control) {
            return Err(error("display_name", "Use letters, spaces and punctuation only."));
        }
    }
    if let Some(phone) = &profile.phone {
        // E.164: a plus, then up to 15 digits, the first not a zero.
        let digits = phone.strip_prefix('+').unwrap_or("");
        let valid =
            (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
        if !valid {
            return Err(error(
                "phone",
                "Use the international format: a plus sign and up to 15 digits, such as +441632960001.",
            ));
        }
    }
    if let Some(address) = &profile.address {
        let chars = address.trim().chars().count();
        if chars == 0 || chars > MAX_ADDRESS {
            return Err(error("address", format!("Use 1 to {MAX_ADDRESS} characters.")));
        }
        if address.chars().any(|c| c.is_control() && c != '\n') {
            return Err(error("address", "Use letters, digits, punctuation and line breaks only."));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(display_name: Option<&str>, phone: Option<&str>, address: Option<&str>) -> Profile {
        Profile {
            display_name: display_name.map(str::to_string),
            phone: phone.map(str::to_string),
            address: address.map(str::to_string),
        }
    }

    #[test]
    fn good_profiles_pass() {
        assert_eq!(check(&with(Some("Jane Doe"), Some("+441632960001"), Some("1 High Street\nLondon"))), Ok(()));
        assert_eq!(check(&with(None, None, None)), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        for (profile, field) in [
            (with(Some(""), None, None), "display_name"),
            (with(Some(&"x".repeat(101)), None, None), "display_name"),
            (with(Some("Jane\u{7}"), None, None), "display_name"),
            (with(None, Some("01632 960001"), None), "phone"),
            (with(None, Some("+0441632960001"), None), "phone"),
            (with(None, Some("+1234567890123456"), None), "phone"),
            (with(None, Some("+44 1632"), None), "phone"),
            (with(None, None, Some(&"x".repeat(301))), "address"),
            (with(None, None, Some("a\u{0}b")), "address"),
        ] {
            assert_eq!(check(&profile).map_err(|e| e.field), Err(field), "{profile:?}");
        }
    }
}
