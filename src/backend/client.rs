//! The browser side of the backend API: `fetch` with a timeout, answers read as text and
//! classified by `super`.

use gloo_timers::callback::Timeout;
use pos_protocol::backend::{
    PaymentBody, PaymentOk, ReaderPairing, ReaderPairingRequest, IDEMPOTENCY_HEADER,
};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Headers, Request, RequestInit, Response};

use super::{
    classify_capture_answer, classify_pairing_answer, classify_payment_answer, health_ok,
    retry_after_ms, PaymentOutcome, MAX_ANSWER_CHARS,
};
use crate::error::BackendError;
use crate::js::{self, describe_js, js_error_name};

/// An HTTP answer as read.
struct Answer {
    status: u16,
    text: String,
    retry_after_ms: Option<u64>,
}

/// One backend: its base URL and how long a request may take.
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
    pub async fn health(&self) -> Result<(), BackendError> {
        self.health_within(self.timeout_ms.min(5_000)).await
    }

    pub async fn health_within(&self, timeout_ms: u32) -> Result<(), BackendError> {
        let answer = self
            .send(
                "GET",
                "/v1/health",
                &[],
                None,
                timeout_ms.min(self.timeout_ms),
            )
            .await?;
        if health_ok(answer.status, &answer.text) {
            Ok(())
        } else if (200..300).contains(&answer.status) {
            Err(BackendError::InvalidResponse(
                "the health check answered without {\"ok\":true} (a captive portal?)".into(),
            ))
        } else {
            Err(BackendError::status(
                answer.status,
                "health check failed".into(),
            ))
        }
    }

    pub async fn create_payment(
        &self,
        token: &str,
        body: &PaymentBody,
    ) -> Result<PaymentOutcome, BackendError> {
        let json = serde_json::to_string(body).map_err(|e| BackendError::NotSent(e.to_string()))?;
        let auth = format!("Bearer {token}");
        let headers = [
            ("Content-Type", "application/json"),
            ("Authorization", auth.as_str()),
            (IDEMPOTENCY_HEADER, body.id.as_str()),
        ];
        let answer = self
            .send(
                "POST",
                "/v1/payments",
                &headers,
                Some(&json),
                self.timeout_ms,
            )
            .await?;
        classify_payment_answer(answer.status, &answer.text)
            .map_err(|e| e.with_retry_after(answer.retry_after_ms))
    }

    /// `POST /v1/reader_pairings`: a pairing credential for `reader_id`.
    pub async fn reader_pairing(
        &self,
        token: &str,
        reader_id: &str,
    ) -> Result<ReaderPairing, BackendError> {
        let json = serde_json::to_string(&ReaderPairingRequest {
            reader_id: reader_id.to_string(),
        })
        .map_err(|e| BackendError::NotSent(e.to_string()))?;
        let auth = format!("Bearer {token}");
        let headers = [
            ("Content-Type", "application/json"),
            ("Authorization", auth.as_str()),
        ];
        let answer = self
            .send(
                "POST",
                "/v1/reader_pairings",
                &headers,
                Some(&json),
                self.timeout_ms,
            )
            .await?;
        classify_pairing_answer(answer.status, &answer.text, reader_id)
            .map_err(|e| e.with_retry_after(answer.retry_after_ms))
    }

    /// `POST /v1/payments/{id}/capture` (or `/cancel` when `cancel`), empty body. `id` must
    /// be checked by the caller (`payment::check_payment_id`): it becomes a path segment.
    pub async fn capture_or_cancel(
        &self,
        token: &str,
        id: &str,
        cancel: bool,
    ) -> Result<PaymentOk, BackendError> {
        let auth = format!("Bearer {token}");
        let headers = [("Authorization", auth.as_str())];
        let action = if cancel { "cancel" } else { "capture" };
        let path = format!("/v1/payments/{id}/{action}");
        let answer = self
            .send("POST", &path, &headers, None, self.timeout_ms)
            .await?;
        classify_capture_answer(answer.status, &answer.text)
            .map_err(|e| e.with_retry_after(answer.retry_after_ms))
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
        timeout_ms: u32,
    ) -> Result<Answer, BackendError> {
        // Until `fetch` is called nothing has left the device: failures are `NotSent`.
        let not_sent = |e: wasm_bindgen::JsValue| BackendError::NotSent(describe_js(&e));
        let controller = AbortController::new().map_err(not_sent)?;
        let init = RequestInit::new();
        init.set_method(method);
        init.set_signal(Some(&controller.signal()));
        init.set_cache(web_sys::RequestCache::NoStore);
        // A redirect is never the backend's answer (a captive portal's, a proxy's).
        js::set(&init, "redirect", &"error".into());
        let h = Headers::new().map_err(not_sent)?;
        for (k, v) in headers {
            h.set(k, v).map_err(not_sent)?;
        }
        init.set_headers(&h);
        if let Some(b) = body {
            init.set_body(&b.into());
        }
        let url = format!("{}{}", self.base, path);
        let request = Request::new_with_str_and_init(&url, &init).map_err(not_sent)?;

        let abort = controller.clone();
        let _timer = Timeout::new(timeout_ms, move || abort.abort());
        let map_err = |e: wasm_bindgen::JsValue| match js_error_name(&e).as_deref() {
            Some("AbortError") => BackendError::Timeout(timeout_ms),
            _ => BackendError::Unreachable(describe_js(&e)),
        };
        let response: Response = JsFuture::from(js::fetch(&request)?)
            .await
            .map_err(map_err)?
            .unchecked_into();
        let status = response.status();
        let retry_after = response.headers().get("retry-after").ok().flatten();
        let too_long = || {
            BackendError::InvalidResponse(format!(
                "{status}: an answer longer than {MAX_ANSWER_CHARS} characters is not read"
            ))
        };
        // Every answer of the backend API is a small JSON object: a larger one is not read.
        // One that says its length is read whole (or not at all); one that does not (a
        // chunked answer) is read until it passes the limit, then cancelled.
        let cap = MAX_ANSWER_CHARS * 4;
        let declared = response
            .headers()
            .get("content-length")
            .ok()
            .flatten()
            .and_then(|n| n.trim().parse::<u64>().ok());
        let text = match declared {
            Some(n) if n > cap as u64 => None,
            Some(_) => {
                let text_promise = response.text().map_err(map_err)?;
                let text: js_sys::JsString = JsFuture::from(text_promise)
                    .await
                    .map_err(map_err)?
                    .unchecked_into();
                text.as_string()
            }
            None => read_capped(&response, cap)
                .await
                .map_err(map_err)?
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        };
        let Some(text) = text.filter(|t| t.chars().count() <= MAX_ANSWER_CHARS) else {
            controller.abort();
            return Err(too_long());
        };
        Ok(Answer {
            status,
            text,
            retry_after_ms: retry_after_ms(retry_after.as_deref()),
        })
    }
}

