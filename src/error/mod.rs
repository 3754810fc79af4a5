//! Every failure the SDK reports. Each area has its own typed error (reader, backend,
//! storage: `area`); `PosError` gathers them and `code()` derives the stable snake_case
//! code once.
//! The JS `Error` is built from it at the JS edge (`facade`).

mod area;

pub use area::{BackendError, DomErrorName, HttpClass, ReaderError, StorageError};
use pos_protocol::reader::ReaderErrorCode;

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
    #[error(transparent)]
    Reader(#[from] ReaderError),
    #[error("a payment method is already being collected")]
    CollectInProgress,
    /// The reader is busy with another command of this terminal (one at a time).
    #[error("the reader is busy with another command; wait for it to finish")]
    CommandInProgress,
    #[error("collecting the payment method was canceled")]
    CollectCanceled,
    #[error("no payment method is being collected")]
    NoCollectInProgress,
    #[error("this payment was not collected by this terminal, or was already processed")]
    PaymentNotCollected,
    /// A second `processPayment` of a payment whose first one has not answered yet.
    #[error("processPayment is already running for this payment; wait for its answer")]
    PaymentInProgress,
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("the backend may have received this payment ({0}); retry processPayment with the same collected payment, it cannot be charged twice")]
    OutcomeUnknown(String),
    #[error("fetchConnectionToken failed: {0}")]
    ConnectionToken(String),
    #[error("your card was declined ({decline_code})")]
    CardDeclined { decline_code: String },
    #[error("offline payments are disabled for this terminal")]
    OfflineDisabled,
    #[error("{0}")]
    OfflineLimitExceeded(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the stored data was written by a newer version of this SDK (format {0} or later): run that version again, or use another databaseName")]
    UnknownSchemaVersion(u32),
    #[error("a stored record failed authentication and was quarantined")]
    RecordTampered,
    #[error("WebCrypto is not available: {0}")]
    CryptoUnavailable(String),
    #[error("encryption failed: {0}")]
    Crypto(String),
    #[error("the terminal is closed")]
    TerminalClosed,
    /// A bug in this SDK; never used for control flow.
    #[error("internal error: {0}")]
    Internal(String),
    /// A reader address that is not `wss://` and not on this device (loopback).
    #[error("{0}")]
    InsecureReaderUrl(String),
    /// Capture or cancel of a payment still stored offline by this SDK.
    #[error("payment {0} is still stored offline and not forwarded yet; capture or cancel it once it is forwarded (see onPaymentForwarded)")]
    PaymentNotForwarded(String),
    /// The payment would have to be stored offline (by the SDK or the reader) and the
    /// offline rules refuse its card (swiped, a brand that needs online authorisation, or an
    /// EEA location without chip and PIN). Nothing was stored.
    #[error("this payment cannot be stored offline: {0}")]
    OfflinePaymentMethodUnsupported(String),
}

/// The most characters of a message from a reader or the backend that an error repeats.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// `message` cut to `MAX_MESSAGE_CHARS` (a reader's or a backend's text is theirs to size:
/// a 3 MB message must not become every error's and every stored record's).
pub fn clip(message: &str) -> std::borrow::Cow<'_, str> {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => message.into(),
        Some((at, _)) => format!("{}…", &message[..at]).into(),
    }
}

/// Every code `PosError::code` can return, in the README's order.
pub const CODES: &[&str] = &[
    "invalid_argument",
    "invalid_amount",
    "invalid_currency",
    "invalid_metadata",
    "unsupported",
    "reader_not_connected",
    "reader_already_connected",
    "reader_connection_failed",
    "reader_protocol_error",
    "reader_error",
    "reader_disconnected",
    "reader_timeout",
    "reader_busy",
    "reader_taken_over",
    "reader_unplugged",
    "usb_unavailable",
    "usb_permission_denied",
    "usb_interface_protected",
    "command_in_progress",
    "collect_in_progress",
    "no_collect_in_progress",
    "collect_canceled",
    "payment_not_collected",
    "payment_in_progress",
    "card_declined",
    "backend_unreachable",
    "backend_timeout",
    "backend_error",
    "backend_invalid_response",
    "unauthorized",
    "connection_token_failed",
    "idempotency_conflict",
    "payment_outcome_unknown",
    "offline_disabled",
    "offline_limit_exceeded",
    "storage_unavailable",
    "storage_quota_exceeded",
    "storage_failed",
    "storage_blocked",
    "unknown_schema_version",
    "record_tampered",
    "crypto_unavailable",
    "crypto_failed",
    "terminal_closed",
    "internal_error",
    "insecure_reader_url",
    "reader_pairing_refused",
    "payment_not_found",
    "payment_unexpected_state",
    "payment_not_forwarded",
    "offline_payment_method_unsupported",
];

