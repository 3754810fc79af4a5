//! The shapes JS sees (camelCase), converted from the Rust domain types, and the TypeScript
//! declarations that make the generated `.d.ts` precise.

use std::collections::BTreeMap;

use pos_protocol::reader::{Cart, LineItem};
use pos_protocol::CardSummary;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::error::PosError;
use crate::payment::{Collected, OfflineBehavior, StoredState};
use crate::reader::Discovered;
use crate::store::Entry;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
export type NetworkStatus = "online" | "offline" | "unknown";
export type ConnectionStatus = "connecting" | "connected" | "not_connected";
export type PaymentStatus = "not_ready" | "ready" | "waiting_for_input" | "processing";
export type OfflineBehavior = "prefer_online" | "require_online" | "force_offline";
export type CaptureMethod = "automatic" | "manual";
export type StoredState = "pending" | "forwarding" | "forwarded" | "declined" | "failed" | "quarantined";

export interface OfflineOptions {
  /** Default true. */
  enabled?: boolean;
  /** Largest single offline payment, in minor units, per lowercase ISO currency. */
  transactionLimit?: Record<string, number>;
  /** Largest total stored and not yet forwarded, per currency. */
  storedAmountLimit?: Record<string, number>;
  maxStoredPayments?: number;
}

export interface TerminalOptions {
  backendUrl: string;
  fetchConnectionToken: () => Promise<string>;
  /** Default "pos-terminal". */
  databaseName?: string;
  /** Time an online attempt may take before `prefer_online` stores the payment. Default 8000. */
  requestTimeoutMs?: number;
  /** Forwarding timer while payments are pending. Default 10000. */
  forwardIntervalMs?: number;
  offline?: OfflineOptions;
  onNetworkStatusChange?(status: NetworkStatus): void;
  onOfflineStatusChange?(status: OfflineStatus): void;
  onPaymentForwarded?(payment: StoredPayment): void;
  onForwardingFailure?(failure: ForwardingFailure): void;
  onUnexpectedReaderDisconnect?(error: PosTerminalError): void;
  onConnectionStatusChange?(status: ConnectionStatus): void;
  onPaymentStatusChange?(status: PaymentStatus): void;
}

/** Every rejection of this SDK is an Error with a stable snake_case `code`. */
export interface PosTerminalError extends Error {
  code: string;
  declineCode?: string;
}

export type DiscoveryConfig =
  | { method: "websocket"; urls: string[] }
  | { method: "usb" }
  | { method: "simulated" };

export interface Reader {
  id: string;
  label: string;
  serialNumber: string;
  deviceType: string;
  firmwareVersion: string;
  url: string;
  method: "websocket";
}

export interface CartLineItem { description: string; amount: number; quantity: number; }
export interface Cart { lineItems: CartLineItem[]; tax?: number; total: number; currency: string; }

export interface CardSummary { brand: string; last4: string; expMonth: number; expYear: number; }

export interface PaymentRequest {
  /** Positive integer in minor units. */
  amount: number;
  /** Lowercase ISO 4217 code. */
  currency: string;
  offlineBehavior?: OfflineBehavior;
  captureMethod?: CaptureMethod;
  metadata?: Record<string, string>;
}

export interface CollectedPayment {
  id: string;
  amount: number;
  currency: string;
  captureMethod: CaptureMethod;
  offlineBehavior: OfflineBehavior;
  metadata: Record<string, string>;
  readerId: string;
  card: CardSummary;
}

export interface PaymentResult {
  id: string;
  status: "succeeded" | "requires_capture" | "stored_offline";
  paymentIntentId: string | null;
  amount: number;
  currency: string;
  card: CardSummary;
  offlineDetails: { storedAt: number; requiresUpload: boolean } | null;
}

export interface StoredPayment {
  id: string;
  state: StoredState;
  amount: number;
  currency: string;
  storedAt: number;
  attempts: number;
  paymentIntentId: string | null;
  lastError: { code: string; message: string } | null;
  declineCode: string | null;
  card: CardSummary;
  metadata: Record<string, string>;
}

export interface ForwardingFailure {
  payment: StoredPayment;
  code: string;
  message: string;
  declineCode: string | null;
}

export interface OfflineStatus {
  networkStatus: NetworkStatus;
  pendingCount: number;
  pendingAmounts: Record<string, number>;
  oldestStoredAt: number | null;
  forwarding: boolean;
}

export interface ForwardReport { forwarded: number; declined: number; failed: number; remaining: number; }

export interface Terminal {
  /** Every stored payment, oldest first; `state` filters. */
  listStoredPayments(filter?: { state?: StoredState }): Promise<StoredPayment[]>;
}

/**
 * For a service worker (or any script without a `Terminal`): forwards what is stored, with
 * the backend URL and connection token the page saved (sealed) in the same database.
 */
export function forwardStoredPayments(options?: { databaseName?: string }): Promise<ForwardReport>;
"#;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CardJs {
    pub brand: String,
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: u16,
}

impl From<&CardSummary> for CardJs {
    fn from(c: &CardSummary) -> Self {
        Self {
            brand: c.brand.clone(),
            last4: c.last4.clone(),
            exp_month: c.exp_month,
            exp_year: c.exp_year,
        }
    }
}

