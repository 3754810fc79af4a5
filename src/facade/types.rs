//! The TypeScript declarations that make the generated `.d.ts` precise (the Rust types that
//! serialize to these shapes are in the core: `payment`, `status`, `forward_policy`,
//! `reader`), the few input shapes only JS passes, and the serde bridge to JS values.

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::error::PosError;
use crate::reader::{default_usb_filters, Address, Discovery, Method, UsbFilter};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
export type NetworkStatus = "online" | "offline" | "unknown";
export type ConnectionStatus = "connecting" | "connected" | "not_connected";
export type PaymentStatus = "not_ready" | "ready" | "waiting_for_input" | "processing";
export type OfflineBehavior = "prefer_online" | "require_online" | "force_offline";
export type CaptureMethod = "automatic" | "manual";
export type StoredState = "intent" | "pending" | "forwarding" | "forwarded" | "declined" | "failed" | "quarantined";

export interface OfflineOptions {
  /** Default true. */
  enabled?: boolean;
  /** Largest single offline payment, in minor units, per lowercase ISO currency. */
  transactionLimit?: Record<string, number>;
  /** Largest total stored and not yet forwarded, per currency. */
  storedAmountLimit?: Record<string, number>;
  maxStoredPayments?: number;
  /** Refuse storing while the oldest stored payment is older than this (ms, 60000 to 4294967295). */
  maxStoredAgeMs?: number;
  /** Refuse storing offline unless the browser granted persistent storage. Default false. */
  requirePersistentStorage?: boolean;
  /** How long forwarded and declined records are kept as history (ms, 60000 to 4294967295, about
   * 49 days). Default 30 days. */
  retentionMs?: number;
}

export interface TerminalOptions {
  backendUrl: string;
  /**
   * A fresh connection token from the merchant's server. Failing, or not settling within
   * `requestTimeoutMs`, is `connection_token_failed` (nothing is sent to the backend).
   */
  fetchConnectionToken: () => Promise<string>;
  /** Default "pos-terminal". */
  databaseName?: string;
  /**
   * Time an online attempt (each backend request, each wait on `fetchConnectionToken`) may
   * take before `prefer_online` stores the payment. Default 8000.
   */
  requestTimeoutMs?: number;
  /** Forwarding timer while payments are pending. Default 10000. */
  forwardIntervalMs?: number;
  /** Forwarding requests in flight at once, 1 to 16. Default 3. */
  forwardConcurrency?: number;
  offline?: OfflineOptions;
  /**
   * Which agent stores a payment when neither this SDK nor the connected reader reaches the
   * backend. Default "sdk". "reader" falls back to the SDK for readers that cannot store.
   */
  offlineStorage?: OfflineStorage;
  onNetworkStatusChange?(status: NetworkStatus): void;
  onOfflineStatusChange?(status: OfflineStatus): void;
  onPaymentForwarded?(payment: StoredPayment): void;
  onForwardingFailure?(failure: ForwardingFailure): void;
  onUnexpectedReaderDisconnect?(error: PosTerminalError): void;
  onConnectionStatusChange?(status: ConnectionStatus): void;
  onPaymentStatusChange?(status: PaymentStatus): void;
  /**
   * Another tab upgraded or deleted the database: this terminal closed its connection (so the
   * upgrade is not blocked) and its storage calls now fail with `storage_failed`. Reload.
   */
  onDatabaseVersionChange?(): void;
}

/** Every rejection of this SDK is an Error with a stable snake_case `code`. */
export interface PosTerminalError extends Error {
  code: string;
  declineCode?: string;
}

/** A WebUSB device filter; the default is vendor 0x1209, product 0x0001. */
export interface UsbReaderFilter { vendorId: number; productId?: number; }

export type DiscoveryConfig =
  | { method: "websocket"; urls: string[] }
  /**
   * Readers this origin may already use, plus the one picked in the browser's chooser
   * (`requestPermission`, default true: needs a user gesture, so call it from a click handler).
   */
  | { method: "usb"; requestPermission?: boolean; filters?: UsbReaderFilter[] }
  /** The SDK's in-page simulated reader (see `setSimulatorConfiguration`). */
  | { method: "simulated" };

