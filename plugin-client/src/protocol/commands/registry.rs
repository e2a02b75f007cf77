//! `registry.*`: which client provides which method.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Command;
use crate::protocol::messages::ErrorCode;
use crate::protocol::method::MethodName;

/// `registry.register`: the caller provides these methods (all or none; a kernel
/// service's method is `forbidden`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryRegister {
    pub methods: Vec<MethodName>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    pub registered: Vec<MethodName>,
}

impl Command for RegistryRegister {
    const METHOD: &'static str = "registry.register";
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::Forbidden];
    type Result = Registered;
}

/// `registry.unregister`: the caller stops providing these methods (all without a list).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryUnregister {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<MethodName>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unregistered {
    pub unregistered: Vec<MethodName>,
}

impl Command for RegistryUnregister {
    const METHOD: &'static str = "registry.unregister";
    const ERRORS: &'static [ErrorCode] = &[];
    type Result = Unregistered;
}

/// `registry.list`: every provided method and its providers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryList {}

/// `{"<service>": {"<method>": ["<provider>", ...]}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Services {
    pub services: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl Command for RegistryList {
    const METHOD: &'static str = "registry.list";
    const ERRORS: &'static [ErrorCode] = &[];
    type Result = Services;
}
