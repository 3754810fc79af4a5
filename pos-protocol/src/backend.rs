//! Bodies of the backend API the SDK calls (`/v1/health`, `/v1/connection_tokens`,
//! `/v1/reader_pairings`, `/v1/payments`, `/v1/payments/{id}/capture` and `/cancel`). A
//! merchant server implements the same shapes.

use serde::{Deserialize, Serialize};

use crate::{CardSummary, SortedMap};

/// Header carrying the payment id; the backend deduplicates on it permanently.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// `POST /v1/connection_tokens` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionToken {
    pub secret: String,
}

/// `POST /v1/reader_pairings` body (authorised by a connection token): a credential for
/// one reader, which the POS sends in its `hello`. It pairs with that reader only and
/// authorises nothing on the backend, so a reader never sees the connection token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderPairingRequest {
    pub reader_id: String,
}

/// `POST /v1/reader_pairings` answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderPairing {
    pub reader_id: String,
    pub secret: String,
    /// Milliseconds since the Unix epoch after which the reader refuses it.
    pub expires_at: u64,
}

impl std::fmt::Debug for ReaderPairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, not even in a debug dump.
        f.debug_struct("ReaderPairing")
            .field("reader_id", &self.reader_id)
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Error codes of the backend API (`ErrorBody.error.code`) that the SDK and readers act on.
pub mod codes {
    pub const CARD_DECLINED: &str = "card_declined";
    pub const IDEMPOTENCY_KEY_REUSED: &str = "idempotency_key_reused";
    pub const INVALID_REQUEST: &str = "invalid_request";
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// The card payload was sealed for another payment id, amount or currency (400).
    pub const CARD_PAYLOAD_MISMATCH: &str = "card_payload_mismatch";
    /// The card payload was already charged under another idempotency key (409).
    pub const CARD_PAYLOAD_REUSED: &str = "card_payload_reused";
    /// No payment with this id (404, capture and cancel).
    pub const PAYMENT_NOT_FOUND: &str = "payment_not_found";
    /// Capture of a canceled payment, cancel of a captured one, capture of an automatic
    /// one that already succeeded is not an error (it answers its state) (409).
    pub const PAYMENT_UNEXPECTED_STATE: &str = "payment_unexpected_state";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureMethod {
    Automatic,
    Manual,
}

crate::wire_names!(CaptureMethod {
    Automatic => "automatic",
    Manual => "manual",
});

/// Set when the payment was collected offline and forwarded later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineInfo {
    /// Milliseconds since the Unix epoch.
    pub stored_at: u64,
}

/// `POST /v1/payments` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    pub id: String,
    pub amount: u64,
    pub currency: String,
    pub capture_method: CaptureMethod,
    pub card_payload: String,
    pub card: CardSummary,
    pub reader_id: String,
    pub offline: Option<OfflineInfo>,
    #[serde(default)]
    pub metadata: SortedMap<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Succeeded,
    RequiresCapture,
    /// Voided by `POST /v1/payments/{id}/cancel` before capture.
    Canceled,
}

crate::wire_names!(PaymentStatus {
    Succeeded => "succeeded",
    RequiresCapture => "requires_capture",
    Canceled => "canceled",
});

/// `200` answer of `POST /v1/payments`, and of `POST /v1/payments/{id}/capture` and
/// `/cancel` (both idempotent: a second call answers the same state). Capture and cancel take
/// an empty body and the connection token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentOk {
    pub payment_intent: String,
    pub status: PaymentStatus,
}

/// Body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// `card_declined` (402), `idempotency_key_reused` (409), `invalid_request` (400),
    /// `unauthorized` (401), `internal` (5xx).
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_body_uses_snake_case_wire_names() {
        let body = PaymentBody {
            id: "pay_1".into(),
            amount: 1234,
            currency: "usd".into(),
            capture_method: CaptureMethod::Automatic,
            card_payload: "ct".into(),
            card: CardSummary {
                brand: "visa".into(),
                last4: "4242".into(),
                exp_month: 1,
                exp_year: 2030,
                entry_mode: Some(crate::EntryMode::Chip),
                pin_verified: true,
            },
            reader_id: "rdr_1".into(),
            offline: Some(OfflineInfo { stored_at: 5 }),
            metadata: SortedMap::new(),
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["capture_method"], "automatic");
        assert_eq!(json["offline"]["stored_at"], 5);
        assert_eq!(json["card"]["entry_mode"], "chip");
        let back: PaymentBody = serde_json::from_value(json).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn a_pairing_never_prints_its_secret() {
        let pairing = ReaderPairing {
            reader_id: "rdr_1".into(),
            secret: "rpair_s3cr3t".into(),
            expires_at: 1,
        };
        let printed = format!("{pairing:?}");
        assert!(printed.contains("rdr_1") && !printed.contains("s3cr3t"));
    }

    #[test]
    fn decline_error_parses() {
        let e: ErrorBody = serde_json::from_str(
            r#"{"error":{"code":"card_declined","decline_code":"insufficient_funds"}}"#,
        )
        .unwrap();
        assert_eq!(e.error.decline_code.as_deref(), Some("insufficient_funds"));
    }
}
