//! Which payments may be stored offline, whoever stores them (the SDK or the reader), after
//! Stripe Terminal's documented rules: chip and contactless (cards and NFC wallets) of the
//! listed brands; never a swiped card, nor the debit networks that need an online
//! authorisation; in the European Economic Area, only an inserted card with its PIN.

use crate::{CardSummary, EntryMode};

/// Brands whose cards may be stored offline.
pub const OFFLINE_BRANDS: &[&str] = &[
    "visa",
    "mastercard",
    "amex",
    "discover",
    "jcb",
    "unionpay",
    "maestro",
    "eftpos",
    "cartes_bancaires",
];

/// Brands refused offline by name (they need an online authorisation).
pub const ONLINE_ONLY_BRANDS: &[&str] = &["nyce", "pulse", "star", "girocard", "interac"];

/// The European Economic Area (EU 27, Iceland, Liechtenstein, Norway), ISO 3166-1 alpha-2.
pub const EEA_COUNTRIES: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
];

/// Why a payment may not be stored offline. Each maps to the error code
/// `offline_payment_method_unsupported`; the variant says which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfflineRefusal {
    /// The reader did not say how the card was read.
    EntryModeUnknown,
    /// A swiped card.
    Swiped,
    /// A brand refused offline, or one not on the list.
    Brand(String),
    /// In the EEA, only an inserted card with its PIN.
    EeaRequiresChipAndPin { country: String },
}

impl std::fmt::Display for OfflineRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EntryModeUnknown => {
                f.write_str("the reader did not say how the card was read; offline needs chip or contactless")
            }
            Self::Swiped => f.write_str("swiped cards cannot be stored offline; insert or tap the card"),
            Self::Brand(brand) => write!(f, "{brand} cards cannot be stored offline"),
            Self::EeaRequiresChipAndPin { country } => write!(
                f,
                "in the European Economic Area ({country}) an offline payment needs the card inserted and its PIN"
            ),
        }
    }
}

impl std::error::Error for OfflineRefusal {}

/// True for a country of the European Economic Area (`country` in either case).
pub fn is_eea(country: &str) -> bool {
    EEA_COUNTRIES
        .iter()
        .any(|c| c.eq_ignore_ascii_case(country.trim()))
}

/// Whether `card`, read by a reader located in `country`, may be stored offline.
pub fn check(card: &CardSummary, country: Option<&str>) -> Result<(), OfflineRefusal> {
    let entry = card.entry_mode.ok_or(OfflineRefusal::EntryModeUnknown)?;
    if entry == EntryMode::Swipe {
        return Err(OfflineRefusal::Swiped);
    }
    if !OFFLINE_BRANDS.contains(&card.brand.as_str()) {
        return Err(OfflineRefusal::Brand(card.brand.clone()));
    }
    if let Some(country) = country.filter(|c| is_eea(c)) {
        if entry != EntryMode::Chip || !card.pin_verified {
            return Err(OfflineRefusal::EeaRequiresChipAndPin {
                country: country.to_ascii_uppercase(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(brand: &str, entry: Option<EntryMode>, pin: bool) -> CardSummary {
        CardSummary {
            brand: brand.into(),
            last4: "4242".into(),
            exp_month: 12,
            exp_year: 2030,
            entry_mode: entry,
            pin_verified: pin,
        }
    }

    #[test]
    fn chip_and_contactless_of_listed_brands_pass_outside_the_eea() {
        for brand in OFFLINE_BRANDS {
            assert_eq!(
                check(&card(brand, Some(EntryMode::Chip), false), Some("US")),
                Ok(())
            );
            assert_eq!(
                check(&card(brand, Some(EntryMode::Contactless), false), None),
                Ok(())
            );
        }
    }

    #[test]
    fn swipe_online_only_brands_and_unknown_entry_are_refused() {
        assert_eq!(
            check(&card("visa", Some(EntryMode::Swipe), true), Some("US")),
            Err(OfflineRefusal::Swiped)
        );
        for brand in ONLINE_ONLY_BRANDS.iter().chain(&["diners", "unknown"]) {
            assert_eq!(
                check(&card(brand, Some(EntryMode::Chip), true), Some("CA")),
                Err(OfflineRefusal::Brand((*brand).into()))
            );
        }
        assert_eq!(
            check(&card("visa", None, true), None),
            Err(OfflineRefusal::EntryModeUnknown)
        );
    }

    #[test]
    fn the_eea_needs_chip_and_pin() {
        assert_eq!(
            check(&card("visa", Some(EntryMode::Chip), true), Some("fr")),
            Ok(())
        );
        for (entry, pin) in [
            (EntryMode::Chip, false),
            (EntryMode::Contactless, true),
            (EntryMode::Contactless, false),
        ] {
            assert_eq!(
                check(&card("mastercard", Some(entry), pin), Some("DE")),
                Err(OfflineRefusal::EeaRequiresChipAndPin {
                    country: "DE".into()
                })
            );
        }
        assert!(is_eea("NO") && is_eea("is") && !is_eea("GB") && !is_eea("CH"));
    }
}
