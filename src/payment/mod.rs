//! The payment as this SDK keeps it: ids, offline behavior, the stored record's states and the
//! part of a stored record that is sealed. What the caller sees of them is in `view`.

mod view;

pub use view::{
    Agent, CardView, CollectedView, OfflineDetails, PaymentResult, ResultStatus, StoredPayment,
};

use pos_protocol::backend::{CaptureMethod, PaymentOk, PaymentStatus};
use pos_protocol::{CardSummary, SortedMap};
use serde::{Deserialize, Serialize};

use crate::error::PosError;

/// Version of the stored record layout; bound into every record's associated data. 2 added
/// the `intent` state and `SealedBody::unreadable`; records of version 1 open as they are
/// and are re-sealed as 2 on their next change. An older SDK leaves version 2 records alone.
pub const SCHEMA_VERSION: u32 = 2;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OfflineBehavior {
    #[default]
    PreferOnline,
    RequireOnline,
    ForceOffline,
}

pos_protocol::wire_names!(OfflineBehavior {
    PreferOnline => "prefer_online",
    RequireOnline => "require_online",
    ForceOffline => "force_offline",
});

/// What the caller asks `collectPaymentMethod` for; checked by `validate` before use.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentRequest {
    /// NaN and ±Infinity (written as `null` by `JSON.stringify` and the facade's replacer)
    /// and `null` are read as NaN, so that `validate::amount` refuses them with
    /// `invalid_amount` like any other bad amount.
    #[serde(deserialize_with = "null_as_nan")]
    pub amount: f64,
    pub currency: String,
    #[serde(default)]
    pub offline_behavior: Option<OfflineBehavior>,
    #[serde(default)]
    pub capture_method: Option<CaptureMethod>,
    #[serde(default)]
    pub metadata: Option<SortedMap<String>>,
}

fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Option::<f64>::deserialize(d).map(|v| v.unwrap_or(f64::NAN))
}

/// A card read by the reader and not yet processed. The payload is ciphertext for the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    pub id: String,
    pub amount: u64,
    pub currency: String,
    pub capture_method: CaptureMethod,
    pub offline_behavior: OfflineBehavior,
    pub metadata: SortedMap<String>,
    pub reader_id: String,
    pub card: CardSummary,
    pub card_payload: String,
}

/// States of a stored payment. Only `pending` and `forwarding` still need the backend; an
/// `intent` is written before an online attempt and left behind only when that attempt's
/// outcome is unknown (or the tab died during it): then it is forwarded like `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredState {
    Intent,
    Pending,
    Forwarding,
    Forwarded,
    Declined,
    Failed,
    Quarantined,
}

pos_protocol::wire_names!(StoredState {
    Intent => "intent",
    Pending => "pending",
    Forwarding => "forwarding",
    Forwarded => "forwarded",
    Declined => "declined",
    Failed => "failed",
    Quarantined => "quarantined",
});

impl StoredState {
    pub const ALL: [StoredState; 7] = [
        Self::Intent,
        Self::Pending,
        Self::Forwarding,
        Self::Forwarded,
        Self::Declined,
        Self::Failed,
        Self::Quarantined,
    ];

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
                | (Intent, Pending)
                | (Intent, Forwarding)
                // support's way out of `failed`: the same key again
                | (Failed, Pending)
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
    pub metadata: SortedMap<String>,
    pub reader_id: String,
    pub card: CardSummary,
    /// The reader's ciphertext for the backend; dropped once the backend has answered.
    pub card_payload: Option<String>,
    pub attempts: u32,
    pub payment_intent_id: Option<String>,
    pub last_error: Option<ErrorInfo>,
    pub decline_code: Option<String>,
    /// The backend the payment was taken for (invariant 7): only a forwarder for that backend
    /// sends it. `None` in records sealed before this field existed: any backend.
    #[serde(default)]
    pub backend_url: Option<String>,
    /// Unreadable answers in a row (a captive portal's page, a proxy's error): counted apart
    /// from `attempts`, so timeouts never make one odd answer final.
    #[serde(default)]
    pub unreadable: u32,
    /// The payment's state at the backend as last heard: when it was forwarded, and after a
    /// `capturePayment` / `cancelPayment` through this SDK. `None` in older records.
    #[serde(default)]
    pub payment_status: Option<PaymentStatus>,
}

