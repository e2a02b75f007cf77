//! When a plugin that exited is started again: the restart policy (always, on failure,
//! never) and a capped exponential backoff that starts over once a run was stable.

use std::time::Duration;

use serde::Deserialize;

/// A run this long without exiting makes the next failure count as the first.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Which exits are followed by a restart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// After every exit (a clean one too), unless stopped through the hub.
    Always,
    /// After a non-zero exit code or a signal.
    #[default]
    OnFailure,
    Never,
}

impl Restart {
    pub fn restarts_after(self, success: bool) -> bool {
        match self {
            Restart::Always => true,
            Restart::OnFailure => !success,
            Restart::Never => false,
        }
    }
}

/// Waits between restarts: `min`, doubling per consecutive failure, at most `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The wait before the next start, after a run that lasted `ran`.
    pub fn next(&mut self, ran: Duration) -> Duration {
        if ran >= STABLE_AFTER {
            self.failures = 0;
        }
        let wait = self
            .min
            .saturating_mul(2u32.saturating_pow(self.failures.min(30)))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        wait
    }

    /// A start asked for through the hub begins a fresh count.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_starts_over_after_a_stable_run() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let quick = Duration::from_millis(10);
        let waits: Vec<u64> = (0..5).map(|_| b.next(quick).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        assert_eq!(b.next(STABLE_AFTER).as_secs(), 1);
        b.reset();
        assert_eq!(b.next(quick).as_secs(), 1);
    }

    #[test]
    fn policies() {
        assert!(Restart::Always.restarts_after(true));
        assert!(
            !Restart::OnFailure.restarts_after(true) && Restart::OnFailure.restarts_after(false)
        );
        assert!(!Restart::Never.restarts_after(false));
    }
}
