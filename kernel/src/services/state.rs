//! `state.*`: reads answer from flushed memory at once (or behind a pending write to the
//! same key); writes are persistence jobs, and the writer assigns versions and answers.

use hcore_client::protocol::commands::{StateDelete, StateExists, StateGet, StateList, StateSet};
use hcore_client::protocol::{ErrorCode, RpcError};
use serde_json::Value;

use super::{run, unknown, CallCtx, Outcome, Services};
use crate::persist::{Job, StateWrite};
use crate::state::{Origin, StateRead};

pub(super) fn handle(sv: &Services, ctx: CallCtx, method: &str, params: Value) -> Outcome {
    match method {
        "get" => run::<StateGet>(params, |c| {
            Ok(read(sv, ctx, StateRead::Get(c.key.into_string())))
        }),
        "exists" => run::<StateExists>(params, |c| {
            Ok(read(sv, ctx, StateRead::Exists(c.key.into_string())))
        }),
        "list" => run::<StateList>(params, |c| {
            Ok(read(sv, ctx, StateRead::List(c.prefix.unwrap_or_default())))
        }),
        "set" => run::<StateSet>(params, |c| {
            sv.check_value(&c.value)?;
            let write = StateWrite::Set {
                value: c.value,
                expected: c.expected_version,
            };
            Ok(write_state(sv, ctx, c.key.into_string(), write))
        }),
        "delete" => run::<StateDelete>(params, |c| {
            let write = StateWrite::Delete {
                expected: c.expected_version,
            };
            Ok(write_state(sv, ctx, c.key.into_string(), write))
        }),
        _ => unknown("state", method),
    }
}

/// Answers from memory, or behind a pending write to the same key(s).
fn read(sv: &Services, ctx: CallCtx, read: StateRead) -> Outcome {
    match sv.state.answer_now(&read) {
        Some(answer) => Outcome::Reply(answer),
        None => sv.persist(Job::ReadState {
            read,
            reply: ctx.reply,
        }),
    }
}

fn write_state(sv: &Services, ctx: CallCtx, key: String, write: StateWrite) -> Outcome {
    if ctx
        .grants
        .as_ref()
        .is_some_and(|g| !g.may_write_state(&key))
    {
        return Outcome::Reply(Err(RpcError::new(
            ErrorCode::Forbidden,
            format!(
                "{} may not write state key {key} (policy: state)",
                ctx.caller
            ),
        )));
    }
    sv.persist(Job::State {
        key,
        write,
        origin: Origin {
            source: ctx.caller,
            parent: ctx.request_id,
        },
        reply: Some(ctx.reply),
    })
}
