//! What the page saves for contexts without it (the backend URL and connection token, sealed)
//! and what the browser says about the origin's storage.

use js_sys::Uint8Array;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::{Store, CONFIG_ID, KEYS_STORE, SEALED_META_VERSION};
use crate::error::PosError;
use crate::idb::{self, StrictTx};
use crate::js::{self, storage_error};

/// What the page persists (sealed) for a forwarder running without it, e.g. a service worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedConfig {
    pub backend_url: String,
    pub connection_token: Option<String>,
}

/// Free space the origin must keep before a payment that may be stored is collected.
pub const STORAGE_MARGIN_BYTES: f64 = 4.0 * 1024.0 * 1024.0;

/// `navigator.storage`, where this context has it.
fn storage_manager() -> Option<JsValue> {
    let nav = js::get(&js::global(), "navigator");
    let storage = js::get(&nav, "storage");
    (!storage.is_undefined() && !storage.is_null()).then_some(storage)
}

async fn call_storage(method: &str) -> Option<JsValue> {
    let storage = storage_manager()?;
    let f: js_sys::Function = js::get(&storage, method).dyn_into().ok()?;
    let promise: js_sys::Promise = f.call0(&storage).ok()?.dyn_into().ok()?;
    wasm_bindgen_futures::JsFuture::from(promise).await.ok()
}

/// Bytes the origin may still write (`quota - usage` of `navigator.storage.estimate()`).
pub async fn storage_headroom() -> Option<f64> {
    let estimate = call_storage("estimate").await?;
    let quota = js::get(&estimate, "quota").as_f64()?;
    let usage = js::get(&estimate, "usage").as_f64()?;
    Some(quota - usage)
}
/// Key of a reader's pairing credential in the keys store (sealed, bound to this key).
pub fn pairing_key(reader_id: &str) -> String {
    format!("pairing:{reader_id}")
}

impl Store {
    pub async fn save_config(&self, config: &PersistedConfig) -> Result<(), PosError> {
        self.save_sealed(CONFIG_ID, config).await
    }

    pub async fn load_config(&self) -> Result<Option<PersistedConfig>, PosError> {
        self.load_sealed(CONFIG_ID).await
    }

    /// Saves `value` sealed under `key` in the keys store, in a strict transaction; the seal
    /// is bound to `key`, so a value cannot be moved to another key undetected.
    pub async fn save_sealed<T: Serialize>(&self, key: &str, value: &T) -> Result<(), PosError> {
        let sealed = self.vault.seal_json(key, SEALED_META_VERSION, value)?;
        let tx = StrictTx::begin(&self.db, &[KEYS_STORE])?;
        let store = tx.store(KEYS_STORE)?;
        let put = match store.put_with_key(&Uint8Array::from(&sealed[..]), &JsValue::from_str(key))
        {
            Ok(req) => idb::request(&req).await,
            Err(e) => Err(storage_error(&e)),
        };
        if let Err(e) = put {
            tx.abort().await;
            return Err(e.into());
        }
        Ok(tx.commit().await?)
    }

    /// The value `save_sealed` saved under `key`, if any.
    pub async fn load_sealed<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, PosError> {
        let (_tx, store) = self.db.read(KEYS_STORE)?;
        let req = store
            .get(&JsValue::from_str(key))
            .map_err(|e| storage_error(&e))?;
        match idb::request(&req).await?.dyn_into::<Uint8Array>() {
            Ok(bytes) => self
                .vault
                .open_json(key, SEALED_META_VERSION, &bytes.to_vec())
                .map(Some),
            Err(_) => Ok(None),
        }
    }
}