export type ReaderMethod = "websocket" | "usb" | "simulated";
/** `in_use`: another POS holds the reader; connecting needs `takeOver: true`. */
export type ReaderStatus = "online" | "in_use";

export interface Reader {
  id: string;
  label: string;
  serialNumber: string;
  deviceType: string;
  firmwareVersion: string;
  /** `ws://…`, `usb:VID:PID:SERIAL` or `simulated`. */
  url: string;
  method: ReaderMethod;
  status: ReaderStatus;
}

export interface ConnectOptions {
  /** Connect even if another POS holds the reader; that POS gets `reader_taken_over`. */
  takeOver?: boolean;
}

export type EntryMode = "chip" | "contactless" | "swipe";

export interface SimulatorConfiguration {
  /** A published test card number (e.g. "4000000000000002"); used by every later collect. */
  testCardNumber?: string;
  /** Time from collect to the simulated tap. Default 800. */
  tapDelayMs?: number;
  /** How the card is read. Default "chip". Setting it resets `pinVerified` to true for chip, false otherwise, unless given too. */
  entryMode?: EntryMode;
  /** The cardholder entered their PIN. Default true (chip). */
  pinVerified?: boolean;
  /** The country of the reader's location, ISO 3166-1 alpha-2 (decides the offline rules: EEA needs chip + PIN). Default "US". */
  country?: string;
}

export interface CartLineItem { description: string; amount: number; quantity: number; }
export interface Cart { lineItems: CartLineItem[]; tax?: number; total: number; currency: string; }

/** A payment whose card this terminal never saw (reported by a reader after a reload) has brand `"unknown"`, last4 `""` and expiry 0/0. */
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
  /** `stored_on_reader`: stored sealed on the reader, which forwards it itself. */
  status: "succeeded" | "requires_capture" | "stored_offline" | "stored_on_reader";
  paymentIntentId: string | null;
  amount: number;
  currency: string;
  card: CardSummary;
  offlineDetails: { storedAt: number; requiresUpload: boolean; storedBy: Agent } | null;
  /** The agent that sent it online or stored it. */
  processedBy: Agent;
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
  /** The payment's state at the backend as last heard (when forwarded, after `capturePayment` / `cancelPayment` here); null before it was forwarded. */
  paymentStatus: BackendPaymentStatus | null;
  /** Who stored it; a payment the reader forwarded has only what the reader reported (and the card, if this terminal sent it). */
  storedBy: Agent;
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
  /** Storage is persistent (`persisted()`, then a `persist()` grant, asked once at create without waiting); null before the browser answers, or without a StorageManager. */
  persisted: boolean | null;
  /** IndexedDB honours durability "strict" here (writes reported only once on disk). */
  strictDurability: boolean;
  /** The connected reader's own store; null without a connected reader that stores. */
  reader: ReaderOfflineStatus | null;
}

// ---- The reader as the second storing agent ----

/** Who sent or stored a payment: this SDK (the POS device) or the smart reader (its own link). */
export type Agent = "sdk" | "reader";
export type OfflineStorage = "sdk" | "reader";

/** The connected reader's store, as its latest `store_status` said. */
export interface ReaderOfflineStatus {
  /** The reader's own link to the backend. */
  networkStatus: NetworkStatus;
  pendingCount: number;
  pendingAmounts: Record<string, number>;
}

export interface ForwardReport { forwarded: number; declined: number; failed: number; remaining: number; }

// -- sdkpair (issue 8): capture and cancel.
/** A payment's state at the backend. */
export type BackendPaymentStatus = "succeeded" | "requires_capture" | "canceled";

/** What `capturePayment` and `cancelPayment` resolve with. */
export interface CaptureResult {
  id: string;
  status: BackendPaymentStatus;
  paymentIntentId: string;
}

export interface Terminal {
  /** Every stored payment, oldest first; `state` filters. */
  listStoredPayments(filter?: { state?: StoredState }): Promise<StoredPayment[]>;
  /** Connects a discovered reader; `options.takeOver` takes it from another POS. */
  connectReader(reader: Reader, options?: ConnectOptions): Promise<Reader>;
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
    /// Readers from before transports had names were WebSocket readers.
    #[serde(default = "websocket")]
    pub method: Method,
}

fn websocket() -> Method {
    Method::WebSocket
}

