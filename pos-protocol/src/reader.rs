//! The reader protocol, version 1: one JSON object per WebSocket text frame (over WebUSB the
//! same JSON behind a 4-byte big-endian length: `encode_usb_frame`, `Deframer`).
//! `docs/reader-protocol.md` describes the flow.

use serde::{Deserialize, Serialize};

use crate::CardSummary;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Frames larger than this are refused unparsed (a reader has no reason to send more).
pub const MAX_FRAME_BYTES: usize = 16 * 1024;

/// Longest opaque card payload a reader may send (base64 text).
pub const MAX_CARD_PAYLOAD_CHARS: usize = 4096;

/// Longest request id accepted on the wire.
pub const MAX_REQUEST_ID_CHARS: usize = 64;

/// Messages from the POS (the browser) to the reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PosMessage {
    /// First message after the socket opens. `token` is a connection token from the backend.
    Hello {
        protocol_version: u32,
        client: String,
        token: String,
        /// What the POS wants from this session (default `connect`).
        #[serde(default)]
        intent: HelloIntent,
        /// The code the reader shows on its screen, to register it with this POS's account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        registration_code: Option<String>,
    },
    /// Ask the reader to read a card for this amount.
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
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
}

/// Messages from the reader to the POS.
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelloIntent {
    /// Pair and keep the session; refused with `busy` while another POS holds the reader.
    #[default]
    Connect,
    /// Only learn who the reader is and whether it is free; the POS closes right after.
    Discover,
    /// Pair even if another POS holds the reader: that POS is told `taken_over` and dropped.
    TakeOver,
}

/// Whether a reader is free, as its `hello_ack` says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReaderStatus {
    #[default]
    Online,
    InUse,
}

impl ReaderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::InUse => "in_use",
        }
    }
}

/// What the reader noticed about the card while collecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardEventKind {
    Inserted,
    Removed,
    Tapped,
}

/// Who canceled a collect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelSource {
    #[default]
    Pos,
    Customer,
}

/// What the reader says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderInfo {
    pub id: String,
    pub label: String,
    pub serial_number: String,
    pub device_type: String,
    pub firmware_version: String,
}

/// Error codes a reader may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReaderErrorCode {
    Busy,
    UnsupportedVersion,
    NotPaired,
    InvalidMessage,
    CardReadFailed,
    Timeout,
    /// Another POS took the reader over; this session ends.
    TakenOver,
    /// Any code a newer reader may send that this version does not know.
    #[serde(other)]
    Unknown,
}

impl ReaderErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::UnsupportedVersion => "unsupported_version",
            Self::NotPaired => "not_paired",
            Self::InvalidMessage => "invalid_message",
            Self::CardReadFailed => "card_read_failed",
            Self::Timeout => "timeout",
            Self::TakenOver => "taken_over",
            Self::Unknown => "unknown",
        }
    }
}

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
    let msg: ReaderMessage =
        serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
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
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { bytes: text.len() });
    }
    let msg: PosMessage =
        serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
    match &msg {
        PosMessage::Hello {
            registration_code: Some(code),
            ..
        } if code.is_empty() || code.len() > 64 => {
            return Err(FrameError::Invalid("registration_code length"));
        }
        PosMessage::Collect { request_id, .. }
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
            },
            card_payload: "AAAA".into(),
        };
        let text = to_frame(&msg);
        assert!(text.contains(r#""type":"card_read""#));
        assert_eq!(parse_reader_frame(&text).unwrap(), msg);
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
            parse_pos_frame(r#"{"type":"hello","protocol_version":1,"client":"c","token":"t"}"#)
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
            r#"{"type":"hello","protocol_version":1,"client":"c","token":"t","intent":"take_over"}"#,
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
