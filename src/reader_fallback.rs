//! The reader as the second agent, as pure functions: when the SDK cannot reach the backend,
//! what to ask a reader that processes (and maybe stores) payments over its own link, and
//! what its answer means. `fallback` decides the rest (the SDK's own store, unknown outcomes).

use pos_protocol::backend::{codes, PaymentOk};
use pos_protocol::reader::{Capabilities, ProcessMode, ProcessResult, ReaderErrorCode};

use crate::backend::approval_problem;
use crate::error::{clip, BackendError, PosError};
use crate::options::OfflineStorage;
use crate::payment::OfflineBehavior;

/// What to ask the connected reader when the SDK did not get the payment to the backend,
/// or `None` to leave the reader out. `may_store` says the payment may be stored offline at
/// all (`offlineBehavior`, the terminal's offline switch, the offline rules, the limits).
pub fn reader_mode(
    behavior: OfflineBehavior,
    storage: OfflineStorage,
    reader: Option<Capabilities>,
    may_store: bool,
) -> Option<ProcessMode> {
    let caps = reader?;
    let store_on_reader = storage == OfflineStorage::Reader && caps.store && may_store;
    match behavior {
        // Stored without trying the backend: on the reader only when it is the chosen agent.
        OfflineBehavior::ForceOffline => store_on_reader.then_some(ProcessMode::Store),
        OfflineBehavior::PreferOnline | OfflineBehavior::RequireOnline => {
            if !caps.process {
                None
            } else if store_on_reader {
                Some(ProcessMode::OnlineOrStore)
            } else {
                Some(ProcessMode::Online)
            }
        }
    }
}

/// The reader's answer to a `process`, as the session hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderAnswer {
    Processed(ProcessResult),
    /// The reader answered `error` for this request.
    Refused {
        code: ReaderErrorCode,
        message: String,
    },
    /// No answer: the reader went away, timed out, or sent something else.
    Failed(PosError),
}

/// What the reader's answer means for the payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterReader {
    /// The backend approved it through the reader's link.
    Approved(PaymentOk),
    /// Stored sealed on the reader, which forwards it with the same key.
    StoredOnReader { stored_at: u64 },
    /// The backend's final answer through the reader (declined, or refused for good).
    Final(PosError),
    /// The reader refused the payment itself (the offline rules): nothing stored there. Not
    /// an answer of the backend: an earlier attempt of the SDK's may still have reached it.
    Refused(PosError),
    /// The reader did not get it through; the SDK's own store is next.
    NotThrough {
        /// The reader may have sent it (or kept it): the backend may have the payment.
        may_have_arrived: bool,
        why: String,
    },
}

/// The error for a payment the backend refused (not declined) through the reader.
fn rejected(code: &str, message: &str) -> PosError {
    if code == codes::IDEMPOTENCY_KEY_REUSED {
        return BackendError::IdempotencyConflict.into();
    }
    BackendError::Status {
        status: 400,
        class: crate::error::HttpClass::Client,
        message: format!(
            "refused through the reader ({}): {}",
            clip(code),
            clip(message)
        ),
        retry_after_ms: None,
    }
    .into()
}

