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

pub fn after_online_failure(e: PosError, offline_allowed: bool) -> AfterFailure {
    if !fallback_applies(&e) {
        return AfterFailure::Fail(e);
    }
    if offline_allowed {
        let may_have_arrived = !matches!(
            e,
            PosError::Backend(BackendError::Unreachable(_) | BackendError::NotSent(_))
                | PosError::ConnectionToken(_)
        );
        return AfterFailure::StoreOffline { may_have_arrived };
    }
    AfterFailure::Fail(match e {
        PosError::Backend(BackendError::Unreachable(_) | BackendError::Timeout(_)) => e,
        other => BackendError::Unreachable(other.to_string()).into(),
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
    fn a_refused_connection_never_arrived() {
        let e = PosError::from(BackendError::Unreachable("refused".into()));
        assert_eq!(
            after_online_failure(e.clone(), true),
            AfterFailure::StoreOffline {
                may_have_arrived: false
            }
        );
        let stored = PosError::OfflineLimitExceeded("full".into());
        assert_eq!(
            after_store_failure(stored, &e, false).code(),
            "offline_limit_exceeded"
        );
        assert!(means_offline(&e));
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
    fn require_online_reports_the_backend_as_unreachable() {
        let busy = PosError::from(BackendError::status(503, "busy".into()));
        let AfterFailure::Fail(e) = after_online_failure(busy, false) else {
            panic!("must fail")
        };
        assert_eq!(e.code(), "backend_unreachable");
        let timeout = PosError::from(BackendError::Timeout(1));
        assert_eq!(
            after_online_failure(timeout.clone(), false),
            AfterFailure::Fail(timeout)
        );
        assert!(!means_offline(&PosError::from(BackendError::status(
            503,
            String::new()
        ))));
    }
}
