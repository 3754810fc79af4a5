//! Forwarding stored payments to the backend, exactly once per payment: the caller holds the
//! Web Lock; each record is marked `forwarding` (strict transaction) before its request, and
//! moves on only after the backend answered. Transport failures put it back to `pending`
//! with a backoff; nothing is deleted.

use pos_protocol::backend::{OfflineInfo, PaymentBody};

use crate::backend::{Backend, PaymentOutcome};
use crate::backoff;
use crate::error::PosError;
use crate::events::Callbacks;
use crate::js;
use crate::payment::{ErrorInfo, Header, SealedBody, StoredState};
use crate::store::{Entry, Store};
use crate::types::{ForwardReportJs, ForwardingFailureJs, StoredPaymentJs};

/// Tries after which an unreadable 2xx answer ends the record as `failed`.
pub const MAX_UNREADABLE_ANSWERS: u32 = 5;

/// The Web Lock every forwarder (tabs, service worker) takes.
pub const LOCK_NAME: &str = "pos-terminal-forward";

/// Why a run stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The backend is unreachable: the rest stays pending.
    NetworkDown(PosError),
    /// The credentials were refused: the caller may refresh them and run again.
    Unauthorized,
}

#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    pub report: ForwardReportJs,
    pub stop: Option<Stop>,
}

/// What happens to a record after the backend's answer (or its absence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Forwarded {
        payment_intent: String,
    },
    Declined {
        decline_code: String,
    },
    Failed(ErrorInfo),
    Retry {
        error: ErrorInfo,
        network_down: bool,
    },
    RetryAfterAuth,
}

/// The decision table of DESIGN.md: 2xx forwarded, 402 declined, other 4xx failed,
/// 5xx/network/timeout retried with backoff, 401 retried after new credentials.
pub fn next_after(answer: &Result<PaymentOutcome, PosError>) -> Next {
    let info = |e: &PosError| ErrorInfo {
        code: e.code().to_string(),
        message: e.to_string(),
    };
    match answer {
        Ok(PaymentOutcome::Approved(ok)) => Next::Forwarded {
            payment_intent: ok.payment_intent.clone(),
        },
        Ok(PaymentOutcome::Declined { decline_code }) => Next::Declined {
            decline_code: decline_code.clone(),
        },
        Err(PosError::Unauthorized(_)) => Next::RetryAfterAuth,
        // Failed in this browser before any request left (a header the browser refused, no
        // fetch): not the payment's fault, so it stays pending and the run stops.
        Err(e @ (PosError::InvalidArgument(_) | PosError::Internal(_))) => Next::Retry {
            error: info(e),
            network_down: true,
        },
        Err(e) if e.is_retryable_transport() => Next::Retry {
            error: info(e),
            network_down: matches!(
                e,
                PosError::BackendUnreachable(_) | PosError::BackendTimeout(_)
            ),
        },
        Err(e) => Next::Failed(info(e)),
    }
}

pub struct Forwarder<'a> {
    pub store: &'a Store,
    pub backend: &'a Backend,
    pub events: &'a Callbacks,
}

fn body_for(header: &Header, body: &SealedBody) -> Option<PaymentBody> {
    Some(PaymentBody {
        id: header.id.clone(),
        amount: body.amount,
        currency: body.currency.clone(),
        capture_method: body.capture_method,
        card_payload: body.card_payload.clone()?,
        card: body.card.clone(),
        reader_id: body.reader_id.clone(),
        offline: Some(OfflineInfo {
            stored_at: header.stored_at.max(0.0) as u64,
        }),
        metadata: body.metadata.clone(),
    })
}

