//! The TypeScript declarations that make the generated `.d.ts` precise (the Rust types that
//! serialize to these shapes are in the core: `payment`, `status`, `forward_policy`,
//! `reader`), the few input shapes only JS passes, and the serde bridge to JS values.

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::error::PosError;

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
  /** Storage is persistent (persisted(), then a persist() grant); null before the browser answers, or without a StorageManager. */
  persistentStorage: boolean | null;
  /** IndexedDB honours durability "strict" here (writes reported only once on disk). */
  strictDurability: boolean;
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

/// What `connectReader` needs from a `Reader` the caller passes back.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReaderRef {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoveryConfig {
    pub method: String,
    #[serde(default)]
    pub urls: Vec<String>,
}

/// What `processPayment` needs from a `CollectedPayment` passed back: its id.
#[derive(Debug, Clone, Deserialize)]
pub struct CollectedRef {
    pub id: String,
}

/// The optional filter of `listStoredPayments`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListFilter {
    pub state: Option<crate::payment::StoredState>,
}

/// The optional options of the standalone `forwardStoredPayments`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerOptions {
    pub database_name: Option<String>,
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
