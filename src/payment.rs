//! The payment as this SDK keeps it: ids, offline behavior, the stored record's states, the
//! part of a stored record that is sealed, and the views of them the caller gets.

use std::collections::BTreeMap;

use pos_protocol::backend::{CaptureMethod, PaymentOk, PaymentStatus};
use pos_protocol::CardSummary;
use serde::{Deserialize, Serialize};

use crate::error::PosError;

/// Version of the stored record layout; bound into every record's associated data.
pub const SCHEMA_VERSION: u32 = 1;

/// A new payment id: `pay_` and 26 base32 characters (128 random bits). It is the
/// idempotency key from the first online attempt on.
pub fn new_payment_id() -> Result<String, PosError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| PosError::Crypto(e.to_string()))?;
    Ok(format!("pay_{}", base32(&bytes)))
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OfflineBehavior {
    #[default]
    PreferOnline,
    RequireOnline,
    ForceOffline,
}

/// What the caller asks `collectPaymentMethod` for; checked by `validate` before use.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentRequest {
    pub amount: f64,
    pub currency: String,
    #[serde(default)]
    pub offline_behavior: Option<OfflineBehavior>,
    #[serde(default)]
    pub capture_method: Option<CaptureMethod>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// A card read by the reader and not yet processed. The payload is ciphertext for the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    pub id: String,
    pub amount: u64,
    pub currency: String,
    pub capture_method: CaptureMethod,
    pub offline_behavior: OfflineBehavior,
    pub metadata: BTreeMap<String, String>,
    pub reader_id: String,
    pub card: CardSummary,
    pub card_payload: String,
}

/// States of a stored payment. Only `pending` and `forwarding` still need the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredState {
    Pending,
    Forwarding,
    Forwarded,
    Declined,
    Failed,
    Quarantined,
}

impl StoredState {
    pub const ALL: [StoredState; 6] = [
        Self::Pending,
        Self::Forwarding,
        Self::Forwarded,
        Self::Declined,
        Self::Failed,
        Self::Quarantined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Forwarding => "forwarding",
            Self::Forwarded => "forwarded",
            Self::Declined => "declined",
            Self::Failed => "failed",
            Self::Quarantined => "quarantined",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// Not yet answered by the backend: counts against offline limits, gets forwarded.
    pub fn is_outstanding(self) -> bool {
        matches!(self, Self::Pending | Self::Forwarding)
    }

    /// The transitions a record may make; everything else is refused.
    pub fn can_move_to(self, next: StoredState) -> bool {
        use StoredState::*;
        // Any record that fails authentication is quarantined, whatever its clear state says.
        if next == Quarantined {
            return self != Quarantined;
        }
        matches!(
            (self, next),
            (Pending, Forwarding)
                // `forwarding` found at start-up is a crashed try: it may be taken again.
                | (Forwarding, Forwarding)
                | (Forwarding, Pending)
                | (Forwarding, Forwarded)
                | (Forwarding, Declined)
                | (Forwarding, Failed)
        )
    }
}

/// The last error of a stored payment: a stable code and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

impl ErrorInfo {
    pub fn of(e: &PosError) -> Self {
        Self {
            code: e.code().to_string(),
            message: e.to_string(),
        }
    }
}

/// Everything about a stored payment except id, state and times: sealed with AES-256-GCM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBody {
    pub amount: u64,
    pub currency: String,
    pub capture_method: CaptureMethod,
    pub metadata: BTreeMap<String, String>,
    pub reader_id: String,
    pub card: CardSummary,
    /// The reader's ciphertext for the backend; dropped once the backend has answered.
    pub card_payload: Option<String>,
    pub attempts: u32,
    pub payment_intent_id: Option<String>,
    pub last_error: Option<ErrorInfo>,
    pub decline_code: Option<String>,
}

impl SealedBody {
    pub fn from_collected(c: &Collected) -> Self {
        Self {
            amount: c.amount,
            currency: c.currency.clone(),
            capture_method: c.capture_method,
            metadata: c.metadata.clone(),
            reader_id: c.reader_id.clone(),
            card: c.card.clone(),
            card_payload: Some(c.card_payload.clone()),
            attempts: 0,
            payment_intent_id: None,
            last_error: None,
            decline_code: None,
        }
    }
}

/// The clear part of a stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub id: String,
    pub version: u32,
    pub state: StoredState,
    pub stored_at: f64,
    pub updated_at: f64,
    pub next_attempt_at: f64,
}

/// One stored payment as read back: the clear header and the opened body, or why it could
/// not be opened.
#[derive(Debug, Clone)]
pub struct Entry {
    pub header: Header,
    pub body: Result<SealedBody, PosError>,
}

/// A card summary as the caller sees it (brand, last 4, expiry: for receipts).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CardView {
    pub brand: String,
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: u16,
}

impl From<&CardSummary> for CardView {
    fn from(c: &CardSummary) -> Self {
        Self {
            brand: c.brand.clone(),
            last4: c.last4.clone(),
            exp_month: c.exp_month,
            exp_year: c.exp_year,
        }
    }
}

impl CardView {
    fn unknown() -> Self {
        Self {
            brand: "unknown".into(),
            last4: "0000".into(),
            exp_month: 1,
            exp_year: 2000,
        }
    }
}

/// A collected payment as the caller sees it: everything but the card payload.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectedView {
    pub id: String,
    pub amount: u64,
    pub currency: String,
    pub capture_method: CaptureMethod,
    pub offline_behavior: OfflineBehavior,
    pub metadata: BTreeMap<String, String>,
    pub reader_id: String,
    pub card: CardView,
}

