//! What forwarding does with each stored payment, as pure functions: the decision table of
//! DESIGN.md (2xx forwarded, 402 declined, other 4xx failed, 5xx/network/timeout retried with
//! backoff, 401 retried after new credentials) and how a record settles after it.

use serde::Serialize;

use crate::backend::PaymentOutcome;
use crate::backoff;
use crate::error::{BackendError, PosError};
use crate::events::Events;
use crate::payment::{ErrorInfo, SealedBody, StoredPayment, StoredState};
use pos_protocol::backend::PaymentStatus;

/// Unreadable answers in a row after which a record ends as `failed`.
pub const MAX_UNREADABLE_ANSWERS: u32 = 5;

/// How long a `forwarding` record belongs to the context that marked it (its lease, kept in
/// `next_attempt_at`), where no Web Lock says who forwards. A try that outlives it may be
/// sent twice, with the same key: the backend replays its first answer.
pub const FORWARDING_LEASE_MS: f64 = 60_000.0;

/// How long an intent may belong to a live online attempt: beyond the longest request
/// (120 s) twice over (a token refresh retries once), with room to spare.
pub const INTENT_GRACE_MS: f64 = 5.0 * 60_000.0;

/// True when an intent last touched at `updated_at` was left by an attempt that ended
/// without settling it (an unknown outcome, a tab killed mid-request).
pub fn intent_abandoned(updated_at: f64, now: f64) -> bool {
    now - updated_at >= INTENT_GRACE_MS
}

/// What one forwarding run did.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ForwardReport {
    pub forwarded: u32,
    pub declined: u32,
    pub failed: u32,
    pub remaining: u32,
}

/// Requests in flight at once while draining, by default.
pub const DEFAULT_CONCURRENCY: usize = 3;

impl ForwardReport {
    /// Adds every count of `other` (two parts of one run).
    pub fn merge(&mut self, other: ForwardReport) {
        self.forwarded += other.forwarded;
        self.declined += other.declined;
        self.failed += other.failed;
        self.remaining += other.remaining;
    }

    /// Adds a later run's counts; `remaining` is the later run's.
    pub fn add(&mut self, other: ForwardReport) {
        self.forwarded += other.forwarded;
        self.declined += other.declined;
        self.failed += other.failed;
        self.remaining = other.remaining;
    }
}

/// A stored payment that ended without being accepted (declined, failed, quarantined).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardingFailure {
    pub payment: StoredPayment,
    pub code: String,
    pub message: String,
    pub decline_code: Option<String>,
}

/// A payment's final outcome as the page's events carry it.
#[derive(Debug, Clone)]
pub enum Outcome {
    Forwarded(StoredPayment),
    Failure(ForwardingFailure),
}

impl Outcome {
    /// The outcome a stored record in a finished state stands for (`None` while it is
    /// outstanding): what the run that settled it reported, rebuilt from the record, for a
    /// terminal that did not run it (another tab's run, a service worker's).
    pub fn of_record(payment: StoredPayment, body: &SealedBody) -> Option<Outcome> {
        let error = |code: &str, message: &str| {
            body.last_error.clone().unwrap_or(ErrorInfo {
                code: code.into(),
                message: message.into(),
            })
        };
        let failure = |e: ErrorInfo, decline_code: Option<String>| {
            Some(Outcome::Failure(ForwardingFailure {
                payment: payment.clone(),
                code: e.code,
                message: e.message,
                decline_code,
            }))
        };
        match payment.state {
            StoredState::Forwarded => Some(Outcome::Forwarded(payment)),
            StoredState::Declined => failure(
                ErrorInfo {
                    code: "card_declined".into(),
                    ..error("card_declined", "the card was declined")
                },
                body.decline_code.clone(),
            ),
            StoredState::Failed => failure(error("internal_error", ""), None),
            StoredState::Quarantined => failure(
                ErrorInfo {
                    code: "record_tampered".into(),
                    message: "a stored record failed authentication and was quarantined".into(),
                },
                None,
            ),
            StoredState::Pending | StoredState::Forwarding | StoredState::Intent => None,
        }
    }

    /// Tells `events` of it.
    pub fn emit(&self, events: &dyn Events) {
        match self {
            Outcome::Forwarded(p) => events.payment_forwarded(p),
            Outcome::Failure(f) => events.forwarding_failure(f),
        }
    }
}

/// Why a run stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The backend is unreachable: the rest stays pending.
    NetworkDown(String),
    /// The credentials were refused: the caller may refresh them and run again.
    Unauthorized,
}

/// What happens to a record after the backend's answer (or its absence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Forwarded {
        payment_intent: String,
        status: PaymentStatus,
    },
    Declined {
        decline_code: String,
    },
    Failed(ErrorInfo),
    Retry {
        error: ErrorInfo,
        network_down: bool,
        /// The backend's `Retry-After`: no try before it.
        retry_after_ms: Option<u64>,
    },
    RetryAfterAuth,
}

