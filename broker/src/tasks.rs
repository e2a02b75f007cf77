//! Counts the broker's connection tasks so that shutdown can wait for all of them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

#[derive(Default)]
pub(crate) struct TaskCounter {
    active: AtomicUsize,
    idle: Notify,
}

/// Held by a running task; dropping it marks the task finished.
pub(crate) struct TaskGuard(Arc<TaskCounter>);

impl TaskCounter {
    pub fn enter(self: &Arc<Self>) -> TaskGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        TaskGuard(self.clone())
    }

    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.active.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