impl From<&Collected> for CollectedView {
    fn from(c: &Collected) -> Self {
        Self {
            id: c.id.clone(),
            amount: c.amount,
            currency: c.currency.clone(),
            capture_method: c.capture_method,
            offline_behavior: c.offline_behavior,
            metadata: c.metadata.clone(),
            reader_id: c.reader_id.clone(),
            card: (&c.card).into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    Succeeded,
    RequiresCapture,
    StoredOffline,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OfflineDetails {
    pub stored_at: f64,
    pub requires_upload: bool,
}

/// What `processPayment` resolves with.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentResult {
    pub id: String,
    pub status: ResultStatus,
    pub payment_intent_id: Option<String>,
    pub amount: u64,
    pub currency: String,
    pub card: CardView,
    pub offline_details: Option<OfflineDetails>,
}

impl PaymentResult {
    pub fn online(c: &Collected, ok: &PaymentOk) -> Self {
        Self {
            id: c.id.clone(),
            status: match ok.status {
                PaymentStatus::Succeeded => ResultStatus::Succeeded,
                PaymentStatus::RequiresCapture => ResultStatus::RequiresCapture,
            },
            payment_intent_id: Some(ok.payment_intent.clone()),
            amount: c.amount,
            currency: c.currency.clone(),
            card: (&c.card).into(),
            offline_details: None,
        }
    }

    pub fn stored(c: &Collected, header: &Header) -> Self {
        Self {
            id: c.id.clone(),
            status: ResultStatus::StoredOffline,
            payment_intent_id: None,
            amount: c.amount,
            currency: c.currency.clone(),
            card: (&c.card).into(),
            offline_details: Some(OfflineDetails {
                stored_at: header.stored_at,
                requires_upload: true,
            }),
        }
    }
}

/// A stored payment as the caller sees it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredPayment {
    pub id: String,
    pub state: StoredState,
    pub amount: u64,
    pub currency: String,
    pub stored_at: f64,
    pub attempts: u32,
    pub payment_intent_id: Option<String>,
    pub last_error: Option<ErrorInfo>,
    pub decline_code: Option<String>,
    pub card: CardView,
    pub metadata: BTreeMap<String, String>,
}

impl From<&Entry> for StoredPayment {
    fn from(e: &Entry) -> Self {
        let h = &e.header;
        match &e.body {
            Ok(b) => Self {
                id: h.id.clone(),
                state: h.state,
                amount: b.amount,
                currency: b.currency.clone(),
                stored_at: h.stored_at,
                attempts: b.attempts,
                payment_intent_id: b.payment_intent_id.clone(),
                last_error: b.last_error.clone(),
                decline_code: b.decline_code.clone(),
                card: (&b.card).into(),
                metadata: b.metadata.clone(),
            },
            // Unreadable: what is known in the clear, and why the rest is not.
            Err(err) => Self {
                id: h.id.clone(),
                state: h.state,
                amount: 0,
                currency: String::new(),
                stored_at: h.stored_at,
                attempts: 0,
                payment_intent_id: None,
                last_error: Some(ErrorInfo::of(err)),
                decline_code: None,
                card: CardView::unknown(),
                metadata: BTreeMap::new(),
            },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn collected(id: &str) -> Collected {
        let b = sealed_body();
        Collected {
            id: id.into(),
            amount: b.amount,
            currency: b.currency,
            capture_method: b.capture_method,
            offline_behavior: OfflineBehavior::PreferOnline,
            metadata: b.metadata,
            reader_id: b.reader_id,
            card: b.card,
            card_payload: "ciphertext".into(),
        }
    }

    pub(crate) fn sealed_body() -> SealedBody {
        SealedBody {
            amount: 1_000,
            currency: "usd".into(),
            capture_method: CaptureMethod::Automatic,
            metadata: BTreeMap::new(),
            reader_id: "rdr_1".into(),
            card: CardSummary {
                brand: "visa".into(),
                last4: "4242".into(),
                exp_month: 12,
                exp_year: 2031,
            },
            card_payload: Some("ciphertext".into()),
            attempts: 0,
            payment_intent_id: None,
            last_error: None,
            decline_code: None,
        }
    }

    #[test]
    fn ids_are_unique_and_shaped() {
        let a = new_payment_id().unwrap();
        let b = new_payment_id().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 26);
        assert!(a.starts_with("pay_"));
        assert!(a[4..]
            .bytes()
            .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c)));
    }

    #[test]
    fn state_machine_allows_only_forward_moves() {
        use StoredState::*;
        assert!(Pending.can_move_to(Forwarding));
        assert!(Forwarding.can_move_to(Forwarded));
        assert!(Forwarding.can_move_to(Pending));
        assert!(Forwarding.can_move_to(Declined));
        assert!(
            !Pending.can_move_to(Forwarded),
            "must be marked in flight first"
        );
        assert!(!Forwarded.can_move_to(Pending));
        assert!(!Declined.can_move_to(Forwarding));
        assert!(!Quarantined.can_move_to(Pending));
        assert!(
            Forwarded.can_move_to(Quarantined),
            "a tampered record is quarantined"
        );
        assert!(!Quarantined.can_move_to(Quarantined));
        for s in StoredState::ALL {
            assert_eq!(StoredState::parse(s.as_str()), Some(s));
        }
        assert!(Pending.is_outstanding() && Forwarding.is_outstanding());
        assert!(!Forwarded.is_outstanding());
    }

    #[test]
    fn base32_of_known_bytes() {
        assert_eq!(base32(&[0xff]), "74");
        assert_eq!(base32(&[0, 0, 0, 0, 0]), "aaaaaaaa");
    }
}
