//! The typed errors of each area: readers (with the protocol's error code), the backend
//! (with the HTTP class), storage (with the DOMException's name).

use pos_protocol::reader::ReaderErrorCode;

/// Failures talking to a reader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReaderError {
    #[error("no reader is connected")]
    NotConnected,
    #[error("a reader is already connected; disconnect it first")]
    AlreadyConnected,
    #[error("could not connect to the reader: {0}")]
    ConnectionFailed(String),
    #[error("the reader sent something this SDK does not accept: {0}")]
    Protocol(String),
    /// The reader answered with an error of the reader protocol.
    #[error("the reader reported `{}`: {}", code.as_str(), super::clip(message))]
    Reported {
        code: ReaderErrorCode,
        message: String,
    },
    #[error("the reader disconnected")]
    Disconnected,
    #[error("the reader did not answer in time")]
    Timeout,
    /// Another POS holds the reader; connect with `takeOver: true` to take it.
    #[error("the reader is in use by another POS; pass takeOver: true to take it over")]
    Busy,
    /// Another POS took the reader over; this session ended.
    #[error("another POS took this reader over")]
    TakenOver,
    /// The USB reader was unplugged (or its device went away).
    #[error("the USB reader was unplugged")]
    Unplugged,
    /// This browser has no WebUSB (Firefox, Safari), or the page is not a secure context.
    #[error("WebUSB is not available in this browser: {0}")]
    UsbUnavailable(String),
    /// The user chose no device, or `requestDevice` ran outside a user gesture.
    #[error("no permission to use a USB reader: {0}")]
    UsbPermissionDenied(String),
    /// The browser refuses to claim the interface (a protected class: `SecurityError`).
    #[error("the browser refuses access to the reader's USB interface: {0}")]
    UsbInterfaceProtected(String),
    /// The reader refused the pairing credential, also a fresh one from the backend.
    #[error("the reader refused this POS's pairing: {0}")]
    PairingRefused(String),
}

/// The class of an HTTP status the backend answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpClass {
    /// 4xx other than those with a meaning of their own (401/403, 402, 409, 429).
    Client,
    /// 429: slow down; the request may be sent again.
    TooManyRequests,
    /// 5xx: the request may be sent again.
    Server,
    /// Anything else (1xx, 3xx): unexpected.
    Other,
}

impl HttpClass {
    pub fn of(status: u16) -> Self {
        match status {
            429 => Self::TooManyRequests,
            400..=499 => Self::Client,
            500..=599 => Self::Server,
            _ => Self::Other,
        }
    }
}

/// Failures talking to the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The request could not be sent or no answer came back (network error, reset, CORS).
    #[error("the backend could not be reached: {0}")]
    Unreachable(String),
    /// This browser refused to build or send the request: nothing left the device.
    #[error("the request could not be sent from this browser: {0}")]
    NotSent(String),
    #[error("the backend did not answer within {0} ms")]
    Timeout(u32),
    #[error("the backend answered {status}: {message}")]
    Status {
        status: u16,
        class: HttpClass,
        message: String,
        /// `Retry-After` of a 429 or 503, in ms.
        retry_after_ms: Option<u64>,
    },
    #[error("the backend sent an answer this SDK cannot read: {0}")]
    InvalidResponse(String),
    #[error("the backend refused the credentials: {0}")]
    Unauthorized(String),
    #[error("the payment id was already used for a different payment")]
    IdempotencyConflict,
    /// Capture or cancel: the backend has no payment with this id.
    #[error("the backend has no payment with this id: {0}")]
    PaymentNotFound(String),
    /// Capture of a canceled payment, cancel of a captured one.
    #[error("the payment is not in a state that allows this: {0}")]
    PaymentUnexpectedState(String),
}

impl BackendError {
    pub fn status(status: u16, message: String) -> Self {
        Self::Status {
            status,
            class: HttpClass::of(status),
            message,
            retry_after_ms: None,
        }
    }

    /// The same error, with the answer's `Retry-After` if it is a status that may carry one.
    pub fn with_retry_after(self, ms: Option<u64>) -> Self {
        match self {
            Self::Status {
                status,
                class,
                message,
                ..
            } if matches!(class, HttpClass::TooManyRequests | HttpClass::Server) => Self::Status {
                status,
                class,
                message,
                retry_after_ms: ms,
            },
            other => other,
        }
    }

    /// How long the backend asked to wait before the next try, if it did.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Self::Status { retry_after_ms, .. } => *retry_after_ms,
            _ => None,
        }
    }

    /// True when the backend may not have processed the request, so sending it again with
    /// the same idempotency key is the right move (and an offline fallback is safe).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable(_)
            | Self::NotSent(_)
            | Self::Timeout(_)
            | Self::InvalidResponse(_) => true,
            Self::Status { class, .. } => {
                matches!(class, HttpClass::Server | HttpClass::TooManyRequests)
            }
            Self::Unauthorized(_)
            | Self::IdempotencyConflict
            | Self::PaymentNotFound(_)
            | Self::PaymentUnexpectedState(_) => false,
        }
    }

    /// True when the request may have reached the backend (so its outcome is unknown when
    /// no answer was read).
    pub fn may_have_arrived(&self) -> bool {
        !matches!(self, Self::NotSent(_))
    }

    /// No answer at all: the backend looks down from here.
    pub fn is_no_answer(&self) -> bool {
        matches!(
            self,
            Self::Unreachable(_) | Self::Timeout(_) | Self::NotSent(_)
        )
    }
}

/// The `name` of a DOMException that IndexedDB reported, as far as the SDK tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomErrorName {
    QuotaExceeded,
    Version,
    Constraint,
    Abort,
    InvalidState,
    TransactionInactive,
    NotFound,
    Data,
    Unknown,
    /// A name this SDK does not single out.
    Other,
}

impl DomErrorName {
    /// From a DOMException's `name` (its stable identifier; never from the message).
    pub fn from_name(name: &str) -> Self {
        match name {
            "QuotaExceededError" => Self::QuotaExceeded,
            "VersionError" => Self::Version,
            "ConstraintError" => Self::Constraint,
            "AbortError" => Self::Abort,
            "InvalidStateError" => Self::InvalidState,
            "TransactionInactiveError" => Self::TransactionInactive,
            "NotFoundError" => Self::NotFound,
            "DataError" => Self::Data,
            "UnknownError" => Self::Unknown,
            _ => Self::Other,
        }
    }
}

/// Failures of IndexedDB.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("IndexedDB is not available: {0}")]
    Unavailable(String),
    #[error("IndexedDB failed: {message}")]
    Dom { name: DomErrorName, message: String },
    /// The stored data is not as this SDK left it (for example half a key pair).
    #[error("the stored data is inconsistent: {0}")]
    Inconsistent(String),
    /// Another connection (say an older tab) keeps the database at an older version, so it
    /// cannot be upgraded until that connection closes.
    #[error("the database upgrade is blocked: {0}")]
    Blocked(String),
}

impl StorageError {
    pub fn name(&self) -> Option<DomErrorName> {
        match self {
            Self::Dom { name, .. } => Some(*name),
            _ => None,
        }
    }
}
