//! `service.method`: the name of an RPC method, checked once where it enters the program.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::names::{validate_name, NameError};

/// Services implemented by the kernel itself.
pub const KERNEL_SERVICES: [&str; 5] = ["kernel", "plugins", "registry", "state", "storage"];

/// A valid method name: `<service>.<method>`, each part 1-64 characters of
/// `A-Z a-z 0-9 _ -`.
#[derive(Clone, PartialEq, Eq)]
pub struct MethodName {
    full: String,
    dot: usize,
}

impl MethodName {
    /// Parses and checks `service.method`.
    pub fn new(full: &str) -> Result<MethodName, NameError> {
        let Some(dot) = full.find('.') else {
            return Err(NameError(format!(
                "{full}: methods are named service.method"
            )));
        };
        validate_name(&full[..dot])?;
        validate_name(&full[dot + 1..])?;
        Ok(MethodName {
            full: full.to_string(),
            dot,
        })
    }

    /// Builds the name from the two levels of a call topic.
    pub fn from_parts(service: &str, method: &str) -> Result<MethodName, NameError> {
        validate_name(service)?;
        validate_name(method)?;
        Ok(MethodName {
            full: format!("{service}.{method}"),
            dot: service.len(),
        })
    }

    pub fn service(&self) -> &str {
        &self.full[..self.dot]
    }

    pub fn method(&self) -> &str {
        &self.full[self.dot + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// Is this a method of one of the kernel's own services?
    pub fn is_kernel(&self) -> bool {
        KERNEL_SERVICES.contains(&self.service())
    }
}

impl fmt::Display for MethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for MethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.full)
    }
}

impl FromStr for MethodName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<MethodName, NameError> {
        MethodName::new(s)
    }
}

// Equality, order and hash are those of the full name (the dot follows from it), so a
// map keyed by MethodName can be looked up with a `&str`.
impl std::hash::Hash for MethodName {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.full.hash(h)
    }
}

impl PartialOrd for MethodName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MethodName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.full.cmp(&other.full)
    }
}

impl std::borrow::Borrow<str> for MethodName {
    fn borrow(&self) -> &str {
        &self.full
    }
}

impl AsRef<str> for MethodName {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

impl Serialize for MethodName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.full)
    }
}

impl<'de> Deserialize<'de> for MethodName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MethodName, D::Error> {
        let s = String::deserialize(d)?;
        MethodName::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let m = MethodName::new("state.get").unwrap();
        assert_eq!((m.service(), m.method()), ("state", "get"));
        assert!(m.is_kernel());
        assert_eq!(
            MethodName::from_parts("lamp", "toggle").unwrap().as_str(),
            "lamp.toggle"
        );
        for bad in ["state", ".get", "state.", "st ate.get", "a.b.c"] {
            assert!(MethodName::new(bad).is_err(), "{bad}");
        }
        let json: MethodName = serde_json::from_str(r#""lamp.on""#).unwrap();
        assert!(!json.is_kernel());
        assert!(serde_json::from_str::<MethodName>(r#""nodot""#).is_err());
    }
}
