//! Outcome rules of the simulated backend, after Stripe Terminal's documented test cards and
//! test amounts: a test card number decides first, then the amount's last two digits.

/// What the backend does with a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Approved,
    /// Declined with `card_declined` and this decline code.
    Declined(&'static str),
}

/// Stripe Terminal's published test card numbers: the only numbers the SDK's in-page
/// simulated reader uses and pos-sim accepts in a simulated (unsealed) payload.
pub const TEST_CARDS: &[&str] = &[
    "4242424242424242",
    "4000056655665556",
    "5555555555554444",
    "2223003122003222",
    "5200828282828210",
    "378282246310005",
    "6011111111111117",
    "3056930009020004",
    "3566002020360505",
    "6200000000000005",
    "4506445006931933",
    "4000000000000002",
    "4000000000009995",
    "4000000000009987",
    "4000000000009979",
    "4000000000000069",
    "4000000000000119",
];

/// Test card numbers that decline, with their decline codes.
pub const DECLINING_CARDS: &[(&str, &str)] = &[
    ("4000000000000002", "generic_decline"),
    ("4000000000009995", "insufficient_funds"),
    ("4000000000009987", "lost_card"),
    ("4000000000009979", "stolen_card"),
    ("4000000000000069", "expired_card"),
    ("4000000000000119", "processing_error"),
];

/// Test amounts: the amount's last two digits (in minor units) and the decline they cause.
pub const DECLINING_AMOUNT_ENDINGS: &[(u64, &str)] = &[
    (1, "call_issuer"),
    (5, "generic_decline"),
    (55, "incorrect_pin"),
    (65, "withdrawal_count_limit_exceeded"),
    (75, "pin_try_exceeded"),
];

/// Decides the outcome of a payment of `amount` (minor units) on card `number`.
pub fn decide(number: &str, amount: u64) -> Outcome {
    if let Some((_, code)) = DECLINING_CARDS.iter().find(|(n, _)| *n == number) {
        return Outcome::Declined(code);
    }
    let ending = amount % 100;
    if let Some((_, code)) = DECLINING_AMOUNT_ENDINGS.iter().find(|(e, _)| *e == ending) {
        return Outcome::Declined(code);
    }
    Outcome::Approved
}

/// The brand of a test card number, by its prefix.
pub fn brand_of(number: &str) -> &'static str {
    let starts = |p: &str| number.starts_with(p);
    if starts("4506445") {
        "interac"
    } else if starts("4") {
        "visa"
    } else if starts("5") || starts("2") {
        "mastercard"
    } else if starts("34") || starts("37") {
        "amex"
    } else if starts("6011") || starts("65") {
        "discover"
    } else if starts("62") {
        "unionpay"
    } else if starts("35") {
        "jcb"
    } else if starts("30") || starts("36") || starts("38") {
        "diners"
    } else {
        "unknown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_decide_first() {
        assert_eq!(decide("4242424242424242", 1000), Outcome::Approved);
        assert_eq!(
            decide("4000000000000002", 1000),
            Outcome::Declined("generic_decline")
        );
        assert_eq!(
            decide("4000000000009995", 1000),
            Outcome::Declined("insufficient_funds")
        );
    }

    #[test]
    fn amount_endings_decline() {
        assert_eq!(
            decide("4242424242424242", 1005),
            Outcome::Declined("generic_decline")
        );
        assert_eq!(
            decide("4242424242424242", 2055),
            Outcome::Declined("incorrect_pin")
        );
        assert_eq!(
            decide("4242424242424242", 101),
            Outcome::Declined("call_issuer")
        );
        assert_eq!(decide("4242424242424242", 1010), Outcome::Approved);
    }

    #[test]
    fn brands_by_prefix() {
        assert_eq!(brand_of("4242424242424242"), "visa");
        assert_eq!(brand_of("5555555555554444"), "mastercard");
        assert_eq!(brand_of("378282246310005"), "amex");
        assert_eq!(brand_of("6011111111111117"), "discover");
        assert_eq!(brand_of("4506445006931933"), "interac");
    }
}
