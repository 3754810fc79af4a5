//! The backend API (DESIGN.md "Backend API"): what its answers mean (pure, tested natively)
//! and the browser client that sends the requests.

#[cfg(target_arch = "wasm32")]
mod client;

use pos_protocol::backend::{ErrorBody, PaymentOk};

use crate::error::BackendError;
#[cfg(target_arch = "wasm32")]
pub use client::Backend;

/// The backend's final word on a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    Approved(PaymentOk),
    Declined { decline_code: String },
}

/// Classifies an answer to `POST /v1/payments`. Errors that are `is_retryable` are the ones
/// where the payment may be sent again with the same key.
pub fn classify_payment_answer(status: u16, text: &str) -> Result<PaymentOutcome, BackendError> {
    let error_message = || {
        serde_json::from_str::<ErrorBody>(text)
            .map(|b| format!("{}: {}", b.error.code, b.error.message))
            .unwrap_or_else(|_| text.chars().take(200).collect())
    };
    match status {
        200..=299 => serde_json::from_str::<PaymentOk>(text)
            .map(PaymentOutcome::Approved)
            .map_err(|e| BackendError::InvalidResponse(format!("{status}: {e}"))),
        402 => {
            let decline_code = serde_json::from_str::<ErrorBody>(text)
                .ok()
                .and_then(|b| b.error.decline_code)
                .filter(|c| {
                    !c.is_empty()
                        && c.len() <= 64
                        && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                })
                .unwrap_or_else(|| "generic_decline".to_string());
            Ok(PaymentOutcome::Declined { decline_code })
        }
        401 | 403 => Err(BackendError::Unauthorized(error_message())),
        409 => Err(BackendError::IdempotencyConflict),
        _ => Err(BackendError::status(status, error_message())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{HttpClass, PosError};
    use pos_protocol::backend::PaymentStatus;

    #[test]
    fn approved() {
        let out = classify_payment_answer(200, r#"{"payment_intent":"pi_1","status":"succeeded"}"#)
            .unwrap();
        assert_eq!(
            out,
            PaymentOutcome::Approved(PaymentOk {
                payment_intent: "pi_1".into(),
                status: PaymentStatus::Succeeded
            })
        );
    }

    #[test]
    fn declined_keeps_decline_code() {
        let out = classify_payment_answer(
            402,
            r#"{"error":{"code":"card_declined","decline_code":"insufficient_funds"}}"#,
        )
        .unwrap();
        assert_eq!(
            out,
            PaymentOutcome::Declined {
                decline_code: "insufficient_funds".into()
            }
        );
        // A hostile decline code is not passed through.
        let out = classify_payment_answer(
            402,
            r#"{"error":{"code":"card_declined","decline_code":"<script>"}}"#,
        )
        .unwrap();
        assert_eq!(
            out,
            PaymentOutcome::Declined {
                decline_code: "generic_decline".into()
            }
        );
    }

    #[test]
    fn errors_are_typed_and_retryability_is_right() {
        let e = classify_payment_answer(409, "{}").unwrap_err();
        assert_eq!(e, BackendError::IdempotencyConflict);
        assert!(!e.is_retryable());
        let e = classify_payment_answer(401, "{}").unwrap_err();
        assert!(matches!(e, BackendError::Unauthorized(_)));
        let e = classify_payment_answer(503, "busy").unwrap_err();
        assert!(matches!(
            e,
            BackendError::Status {
                class: HttpClass::Server,
                ..
            }
        ));
        assert!(e.is_retryable());
        let e = classify_payment_answer(
            400,
            r#"{"error":{"code":"invalid_request","message":"bad"}}"#,
        )
        .unwrap_err();
        assert_eq!(PosError::from(e.clone()).code(), "backend_error");
        assert!(!e.is_retryable());
        // A 2xx the SDK can't read: the backend may have charged; retrying with the key is safe.
        let e = classify_payment_answer(200, "garbage").unwrap_err();
        assert!(e.is_retryable());
    }
}
