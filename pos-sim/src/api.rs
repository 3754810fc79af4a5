//! The backend API on its own port: `/v1/health`, `/v1/connection_tokens`,
//! `/v1/reader_pairings`, `/v1/payments`, `/v1/payments/{id}/capture` and `/cancel`.
//! See `docs/backend-api.md`.

mod capture;
mod pairing;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use pos_protocol::backend::{
    codes, CaptureMethod, ConnectionToken, ErrorBody, PaymentBody, PaymentOk, PaymentStatus,
    IDEMPOTENCY_HEADER,
};
use pos_protocol::outcomes::{self, Outcome};
use pos_protocol::reader::ForwardResult;
use tower_http::cors::{Any, CorsLayer};

use crate::card_crypto::{self, CardBinding, CardKey};
use crate::http_util::{error, error_body, json, json_text};
use crate::idempotency::fingerprint;
use crate::simulated_card;
use crate::store::{payload_hash, Idempotent, NewPayment, PaymentOutcome, Store, StoredAnswer};
use crate::util::{now_ms, random_alnum};

/// Largest request body the API reads: the SDK's largest body (50 metadata values of 500
/// characters, each up to 6 bytes once JSON-escaped, 150 KB) with room to spare.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
pub const MAX_AMOUNT: u64 = 99_999_999;
pub const MAX_METADATA_KEYS: usize = 50;
pub const MAX_ID_CHARS: usize = 64;
/// Prefix of every connection token this backend issues.
pub const TOKEN_PREFIX: &str = "pst_test_";

#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<Store>,
    pub card_key: CardKey,
}

/// The API router with CORS. Logging and network faults are layered on by the caller.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/connection_tokens", post(connection_tokens))
        .route("/v1/reader_pairings", post(pairing::reader_pairings))
        .route("/v1/payments", post(payments))
        .route("/v1/payments/{id}/capture", post(capture::capture))
        .route("/v1/payments/{id}/cancel", post(capture::cancel))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(cors())
        .with_state(state)
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
        ])
        // A merchant backend's 429/503 carry it; the SDK honours it.
        .expose_headers([header::RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(600))
}

async fn health() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "ok": true }))
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "method not allowed on this endpoint",
    )
}

async fn connection_tokens(State(state): State<ApiState>) -> Response {
    let secret = format!("{TOKEN_PREFIX}{}", random_alnum(32));
    let (store, stored) = (state.store.clone(), secret.clone());
    // SQLite blocks (fsync): off the async workers.
    let inserted = tokio::task::spawn_blocking(move || store.insert_token(&stored, now_ms())).await;
    match inserted {
        Ok(Ok(())) => json(StatusCode::OK, &ConnectionToken { secret }),
        Ok(Err(e)) => {
            eprintln!("[pos-sim] api: storing a token failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "storage failed",
            )
        }
        Err(e) => {
            eprintln!("[pos-sim] api: storing a token failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "storage failed",
            )
        }
    }
}

async fn payments(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "request body unreadable or larger than 256 KiB",
            )
        }
    };
    // SQLite blocks (fsync, the connection's mutex): off the async workers.
    let answer = tokio::task::spawn_blocking(move || handle_payment(&state, &headers, &bytes))
        .await
        .unwrap_or_else(|e| {
            eprintln!("[pos-sim] api: payment handler failed: {e}");
            Refusal {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "internal",
                message: String::from("handler failed"),
            }
            .into_answer()
        });
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_text(status, answer.body)
}

/// A refusal before the idempotency store is consulted; nothing is stored for it.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: codes::INVALID_REQUEST,
            message: message.into(),
        }
    }

    fn into_answer(self) -> StoredAnswer {
        StoredAnswer {
            status: self.status.as_u16(),
            body: error_body(self.code, &self.message, None),
        }
    }
}

/// `POST /v1/payments`, after the body was read.
pub fn handle_payment(state: &ApiState, headers: &HeaderMap, bytes: &[u8]) -> StoredAnswer {
    if let Err(refusal) = check_auth(state, headers) {
        return refusal.into_answer();
    }
    let (key, body) = match check_request(headers, bytes) {
        Ok(checked) => checked,
        Err(refusal) => return refusal.into_answer(),
    };
    process_payment(state, &key, &body)
}

