//! Readers: discovery and sessions. The session (`session`) and the protocol connection
//! (`connection`: hello, request/reply by request id, heartbeat) are written once over a
//! `transport::Transport` that carries text frames; WebSocket (`websocket`), WebUSB (`usb`,
//! length-framed on bulk endpoints) and an in-page simulated reader (`simulated`) are the
//! transports. Nothing above `transport` knows which one is in use.

pub mod agent;
#[cfg(target_arch = "wasm32")]
pub mod connection;
#[cfg(target_arch = "wasm32")]
pub mod session;
#[cfg(target_arch = "wasm32")]
pub mod simulated;
#[cfg(target_arch = "wasm32")]
pub mod transport;
mod url;
#[cfg(target_arch = "wasm32")]
pub mod usb;
#[cfg(target_arch = "wasm32")]
pub mod websocket;

use pos_protocol::reader::{Cart, LineItem, ReaderInfo, ReaderStatus};
use pos_protocol::EntryMode;
use serde::{Deserialize, Serialize};

use crate::error::PosError;

pub use url::{check_reader_url, is_loopback_host, url_host};

/// How a reader is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    WebSocket,
    Usb,
    Simulated,
}

pos_protocol::wire_names!(Method {
    WebSocket => "websocket",
    Usb => "usb",
    Simulated => "simulated",
});

/// Where a reader is: its transport and its address on it (`ws://…`, `usb:VID:PID:SERIAL`,
/// `simulated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub method: Method,
    pub url: String,
}

/// What `discoverReaders` looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    WebSocket {
        urls: Vec<String>,
    },
    /// Already-permitted devices, plus (with `request_permission`) the browser's chooser.
    Usb {
        request_permission: bool,
        filters: Vec<UsbFilter>,
    },
    Simulated,
}

/// A WebUSB device filter (`navigator.usb.requestDevice({ filters })`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsbFilter {
    pub vendor_id: u16,
    #[serde(default)]
    pub product_id: Option<u16>,
}

/// The USB vendor id readers of this protocol use by default: pid.codes' shared id.
pub const USB_VENDOR_ID: u16 = 0x1209;
/// The default product id: pid.codes' test product 0x0001 (for development readers).
pub const USB_PRODUCT_ID: u16 = 0x0001;
/// The interface class a reader exposes its bulk endpoints on: vendor-specific.
pub const USB_INTERFACE_CLASS: u8 = 0xff;

pub fn default_usb_filters() -> Vec<UsbFilter> {
    vec![UsbFilter {
        vendor_id: USB_VENDOR_ID,
        product_id: Some(USB_PRODUCT_ID),
    }]
}

/// The address of a USB device: `usb:<vendor hex>:<product hex>:<serial>`.
pub fn usb_address(vendor_id: u16, product_id: u16, serial: &str) -> String {
    format!("usb:{vendor_id:04x}:{product_id:04x}:{serial}")
}

/// The parts of a `usb:` address, if it is one.
pub fn parse_usb_address(url: &str) -> Option<(u16, u16, &str)> {
    let mut parts = url.strip_prefix("usb:")?.splitn(3, ':');
    let vendor = u16::from_str_radix(parts.next()?, 16).ok()?;
    let product = u16::from_str_radix(parts.next()?, 16).ok()?;
    Some((vendor, product, parts.next()?))
}

/// A reader as discovered: what it said about itself, where it is, and whether it is free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub info: ReaderInfo,
    pub address: Address,
    pub status: ReaderStatus,
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
    /// `"online"` or `"in_use"` (another POS holds it).
    pub status: &'static str,
}

impl From<&Discovered> for ReaderView {
    fn from(d: &Discovered) -> Self {
        Self {
            id: d.info.id.clone(),
            label: d.info.label.clone(),
            serial_number: d.info.serial_number.clone(),
            device_type: d.info.device_type.clone(),
            firmware_version: d.info.firmware_version.clone(),
            url: d.address.url.clone(),
            method: d.address.method.as_str(),
            status: d.status.as_str(),
        }
    }
}

/// How long each step of talking to a reader may take. One value per terminal; tests shorten
/// them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// Opening the transport and the `hello` exchange.
    pub connect_ms: u32,
    /// A display command.
    pub command_ms: u32,
    /// How long a cancel may take before the SDK ends the collect itself.
    pub cancel_ms: u32,
    /// Waiting for a card: then the SDK cancels and fails with `reader_timeout`.
    pub collect_ms: u32,
    /// Heartbeat period.
    pub heartbeat_ms: u32,
    /// Silence (no frame at all, pongs included) after which the reader counts as gone.
    pub silence_ms: u32,
    /// Reconnection attempts after an unexpected disconnect, and the first delay (doubling).
    pub reconnect_attempts: u32,
    pub reconnect_base_ms: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect_ms: 5_000,
            command_ms: 5_000,
            cancel_ms: 3_000,
            collect_ms: 120_000,
            heartbeat_ms: 1_000,
            // Three missed heartbeats and a margin: a dead reader is noticed within ~4 s.
            silence_ms: 3_500,
            reconnect_attempts: 5,
            reconnect_base_ms: 500,
        }
    }
}