impl SealedBody {
    /// Whether a forwarder (or terminal) for `backend` may see this payment: a payment sealed
    /// for backend A is never listed for, counted against, or sent to backend B.
    pub fn belongs_to(&self, backend: Option<&str>) -> bool {
        match (self.backend_url.as_deref(), backend) {
            (Some(mine), Some(theirs)) => mine == theirs,
            _ => true,
        }
    }

    /// The body of a collected payment taken for `backend_url` (invariant 7: every body a
    /// store writes names its backend; `Store::body_of` gives the store's own).
    pub fn from_collected(c: &Collected, backend_url: Option<String>) -> Self {
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
            backend_url,
            unreadable: 0,
            payment_status: None,
        }
    }
}

/// Longest payment id `capturePayment` / `cancelPayment` take (the protocol's request id).
pub const MAX_PAYMENT_ID_CHARS: usize = pos_protocol::reader::MAX_PAYMENT_ID_CHARS;

/// A payment id the caller passes back: it becomes a URL path segment, so only ASCII
/// letters, digits, `_` and `-`, at most 64.
pub fn check_payment_id(id: &str) -> Result<(), PosError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_PAYMENT_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(PosError::InvalidArgument(format!(
            "a payment id is 1 to {MAX_PAYMENT_ID_CHARS} ASCII letters, digits, _ or -"
        )))
    }
}

/// Capture and cancel go to the backend unless this SDK still holds the payment offline
/// (`state` is its record's state here, if it has one): the backend has not seen it yet.
pub fn check_capturable(id: &str, state: Option<StoredState>) -> Result<(), PosError> {
    match state {
        Some(s) if s.is_outstanding() => Err(PosError::PaymentNotForwarded(id.to_string())),
        _ => Ok(()),
    }
}

/// The error of a capture or cancel the backend refused with `e`: a payment not sent yet
/// (`not_sent_yet`: the connected reader stored it and has not forwarded it, or its online
/// attempt has not answered) is unknown to the backend, which says `payment_not_found`; it
/// is `payment_not_forwarded`, as for the SDK's own store (a cashier must never read "not
/// found" as "not taken").
pub fn capture_error(id: &str, e: PosError, not_sent_yet: bool) -> PosError {
    match e {
        PosError::Backend(crate::error::BackendError::PaymentNotFound(_)) if not_sent_yet => {
            PosError::PaymentNotForwarded(id.to_string())
        }
        e => e,
    }
}

/// What `capturePayment` and `cancelPayment` resolve with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptureResult {
    pub id: String,
    pub status: PaymentStatus,
    pub payment_intent_id: String,
}

