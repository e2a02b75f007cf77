//! What a client knows of the kernel from its retained status: whether it is the same
//! kernel connection as before (calls that depend on it fail when it is not), and how
//! calls reach the methods this client provides. The kernel's retained status says
//! which way: through the broker's shared subscriptions (`$share/<method>/...`: the
//! embedded broker, mosquitto), or handed by the kernel to one connection's delivery topic
//! (`"calls": "kernel"`: for brokers without shared subscriptions, such as NATS). A
//! provider watches the kernel status from its first `provide` on, keeps its delivery
//! topic subscribed, and holds the shared subscriptions only while the kernel says the
//! broker routes calls.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::protocol::PluginStatus;

#[derive(Default)]
pub(crate) struct Routing {
    /// This client provides methods, so it watches the kernel status.
    watching: AtomicBool,
    /// The last kernel status said the kernel hands calls out.
    via_kernel: AtomicBool,
    /// Kernel statuses seen (to wait for the first one after subscribing).
    seen: AtomicU64,
    /// The session of the kernel last seen online (0: none yet).
    kernel_session: AtomicU64,
    pub arrived: Notify,
}

impl Routing {
    pub fn watching(&self) -> bool {
        self.watching.load(Ordering::Acquire)
    }

    /// Starts watching; false if it already was.
    pub fn start_watching(&self) -> bool {
        !self.watching.swap(true, Ordering::AcqRel)
    }

    pub fn via_kernel(&self) -> bool {
        self.via_kernel.load(Ordering::Acquire)
    }

    /// Kernel statuses seen so far.
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::Acquire)
    }

    /// A kernel status arrived: what changed.
    pub fn on_kernel_status(&self, payload: &[u8]) -> KernelChange {
        let mut change = KernelChange::default();
        if let Ok(status) = serde_json::from_slice::<PluginStatus>(payload) {
            let session = if status.is_online() {
                status.session
            } else {
                0
            };
            let before = self.kernel_session.swap(session, Ordering::AcqRel);
            change.lost = before != 0 && before != session;
            if status.is_online() {
                let via_kernel = status.calls_via_kernel();
                let was = self.via_kernel.swap(via_kernel, Ordering::AcqRel);
                change.routing = (was != via_kernel).then_some(via_kernel);
            }
        }
        self.seen.fetch_add(1, Ordering::AcqRel);
        self.arrived.notify_waiters();
        change
    }
}

/// What a kernel status changed.
#[derive(Debug, Default)]
pub(crate) struct KernelChange {
    /// The kernel this client knew went offline or was replaced by a new session.
    pub lost: bool,
    /// How calls reach providers now, if that changed (`true`: via the kernel).
    pub routing: Option<bool>,
}