impl CardJs {
    fn unknown() -> Self {
        Self {
            brand: "unknown".into(),
            last4: "0000".into(),
            exp_month: 1,
            exp_year: 2000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReaderJs {
    pub id: String,
    pub label: String,
    pub serial_number: String,
    pub device_type: String,
    pub firmware_version: String,
    pub url: String,
    pub method: String,
}

impl From<&Discovered> for ReaderJs {
    fn from(d: &Discovered) -> Self {
        Self {
            id: d.info.id.clone(),
            label: d.info.label.clone(),
            serial_number: d.info.serial_number.clone(),
            device_type: d.info.device_type.clone(),
            firmware_version: d.info.firmware_version.clone(),
            url: d.url.clone(),
            method: "websocket".into(),
        }
    }
}

/// What `connectReader` needs from a `Reader` the caller passes back.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReaderRef {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoveryConfigJs {
    pub method: String,
    #[serde(default)]
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentRequestJs {
    pub amount: f64,
    pub currency: String,
    #[serde(default)]
    pub offline_behavior: Option<OfflineBehavior>,
    #[serde(default)]
    pub capture_method: Option<pos_protocol::backend::CaptureMethod>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LineItemJs {
    pub description: String,
    pub amount: u64,
    pub quantity: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CartJs {
    pub line_items: Vec<LineItemJs>,
    #[serde(default)]
    pub tax: u64,
    pub total: u64,
    pub currency: String,
}

pub const MAX_CART_ITEMS: usize = 100;

impl CartJs {
    pub fn into_cart(self) -> Result<Cart, PosError> {
        let currency = crate::validate::currency(&self.currency)?;
        if self.line_items.len() > MAX_CART_ITEMS {
            return Err(PosError::InvalidArgument(format!(
                "a cart holds at most {MAX_CART_ITEMS} line items"
            )));
        }
        if self
            .line_items
            .iter()
            .any(|i| i.description.chars().count() > 120)
        {
            return Err(PosError::InvalidArgument(
                "line item descriptions are at most 120 characters".into(),
            ));
        }
        Ok(Cart {
            line_items: self
                .line_items
                .into_iter()
                .map(|i| LineItem {
                    description: i.description,
                    amount: i.amount,
                    quantity: i.quantity,
                })
                .collect(),
            tax: self.tax,
            total: self.total,
            currency,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectedJs {
    pub id: String,
    pub amount: u64,
    pub currency: String,
    pub capture_method: pos_protocol::backend::CaptureMethod,
    pub offline_behavior: OfflineBehavior,
    pub metadata: BTreeMap<String, String>,
    pub reader_id: String,
    pub card: CardJs,
}

impl From<&Collected> for CollectedJs {
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

/// What `processPayment` needs from a `CollectedPayment` passed back: its id.
#[derive(Debug, Clone, Deserialize)]
pub struct CollectedRef {
    pub id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OfflineDetailsJs {
    pub stored_at: f64,
    pub requires_upload: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentResultJs {
    pub id: String,
    pub status: String,
    pub payment_intent_id: Option<String>,
    pub amount: u64,
    pub currency: String,
    pub card: CardJs,
    pub offline_details: Option<OfflineDetailsJs>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorInfoJs {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredPaymentJs {
    pub id: String,
    pub state: StoredState,
    pub amount: u64,
    pub currency: String,
    pub stored_at: f64,
    pub attempts: u32,
    pub payment_intent_id: Option<String>,
    pub last_error: Option<ErrorInfoJs>,
    pub decline_code: Option<String>,
    pub card: CardJs,
    pub metadata: BTreeMap<String, String>,
}

impl From<&Entry> for StoredPaymentJs {
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
                last_error: b.last_error.as_ref().map(|l| ErrorInfoJs {
                    code: l.code.clone(),
                    message: l.message.clone(),
                }),
                decline_code: b.decline_code.clone(),
                card: (&b.card).into(),
                metadata: b.metadata.clone(),
            },
            Err(err) => Self {
                id: h.id.clone(),
                state: h.state,
                amount: 0,
                currency: String::new(),
                stored_at: h.stored_at,
                attempts: 0,
                payment_intent_id: None,
                last_error: Some(ErrorInfoJs {
                    code: err.code().into(),
                    message: err.to_string(),
                }),
                decline_code: None,
                card: CardJs::unknown(),
                metadata: BTreeMap::new(),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardingFailureJs {
    pub payment: StoredPaymentJs,
    pub code: String,
    pub message: String,
    pub decline_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OfflineStatusJs {
    pub network_status: &'static str,
    pub pending_count: u32,
    pub pending_amounts: BTreeMap<String, u64>,
    pub oldest_stored_at: Option<f64>,
    pub forwarding: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ForwardReportJs {
    pub forwarded: u32,
    pub declined: u32,
    pub failed: u32,
    pub remaining: u32,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OfflineOptionsJs {
    pub enabled: Option<bool>,
    #[serde(default)]
    pub transaction_limit: BTreeMap<String, f64>,
    #[serde(default)]
    pub stored_amount_limit: BTreeMap<String, f64>,
    pub max_stored_payments: Option<f64>,
}

/// Rust value → JS value: plain objects for maps, numbers for integers.
pub fn to_js<T: Serialize>(value: &T) -> Result<JsValue, PosError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| PosError::Internal(e.to_string()))
}

/// JS value → Rust value, as an `invalid_argument` error naming `what`.
pub fn from_js<T: serde::de::DeserializeOwned>(value: JsValue, what: &str) -> Result<T, PosError> {
    serde_wasm_bindgen::from_value(value)
        .map_err(|e| PosError::InvalidArgument(format!("{what}: {e}")))
}
