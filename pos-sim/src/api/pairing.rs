//! `POST /v1/reader_pairings`: a credential that pairs a POS with one reader, issued to a
//! holder of a connection token. It authorises nothing on the backend, so a reader never
//! holds a credential that could charge a card.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use pos_protocol::backend::{ReaderPairing, ReaderPairingRequest};
use rand::RngCore;

use super::{check_auth, ApiState, MAX_ID_CHARS};
use crate::http_util::{error, json};
use crate::util::now_ms;

/// Prefix of every pairing secret.
pub const PAIRING_PREFIX: &str = "rpair_";
/// How long a pairing stays valid.
pub const PAIRING_TTL_MS: u64 = 24 * 60 * 60 * 1000;
/// A pairing request is one short id.
const MAX_PAIRING_BODY_BYTES: usize = 4 * 1024;

/// pos-sim's readers are `rdr_` ids (the API does not hold the reader list, so any id of
/// that form is accepted; a reader still accepts only a pairing issued for its own id).
pub fn is_reader_id(id: &str) -> bool {
    id.len() <= MAX_ID_CHARS
        && id.strip_prefix("rdr_").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// `rpair_` + 32 random bytes in lowercase hex.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{PAIRING_PREFIX}{hex}")
}

pub async fn reader_pairings(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match axum::body::to_bytes(body, MAX_PAIRING_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "request body unreadable or larger than 4 KiB",
            )
        }
    };
    // SQLite blocks: off the async workers.
    let answer = tokio::task::spawn_blocking(move || issue(&state, &headers, &bytes)).await;
    match answer {
        Ok(response) => response,
        Err(e) => {
            eprintln!("[pos-sim] api: pairing handler failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "handler failed",
            )
        }
    }
}

fn issue(state: &ApiState, headers: &HeaderMap, bytes: &[u8]) -> Response {
    if let Err(refusal) = check_auth(state, headers) {
        return error(refusal.status, refusal.code, &refusal.message);
    }
    let request: ReaderPairingRequest = match serde_json::from_slice(bytes) {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("malformed pairing body: {e}"),
            )
        }
    };
    if !is_reader_id(&request.reader_id) {
        return error(
            StatusCode::NOT_FOUND,
            "reader_not_found",
            "no reader with this id (pos-sim reader ids are rdr_ followed by [A-Za-z0-9_-])",
        );
    }
    let secret = new_secret();
    let now = now_ms();
    let expires_at = now.saturating_add(PAIRING_TTL_MS);
    match state
        .store
        .insert_pairing(&request.reader_id, &secret, now, expires_at)
    {
        Ok(()) => json(
            StatusCode::OK,
            &ReaderPairing {
                reader_id: request.reader_id,
                secret,
                expires_at,
            },
        ),
        Err(e) => {
            eprintln!("[pos-sim] api: storing a pairing failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "storage failed",
            )
        }
    }
}