/// A payment a pos-sim reader sends over its own link to the backend: the same checks,
/// idempotency (key = `body.id`), decision and record as `POST /v1/payments`, counted as a
/// request for that key in `/_sim/payments`. There is no HTTP authorisation: in the simulator
/// the reader's link is trusted (a real reader authenticates to its backend with its own
/// device credential, never the POS's connection token). Blocks on SQLite: call it from
/// `spawn_blocking` in async code.
///
/// `Rejected` covers `invalid_request`, `invalid_card_payload`, `card_payload_mismatch`,
/// `card_payload_reused` and `idempotency_key_reused`, all final; except code `internal`, a
/// storage failure, which the reader retries like a network error.
pub fn charge_from_reader(state: &ApiState, body: &PaymentBody) -> ForwardResult {
    if let Err(message) = validate(body) {
        return ForwardResult::Rejected {
            code: codes::INVALID_REQUEST.to_owned(),
            message: message.to_owned(),
        };
    }
    let answer = process_payment(state, &body.id, body);
    forward_result(&answer)
}

/// A stored HTTP answer as the [`ForwardResult`] a reader keeps.
fn forward_result(answer: &StoredAnswer) -> ForwardResult {
    if answer.status == StatusCode::OK.as_u16() {
        if let Ok(ok) = serde_json::from_str::<PaymentOk>(&answer.body) {
            return ForwardResult::Approved {
                payment_intent: ok.payment_intent,
                status: ok.status,
            };
        }
    }
    let Ok(ErrorBody { error }) = serde_json::from_str::<ErrorBody>(&answer.body) else {
        return ForwardResult::Rejected {
            code: String::from("internal"),
            message: String::from("unreadable answer"),
        };
    };
    match (error.code.as_str(), error.decline_code) {
        (codes::CARD_DECLINED, Some(decline_code)) => ForwardResult::Declined { decline_code },
        _ => ForwardResult::Rejected {
            code: error.code,
            message: error.message,
        },
    }
}

/// The idempotency rule and, for a new key, the decision. `key` equals `body.id`.
fn process_payment(state: &ApiState, key: &str, body: &PaymentBody) -> StoredAnswer {
    let fingerprint = fingerprint(body);
    // Crypto outside the store's lock; the result is used only for a new key.
    let card = open_card(&state.card_key, body);
    // Simulated payloads are the same text for every payment with that test card: not unique.
    let payload_hash = (!simulated_card::is_simulated(&body.card_payload))
        .then(|| payload_hash(&body.card_payload));
    let result = state
        .store
        .answer_once(key, &fingerprint, payload_hash.as_deref(), || {
            decide(card, body, now_ms())
        });
    match result {
        Ok(Idempotent::First(answer))
        | Ok(Idempotent::Replay(answer))
        | Ok(Idempotent::Refused(answer)) => answer,
        Ok(Idempotent::Conflict) => StoredAnswer {
            status: StatusCode::CONFLICT.as_u16(),
            body: error_body(
                codes::IDEMPOTENCY_KEY_REUSED,
                "This Idempotency-Key was already used with a different request body.",
                None,
            ),
        },
        Ok(Idempotent::PayloadReused) => StoredAnswer {
            status: StatusCode::CONFLICT.as_u16(),
            body: error_body(
                codes::CARD_PAYLOAD_REUSED,
                "This card payload was already charged for another payment; read the card again.",
                None,
            ),
        },
        Err(e) => {
            eprintln!("[pos-sim] api: payment storage failed: {e}");
            Refusal {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "internal",
                message: String::from("storage failed"),
            }
            .into_answer()
        }
    }
}

/// The bearer connection token must be one this backend issued.
fn check_auth(state: &ApiState, headers: &HeaderMap) -> Result<(), Refusal> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    let known = !token.is_empty() && state.store.token_exists(token).unwrap_or(false);
    if known {
        Ok(())
    } else {
        Err(Refusal {
            status: StatusCode::UNAUTHORIZED,
            code: codes::UNAUTHORIZED,
            message: String::from("missing or unknown connection token (Authorization: Bearer …)"),
        })
    }
}

/// Idempotency-Key and body checks, in that order.
fn check_request(headers: &HeaderMap, bytes: &[u8]) -> Result<(String, PaymentBody), Refusal> {
    let key = match headers.get(IDEMPOTENCY_HEADER).map(|v| v.to_str()) {
        None => return Err(Refusal::invalid("missing Idempotency-Key header")),
        Some(Err(_)) => return Err(Refusal::invalid("Idempotency-Key is not ASCII")),
        Some(Ok(key)) => key.to_owned(),
    };
    let body: PaymentBody = serde_json::from_slice(bytes)
        .map_err(|e| Refusal::invalid(format!("malformed payment body: {e}")))?;
    validate(&body).map_err(Refusal::invalid)?;
    if key != body.id {
        return Err(Refusal::invalid("Idempotency-Key must equal the body's id"));
    }
    Ok((key, body))
}