impl ReaderRef {
    pub fn address(self) -> Address {
        Address {
            method: self.method,
            url: self.url,
        }
    }
}

/// The optional options of `connectReader`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectOptions {
    #[serde(default)]
    pub take_over: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoveryConfig {
    pub method: String,
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub request_permission: Option<bool>,
    #[serde(default)]
    pub filters: Option<Vec<UsbFilter>>,
}

impl DiscoveryConfig {
    pub fn into_discovery(self) -> Result<Discovery, PosError> {
        let usb_only = self.request_permission.is_some() || self.filters.is_some();
        match self.method.as_str() {
            "websocket" if !usb_only => Ok(Discovery::WebSocket { urls: self.urls }),
            "usb" if self.urls.is_empty() => Ok(Discovery::Usb {
                request_permission: self.request_permission.unwrap_or(true),
                filters: self.filters.unwrap_or_else(default_usb_filters),
            }),
            "simulated" if self.urls.is_empty() && !usb_only => Ok(Discovery::Simulated),
            "websocket" | "usb" | "simulated" => Err(PosError::InvalidArgument(format!(
                "discovery config: fields that do not belong to method {:?}",
                self.method
            ))),
            other => Err(PosError::Unsupported(format!(
                "discovery method {other:?} is not supported; use \"websocket\", \"usb\" or \"simulated\""
            ))),
        }
    }
}

/// `setSimulatorConfiguration`'s argument.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulatorInput {
    #[serde(default)]
    pub test_card_number: Option<String>,
    #[serde(default)]
    pub tap_delay_ms: Option<u32>,
    // -- sdkpair (issue 8): entry mode, PIN and location of the simulated reader.
    #[serde(default)]
    pub entry_mode: Option<String>,
    #[serde(default)]
    pub pin_verified: Option<bool>,
    #[serde(default)]
    pub country: Option<String>,
}

impl SimulatorInput {
    /// Applies the given fields to `config`, all or none (a bad field changes nothing).
    pub fn apply_to(self, config: &mut crate::reader::SimulatorConfig) -> Result<(), PosError> {
        let mut next = config.clone();
        if let Some(number) = self.test_card_number {
            next.set_test_card(&number)?;
        }
        if let Some(ms) = self.tap_delay_ms {
            next.tap_delay_ms = ms.min(60_000);
        }
        match (self.entry_mode, self.pin_verified) {
            (Some(mode), pin) => next.set_entry(crate::reader::parse_entry_mode(&mode)?, pin),
            (None, Some(pin)) => next.pin_verified = pin,
            (None, None) => {}
        }
        if let Some(country) = self.country {
            next.set_country(&country)?;
        }
        *config = next;
        Ok(())
    }
}

/// What `processPayment` needs from a `CollectedPayment` passed back: its id.
#[derive(Debug, Clone, Deserialize)]
pub struct CollectedRef {
    pub id: String,
}

/// The optional filter of `listStoredPayments` (an unknown key, a typo such as `status`, is
/// refused: it would have listed every record).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFilter {
    pub state: Option<crate::payment::StoredState>,
}

/// The optional options of the standalone `forwardStoredPayments`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerOptions {
    pub database_name: Option<String>,
}

// Both directions go through JSON text and the one serde_json path the core already uses
// for storage and the backend: a second serde format (serde-wasm-bindgen) would compile every
// facade type's (de)serializer twice and cost ~40 KB of the package. The values that cross
// here are JSON-shaped by contract (the TypeScript types); functions and `undefined` fields
// are left out by `JSON.stringify`, as unknown or absent fields.

/// Rust value → JS value: plain objects for maps, numbers for integers.
pub fn to_js<T: Serialize>(value: &T) -> Result<JsValue, PosError> {
    let text = serde_json::to_string(value).map_err(|e| PosError::Internal(e.to_string()))?;
    js_sys::JSON::parse(&text).map_err(|_| PosError::Internal("JSON.parse refused a value".into()))
}

/// `JSON.stringify` writes NaN and ±Infinity as `null` and a Map or a Set as `{}`, which
/// would read as "not given" (an offline limit silently gone) or, in a text field, as text:
/// this replacer refuses them instead (an `amount` alone is written as `null`, which the
/// payment request reads as NaN and refuses as `invalid_amount`). A Rust closure, not
/// `new Function`: a page's Content Security Policy may forbid eval.
type Replacer = Closure<dyn FnMut(JsValue, JsValue) -> Result<JsValue, JsValue>>;