/// Delay before reconnection attempt `attempt` (1-based): doubling from `base`, capped at 8 s.
pub fn reconnect_delay_ms(base_ms: u32, attempt: u32) -> u32 {
    let doubled = u64::from(base_ms) << attempt.saturating_sub(1).min(16);
    doubled.min(8_000) as u32
}

/// The in-page simulated reader's settings (`setSimulatorConfiguration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatorConfig {
    /// The test card the next collects read (Stripe's test numbers).
    pub test_card_number: String,
    /// Time between `collect` and the simulated tap.
    pub tap_delay_ms: u32,
    /// How the next cards are read (default chip: inserted).
    pub entry_mode: EntryMode,
    /// The cardholder entered their PIN (default true, with chip).
    pub pin_verified: bool,
    /// The country of the reader's location, ISO 3166-1 alpha-2 (default `US`): decides
    /// the offline rules (in the EEA only chip + PIN may be stored).
    pub country: String,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            test_card_number: "4242424242424242".into(),
            tap_delay_ms: 800,
            entry_mode: EntryMode::Chip,
            pin_verified: true,
            country: "US".into(),
        }
    }
}

/// `chip`, `contactless` or `swipe`, as `setSimulatorConfiguration` takes it.
pub fn parse_entry_mode(s: &str) -> Result<EntryMode, PosError> {
    match s {
        "chip" => Ok(EntryMode::Chip),
        "contactless" => Ok(EntryMode::Contactless),
        "swipe" => Ok(EntryMode::Swipe),
        _ => Err(PosError::InvalidArgument(
            "entryMode must be \"chip\", \"contactless\" or \"swipe\"".into(),
        )),
    }
}

/// Test card numbers the simulated reader accepts: Stripe Terminal's published test cards.
pub use pos_protocol::outcomes::TEST_CARDS as SIMULATOR_TEST_CARDS;

impl SimulatorConfig {
    /// Sets the test card, refusing anything but a published test number (no real PAN ever
    /// enters the simulator).
    pub fn set_test_card(&mut self, number: &str) -> Result<(), PosError> {
        if !SIMULATOR_TEST_CARDS.contains(&number) {
            return Err(PosError::InvalidArgument(
                "testCardNumber must be one of the published test card numbers".into(),
            ));
        }
        self.test_card_number = number.to_string();
        Ok(())
    }

    /// Sets how cards are read; the PIN follows the usual practice unless `pin_verified`
    /// says otherwise: entered for chip, not for contactless (below the CVM limit) or swipe.
    pub fn set_entry(&mut self, entry_mode: EntryMode, pin_verified: Option<bool>) {
        self.entry_mode = entry_mode;
        self.pin_verified = pin_verified.unwrap_or(entry_mode == EntryMode::Chip);
    }

    /// Sets the location's country: two ASCII letters, kept upper case.
    pub fn set_country(&mut self, country: &str) -> Result<(), PosError> {
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(PosError::InvalidArgument(
                "country must be an ISO 3166-1 alpha-2 code such as \"US\" or \"FR\"".into(),
            ));
        }
        self.country = country.to_ascii_uppercase();
        Ok(())
    }
}

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
    fn usb_addresses_round_trip() {
        let a = usb_address(0x1209, 0x0001, "SIM-0002");
        assert_eq!(a, "usb:1209:0001:SIM-0002");
        assert_eq!(parse_usb_address(&a), Some((0x1209, 1, "SIM-0002")));
        assert_eq!(parse_usb_address("usb:zz:1:x"), None);
        assert_eq!(parse_usb_address("ws://x"), None);
    }

    #[test]
    fn reconnect_delays_double_then_cap() {
        assert_eq!(reconnect_delay_ms(500, 1), 500);
        assert_eq!(reconnect_delay_ms(500, 3), 2_000);
        assert_eq!(reconnect_delay_ms(500, 40), 8_000);
    }

    #[test]
    fn the_simulator_takes_only_test_cards() {
        let mut c = SimulatorConfig::default();
        c.set_test_card("4000000000000002").unwrap();
        assert_eq!(c.test_card_number, "4000000000000002");
        assert_eq!(
            c.set_test_card("4111111111111112").unwrap_err().code(),
            "invalid_argument"
        );
    }

    #[test]
    fn the_simulator_reads_chip_with_pin_in_the_us_by_default() {
        let mut c = SimulatorConfig::default();
        assert_eq!(
            (c.entry_mode, c.pin_verified, c.country.as_str()),
            (EntryMode::Chip, true, "US")
        );
        c.set_entry(parse_entry_mode("contactless").unwrap(), None);
        assert!(!c.pin_verified);
        c.set_entry(parse_entry_mode("swipe").unwrap(), Some(true));
        assert_eq!((c.entry_mode, c.pin_verified), (EntryMode::Swipe, true));
        c.set_entry(EntryMode::Chip, None);
        assert!(c.pin_verified);
        assert_eq!(
            parse_entry_mode("tap").unwrap_err().code(),
            "invalid_argument"
        );
        c.set_country("fr").unwrap();
        assert_eq!(c.country, "FR");
        for bad in ["", "F", "FRA", "F1", "é"] {
            assert!(c.set_country(bad).is_err(), "{bad}");
        }
        assert_eq!(c.country, "FR");
    }

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
