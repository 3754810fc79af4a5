//! One stderr line per HTTP request: port label, method, path, status, duration and the
//! idempotency key when present. Never headers or bodies (tokens, card payloads).

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use pos_protocol::backend::IDEMPOTENCY_HEADER;

/// Middleware; the state is the label printed first (`pos` or `api`).
pub async fn log_requests(
    State(label): State<&'static str>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let key = request
        .headers()
        .get(IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|k| k.chars().take(80).collect::<String>());
    let response = next.run(request).await;
    let ms = started.elapsed().as_millis();
    let status = response.status().as_u16();
    match key {
        Some(key) => {
            eprintln!("[pos-sim] {label} {method} {path} {status} {ms}ms idempotency_key={key}")
        }
        None => eprintln!("[pos-sim] {label} {method} {path} {status} {ms}ms"),
    }
    response
}
