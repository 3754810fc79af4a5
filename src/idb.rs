//! One level below rexie, for what it lacks: read-write transactions with
//! `durability: "strict"` (a write is reported only after it is on disk), and a
//! get-check-put inside one transaction for compare-and-set state changes.

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    IdbDatabase, IdbFactory, IdbObjectStore, IdbRequest, IdbTransaction, IdbTransactionDurability,
    IdbTransactionMode, IdbTransactionOptions,
};

use crate::error::{describe_js, js_error_name, PosError};
use crate::js;

pub fn factory() -> Result<IdbFactory, PosError> {
    let f = js::get(&js::global(), "indexedDB");
    if f.is_undefined() || f.is_null() {
        return Err(PosError::StorageUnavailable(
            "indexedDB is not available in this context".into(),
        ));
    }
    Ok(f.unchecked_into())
}

/// Maps an IndexedDB failure to the SDK's codes (quota gets its own).
pub fn storage_error(e: &JsValue) -> PosError {
    match js_error_name(e).as_deref() {
        Some("QuotaExceededError") => PosError::StorageQuotaExceeded(describe_js(e)),
        Some("VersionError") => PosError::UnknownSchemaVersion(0),
        _ => PosError::Storage(describe_js(e)),
    }
}

/// Opens a second, plain connection to a database rexie already created and upgraded.
pub async fn open_existing(name: &str) -> Result<IdbDatabase, PosError> {
    let req = factory()?.open(name).map_err(|e| storage_error(&e))?;
    let result = request(req.unchecked_ref()).await?;
    Ok(result.unchecked_into())
}

/// Resolves with the request's result once it succeeds.
pub async fn request(req: &IdbRequest) -> Result<JsValue, PosError> {
    let target = req.clone();
    let promise = Promise::new(&mut |resolve, reject| {
        let ok_req = target.clone();
        let on_success = Closure::once_into_js(move |_e: JsValue| {
            let value = ok_req.result().unwrap_or(JsValue::UNDEFINED);
            let _ = resolve.call1(&JsValue::NULL, &value);
        });
        let err_req = target.clone();
        let on_error = Closure::once_into_js(move |e: web_sys::Event| {
            // Handled here; the transaction's own error handler reports the abort.
            e.prevent_default();
            let err = match err_req.error() {
                Ok(Some(dom)) => JsValue::from(dom),
                _ => JsValue::from_str("IndexedDB request failed"),
            };
            let _ = reject.call1(&JsValue::NULL, &err);
        });
        target.set_onsuccess(Some(on_success.unchecked_ref()));
        target.set_onerror(Some(on_error.unchecked_ref()));
    });
    JsFuture::from(promise).await.map_err(|e| storage_error(&e))
}

/// A read-write transaction with strict durability; `commit` resolves on `complete`.
pub struct StrictTx {
    tx: IdbTransaction,
    done: JsFuture,
}

impl StrictTx {
    pub fn begin(db: &IdbDatabase, stores: &[&str]) -> Result<Self, PosError> {
        let names: Vec<js_sys::JsString> = stores.iter().map(|s| (*s).into()).collect();
        let options = IdbTransactionOptions::new();
        options.set_durability(IdbTransactionDurability::Strict);
        let tx = db
            .transaction_with_str_sequence_and_mode_and_options(
                &names,
                IdbTransactionMode::Readwrite,
                &options,
            )
            .map_err(|e| storage_error(&e))?;
        let watched = tx.clone();
        let promise = Promise::new(&mut |resolve, reject| {
            let on_complete = Closure::once_into_js(move |_e: JsValue| {
                let _ = resolve.call0(&JsValue::NULL);
            });
            let tx_for_abort = watched.clone();
            let on_abort = Closure::once_into_js(move |_e: JsValue| {
                let err = match tx_for_abort.error() {
                    Some(dom) => JsValue::from(dom),
                    None => JsValue::from_str("AbortError: transaction aborted"),
                };
                let _ = reject.call1(&JsValue::NULL, &err);
            });
            watched.set_oncomplete(Some(on_complete.unchecked_ref()));
            watched.set_onabort(Some(on_abort.unchecked_ref()));
        });
        Ok(Self {
            tx,
            done: JsFuture::from(promise),
        })
    }

    /// The transaction's durability as the browser reports it (for tests).
    pub fn durability(&self) -> String {
        js::get(self.tx.as_ref(), "durability")
            .as_string()
            .unwrap_or_default()
    }

    pub fn store(&self, name: &str) -> Result<IdbObjectStore, PosError> {
        self.tx.object_store(name).map_err(|e| storage_error(&e))
    }

    /// Waits for `complete`: only then is the data on disk.
    pub async fn commit(self) -> Result<(), PosError> {
        // Ask for an early commit; harmless where `commit()` is missing.
        if let Ok(commit) = js::get(self.tx.as_ref(), "commit").dyn_into::<js_sys::Function>() {
            let _ = commit.call0(self.tx.as_ref());
        }
        self.done.await.map(|_| ()).map_err(|e| storage_error(&e))
    }

    /// Aborts; the browser rolls back every write of this transaction.
    pub async fn abort(self) {
        let _ = self.tx.abort();
        let _ = self.done.await;
    }
}
