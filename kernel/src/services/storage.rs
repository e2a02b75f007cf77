//! `storage.*`: the caller's own namespace. Reads of flushed data answer at once (behind
//! a pending write to the same keys otherwise); writes are persistence jobs answered after
//! the flush. Administrators may read (never write) another namespace.

use hcore_client::protocol::commands::{
    StorageCas, StorageDelete, StorageGet, StorageList, StorageSet,
};
use hcore_client::protocol::{ErrorCode, RpcError};
use serde_json::Value;

use super::{run, unknown, CallCtx, Outcome, Services};
use crate::persist::Job;
use crate::policy::role;
use crate::storage::{StorageRead, StorageWrite};

const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

pub(super) fn handle(sv: &Services, ctx: CallCtx, method: &str, params: Value) -> Outcome {
    match method {
        "get" => run::<StorageGet>(params, |c| {
            let ns = namespace(&ctx, c.namespace)?;
            Ok(read(
                sv,
                ctx,
                ns,
                StorageRead::Get {
                    key: c.key.into_string(),
                },
            ))
        }),
        "list" => run::<StorageList>(params, |c| {
            let ns = namespace(&ctx, c.namespace)?;
            let read_list = StorageRead::List {
                prefix: c.prefix.unwrap_or_default(),
                after: c.after,
                limit: c.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize,
                max_bytes: sv.max_page_bytes,
            };
            Ok(read(sv, ctx, ns, read_list))
        }),
        "set" => run::<StorageSet>(params, |c| {
            sv.check_value(&c.value)?;
            Ok(write(
                sv,
                ctx,
                StorageWrite::Set {
                    key: c.key.into_string(),
                    value: c.value,
                },
            ))
        }),
        "delete" => run::<StorageDelete>(params, |c| {
            Ok(write(
                sv,
                ctx,
                StorageWrite::Delete {
                    key: c.key.into_string(),
                },
            ))
        }),
        "cas" => run::<StorageCas>(params, |c| {
            for v in [&c.expected, &c.value].into_iter().flatten() {
                sv.check_value(v)?;
            }
            Ok(write(
                sv,
                ctx,
                StorageWrite::Cas {
                    key: c.key.into_string(),
                    expected: c.expected,
                    value: c.value,
                },
            ))
        }),
        _ => unknown("storage", method),
    }
}

/// The namespace a read names: the caller's own, or (for administrators) another one.
fn namespace(ctx: &CallCtx, asked: Option<String>) -> Result<String, RpcError> {
    match asked {
        None => Ok(ctx.caller.clone()),
        Some(ns) if ns == ctx.caller => Ok(ns),
        Some(ns) if ctx.role.as_deref() == Some(role::ADMIN) => Ok(ns),
        Some(ns) => Err(RpcError::new(
            ErrorCode::Forbidden,
            format!("only administrators may read the namespace of {ns}"),
        )),
    }
}

fn read(sv: &Services, ctx: CallCtx, ns: String, read: StorageRead) -> Outcome {
    match sv.storage.answer_now(&read, &ns) {
        Some(answer) => Outcome::Reply(answer),
        None => sv.persist(Job::ReadStorage {
            ns,
            read,
            reply: ctx.reply,
        }),
    }
}

fn write(sv: &Services, ctx: CallCtx, write: StorageWrite) -> Outcome {
    sv.persist(Job::Storage {
        ns: ctx.caller,
        write,
        reply: ctx.reply,
    })
}
