//! Offline limits: what may be stored on this device before the backend has seen it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::PosError;

/// Limits set in `TerminalOptions.offline`. A currency without a limit has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfflineLimits {
    pub transaction_limit: BTreeMap<String, u64>,
    pub stored_amount_limit: BTreeMap<String, u64>,
    pub max_stored_payments: Option<u32>,
    /// Refuse storing while the oldest stored payment is older than this.
    pub max_stored_age_ms: Option<u64>,
}

/// What is stored and not yet accepted by the backend.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outstanding {
    pub count: u32,
    pub amounts: BTreeMap<String, u64>,
    pub oldest_stored_at: Option<f64>,
}

/// One outstanding payment in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub currency: String,
    pub amount: u64,
    pub stored_at: f64,
}

/// The running summary of outstanding payments, kept sealed next to them and updated in the
/// same transaction as every add and state change, so a limit check and the write it allows
/// are one transaction and the check reads one record, not every payment. Keyed by payment
/// id, so applying the same change twice cannot make it drift.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub entries: BTreeMap<String, LedgerEntry>,
}

impl Ledger {
    pub fn outstanding(&self) -> Outstanding {
        let mut out = Outstanding::default();
        for e in self.entries.values() {
            out.count += 1;
            let sum = out.amounts.entry(e.currency.clone()).or_default();
            *sum = sum.saturating_add(e.amount);
            out.oldest_stored_at = Some(match out.oldest_stored_at {
                Some(t) => t.min(e.stored_at),
                None => e.stored_at,
            });
        }
        out
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
    fn the_age_limit_refuses_while_the_oldest_is_too_old() {
        let ledger = Ledger {
            entries: [
                (
                    "b".to_string(),
                    LedgerEntry {
                        currency: "usd".into(),
                        amount: 5,
                        stored_at: 900.0,
                    },
                ),
                (
                    "a".to_string(),
                    LedgerEntry {
                        currency: "usd".into(),
                        amount: 7,
                        stored_at: 500.0,
                    },
                ),
            ]
            .into(),
        };
        let now = ledger.outstanding();
        assert_eq!((now.count, now.oldest_stored_at), (2, Some(500.0)));
        assert_eq!(now.amounts.get("usd"), Some(&12));
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
