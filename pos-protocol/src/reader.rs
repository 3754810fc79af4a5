//! The reader protocol, version 1: one JSON object per WebSocket text frame (over WebUSB the
//! same JSON behind a 4-byte big-endian length: `encode_usb_frame`, `Deframer`).
//! `docs/reader-protocol.md` describes the flow.

use serde::{Deserialize, Serialize};

use crate::backend::{PaymentBody, PaymentStatus};
use crate::{CardSummary, SortedMap};

mod parse;

/// The protocol version this crate speaks. Version 2: the POS pairs with a reader-scoped
/// pairing credential (never the backend's connection token), the collect's `request_id` is
/// the payment id the reader binds the card payload to, and readers that say so in their
/// `hello_ack` process and store payments over their own link to the backend.
pub const PROTOCOL_VERSION: u32 = 2;

/// Frames larger than this are refused unparsed (a reader has no reason to send more).
pub const MAX_FRAME_BYTES: usize = 16 * 1024;

/// Frames from a POS may be larger: a `process` carries a whole payment body, metadata
/// included (the backend accepts bodies up to this size too).
pub const MAX_POS_FRAME_BYTES: usize = 256 * 1024;

/// Longest payment id or request id the reader stores or forwards.
pub const MAX_PAYMENT_ID_CHARS: usize = 64;

/// Longest opaque card payload a reader may send (base64 text).
pub const MAX_CARD_PAYLOAD_CHARS: usize = 4096;

/// Longest request id accepted on the wire.
pub const MAX_REQUEST_ID_CHARS: usize = 64;

/// Messages from the POS (the browser) to the reader. `parse_pos_frame` reads them without
/// the derived `Deserialize`: their fields and serde attributes are listed again in
/// `reader/parse.rs` (to keep serde's `Content` buffering out of the wasm package).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PosMessage {
    /// First message after the socket opens. `pairing` is the reader pairing credential the
    /// backend issued for this reader (`POST /v1/reader_pairings`); a `discover` hello may
    /// leave it out (the reader then says only who it is and whether it is free).
    Hello {
        protocol_version: u32,
        client: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pairing: Option<String>,
        /// What the POS wants from this session (default `connect`).
        #[serde(default)]
        intent: HelloIntent,
        /// The code the reader shows on its screen, to register it with this POS's account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        registration_code: Option<String>,
    },
    /// Ask the reader to read a card for this amount. `request_id` is the payment id: the
    /// reader seals it, the amount and the currency with the card into `card_payload`.
    Collect {
        request_id: String,
        amount: u64,
        currency: String,
    },
    /// Cancel the collect with this request id.
    Cancel {
        request_id: String,
    },
    /// Show a cart on the reader's screen.
    DisplayCart {
        request_id: String,
        cart: Cart,
    },
    /// Go back to the idle screen.
    ClearDisplay {
        request_id: String,
    },
    /// Send this payment through the reader's own link to the backend (readers whose
    /// `hello_ack` says `capabilities.process`). Answered by `processed`.
    Process {
        request_id: String,
        mode: ProcessMode,
        payment: PaymentBody,
    },
    /// Ask for the reader's stored payments; answered by `store_status` with this id.
    StoreStatusRequest {
        request_id: String,
    },
    /// The POS has taken note of the `forwarded` report for this payment; the reader may drop
    /// the report (never the payment's outcome, which the backend keeps).
    ForwardedAck {
        payment_id: String,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
}

/// What a `process` asks of the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessMode {
    /// Send it now; if the reader's link is down, answer `unreachable` and keep nothing.
    Online,
    /// Send it now; if the link is down (or the answer never comes), store it sealed and
    /// forward it later with the same idempotency key.
    OnlineOrStore,
    /// Store it without trying now; forward it when the link allows.
    Store,
}

crate::wire_names!(ProcessMode {
    Online => "online",
    OnlineOrStore => "online_or_store",
    Store => "store",
});