impl PosError {
    /// The stable code JS sees as `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => "invalid_argument",
            Self::InvalidAmount(_) => "invalid_amount",
            Self::InvalidCurrency(_) => "invalid_currency",
            Self::InvalidMetadata(_) => "invalid_metadata",
            Self::Unsupported(_) => "unsupported",
            Self::Reader(e) => match e {
                ReaderError::NotConnected => "reader_not_connected",
                ReaderError::AlreadyConnected => "reader_already_connected",
                ReaderError::ConnectionFailed(_) => "reader_connection_failed",
                ReaderError::Protocol(_) => "reader_protocol_error",
                ReaderError::Reported { .. } => "reader_error",
                ReaderError::Disconnected => "reader_disconnected",
                ReaderError::Timeout => "reader_timeout",
                ReaderError::Busy => "reader_busy",
                ReaderError::TakenOver => "reader_taken_over",
                ReaderError::Unplugged => "reader_unplugged",
                ReaderError::UsbUnavailable(_) => "usb_unavailable",
                ReaderError::UsbPermissionDenied(_) => "usb_permission_denied",
                ReaderError::UsbInterfaceProtected(_) => "usb_interface_protected",
                ReaderError::PairingRefused(_) => "reader_pairing_refused",
            },
            Self::CommandInProgress => "command_in_progress",
            Self::CollectInProgress => "collect_in_progress",
            Self::CollectCanceled => "collect_canceled",
            Self::NoCollectInProgress => "no_collect_in_progress",
            Self::PaymentNotCollected => "payment_not_collected",
            Self::PaymentInProgress => "payment_in_progress",
            Self::Backend(e) => match e {
                BackendError::Unreachable(_) | BackendError::NotSent(_) => "backend_unreachable",
                BackendError::Timeout(_) => "backend_timeout",
                BackendError::Status { .. } => "backend_error",
                BackendError::InvalidResponse(_) => "backend_invalid_response",
                BackendError::Unauthorized(_) => "unauthorized",
                BackendError::IdempotencyConflict => "idempotency_conflict",
                BackendError::PaymentNotFound(_) => "payment_not_found",
                BackendError::PaymentUnexpectedState(_) => "payment_unexpected_state",
            },
            Self::OutcomeUnknown(_) => "payment_outcome_unknown",
            Self::ConnectionToken(_) => "connection_token_failed",
            Self::CardDeclined { .. } => "card_declined",
            Self::OfflineDisabled => "offline_disabled",
            Self::OfflineLimitExceeded(_) => "offline_limit_exceeded",
            Self::Storage(e) => match e {
                StorageError::Unavailable(_) => "storage_unavailable",
                StorageError::Dom {
                    name: DomErrorName::QuotaExceeded,
                    ..
                } => "storage_quota_exceeded",
                StorageError::Dom {
                    name: DomErrorName::Version,
                    ..
                } => "unknown_schema_version",
                StorageError::Dom { .. } | StorageError::Inconsistent(_) => "storage_failed",
                StorageError::Blocked(_) => "storage_blocked",
            },
            Self::UnknownSchemaVersion(_) => "unknown_schema_version",
            Self::RecordTampered => "record_tampered",
            Self::CryptoUnavailable(_) => "crypto_unavailable",
            Self::Crypto(_) => "crypto_failed",
            Self::TerminalClosed => "terminal_closed",
            Self::Internal(_) => "internal_error",
            Self::InsecureReaderUrl(_) => "insecure_reader_url",
            Self::PaymentNotForwarded(_) => "payment_not_forwarded",
            Self::OfflinePaymentMethodUnsupported(_) => "offline_payment_method_unsupported",
        }
    }

    /// The issuer's decline code, for declines.
    pub fn decline_code(&self) -> Option<&str> {
        match self {
            Self::CardDeclined { decline_code } => Some(decline_code),
            _ => None,
        }
    }

    /// The backend error inside, if this is one.
    pub fn backend(&self) -> Option<&BackendError> {
        match self {
            Self::Backend(e) => Some(e),
            _ => None,
        }
    }

    /// The reader protocol's error code inside, if the reader reported one.
    pub fn reader_code(&self) -> Option<ReaderErrorCode> {
        match self {
            Self::Reader(ReaderError::Reported { code, .. }) => Some(*code),
            _ => None,
        }
    }
}

