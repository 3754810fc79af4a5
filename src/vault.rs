//! Sealing of stored records: AES-256-GCM, a random 96-bit nonce per seal, and associated
//! data binding the database name, the record id and the schema version the record was
//! written under (its own, not this SDK's: a record sealed by version N stays readable by
//! N+1), so a record cannot be swapped for another or replayed into another database.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::{Zeroize, Zeroizing};

use crate::error::PosError;

pub const NONCE_LEN: usize = 12;
pub const KEY_LEN: usize = 32;

pub struct Vault {
    cipher: Aes256Gcm,
    db_name: String,
}

impl Vault {
    /// Takes the raw data key and wipes the caller's copy.
    pub fn from_key(key: &mut [u8; KEY_LEN], db_name: &str) -> Self {
        let cipher = Aes256Gcm::new(&(*key).into());
        key.zeroize();
        Self {
            cipher,
            db_name: db_name.to_string(),
        }
    }

    fn aad(&self, record_id: &str, version: u32) -> Vec<u8> {
        format!("{}|{}|{}", self.db_name, record_id, version).into_bytes()
    }

    /// `nonce || ciphertext || tag`, bound to `record_id` and the schema `version`.
    pub fn seal(
        &self,
        record_id: &str,
        version: u32,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, PosError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|e| PosError::Crypto(e.to_string()))?;
        let aad = self.aad(record_id, version);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| PosError::Crypto("AES-GCM seal failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Fails with `record_tampered` on any change to nonce, ciphertext, tag, id or database.
    pub fn open(
        &self,
        record_id: &str,
        version: u32,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, PosError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(PosError::RecordTampered);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let aad = self.aad(record_id, version);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| PosError::RecordTampered)
    }

    pub fn seal_json<T: serde::Serialize>(
        &self,
        record_id: &str,
        version: u32,
        value: &T,
    ) -> Result<Vec<u8>, PosError> {
        let plain = Zeroizing::new(
            serde_json::to_vec(value).map_err(|e| PosError::Internal(e.to_string()))?,
        );
        self.seal(record_id, version, &plain)
    }

    pub fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        record_id: &str,
        version: u32,
        sealed: &[u8],
    ) -> Result<T, PosError> {
        let plain = self.open(record_id, version, sealed)?;
        // Authentic but unreadable means a newer writer: same handling as tampering. Read as
        // text: `from_slice` would compile serde_json's reader a second time for every type
        // also read from a string (the backend's and the reader's bodies).
        std::str::from_utf8(&plain)
            .ok()
            .and_then(|text| serde_json::from_str(text).ok())
            .ok_or(PosError::RecordTampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(db: &str) -> Vault {
        let mut key = [7u8; KEY_LEN];
        let v = Vault::from_key(&mut key, db);
        assert_eq!(key, [0u8; KEY_LEN], "caller's key copy is wiped");
        v
    }

    #[test]
    fn round_trip_with_fresh_nonces() {
        let v = vault("pos-terminal");
        let a = v.seal("pay_1", 1, b"amount=1234").unwrap();
        let b = v.seal("pay_1", 1, b"amount=1234").unwrap();
        assert_ne!(a, b, "a nonce is never reused");
        assert_eq!(&v.open("pay_1", 1, &a).unwrap()[..], b"amount=1234");
        assert!(!a.windows(4).any(|w| w == b"1234"));
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let v = vault("pos-terminal");
        let sealed = v.seal("pay_1", 1, b"secret payload").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                v.open("pay_1", 1, &bad),
                Err(PosError::RecordTampered),
                "byte {i}"
            );
        }
        assert!(v.open("pay_1", 1, &sealed[..10]).is_err());
    }

    #[test]
    fn records_are_bound_to_id_and_database() {
        let v = vault("pos-terminal");
        let sealed = v.seal("pay_1", 1, b"x").unwrap();
        assert!(v.open("pay_2", 1, &sealed).is_err());
        assert!(vault("other-db").open("pay_1", 1, &sealed).is_err());
        assert!(
            v.open("pay_1", 2, &sealed).is_err(),
            "and to its schema version"
        );
    }
}
