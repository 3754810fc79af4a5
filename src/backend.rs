//! The backend API client (DESIGN.md "Backend API"): health probe and payment creation, each
//! with a timeout, answers classified into outcomes and typed errors.

use gloo_timers::callback::Timeout;
use pos_protocol::backend::{ErrorBody, PaymentBody, PaymentOk, IDEMPOTENCY_HEADER};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Headers, Request, RequestInit, Response};

use crate::error::{describe_js, js_error_name, PosError};
use crate::js;

/// The backend's final word on a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    Approved(PaymentOk),
    Declined { decline_code: String },
}

/// Classifies an answer to `POST /v1/payments`. Errors that `is_retryable_transport` are
/// the ones where the payment may be sent again with the same key.
pub fn classify_payment_answer(status: u16, text: &str) -> Result<PaymentOutcome, PosError> {
    let error_message = || {
        serde_json::from_str::<ErrorBody>(text)
            .map(|b| format!("{}: {}", b.error.code, b.error.message))
            .unwrap_or_else(|_| text.chars().take(200).collect())
    };
    match status {
        200..=299 => serde_json::from_str::<PaymentOk>(text)
            .map(PaymentOutcome::Approved)
            .map_err(|e| PosError::InvalidBackendResponse(format!("{status}: {e}"))),
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
        401 | 403 => Err(PosError::Unauthorized(error_message())),
        409 => Err(PosError::IdempotencyConflict),
        _ => Err(PosError::Backend {
            status,
            message: error_message(),
        }),
    }
}

#[derive(Debug, Clone)]
pub struct Backend {
    base: String,
    timeout_ms: u32,
}

impl Backend {
    pub fn new(base: &str, timeout_ms: u32) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            timeout_ms,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /v1/health` answered 2xx within the timeout.
    pub async fn health(&self) -> Result<(), PosError> {
        self.health_within(self.timeout_ms.min(5_000)).await
    }

    pub async fn health_within(&self, timeout_ms: u32) -> Result<(), PosError> {
        let (status, _) = self
            .send(
                "GET",
                "/v1/health",
                &[],
                None,
                timeout_ms.min(self.timeout_ms),
            )
            .await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(PosError::Backend {
                status,
                message: "health check failed".into(),
            })
        }
    }

    pub async fn create_payment(
        &self,
        token: &str,
        body: &PaymentBody,
    ) -> Result<PaymentOutcome, PosError> {
        let json = serde_json::to_string(body).map_err(|e| PosError::Internal(e.to_string()))?;
        let auth = format!("Bearer {token}");
        let headers = [
            ("Content-Type", "application/json"),
            ("Authorization", auth.as_str()),
            (IDEMPOTENCY_HEADER, body.id.as_str()),
        ];
        let (status, text) = self
            .send(
                "POST",
                "/v1/payments",
                &headers,
                Some(&json),
                self.timeout_ms,
            )
            .await?;
        classify_payment_answer(status, &text)
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
        timeout_ms: u32,
    ) -> Result<(u16, String), PosError> {
        let controller = AbortController::new().map_err(|e| PosError::Internal(describe_js(&e)))?;
        let init = RequestInit::new();
        init.set_method(method);
        init.set_signal(Some(&controller.signal()));
        init.set_cache(web_sys::RequestCache::NoStore);
        let h = Headers::new().map_err(|e| PosError::Internal(describe_js(&e)))?;
        for (k, v) in headers {
            h.set(k, v)
                .map_err(|e| PosError::InvalidArgument(describe_js(&e)))?;
        }
        init.set_headers(&h);
        if let Some(b) = body {
            init.set_body(&b.into());
        }
        let url = format!("{}{}", self.base, path);
        let request = Request::new_with_str_and_init(&url, &init)
            .map_err(|e| PosError::InvalidArgument(describe_js(&e)))?;

        let abort = controller.clone();
        let _timer = Timeout::new(timeout_ms, move || abort.abort());
        let map_err = |e: wasm_bindgen::JsValue| match js_error_name(&e).as_deref() {
            Some("AbortError") => PosError::BackendTimeout(timeout_ms),
            _ => PosError::BackendUnreachable(describe_js(&e)),
        };
        let response: Response = JsFuture::from(js::fetch(&request)?)
            .await
            .map_err(map_err)?
            .unchecked_into();
        let status = response.status();
        let text_promise = response.text().map_err(map_err)?;
        let text = JsFuture::from(text_promise).await.map_err(map_err)?;
        Ok((status, text.as_string().unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(e.code(), "idempotency_conflict");
        assert!(!e.is_retryable_transport());
        let e = classify_payment_answer(401, "{}").unwrap_err();
        assert_eq!(e.code(), "unauthorized");
        let e = classify_payment_answer(503, "busy").unwrap_err();
        assert!(e.is_retryable_transport());
        let e = classify_payment_answer(
            400,
            r#"{"error":{"code":"invalid_request","message":"bad"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.code(), "backend_error");
        assert!(!e.is_retryable_transport());
        // A 2xx the SDK can't read: the backend may have charged; retrying with the key is safe.
        let e = classify_payment_answer(200, "garbage").unwrap_err();
        assert!(e.is_retryable_transport());
    }
}