/// Field bounds of a payment body.
pub fn validate(body: &PaymentBody) -> Result<(), &'static str> {
    if body.id.is_empty()
        || body.id.len() > MAX_ID_CHARS
        || !body
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("id must be 1 to 64 characters of [A-Za-z0-9_-]");
    }
    if !(1..=MAX_AMOUNT).contains(&body.amount) {
        return Err("amount must be 1..=99999999 minor units");
    }
    if body.currency.len() != 3 || !body.currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err("currency must be a lowercase three-letter ISO code");
    }
    if body.metadata.len() > MAX_METADATA_KEYS {
        return Err("metadata may have at most 50 keys");
    }
    pos_protocol::reader::check_card_summary(&body.card)?;
    Ok(())
}

/// Why a card payload gives no card number.
enum CardRefusal {
    /// Sealed for another reader, payment id, amount or currency (or altered): refused,
    /// nothing stored, so a replayed payload cannot burn the real payment's key.
    Mismatch(String),
    /// Not a payload this backend accepts (malformed, unbound v1, simulated non-test card):
    /// stored as the key's `invalid_card_payload` answer.
    Invalid(String),
}

/// The card number in the body's payload: a v2 payload sealed by a pos-sim reader for this
/// body's reader, id, amount and currency, or (test mode only) an in-page simulated reader's
/// `simulated:v1:<published test card number>`.
fn open_card(card_key: &CardKey, body: &PaymentBody) -> Result<String, CardRefusal> {
    let payload = body.card_payload.as_str();
    if simulated_card::is_simulated(payload) {
        return simulated_card::open(payload)
            .map(str::to_owned)
            .map_err(|e| CardRefusal::Invalid(e.to_string()));
    }
    let binding = CardBinding {
        payment_id: body.id.clone(),
        amount: body.amount,
        currency: body.currency.clone(),
    };
    match card_crypto::decrypt(card_key, &body.reader_id, &binding, payload) {
        Ok(card) => Ok(card.number),
        Err(e) if e.is_mismatch() => Err(CardRefusal::Mismatch(e.to_string())),
        Err(e) => Err(CardRefusal::Invalid(e.to_string())),
    }
}

/// Decides a payment seen for the first time: apply the test-card rules to the opened card,
/// build the answer to store (`Err`: refuse without storing).
fn decide(
    card: Result<String, CardRefusal>,
    body: &PaymentBody,
    now: u64,
) -> Result<NewPayment, StoredAnswer> {
    let record = |outcome, decline_code: Option<&str>, payment_intent, status, answer| NewPayment {
        amount: body.amount,
        currency: body.currency.clone(),
        outcome,
        decline_code: decline_code.map(str::to_owned),
        payment_intent,
        offline: body.offline.is_some(),
        first_seen: now,
        answer: StoredAnswer {
            status,
            body: answer,
        },
    };
    let number = match card {
        Ok(number) => number,
        Err(CardRefusal::Mismatch(message)) => {
            return Err(StoredAnswer {
                status: StatusCode::BAD_REQUEST.as_u16(),
                body: error_body(codes::CARD_PAYLOAD_MISMATCH, &message, None),
            })
        }
        Err(CardRefusal::Invalid(message)) => {
            return Ok(record(
                PaymentOutcome::Failed,
                None,
                None,
                StatusCode::BAD_REQUEST.as_u16(),
                error_body("invalid_card_payload", &message, None),
            ))
        }
    };
    Ok(match outcomes::decide(&number, body.amount) {
        Outcome::Approved => {
            let (status, outcome) = match body.capture_method {
                CaptureMethod::Automatic => (PaymentStatus::Succeeded, PaymentOutcome::Succeeded),
                CaptureMethod::Manual => (
                    PaymentStatus::RequiresCapture,
                    PaymentOutcome::RequiresCapture,
                ),
            };
            let intent = format!("pi_sim_{}", random_alnum(24));
            let ok = PaymentOk {
                payment_intent: intent.clone(),
                status,
            };
            let answer = serde_json::to_string(&ok).unwrap_or_default();
            record(outcome, None, Some(intent), StatusCode::OK.as_u16(), answer)
        }
        Outcome::Declined(code) => record(
            PaymentOutcome::Declined,
            Some(code),
            None,
            StatusCode::PAYMENT_REQUIRED.as_u16(),
            error_body(codes::CARD_DECLINED, "Your card was declined.", Some(code)),
        ),
    })
}

#[cfg(test)]
mod tests;
