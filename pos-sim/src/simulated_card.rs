//! Card payloads of the SDK's in-page simulated reader: `simulated:v1:<test card number>`.
//!
//! Such a payload is not sealed, so it is only trusted in test mode and only for Stripe
//! Terminal's published test card numbers (the same list the SDK's simulated reader accepts):
//! no real PAN is ever accepted in the clear. Anything else with the prefix is refused.

/// Prefix of a simulated reader's payload. `:` is not base64, so it never starts a sealed one.
pub const PREFIX: &str = "simulated:v1:";

/// Stripe Terminal's published test card numbers (one list, shared with the SDK).
pub use pos_protocol::outcomes::TEST_CARDS;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimulatedCardError {
    #[error("card payload is not a simulated reader payload")]
    NotSimulated,
    #[error("simulated card payloads are accepted for published test card numbers only")]
    NotATestCard,
}

/// Whether `payload` claims to come from a simulated reader.
pub fn is_simulated(payload: &str) -> bool {
    payload.starts_with(PREFIX)
}

/// The test card number in a simulated reader's `payload`, if it is one of [`TEST_CARDS`].
pub fn open(payload: &str) -> Result<&str, SimulatedCardError> {
    let number = payload
        .strip_prefix(PREFIX)
        .ok_or(SimulatedCardError::NotSimulated)?;
    TEST_CARDS
        .iter()
        .copied()
        .find(|card| *card == number)
        .ok_or(SimulatedCardError::NotATestCard)
}

#[cfg(test)]
mod tests {
    use pos_protocol::outcomes::{decide, Outcome, DECLINING_CARDS};

    use super::*;

    #[test]
    fn test_cards_open_and_decide_like_sealed_ones() {
        assert_eq!(
            open("simulated:v1:4242424242424242"),
            Ok("4242424242424242")
        );
        let number = open("simulated:v1:5555555555554444").expect("test card");
        assert_eq!(decide(number, 1000), Outcome::Approved);
    }

    #[test]
    fn declining_test_card_declines() {
        let number = open("simulated:v1:4000000000009995").expect("test card");
        assert_eq!(
            decide(number, 1000),
            Outcome::Declined("insufficient_funds")
        );
        for (card, _) in DECLINING_CARDS {
            assert!(TEST_CARDS.contains(card), "{card} is a published test card");
        }
    }

    #[test]
    fn amount_ending_in_05_declines() {
        let number = open("simulated:v1:4242424242424242").expect("test card");
        assert_eq!(decide(number, 1005), Outcome::Declined("generic_decline"));
    }

    #[test]
    fn non_test_numbers_are_refused() {
        for payload in [
            "simulated:v1:4111111111111112",
            "simulated:v1:4111111111111111",
            "simulated:v1:42424242424242420",
        ] {
            assert_eq!(
                open(payload),
                Err(SimulatedCardError::NotATestCard),
                "{payload}"
            );
        }
    }

    #[test]
    fn malformed_payloads_are_refused() {
        for payload in [
            "simulated:v1:",
            "simulated:v1: 4242424242424242",
            "simulated:v1:4242424242424242 ",
            "simulated:v1:4242 4242 4242 4242",
            "simulated:v1:4242424242424242:x",
            "simulated:v2:4242424242424242",
            "SIMULATED:v1:4242424242424242",
            "simulated:4242424242424242",
            "4242424242424242",
            "",
        ] {
            assert!(open(payload).is_err(), "{payload:?}");
        }
        assert!(!is_simulated("simulated:v2:4242424242424242"));
        assert!(is_simulated("simulated:v1:4111111111111112"));
    }
}
