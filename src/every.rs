//! "At most this often": for the upkeep a terminal does alongside its runs (pruning history,
//! counting every record), which reads far more than a run itself. Pure, so natively tested.

use std::cell::Cell;

/// Due the first time it is asked, then once `every_ms` has passed since it was last due, or
/// as soon as the clock went back.
#[derive(Debug)]
pub struct Every {
    every_ms: f64,
    last: Cell<Option<f64>>,
}

impl Every {
    pub const fn new(every_ms: f64) -> Self {
        Self {
            every_ms,
            last: Cell::new(None),
        }
    }

    /// Whether it is due at `now_ms`; if so, `now_ms` is when it was last due.
    pub fn take(&self, now_ms: f64) -> bool {
        let due = self
            .last
            .get()
            .is_none_or(|at| now_ms < at || now_ms - at >= self.every_ms);
        if due {
            self.last.set(Some(now_ms));
        }
        due
    }

    /// After a failed attempt at `now_ms`: due again `retry_ms` later (at most a period)
    /// instead of a full period later.
    pub fn retry_in(&self, now_ms: f64, retry_ms: f64) {
        self.last.set(Some(
            now_ms - self.every_ms + retry_ms.clamp(0.0, self.every_ms),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_first_then_once_per_period_and_when_the_clock_goes_back() {
        let hourly = Every::new(3_600_000.0);
        assert!(hourly.take(10_000.0), "the first time");
        assert!(!hourly.take(10_001.0));
        assert!(!hourly.take(3_609_999.0), "not a full hour yet");
        assert!(hourly.take(3_610_000.0), "an hour later");
        assert!(!hourly.take(3_610_000.0));
        assert!(hourly.take(5_000.0), "the clock went back");
        assert!(!hourly.take(6_000.0));
    }

    #[test]
    fn a_failed_attempt_is_due_again_after_the_retry_delay() {
        let hourly = Every::new(3_600_000.0);
        assert!(hourly.take(10_000.0));
        hourly.retry_in(10_000.0, 60_000.0);
        assert!(!hourly.take(69_999.0), "not a minute yet");
        assert!(hourly.take(70_000.0), "a minute after the failure");
        assert!(!hourly.take(70_001.0), "then hourly again");
        assert!(hourly.take(3_670_000.0));
        hourly.retry_in(3_670_000.0, 0.0);
        assert!(hourly.take(3_670_000.0), "at once");
    }
}
