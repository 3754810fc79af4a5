//! The connected reader as the second storing agent: what its `hello_ack` said it can do
//! (`process`, `store`) and where it is (its country, for the offline rules); its store as
//! it last reported it (`store_status`, into the offline status); the payments it forwarded
//! on its own (`forwarded`, reported once through `onPaymentForwarded` /
//! `onForwardingFailure` with `storedBy: "reader"`, then acknowledged); and `process`, which
//! sends a payment through the reader's own link to the backend.
//!
//! The conversions are pure (tested natively); the live agent is wasm only.

use pos_protocol::reader::{ForwardResult, LinkStatus};
use pos_protocol::SortedMap;

use crate::backend::valid_payment_intent;
use crate::error::clip;
use crate::forward_policy::ForwardingFailure;
use crate::payment::{Agent, CardView, ErrorInfo, StoredPayment, StoredState};
use crate::status::{NetworkStatus, ReaderOfflineStatus};

/// At most this many payment ids are remembered as reported (a long session's memory stays
/// bounded; a repeat beyond it is reported again, which is harmless).
pub const MAX_REMEMBERED: usize = 10_000;

/// The reader's `store_status` as the offline status shows it.
pub fn reader_status(
    link: LinkStatus,
    pending_count: u32,
    pending_amounts: &SortedMap<u64>,
) -> ReaderOfflineStatus {
    ReaderOfflineStatus {
        network_status: match link {
            LinkStatus::Online => NetworkStatus::Online,
            LinkStatus::Offline => NetworkStatus::Offline,
            LinkStatus::Unknown => NetworkStatus::Unknown,
        },
        pending_count,
        pending_amounts: pending_amounts.clone(),
    }
}

/// A `forwarded` report of the reader as the page's events see it.
pub use crate::forward_policy::Outcome as ForwardedByReader;

/// What is known of a payment the reader forwarded, besides its report: the card summary,
/// metadata, amount and currency, when this terminal sent it to the reader (the events then
/// carry what was sent, not what the reader says).
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub card: Option<CardView>,
    pub metadata: SortedMap<String>,
    /// The amount and currency this terminal sent in its `process`.
    pub sent: Option<(u64, String)>,
    /// The reader it was sent to: another reader's report about it is not believed.
    pub reader_id: Option<String>,
}

impl Known {
    /// True when the report's amount or currency is not what this terminal sent.
    pub fn differs(&self, amount: u64, currency: &str) -> bool {
        self.sent
            .as_ref()
            .is_some_and(|(a, c)| *a != amount || c != currency)
    }
}

/// Turns a `forwarded` report into the payment (and failure) the events carry.
pub fn forwarded_by_reader(
    payment_id: &str,
    amount: u64,
    currency: &str,
    stored_at: u64,
    result: &ForwardResult,
    known: Known,
) -> ForwardedByReader {
    let (amount, currency) = known.sent.unwrap_or_else(|| (amount, currency.to_string()));
    let mut payment = StoredPayment {
        id: payment_id.to_string(),
        state: StoredState::Forwarded,
        amount,
        currency,
        stored_at: stored_at as f64,
        // The SDK made no attempt: the reader forwarded it.
        attempts: 0,
        payment_intent_id: None,
        last_error: None,
        decline_code: None,
        card: known.card.unwrap_or_else(CardView::unknown),
        metadata: known.metadata,
        payment_status: None,
        stored_by: Agent::Reader,
    };
    match result {
        ForwardResult::Approved {
            payment_intent,
            status,
        } => {
            // An id that cannot be one is not passed on (it is shown, stored and sent back).
            payment.payment_intent_id =
                valid_payment_intent(payment_intent).then(|| payment_intent.clone());
            payment.payment_status = Some(*status);
            ForwardedByReader::Forwarded(payment)
        }
        ForwardResult::Declined { decline_code } => {
            let decline_code = &crate::backend::decline_code(Some(decline_code));
            payment.state = StoredState::Declined;
            payment.decline_code = Some(decline_code.clone());
            let message = format!("the card was declined ({decline_code})");
            payment.last_error = Some(ErrorInfo {
                code: "card_declined".into(),
                message: message.clone(),
            });
            ForwardedByReader::Failure(ForwardingFailure {
                payment,
                code: "card_declined".into(),
                message,
                decline_code: Some(decline_code.clone()),
            })
        }
        ForwardResult::Rejected { code, message } => {
            let (code, message) = (clip(code).into_owned(), clip(message).into_owned());
            payment.state = StoredState::Failed;
            payment.last_error = Some(ErrorInfo {
                code: code.clone(),
                message: message.clone(),
            });
            ForwardedByReader::Failure(ForwardingFailure {
                payment,
                code,
                message,
                decline_code: None,
            })
        }
    }
}

/// A bounded set of payment ids, oldest forgotten first (a long session's memory stays
/// bounded at `MAX_REMEMBERED`). Used for the ids already reported (a reader repeats a report
/// until it hears the ack, and the page hears of each payment once per terminal) and for the
/// ids the reader stored and has not reported forwarded yet.
#[derive(Debug, Default)]
pub struct RecentIds {
    /// A set: the values are `()`.
    ids: SortedMap<()>,
    order: std::collections::VecDeque<String>,
}

