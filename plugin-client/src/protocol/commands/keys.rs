//! Keys checked while the parameters are parsed, so a handler only ever sees valid ones.

use serde::{Deserialize, Deserializer, Serialize};

use crate::protocol::names::{validate_state_key, validate_storage_key};

macro_rules! checked_key {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(key: impl Into<String>) -> Result<$name, crate::protocol::NameError> {
                let key = key.into();
                $check(&key)?;
                Ok($name(key))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                $name::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_key!(
    /// A state key (see `validate_state_key`).
    StateKey,
    validate_state_key
);

checked_key!(
    /// A storage key (see `validate_storage_key`).
    StorageKey,
    validate_storage_key
);