thread_local! {
    /// Why the replacer last refused a value, for `from_js` to say.
    static REFUSED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    static REPLACER: Replacer = Closure::new(|key: JsValue, value: JsValue| {
        let key = key.as_string().unwrap_or_default();
        let refuse = |what: &str| {
            let why = format!("`{key}` is {what}");
            let error = js_sys::TypeError::new(&why);
            REFUSED.with(|r| *r.borrow_mut() = Some(why));
            Err(error.into())
        };
        match value.as_f64() {
            Some(n) if !n.is_finite() && key == "amount" => Ok(JsValue::NULL),
            Some(n) if !n.is_finite() => {
                let js = if n.is_nan() { "NaN" } else if n > 0.0 { "Infinity" } else { "-Infinity" };
                refuse(&format!("{js}, not a finite number"))
            }
            _ if value.is_instance_of::<js_sys::Map>() => refuse("a Map (a plain object is expected)"),
            _ if value.is_instance_of::<js_sys::Set>() => refuse("a Set (an array is expected)"),
            _ => Ok(value),
        }
    });
}

/// JS value → Rust value, as an `invalid_argument` error naming `what`.
pub fn from_js<T: serde::de::DeserializeOwned>(value: JsValue, what: &str) -> Result<T, PosError> {
    let invalid = |why: String| PosError::InvalidArgument(format!("{what}: {why}"));
    // Every input is an object: serde would read an array as the fields in order.
    if js_sys::Array::is_array(&value) {
        return Err(invalid("expected an object, not an array".into()));
    }
    // `undefined` (or a function) has no JSON text: it is as absent as `null`. `REPLACER`
    // keeps NaN, ±Infinity, a Map and a Set from turning silently into `null` or `{}`.
    REFUSED.with(|r| r.borrow_mut().take());
    let text = REPLACER
        .with(|r| js_sys::JSON::stringify_with_replacer(&value, r.as_ref().unchecked_ref()));
    let text = match text {
        Ok(t) => t.as_string().unwrap_or_else(|| "null".into()),
        Err(_) => {
            let why = REFUSED.with(|r| r.borrow_mut().take()).unwrap_or_else(|| {
                "not convertible to JSON (a cycle, a BigInt or a getter that throws)".into()
            });
            return Err(invalid(why));
        }
    };
    serde_json::from_str(&text).map_err(|e| invalid(without_position(&e)))
}

/// serde_json's message without its " at line 1 column N" (the caller passed no text).
fn without_position(e: &serde_json::Error) -> String {
    let full = e.to_string();
    // `JSON.stringify` writes valid JSON: the one syntax error its text can meet is the
    // escape of a lone UTF-16 surrogate, which no Rust string can hold.
    if e.classify() == serde_json::error::Category::Syntax {
        return "a string holds a lone UTF-16 surrogate (not valid Unicode text)".into();
    }
    let message = match full.rfind(" at line ") {
        Some(at) => &full[..at],
        None => &full,
    };
    in_js_terms(message)
}

/// serde's type words as a JS caller knows them ("expected f64" → "expected a number").
fn in_js_terms(message: &str) -> String {
    const WORDS: [(&str, &str); 10] = [
        ("expected f64", "expected a number"),
        ("expected u64", "expected a whole number from 0"),
        ("expected u32", "expected a whole number from 0"),
        ("expected u16", "expected a whole number from 0"),
        ("expected u8", "expected a whole number from 0"),
        ("invalid type: sequence", "invalid type: an array"),
        ("invalid type: map", "invalid type: an object"),
        (
            "expected variant identifier",
            "expected one of its documented names",
        ),
        ("invalid value: integer", "invalid value:"),
        ("invalid type: floating point", "invalid type: number"),
    ];
    let mut out = WORDS
        .iter()
        .fold(message.to_string(), |m, (serde, js)| m.replace(serde, js));
    // "expected struct PaymentRequest": the Rust name means nothing to the caller.
    if let Some(at) = out.find("expected struct ") {
        out.truncate(at);
        out.push_str("expected an object");
    }
    out
}
