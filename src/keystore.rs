//! The data key: 32 random bytes, never stored raw. It is stored wrapped (AES-GCM encrypted)
//! by a non-extractable WebCrypto key that lives in IndexedDB as a CryptoKey object: the
//! wrapping key cannot be exported, and a dump of the stores holds no usable key. Script in
//! the origin can still decrypt the data key with it, as this module does (README, "Threat
//! model": the vault seals synchronously, inside IndexedDB transactions, so it needs the
//! raw key).

use js_sys::{Array, Object, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AesGcmParams, AesKeyGenParams, CryptoKey};
use zeroize::Zeroize;

use crate::error::{DomErrorName, PosError, StorageError};
use crate::idb::{self, Database, StrictTx};
use crate::js::{self, describe_js, storage_error};
use crate::vault::{KEY_LEN, NONCE_LEN};

pub const KEYS_STORE: &str = "keys";
const KEK_ID: &str = "kek";
const DEK_ID: &str = "dek";

fn crypto_err(e: JsValue) -> PosError {
    PosError::Crypto(describe_js(&e))
}

async fn read_keys(db: &Database) -> Result<(JsValue, JsValue), PosError> {
    let (_tx, store) = db.read(KEYS_STORE)?;
    let kek_req = store
        .get(&JsValue::from_str(KEK_ID))
        .map_err(|e| storage_error(&e))?;
    let dek_req = store
        .get(&JsValue::from_str(DEK_ID))
        .map_err(|e| storage_error(&e))?;
    let kek = idb::request(&kek_req).await?;
    let dek = idb::request(&dek_req).await?;
    Ok((kek, dek))
}

async fn unwrap(kek: &CryptoKey, wrapped: &JsValue) -> Result<[u8; KEY_LEN], PosError> {
    let subtle = js::subtle()?;
    let iv: Uint8Array = js::get(wrapped, "iv")
        .dyn_into()
        .map_err(|_| PosError::RecordTampered)?;
    let ct: Uint8Array = js::get(wrapped, "key")
        .dyn_into()
        .map_err(|_| PosError::RecordTampered)?;
    let params = AesGcmParams::new("AES-GCM", &iv);
    let promise = subtle
        .decrypt_with_object_and_buffer_source(&params, kek, &ct)
        .map_err(crypto_err)?;
    let plain = JsFuture::from(promise)
        .await
        .map_err(|_| PosError::RecordTampered)?;
    let bytes = Uint8Array::new(&plain);
    if bytes.length() as usize != KEY_LEN {
        return Err(PosError::RecordTampered);
    }
    let mut key = [0u8; KEY_LEN];
    bytes.copy_to(&mut key);
    // Wipe the browser-side copy too; the ArrayBuffer is ours alone.
    bytes.fill(0, 0, KEY_LEN as u32);
    Ok(key)
}

/// Creates and stores a key pair; `false` if another context stored one first.
async fn create(db: &Database) -> Result<bool, PosError> {
    let subtle = js::subtle()?;
    let usages = Array::of2(&"encrypt".into(), &"decrypt".into());
    let params = AesKeyGenParams::new("AES-GCM", 256);
    let promise = subtle
        .generate_key_with_object(&params, false, &usages)
        .map_err(crypto_err)?;
    let kek: CryptoKey = JsFuture::from(promise)
        .await
        .map_err(crypto_err)?
        .unchecked_into();

    let mut dek = [0u8; KEY_LEN];
    let mut iv = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut dek).map_err(|e| PosError::Crypto(e.to_string()))?;
    getrandom::getrandom(&mut iv).map_err(|e| PosError::Crypto(e.to_string()))?;
    let iv_js = Uint8Array::from(&iv[..]);
    let dek_js = Uint8Array::from(&dek[..]);
    dek.zeroize();
    let params = AesGcmParams::new("AES-GCM", &iv_js);
    let promise = subtle
        .encrypt_with_object_and_buffer_source(&params, &kek, &dek_js)
        .map_err(crypto_err)?;
    let wrapped = JsFuture::from(promise).await;
    dek_js.fill(0, 0, KEY_LEN as u32);
    let wrapped = Uint8Array::new(&wrapped.map_err(crypto_err)?);

    let record = Object::new();
    js::set(&record, "iv", &iv_js);
    js::set(&record, "key", &wrapped);

    // `add`, not `put`: if another tab created keys first, ours loses and we read theirs.
    let tx = StrictTx::begin(db, &[KEYS_STORE])?;
    let store = tx.store(KEYS_STORE)?;
    let added = async {
        let a = store
            .add_with_key(&kek, &JsValue::from_str(KEK_ID))
            .map_err(|e| storage_error(&e))?;
        let b = store
            .add_with_key(&record, &JsValue::from_str(DEK_ID))
            .map_err(|e| storage_error(&e))?;
        idb::request(&a).await?;
        idb::request(&b).await
    }
    .await;
    match added {
        Ok(_) => {
            tx.commit().await?;
            Ok(true)
        }
        Err(e) => {
            tx.abort().await;
            match e.name() {
                Some(DomErrorName::Constraint) => Ok(false),
                _ => Err(e.into()),
            }
        }
    }
}

/// Loads the data key, creating and storing it (wrapped) on first use.
pub async fn load_or_create(db: &Database) -> Result<[u8; KEY_LEN], PosError> {
    for _ in 0..2 {
        let (kek, dek) = read_keys(db).await?;
        if !kek.is_undefined() && !dek.is_undefined() {
            let kek: CryptoKey = kek.dyn_into().map_err(|_| PosError::RecordTampered)?;
            return unwrap(&kek, &dek).await;
        }
        if !kek.is_undefined() || !dek.is_undefined() {
            // Half a key pair cannot decrypt anything: refuse rather than silently replace it.
            return Err(StorageError::Inconsistent(
                "the key store is incomplete; stored payments cannot be opened".into(),
            )
            .into());
        }
        create(db).await?;
    }
    Err(StorageError::Inconsistent("could not create the data key".into()).into())
}
