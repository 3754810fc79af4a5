//! `POST /v1/payments/{id}/capture` and `/cancel`: complete or void a payment approved with
//! `capture_method: "manual"` (online, or forwarded after being stored offline). Both are
//! idempotent by nature: a repeat answers the state the payment is in.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use pos_protocol::backend::{codes, PaymentOk};

use super::{check_auth, ApiState};
use crate::http_util::{error, json};
use crate::store::Transition;

pub async fn capture(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    transition(state, id, headers, true).await
}

pub async fn cancel(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    transition(state, id, headers, false).await
}

/// The request body is ignored (send none).
async fn transition(state: ApiState, id: String, headers: HeaderMap, capture: bool) -> Response {
    // SQLite blocks: off the async workers.
    let answer = tokio::task::spawn_blocking(move || apply(&state, &id, &headers, capture)).await;
    match answer {
        Ok(response) => response,
        Err(e) => {
            eprintln!("[pos-sim] api: capture handler failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "handler failed",
            )
        }
    }
}

fn apply(state: &ApiState, id: &str, headers: &HeaderMap, capture: bool) -> Response {
    if let Err(refusal) = check_auth(state, headers) {
        return error(refusal.status, refusal.code, &refusal.message);
    }
    match state.store.capture_or_cancel(id, capture) {
        Ok(Transition::Done {
            payment_intent,
            status,
        }) => json(
            StatusCode::OK,
            &PaymentOk {
                payment_intent,
                status,
            },
        ),
        Ok(Transition::NotFound) => error(
            StatusCode::NOT_FOUND,
            codes::PAYMENT_NOT_FOUND,
            "no payment with this id",
        ),
        Ok(Transition::Unexpected { state }) => {
            let action = if capture { "captured" } else { "canceled" };
            error(
                StatusCode::CONFLICT,
                codes::PAYMENT_UNEXPECTED_STATE,
                &format!("a payment in state {state} cannot be {action}"),
            )
        }
        Err(e) => {
            eprintln!("[pos-sim] api: capture storage failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "storage failed",
            )
        }
    }
}
