//! When a payment goes online and when it is stored offline, as pure functions: the route
//! before any request, and what to do after an online attempt failed. This is where the
//! second half of invariant 2 lives: a fallback reuses the payment id, and a payment that
//! may have reached the backend is never reported as "not charged".

use pos_protocol::offline_rules;
use pos_protocol::CardSummary;

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
    match classify(e) {
        OnlineFailure::Final(e) => AfterFailure::Fail(e),
        OnlineFailure::NotReached {
            may_have_arrived,
            error,
        } => {
            let behavior = if offline_allowed {
                OfflineBehavior::PreferOnline
            } else {
                OfflineBehavior::RequireOnline
            };
            nobody_got_through(may_have_arrived, behavior, true, Ok(()), &error)
        }
    }
}

/// How the SDK's own online attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnlineFailure {
    /// The backend's final answer (a decline, a refusal): no other agent tries.
    Final(PosError),
    /// The SDK did not get the payment to the backend; another agent (the reader) may try,
    /// with the same id.
    NotReached {
        may_have_arrived: bool,
        error: PosError,
    },
}

pub fn classify(e: PosError) -> OnlineFailure {
    if fallback_applies(&e) {
        OnlineFailure::NotReached {
            may_have_arrived: may_have_arrived(&e),
            error: e,
        }
    } else {
        OnlineFailure::Final(e)
    }
}

/// The offline rules (`pos_protocol::offline_rules`) for `card` read by a reader located in
/// `country`, as this SDK's error.
pub fn offline_rules_check(card: &CardSummary, country: Option<&str>) -> Result<(), PosError> {
    offline_rules::check(card, country)
        .map_err(|refusal| PosError::OfflinePaymentMethodUnsupported(refusal.to_string()))
}

/// Neither the SDK nor the reader got the payment to the backend (`may_have_arrived`: one
/// of them may have): store it in the SDK when `offlineBehavior`, the terminal and the
/// offline rules (`rules`) allow; otherwise the error to report, never "not charged" for a
/// payment that may have arrived. `why` says what failed last.
pub fn nobody_got_through(
    may_have_arrived: bool,
    behavior: OfflineBehavior,
    offline_enabled: bool,
    rules: Result<(), PosError>,
    why: &PosError,
) -> AfterFailure {
    let unknown = || PosError::OutcomeUnknown(what_failed(why));
    if !offline_allowed(behavior, offline_enabled) {
        return AfterFailure::Fail(if may_have_arrived {
            unknown()
        } else if behavior == OfflineBehavior::ForceOffline {
            PosError::OfflineDisabled
        } else if let PosError::ConnectionToken(_) = why {
            // No token, so nothing was sent: the merchant's server is the one to look at.
            why.clone()
        } else {
            BackendError::Unreachable(why.to_string()).into()
        });
    }
    if let Err(refused) = rules {
        return AfterFailure::Fail(if may_have_arrived { unknown() } else { refused });
    }
    AfterFailure::StoreOffline { may_have_arrived }
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
            what_failed(online),
            stored.code()
        ))
    } else {
        stored
    }
}

/// What failed in an attempt that may have reached the backend, for the unknown outcome's
/// message: a connection that failed mid-request is not "could not be reached".
fn what_failed(why: &PosError) -> String {
    match why {
        PosError::Backend(BackendError::Unreachable(inner)) => {
            format!("the connection failed before an answer came back: {inner}")
        }
        other => format!("{}: {other}", other.code()),
    }
}