/// The body of `response`, read chunk by chunk until it ends (`Some`) or passes `cap` bytes
/// (`None`; the rest is cancelled, never buffered).
async fn read_capped(
    response: &Response,
    cap: usize,
) -> Result<Option<Vec<u8>>, wasm_bindgen::JsValue> {
    let body = js::get(response, "body");
    if body.is_null() || body.is_undefined() {
        return Ok(Some(Vec::new()));
    }
    let not_a_stream = |_| wasm_bindgen::JsValue::from_str("the answer's body is not a stream");
    let reader = js::get(&body, "getReader")
        .dyn_into::<js_sys::Function>()
        .map_err(not_a_stream)?
        .call0(&body)?;
    let read = js::get(&reader, "read")
        .dyn_into::<js_sys::Function>()
        .map_err(not_a_stream)?;
    let mut out = Vec::new();
    loop {
        let next = read
            .call0(&reader)?
            .dyn_into::<js_sys::Promise>()
            .map_err(not_a_stream)?;
        let chunk = JsFuture::from(next).await?;
        if js::get(&chunk, "done").as_bool() == Some(true) {
            return Ok(Some(out));
        }
        let value = js::get(&chunk, "value")
            .dyn_into::<js_sys::Uint8Array>()
            .map_err(not_a_stream)?;
        let start = out.len();
        let len = value.length() as usize;
        if start + len > cap {
            if let Ok(cancel) = js::get(&reader, "cancel").dyn_into::<js_sys::Function>() {
                let _ = cancel.call0(&reader);
            }
            return Ok(None);
        }
        out.resize(start + len, 0);
        value.copy_to(&mut out[start..]);
    }
}
