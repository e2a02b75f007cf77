//! The caller's side of RPC: calls waiting for their reply, matched by request id (or
//! correlation data, for replies that carry no id).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::protocol::{call_key, Reply};
use crate::transport::Message;

/// Calls waiting for a reply. An entry lives until its reply arrives, its caller times out
/// or the connection closes, so there are never more than the caller's calls in flight.
#[derive(Default)]
pub(crate) struct Pending {
    waiting: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Reply>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the reply to the call with this id.
    pub fn wait(&self, id: &str) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id.to_string(), tx);
        rx
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
        if let Some(tx) = waiter {
            let _ = tx.send(reply);
        }
    }

    /// Fails every waiting call now (the connection is gone for good).
    pub fn fail_all(&self) {
        self.lock().clear();
    }
}
