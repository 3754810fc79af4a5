//! The backend API (DESIGN.md "Backend API"): what its answers mean (pure, tested natively)
//! and the browser client that sends the requests.

#[cfg(target_arch = "wasm32")]
mod client;

use pos_protocol::backend::{codes, ErrorBody, PaymentOk, PaymentStatus, ReaderPairing};
use pos_protocol::SortedMap;
use serde_json::value::RawValue;

use crate::error::{clip, BackendError};
#[cfg(target_arch = "wasm32")]
pub use client::Backend;

/// The backend's final word on a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    Approved(PaymentOk),
    Declined { decline_code: String },
}

/// Classifies an answer to `POST /v1/payments`. Errors that are `is_retryable` are the ones
/// where the payment may be sent again with the same key. Only the backend's own error
/// bodies (`ErrorBody` JSON) are final: a proxy's or captive portal's page is unreadable,
/// retried with the same key.
pub fn classify_payment_answer(status: u16, text: &str) -> Result<PaymentOutcome, BackendError> {
    if (200..300).contains(&status) {
        let ok = payment_ok(status, text)?;
        // A payment just created is charged or authorised; `canceled` answers a cancel.
        if let Some(why) = approval_problem(&ok) {
            return Err(BackendError::InvalidResponse(format!("{status}: {why}")));
        }
        return Ok(PaymentOutcome::Approved(ok));
    }
    let body = refusal(status, text)?;
    match status {
        402 => Ok(PaymentOutcome::Declined {
            decline_code: decline_code(body.error.decline_code.as_deref()),
        }),
        409 => Err(BackendError::IdempotencyConflict),
        _ => Err(BackendError::status(status, describe(Some(&body), text))),
    }
}

/// A decline code as the page is given it, from the backend or relayed by a reader: a
/// hostile one (long, or with markup) is not passed through; `generic_decline` stands in.
pub fn decline_code(raw: Option<&str>) -> String {
    raw.filter(|c| {
        !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    })
    .unwrap_or("generic_decline")
    .to_string()
}

/// Classifies an answer to `POST /v1/payments/{id}/capture` or `/cancel`: the payment's
/// state, or a typed refusal (`payment_not_found`, `payment_unexpected_state`). Both
/// requests are idempotent at the backend, so every retryable error may be retried as is.
pub fn classify_capture_answer(status: u16, text: &str) -> Result<PaymentOk, BackendError> {
    if (200..300).contains(&status) {
        return payment_ok(status, text);
    }
    let body = refusal(status, text)?;
    // The typed errors carry the backend's message alone: their code already says the rest.
    match (status, body.error.code.as_str()) {
        (404, codes::PAYMENT_NOT_FOUND) => Err(BackendError::PaymentNotFound(
            clip(&body.error.message).into_owned(),
        )),
        (409, codes::PAYMENT_UNEXPECTED_STATE) => Err(BackendError::PaymentUnexpectedState(
            clip(&body.error.message).into_owned(),
        )),
        _ => Err(BackendError::status(status, describe(Some(&body), text))),
    }
}

/// The longest answer the client reads, in characters: every answer of the backend API is a
/// small JSON object; a larger one is `backend_invalid_response` (retried like any unreadable
/// answer), and never copied into the SDK's memory.
pub const MAX_ANSWER_CHARS: usize = 64 * 1024;

/// Longest payment intent id this SDK takes from the backend (Stripe's are about 30).
pub const MAX_PAYMENT_INTENT_CHARS: usize = 255;

