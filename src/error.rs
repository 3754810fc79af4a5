//! Every failure the SDK reports, each with a stable snake_case code. Converted to a JS
//! `Error` (with `.code`, and `.declineCode` for declines) once, at the JS edge.

use wasm_bindgen::JsValue;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PosError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidAmount(String),
    #[error("{0}")]
    InvalidCurrency(String),
    #[error("{0}")]
    InvalidMetadata(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("no reader is connected")]
    ReaderNotConnected,
    #[error("a reader is already connected; disconnect it first")]
    ReaderAlreadyConnected,
    #[error("could not connect to the reader: {0}")]
    ReaderConnectionFailed(String),
    #[error("the reader sent something this SDK does not accept: {0}")]
    ReaderProtocol(String),
    #[error("the reader reported `{code}`: {message}")]
    Reader { code: String, message: String },
    #[error("the reader disconnected")]
    ReaderDisconnected,
    #[error("the reader did not answer in time")]
    ReaderTimeout,
    #[error("a payment method is already being collected")]
    CollectInProgress,
    #[error("collecting the payment method was canceled")]
    CollectCanceled,
    #[error("no payment method is being collected")]
    NoCollectInProgress,
    #[error("this payment was not collected by this terminal, or was already processed")]
    PaymentNotCollected,
    #[error("the backend could not be reached: {0}")]
    BackendUnreachable(String),
    #[error("the backend did not answer within {0} ms")]
    BackendTimeout(u32),
    #[error("the backend answered {status}: {message}")]
    Backend { status: u16, message: String },
    #[error("the backend sent an answer this SDK cannot read: {0}")]
    InvalidBackendResponse(String),
    #[error("the backend refused the credentials: {0}")]
    Unauthorized(String),
    #[error("the backend may have received this payment ({0}); retry processPayment with the same collected payment, it cannot be charged twice")]
    OutcomeUnknown(String),
    #[error("the payment id was already used for a different payment")]
    IdempotencyConflict,
    #[error("fetchConnectionToken failed: {0}")]
    ConnectionToken(String),
    #[error("your card was declined ({decline_code})")]
    CardDeclined { decline_code: String },
    #[error("offline payments are disabled for this terminal")]
    OfflineDisabled,
    #[error("{0}")]
    OfflineLimitExceeded(String),
    #[error("IndexedDB is not available: {0}")]
    StorageUnavailable(String),
    #[error("the storage quota is exhausted: {0}")]
    StorageQuotaExceeded(String),
    #[error("IndexedDB failed: {0}")]
    Storage(String),
    #[error("the stored data was written by a newer version (schema {0})")]
    UnknownSchemaVersion(u32),
    #[error("a stored record failed authentication and was quarantined")]
    RecordTampered,
    #[error("WebCrypto is not available: {0}")]
    CryptoUnavailable(String),
    #[error("encryption failed: {0}")]
    Crypto(String),
    #[error("the terminal is closed")]
    TerminalClosed,
    #[error("internal error: {0}")]
    Internal(String),
}

