use serde::{Deserialize, Serialize};

/// Personal data inside an event. It is sealed with the account's data key when stored; once
/// that key is destroyed (crypto-shredding) it reads back as `Erased`, while the rest of the event
/// stays readable for auditors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Option<T>", into = "Option<T>")]
pub enum Personal<T: Clone> {
    Known(T),
    Erased,
}

impl<T: Clone> Personal<T> {
    pub fn known(&self) -> Option<&T> {
        match self {
            Personal::Known(value) => Some(value),
            Personal::Erased => None,
        }
    }

    pub fn map<U: Clone>(&self, f: impl FnOnce(&T) -> U) -> Personal<U> {
        match self {
            Personal::Known(value) => Personal::Known(f(value)),
            Personal::Erased => Personal::Erased,
        }
    }
}

impl<T: Clone> From<Option<T>> for Personal<T> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Personal::Erased, Personal::Known)
    }
}

impl<T: Clone> From<Personal<T>> for Option<T> {
    fn from(value: Personal<T>) -> Self {
        match value {
            Personal::Known(value) => Some(value),
            Personal::Erased => None,
        }
    }
}

impl<T: Clone + Default> Default for Personal<T> {
    fn default() -> Self {
        Personal::Known(T::default())
    }
}
