//! AES-256-GCM sealing shared by the card payload ([`crate::card_crypto`]) and the readers'
//! store ([`crate::reader_store`]): `nonce (12 bytes) || ciphertext+tag`, bound to an AAD.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// Sealing or opening failed: nothing more is said (wrong key, tampered, or too short).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealError;

/// `plaintext` sealed under `key` with a fresh random nonce, bound to `aad`.
pub fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    seal_with_nonce(key, nonce, plaintext, aad)
}

/// [`seal`] with a given nonce (tests seal by hand with fixed ones).
pub fn seal_with_nonce(
    key: &[u8; 32],
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, SealError> {
    let ciphertext = cipher(key)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| SealError)?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// The plaintext of `sealed` (as [`seal`] makes it) when it opens under `key` and `aad`.
pub fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(SealError);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    cipher(key)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| SealError)
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_its_key_and_aad() {
        let key = [9u8; 32];
        let sealed = seal(&key, b"hello", b"aad").expect("seal");
        assert_eq!(sealed.len(), NONCE_LEN + 5 + TAG_LEN);
        assert_eq!(open(&key, &sealed, b"aad").expect("open"), b"hello");
        assert_eq!(open(&key, &sealed, b"other"), Err(SealError));
        assert_eq!(open(&[8u8; 32], &sealed, b"aad"), Err(SealError));
        assert_eq!(
            open(&key, &sealed[..NONCE_LEN + TAG_LEN - 1], b"aad"),
            Err(SealError)
        );
        assert_ne!(
            seal(&key, b"hello", b"aad").expect("seal"),
            sealed,
            "fresh nonces"
        );
    }
}
