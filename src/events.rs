//! What the core tells whoever embeds it: a page's callbacks, a service worker's log, or a
//! test's recorder. Every method has a default that ignores the event.

use std::cell::RefCell;
use std::rc::Rc;

use crate::error::PosError;
use crate::forward_policy::ForwardingFailure;
use crate::payment::StoredPayment;
use crate::reader::agent::RecentIds;
use crate::status::{NetworkStatus, OfflineStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    Connecting,
    Connected,
    NotConnected,
}

pos_protocol::wire_names!(ConnectionStatus {
    Connecting => "connecting",
    Connected => "connected",
    NotConnected => "not_connected",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    NotReady,
    Ready,
    WaitingForInput,
    Processing,
}

pos_protocol::wire_names!(PaymentStatus {
    NotReady => "not_ready",
    Ready => "ready",
    WaitingForInput => "waiting_for_input",
    Processing => "processing",
});

pub trait Events {
    fn network_status(&self, _status: NetworkStatus) {}
    fn offline_status(&self, _status: &OfflineStatus) {}
    fn payment_forwarded(&self, _payment: &StoredPayment) {}
    fn forwarding_failure(&self, _failure: &ForwardingFailure) {}
    fn unexpected_reader_disconnect(&self, _error: &PosError) {}
    fn connection_status(&self, _status: ConnectionStatus) {}
    fn payment_status(&self, _status: PaymentStatus) {}
    /// Another context upgraded or deleted the database: this one closed its connection, so
    /// storage calls fail from now on (the page should reload).
    fn database_closed_for_upgrade(&self) {}
}

/// Ignores every event (a service worker forwarding on its own).
pub struct NoEvents;

impl Events for NoEvents {}

/// Passes every event on, except the payment outcomes `pass` refuses: `pass` sees each
/// outcome's payment first (and may act on it).
pub struct OutcomeFilter {
    inner: Rc<dyn Events>,
    pass: Box<dyn Fn(&StoredPayment) -> bool>,
}

impl OutcomeFilter {
    pub fn new(inner: Rc<dyn Events>, pass: impl Fn(&StoredPayment) -> bool + 'static) -> Self {
        Self {
            inner,
            pass: Box::new(pass),
        }
    }
}

/// Passes every event on, except a second final outcome for the same payment. A payment can be
/// held by both agents at once (the reader stored it and the SDK did too, after a reader lost
/// mid-`process`): the backend charges it once (same key) and answers both, and the page
/// hears of it once per terminal, from whichever agent reported first. Outcomes that are not
/// final (a payment still pending, to be retried) always pass.
pub fn once_per_payment(inner: Rc<dyn Events>) -> OutcomeFilter {
    let reported = RefCell::new(RecentIds::default());
    OutcomeFilter::new(inner, move |payment| {
        payment.state.is_outstanding() || reported.borrow_mut().first_time(&payment.id)
    })
}

impl Events for OutcomeFilter {
    fn network_status(&self, status: NetworkStatus) {
        self.inner.network_status(status)
    }
    fn offline_status(&self, status: &OfflineStatus) {
        self.inner.offline_status(status)
    }
    fn payment_forwarded(&self, payment: &StoredPayment) {
        if (self.pass)(payment) {
            self.inner.payment_forwarded(payment)
        }
    }
    fn forwarding_failure(&self, failure: &ForwardingFailure) {
        if (self.pass)(&failure.payment) {
            self.inner.forwarding_failure(failure)
        }
    }
    fn unexpected_reader_disconnect(&self, error: &PosError) {
        self.inner.unexpected_reader_disconnect(error)
    }
    fn connection_status(&self, status: ConnectionStatus) {
        self.inner.connection_status(status)
    }
    fn payment_status(&self, status: PaymentStatus) {
        self.inner.payment_status(status)
    }
    fn database_closed_for_upgrade(&self) {
        self.inner.database_closed_for_upgrade()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use pos_protocol::backend::PaymentStatus as BackendStatus;
    use pos_protocol::reader::ForwardResult;

    use super::*;
    use crate::payment::{Agent, StoredState};
    use crate::reader::agent::{forwarded_by_reader, ForwardedByReader, Known};

    #[derive(Default)]
    struct Heard(RefCell<Vec<(String, StoredState, Agent)>>);

    impl Events for Heard {
        fn payment_forwarded(&self, p: &StoredPayment) {
            self.0
                .borrow_mut()
                .push((p.id.clone(), p.state, p.stored_by));
        }
        fn forwarding_failure(&self, f: &ForwardingFailure) {
            let p = &f.payment;
            self.0
                .borrow_mut()
                .push((p.id.clone(), p.state, p.stored_by));
        }
    }

    fn payment(id: &str, state: StoredState, by: Agent) -> StoredPayment {
        let approved = ForwardResult::Approved {
            payment_intent: "pi_1".into(),
            status: BackendStatus::Succeeded,
        };
        let ForwardedByReader::Forwarded(mut p) =
            forwarded_by_reader(id, 100, "usd", 1, &approved, Known::default())
        else {
            panic!("an approved report is a forwarded payment")
        };
        p.state = state;
        p.stored_by = by;
        p
    }

    #[test]
    fn a_payment_held_by_both_agents_is_reported_once() {
        let heard = Rc::new(Heard::default());
        let events = once_per_payment(heard.clone());
        events.payment_forwarded(&payment("pay_1", StoredState::Forwarded, Agent::Reader));
        events.payment_forwarded(&payment("pay_1", StoredState::Forwarded, Agent::Sdk));
        events.payment_forwarded(&payment("pay_2", StoredState::Forwarded, Agent::Sdk));
        let failure = ForwardingFailure {
            payment: payment("pay_3", StoredState::Pending, Agent::Sdk),
            code: "backend_unreachable".into(),
            message: String::new(),
            decline_code: None,
        };
        // A failure that leaves the payment pending is not an outcome: both pass, and so does
        // the final answer after them.
        events.forwarding_failure(&failure);
        events.forwarding_failure(&failure);
        events.payment_forwarded(&payment("pay_3", StoredState::Forwarded, Agent::Sdk));
        events.forwarding_failure(&ForwardingFailure {
            payment: payment("pay_3", StoredState::Declined, Agent::Reader),
            code: "card_declined".into(),
            message: String::new(),
            decline_code: Some("generic_decline".into()),
        });
        let heard: Vec<_> = heard
            .0
            .borrow()
            .iter()
            .map(|(id, s, a)| (id.clone(), *s, *a))
            .collect();
        assert_eq!(
            heard,
            vec![
                ("pay_1".to_string(), StoredState::Forwarded, Agent::Reader),
                ("pay_2".to_string(), StoredState::Forwarded, Agent::Sdk),
                ("pay_3".to_string(), StoredState::Pending, Agent::Sdk),
                ("pay_3".to_string(), StoredState::Pending, Agent::Sdk),
                ("pay_3".to_string(), StoredState::Forwarded, Agent::Sdk),
            ]
        );
    }
}
