//! Causality: what the current task is handling.
//!
//! While a provided method's handler runs, its task carries the request's id as the
//! current context, and every call, event and state change the handler makes through the
//! SDK carries it as `parent` unless it names another. So a state record can be traced
//! back to the request that caused it, and that request to whatever caused it. A task the
//! handler spawns does not inherit the context; wrap its future in `with_parent`.

use std::future::Future;

tokio::task_local! {
    static CONTEXT: String;
}

/// The id of the request the current task is handling, if any.
pub fn current_parent() -> Option<String> {
    CONTEXT.try_with(|c| c.clone()).ok()
}

/// Runs `fut` with `parent` as its context: what it calls, publishes or writes through the
/// SDK carries `parent` (unless it names another).
pub async fn with_parent<F: Future>(parent: Option<String>, fut: F) -> F::Output {
    match parent {
        Some(p) => CONTEXT.scope(p, fut).await,
        None => fut.await,
    }
}