/// What became of a `process` (read by `reader/parse.rs`, not by the derive, in frames).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ProcessResult {
    /// The backend approved it through the reader's link.
    Approved {
        payment_intent: String,
        status: PaymentStatus,
    },
    /// The backend declined it (`card_declined`).
    Declined { decline_code: String },
    /// The backend refused it for another final reason (its error code, e.g.
    /// `card_payload_mismatch`, `idempotency_key_reused`).
    Rejected { code: String, message: String },
    /// Stored sealed on the reader; it forwards the payment when its link returns.
    Stored { stored_at: u64 },
    /// Nothing was sent and nothing stored: the reader's link is down (mode `online`).
    Unreachable { message: String },
    /// Sent, no answer, not stored (mode `online`): the backend may have it.
    Unknown { message: String },
}

/// The reader's own link to the backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LinkStatus {
    Online,
    Offline,
    #[default]
    Unknown,
}

crate::wire_names!(LinkStatus {
    Online => "online",
    Offline => "offline",
    Unknown => "unknown",
});

/// What became of a payment the reader forwarded on its own (read by `reader/parse.rs`, not
/// by the derive, in frames).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ForwardResult {
    Approved {
        payment_intent: String,
        status: PaymentStatus,
    },
    Declined {
        decline_code: String,
    },
    /// The backend refused it for a final reason other than a decline; the reader keeps
    /// it as failed (it is not sent again).
    Rejected {
        code: String,
        message: String,
    },
}

/// What a reader may do beyond reading cards, as its `hello_ack` declares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// It sends payments over its own link to the backend (`process`).
    #[serde(default)]
    pub process: bool,
    /// It stores payments when that link is down and forwards them itself.
    #[serde(default)]
    pub store: bool,
}

/// Messages from the reader to the POS. `parse_reader_frame` reads them without the derived
/// `Deserialize`: their fields and serde attributes are listed again in `reader/parse.rs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReaderMessage {
    /// Answer to `hello`: the reader is paired with this POS for the session.
    HelloAck {
        protocol_version: u32,
        reader: ReaderInfo,
        /// `in_use` when another POS holds the reader (answers a `discover` hello).
        #[serde(default)]
        status: ReaderStatus,
        #[serde(default)]
        capabilities: Capabilities,
    },
    /// Answer to `process`, for payment `payment_id`.
    Processed {
        request_id: String,
        payment_id: String,
        result: ProcessResult,
    },
    /// The reader's link and what it holds: sent after `hello_ack`, on every change, and in
    /// answer to `store_status_request` (then with its `request_id`).
    StoreStatus {
        #[serde(default)]
        request_id: Option<String>,
        link: LinkStatus,
        pending_count: u32,
        /// Outstanding amounts per currency (lowercase ISO 4217), in minor units.
        #[serde(default)]
        pending_amounts: SortedMap<u64>,
    },
    /// The reader forwarded a payment it had stored; repeated on every `hello` until the
    /// POS answers `forwarded_ack`.
    Forwarded {
        payment_id: String,
        amount: u64,
        currency: String,
        /// Milliseconds since the Unix epoch, when the reader stored it.
        stored_at: u64,
        result: ForwardResult,
    },
    /// The reader is waiting for a card for this collect.
    CollectStarted {
        request_id: String,
    },
    /// A card was read. `card_payload` is encrypted by the reader for the backend.
    CardRead {
        request_id: String,
        card: CardSummary,
        card_payload: String,
    },
    /// Something happened to the card during this collect (before `card_read`).
    CardEvent {
        request_id: String,
        event: CardEventKind,
    },
    /// The collect with this id was canceled, by the POS or by the customer on the reader.
    Canceled {
        request_id: String,
        #[serde(default)]
        by: CancelSource,
    },
    /// A display command completed.
    Ack {
        request_id: String,
    },
    /// A command failed. `request_id` is absent for errors not tied to a command.
    Error {
        #[serde(default)]
        request_id: Option<String>,
        code: ReaderErrorCode,
        message: String,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
}