impl PosError {
    /// The stable code JS sees as `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => "invalid_argument",
            Self::InvalidAmount(_) => "invalid_amount",
            Self::InvalidCurrency(_) => "invalid_currency",
            Self::InvalidMetadata(_) => "invalid_metadata",
            Self::Unsupported(_) => "unsupported",
            Self::ReaderNotConnected => "reader_not_connected",
            Self::ReaderAlreadyConnected => "reader_already_connected",
            Self::ReaderConnectionFailed(_) => "reader_connection_failed",
            Self::ReaderProtocol(_) => "reader_protocol_error",
            Self::Reader { .. } => "reader_error",
            Self::ReaderDisconnected => "reader_disconnected",
            Self::ReaderTimeout => "reader_timeout",
            Self::CollectInProgress => "collect_in_progress",
            Self::CollectCanceled => "collect_canceled",
            Self::NoCollectInProgress => "no_collect_in_progress",
            Self::PaymentNotCollected => "payment_not_collected",
            Self::BackendUnreachable(_) => "backend_unreachable",
            Self::BackendTimeout(_) => "backend_timeout",
            Self::Backend { .. } => "backend_error",
            Self::InvalidBackendResponse(_) => "backend_invalid_response",
            Self::Unauthorized(_) => "unauthorized",
            Self::OutcomeUnknown(_) => "payment_outcome_unknown",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::ConnectionToken(_) => "connection_token_failed",
            Self::CardDeclined { .. } => "card_declined",
            Self::OfflineDisabled => "offline_disabled",
            Self::OfflineLimitExceeded(_) => "offline_limit_exceeded",
            Self::StorageUnavailable(_) => "storage_unavailable",
            Self::StorageQuotaExceeded(_) => "storage_quota_exceeded",
            Self::Storage(_) => "storage_failed",
            Self::UnknownSchemaVersion(_) => "unknown_schema_version",
            Self::RecordTampered => "record_tampered",
            Self::CryptoUnavailable(_) => "crypto_unavailable",
            Self::Crypto(_) => "crypto_failed",
            Self::TerminalClosed => "terminal_closed",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The issuer's decline code, for declines.
    pub fn decline_code(&self) -> Option<&str> {
        match self {
            Self::CardDeclined { decline_code } => Some(decline_code),
            _ => None,
        }
    }

    /// True when the backend may not have seen the request, so a later retry with the same
    /// idempotency key is the right move (and an offline fallback is safe).
    pub fn is_retryable_transport(&self) -> bool {
        match self {
            Self::BackendUnreachable(_)
            | Self::BackendTimeout(_)
            | Self::InvalidBackendResponse(_) => true,
            Self::Backend { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// A JS `Error` with `.code` (and `.declineCode`).
    pub fn to_js(&self) -> JsValue {
        let err = js_sys::Error::new(&self.to_string());
        err.set_name("PosTerminalError");
        let obj: &js_sys::Object = err.as_ref();
        // Setting a plain data property on a fresh Error cannot fail.
        let _ = js_sys::Reflect::set(obj, &"code".into(), &self.code().into());
        if let Some(dc) = self.decline_code() {
            let _ = js_sys::Reflect::set(obj, &"declineCode".into(), &dc.into());
        }
        err.into()
    }
}

impl From<PosError> for JsValue {
    fn from(e: PosError) -> JsValue {
        e.to_js()
    }
}

/// Readable text for a JS exception or rejection value.
pub fn describe_js(value: &JsValue) -> String {
    use wasm_bindgen::JsCast;
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        return format!("{}: {}", String::from(e.name()), String::from(e.message()));
    }
    if let Some(s) = value.as_string() {
        return s;
    }
    if let Some(ex) = value.dyn_ref::<web_sys::DomException>() {
        return format!("{}: {}", ex.name(), ex.message());
    }
    format!("{value:?}")
}

/// The `name` of a DOMException or Error, if any (e.g. "QuotaExceededError").
pub fn js_error_name(value: &JsValue) -> Option<String> {
    use wasm_bindgen::JsCast;
    if let Some(ex) = value.dyn_ref::<web_sys::DomException>() {
        return Some(ex.name());
    }
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.name()))
}

pub type Result<T, E = PosError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_snake_case() {
        let samples = [
            PosError::InvalidAmount("x".into()),
            PosError::CardDeclined {
                decline_code: "generic_decline".into(),
            },
            PosError::BackendTimeout(100),
            PosError::OfflineLimitExceeded("x".into()),
            PosError::RecordTampered,
        ];
        for e in samples {
            let code = e.code();
            assert!(code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        assert_eq!(
            PosError::CardDeclined {
                decline_code: "x".into()
            }
            .decline_code(),
            Some("x")
        );
    }

    #[test]
    fn only_transport_failures_are_retryable() {
        assert!(PosError::BackendUnreachable("reset".into()).is_retryable_transport());
        assert!(PosError::BackendTimeout(1).is_retryable_transport());
        assert!(PosError::Backend {
            status: 503,
            message: String::new()
        }
        .is_retryable_transport());
        assert!(!PosError::Backend {
            status: 400,
            message: String::new()
        }
        .is_retryable_transport());
        assert!(!PosError::CardDeclined {
            decline_code: "x".into()
        }
        .is_retryable_transport());
    }
}
