//! IndexedDB one level below any wrapper, for what payments need and wrappers lack: an
//! upgrade that only adds (never deletes a store it does not know), read-write transactions
//! with `durability: "strict"` (a write is reported only once it is on disk), requests whose
//! failures keep the DOMException's name, and handlers owned here and unregistered when done.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::oneshot;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    Event, IdbDatabase, IdbFactory, IdbObjectStore, IdbOpenDbRequest, IdbRequest, IdbTransaction,
    IdbTransactionDurability, IdbTransactionMode, IdbTransactionOptions,
};

use crate::error::{DomErrorName, StorageError};
use crate::js::{self, storage_error};

pub fn factory() -> Result<IdbFactory, StorageError> {
    let f = js::get(&js::global(), "indexedDB");
    if f.is_undefined() || f.is_null() {
        return Err(StorageError::Unavailable(
            "indexedDB is not available in this context".into(),
        ));
    }
    Ok(f.unchecked_into())
}

/// Whether a database `name` exists, by `indexedDB.databases()`; `None` where the engine has
/// no such call or it failed.
async fn listed(name: &str) -> Option<bool> {
    let factory = factory().ok()?;
    let databases = js::get(&factory, "databases")
        .dyn_into::<js_sys::Function>()
        .ok()?;
    let promise = databases
        .call0(&factory)
        .ok()?
        .dyn_into::<js_sys::Promise>()
        .ok()?;
    let list = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    let list = list.dyn_into::<js_sys::Array>().ok()?;
    Some(
        list.iter()
            .any(|d| js::get(&d, "name").as_string().as_deref() == Some(name)),
    )
}

type Settle = Rc<RefCell<Option<oneshot::Sender<Result<JsValue, JsValue>>>>>;

fn settle(slot: &Settle, value: Result<JsValue, JsValue>) {
    if let Some(tx) = slot.borrow_mut().take() {
        let _ = tx.send(value);
    }
}

/// An open connection. It closes itself when another context asks for a newer version (or
/// deletes the database), so an upgrade in another tab is never blocked by this one, and
/// says so through `on_closed`; later transactions fail with `InvalidStateError`.
pub struct Database {
    db: IdbDatabase,
    _on_version_change: Closure<dyn FnMut(Event)>,
}

impl Drop for Database {
    fn drop(&mut self) {
        self.db.set_onversionchange(None);
        self.db.close();
    }
}

/// How an open request ended, or that another connection blocks its upgrade.
enum Opened {
    Done(Result<JsValue, JsValue>),
    Blocked,
}

impl Database {
    /// Opens `name` at `version`; `upgrade` runs inside the upgrade transaction when the
    /// stored version is older (it must only add stores and indexes). Fails with
    /// `StorageError::Blocked` rather than waiting while another connection holds an older
    /// version; `on_closed` runs when this connection closes for another context's upgrade.
    pub async fn open(
        name: &str,
        version: u32,
        upgrade: fn(&IdbDatabase, &IdbTransaction) -> Result<(), JsValue>,
        on_closed: Box<dyn Fn()>,
    ) -> Result<Database, StorageError> {
        Self::open_with(name, version, upgrade, on_closed, true)
            .await?
            .ok_or_else(|| StorageError::Inconsistent(format!("{name} was not created")))
    }

    /// As `open`, but `None` (and nothing created) when no database `name` exists yet:
    /// `indexedDB.databases()` first where there is one (WebKit lists a database whose
    /// first upgrade was aborted), then an open whose first upgrade is aborted (which leaves
    /// no database in Chromium and Firefox).
    pub async fn open_if_exists(
        name: &str,
        version: u32,
        upgrade: fn(&IdbDatabase, &IdbTransaction) -> Result<(), JsValue>,
        on_closed: Box<dyn Fn()>,
    ) -> Result<Option<Database>, StorageError> {
        if listed(name).await == Some(false) {
            return Ok(None);
        }
        Self::open_with(name, version, upgrade, on_closed, false).await
    }

