//! `kernel.*`: about the kernel itself.

use serde::{Deserialize, Serialize};

use super::Command;
use crate::protocol::messages::ErrorCode;

/// `kernel.info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelInfo {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelInfoResult {
    pub version: String,
    pub root: String,
    pub uptime_ms: u64,
    pub session: u64,
}

impl Command for KernelInfo {
    const METHOD: &'static str = "kernel.info";
    const ERRORS: &'static [ErrorCode] = &[];
    type Result = KernelInfoResult;
}
