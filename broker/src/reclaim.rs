//! Giving memory back to the operating system after clients leave.
//!
//! When thousands of clients disconnect, their sessions, subscriptions and buffers are
//! freed, but glibc's allocator keeps freed pages mapped in per-thread arenas, so the
//! broker's RSS would stay at its peak for good (a home hub restarting its devices, or a
//! flood that was refused, would leave it there). After sessions have ended, the
//! periodic upkeep asks the allocator to release its free pages (`malloc_trim`). Other
//! allocators and platforms are left to their own policy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

#[derive(Default)]
pub(crate) struct Reclaim {
    freed: AtomicBool,
}

impl Reclaim {
    /// Something sizeable was freed (a session ended).
    pub fn note(&self) {
        self.freed.store(true, Ordering::Relaxed);
    }

    /// Releases free memory if anything was freed since the last call.
    pub fn run(&self) {
        if !self.freed.swap(false, Ordering::Relaxed) {
            return;
        }
        let started = Instant::now();
        trim();
        tracing::debug!(
            us = started.elapsed().as_micros() as u64,
            "freed memory returned to the OS"
        );
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
