//! `kernel.*`: about the kernel itself.

use hcore_client::protocol::commands::{KernelInfo, KernelInfoResult};
use serde_json::Value;

use super::{answer, run, unknown, Outcome, Services};

pub(super) fn handle(sv: &Services, method: &str, params: Value) -> Outcome {
    match method {
        "info" => run::<KernelInfo>(params, |_| {
            answer::<KernelInfo>(KernelInfoResult {
                version: env!("CARGO_PKG_VERSION").to_string(),
                root: sv.root.clone(),
                uptime_ms: sv.started.elapsed().as_millis() as u64,
                session: sv.link.get().map_or(0, |c| c.session()),
            })
        }),
        _ => unknown("kernel", method),
    }
}
