use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Personal data inside an event. It is stored sealed with the account's data key: read without
/// the key it stays `Sealed` (read models keep it that way and open it when they answer);
/// opened with the key it is `Known`; once the key is destroyed (crypto-shredding) it is
/// `Erased`, while the rest of the event stays readable for auditors.
#[derive(Clone, PartialEq, Eq)]
pub enum Personal<T: Clone> {
    Known(T),
    /// URL-safe base64 of `nonce || ciphertext`, bound to the event's id and stream.
    Sealed(String),
    Erased,
}

impl<T: Clone> Personal<T> {
    pub fn known(&self) -> Option<&T> {
        match self {
            Personal::Known(value) => Some(value),
            Personal::Sealed(_) | Personal::Erased => None,
        }
    }

    pub fn map<U: Clone>(&self, f: impl FnOnce(&T) -> U) -> Personal<U> {
        match self {
            Personal::Known(value) => Personal::Known(f(value)),
            Personal::Sealed(sealed) => Personal::Sealed(sealed.clone()),
            Personal::Erased => Personal::Erased,
        }
    }
}

/// Personal data never reaches logs through `Debug`.
impl<T: Clone> std::fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Personal::Known(_) => "Known(..)",
            Personal::Sealed(_) => "Sealed(..)",
            Personal::Erased => "Erased",
        })
    }
}

impl<T: Clone + Default> Default for Personal<T> {
    fn default() -> Self {
        Personal::Known(T::default())
    }
}

#[derive(Serialize, Deserialize)]
struct SealedForm<S> {
    sealed: S,
}

/// JSON: the value itself when known, `{"sealed": "…"}` when sealed, `null` when erased.
impl<T: Clone + Serialize> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Personal::Known(value) => value.serialize(serializer),
            Personal::Sealed(sealed) => SealedForm { sealed }.serialize(serializer),
            Personal::Erased => serializer.serialize_none(),
        }
    }
}

impl<'de, T: Clone + Deserialize<'de>> Deserialize<'de> for Personal<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form<T> {
            // Tried first: no personal type has a field named `sealed`.
            Sealed(SealedForm<String>),
            Known(T),
        }
        Ok(match Option::<Form<T>>::deserialize(deserializer)? {
            None => Personal::Erased,
            Some(Form::Sealed(form)) => Personal::Sealed(form.sealed),
            Some(Form::Known(value)) => Personal::Known(value),
        })
    }
}

/// The personal member of an event, whatever its type: what the codec needs to seal and open it.
pub trait PersonalField {
    /// The sealed text, while sealed.
    fn sealed(&self) -> Option<&str>;
    fn is_known(&self) -> bool;
    /// Replaces the sealed form by the opened value, or by `Erased` when there is no key.
    fn open(&mut self, plaintext: Option<&[u8]>) -> Result<(), serde_json::Error>;
}

impl<T: Clone + DeserializeOwned> PersonalField for Personal<T> {
    fn sealed(&self) -> Option<&str> {
        match self {
            Personal::Sealed(sealed) => Some(sealed),
            _ => None,
        }
    }

    fn is_known(&self) -> bool {
        matches!(self, Personal::Known(_))
    }

    fn open(&mut self, plaintext: Option<&[u8]>) -> Result<(), serde_json::Error> {
        if let Personal::Sealed(_) = self {
            *self = match plaintext {
                Some(bytes) => Personal::Known(serde_json::from_slice(bytes)?),
                None => Personal::Erased,
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Profile;

    #[test]
    fn the_three_forms_round_trip_through_json() {
        let known = Personal::Known(Profile { display_name: Some("Jo".into()), phone: None, address: None });
        let sealed: Personal<Profile> = Personal::Sealed("c2VhbGVk".into());
        for form in [known, sealed, Personal::Erased] {
            let json = serde_json::to_string(&form).unwrap();
            assert_eq!(serde_json::from_str::<Personal<Profile>>(&json).unwrap(), form, "{json}");
        }
        assert_eq!(serde_json::to_string(&Personal::<Profile>::Erased).unwrap(), "null");
    }

    #[test]
    fn opening_gives_the_value_or_erased() {
        let mut sealed: Personal<Profile> = Personal::Sealed("x".into());
        sealed.open(Some(br#"{"display_name":"Jo","phone":null,"address":null}"#)).unwrap();
        assert_eq!(sealed.known().and_then(|p| p.display_name.as_deref()), Some("Jo"));
        let mut gone: Personal<Profile> = Personal::Sealed("x".into());
        gone.open(None).unwrap();
        assert_eq!(gone, Personal::Erased);
    }
}
