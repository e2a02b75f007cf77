//! Which roles may call which kernel methods. The role is the one the broker stamped on
//! the call (`hc-role`; see `policy`): administrators and the kernel may call everything;
//! plugins everything but starting and stopping plugins; devices, observers and anonymous
//! network clients only what reads. Without a stamp (an external broker, whose ACL
//! decides) nothing is refused here.

use hcore_client::protocol::{ErrorCode, MethodName, RpcError};

use crate::policy::role;

/// Methods that change nothing.
const READS: &[&str] = &[
    "kernel.info",
    "plugins.list",
    "registry.list",
    "state.get",
    "state.exists",
    "state.list",
    "storage.get",
    "storage.list",
];

/// Methods only administrators (and the kernel) may call.
const ADMIN_ONLY: &[&str] = &[
    "plugins.start",
    "plugins.stop",
    "plugins.restart",
    "plugins.logs",
];

/// May a caller with `caller_role` call `method`?
pub(super) fn check(caller_role: Option<&str>, method: &MethodName) -> Result<(), RpcError> {
    let name = method.as_str();
    let allowed = match caller_role {
        None | Some(role::KERNEL) | Some(role::ADMIN) => true,
        Some(role::PLUGIN) => !ADMIN_ONLY.contains(&name),
        Some(_) => READS.contains(&name),
    };
    if allowed {
        return Ok(());
    }
    Err(RpcError::new(
        ErrorCode::Forbidden,
        format!(
            "role {} may not call {name}",
            caller_role.unwrap_or_default()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn may(r: &str, m: &str) -> bool {
        check(Some(r), &MethodName::new(m).unwrap()).is_ok()
    }

    #[test]
    fn roles_and_methods() {
        assert!(may("admin", "plugins.stop") && may("kernel", "plugins.stop"));
        assert!(!may("plugin", "plugins.stop") && may("plugin", "state.set"));
        for r in ["observer", "device", "client"] {
            assert!(may(r, "state.get") && may(r, "kernel.info"), "{r}");
            assert!(!may(r, "state.set") && !may(r, "storage.set"), "{r}");
            assert!(
                !may(r, "registry.register") && !may(r, "plugins.start"),
                "{r}"
            );
        }
        assert!(check(None, &MethodName::new("plugins.stop").unwrap()).is_ok());
    }
}
