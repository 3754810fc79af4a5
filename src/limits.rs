//! Offline limits: what may be stored on this device before the backend has seen it.

use std::collections::BTreeMap;

use crate::error::PosError;

/// Limits set in `TerminalOptions.offline`. A currency without a limit has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfflineLimits {
    pub transaction_limit: BTreeMap<String, u64>,
    pub stored_amount_limit: BTreeMap<String, u64>,
    pub max_stored_payments: Option<u32>,
}

/// What is stored and not yet accepted by the backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outstanding {
    pub count: u32,
    pub amounts: BTreeMap<String, u64>,
}

impl OfflineLimits {
    /// Refuses a new offline payment that would break a limit; nothing is stored then.
    pub fn check(&self, amount: u64, currency: &str, now: &Outstanding) -> Result<(), PosError> {
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
        }
    }

    #[test]
    fn within_limits_passes() {
        let now = Outstanding {
            count: 1,
            amounts: [("usd".to_string(), 10_000)].into(),
        };
        assert!(limits().check(10_000, "usd", &now).is_ok());
        assert!(limits()
            .check(1_000_000, "eur", &Outstanding::default())
            .is_ok());
    }

    #[test]
    fn each_limit_refuses() {
        let empty = Outstanding::default();
        assert_eq!(
            limits().check(10_001, "usd", &empty).unwrap_err().code(),
            "offline_limit_exceeded"
        );
        let near_total = Outstanding {
            count: 2,
            amounts: [("usd".to_string(), 20_000)].into(),
        };
        assert!(limits().check(5_001, "usd", &near_total).is_err());
        assert!(limits().check(5_000, "usd", &near_total).is_ok());
        let full = Outstanding {
            count: 3,
            amounts: BTreeMap::new(),
        };
        assert!(limits().check(1, "eur", &full).is_err());
    }
}
