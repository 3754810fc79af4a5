//! When a payment goes online and when it is stored offline, as pure functions: the route
//! before any request, and what to do after an online attempt failed. This is where the
//! second half of invariant 2 lives: a fallback reuses the payment id, and a payment that
//! may have reached the backend is never reported as "not charged".

use crate::error::{BackendError, PosError};
use crate::payment::OfflineBehavior;

/// How to start processing a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Store it without trying the backend.
    Offline,
    /// Try the backend.
    Online,
    /// The backend is known to be down: probe it briefly, store if it still is.
    ProbeFirst,
}

pub fn route(behavior: OfflineBehavior, offline_enabled: bool, known_offline: bool) -> Route {
    match behavior {
        OfflineBehavior::ForceOffline => Route::Offline,
        OfflineBehavior::PreferOnline if offline_enabled && known_offline => Route::ProbeFirst,
        _ => Route::Online,
    }
}

/// What to do after the online attempt failed with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Store offline under the same id. If that fails too and the attempt may have reached
    /// the backend, the outcome is unknown.
    StoreOffline { may_have_arrived: bool },
    /// Report this error.
    Fail(PosError),
}

/// Offline storage may be used for this payment at all.
pub fn offline_allowed(behavior: OfflineBehavior, offline_enabled: bool) -> bool {
    offline_enabled && behavior != OfflineBehavior::RequireOnline
}

/// True when a failure of the online attempt may be followed by another try with the same
/// key: the transport failed or the credentials could not be had.
fn fallback_applies(e: &PosError) -> bool {
    match e {
        PosError::Backend(b) => b.is_retryable(),
        PosError::ConnectionToken(_) => true,
        _ => false,
    }
}

/// True when the request may have reached the backend. A fetch `TypeError` is no proof of
/// the opposite: a connection reset after the backend committed, or an answer without CORS
/// headers, look the same from here. Only what never left this browser is certain.
fn may_have_arrived(e: &PosError) -> bool {
    match e {
        PosError::Backend(b) => b.may_have_arrived(),
        _ => false,
    }
}

pub fn after_online_failure(e: PosError, offline_allowed: bool) -> AfterFailure {
    if !fallback_applies(&e) {
        return AfterFailure::Fail(e);
    }
    let may_have_arrived = may_have_arrived(&e);
    if offline_allowed {
        return AfterFailure::StoreOffline { may_have_arrived };
    }
    AfterFailure::Fail(if may_have_arrived {
        // Never "not charged": that invites a second card.
        PosError::OutcomeUnknown(format!("{}: {e}", e.code()))
    } else {
        BackendError::Unreachable(e.to_string()).into()
    })
}

/// The error to report when storing offline failed after an online attempt failed.
pub fn after_store_failure(
    stored: PosError,
    online: &PosError,
    may_have_arrived: bool,
) -> PosError {
    if may_have_arrived {
        PosError::OutcomeUnknown(format!(
            "{}; storing it offline failed: {}",
            online.code(),
            stored.code()
        ))
    } else {
        stored
    }
}

/// The attempt got no answer at all: the backend looks down from here.
pub fn means_offline(e: &PosError) -> bool {
    matches!(
        e,
        PosError::Backend(BackendError::Unreachable(_) | BackendError::Timeout(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use OfflineBehavior::*;

    #[test]
    fn routes() {
        assert_eq!(route(ForceOffline, true, false), Route::Offline);
        assert_eq!(route(PreferOnline, true, false), Route::Online);
        assert_eq!(route(PreferOnline, true, true), Route::ProbeFirst);
        assert_eq!(
            route(PreferOnline, false, true),
            Route::Online,
            "offline disabled"
        );
        assert_eq!(route(RequireOnline, true, true), Route::Online);
        assert!(!offline_allowed(RequireOnline, true));
        assert!(!offline_allowed(PreferOnline, false));
        assert!(offline_allowed(PreferOnline, true));
    }

    #[test]
    fn a_timed_out_attempt_is_stored_and_may_have_arrived() {
        let e = PosError::from(BackendError::Timeout(8_000));
        assert_eq!(
            after_online_failure(e.clone(), true),
            AfterFailure::StoreOffline {
                may_have_arrived: true
            }
        );
        // Storing then failed: never "not charged", always "unknown" (retry with the same id).
        let stored = PosError::OfflineLimitExceeded("full".into());
        assert_eq!(
            after_store_failure(stored, &e, true).code(),
            "payment_outcome_unknown"
        );
    }

    #[test]
    fn a_network_error_may_have_arrived_only_what_was_not_sent_did_not() {
        // A reset after the backend committed looks like a refused connection.
        let e = PosError::from(BackendError::Unreachable(
            "TypeError: Failed to fetch".into(),
        ));
        assert_eq!(
            after_online_failure(e.clone(), true),
            AfterFailure::StoreOffline {
                may_have_arrived: true
            }
        );
        let stored = PosError::OfflineLimitExceeded("full".into());
        assert_eq!(
            after_store_failure(stored.clone(), &e, true).code(),
            "payment_outcome_unknown"
        );
        assert!(means_offline(&e));
        let not_sent = PosError::from(BackendError::NotSent("offline".into()));
        assert_eq!(
            after_online_failure(not_sent.clone(), true),
            AfterFailure::StoreOffline {
                may_have_arrived: false
            }
        );
        assert_eq!(
            after_store_failure(stored, &not_sent, false).code(),
            "offline_limit_exceeded"
        );
    }

    #[test]
    fn final_answers_are_not_fallen_back_on() {
        for e in [
            PosError::CardDeclined {
                decline_code: "x".into(),
            },
            BackendError::IdempotencyConflict.into(),
            BackendError::status(400, String::new()).into(),
            BackendError::Unauthorized(String::new()).into(),
        ] {
            assert_eq!(after_online_failure(e.clone(), true), AfterFailure::Fail(e));
        }
    }

    #[test]
    fn require_online_reports_every_failure_after_sending_as_unknown() {
        for sent in [
            BackendError::status(503, "busy".into()),
            BackendError::Timeout(1),
            BackendError::Unreachable("reset".into()),
            BackendError::InvalidResponse("<html>".into()),
        ] {
            let AfterFailure::Fail(e) = after_online_failure(sent.into(), false) else {
                panic!("must fail")
            };
            assert_eq!(e.code(), "payment_outcome_unknown");
        }
        for unsent in [
            PosError::from(BackendError::NotSent("offline".into())),
            PosError::ConnectionToken("down".into()),
        ] {
            let AfterFailure::Fail(e) = after_online_failure(unsent, false) else {
                panic!("must fail")
            };
            assert_eq!(e.code(), "backend_unreachable");
        }
        assert!(!means_offline(&PosError::from(BackendError::status(
            503,
            String::new()
        ))));
    }
}