impl CaptureResult {
    pub fn of(id: &str, ok: &PaymentOk) -> Self {
        Self {
            id: id.to_string(),
            status: ok.status,
            payment_intent_id: ok.payment_intent.clone(),
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_null_amount_is_read_as_nan_and_refused_as_an_amount() {
        // What `JSON.stringify` makes of `{ amount: NaN }` or `{ amount: Infinity }`.
        let req: PaymentRequest =
            serde_json::from_str(r#"{"amount":null,"currency":"usd"}"#).unwrap();
        assert!(req.amount.is_nan());
        let e = crate::validate::amount(req.amount).unwrap_err();
        assert_eq!(e.code(), "invalid_amount");
        let req: PaymentRequest =
            serde_json::from_str(r#"{"amount":1250,"currency":"usd"}"#).unwrap();
        assert_eq!(crate::validate::amount(req.amount).unwrap(), 1250);
        // Absent is still a missing field.
        assert!(serde_json::from_str::<PaymentRequest>(r#"{"currency":"usd"}"#).is_err());
    }

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
            metadata: SortedMap::new(),
            reader_id: "rdr_1".into(),
            card: CardSummary {
                brand: "visa".into(),
                last4: "4242".into(),
                exp_month: 12,
                exp_year: 2031,
                entry_mode: Some(pos_protocol::EntryMode::Chip),
                pin_verified: true,
            },
            card_payload: Some("ciphertext".into()),
            attempts: 0,
            payment_intent_id: None,
            last_error: None,
            decline_code: None,
            backend_url: None,
            unreadable: 0,
            payment_status: None,
        }
    }

    #[test]
    fn a_payment_belongs_only_to_the_backend_it_was_sealed_for() {
        let mut body = sealed_body();
        body.backend_url = Some("https://a.example".into());
        assert!(body.belongs_to(Some("https://a.example")));
        assert!(!body.belongs_to(Some("https://b.example")));
        assert!(body.belongs_to(None), "an unbound store sees everything");
        // A record sealed before the binding existed reads as unbound.
        let mut legacy = serde_json::to_value(sealed_body()).unwrap();
        legacy.as_object_mut().unwrap().remove("backend_url");
        let legacy: SealedBody = serde_json::from_value(legacy).unwrap();
        assert_eq!(legacy.backend_url, None);
        assert!(legacy.belongs_to(Some("https://b.example")));
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
        assert!(Intent.can_move_to(Pending) && Intent.can_move_to(Forwarding));
        assert!(Failed.can_move_to(Pending), "requeue");
        assert!(
            !Intent.is_outstanding(),
            "an intent in progress is not stored offline"
        );
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
    fn only_payments_the_backend_has_seen_are_captured() {
        use StoredState::*;
        for s in [Pending, Forwarding] {
            assert_eq!(
                check_capturable("pay_1", Some(s)).unwrap_err().code(),
                "payment_not_forwarded"
            );
        }
        // Forwarded, an intent (the backend may have it), or not stored here at all (online,
        // another device, forwarded by the reader): the backend decides.
        for s in [
            None,
            Some(Forwarded),
            Some(Intent),
            Some(Declined),
            Some(Failed),
        ] {
            assert!(check_capturable("pay_1", s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn a_payment_the_reader_still_holds_is_not_forwarded_not_unknown() {
        use crate::error::BackendError;
        let not_found = || PosError::from(BackendError::PaymentNotFound("no".into()));
        assert_eq!(
            capture_error("pay_1", not_found(), true).code(),
            "payment_not_forwarded"
        );
        assert_eq!(
            capture_error("pay_1", not_found(), false).code(),
            "payment_not_found"
        );
        let state = PosError::from(BackendError::PaymentUnexpectedState("x".into()));
        assert_eq!(
            capture_error("pay_1", state, true).code(),
            "payment_unexpected_state",
            "only an unknown payment is explained by the reader's store"
        );
    }

    #[test]
    fn payment_ids_are_path_safe() {
        check_payment_id("pay_abc234").unwrap();
        check_payment_id(&"a".repeat(64)).unwrap();
        for bad in ["", "pay/../x", "pay_1?x", "pay 1", "é", &"a".repeat(65)] {
            assert_eq!(
                check_payment_id(bad).unwrap_err().code(),
                "invalid_argument",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_capture_result_is_camel_case() {
        let r = CaptureResult::of(
            "pay_1",
            &PaymentOk {
                payment_intent: "pi_1".into(),
                status: PaymentStatus::Succeeded,
            },
        );
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            serde_json::json!({"id": "pay_1", "status": "succeeded", "paymentIntentId": "pi_1"})
        );
    }

    #[test]
    fn base32_of_known_bytes() {
        assert_eq!(base32(&[0xff]), "74");
        assert_eq!(base32(&[0, 0, 0, 0, 0]), "aaaaaaaa");
    }
}
