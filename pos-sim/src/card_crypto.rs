//! The card payload: what a simulated reader encrypts for the backend, so the POS in between
//! only ever holds ciphertext.
//!
//! Payload v2 = `"sealed:v2:"` + standard base64 of `nonce (12 bytes) || AES-256-GCM
//! ciphertext+tag`. The plaintext is [`SealedCard`] as JSON: the card and the payment it was
//! read for (`payment_id`, `amount`, `currency`). The AAD is
//! `"pos-sim/card/v2|" + reader_id + "|" + payment_id + "|" + amount + "|" + currency`: a
//! payload opens only for the reader that sealed it and the exact payment it was read for.
//!
//! Version 1 payloads (bare base64, AAD `"pos-sim/card/v1|" + reader_id`) were bound to the
//! reader only, so anyone holding one could charge it for any amount: they are refused.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::seal::{self, NONCE_LEN, TAG_LEN};

/// Text prefix of a v2 payload (`:` is not base64, so a v1 payload never starts with it).
pub const PAYLOAD_PREFIX: &str = "sealed:v2:";
/// AAD prefix; `reader_id|payment_id|amount|currency` follows it.
pub const AAD_PREFIX: &str = "pos-sim/card/v2|";

/// The 32-byte key shared by the simulated readers and the simulated backend.
#[derive(Clone)]
pub struct CardKey([u8; 32]);

impl CardKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for CardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardKey(..)")
    }
}

/// What the reader read off the card. Lives only inside the encrypted payload.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardData {
    pub number: String,
    pub exp_month: u8,
    pub exp_year: u16,
}

impl std::fmt::Debug for CardData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the PAN, not even in a debug dump.
        f.debug_struct("CardData")
            .field("number", &"<redacted>")
            .field("exp_month", &self.exp_month)
            .field("exp_year", &self.exp_year)
            .finish()
    }
}

/// The payment a card was read for: sealed with the card, and in the AAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardBinding {
    /// The collect's `request_id`, which is the payment id (the body's `id`).
    pub payment_id: String,
    pub amount: u64,
    pub currency: String,
}

/// The plaintext of a v2 payload.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedCard {
    number: String,
    exp_month: u8,
    exp_year: u16,
    payment_id: String,
    amount: u64,
    currency: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CardCryptoError {
    #[error("card payload is not a v2 sealed payload (unbound v1 payloads are refused)")]
    NotV2,
    #[error("card payload is not base64")]
    NotBase64,
    #[error("card payload is too short")]
    TooShort,
    /// Wrong key, or sealed for another reader, payment id, amount or currency, or altered:
    /// AES-GCM cannot tell these apart.
    #[error("card payload was not sealed for this reader, payment id, amount and currency (or was altered)")]
    Mismatch,
    #[error("card payload plaintext is not a card")]
    BadPlaintext,
    #[error("card payload could not be sealed")]
    Encrypt,
}

impl CardCryptoError {
    /// True when the payload is well formed but bound to something else than the request
    /// (`card_payload_mismatch`); false for a malformed one (`invalid_card_payload`).
    pub fn is_mismatch(&self) -> bool {
        matches!(self, Self::Mismatch)
    }
}

fn aad(reader_id: &str, binding: &CardBinding) -> Vec<u8> {
    format!(
        "{AAD_PREFIX}{reader_id}|{}|{}|{}",
        binding.payment_id, binding.amount, binding.currency
    )
    .into_bytes()
}

/// Seals `card` for the backend, bound to `reader_id` and the payment in `binding`.
pub fn encrypt(
    key: &CardKey,
    reader_id: &str,
    binding: &CardBinding,
    card: &CardData,
) -> Result<String, CardCryptoError> {
    let sealed = SealedCard {
        number: card.number.clone(),
        exp_month: card.exp_month,
        exp_year: card.exp_year,
        payment_id: binding.payment_id.clone(),
        amount: binding.amount,
        currency: binding.currency.clone(),
    };
    let plaintext = serde_json::to_vec(&sealed).map_err(|_| CardCryptoError::Encrypt)?;
    let out = seal::seal(key.as_bytes(), &plaintext, &aad(reader_id, binding))
        .map_err(|_| CardCryptoError::Encrypt)?;
    Ok(format!("{PAYLOAD_PREFIX}{}", BASE64.encode(out)))
}

