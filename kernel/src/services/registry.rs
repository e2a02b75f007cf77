//! `registry.*`: registering and listing providers.

use hcore_client::protocol::commands::{
    Registered, RegistryList, RegistryRegister, RegistryUnregister, Unregistered,
};
use serde_json::Value;

use super::{answer, run, unknown, CallCtx, Outcome, Services};

pub(super) fn handle(sv: &Services, ctx: CallCtx, method: &str, params: Value) -> Outcome {
    match method {
        "register" => run::<RegistryRegister>(params, |c| {
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