    async fn open_with(
        name: &str,
        version: u32,
        upgrade: fn(&IdbDatabase, &IdbTransaction) -> Result<(), JsValue>,
        on_closed: Box<dyn Fn()>,
        create: bool,
    ) -> Result<Option<Database>, StorageError> {
        let req: IdbOpenDbRequest = factory()?
            .open_with_u32(name, version)
            .map_err(|e| storage_error(&e))?;
        let upgrade_error: Rc<RefCell<Option<JsValue>>> = Rc::new(RefCell::new(None));
        let failed = upgrade_error.clone();
        // A database that did not exist has no object store in its first upgrade; aborting
        // that upgrade leaves no database behind.
        let absent = Rc::new(Cell::new(false));
        let found_absent = absent.clone();
        let open_req = req.clone();
        let on_upgrade = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            let db: Result<IdbDatabase, _> = open_req.result().map(JsCast::unchecked_into);
            let tx = open_req.transaction();
            let outcome = match (db, tx) {
                (Ok(db), Some(tx)) if !create && db.object_store_names().length() == 0 => {
                    found_absent.set(true);
                    let _ = tx.abort();
                    Ok(())
                }
                (Ok(db), Some(tx)) => upgrade(&db, &tx).map_err(|e| (e, Some(tx))),
                (Err(e), tx) => Err((e, tx)),
                (Ok(_), None) => Err((JsValue::from_str("no upgrade transaction"), None)),
            };
            if let Err((e, tx)) = outcome {
                *failed.borrow_mut() = Some(e);
                if let Some(tx) = tx {
                    let _ = tx.abort();
                }
            }
        });
        let (sender, receiver) = oneshot::channel();
        let slot = Rc::new(RefCell::new(Some(sender)));
        let send = move |slot: &Rc<RefCell<Option<oneshot::Sender<Opened>>>>, o: Opened| {
            if let Some(tx) = slot.borrow_mut().take() {
                let _ = tx.send(o);
            }
        };
        let (ok_slot, ok_req) = (slot.clone(), req.clone());
        let on_success = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            send(
                &ok_slot,
                Opened::Done(Ok(ok_req.result().unwrap_or_default())),
            );
        });
        let (err_slot, err_req) = (slot.clone(), req.clone());
        let on_error = Closure::<dyn FnMut(Event)>::new(move |e: Event| {
            e.prevent_default();
            let err = match err_req.error() {
                Ok(Some(dom)) => JsValue::from(dom),
                _ => JsValue::from_str("IndexedDB open failed"),
            };
            send(&err_slot, Opened::Done(Err(err)));
        });
        let on_blocked =
            Closure::<dyn FnMut(Event)>::new(move |_e: Event| send(&slot, Opened::Blocked));
        req.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
        req.set_onsuccess(Some(on_success.as_ref().unchecked_ref()));
        req.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        req.set_onblocked(Some(on_blocked.as_ref().unchecked_ref()));
        let outcome = receiver.await;
        unregister(&req);
        let result = match outcome {
            Ok(Opened::Done(result)) => result,
            Ok(Opened::Blocked) => {
                abandon(&req);
                return Err(StorageError::Blocked(format!(
                    "another connection to {name} is open at an older version and does not close"
                )));
            }
            Err(_) => Err(JsValue::from_str(
                "an IndexedDB open ended without a result",
            )),
        };
        if absent.get() {
            return Ok(None);
        }
        if let Some(e) = upgrade_error.borrow_mut().take() {
            return Err(storage_error(&e));
        }
        let db: IdbDatabase = result.map_err(|e| storage_error(&e))?.unchecked_into();
        let conn = db.clone();
        let on_version_change = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            conn.close();
            on_closed();
        });
        db.set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
        Ok(Some(Database {
            db,
            _on_version_change: on_version_change,
        }))
    }

    pub fn raw(&self) -> &IdbDatabase {
        &self.db
    }

    pub fn close(&self) {
        self.db.close();
    }

    /// A read-only transaction on `stores` (one snapshot of them all).
    pub fn read_stores(&self, stores: &[&str]) -> Result<IdbTransaction, StorageError> {
        let names: js_sys::Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
        self.db
            .transaction_with_str_sequence(&names)
            .map_err(|e| storage_error(&e))
    }

    /// A read-only transaction on `store`, and the store.
    pub fn read(&self, store: &str) -> Result<(IdbTransaction, IdbObjectStore), StorageError> {
        let tx = self
            .db
            .transaction_with_str(store)
            .map_err(|e| storage_error(&e))?;
        let os = tx.object_store(store).map_err(|e| storage_error(&e))?;
        Ok((tx, os))
    }
}