/// Opens a payload produced by [`encrypt`] for the same `reader_id` and `binding`.
pub fn decrypt(
    key: &CardKey,
    reader_id: &str,
    binding: &CardBinding,
    payload: &str,
) -> Result<CardData, CardCryptoError> {
    let encoded = payload
        .strip_prefix(PAYLOAD_PREFIX)
        .ok_or(CardCryptoError::NotV2)?;
    let raw = BASE64
        .decode(encoded.as_bytes())
        .map_err(|_| CardCryptoError::NotBase64)?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err(CardCryptoError::TooShort);
    }
    let plaintext = seal::open(key.as_bytes(), &raw, &aad(reader_id, binding))
        .map_err(|_| CardCryptoError::Mismatch)?;
    let sealed: SealedCard =
        serde_json::from_slice(&plaintext).map_err(|_| CardCryptoError::BadPlaintext)?;
    if !is_card_number(&sealed.number) {
        return Err(CardCryptoError::BadPlaintext);
    }
    // The AAD already binds these; the sealed copy must agree too.
    if sealed.payment_id != binding.payment_id
        || sealed.amount != binding.amount
        || sealed.currency != binding.currency
    {
        return Err(CardCryptoError::Mismatch);
    }
    Ok(CardData {
        number: sealed.number,
        exp_month: sealed.exp_month,
        exp_year: sealed.exp_year,
    })
}