impl ReaderMessage {
    /// The wire `type`, for logs and errors that must not quote the message's fields.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::HelloAck { .. } => "hello_ack",
            Self::Processed { .. } => "processed",
            Self::StoreStatus { .. } => "store_status",
            Self::Forwarded { .. } => "forwarded",
            Self::CollectStarted { .. } => "collect_started",
            Self::CardEvent { .. } => "card_event",
            Self::CardRead { .. } => "card_read",
            Self::Canceled { .. } => "canceled",
            Self::Ack { .. } => "ack",
            Self::Error { .. } => "error",
            Self::Ping { .. } => "ping",
            Self::Pong { .. } => "pong",
        }
    }
}

/// Why the POS says `hello`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HelloIntent {
    /// Pair and keep the session; refused with `busy` while another POS holds the reader.
    #[default]
    Connect,
    /// Only learn who the reader is and whether it is free; the POS closes right after.
    Discover,
    /// Pair even if another POS holds the reader: that POS is told `taken_over` and dropped.
    TakeOver,
}

crate::wire_names!(HelloIntent {
    Connect => "connect",
    Discover => "discover",
    TakeOver => "take_over",
});

/// Whether a reader is free, as its `hello_ack` says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReaderStatus {
    #[default]
    Online,
    InUse,
}

crate::wire_names!(ReaderStatus {
    Online => "online",
    InUse => "in_use",
});

/// What the reader noticed about the card while collecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardEventKind {
    Inserted,
    Removed,
    Tapped,
}

crate::wire_names!(CardEventKind {
    Inserted => "inserted",
    Removed => "removed",
    Tapped => "tapped",
});

/// Who canceled a collect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CancelSource {
    #[default]
    Pos,
    Customer,
}

crate::wire_names!(CancelSource {
    Pos => "pos",
    Customer => "customer",
});

/// What the reader says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderInfo {
    pub id: String,
    pub label: String,
    pub serial_number: String,
    pub device_type: String,
    pub firmware_version: String,
    /// The country of the reader's location (ISO 3166-1 alpha-2, upper case): decides the
    /// offline rules (`offline_rules`). Absent from readers that do not know it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// Error codes a reader may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderErrorCode {
    Busy,
    UnsupportedVersion,
    NotPaired,
    InvalidMessage,
    CardReadFailed,
    Timeout,
    /// Another POS took the reader over; this session ends.
    TakenOver,
    /// The `hello` lacked a pairing credential, or the one it carried is not this reader's.
    PairingRefused,
    /// The reader will not store this payment offline (entry mode, brand or region rules).
    OfflinePaymentMethodUnsupported,
    /// The reader's store is full, or over its limits.
    StorageFull,
    /// Any code a newer reader may send that this version does not know.
    Unknown,
}

crate::wire_names!(ReaderErrorCode {
    Busy => "busy",
    UnsupportedVersion => "unsupported_version",
    NotPaired => "not_paired",
    InvalidMessage => "invalid_message",
    CardReadFailed => "card_read_failed",
    Timeout => "timeout",
    TakenOver => "taken_over",
    PairingRefused => "pairing_refused",
    OfflinePaymentMethodUnsupported => "offline_payment_method_unsupported",
    StorageFull => "storage_full",
    Unknown => "unknown",
} other Unknown);

/// A cart shown on the reader's display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cart {
    pub line_items: Vec<LineItem>,
    #[serde(default)]
    pub tax: u64,
    pub total: u64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineItem {
    pub description: String,
    pub amount: u64,
    pub quantity: u32,
}

/// Why a frame could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    TooLarge {
        bytes: usize,
    },
    Malformed(String),
    /// Parsed, but a field breaks a bound (ids, payload size, card summary shape).
    Invalid(&'static str),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge { bytes } => {
                write!(f, "frame of {bytes} bytes exceeds {MAX_FRAME_BYTES}")
            }
            Self::Malformed(why) => write!(f, "malformed frame: {why}"),
            Self::Invalid(why) => write!(f, "invalid frame: {why}"),
        }
    }
}

impl std::error::Error for FrameError {}

