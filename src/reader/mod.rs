//! Readers: discovery and sessions. A transport carries reader-protocol messages
//! (`pos_protocol::reader`); WebSocket today, WebUSB (same JSON, length-framed) later.

#[cfg(target_arch = "wasm32")]
pub mod session;
#[cfg(target_arch = "wasm32")]
pub mod websocket;

use pos_protocol::reader::{Cart, LineItem, ReaderInfo};
use serde::{Deserialize, Serialize};

use crate::error::PosError;

/// A reader as discovered: what it said about itself and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub info: ReaderInfo,
    pub url: String,
}

/// A reader as the caller sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReaderView {
    pub id: String,
    pub label: String,
    pub serial_number: String,
    pub device_type: String,
    pub firmware_version: String,
    pub url: String,
    pub method: &'static str,
}

impl From<&Discovered> for ReaderView {
    fn from(d: &Discovered) -> Self {
        Self {
            id: d.info.id.clone(),
            label: d.info.label.clone(),
            serial_number: d.info.serial_number.clone(),
            device_type: d.info.device_type.clone(),
            firmware_version: d.info.firmware_version.clone(),
            url: d.url.clone(),
            method: "websocket",
        }
    }
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

/// At most this many line items on a reader's display.
pub const MAX_CART_ITEMS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 120;

/// A cart as the caller passes it to `setReaderDisplay`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CartInput {
    pub line_items: Vec<LineItemInput>,
    #[serde(default)]
    pub tax: u64,
    pub total: u64,
    pub currency: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LineItemInput {
    pub description: String,
    pub amount: u64,
    pub quantity: u32,
}

impl CartInput {
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
            .any(|i| i.description.chars().count() > MAX_DESCRIPTION_CHARS)
        {
            return Err(PosError::InvalidArgument(format!(
                "line item descriptions are at most {MAX_DESCRIPTION_CHARS} characters"
            )));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carts_are_bounded() {
        let cart = |items: usize, description: &str| CartInput {
            line_items: (0..items)
                .map(|_| LineItemInput {
                    description: description.into(),
                    amount: 100,
                    quantity: 1,
                })
                .collect(),
            tax: 0,
            total: 100,
            currency: "usd".into(),
        };
        assert_eq!(cart(2, "Coffee").into_cart().unwrap().line_items.len(), 2);
        assert!(cart(MAX_CART_ITEMS + 1, "x").into_cart().is_err());
        assert!(cart(1, &"é".repeat(121)).into_cart().is_err());
        let mut bad = cart(1, "x");
        bad.currency = "USD".into();
        assert_eq!(bad.into_cart().unwrap_err().code(), "invalid_currency");
    }
}
