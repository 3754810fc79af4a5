//! Offline limits: what may be stored on this device before the backend has seen it.

use pos_protocol::SortedMap;
use serde::{Deserialize, Serialize};

use crate::error::PosError;

/// Limits set in `TerminalOptions.offline`. A currency without a limit has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfflineLimits {
    pub transaction_limit: SortedMap<u64>,
    pub stored_amount_limit: SortedMap<u64>,
    pub max_stored_payments: Option<u32>,
    /// Refuse storing while the oldest stored payment is older than this.
    pub max_stored_age_ms: Option<u64>,
}

/// What is stored and not yet accepted by the backend.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outstanding {
    pub count: u32,
    pub amounts: SortedMap<u64>,
    pub oldest_stored_at: Option<f64>,
}

/// Count and amounts per currency of the outstanding payments taken for one backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub count: u32,
    pub amounts: SortedMap<u64>,
}

impl Totals {
    fn add(&mut self, currency: &str, amount: u64) {
        self.count = self.count.saturating_add(1);
        let sum = self.amounts.get_or_insert_default(currency);
        *sum = sum.saturating_add(amount);
    }

    fn remove(&mut self, currency: &str, amount: u64) {
        self.count = self.count.saturating_sub(1);
        if let Some(sum) = self.amounts.get_mut(currency) {
            *sum = sum.saturating_sub(amount);
            if *sum == 0 {
                self.amounts.remove(currency);
            }
        }
    }

    fn merge(&mut self, other: &Totals) {
        self.count = self.count.saturating_add(other.count);
        for (currency, amount) in &other.amounts {
            let sum = self.amounts.get_or_insert_default(currency);
            *sum = sum.saturating_add(*amount);
        }
    }
}

/// The running summary of outstanding payments, kept sealed next to them and updated in the
/// same transaction as every add and state change that makes a payment start or stop
/// counting, so a limit check and the write it allows are one transaction, and the check
/// and the status read one small record whatever the number stored. Aggregates only (per
/// backend the payments were sealed for, `""` for none): its size does not grow with the
/// payments. The oldest stored time is not in it but in the store's age keys
/// (`store::ledger`), which answer "the oldest" without reading every payment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub backends: SortedMap<Totals>,
}

impl Ledger {
    /// A payment sealed for `backend` starts counting.
    pub fn add(&mut self, backend: &str, currency: &str, amount: u64) {
        self.backends
            .get_or_insert_default(backend)
            .add(currency, amount);
    }

    /// A payment sealed for `backend` stops counting.
    pub fn remove(&mut self, backend: &str, currency: &str, amount: u64) {
        if let Some(totals) = self.backends.get_mut(backend) {
            totals.remove(currency, amount);
            if totals.count == 0 {
                self.backends.remove(backend);
            }
        }
    }

    /// The sum over the backends `visible` accepts.
    pub fn totals(&self, visible: impl Fn(&str) -> bool) -> Totals {
        let mut sum = Totals::default();
        for (backend, totals) in &self.backends {
            if visible(backend) {
                sum.merge(totals);
            }
        }
        sum
    }

    /// Every outstanding payment on this device, whatever its backend (the oldest is not
    /// known here: `None`).
    pub fn outstanding(&self) -> Outstanding {
        let Totals { count, amounts } = self.totals(|_| true);
        Outstanding {
            count,
            amounts,
            oldest_stored_at: None,
        }
    }
}

