//! Wire formats shared by the `pos-terminal` SDK, the `pos-sim` simulator and anyone
//! implementing the other side: the reader protocol (`reader`), the backend API bodies
//! (`backend`) and the test-card outcome rules (`outcomes`), and the map their bodies use
//! (`SortedMap`). No browser or server code here.

pub mod backend;
pub mod offline_rules;
pub mod outcomes;
pub mod reader;
pub mod sorted_map;
pub mod wire_name;

pub use sorted_map::SortedMap;

/// The card data a receipt may show. Never a PAN.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CardSummary {
    /// `visa`, `mastercard`, `amex`, `discover`, `diners`, `jcb`, `unionpay`, `maestro`,
    /// `eftpos`, `cartes_bancaires`, `interac`, `girocard`, `nyce`, `pulse`, `star` or
    /// `unknown`.
    pub brand: String,
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: u16,
    /// How the card was read. Absent from readers that do not say: such a payment is not
    /// stored offline (`offline_rules`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_mode: Option<EntryMode>,
    /// The cardholder entered their PIN (verified by the card, for chip).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pin_verified: bool,
}

/// How the reader read the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryMode {
    /// Inserted: the chip was read (EMV contact).
    Chip,
    /// Tapped: a contactless card or an NFC wallet.
    Contactless,
    /// The magnetic stripe was swiped.
    Swipe,
}

crate::wire_names!(EntryMode {
    Chip => "chip",
    Contactless => "contactless",
    Swipe => "swipe",
});
