//! One level below rexie, for what it lacks: read-write transactions with
//! `durability: "strict"` (a write is reported only after it is on disk), and a
//! get-check-put inside one transaction for compare-and-set state changes.

use std::cell::RefCell;
use std::rc::Rc;

use futures_channel::oneshot;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    Event, IdbDatabase, IdbFactory, IdbObjectStore, IdbRequest, IdbTransaction,
    IdbTransactionDurability, IdbTransactionMode, IdbTransactionOptions,
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

type Settle = Rc<RefCell<Option<oneshot::Sender<Result<JsValue, JsValue>>>>>;

fn settle(slot: &Settle, value: Result<JsValue, JsValue>) {
    if let Some(tx) = slot.borrow_mut().take() {
        let _ = tx.send(value);
    }
}

/// Resolves with the request's result once it succeeds. The handlers are owned here and
/// unregistered when it settles, so nothing leaks per request.
pub async fn request(req: &IdbRequest) -> Result<JsValue, PosError> {
    let (tx, rx) = oneshot::channel();
    let slot: Settle = Rc::new(RefCell::new(Some(tx)));
    let (ok_slot, ok_req) = (slot.clone(), req.clone());
    let on_success = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
        settle(&ok_slot, Ok(ok_req.result().unwrap_or(JsValue::UNDEFINED)));
    });
    let (err_slot, err_req) = (slot, req.clone());
    let on_error = Closure::<dyn FnMut(Event)>::new(move |e: Event| {
        // Handled here; whoever owns the transaction decides to abort it.
        e.prevent_default();
        let err = match err_req.error() {
            Ok(Some(dom)) => JsValue::from(dom),
            _ => JsValue::from_str("IndexedDB request failed"),
        };
        settle(&err_slot, Err(err));
    });
    req.set_onsuccess(Some(on_success.as_ref().unchecked_ref()));
    req.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    let result = rx.await;
    req.set_onsuccess(None);
    req.set_onerror(None);
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(storage_error(&e)),
        Err(_) => Err(PosError::Storage(
            "IndexedDB request ended without a result".into(),
        )),
    }
}

/// A read-write transaction with strict durability; `commit` resolves on `complete`.
pub struct StrictTx {
    tx: IdbTransaction,
    done: oneshot::Receiver<Result<JsValue, JsValue>>,
    _on_complete: Closure<dyn FnMut(Event)>,
    _on_abort: Closure<dyn FnMut(Event)>,
}

impl Drop for StrictTx {
    fn drop(&mut self) {
        self.tx.set_oncomplete(None);
        self.tx.set_onabort(None);
    }
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
        let (sender, done) = oneshot::channel();
        let slot: Settle = Rc::new(RefCell::new(Some(sender)));
        let complete_slot = slot.clone();
        let on_complete = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            settle(&complete_slot, Ok(JsValue::UNDEFINED));
        });
        let aborted = tx.clone();
        let on_abort = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            let err = match aborted.error() {
                Some(dom) => JsValue::from(dom),
                None => JsValue::from_str("AbortError: transaction aborted"),
            };
            settle(&slot, Err(err));
        });
        tx.set_oncomplete(Some(on_complete.as_ref().unchecked_ref()));
        tx.set_onabort(Some(on_abort.as_ref().unchecked_ref()));
        Ok(Self {
            tx,
            done,
            _on_complete: on_complete,
            _on_abort: on_abort,
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
    pub async fn commit(mut self) -> Result<(), PosError> {
        // Ask for an early commit; harmless where `commit()` is missing.
        if let Ok(commit) = js::get(self.tx.as_ref(), "commit").dyn_into::<js_sys::Function>() {
            let _ = commit.call0(self.tx.as_ref());
        }
        match (&mut self.done).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(storage_error(&e)),
            Err(_) => Err(PosError::Storage(
                "transaction ended without an outcome".into(),
            )),
        }
    }

    /// Aborts; the browser rolls back every write of this transaction.
    pub async fn abort(mut self) {
        let _ = self.tx.abort();
        let _ = (&mut self.done).await;
    }
}
