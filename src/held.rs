//! Collected payments waiting for `processPayment`: taken out while one is processed (so a
//! double click gets `payment_in_progress`), put back when the answer was not final (so a
//! retry reuses the same id and cannot charge twice).

use crate::error::PosError;
use crate::payment::Collected;

/// How many collected, unprocessed payments a terminal keeps.
pub const MAX_HELD: usize = 16;

/// A held payment; `unknown` ones (their outcome is unknown) are never dropped: they are the
/// cashier's only way to retry with the same id.
struct Slot {
    payment: Collected,
    unknown: bool,
}

#[derive(Default)]
pub struct Held {
    payments: Vec<Slot>,
    /// Ids taken out by a `processPayment` that has not answered yet.
    processing: Vec<String>,
}

impl Held {
    /// Keeps a newly collected payment; the oldest whose outcome is known goes when
    /// `MAX_HELD` are held.
    pub fn hold(&mut self, c: Collected) {
        self.keep(c, false);
    }

    fn keep(&mut self, payment: Collected, unknown: bool) {
        if self.payments.len() >= MAX_HELD {
            if let Some(at) = self.payments.iter().position(|s| !s.unknown) {
                self.payments.remove(at);
            }
        }
        self.payments.push(Slot { payment, unknown });
    }

    /// Takes a payment out to process it, with whether an earlier attempt's outcome is
    /// unknown (it may have reached the backend); `end` must follow once it has an answer.
    pub fn take(&mut self, id: &str) -> Result<(Collected, bool), PosError> {
        if self.processing.iter().any(|p| p == id) {
            return Err(PosError::PaymentInProgress);
        }
        let at = self
            .payments
            .iter()
            .position(|s| s.payment.id == id)
            .ok_or(PosError::PaymentNotCollected)?;
        self.processing.push(id.to_owned());
        let slot = self.payments.remove(at);
        Ok((slot.payment, slot.unknown))
    }

    /// Ends the processing of a taken payment. One whose answer was not final is put back
    /// (`Some(unknown)`, true when its outcome is unknown); a final one is gone (`None`).
    pub fn end(&mut self, c: Collected, put_back: Option<bool>) {
        self.processing.retain(|p| *p != c.id);
        if let Some(unknown) = put_back {
            self.keep(c, unknown);
        }
    }

    /// True when the result of processing is final: the payment must not be processed again.
    pub fn is_final<T>(result: &Result<T, PosError>) -> bool {
        matches!(result, Ok(_) | Err(PosError::CardDeclined { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::tests::collected;

    #[test]
    fn a_payment_is_processed_once_unless_put_back() {
        let mut held = Held::default();
        let c = collected("pay_1");
        held.hold(c.clone());
        assert_eq!(held.take("pay_1").unwrap(), (c.clone(), false));
        assert_eq!(
            held.take("pay_1").unwrap_err(),
            PosError::PaymentInProgress,
            "a second call while the first has not answered"
        );
        held.end(c.clone(), Some(false));
        assert_eq!(held.take("pay_1").unwrap().0.id, "pay_1");
        held.end(c, None);
        assert_eq!(
            held.take("pay_1").unwrap_err(),
            PosError::PaymentNotCollected,
            "after a final answer"
        );
        assert_eq!(
            held.take("pay_2").unwrap_err(),
            PosError::PaymentNotCollected
        );
    }

    #[test]
    fn only_success_and_declines_are_final() {
        assert!(Held::is_final(&Ok::<(), PosError>(())));
        assert!(Held::is_final::<()>(&Err(PosError::CardDeclined {
            decline_code: "x".into()
        })));
        assert!(!Held::is_final::<()>(&Err(PosError::OutcomeUnknown(
            "x".into()
        ))));
    }

    #[test]
    fn keeps_at_most_max_held() {
        let mut held = Held::default();
        for i in 0..=MAX_HELD {
            held.hold(collected(&format!("pay_{i}")));
        }
        assert!(held.take("pay_0").is_err(), "the oldest went");
        assert!(held.take(&format!("pay_{MAX_HELD}")).is_ok());
    }
}

#[cfg(test)]
mod unknown_tests {
    use super::*;
    use crate::payment::tests::collected;

    #[test]
    fn an_unknown_outcome_is_never_dropped() {
        let mut held = Held::default();
        let c = collected("pay_unknown");
        held.hold(c);
        let (c, _) = held.take("pay_unknown").unwrap();
        held.end(c, Some(true));
        for i in 0..3 * MAX_HELD {
            held.hold(collected(&format!("pay_{i}")));
        }
        let (_, unknown) = held.take("pay_unknown").unwrap();
        assert!(unknown, "still retryable, and known to be unknown");
        assert!(held.payments.len() < MAX_HELD);
    }
}