pub fn after_reader(answer: ReaderAnswer) -> AfterReader {
    match answer {
        ReaderAnswer::Processed(result) => match result {
            ProcessResult::Approved {
                payment_intent,
                status,
            } => {
                let ok = PaymentOk {
                    payment_intent,
                    status,
                };
                match approval_problem(&ok) {
                    None => AfterReader::Approved(ok),
                    // The reader did send it: the backend may have it, under the same key.
                    Some(why) => AfterReader::NotThrough {
                        may_have_arrived: true,
                        why: format!("the reader's approval makes no sense: {why}"),
                    },
                }
            }
            ProcessResult::Declined { decline_code } => {
                AfterReader::Final(PosError::CardDeclined {
                    decline_code: crate::backend::decline_code(Some(&decline_code)),
                })
            }
            ProcessResult::Rejected { code, message } => {
                AfterReader::Final(rejected(&code, &message))
            }
            ProcessResult::Stored { stored_at } => AfterReader::StoredOnReader { stored_at },
            ProcessResult::Unreachable { message } => AfterReader::NotThrough {
                may_have_arrived: false,
                why: format!("the reader's link is down too: {message}"),
            },
            ProcessResult::Unknown { message } => AfterReader::NotThrough {
                may_have_arrived: true,
                why: format!("the reader sent it and got no answer: {message}"),
            },
        },
        ReaderAnswer::Refused {
            code: ReaderErrorCode::OfflinePaymentMethodUnsupported,
            message,
        } => AfterReader::Refused(PosError::OfflinePaymentMethodUnsupported(message)),
        // The reader looked at the message and did nothing with it.
        ReaderAnswer::Refused {
            code: ReaderErrorCode::InvalidMessage,
            message,
        } => AfterReader::NotThrough {
            may_have_arrived: false,
            why: format!("the reader refused the request: {}", clip(&message)),
        },
        // Anything else (storage full after a failed send, a code of a newer reader): the
        // reader may have sent it first.
        ReaderAnswer::Refused { code, message } => AfterReader::NotThrough {
            may_have_arrived: true,
            why: format!("the reader reported {}: {}", code.as_str(), clip(&message)),
        },
        // The reader may have sent or stored it before going silent.
        ReaderAnswer::Failed(e) => AfterReader::NotThrough {
            may_have_arrived: true,
            why: format!("the reader did not answer ({}): {e}", e.code()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_protocol::backend::PaymentStatus;
    use OfflineBehavior::*;

    const BOTH: Capabilities = Capabilities {
        process: true,
        store: true,
    };
    const PROCESS_ONLY: Capabilities = Capabilities {
        process: true,
        store: false,
    };
    const NONE: Capabilities = Capabilities {
        process: false,
        store: false,
    };

    #[test]
    fn a_reader_that_processes_is_tried_online_and_stores_only_when_chosen() {
        use OfflineStorage::{Reader, Sdk};
        assert_eq!(
            reader_mode(PreferOnline, Sdk, Some(BOTH), true),
            Some(ProcessMode::Online),
            "the SDK stores by default: the reader only tries online"
        );
        assert_eq!(
            reader_mode(PreferOnline, Reader, Some(BOTH), true),
            Some(ProcessMode::OnlineOrStore)
        );
        assert_eq!(
            reader_mode(PreferOnline, Reader, Some(PROCESS_ONLY), true),
            Some(ProcessMode::Online),
            "a reader that cannot store leaves storing to the SDK"
        );
        assert_eq!(
            reader_mode(PreferOnline, Reader, Some(BOTH), false),
            Some(ProcessMode::Online),
            "a payment that may not be stored is never stored on the reader"
        );
        assert_eq!(
            reader_mode(RequireOnline, Reader, Some(BOTH), false),
            Some(ProcessMode::Online)
        );
        assert_eq!(reader_mode(PreferOnline, Reader, Some(NONE), true), None);
        assert_eq!(reader_mode(PreferOnline, Reader, None, true), None);
    }

    #[test]
    fn force_offline_stores_on_the_reader_only_when_it_is_the_chosen_agent() {
        use OfflineStorage::{Reader, Sdk};
        assert_eq!(
            reader_mode(ForceOffline, Reader, Some(BOTH), true),
            Some(ProcessMode::Store)
        );
        assert_eq!(reader_mode(ForceOffline, Sdk, Some(BOTH), true), None);
        assert_eq!(
            reader_mode(ForceOffline, Reader, Some(PROCESS_ONLY), true),
            None
        );
        assert_eq!(reader_mode(ForceOffline, Reader, Some(BOTH), false), None);
    }

    #[test]
    fn the_backends_answers_through_the_reader_are_final() {
        let approved = after_reader(ReaderAnswer::Processed(ProcessResult::Approved {
            payment_intent: "pi_1".into(),
            status: PaymentStatus::Succeeded,
        }));
        assert!(matches!(approved, AfterReader::Approved(ok) if ok.payment_intent == "pi_1"));
        let AfterReader::Final(declined) =
            after_reader(ReaderAnswer::Processed(ProcessResult::Declined {
                decline_code: "insufficient_funds".into(),
            }))
        else {
            panic!("a decline is final")
        };
        assert_eq!(declined.code(), "card_declined");
        assert_eq!(declined.decline_code(), Some("insufficient_funds"));
        // A reader's decline code is held to the backend's rule: no markup, no 16 KB.
        for hostile in [
            "<img src=x onerror=alert(1)>".to_string(),
            "a".repeat(16_000),
        ] {
            let AfterReader::Final(declined) =
                after_reader(ReaderAnswer::Processed(ProcessResult::Declined {
                    decline_code: hostile,
                }))
            else {
                panic!("a decline is final")
            };
            assert_eq!(declined.decline_code(), Some("generic_decline"));
        }
        let AfterReader::Final(reused) =
            after_reader(ReaderAnswer::Processed(ProcessResult::Rejected {
                code: "idempotency_key_reused".into(),
                message: "x".into(),
            }))
        else {
            panic!("final")
        };
        assert_eq!(reused.code(), "idempotency_conflict");
        let AfterReader::Final(mismatch) =
            after_reader(ReaderAnswer::Processed(ProcessResult::Rejected {
                code: "card_payload_mismatch".into(),
                message: "x".into(),
            }))
        else {
            panic!("final")
        };
        assert_eq!(mismatch.code(), "backend_error");
        assert!(!mismatch.backend().is_some_and(BackendError::is_retryable));
        assert_eq!(
            after_reader(ReaderAnswer::Processed(ProcessResult::Stored {
                stored_at: 7
            })),
            AfterReader::StoredOnReader { stored_at: 7 }
        );
    }

    #[test]
    fn only_what_the_reader_never_sent_is_certain_not_to_have_arrived() {
        let not_through = |answer| match after_reader(answer) {
            AfterReader::NotThrough {
                may_have_arrived, ..
            } => may_have_arrived,
            other => panic!("expected NotThrough, got {other:?}"),
        };
        assert!(!not_through(ReaderAnswer::Processed(
            ProcessResult::Unreachable {
                message: "link down".into()
            }
        )));
        assert!(!not_through(ReaderAnswer::Refused {
            code: ReaderErrorCode::InvalidMessage,
            message: "x".into()
        }));
        assert!(not_through(ReaderAnswer::Processed(
            ProcessResult::Unknown {
                message: "no answer".into()
            }
        )));
        assert!(not_through(ReaderAnswer::Refused {
            code: ReaderErrorCode::StorageFull,
            message: "full".into()
        }));
        assert!(not_through(ReaderAnswer::Failed(PosError::Reader(
            crate::error::ReaderError::Disconnected
        ))));
    }

    #[test]
    fn the_readers_offline_refusal_keeps_its_code() {
        let AfterReader::Refused(e) = after_reader(ReaderAnswer::Refused {
            code: ReaderErrorCode::OfflinePaymentMethodUnsupported,
            message: "swiped".into(),
        }) else {
            panic!("refused")
        };
        assert_eq!(e.code(), "offline_payment_method_unsupported");
    }
}
