use std::cell::Cell;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, IntoDeserializer, MapAccess, Visitor};
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

/// Read without buffering the value first (as `#[serde(untagged)]` would): every stored event
/// holds its personal member sealed, and folds over the whole log read millions of them.
impl<'de, T: Clone + Deserialize<'de>> Deserialize<'de> for Personal<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_option(Form(PhantomData))
    }
}

struct Form<T>(PhantomData<T>);

impl<'de, T: Clone + Deserialize<'de>> Visitor<'de> for Form<T> {
    type Value = Personal<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("personal data, {\"sealed\": …} or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Personal::Erased)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Personal::Erased)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }

    /// `{"sealed": …}` when its first key is `sealed` (no personal type has a field of that
    /// name); otherwise the value itself, read with that first key put back.
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return T::deserialize(MapAccessDeserializer::new(map)).map(Personal::Known);
        };
        if first == "sealed" {
            let sealed = match SEALED_TEXT_UNREAD.get() {
                false => map.next_value::<String>()?,
                true => map.next_value::<UnreadText>().map(|_| String::new())?,
            };
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Personal::Sealed(sealed));
        }
        T::deserialize(MapAccessDeserializer::new(Resumed { first: Some(first), map })).map(Personal::Known)
    }
}

thread_local! {
    static SEALED_TEXT_UNREAD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `decode` with the text of every sealed member left unread: each comes out as
/// `Sealed("")`. Read models record where personal data is, never what it says, and the sealed
/// text is most of an event's bytes: copying it and checking it as UTF-8 took a twelfth of a
/// rebuild's replay. An empty text never opens (it fails authentication), so a value decoded
/// this way cannot be mistaken for the stored one.
pub fn with_sealed_text_unread<R>(decode: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SEALED_TEXT_UNREAD.set(self.0);
        }
    }
    let _restore = Restore(SEALED_TEXT_UNREAD.replace(true));
    decode()
}

/// A JSON string, passed over: read as raw bytes, which serde_json neither copies nor checks as
/// UTF-8, and refused when it is anything but a string, as the text itself would be.
struct UnreadText;

impl<'de> Deserialize<'de> for UnreadText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(UnreadText)
    }
}

impl<'de> Visitor<'de> for UnreadText {
    type Value = UnreadText;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sealed text")
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<UnreadText, E> {
        Ok(UnreadText)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<UnreadText, E> {
        Ok(UnreadText)
    }
}

/// A map whose first key was read already.
struct Resumed<M> {
    first: Option<String>,
    map: M,
}

impl<'de, M: MapAccess<'de>> MapAccess<'de> for Resumed<M> {
    type Error = M::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, M::Error> {
        match self.first.take() {
            Some(key) => seed.deserialize(key.into_deserializer()).map(Some),
            None => self.map.next_key_seed(seed),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, M::Error> {
        self.map.next_value_seed(seed)
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
    fn sealed_text_left_unread_is_empty_and_still_checked() {
        let read = |json: &str| serde_json::from_str::<Personal<Profile>>(json);
        let unread = |json: &str| with_sealed_text_unread(|| read(json));
        assert_eq!(unread(r#"{"sealed":"c2Vh","later":1}"#).unwrap(), Personal::Sealed(String::new()));
        assert_eq!(unread(r#"{"sealed":"c2\u0056h"}"#).unwrap(), Personal::Sealed(String::new()));
        for refused in [r#"{"sealed":5}"#, r#"{"sealed":[99,50]}"#, r#"{"sealed":null}"#, r#"{"sealed":"c2Vh"#] {
            assert!(unread(refused).is_err(), "{refused}");
        }
        // The other forms, and everything decoded afterwards, read as ever.
        assert_eq!(unread(r#"{"phone":"1"}"#).unwrap(), read(r#"{"phone":"1"}"#).unwrap());
        assert_eq!(unread("null").unwrap(), Personal::Erased);
        assert_eq!(read(r#"{"sealed":"c2Vh"}"#).unwrap(), Personal::Sealed("c2Vh".into()));
        let after_a_panic = std::panic::catch_unwind(|| with_sealed_text_unread(|| panic!("mid-decode")));
        assert!(after_a_panic.is_err());
        assert_eq!(read(r#"{"sealed":"c2Vh"}"#).unwrap(), Personal::Sealed("c2Vh".into()));
    }

    #[test]
    fn every_shape_reads_as_the_buffering_form_did() {
        let read = |json: &str| serde_json::from_str::<Personal<Profile>>(json);
        let jo = Profile { display_name: Some("Jo".into()), phone: Some("1".into()), address: None };
        assert_eq!(read(r#"{"phone":"1","display_name":"Jo"}"#).unwrap(), Personal::Known(jo.clone()));
        assert_eq!(read(r#"{"display_name":"Jo","phone":"1","address":null}"#).unwrap(), Personal::Known(jo));
        assert_eq!(read("{}").unwrap(), Personal::Known(Profile::default()));
        assert_eq!(read(r#"{"sealed":"c2Vh","later":[1,{"a":2}]}"#).unwrap(), Personal::Sealed("c2Vh".into()));
        assert!(read(r#"{"sealed":5}"#).is_err());
        assert!(read(r#"{"phone":5}"#).is_err());
        assert!(read("\"text\"").is_err());

        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Event {
            personal: Personal<Profile>,
            after: u32,
        }
        let event: Event = serde_json::from_str(r#"{"personal":{"sealed":"eA"},"after":7}"#).unwrap();
        assert_eq!(event, Event { personal: Personal::Sealed("eA".into()), after: 7 });
        let event: Event = serde_json::from_str(r#"{"personal":null,"after":7}"#).unwrap();
        assert_eq!(event.personal, Personal::Erased);
        let event: Event = serde_json::from_str(r#"{"after":7}"#).unwrap();
        assert_eq!(event.personal, Personal::Erased, "a missing member reads as erased, as before");
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
