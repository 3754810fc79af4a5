//! Readers: discovery and sessions. A transport carries reader-protocol messages
//! (`pos_protocol::reader`); WebSocket today, WebUSB (same JSON, length-framed) later.

pub mod websocket;

use pos_protocol::reader::ReaderInfo;

/// A reader as discovered: what it said about itself and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub info: ReaderInfo,
    pub url: String,
}

/// How long to wait for a reader to open and answer `hello`.
pub const CONNECT_TIMEOUT_MS: u32 = 5_000;
/// How long a cancel may take before the SDK gives up waiting for the reader's `canceled`.
pub const CANCEL_TIMEOUT_MS: u32 = 3_000;
/// How long a display command may take.
pub const COMMAND_TIMEOUT_MS: u32 = 5_000;
/// Heartbeat period, and how long without any frame before the reader is considered gone.
pub const HEARTBEAT_MS: u32 = 5_000;
pub const SILENCE_LIMIT_MS: f64 = 20_000.0;