fn unregister(req: &IdbOpenDbRequest) {
    req.set_onupgradeneeded(None);
    req.set_onsuccess(None);
    req.set_onerror(None);
    req.set_onblocked(None);
}

/// Takes over an open request given up on while blocked: it stays pending until the other
/// connection closes, then its upgrade is aborted (nobody waits for it) and a connection it
/// opens anyway is closed. The handler owns itself and drops itself once the request ended.
fn abandon(req: &IdbOpenDbRequest) {
    type Handler = Closure<dyn FnMut(Event)>;
    let keep: Rc<RefCell<Option<Handler>>> = Rc::new(RefCell::new(None));
    let (own, late_req) = (keep.clone(), req.clone());
    let handler = Handler::new(move |e: Event| {
        match e.type_().as_str() {
            "upgradeneeded" => {
                if let Some(tx) = late_req.transaction() {
                    let _ = tx.abort();
                }
                return;
            }
            "success" => {
                if let Ok(db) = late_req.result() {
                    db.unchecked_into::<IdbDatabase>().close();
                }
            }
            "error" => e.prevent_default(),
            _ => return,
        }
        unregister(&late_req);
        // wasm-bindgen frees a closure dropped while it runs once it returns.
        own.borrow_mut().take();
    });
    let f: &js_sys::Function = handler.as_ref().unchecked_ref();
    req.set_onupgradeneeded(Some(f));
    req.set_onsuccess(Some(f));
    req.set_onerror(Some(f));
    req.set_onblocked(Some(f));
    *keep.borrow_mut() = Some(handler);
}

/// Resolves with the request's result once it succeeds. The handlers are owned here and
/// unregistered when it settles, so nothing leaks per request.
pub async fn request(req: &IdbRequest) -> Result<JsValue, StorageError> {
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
        Err(_) => Err(StorageError::Inconsistent(
            "an IndexedDB request ended without a result".into(),
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
    pub fn begin(db: &Database, stores: &[&str]) -> Result<Self, StorageError> {
        let names: Vec<js_sys::JsString> = stores.iter().map(|s| (*s).into()).collect();
        let options = IdbTransactionOptions::new();
        options.set_durability(IdbTransactionDurability::Strict);
        let tx = db
            .raw()
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
                None => {
                    // Aborted on purpose: no DOMException, so name it as the browser would.
                    let e = js_sys::Error::new("the transaction was aborted");
                    e.set_name("AbortError");
                    e.into()
                }
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

    pub fn store(&self, name: &str) -> Result<IdbObjectStore, StorageError> {
        self.tx.object_store(name).map_err(|e| storage_error(&e))
    }

    /// Waits for `complete`: only then is the data on disk.
    pub async fn commit(mut self) -> Result<(), StorageError> {
        // Ask for an early commit; harmless where `commit()` is missing.
        if let Ok(commit) = js::get(self.tx.as_ref(), "commit").dyn_into::<js_sys::Function>() {
            let _ = commit.call0(self.tx.as_ref());
        }
        match (&mut self.done).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(storage_error(&e)),
            Err(_) => Err(StorageError::Inconsistent(
                "a transaction ended without an outcome".into(),
            )),
        }
    }

    /// Aborts; the browser rolls back every write of this transaction.
    pub async fn abort(self) {
        let _ = self.outcome_after_abort().await;
    }

    /// Aborts after a request failed with `e`, and returns the better reason: a request that
    /// failed with `AbortError` because the transaction aborted (say for lack of quota) hides
    /// the cause, which the transaction's own error names.
    pub async fn fail(self, e: StorageError) -> StorageError {
        let cause = self.outcome_after_abort().await;
        match (e.name(), cause) {
            (Some(DomErrorName::Abort), Some(cause))
                if cause.name() != Some(DomErrorName::Abort) =>
            {
                cause
            }
            _ => e,
        }
    }

    async fn outcome_after_abort(mut self) -> Option<StorageError> {
        let _ = self.tx.abort();
        match (&mut self.done).await {
            Ok(Err(e)) => Some(storage_error(&e)),
            _ => None,
        }
    }
}