pub fn next_after(answer: &Result<PaymentOutcome, BackendError>) -> Next {
    match answer {
        Ok(PaymentOutcome::Approved(ok)) => Next::Forwarded {
            payment_intent: ok.payment_intent.clone(),
            status: ok.status,
        },
        Ok(PaymentOutcome::Declined { decline_code }) => Next::Declined {
            decline_code: decline_code.clone(),
        },
        Err(BackendError::Unauthorized(_)) => Next::RetryAfterAuth,
        Err(e) if e.is_retryable() => Next::Retry {
            error: ErrorInfo::of(&PosError::from(e.clone())),
            // No answer at all (or nothing left this browser): stop the run here.
            network_down: e.is_no_answer(),
            retry_after_ms: e.retry_after_ms(),
        },
        Err(e) => Next::Failed(ErrorInfo::of(&PosError::from(e.clone()))),
    }
}

/// What the caller is told about a settled record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notify {
    Nothing,
    Forwarded,
    Failure { decline_code: Option<String> },
}

/// How a record settles after `next`: its new state, when to try again, what to report.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub state: StoredState,
    pub next_attempt_at: f64,
    pub notify: Notify,
    pub stop: Option<Stop>,
}

/// Applies `next` to the record's sealed body (outcome, last error, shredded payload) and
/// counts it in `report`. `jitter` is a random number in [0, 1).
pub fn settle(
    next: Next,
    body: &mut SealedBody,
    now: f64,
    jitter: f64,
    report: &mut ForwardReport,
) -> Settled {
    let done = |state, notify| Settled {
        state,
        next_attempt_at: 0.0,
        notify,
        stop: None,
    };
    let unreadable =
        matches!(&next, Next::Retry { error, .. } if error.code == "backend_invalid_response");
    body.unreadable = if unreadable {
        body.unreadable.saturating_add(1)
    } else {
        0
    };
    match next {
        Next::Forwarded {
            payment_intent,
            status,
        } => {
            body.payment_intent_id = Some(payment_intent);
            body.payment_status = Some(status);
            body.card_payload = None;
            body.last_error = None;
            report.forwarded += 1;
            done(StoredState::Forwarded, Notify::Forwarded)
        }
        Next::Declined { decline_code } => {
            body.card_payload = None;
            body.last_error = Some(ErrorInfo {
                code: "card_declined".into(),
                message: format!("The card was declined ({decline_code})."),
            });
            body.decline_code = Some(decline_code.clone());
            report.declined += 1;
            done(
                StoredState::Declined,
                Notify::Failure {
                    decline_code: Some(decline_code),
                },
            )
        }
        Next::Retry { error, .. } if unreadable && body.unreadable >= MAX_UNREADABLE_ANSWERS => {
            // The backend keeps replaying an answer this SDK can't read: stop retrying, keep
            // the payload (sealed) so support can recover the payment.
            body.last_error = Some(error);
            report.failed += 1;
            done(StoredState::Failed, Notify::Failure { decline_code: None })
        }
        Next::Failed(error) => {
            // The payload stays (sealed): support can still recover the payment.
            body.last_error = Some(error);
            report.failed += 1;
            done(StoredState::Failed, Notify::Failure { decline_code: None })
        }
        Next::Retry {
            error,
            network_down,
            retry_after_ms,
        } => {
            let stop = network_down.then(|| Stop::NetworkDown(error.message.clone()));
            body.last_error = Some(error);
            report.remaining += 1;
            let backoff = backoff::delay_ms(body.attempts, jitter);
            Settled {
                state: StoredState::Pending,
                next_attempt_at: now + backoff.max(retry_after_ms.unwrap_or(0) as f64),
                notify: Notify::Nothing,
                stop,
            }
        }
        Next::RetryAfterAuth => {
            // Not this payment's fault: give the attempt back.
            body.attempts = body.attempts.saturating_sub(1);
            report.remaining += 1;
            Settled {
                state: StoredState::Pending,
                next_attempt_at: now,
                notify: Notify::Nothing,
                stop: Some(Stop::Unauthorized),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::tests::sealed_body;
    use pos_protocol::backend::PaymentOk;

    #[test]
    fn decision_table() {
        let ok = Ok(PaymentOutcome::Approved(PaymentOk {
            payment_intent: "pi_1".into(),
            status: PaymentStatus::Succeeded,
        }));
        assert_eq!(
            next_after(&ok),
            Next::Forwarded {
                payment_intent: "pi_1".into(),
                status: PaymentStatus::Succeeded,
            }
        );
        let declined = Ok(PaymentOutcome::Declined {
            decline_code: "generic_decline".into(),
        });
        assert!(matches!(next_after(&declined), Next::Declined { .. }));
        let down = Err(BackendError::Unreachable("reset".into()));
        assert!(matches!(
            next_after(&down),
            Next::Retry {
                network_down: true,
                ..
            }
        ));
        let busy = Err(BackendError::status(503, String::new()));
        assert!(matches!(
            next_after(&busy),
            Next::Retry {
                network_down: false,
                ..
            }
        ));
        assert_eq!(
            next_after(&Err(BackendError::Unauthorized(String::new()))),
            Next::RetryAfterAuth
        );
        let conflict = next_after(&Err(BackendError::IdempotencyConflict));
        assert!(matches!(conflict, Next::Failed(ref e) if e.code == "idempotency_conflict"));
        // Nothing left this browser: the payment stays pending and the run stops.
        assert!(matches!(
            next_after(&Err(BackendError::NotSent("no fetch".into()))),
            Next::Retry {
                network_down: true,
                ..
            }
        ));
        let bad = next_after(&Err(BackendError::status(400, String::new())));
        assert!(matches!(bad, Next::Failed(_)));
    }

    #[test]
    fn settling_shreds_the_payload_only_on_a_final_answer() {
        let mut report = ForwardReport::default();
        let mut body = sealed_body();
        let s = settle(
            Next::Forwarded {
                payment_intent: "pi_9".into(),
                status: PaymentStatus::RequiresCapture,
            },
            &mut body,
            1_000.0,
            0.5,
            &mut report,
        );
        assert_eq!(s.state, StoredState::Forwarded);
        assert_eq!(s.notify, Notify::Forwarded);
        assert_eq!(body.card_payload, None);
        assert_eq!(body.payment_intent_id.as_deref(), Some("pi_9"));
        assert_eq!(body.payment_status, Some(PaymentStatus::RequiresCapture));

        let mut body = sealed_body();
        body.attempts = 1;
        let retry = Next::Retry {
            error: ErrorInfo {
                code: "backend_unreachable".into(),
                message: "reset".into(),
            },
            network_down: true,
            retry_after_ms: None,
        };
        let s = settle(retry, &mut body, 1_000.0, 0.0, &mut report);
        assert_eq!(s.state, StoredState::Pending);
        assert!(s.next_attempt_at > 1_000.0, "backs off");
        assert!(matches!(s.stop, Some(Stop::NetworkDown(_))));
        assert!(body.card_payload.is_some(), "kept for the next try");

        let mut body = sealed_body();
        let s = settle(
            Next::Declined {
                decline_code: "insufficient_funds".into(),
            },
            &mut body,
            0.0,
            0.0,
            &mut report,
        );
        assert_eq!(s.state, StoredState::Declined);
        assert_eq!(body.card_payload, None);
        assert_eq!(body.decline_code.as_deref(), Some("insufficient_funds"));

        let mut body = sealed_body();
        body.attempts = 3;
        let s = settle(Next::RetryAfterAuth, &mut body, 5.0, 0.0, &mut report);
        assert_eq!(s.stop, Some(Stop::Unauthorized));
        assert_eq!(body.attempts, 2, "a refused token does not count as a try");
        assert_eq!(
            report,
            ForwardReport {
                forwarded: 1,
                declined: 1,
                failed: 0,
                remaining: 2
            }
        );
    }

    #[test]
    fn an_unreadable_answer_fails_only_after_repeated_tries() {
        let unreadable = || Next::Retry {
            error: ErrorInfo {
                code: "backend_invalid_response".into(),
                message: "garbage".into(),
            },
            network_down: false,
            retry_after_ms: None,
        };
        let timeout = || Next::Retry {
            error: ErrorInfo {
                code: "backend_timeout".into(),
                message: "slow".into(),
            },
            network_down: true,
            retry_after_ms: None,
        };
        let mut report = ForwardReport::default();
        let mut body = sealed_body();
        // Many tries that timed out, then one captive portal page: not final.
        body.attempts = 6;
        assert_eq!(
            settle(unreadable(), &mut body, 0.0, 0.0, &mut report).state,
            StoredState::Pending
        );
        for _ in 1..MAX_UNREADABLE_ANSWERS - 1 {
            settle(unreadable(), &mut body, 0.0, 0.0, &mut report);
        }
        // A readable failure in between starts the count again.
        settle(timeout(), &mut body, 0.0, 0.0, &mut report);
        assert_eq!(body.unreadable, 0);
        for _ in 1..MAX_UNREADABLE_ANSWERS {
            settle(unreadable(), &mut body, 0.0, 0.0, &mut report);
        }
        assert_eq!(
            settle(unreadable(), &mut body, 0.0, 0.0, &mut report).state,
            StoredState::Failed,
            "{MAX_UNREADABLE_ANSWERS} in a row"
        );
        assert!(body.card_payload.is_some(), "kept for support");
        assert!(intent_abandoned(0.0, INTENT_GRACE_MS));
        assert!(!intent_abandoned(1.0, INTENT_GRACE_MS));
    }

    #[test]
    fn retry_after_is_honoured() {
        let busy = Err(BackendError::status(503, String::new()).with_retry_after(Some(30_000)));
        let next = next_after(&busy);
        let mut body = sealed_body();
        body.attempts = 1;
        let s = settle(next, &mut body, 1_000.0, 0.0, &mut ForwardReport::default());
        assert_eq!(s.state, StoredState::Pending);
        assert!(s.next_attempt_at >= 31_000.0, "{}", s.next_attempt_at);
        // A 400 carries no Retry-After even if the header was there.
        let bad = BackendError::status(400, String::new()).with_retry_after(Some(5));
        assert_eq!(bad.retry_after_ms(), None);
    }
}
