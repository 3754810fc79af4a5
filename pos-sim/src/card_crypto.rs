//! The card payload: what a simulated reader encrypts for the backend, so the POS in between
//! only ever holds ciphertext.
//!
//! Payload = standard base64 of `nonce (12 bytes) || AES-256-GCM ciphertext+tag`; the
//! plaintext is [`CardData`] as JSON; the AAD is `"pos-sim/card/v1|" + reader_id`, which binds
//! a payload to the reader that produced it.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// AAD prefix; the reader id follows it.
pub const AAD_PREFIX: &str = "pos-sim/card/v1|";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CardCryptoError {
    #[error("card payload is not base64")]
    NotBase64,
    #[error("card payload is too short")]
    TooShort,
    #[error("card payload does not decrypt (wrong key, reader or tampered)")]
    Decrypt,
    #[error("card payload plaintext is not a card")]
    BadPlaintext,
    #[error("card payload could not be sealed")]
    Encrypt,
}

fn aad(reader_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + reader_id.len());
    aad.extend_from_slice(AAD_PREFIX.as_bytes());
    aad.extend_from_slice(reader_id.as_bytes());
    aad
}

/// Seals `card` for the backend, bound to `reader_id`.
pub fn encrypt(key: &CardKey, reader_id: &str, card: &CardData) -> Result<String, CardCryptoError> {
    let plaintext = serde_json::to_vec(card).map_err(|_| CardCryptoError::Encrypt)?;
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.as_bytes()));
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = aad(reader_id);
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| CardCryptoError::Encrypt)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(BASE64.encode(out))
}

/// Opens a payload produced by [`encrypt`] for the same `reader_id`.
pub fn decrypt(key: &CardKey, reader_id: &str, payload: &str) -> Result<CardData, CardCryptoError> {
    let raw = BASE64
        .decode(payload.as_bytes())
        .map_err(|_| CardCryptoError::NotBase64)?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err(CardCryptoError::TooShort);
    }
    let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.as_bytes()));
    let aad = aad(reader_id);
    let plaintext = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| CardCryptoError::Decrypt)?;
    let card: CardData =
        serde_json::from_slice(&plaintext).map_err(|_| CardCryptoError::BadPlaintext)?;
    if !is_card_number(&card.number) {
        return Err(CardCryptoError::BadPlaintext);
    }
    Ok(card)
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

    #[test]
    fn round_trip() {
        let key = CardKey::random();
        let payload = encrypt(&key, "rdr_sim_1", &card()).expect("encrypt");
        assert!(!payload.contains("4242"), "payload must not show the PAN");
        let back = decrypt(&key, "rdr_sim_1", &payload).expect("decrypt");
        assert_eq!(back, card());
    }

    #[test]
    fn nonces_differ_between_payloads() {
        let key = CardKey::random();
        let a = encrypt(&key, "rdr_sim_1", &card()).expect("encrypt");
        let b = encrypt(&key, "rdr_sim_1", &card()).expect("encrypt");
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_reader_id_fails() {
        let key = CardKey::random();
        let payload = encrypt(&key, "rdr_sim_1", &card()).expect("encrypt");
        assert_eq!(
            decrypt(&key, "rdr_sim_2", &payload),
            Err(CardCryptoError::Decrypt)
        );
    }

    #[test]
    fn wrong_key_fails() {
        let payload = encrypt(&CardKey::random(), "rdr_sim_1", &card()).expect("encrypt");
        assert_eq!(
            decrypt(&CardKey::random(), "rdr_sim_1", &payload),
            Err(CardCryptoError::Decrypt)
        );
    }

    #[test]
    fn flipped_byte_fails() {
        let key = CardKey::random();
        let payload = encrypt(&key, "rdr_sim_1", &card()).expect("encrypt");
        let mut raw = BASE64.decode(payload).expect("base64");
        for i in [0, NONCE_LEN, raw.len() - 1] {
            let mut tampered = raw.clone();
            tampered[i] ^= 0x01;
            assert_eq!(
                decrypt(&key, "rdr_sim_1", &BASE64.encode(&tampered)),
                Err(CardCryptoError::Decrypt),
                "byte {i}"
            );
        }
        raw.truncate(NONCE_LEN + TAG_LEN - 1);
        assert_eq!(
            decrypt(&key, "rdr_sim_1", &BASE64.encode(&raw)),
            Err(CardCryptoError::TooShort)
        );
    }

    #[test]
    fn garbage_is_not_base64() {
        let key = CardKey::random();
        assert_eq!(
            decrypt(&key, "rdr_sim_1", "not base64!!"),
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