fn check_request_id(id: &str) -> Result<(), FrameError> {
    if id.is_empty() || id.len() > MAX_REQUEST_ID_CHARS {
        return Err(FrameError::Invalid("request_id length"));
    }
    Ok(())
}

/// Checks a card summary's shape: what a receipt shows must be what it claims to be.
pub fn check_card_summary(card: &CardSummary) -> Result<(), &'static str> {
    if card.last4.len() != 4 || !card.last4.bytes().all(|b| b.is_ascii_digit()) {
        return Err("card.last4 must be four digits");
    }
    if !(1..=12).contains(&card.exp_month) {
        return Err("card.exp_month must be 1..=12");
    }
    if !(2000..=2100).contains(&card.exp_year) {
        return Err("card.exp_year out of range");
    }
    if card.brand.is_empty()
        || card.brand.len() > 16
        || !card
            .brand
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        return Err("card.brand must be a short lowercase word");
    }
    Ok(())
}

/// Parses and bounds-checks one frame from a reader.
pub fn parse_reader_frame(text: &str) -> Result<ReaderMessage, FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { bytes: text.len() });
    }
    let msg = parse::reader_message(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
    match &msg {
        ReaderMessage::CollectStarted { request_id }
        | ReaderMessage::CardEvent { request_id, .. }
        | ReaderMessage::Canceled { request_id, .. }
        | ReaderMessage::Ack { request_id } => check_request_id(request_id)?,
        ReaderMessage::CardRead {
            request_id,
            card,
            card_payload,
        } => {
            check_request_id(request_id)?;
            check_card_summary(card).map_err(FrameError::Invalid)?;
            if card_payload.is_empty() || card_payload.len() > MAX_CARD_PAYLOAD_CHARS {
                return Err(FrameError::Invalid("card_payload length"));
            }
        }
        ReaderMessage::Error {
            request_id: Some(id),
            ..
        } => check_request_id(id)?,
        ReaderMessage::Processed {
            request_id,
            payment_id,
            ..
        } => {
            check_request_id(request_id)?;
            check_request_id(payment_id)?;
        }
        ReaderMessage::StoreStatus {
            request_id,
            pending_amounts,
            ..
        } => {
            if let Some(id) = request_id {
                check_request_id(id)?;
            }
            if pending_amounts.len() > 64 || pending_amounts.keys().any(|c| c.len() != 3) {
                return Err(FrameError::Invalid("pending_amounts"));
            }
        }
        ReaderMessage::Forwarded {
            payment_id,
            currency,
            ..
        } => {
            check_request_id(payment_id)?;
            if currency.len() != 3 {
                return Err(FrameError::Invalid("currency"));
            }
        }
        ReaderMessage::HelloAck { reader, .. }
            if reader.id.is_empty() || reader.id.len() > 64 || reader.label.len() > 128 =>
        {
            return Err(FrameError::Invalid("reader id/label length"));
        }
        _ => {}
    }
    Ok(msg)
}

