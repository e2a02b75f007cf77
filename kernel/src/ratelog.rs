//! Rate-limited warnings for hostile input: the first few lines per interval are logged,
//! the rest are counted and summarized, so a flood of bad requests cannot flood the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

const LINES_PER_INTERVAL: u32 = 10;
const INTERVAL: Duration = Duration::from_secs(10);

pub(crate) struct RateLog {
    inner: Mutex<(Instant, u32, u64)>,
}

impl Default for RateLog {
    fn default() -> Self {
        RateLog {
            inner: Mutex::new((Instant::now(), 0, 0)),
        }
    }
}

impl RateLog {
    /// Logs `what` unless too many lines were logged recently.
    pub fn warn(&self, what: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (start, lines, suppressed) = &mut *g;
        if start.elapsed() > INTERVAL {
            if *suppressed > 0 {
                tracing::warn!(
                    suppressed = *suppressed,
                    "more bad requests were dropped without a log line"
                );
            }
            *start = Instant::now();
            *lines = 0;
            *suppressed = 0;
        }
        if *lines < LINES_PER_INTERVAL {
            *lines += 1;
            tracing::warn!("{what}");
        } else {
            *suppressed += 1;
        }
    }
}