pub type Result<T, E = PosError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// One sample of every variant (and every sub-variant with its own code).
    pub(crate) fn samples() -> Vec<PosError> {
        let s = || "x".to_string();
        vec![
            PosError::InvalidArgument(s()),
            PosError::InvalidAmount(s()),
            PosError::InvalidCurrency(s()),
            PosError::InvalidMetadata(s()),
            PosError::Unsupported(s()),
            ReaderError::NotConnected.into(),
            ReaderError::AlreadyConnected.into(),
            ReaderError::ConnectionFailed(s()).into(),
            ReaderError::Protocol(s()).into(),
            ReaderError::Reported {
                code: ReaderErrorCode::Busy,
                message: s(),
            }
            .into(),
            ReaderError::Disconnected.into(),
            ReaderError::Timeout.into(),
            ReaderError::Busy.into(),
            ReaderError::TakenOver.into(),
            ReaderError::Unplugged.into(),
            ReaderError::UsbUnavailable(s()).into(),
            ReaderError::UsbPermissionDenied(s()).into(),
            ReaderError::UsbInterfaceProtected(s()).into(),
            PosError::CommandInProgress,
            PosError::CollectInProgress,
            PosError::NoCollectInProgress,
            PosError::CollectCanceled,
            PosError::PaymentNotCollected,
            PosError::PaymentInProgress,
            PosError::CardDeclined {
                decline_code: "generic_decline".into(),
            },
            BackendError::Unreachable(s()).into(),
            BackendError::NotSent(s()).into(),
            BackendError::Timeout(1).into(),
            BackendError::status(500, s()).into(),
            BackendError::InvalidResponse(s()).into(),
            BackendError::Unauthorized(s()).into(),
            PosError::ConnectionToken(s()),
            BackendError::IdempotencyConflict.into(),
            PosError::OutcomeUnknown(s()),
            PosError::OfflineDisabled,
            PosError::OfflineLimitExceeded(s()),
            StorageError::Unavailable(s()).into(),
            StorageError::Dom {
                name: DomErrorName::QuotaExceeded,
                message: s(),
            }
            .into(),
            StorageError::Dom {
                name: DomErrorName::Version,
                message: s(),
            }
            .into(),
            StorageError::Dom {
                name: DomErrorName::Abort,
                message: s(),
            }
            .into(),
            StorageError::Inconsistent(s()).into(),
            StorageError::Blocked(s()).into(),
            PosError::UnknownSchemaVersion(2),
            PosError::RecordTampered,
            PosError::CryptoUnavailable(s()),
            PosError::Crypto(s()),
            PosError::TerminalClosed,
            PosError::Internal(s()),
            PosError::InsecureReaderUrl(s()),
            ReaderError::PairingRefused(s()).into(),
            BackendError::PaymentNotFound(s()).into(),
            BackendError::PaymentUnexpectedState(s()).into(),
            PosError::PaymentNotForwarded(s()),
            PosError::OfflinePaymentMethodUnsupported(s()),
        ]
    }

    #[test]
    fn every_code_is_listed_and_every_listed_code_is_produced() {
        let produced: std::collections::BTreeSet<&str> =
            samples().iter().map(PosError::code).collect();
        for code in &produced {
            assert!(CODES.contains(code), "{code} missing from CODES");
            assert!(code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        for code in CODES {
            assert!(
                produced.contains(code),
                "{code} is listed but never produced"
            );
        }
    }

    #[test]
    fn the_readme_code_table_is_exact() {
        let readme = include_str!("../../README.md");
        let mut documented = std::collections::BTreeSet::new();
        for line in readme.lines().filter(|l| l.starts_with("| `")) {
            let first_cell = line.split('|').nth(1).unwrap_or_default();
            for part in first_cell.split('`').skip(1).step_by(2) {
                documented.insert(part.to_string());
            }
        }
        for code in CODES {
            assert!(
                documented.contains(*code),
                "README does not document {code}"
            );
        }
        for code in &documented {
            if code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                assert!(
                    CODES.contains(&code.as_str()),
                    "README documents {code}, which the SDK never produces"
                );
            }
        }
    }

    #[test]
    fn retryability_follows_the_http_class() {
        assert!(BackendError::Unreachable("reset".into()).is_retryable());
        assert!(BackendError::Timeout(1).is_retryable());
        assert!(BackendError::status(503, String::new()).is_retryable());
        assert!(BackendError::status(429, String::new()).is_retryable());
        assert!(!BackendError::status(400, String::new()).is_retryable());
        assert!(!BackendError::IdempotencyConflict.is_retryable());
        assert!(!BackendError::NotSent("no fetch".into()).may_have_arrived());
        assert!(BackendError::Timeout(1).may_have_arrived());
        assert_eq!(HttpClass::of(404), HttpClass::Client);
        assert_eq!(HttpClass::of(302), HttpClass::Other);
    }

    #[test]
    fn dom_names_map_to_their_codes() {
        let quota: PosError = StorageError::Dom {
            name: DomErrorName::from_name("QuotaExceededError"),
            message: String::new(),
        }
        .into();
        assert_eq!(quota.code(), "storage_quota_exceeded");
        assert_eq!(DomErrorName::from_name("SomethingNew"), DomErrorName::Other);
        assert_eq!(
            PosError::CardDeclined {
                decline_code: "x".into()
            }
            .decline_code(),
            Some("x")
        );
    }
}