/// True when a payment intent id is 1 to `MAX_PAYMENT_INTENT_CHARS` visible ASCII characters
/// (it is shown, stored and sent back), whoever relays it: the backend or a reader.
pub fn valid_payment_intent(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PAYMENT_INTENT_CHARS
        && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Why an approval of a payment just sent makes no sense, if it does not: a payment intent id
/// `valid_payment_intent` refuses, or `canceled` (which answers a cancel, not a payment).
pub fn approval_problem(ok: &PaymentOk) -> Option<String> {
    if !valid_payment_intent(&ok.payment_intent) {
        Some(format!(
            "the payment intent id is empty, longer than {MAX_PAYMENT_INTENT_CHARS} characters \
             or not visible ASCII"
        ))
    } else if ok.status == PaymentStatus::Canceled {
        Some("a new payment answered as canceled".into())
    } else {
        None
    }
}

/// A 2xx answer's `PaymentOk`, its payment intent id checked.
fn payment_ok(status: u16, text: &str) -> Result<PaymentOk, BackendError> {
    let ok = serde_json::from_str::<PaymentOk>(text)
        .map_err(|e| BackendError::InvalidResponse(clip(&format!("{status}: {e}")).into()))?;
    if !valid_payment_intent(&ok.payment_intent) {
        return Err(BackendError::InvalidResponse(format!(
            "{status}: the payment intent id is empty, longer than \
             {MAX_PAYMENT_INTENT_CHARS} characters or not visible ASCII"
        )));
    }
    Ok(ok)
}

/// Longest pairing secret a hello may carry (`pos_protocol::reader::parse_pos_frame`).
pub const MAX_PAIRING_SECRET_CHARS: usize = 256;

/// Classifies an answer to `POST /v1/reader_pairings` for `reader_id`: the pairing, checked
/// (for this reader, a secret a hello can carry), or why not.
pub fn classify_pairing_answer(
    status: u16,
    text: &str,
    reader_id: &str,
) -> Result<ReaderPairing, BackendError> {
    if !(200..300).contains(&status) {
        let body = refusal(status, text)?;
        return Err(BackendError::status(status, describe(Some(&body), text)));
    }
    let pairing = serde_json::from_str::<ReaderPairing>(text)
        .map_err(|e| BackendError::InvalidResponse(clip(&format!("{status}: {e}")).into()))?;
    let secret_ok = !pairing.secret.is_empty()
        && pairing.secret.len() <= MAX_PAIRING_SECRET_CHARS
        && pairing.secret.bytes().all(|b| b.is_ascii_graphic());
    if pairing.reader_id != reader_id {
        Err(BackendError::InvalidResponse(
            "the backend issued a pairing for another reader".into(),
        ))
    } else if !secret_ok {
        Err(BackendError::InvalidResponse(
            "the pairing secret is empty, too long or not visible ASCII".into(),
        ))
    } else {
        Ok(pairing)
    }
}

/// What every non-2xx answer shares: refused credentials (retried with fresh ones), a
/// status worth retrying (429, 5xx), an answer without the backend's own error body (a
/// proxy's or captive portal's page: no word from the backend, retried). Otherwise the
/// backend's own error body, for the caller's codes.
fn refusal(status: u16, text: &str) -> Result<ErrorBody, BackendError> {
    let own = serde_json::from_str::<ErrorBody>(text).ok();
    match status {
        401 | 403 => Err(BackendError::Unauthorized(describe(own.as_ref(), text))),
        429 | 500..=599 => Err(BackendError::status(status, describe(own.as_ref(), text))),
        _ => own.ok_or_else(|| {
            BackendError::InvalidResponse(format!(
                "{status} without the backend's error body: {}",
                text.chars().take(200).collect::<String>()
            ))
        }),
    }
}

fn describe(own: Option<&ErrorBody>, text: &str) -> String {
    match own {
        Some(b) => format!("{}: {}", clip(&b.error.code), clip(&b.error.message)),
        None => text.chars().take(200).collect(),
    }
}

/// True when `GET /v1/health` answered as the backend does: 2xx with `{"ok":true}` (a
/// captive portal answers 200 too).
pub fn health_ok(status: u16, text: &str) -> bool {
    // Any object whose `ok` (the last, if repeated) is the JSON `true`; its other fields are
    // not looked at. Raw values: a `serde_json::Value` would bring its `BTreeMap` along.
    (200..300).contains(&status)
        && serde_json::from_str::<SortedMap<&RawValue>>(text)
            .is_ok_and(|m| m.get("ok").is_some_and(|v| v.get() == "true"))
}

/// `Retry-After` in milliseconds, from its delay-seconds form (an HTTP date is ignored),
/// capped at an hour.
pub fn retry_after_ms(header: Option<&str>) -> Option<u64> {
    let secs: u64 = header?.trim().parse().ok()?;
    Some(secs.min(3_600) * 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{HttpClass, PosError};

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
    fn approvals_that_do_not_make_sense_are_invalid_responses() {
        let huge = format!(
            r#"{{"payment_intent":"{}","status":"succeeded"}}"#,
            "p".repeat(MAX_PAYMENT_INTENT_CHARS + 1)
        );
        for text in [
            r#"{"payment_intent":"pi_x","status":"canceled"}"#,
            r#"{"payment_intent":"","status":"succeeded"}"#,
            r#"{"payment_intent":"pi x","status":"succeeded"}"#,
            huge.as_str(),
        ] {
            let e = classify_payment_answer(200, text).unwrap_err();
            assert!(
                matches!(e, BackendError::InvalidResponse(_)),
                "{text}: {e:?}"
            );
            assert!(e.is_retryable(), "the same key again: {text}");
        }
        // Cancel answers `canceled`; a payment intent id is checked there too.
        let canceled =
            classify_capture_answer(200, r#"{"payment_intent":"pi_x","status":"canceled"}"#);
        assert_eq!(canceled.unwrap().status, PaymentStatus::Canceled);
        assert!(
            classify_capture_answer(200, r#"{"payment_intent":"","status":"canceled"}"#).is_err()
        );
    }

    #[test]
    fn a_backends_long_message_is_clipped() {
        let long = "m".repeat(3_000_000);
        let body = format!(r#"{{"error":{{"code":"invalid_request","message":"{long}"}}}}"#);
        let e = PosError::from(classify_payment_answer(400, &body).unwrap_err());
        let shown = e.to_string();
        assert!(shown.len() < 1_000, "{} characters", shown.len());
        assert!(shown.contains("invalid_request: mmm"), "{shown}");
        assert!(shown.ends_with('…'), "{shown}");
        let body = format!(r#"{{"error":{{"code":"payment_not_found","message":"{long}"}}}}"#);
        let e = classify_capture_answer(404, &body).unwrap_err();
        assert!(e.to_string().len() < 1_000);
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
        let e = classify_payment_answer(
            409,
            r#"{"error":{"code":"idempotency_key_reused","message":"x"}}"#,
        )
        .unwrap_err();
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

    #[test]
    fn only_the_backends_own_error_bodies_are_final() {
        // A proxy's 404 page, a portal's 402: unreadable, retried with the same key.
        for (status, text) in [
            (404, "Not Found"),
            (402, "<html>pay for wifi</html>"),
            (409, ""),
        ] {
            let e = classify_payment_answer(status, text).unwrap_err();
            assert!(matches!(e, BackendError::InvalidResponse(_)), "{status}");
            assert!(e.is_retryable(), "{status}");
        }
        let own = r#"{"error":{"code":"not_found","message":"no"}}"#;
        assert!(!classify_payment_answer(404, own)
            .unwrap_err()
            .is_retryable());
        assert_eq!(
            classify_payment_answer(409, own).unwrap_err(),
            BackendError::IdempotencyConflict
        );
    }

    #[test]
    fn capture_answers_are_typed() {
        let ok = classify_capture_answer(
            200,
            r#"{"payment_intent":"pi_1","status":"requires_capture"}"#,
        )
        .unwrap();
        assert_eq!(ok.status, PaymentStatus::RequiresCapture);
        let ok = classify_capture_answer(200, r#"{"payment_intent":"pi_1","status":"canceled"}"#)
            .unwrap();
        assert_eq!(ok.status, PaymentStatus::Canceled);
        let e = classify_capture_answer(
            404,
            r#"{"error":{"code":"payment_not_found","message":"no"}}"#,
        )
        .unwrap_err();
        assert_eq!(PosError::from(e.clone()).code(), "payment_not_found");
        assert!(!e.is_retryable());
        let e = classify_capture_answer(
            409,
            r#"{"error":{"code":"payment_unexpected_state","message":"captured"}}"#,
        )
        .unwrap_err();
        assert_eq!(PosError::from(e.clone()).code(), "payment_unexpected_state");
        assert!(!e.is_retryable());
        // The backend's message once, without its code repeated inside.
        assert_eq!(
            e.to_string(),
            "the payment is not in a state that allows this: captured"
        );
        // A proxy's 404 page is no answer about the payment: retryable.
        let e = classify_capture_answer(404, "Not Found").unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(PosError::from(e).code(), "backend_invalid_response");
        let e = classify_capture_answer(503, "").unwrap_err();
        assert!(e.is_retryable());
        assert!(matches!(
            classify_capture_answer(401, "{}").unwrap_err(),
            BackendError::Unauthorized(_)
        ));
        // Another 409 of the backend (not a state conflict) stays a backend error.
        let e =
            classify_capture_answer(409, r#"{"error":{"code":"something_else","message":"x"}}"#)
                .unwrap_err();
        assert_eq!(PosError::from(e).code(), "backend_error");
    }

    #[test]
    fn pairing_answers_are_checked() {
        let p = classify_pairing_answer(
            200,
            r#"{"reader_id":"rdr_1","secret":"rpair_ab","expires_at":5}"#,
            "rdr_1",
        )
        .unwrap();
        assert_eq!((p.secret.as_str(), p.expires_at), ("rpair_ab", 5));
        for (text, why) in [
            (
                r#"{"reader_id":"rdr_2","secret":"rpair_ab","expires_at":5}"#,
                "another reader",
            ),
            (
                r#"{"reader_id":"rdr_1","secret":"","expires_at":5}"#,
                "empty",
            ),
            (
                r#"{"reader_id":"rdr_1","secret":"a b","expires_at":5}"#,
                "space",
            ),
            (r#"{"reader_id":"rdr_1"}"#, "missing fields"),
        ] {
            let e = classify_pairing_answer(200, text, "rdr_1").unwrap_err();
            assert!(matches!(e, BackendError::InvalidResponse(_)), "{why}");
        }
        let long = format!(
            r#"{{"reader_id":"rdr_1","secret":"{}","expires_at":5}}"#,
            "x".repeat(MAX_PAIRING_SECRET_CHARS + 1)
        );
        assert!(classify_pairing_answer(200, &long, "rdr_1").is_err());
        assert!(matches!(
            classify_pairing_answer(401, "", "rdr_1").unwrap_err(),
            BackendError::Unauthorized(_)
        ));
        assert!(classify_pairing_answer(503, "", "rdr_1")
            .unwrap_err()
            .is_retryable());
        let e = classify_pairing_answer(
            400,
            r#"{"error":{"code":"invalid_request","message":"x"}}"#,
            "rdr_1",
        )
        .unwrap_err();
        assert!(!e.is_retryable());
    }

    #[test]
    fn health_needs_the_backends_body_and_retry_after_is_read() {
        assert!(health_ok(200, r#"{"ok":true}"#));
        assert!(!health_ok(200, "<html>Sign in</html>"), "a captive portal");
        assert!(!health_ok(200, r#"{"ok":false}"#));
        assert!(!health_ok(503, r#"{"ok":true}"#));
        // As when the body was read into a `serde_json::Value` and its `ok` compared to `true`.
        let as_value = |text: &str| {
            serde_json::from_str::<serde_json::Value>(text)
                .is_ok_and(|v| v.get("ok") == Some(&serde_json::Value::Bool(true)))
        };
        for text in [
            r#"{"ok":true}"#,
            r#" { "ok" : true , "version": {"a": [1, null]} } "#,
            "{\"ok\":\ttrue\n}",
            r#"{"\u006fk":true}"#,
            r#"{"ok":false,"ok":true}"#,
            r#"{"ok":true,"ok":false}"#,
            r#"{"ok":"true"}"#,
            r#"{"ok":1}"#,
            r#"{"ok":null}"#,
            r#"{"ok":[true]}"#,
            r#"{"Ok":true}"#,
            r#"{}"#,
            r#"[true]"#,
            r#"["ok",true]"#,
            "true",
            "",
            r#"{"ok":true} x"#,
            r#"{"ok":true"#,
        ] {
            assert_eq!(health_ok(200, text), as_value(text), "{text}");
        }
        assert_eq!(retry_after_ms(Some(" 7 ")), Some(7_000));
        assert_eq!(retry_after_ms(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after_ms(Some("999999")), Some(3_600_000));
        assert_eq!(retry_after_ms(None), None);
    }
}