impl Forwarder<'_> {
    /// One pass over the stored payments. `force` ignores backoff (the "forward now" button).
    /// Must run under the Web Lock `LOCK_NAME`.
    pub async fn run(&self, token: &str, force: bool) -> Result<RunOutcome, PosError> {
        let mut out = RunOutcome::default();
        let entries = self.store.all().await?;
        for entry in entries {
            let state = entry.header.state;
            if state == StoredState::Quarantined {
                continue;
            }
            if let Err(PosError::RecordTampered) = entry.body {
                self.quarantine(entry, &mut out).await?;
                continue;
            }
            if !state.is_outstanding() {
                continue;
            }
            if out.stop.is_some() {
                out.report.remaining += 1;
                continue;
            }
            self.forward_one(entry, token, force, &mut out).await?;
        }
        Ok(out)
    }

    async fn forward_one(
        &self,
        entry: Entry,
        token: &str,
        force: bool,
        out: &mut RunOutcome,
    ) -> Result<(), PosError> {
        let header = entry.header.clone();
        let mut body = match entry.body {
            Ok(b) => b,
            Err(PosError::UnknownSchemaVersion(_)) => {
                // Written by a newer SDK: leave it for that version to forward.
                out.report.remaining += 1;
                return Ok(());
            }
            Err(err) => {
                let entry = Entry {
                    header,
                    body: Err(err),
                };
                return self.quarantine(entry, out).await;
            }
        };
        let now = js::now_ms();
        if !force && header.state == StoredState::Pending && header.next_attempt_at > now {
            out.report.remaining += 1;
            return Ok(());
        }
        // Mark in flight first: a crash from here on leaves `forwarding`, retried later with
        // the same key, never lost and never charged twice.
        body.attempts = body.attempts.saturating_add(1);
        let Some(in_flight) = self
            .store
            .transition(&header, StoredState::Forwarding, Some(&body), now)
            .await?
        else {
            return Ok(());
        };
        let Some(request) = body_for(&in_flight, &body) else {
            let missing = Next::Failed(ErrorInfo {
                code: "internal_error".into(),
                message: "the stored payment has no card payload".into(),
            });
            return self.finish(&in_flight, body, missing, out).await;
        };
        let answer = self.backend.create_payment(token, &request).await;
        self.finish(&in_flight, body, next_after(&answer), out)
            .await
    }

    /// Moves a record that failed authentication to `quarantined` and reports it; it is kept
    /// (sealed bytes untouched) for inspection and never sent.
    async fn quarantine(&self, entry: Entry, out: &mut RunOutcome) -> Result<(), PosError> {
        let err = match &entry.body {
            Err(e) => e.clone(),
            Ok(_) => return Ok(()),
        };
        let Some(header) = self
            .store
            .transition(&entry.header, StoredState::Quarantined, None, 0.0)
            .await?
        else {
            return Ok(());
        };
        let quarantined = Entry {
            header,
            body: Err(err.clone()),
        };
        self.events.forwarding_failure(&ForwardingFailureJs {
            payment: (&quarantined).into(),
            code: err.code().into(),
            message: err.to_string(),
            decline_code: None,
        });
        out.report.failed += 1;
        Ok(())
    }

    async fn finish(
        &self,
        header: &Header,
        mut body: SealedBody,
        next: Next,
        out: &mut RunOutcome,
    ) -> Result<(), PosError> {
        let now = js::now_ms();
        let (state, next_attempt_at, event) = match next {
            Next::Forwarded { payment_intent } => {
                body.payment_intent_id = Some(payment_intent);
                body.card_payload = None;
                body.last_error = None;
                out.report.forwarded += 1;
                (StoredState::Forwarded, 0.0, None)
            }
            Next::Declined { decline_code } => {
                body.card_payload = None;
                body.last_error = Some(ErrorInfo {
                    code: "card_declined".into(),
                    message: format!("The card was declined ({decline_code})."),
                });
                body.decline_code = Some(decline_code.clone());
                out.report.declined += 1;
                (StoredState::Declined, 0.0, Some(Some(decline_code)))
            }
            Next::Failed(error) => {
                // The payload stays (sealed): support can still recover the payment.
                body.last_error = Some(error);
                out.report.failed += 1;
                (StoredState::Failed, 0.0, Some(None))
            }
            Next::Retry { error, .. }
                if error.code == "backend_invalid_response"
                    && body.attempts >= MAX_UNREADABLE_ANSWERS =>
            {
                // The backend keeps replaying an answer this SDK can't read: stop retrying,
                // keep the payload (sealed) so support can recover the payment.
                body.last_error = Some(error);
                out.report.failed += 1;
                (StoredState::Failed, 0.0, Some(None))
            }
            Next::Retry {
                error,
                network_down,
            } => {
                let delay = backoff::delay_ms(body.attempts, js::random_unit());
                if network_down {
                    out.stop = Some(Stop::NetworkDown(PosError::BackendUnreachable(
                        error.message.clone(),
                    )));
                }
                body.last_error = Some(error);
                out.report.remaining += 1;
                (StoredState::Pending, now + delay, None)
            }
            Next::RetryAfterAuth => {
                // Not this payment's fault: give the attempt back.
                body.attempts = body.attempts.saturating_sub(1);
                out.stop = Some(Stop::Unauthorized);
                out.report.remaining += 1;
                (StoredState::Pending, now, None)
            }
        };
        let Some(header) = self
            .store
            .transition(header, state, Some(&body), next_attempt_at)
            .await?
        else {
            // Moved by someone else meanwhile (only possible without Web Locks): theirs stands.
            return Ok(());
        };
        let entry = Entry {
            header,
            body: Ok(body.clone()),
        };
        let payment: StoredPaymentJs = (&entry).into();
        match (state, event) {
            (StoredState::Forwarded, _) => self.events.payment_forwarded(&payment),
            (_, Some(decline_code)) => {
                let error = body.last_error.clone().unwrap_or(ErrorInfo {
                    code: "internal_error".into(),
                    message: String::new(),
                });
                self.events.forwarding_failure(&ForwardingFailureJs {
                    payment,
                    code: error.code,
                    message: error.message,
                    decline_code,
                });
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_protocol::backend::{PaymentOk, PaymentStatus};

    #[test]
    fn decision_table() {
        let ok = Ok(PaymentOutcome::Approved(PaymentOk {
            payment_intent: "pi_1".into(),
            status: PaymentStatus::Succeeded,
        }));
        assert_eq!(
            next_after(&ok),
            Next::Forwarded {
                payment_intent: "pi_1".into()
            }
        );
        let declined = Ok(PaymentOutcome::Declined {
            decline_code: "generic_decline".into(),
        });
        assert!(matches!(next_after(&declined), Next::Declined { .. }));
        let down = Err(PosError::BackendUnreachable("reset".into()));
        assert!(matches!(
            next_after(&down),
            Next::Retry {
                network_down: true,
                ..
            }
        ));
        let busy = Err(PosError::Backend {
            status: 503,
            message: String::new(),
        });
        assert!(matches!(
            next_after(&busy),
            Next::Retry {
                network_down: false,
                ..
            }
        ));
        assert_eq!(
            next_after(&Err(PosError::Unauthorized(String::new()))),
            Next::RetryAfterAuth
        );
        let conflict = next_after(&Err(PosError::IdempotencyConflict));
        assert!(matches!(conflict, Next::Failed(ref e) if e.code == "idempotency_conflict"));
        assert!(matches!(
            next_after(&Err(PosError::Internal("no fetch".into()))),
            Next::Retry {
                network_down: true,
                ..
            }
        ));
        let bad = next_after(&Err(PosError::Backend {
            status: 400,
            message: String::new(),
        }));
        assert!(matches!(bad, Next::Failed(_)));
    }
}