/// Parses and bounds-checks one frame from a POS (the reader's side of the same rules).
pub fn parse_pos_frame(text: &str) -> Result<PosMessage, FrameError> {
    if text.len() > MAX_POS_FRAME_BYTES {
        return Err(FrameError::TooLarge { bytes: text.len() });
    }
    let msg = parse::pos_message(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
    match &msg {
        PosMessage::Hello {
            registration_code: Some(code),
            ..
        } if code.is_empty() || code.len() > 64 => {
            return Err(FrameError::Invalid("registration_code length"));
        }
        PosMessage::Hello {
            pairing: Some(secret),
            ..
        } if secret.is_empty() || secret.len() > 256 => {
            return Err(FrameError::Invalid("pairing length"));
        }
        PosMessage::Process {
            request_id,
            payment,
            ..
        } => {
            check_request_id(request_id)?;
            check_request_id(&payment.id)?;
            check_card_summary(&payment.card).map_err(FrameError::Invalid)?;
            if payment.card_payload.is_empty()
                || payment.card_payload.len() > MAX_CARD_PAYLOAD_CHARS
            {
                return Err(FrameError::Invalid("card_payload length"));
            }
        }
        PosMessage::ForwardedAck { payment_id } => check_request_id(payment_id)?,
        PosMessage::Collect { request_id, .. }
        | PosMessage::StoreStatusRequest { request_id }
        | PosMessage::Cancel { request_id }
        | PosMessage::DisplayCart { request_id, .. }
        | PosMessage::ClearDisplay { request_id } => check_request_id(request_id)?,
        _ => {}
    }
    Ok(msg)
}

/// Bytes of the length prefix of a WebUSB frame.
pub const USB_LENGTH_BYTES: usize = 4;

/// One message as it goes on a WebUSB bulk endpoint: 4-byte big-endian length, then UTF-8.
pub fn encode_usb_frame(text: &str) -> Vec<u8> {
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(USB_LENGTH_BYTES + text.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// Why bytes from a bulk endpoint do not make a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeframeError {
    /// The length prefix announces more than `MAX_FRAME_BYTES`: the stream cannot be
    /// resynchronised (nothing says where the next frame starts), so it is fatal.
    TooLarge { bytes: usize },
    /// A frame of the announced length that is not UTF-8; the stream stays in step.
    NotUtf8,
    /// Bytes after a fatal error: the connection must be reopened.
    Poisoned,
}

impl DeframeError {
    /// True when the stream is lost and the connection must be reopened.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::NotUtf8)
    }
}

impl std::fmt::Display for DeframeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge { bytes } => {
                write!(
                    f,
                    "USB frame announces {bytes} bytes, over {MAX_FRAME_BYTES}"
                )
            }
            Self::NotUtf8 => f.write_str("USB frame is not UTF-8"),
            Self::Poisoned => f.write_str("USB stream lost after an oversized frame"),
        }
    }
}

impl std::error::Error for DeframeError {}

/// Splits a byte stream into frames, whatever the transfer boundaries: a frame may arrive in
/// several transfers and one transfer may hold several frames. An oversized length is refused
/// from its 4-byte prefix, before any of its body is buffered.
#[derive(Debug, Default)]
pub struct Deframer {
    header: Vec<u8>,
    body: Vec<u8>,
    expected: Option<usize>,
    poisoned: bool,
}

impl Deframer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes of one transfer; returns each completed frame (or its error), in order.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Result<String, DeframeError>> {
        let mut out = Vec::new();
        if self.poisoned {
            if !bytes.is_empty() {
                out.push(Err(DeframeError::Poisoned));
            }
            return out;
        }
        while !bytes.is_empty() {
            let Some(expected) = self.expected else {
                let take = (USB_LENGTH_BYTES - self.header.len()).min(bytes.len());
                self.header.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if let Ok(prefix) = <[u8; USB_LENGTH_BYTES]>::try_from(self.header.as_slice()) {
                    let len = u32::from_be_bytes(prefix) as usize;
                    self.header.clear();
                    if len > MAX_FRAME_BYTES {
                        self.poisoned = true;
                        out.push(Err(DeframeError::TooLarge { bytes: len }));
                        return out;
                    }
                    self.expected = Some(len);
                    if len == 0 {
                        out.push(self.finish());
                    }
                }
                continue;
            };
            let take = (expected - self.body.len()).min(bytes.len());
            self.body.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.body.len() == expected {
                out.push(self.finish());
            }
        }
        out
    }

    fn finish(&mut self) -> Result<String, DeframeError> {
        self.expected = None;
        String::from_utf8(std::mem::take(&mut self.body)).map_err(|_| DeframeError::NotUtf8)
    }

    /// True while part of a frame is buffered (a reader that stops mid-frame).
    pub fn is_mid_frame(&self) -> bool {
        !self.header.is_empty() || self.expected.is_some()
    }
}

