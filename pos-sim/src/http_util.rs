//! JSON responses shared by the API and admin routers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pos_protocol::backend::{ApiError, ErrorBody};
use serde::Serialize;

/// A response with a JSON text body.
pub fn json_text(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A response with `value` serialized as JSON.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => json_text(status, body),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "response could not be serialized",
        ),
    }
}

/// The JSON text of an [`ErrorBody`].
pub fn error_body(code: &str, message: &str, decline_code: Option<&str>) -> String {
    let body = ErrorBody {
        error: ApiError {
            code: code.to_owned(),
            message: message.to_owned(),
            decline_code: decline_code.map(str::to_owned),
        },
    };
    serde_json::to_string(&body)
        .unwrap_or_else(|_| String::from(r#"{"error":{"code":"internal"}}"#))
}

/// An error response with an [`ErrorBody`].
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_text(status, error_body(code, message, None))
}
