//! The views of payments the caller gets (camelCase when serialized for JS): the card
//! summary, a collected payment, a payment's result, a stored payment.

use pos_protocol::backend::{CaptureMethod, PaymentOk, PaymentStatus};
use pos_protocol::{CardSummary, SortedMap};
use serde::{Deserialize, Serialize};

use super::{Collected, Entry, ErrorInfo, Header, OfflineBehavior, StoredState};

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
    /// A card this terminal never saw (a payment the reader reported after a reload): brand
    /// `unknown`, no last 4 digits, expiry 0/0, nothing that could pass for a real card on
    /// a receipt.
    pub fn unknown() -> Self {
        Self {
            brand: "unknown".into(),
            last4: String::new(),
            exp_month: 0,
            exp_year: 0,
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
    pub metadata: SortedMap<String>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultStatus {
    Succeeded,
    RequiresCapture,
    StoredOffline,
    Canceled,
    /// Stored sealed on the reader, which forwards it over its own link.
    StoredOnReader,
}

pos_protocol::wire_names!(ResultStatus {
    Succeeded => "succeeded",
    RequiresCapture => "requires_capture",
    StoredOffline => "stored_offline",
    Canceled => "canceled",
    StoredOnReader => "stored_on_reader",
});

/// Which of the two agents sent or stored a payment: this SDK (the POS device) or the
/// connected smart reader (over its own link to the backend).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Agent {
    #[default]
    Sdk,
    Reader,
}

pos_protocol::wire_names!(Agent {
    Sdk => "sdk",
    Reader => "reader",
});

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OfflineDetails {
    pub stored_at: f64,
    pub requires_upload: bool,
    pub stored_by: Agent,
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
    /// The agent that sent it online or stored it.
    pub processed_by: Agent,
}

impl PaymentResult {
    pub fn online(c: &Collected, ok: &PaymentOk) -> Self {
        Self {
            id: c.id.clone(),
            status: match ok.status {
                PaymentStatus::Succeeded => ResultStatus::Succeeded,
                PaymentStatus::RequiresCapture => ResultStatus::RequiresCapture,
                PaymentStatus::Canceled => ResultStatus::Canceled,
            },
            payment_intent_id: Some(ok.payment_intent.clone()),
            amount: c.amount,
            currency: c.currency.clone(),
            card: (&c.card).into(),
            offline_details: None,
            processed_by: Agent::Sdk,
        }
    }

    /// Approved by the backend through the reader's own link.
    pub fn online_through_reader(c: &Collected, ok: &PaymentOk) -> Self {
        Self {
            processed_by: Agent::Reader,
            ..Self::online(c, ok)
        }
    }

    /// Stored sealed on the reader at `stored_at` (ms since the epoch, the reader's clock).
    pub fn stored_on_reader(c: &Collected, stored_at: u64) -> Self {
        Self {
            id: c.id.clone(),
            status: ResultStatus::StoredOnReader,
            payment_intent_id: None,
            amount: c.amount,
            currency: c.currency.clone(),
            card: (&c.card).into(),
            offline_details: Some(OfflineDetails {
                stored_at: stored_at as f64,
                requires_upload: true,
                stored_by: Agent::Reader,
            }),
            processed_by: Agent::Reader,
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
                stored_by: Agent::Sdk,
            }),
            processed_by: Agent::Sdk,
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
    pub metadata: SortedMap<String>,
    /// The payment's state at the backend as last heard (when forwarded, after a capture or
    /// cancel through this SDK); `null` before it was forwarded.
    pub payment_status: Option<PaymentStatus>,
    /// Who stored it: this SDK, or the reader (reported by its `forwarded` messages).
    pub stored_by: Agent,
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
                payment_status: b.payment_status,
                stored_by: Agent::Sdk,
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
                metadata: SortedMap::new(),
                payment_status: None,
                stored_by: Agent::Sdk,
            },
        }
    }
}