/// The error of a retry whose earlier attempt may have reached the backend: only the
/// backend's verdict on the payment (a decline) settles it; any other failure of the retry
/// (nothing sent, a refused store, a refused token) leaves its outcome unknown.
pub fn after_earlier_unknown(e: PosError) -> PosError {
    match e {
        PosError::CardDeclined { .. } | PosError::OutcomeUnknown(_) => e,
        other => PosError::OutcomeUnknown(format!(
            "{}: {other}; an earlier attempt of this payment may have reached the backend \
             (retry with the same payment: it is never charged twice)",
            other.code()
        )),
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

    fn swiped() -> CardSummary {
        CardSummary {
            brand: "visa".into(),
            last4: "4242".into(),
            exp_month: 12,
            exp_year: 2031,
            entry_mode: Some(pos_protocol::EntryMode::Swipe),
            pin_verified: false,
        }
    }

    #[test]
    fn the_offline_rules_refuse_with_their_code() {
        let mut card = swiped();
        assert_eq!(
            offline_rules_check(&card, Some("US")).unwrap_err().code(),
            "offline_payment_method_unsupported"
        );
        card.entry_mode = Some(pos_protocol::EntryMode::Contactless);
        assert_eq!(offline_rules_check(&card, Some("US")), Ok(()));
        assert_eq!(
            offline_rules_check(&card, Some("FR")).unwrap_err().code(),
            "offline_payment_method_unsupported",
            "EEA: chip and PIN only"
        );
        card.entry_mode = Some(pos_protocol::EntryMode::Chip);
        card.brand = "interac".into();
        assert!(offline_rules_check(&card, Some("CA")).is_err());
    }

    #[test]
    fn only_the_backends_final_answers_keep_other_agents_out() {
        assert_eq!(
            classify(PosError::CardDeclined {
                decline_code: "x".into()
            }),
            OnlineFailure::Final(PosError::CardDeclined {
                decline_code: "x".into()
            })
        );
        let down = PosError::from(BackendError::Unreachable("reset".into()));
        assert!(matches!(
            classify(down),
            OnlineFailure::NotReached {
                may_have_arrived: true,
                ..
            }
        ));
        let not_sent = PosError::from(BackendError::NotSent("offline".into()));
        assert!(matches!(
            classify(not_sent),
            OnlineFailure::NotReached {
                may_have_arrived: false,
                ..
            }
        ));
    }

    #[test]
    fn when_nobody_got_through_the_sdk_stores_what_the_rules_allow() {
        let why = PosError::from(BackendError::NotSent("down".into()));
        let refused = || offline_rules_check(&swiped(), None);
        assert_eq!(
            nobody_got_through(false, PreferOnline, true, Ok(()), &why),
            AfterFailure::StoreOffline {
                may_have_arrived: false
            }
        );
        // A swiped card: refused with the rules' code, nothing stored.
        let AfterFailure::Fail(e) = nobody_got_through(false, PreferOnline, true, refused(), &why)
        else {
            panic!("refused")
        };
        assert_eq!(e.code(), "offline_payment_method_unsupported");
        let AfterFailure::Fail(e) = nobody_got_through(false, ForceOffline, true, refused(), &why)
        else {
            panic!("refused")
        };
        assert_eq!(e.code(), "offline_payment_method_unsupported");
        // ...but never "not charged" when an attempt may have reached the backend.
        let AfterFailure::Fail(e) = nobody_got_through(true, PreferOnline, true, refused(), &why)
        else {
            panic!("refused")
        };
        assert_eq!(e.code(), "payment_outcome_unknown");
        let AfterFailure::Fail(e) = nobody_got_through(false, ForceOffline, false, Ok(()), &why)
        else {
            panic!("disabled")
        };
        assert_eq!(e.code(), "offline_disabled");
        let AfterFailure::Fail(e) = nobody_got_through(false, RequireOnline, true, Ok(()), &why)
        else {
            panic!("require_online")
        };
        assert_eq!(e.code(), "backend_unreachable");
        let AfterFailure::Fail(e) = nobody_got_through(true, RequireOnline, true, Ok(()), &why)
        else {
            panic!("require_online")
        };
        assert_eq!(e.code(), "payment_outcome_unknown");
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
        let unsent = PosError::from(BackendError::NotSent("offline".into()));
        let AfterFailure::Fail(e) = after_online_failure(unsent, false) else {
            panic!("must fail")
        };
        assert_eq!(e.code(), "backend_unreachable");
        // No token (refused by the page's callback, or it never settled): nothing was sent,
        // and the error says where to look.
        let no_token = PosError::ConnectionToken("it did not settle within 2000 ms".into());
        assert_eq!(
            after_online_failure(no_token.clone(), false),
            AfterFailure::Fail(no_token.clone())
        );
        // With an offline fallback it is stored, like any payment that was not sent.
        assert_eq!(
            after_online_failure(no_token, true),
            AfterFailure::StoreOffline {
                may_have_arrived: false
            }
        );
        assert!(!means_offline(&PosError::from(BackendError::status(
            503,
            String::new()
        ))));
    }

    #[test]
    fn after_an_earlier_unknown_only_a_decline_or_an_approval_is_known() {
        let declined = PosError::CardDeclined {
            decline_code: "insufficient_funds".into(),
        };
        assert_eq!(after_earlier_unknown(declined.clone()), declined);
        for e in [
            PosError::OfflineLimitExceeded("over the stored amount".into()),
            PosError::OfflineDisabled,
            PosError::ConnectionToken("rejected".into()),
            PosError::from(BackendError::NotSent("offline".into())),
            PosError::from(BackendError::Unauthorized("refused".into())),
        ] {
            let code = e.code();
            let after = after_earlier_unknown(e);
            assert_eq!(after.code(), "payment_outcome_unknown", "{code}");
            assert!(after.to_string().contains(code), "{after}");
        }
        let unknown = PosError::OutcomeUnknown("timeout".into());
        assert_eq!(after_earlier_unknown(unknown.clone()), unknown);
    }
}
