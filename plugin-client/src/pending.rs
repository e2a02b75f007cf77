//! The caller's side of RPC: calls waiting for their reply, matched by request id (or
//! correlation data, for replies that carry no id). A call that depends on the kernel
//! (a kernel method, or any call while the kernel hands calls out) is answered
//! `unavailable` at once when the kernel goes offline or comes back with a new session:
//! its request or reply may have been lost with the kernel's connection.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::protocol::{call_key, ErrorCode, Reply, RpcError};
use crate::transport::Message;

/// Calls waiting for a reply. An entry lives until its reply arrives, its caller times out
/// or the connection closes, so there are never more than the caller's calls in flight.
#[derive(Default)]
pub(crate) struct Pending {
    waiting: Mutex<HashMap<String, Waiter>>,
}

struct Waiter {
    tx: oneshot::Sender<Reply>,
    /// The kernel answers or forwards this call.
    via_kernel: bool,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiter>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the reply to the call with this id.
    pub fn wait(&self, id: &str, via_kernel: bool) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        self.lock()
            .insert(id.to_string(), Waiter { tx, via_kernel });
        rx
    }

    /// The kernel went offline or reconnected: every call that depends on it fails.
    pub fn kernel_lost(&self) {
        let lost: Vec<Waiter> = {
            let mut map = self.lock();
            let keys: Vec<String> = map
                .iter()
                .filter(|(_, w)| w.via_kernel)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        for w in lost {
            let e = RpcError::new(
                ErrorCode::Unavailable,
                "the kernel went offline or reconnected during the call; it may be lost",
            );
            let _ = w.tx.send(Reply::new(None, Err(e)));
        }
    }

    /// Stops waiting (the call timed out or could not be sent).
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Completes the call a reply belongs to; replies nobody waits for are ignored.
    pub fn complete(&self, m: &Message) {
        let Ok(reply) = serde_json::from_slice::<Reply>(&m.payload) else {
            tracing::debug!(topic = %m.topic, "unreadable reply ignored");
            return;
        };
        let Some(key) = call_key(reply.id.as_ref(), m.correlation.as_deref()) else {
            return;
        };
        let waiter = self.lock().remove(&key);
        if let Some(w) = waiter {
            let _ = w.tx.send(reply);
        }
    }

    /// Fails every waiting call now (the connection is gone for good).
    pub fn fail_all(&self) {
        self.lock().clear();
    }
}