impl OfflineLimits {
    /// Refuses a new offline payment that would break a limit; nothing is stored then.
    pub fn check(
        &self,
        amount: u64,
        currency: &str,
        now: &Outstanding,
        now_ms: f64,
    ) -> Result<(), PosError> {
        if let (Some(max), Some(oldest)) = (self.max_stored_age_ms, now.oldest_stored_at) {
            if now_ms - oldest > max as f64 {
                return Err(PosError::OfflineLimitExceeded(format!(
                    "the oldest stored payment is older than {max} ms: forward it first"
                )));
            }
        }
        if let Some(limit) = self.transaction_limit.get(currency) {
            if amount > *limit {
                return Err(PosError::OfflineLimitExceeded(format!(
                    "{amount} {currency} exceeds the offline transaction limit of {limit}"
                )));
            }
        }
        if let Some(limit) = self.stored_amount_limit.get(currency) {
            let stored = now.amounts.get(currency).copied().unwrap_or(0);
            if stored.saturating_add(amount) > *limit {
                return Err(PosError::OfflineLimitExceeded(format!(
                    "storing {amount} {currency} would bring the offline total to {} (limit {limit})",
                    stored.saturating_add(amount)
                )));
            }
        }
        if let Some(max) = self.max_stored_payments {
            if now.count >= max {
                return Err(PosError::OfflineLimitExceeded(format!(
                    "{} payments are already stored offline (limit {max})",
                    now.count
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> OfflineLimits {
        OfflineLimits {
            transaction_limit: [("usd".to_string(), 10_000)].into(),
            stored_amount_limit: [("usd".to_string(), 25_000)].into(),
            max_stored_payments: Some(3),
            max_stored_age_ms: Some(1_000),
        }
    }

    impl OfflineLimits {
        fn check_at(&self, amount: u64, currency: &str, now: &Outstanding) -> Result<(), PosError> {
            self.check(amount, currency, now, 0.0)
        }
    }

    #[test]
    fn the_ledger_sums_per_backend_and_forgets_what_leaves() {
        let mut ledger = Ledger::default();
        ledger.add("https://a", "usd", 5);
        ledger.add("https://a", "usd", 7);
        ledger.add("https://b", "jpy", 300);
        ledger.add("", "usd", 1);
        let all = ledger.outstanding();
        assert_eq!(all.count, 4);
        assert_eq!(all.amounts.get("usd"), Some(&13));
        let a = ledger.totals(|b| b.is_empty() || b == "https://a");
        assert_eq!((a.count, a.amounts.get("usd")), (3, Some(&13)));
        assert_eq!(a.amounts.get("jpy"), None);
        ledger.remove("https://b", "jpy", 300);
        assert!(
            !ledger.backends.contains_key("https://b"),
            "empty backends go"
        );
        ledger.remove("https://a", "usd", 5);
        assert_eq!(ledger.outstanding().amounts.get("usd"), Some(&8));
        // A backend that is not there changes nothing.
        ledger.remove("https://c", "usd", 5);
        assert_eq!(ledger.outstanding().count, 2);
        ledger.remove("", "usd", 9);
        assert_eq!(
            ledger.outstanding().amounts.get("usd"),
            Some(&7),
            "never below zero"
        );
    }

    #[test]
    fn a_stored_ledger_reads_back_byte_for_byte() {
        // As sealed when the maps were `BTreeMap`s: keys in order, whatever order they came in.
        let stored = r#"{"backends":{"":{"count":1,"amounts":{"usd":1}},"https://a":{"count":3,"amounts":{"eur":2,"jpy":300,"usd":12}}}}"#;
        let ledger: Ledger = serde_json::from_str(stored).unwrap();
        assert_eq!(serde_json::to_string(&ledger).unwrap(), stored);
        let mut built = Ledger::default();
        built.add("https://a", "usd", 12);
        built.add("https://a", "jpy", 300);
        built.add("", "usd", 1);
        built.add("https://a", "eur", 2);
        assert_eq!(built, ledger);
    }

    #[test]
    fn the_age_limit_refuses_while_the_oldest_is_too_old() {
        let now = Outstanding {
            count: 2,
            amounts: [("usd".to_string(), 12)].into(),
            oldest_stored_at: Some(500.0),
        };
        assert!(limits().check(1, "usd", &now, 1_500.0).is_ok());
        assert_eq!(
            limits().check(1, "usd", &now, 1_501.0).unwrap_err().code(),
            "offline_limit_exceeded"
        );
    }

    #[test]
    fn within_limits_passes() {
        let now = Outstanding {
            count: 1,
            amounts: [("usd".to_string(), 10_000)].into(),
            oldest_stored_at: None,
        };
        assert!(limits().check_at(10_000, "usd", &now).is_ok());
        assert!(limits()
            .check_at(1_000_000, "eur", &Outstanding::default())
            .is_ok());
    }

    #[test]
    fn each_limit_refuses() {
        let empty = Outstanding::default();
        assert_eq!(
            limits().check_at(10_001, "usd", &empty).unwrap_err().code(),
            "offline_limit_exceeded"
        );
        let near_total = Outstanding {
            count: 2,
            amounts: [("usd".to_string(), 20_000)].into(),
            oldest_stored_at: None,
        };
        assert!(limits().check_at(5_001, "usd", &near_total).is_err());
        assert!(limits().check_at(5_000, "usd", &near_total).is_ok());
        let full = Outstanding {
            count: 3,
            ..Outstanding::default()
        };
        assert!(limits().check_at(1, "eur", &full).is_err());
    }
}