/// 12 to 19 ASCII digits.
pub fn is_card_number(number: &str) -> bool {
    (12..=19).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> CardData {
        CardData {
            number: "4242424242424242".into(),
            exp_month: 12,
            exp_year: 2029,
        }
    }

    fn binding() -> CardBinding {
        CardBinding {
            payment_id: "pay_1".into(),
            amount: 1000,
            currency: "usd".into(),
        }
    }

    fn seal(key: &CardKey) -> String {
        encrypt(key, "rdr_sim_1", &binding(), &card()).expect("encrypt")
    }

    #[test]
    fn round_trip() {
        let key = CardKey::random();
        let payload = seal(&key);
        assert!(payload.starts_with(PAYLOAD_PREFIX));
        assert!(!payload.contains("4242"), "payload must not show the PAN");
        let back = decrypt(&key, "rdr_sim_1", &binding(), &payload).expect("decrypt");
        assert_eq!(back, card());
    }

    #[test]
    fn nonces_differ_between_payloads() {
        let key = CardKey::random();
        assert_ne!(seal(&key), seal(&key));
    }

    #[test]
    fn another_reader_payment_amount_or_currency_is_a_mismatch() {
        let key = CardKey::random();
        let payload = seal(&key);
        assert_eq!(
            decrypt(&key, "rdr_sim_2", &binding(), &payload),
            Err(CardCryptoError::Mismatch)
        );
        let others = [
            CardBinding {
                payment_id: "pay_2".into(),
                ..binding()
            },
            CardBinding {
                amount: 1001,
                ..binding()
            },
            CardBinding {
                currency: "eur".into(),
                ..binding()
            },
        ];
        for other in &others {
            let err = decrypt(&key, "rdr_sim_1", other, &payload).expect_err("mismatch");
            assert_eq!(err, CardCryptoError::Mismatch, "{other:?}");
            assert!(err.is_mismatch());
        }
    }

    #[test]
    fn the_separator_cannot_shift_fields() {
        // "rdr|a" + "b" and "rdr" + "a|b" must not seal the same AAD: ids never contain '|'
        // (the API refuses them), and the amount is digits only; pinned here anyway.
        let key = CardKey::random();
        let payload = encrypt(
            &key,
            "rdr_sim_1",
            &CardBinding {
                payment_id: "pay_1".into(),
                amount: 10,
                currency: "usd".into(),
            },
            &card(),
        )
        .expect("encrypt");
        let shifted = CardBinding {
            payment_id: "pay_1|10".into(),
            amount: 0,
            currency: "usd".into(),
        };
        assert!(decrypt(&key, "rdr_sim_1", &shifted, &payload).is_err());
    }

    #[test]
    fn a_plaintext_that_disagrees_with_its_aad_is_refused() {
        // Sealed by hand: the AAD says pay_1/1000/usd, the plaintext says 5000.
        let key = CardKey::random();
        let plaintext = br#"{"number":"4242424242424242","exp_month":12,"exp_year":2029,"payment_id":"pay_1","amount":5000,"currency":"usd"}"#;
        let raw = seal::seal_with_nonce(
            key.as_bytes(),
            [7u8; NONCE_LEN],
            plaintext,
            &aad("rdr_sim_1", &binding()),
        )
        .expect("seal");
        let payload = format!("{PAYLOAD_PREFIX}{}", BASE64.encode(raw));
        assert_eq!(
            decrypt(&key, "rdr_sim_1", &binding(), &payload),
            Err(CardCryptoError::Mismatch)
        );
    }

    #[test]
    fn unbound_v1_payloads_are_refused() {
        // A v1 payload: bare base64 of nonce || AES-GCM(card) with AAD "pos-sim/card/v1|rdr".
        let key = CardKey::random();
        let raw = seal::seal_with_nonce(
            key.as_bytes(),
            [1u8; NONCE_LEN],
            br#"{"number":"4242424242424242","exp_month":12,"exp_year":2029}"#,
            b"pos-sim/card/v1|rdr_sim_1",
        )
        .expect("seal");
        let v1 = BASE64.encode(raw);
        let err = decrypt(&key, "rdr_sim_1", &binding(), &v1).expect_err("refused");
        assert_eq!(err, CardCryptoError::NotV2);
        assert!(!err.is_mismatch());
        // Even with the v2 prefix it does not open.
        assert!(decrypt(
            &key,
            "rdr_sim_1",
            &binding(),
            &format!("{PAYLOAD_PREFIX}{v1}")
        )
        .is_err());
    }

    #[test]
    fn wrong_key_fails() {
        let payload = seal(&CardKey::random());
        assert_eq!(
            decrypt(&CardKey::random(), "rdr_sim_1", &binding(), &payload),
            Err(CardCryptoError::Mismatch)
        );
    }

    #[test]
    fn flipped_byte_fails() {
        let key = CardKey::random();
        let payload = seal(&key);
        let encoded = payload.strip_prefix(PAYLOAD_PREFIX).expect("prefix");
        let mut raw = BASE64.decode(encoded).expect("base64");
        for i in [0, NONCE_LEN, raw.len() - 1] {
            let mut tampered = raw.clone();
            tampered[i] ^= 0x01;
            let tampered = format!("{PAYLOAD_PREFIX}{}", BASE64.encode(&tampered));
            assert_eq!(
                decrypt(&key, "rdr_sim_1", &binding(), &tampered),
                Err(CardCryptoError::Mismatch),
                "byte {i}"
            );
        }
        raw.truncate(NONCE_LEN + TAG_LEN - 1);
        let short = format!("{PAYLOAD_PREFIX}{}", BASE64.encode(&raw));
        assert_eq!(
            decrypt(&key, "rdr_sim_1", &binding(), &short),
            Err(CardCryptoError::TooShort)
        );
    }

    #[test]
    fn garbage_is_not_base64() {
        let key = CardKey::random();
        let garbage = format!("{PAYLOAD_PREFIX}not base64!!");
        assert_eq!(
            decrypt(&key, "rdr_sim_1", &binding(), &garbage),
            Err(CardCryptoError::NotBase64)
        );
    }

    #[test]
    fn debug_never_prints_the_number() {
        assert!(!format!("{:?}", card()).contains("4242"));
    }

    #[test]
    fn card_numbers() {
        assert!(is_card_number("424242424242"));
        assert!(is_card_number("4242424242424242424"));
        assert!(!is_card_number("42424242424"));
        assert!(!is_card_number("42424242424242424242"));
        assert!(!is_card_number("4242 4242 4242 4242"));
    }
}