/// Serializes a message; these types always serialize.
pub fn to_frame<T: Serialize>(msg: &T) -> String {
    serde_json::to_string(msg).unwrap_or_else(|_| String::from("{}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_read_round_trips() {
        let msg = ReaderMessage::CardRead {
            request_id: "r1".into(),
            card: CardSummary {
                brand: "visa".into(),
                last4: "4242".into(),
                exp_month: 12,
                exp_year: 2030,
                entry_mode: Some(crate::EntryMode::Contactless),
                pin_verified: false,
            },
            card_payload: "AAAA".into(),
        };
        let text = to_frame(&msg);
        assert!(text.contains(r#""type":"card_read""#));
        assert!(text.contains(r#""entry_mode":"contactless""#));
        assert_eq!(parse_reader_frame(&text).unwrap(), msg);
    }

    #[test]
    fn reader_store_messages_round_trip() {
        let processed = ReaderMessage::Processed {
            request_id: "r2".into(),
            payment_id: "pay_1".into(),
            result: ProcessResult::Stored { stored_at: 7 },
        };
        let text = to_frame(&processed);
        assert!(text.contains(r#""result":{"outcome":"stored","stored_at":7}"#));
        assert_eq!(parse_reader_frame(&text).unwrap(), processed);
        let status = parse_reader_frame(
            r#"{"type":"store_status","link":"offline","pending_count":2,"pending_amounts":{"usd":300}}"#,
        )
        .unwrap();
        assert!(matches!(
            status,
            ReaderMessage::StoreStatus {
                link: LinkStatus::Offline,
                pending_count: 2,
                ..
            }
        ));
        let forwarded = parse_reader_frame(
            r#"{"type":"forwarded","payment_id":"pay_1","amount":100,"currency":"usd","stored_at":1,"result":{"outcome":"declined","decline_code":"generic_decline"}}"#,
        )
        .unwrap();
        assert_eq!(forwarded.kind(), "forwarded");
        let ack = parse_reader_frame(
            r#"{"type":"hello_ack","protocol_version":2,"reader":{"id":"rdr_1","label":"L","serial_number":"s","device_type":"d","firmware_version":"f","country":"FR"},"capabilities":{"process":true,"store":true}}"#,
        )
        .unwrap();
        assert!(matches!(
            ack,
            ReaderMessage::HelloAck {
                capabilities: Capabilities {
                    process: true,
                    store: true
                },
                ..
            }
        ));
    }

    #[test]
    fn a_hello_carries_a_pairing_credential_not_a_token() {
        let hello = parse_pos_frame(
            r#"{"type":"hello","protocol_version":2,"client":"c","pairing":"rpair_x"}"#,
        )
        .unwrap();
        assert!(matches!(hello, PosMessage::Hello { pairing: Some(ref p), .. } if p == "rpair_x"));
        assert!(matches!(
            parse_pos_frame(r#"{"type":"hello","protocol_version":2,"client":"c","token":"t"}"#),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn oversized_frame_is_refused_before_parsing() {
        let big = format!(
            r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#,
            "x".repeat(20_000)
        );
        assert!(matches!(
            parse_reader_frame(&big),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn malformed_and_unknown_frames_are_errors() {
        assert!(matches!(
            parse_reader_frame("not json"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse_reader_frame(r#"{"type":"launch_missiles"}"#),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse_reader_frame(r#"{"type":"card_read","request_id":"r"}"#),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn card_summary_bounds_are_enforced() {
        let frame = r#"{"type":"card_read","request_id":"r1","card_payload":"x",
            "card":{"brand":"visa","last4":"4242424242424242","exp_month":1,"exp_year":2030}}"#;
        assert_eq!(
            parse_reader_frame(frame),
            Err(FrameError::Invalid("card.last4 must be four digits"))
        );
        let frame = r#"{"type":"card_read","request_id":"r1","card_payload":"x",
            "card":{"brand":"visa","last4":"4242","exp_month":13,"exp_year":2030}}"#;
        assert!(parse_reader_frame(frame).is_err());
    }

    #[test]
    fn unknown_reader_error_code_is_kept_as_unknown() {
        let msg =
            parse_reader_frame(r#"{"type":"error","code":"overheated","message":"hot"}"#).unwrap();
        assert_eq!(
            msg,
            ReaderMessage::Error {
                request_id: None,
                code: ReaderErrorCode::Unknown,
                message: "hot".into()
            }
        );
    }

    #[test]
    fn pos_frames_parse_with_tags() {
        let msg = parse_pos_frame(
            r#"{"type":"collect","request_id":"pay_1","amount":1000,"currency":"usd"}"#,
        )
        .unwrap();
        assert_eq!(
            msg,
            PosMessage::Collect {
                request_id: "pay_1".into(),
                amount: 1000,
                currency: "usd".into()
            }
        );
        assert!(parse_pos_frame(r#"{"type":"cancel","request_id":""}"#).is_err());
    }

    #[test]
    fn hello_defaults_to_connect_and_ack_to_online() {
        let msg =
            parse_pos_frame(r#"{"type":"hello","protocol_version":1,"client":"c","pairing":"p"}"#)
                .unwrap();
        assert!(matches!(
            msg,
            PosMessage::Hello {
                intent: HelloIntent::Connect,
                registration_code: None,
                ..
            }
        ));
        let ack = parse_reader_frame(
            r#"{"type":"hello_ack","protocol_version":1,"reader":{"id":"r","label":"l",
            "serial_number":"s","device_type":"d","firmware_version":"f"}}"#,
        )
        .unwrap();
        assert!(matches!(
            ack,
            ReaderMessage::HelloAck {
                status: ReaderStatus::Online,
                ..
            }
        ));
        let take = parse_pos_frame(
            r#"{"type":"hello","protocol_version":1,"client":"c","pairing":"p","intent":"take_over"}"#,
        )
        .unwrap();
        assert!(matches!(
            take,
            PosMessage::Hello {
                intent: HelloIntent::TakeOver,
                ..
            }
        ));
    }

    #[test]
    fn card_events_and_customer_cancel_parse() {
        let ev = parse_reader_frame(r#"{"type":"card_event","request_id":"p","event":"tapped"}"#)
            .unwrap();
        assert_eq!(ev.kind(), "card_event");
        let c =
            parse_reader_frame(r#"{"type":"canceled","request_id":"p","by":"customer"}"#).unwrap();
        assert_eq!(
            c,
            ReaderMessage::Canceled {
                request_id: "p".into(),
                by: CancelSource::Customer
            }
        );
    }

    #[test]
    fn deframer_handles_split_and_joined_frames() {
        let mut bytes = encode_usb_frame(r#"{"type":"ping","nonce":1}"#);
        bytes.extend(encode_usb_frame(r#"{"type":"pong","nonce":2}"#));
        // Several frames in one transfer.
        let mut d = Deframer::new();
        let frames: Vec<_> = d.push(&bytes).into_iter().map(Result::unwrap).collect();
        assert_eq!(frames.len(), 2);
        // One byte per transfer.
        let mut d = Deframer::new();
        let mut got = Vec::new();
        for b in &bytes {
            got.extend(
                d.push(std::slice::from_ref(b))
                    .into_iter()
                    .map(Result::unwrap),
            );
        }
        assert_eq!(got, frames);
        assert!(!d.is_mid_frame());
    }

    #[test]
    fn deframer_refuses_oversized_lengths_from_the_prefix() {
        let mut d = Deframer::new();
        let five_mb = 5_000_000u32.to_be_bytes();
        assert_eq!(
            d.push(&five_mb),
            vec![Err(DeframeError::TooLarge { bytes: 5_000_000 })]
        );
        assert_eq!(d.push(b"x"), vec![Err(DeframeError::Poisoned)]);
        let mut d = Deframer::new();
        let mut bad = 2u32.to_be_bytes().to_vec();
        bad.extend([0xff, 0xfe]);
        bad.extend(encode_usb_frame("{}"));
        let out = d.push(&bad);
        assert_eq!(out[0], Err(DeframeError::NotUtf8));
        assert_eq!(out[1], Ok("{}".to_string()));
    }
}
