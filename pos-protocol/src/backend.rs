//! Bodies of the backend API the SDK calls (`/v1/health`, `/v1/connection_tokens`,
//! `/v1/payments`). A merchant server implements the same shapes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::CardSummary;

/// Header carrying the payment id; the backend deduplicates on it permanently.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// `POST /v1/connection_tokens` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionToken {
    pub secret: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMethod {
    Automatic,
    Manual,
}

impl CaptureMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Automatic => "automatic",
            Self::Manual => "manual",
        }
    }
}

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
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Succeeded,
    RequiresCapture,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::RequiresCapture => "requires_capture",
        }
    }
}

/// `200` answer of `POST /v1/payments`.
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
            },
            reader_id: "rdr_1".into(),
            offline: Some(OfflineInfo { stored_at: 5 }),
            metadata: BTreeMap::new(),
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["capture_method"], "automatic");
        assert_eq!(json["offline"]["stored_at"], 5);
        let back: PaymentBody = serde_json::from_value(json).unwrap();
        assert_eq!(back, body);
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
