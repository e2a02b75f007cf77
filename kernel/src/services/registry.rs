//! `registry.*`: registering and listing providers.

use hcore_client::protocol::commands::{
    Registered, RegistryList, RegistryRegister, RegistryUnregister, Unregistered,
};
use hcore_client::protocol::{ErrorCode, RpcError};
use serde_json::Value;

use super::{answer, run, unknown, CallCtx, Outcome, Services};

pub(super) fn handle(sv: &Services, ctx: CallCtx, method: &str, params: Value) -> Outcome {
    match method {
        "register" => run::<RegistryRegister>(params, |c| {
            if let Some(g) = &ctx.grants {
                if let Some(m) = c.methods.iter().find(|m| !g.may_provide(m.as_str())) {
                    return Err(RpcError::new(
                        ErrorCode::Forbidden,
                        format!("{} may not provide {m} (policy: provide)", ctx.caller),
                    ));
                }
            }
            sv.calls.registry().register(&ctx.caller, &c.methods)?;
            answer::<RegistryRegister>(Registered {
                registered: c.methods,
            })
        }),
        "unregister" => run::<RegistryUnregister>(params, |c| {
            let unregistered = sv
                .calls
                .registry()
                .unregister(&ctx.caller, c.methods.as_deref());
            answer::<RegistryUnregister>(Unregistered { unregistered })
        }),
        "list" => run::<RegistryList>(params, |_| {
            answer::<RegistryList>(sv.calls.registry().services())
        }),
        _ => unknown("registry", method),
    }
}
