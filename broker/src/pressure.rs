//! Flow control from subscribers back to publishers.
//!
//! rumqttd's router never slows a publisher down: when a subscriber lags by more than its
//! filter's log, the oldest messages are gone. The edge drains the router into per-client
//! queues as fast as it can, so a subscriber lags inside the router only when the router
//! itself is the bottleneck; and a QoS 1/2 subscriber that acknowledges steadily but more
//! slowly than publishers publish fills its edge queue. Either way the subscriber raises
//! its pressure flag, and every publisher waits (1 ms at a time, at most
//! `MAX_WAIT_MS` per batch) before handing the router more. The wait is bounded so a
//! stuck subscriber can only slow publishers, never stop them; it then loses messages,
//! which are counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest a publisher waits for lagging subscribers per batch.
pub(crate) const MAX_WAIT_MS: u32 = 5;

/// How many subscribers are lagging right now.
#[derive(Default)]
pub(crate) struct Pressure {
    lagging: AtomicUsize,
}

impl Pressure {
    pub fn active(&self) -> bool {
        self.lagging.load(Ordering::Relaxed) > 0
    }

    /// Waits (bounded) while some subscriber is lagging.
    pub async fn wait(&self) {
        let mut waited = 0;
        while self.active() && waited < MAX_WAIT_MS {
            tokio::time::sleep(Duration::from_millis(1)).await;
            waited += 1;
        }
    }
}

/// One subscriber's contribution to `Pressure`; cleared when dropped.
pub(crate) struct PressureFlag {
    pressure: Arc<Pressure>,
    on: bool,
}

impl PressureFlag {
    pub fn new(pressure: Arc<Pressure>) -> PressureFlag {
        PressureFlag {
            pressure,
            on: false,
        }
    }

    pub fn is_on(&self) -> bool {
        self.on
    }

    pub fn set(&mut self, on: bool) {
        if on != self.on {
            self.on = on;
            if on {
                self.pressure.lagging.fetch_add(1, Ordering::Relaxed);
            } else {
                self.pressure.lagging.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for PressureFlag {
    fn drop(&mut self) {
        self.set(false);
    }
}