impl RecentIds {
    /// Adds `id`; true the first time it is seen.
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.ids.contains_key(id) {
            return false;
        }
        if self.order.len() >= MAX_REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        self.ids.insert(id.to_string(), ());
        self.order.push_back(id.to_string());
        true
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains_key(id)
    }

    pub fn remove(&mut self, id: &str) {
        if self.ids.remove(id).is_some() {
            self.order.retain(|o| o != id);
        }
    }
}

#[cfg(target_arch = "wasm32")]
pub use live::ReaderAgent;

#[cfg(target_arch = "wasm32")]
mod live;

#[cfg(test)]
mod tests {
    use super::*;
    use pos_protocol::backend::PaymentStatus;

    #[test]
    fn a_store_status_becomes_the_readers_part_of_the_offline_status() {
        let amounts = SortedMap::from([("usd".to_string(), 1_250)]);
        let view = reader_status(LinkStatus::Offline, 2, &amounts);
        assert_eq!(view.network_status, NetworkStatus::Offline);
        assert_eq!(view.pending_count, 2);
        assert_eq!(view.pending_amounts.get("usd"), Some(&1_250));
        assert_eq!(
            reader_status(LinkStatus::Online, 0, &SortedMap::new()).network_status,
            NetworkStatus::Online
        );
    }

    #[test]
    fn forwarded_reports_are_stored_by_the_reader() {
        let approved = ForwardResult::Approved {
            payment_intent: "pi_9".into(),
            status: PaymentStatus::Succeeded,
        };
        let ForwardedByReader::Forwarded(p) =
            forwarded_by_reader("pay_1", 500, "usd", 7, &approved, Known::default())
        else {
            panic!("approved is forwarded")
        };
        assert_eq!(p.stored_by, Agent::Reader);
        assert_eq!(p.state, StoredState::Forwarded);
        assert_eq!(p.payment_intent_id.as_deref(), Some("pi_9"));
        assert_eq!(p.stored_at, 7.0);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["storedBy"], "reader");

        let declined = ForwardResult::Declined {
            decline_code: "insufficient_funds".into(),
        };
        let ForwardedByReader::Failure(f) =
            forwarded_by_reader("pay_2", 500, "usd", 7, &declined, Known::default())
        else {
            panic!("declined is a failure")
        };
        assert_eq!(f.code, "card_declined");
        assert_eq!(f.decline_code.as_deref(), Some("insufficient_funds"));
        assert_eq!(f.payment.state, StoredState::Declined);
        assert_eq!(f.payment.stored_by, Agent::Reader);

        let rejected = ForwardResult::Rejected {
            code: "card_payload_mismatch".into(),
            message: "x".into(),
        };
        let card = CardView {
            brand: "visa".into(),
            last4: "4242".into(),
            exp_month: 12,
            exp_year: 2031,
        };
        let known = Known {
            card: Some(card.clone()),
            metadata: SortedMap::new(),
            sent: None,
            reader_id: None,
        };
        let ForwardedByReader::Failure(f) =
            forwarded_by_reader("pay_3", 500, "usd", 7, &rejected, known)
        else {
            panic!("rejected is a failure")
        };
        assert_eq!(f.code, "card_payload_mismatch");
        assert_eq!(f.payment.state, StoredState::Failed);
        assert_eq!(f.payment.card, card, "the card this terminal sent");
    }

    #[test]
    fn a_report_carries_what_this_terminal_sent_not_what_the_reader_says() {
        let approved = ForwardResult::Approved {
            payment_intent: "pi_9".into(),
            status: PaymentStatus::Succeeded,
        };
        let known = Known {
            sent: Some((777, "usd".into())),
            ..Known::default()
        };
        assert!(known.differs(1, "jpy"));
        assert!(known.differs(777, "jpy"));
        assert!(!known.differs(777, "usd"));
        assert!(
            !Known::default().differs(1, "jpy"),
            "nothing sent: nothing to compare"
        );
        let ForwardedByReader::Forwarded(p) =
            forwarded_by_reader("pay_4", 1, "jpy", 7, &approved, known)
        else {
            panic!("approved is forwarded")
        };
        assert_eq!((p.amount, p.currency.as_str()), (777, "usd"));
    }

    #[test]
    fn each_payment_is_reported_once() {
        let mut reported = RecentIds::default();
        assert!(reported.first_time("pay_1"));
        assert!(!reported.first_time("pay_1"));
        assert!(reported.first_time("pay_2"));
    }

    #[test]
    fn recent_ids_are_bounded_and_removable() {
        let mut ids = RecentIds::default();
        for i in 0..MAX_REMEMBERED {
            assert!(ids.first_time(&format!("pay_{i}")));
        }
        assert!(ids.contains("pay_0"));
        assert!(ids.first_time("pay_new"));
        assert!(!ids.contains("pay_0"), "the oldest is forgotten first");
        assert!(ids.contains("pay_1"));
        ids.remove("pay_1");
        assert!(!ids.contains("pay_1"));
        assert!(ids.first_time("pay_1"), "a removed id is new again");
        assert_eq!(ids.order.len(), MAX_REMEMBERED);
        assert_eq!(ids.ids.len(), MAX_REMEMBERED);
    }
}
