//! The offline payment store in IndexedDB (through `idb`): every write in a strict
//! transaction, every state change a compare-and-set. A record keeps id, schema version,
//! state and times in the clear; the rest is sealed by the vault. Nothing is deleted before
//! the backend answered: a record only changes state. The sealed ledger of outstanding
//! payments (`limits::Ledger`) changes in the same transaction as the records it sums, so
//! offline limits are checked and the write they allow happens in one transaction.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Array, Object, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    IdbDatabase, IdbIndexParameters, IdbKeyRange, IdbObjectStore, IdbRequest, IdbTransaction,
};

use crate::error::{DomErrorName, PosError, StorageError};
use crate::idb::{self, Database, StrictTx};
use crate::js::{self, storage_error};
use crate::keystore::{self, KEYS_STORE};
use crate::limits::{OfflineLimits, Outstanding};
use crate::payment::{Collected, Entry, Header, SealedBody, StoredState, SCHEMA_VERSION};
use crate::vault::Vault;

mod config;
mod ledger;
mod predict;
mod queue;
mod upkeep;

pub use config::{pairing_key, storage_headroom, PersistedConfig, STORAGE_MARGIN_BYTES};
use ledger::{counts, Change, Counted};
pub use queue::ForwardQueue;

pub const PAYMENTS_STORE: &str = "payments";
const STATE_INDEX: &str = "state";
const CONFIG_ID: &str = "config";
/// Key of the sealed ledger in the keys store.
const LEDGER_ID: &str = "ledger";
/// Layout version of the sealed config (apart from the records' schema; the ledger has its
/// own, `ledger::LEDGER_VERSION`).
const SEALED_META_VERSION: u32 = 1;
/// Database version (object stores and indexes); records carry `SCHEMA_VERSION`.
const DB_VERSION: u32 = 1;

/// One compare-and-set of `Store::transition_many`: the record as `header` describes it
/// moves to `to`, sealed again with `body`.
pub struct Move<'a> {
    pub header: &'a Header,
    pub to: StoredState,
    pub body: &'a SealedBody,
    pub next_attempt_at: f64,
}

/// The payments store of one database, with its vault.
pub struct Store {
    db: Database,
    vault: Vault,
    /// The backend this store works for (`bind_backend`): sealed into every new record, and
    /// records sealed for another backend are left out of every read.
    backend: RefCell<Option<String>>,
    /// What the status shows after the last change this store committed (`take_summary`).
    summary: RefCell<Option<Outstanding>>,
    /// The sealed ledger as last read or committed here: what the next payment stored
    /// predicts (`predict`); checked against the stored one before anything commits.
    ledger_cache: RefCell<Option<predict::LedgerCache>>,
    /// When `forward_queue` counts every record (`queue::UNLISTED_CHECK_EVERY_MS`).
    unlisted_check: crate::every::Every,
    /// Work that must finish with the connection open (`keep_open`), and whether `close`
    /// came meanwhile.
    keepers: Cell<u32>,
    close_asked: Cell<bool>,
}

/// Keeps a store's connection open while it lives (`Store::keep_open`); a `close` asked
/// meanwhile happens when the last one goes.
pub struct KeepOpen(Rc<Store>);

impl Drop for KeepOpen {
    fn drop(&mut self) {
        let store = &self.0;
        store.keepers.set(store.keepers.get().saturating_sub(1));
        if store.keepers.get() == 0 && store.close_asked.get() {
            store.db.close();
        }
    }
}

/// Creates what version 1 has; only adds, so a store added by a later version survives a
/// downgrade attempt and nothing is ever deleted by an upgrade.
fn upgrade(db: &IdbDatabase, tx: &IdbTransaction) -> Result<(), JsValue> {
    let names = db.object_store_names();
    if !names.contains(PAYMENTS_STORE) {
        let params = web_sys::IdbObjectStoreParameters::new();
        params.set_key_path(&JsValue::from_str("id"));
        db.create_object_store_with_optional_parameters(PAYMENTS_STORE, &params)?;
    }
    let payments = tx.object_store(PAYMENTS_STORE)?;
    if !payments.index_names().contains(STATE_INDEX) {
        payments.create_index_with_str_and_optional_parameters(
            STATE_INDEX,
            "state",
            &IdbIndexParameters::new(),
        )?;
    }
    if !names.contains(KEYS_STORE) {
        db.create_object_store(KEYS_STORE)?;
    }
    Ok(())
}

/// A database at a later version than `version` was written by a newer SDK.
fn open_error(e: StorageError, version: u32) -> PosError {
    match e.name() {
        Some(DomErrorName::Version) => PosError::UnknownSchemaVersion(version + 1),
        _ => e.into(),
    }
}

impl Store {
    pub async fn open(name: &str) -> Result<Store, PosError> {
        Self::open_observed(name, || {}).await
    }

    /// Opens the store; `on_closed_for_upgrade` runs if its connection closes because
    /// another context upgrades or deletes the database.
    pub async fn open_observed(
        name: &str,
        on_closed_for_upgrade: impl Fn() + 'static,
    ) -> Result<Store, PosError> {
        let db = Self::open_database(name, DB_VERSION, Box::new(on_closed_for_upgrade)).await?;
        Self::with_database(db, name).await
    }

    /// Opens the store only if a page created it: `None`, and nothing created, for a name
    /// no terminal used (a service worker's run for a database that does not exist).
    pub async fn open_existing(name: &str) -> Result<Option<Store>, PosError> {
        let db = Database::open_if_exists(name, DB_VERSION, upgrade, Box::new(|| {}))
            .await
            .map_err(|e| open_error(e, DB_VERSION))?;
        match db {
            Some(db) => Self::with_database(db, name).await.map(Some),
            None => Ok(None),
        }
    }

    async fn with_database(db: Database, name: &str) -> Result<Store, PosError> {
        let mut key = keystore::load_or_create(&db).await?;
        let vault = Vault::from_key(&mut key, name);
        Ok(Store {
            db,
            vault,
            backend: RefCell::new(None),
            summary: RefCell::new(None),
            ledger_cache: RefCell::new(None),
            unlisted_check: crate::every::Every::new(queue::UNLISTED_CHECK_EVERY_MS),
            keepers: Cell::new(0),
            close_asked: Cell::new(false),
        })
    }

    async fn open_database(
        name: &str,
        version: u32,
        on_closed: Box<dyn Fn()>,
    ) -> Result<Database, PosError> {
        Database::open(name, version, upgrade, on_closed)
            .await
            .map_err(|e| open_error(e, version))
    }

    /// Opens (and closes) the database as a later SDK at `version` would, to test how an
    /// upgrade meets connections that do not close; not part of the API.
    #[doc(hidden)]
    pub async fn probe_open_at(name: &str, version: u32) -> Result<(), PosError> {
        Self::open_database(name, version, Box::new(|| {}))
            .await
            .map(drop)
    }

    /// Binds the store to `backend_url`: new records are sealed for it, and payments taken
    /// for another backend stay stored but are neither listed, counted nor forwarded here.
    pub fn bind_backend(&self, backend_url: &str) {
        *self.backend.borrow_mut() = Some(backend_url.to_owned());
    }

    /// The status summary as of the last change this store committed, once: a caller that
    /// publishes right after its own change needs no read. `None` when nothing changed since.
    pub fn take_summary(&self) -> Option<Outstanding> {
        self.summary.borrow_mut().take()
    }

    /// Closes the connection, once no `keep_open` is held; later calls fail with a storage
    /// error.
    pub fn close(&self) {
        self.close_asked.set(true);
        if self.keepers.get() == 0 {
            self.db.close();
        }
    }

    /// Whether `close` was asked (the connection may still be open for a payment finishing).
    pub fn is_closed(&self) -> bool {
        self.close_asked.get()
    }

    /// Holds the connection open until the returned guard goes, whatever `close` asks
    /// meanwhile: a payment being processed ends with its intent settled and its answer
    /// stored, not cut off by the page's `close()`.
    pub fn keep_open(self: &Rc<Self>) -> KeepOpen {
        self.keepers.set(self.keepers.get().saturating_add(1));
        KeepOpen(self.clone())
    }

    /// What a record's seal is bound to besides the database and schema: its id and its
    /// state, so flipping the clear `state` (say pending → forwarded) is detected too.
    fn seal_context(header: &Header) -> String {
        format!("{}|{}", header.id, header.state.as_str())
    }

    fn to_record(&self, header: &Header, body: &SealedBody) -> Result<JsValue, PosError> {
        let sealed = self
            .vault
            .seal_json(&Self::seal_context(header), header.version, body)?;
        let obj = Object::new();
        js::set(&obj, "id", &header.id.as_str().into());
        js::set(&obj, "v", &header.version.into());
        js::set(&obj, "state", &header.state.as_str().into());
        js::set(&obj, "storedAt", &header.stored_at.into());
        js::set(&obj, "updatedAt", &header.updated_at.into());
        js::set(&obj, "nextAttemptAt", &header.next_attempt_at.into());
        js::set(&obj, "sealed", &Uint8Array::from(&sealed[..]));
        Ok(obj.into())
    }

    /// The clear header and the sealed bytes; `None` when any of it is missing or not of its
    /// type. The times are not under the seal, but every change compares `updatedAt` and the
    /// age index is keyed by `storedAt`: a record whose times are not finite numbers (changed
    /// behind the SDK's back) could be neither claimed nor settled, so it is unreadable, and
    /// goes to quarantine like any other (every version of this SDK wrote all three).
    fn header_of(record: &JsValue) -> Option<(Header, Vec<u8>)> {
        let id = js::get(record, "id").as_string()?;
        let version = js::get(record, "v").as_f64()? as u32;
        let state = StoredState::parse(&js::get(record, "state").as_string()?)?;
        let sealed: Uint8Array = js::get(record, "sealed").dyn_into().ok()?;
        let time = |key| js::get(record, key).as_f64().filter(|t| t.is_finite());
        Some((
            Header {
                id,
                version,
                state,
                stored_at: time("storedAt")?,
                updated_at: time("updatedAt")?,
                next_attempt_at: time("nextAttemptAt")?,
            },
            sealed.to_vec(),
        ))
    }

    /// The record opened, if it is for this store's backend.
    fn entry_of(&self, record: &JsValue) -> Option<Entry> {
        let entry = self.open_entry(record)?;
        if let Ok(b) = &entry.body {
            if !b.belongs_to(self.backend.borrow().as_deref()) {
                return None;
            }
        }
        Some(entry)
    }

    /// The record opened, whatever its backend; `None` without even an id.
    fn open_entry(&self, record: &JsValue) -> Option<Entry> {
        let (header, sealed) = match Self::header_of(record) {
            Some(h) => h,
            None => {
                // A record without a readable header still has an id: report it, don't drop it.
                let id = js::get(record, "id").as_string()?;
                return Some(Entry {
                    header: Header {
                        id,
                        version: SCHEMA_VERSION,
                        state: StoredState::Quarantined,
                        stored_at: 0.0,
                        updated_at: 0.0,
                        next_attempt_at: 0.0,
                    },
                    body: Err(PosError::RecordTampered),
                });
            }
        };
        // Opened under the version it was sealed with: older records stay readable.
        let body = if header.version == 0 || header.version > SCHEMA_VERSION {
            Err(PosError::UnknownSchemaVersion(header.version))
        } else {
            self.vault.open_json::<SealedBody>(
                &Self::seal_context(&header),
                header.version,
                &sealed,
            )
        };
        Some(Entry { header, body })
    }

    /// Stores a collected payment as `pending`, if `limits` allow it, in one strict
    /// transaction with the ledger. Returns only after the transaction completed. A second
    /// call for the same id returns the first record's header.
    /// A collected payment's body as this store seals it: for the backend it is bound to
    /// (whatever path writes it: a store offline, an intent, an intent stored offline).
    pub fn body_of(&self, c: &Collected) -> SealedBody {
        SealedBody::from_collected(c, self.backend.borrow().clone())
    }

    pub async fn add_pending(
        &self,
        c: &Collected,
        now: f64,
        limits: &OfflineLimits,
    ) -> Result<Header, PosError> {
        self.add(c, StoredState::Pending, SCHEMA_VERSION, now, Some(limits))
            .await
    }

    /// `add_pending` as an SDK of schema `version` wrote it (for upgrade tests).
    #[doc(hidden)]
    pub async fn add_pending_as_schema(
        &self,
        c: &Collected,
        now: f64,
        version: u32,
    ) -> Result<Header, PosError> {
        self.add(c, StoredState::Pending, version, now, None).await
    }

    /// Writes the intent of an online attempt (sealed, strict) before it is sent: a tab that
    /// dies during the request leaves a record to forward with the same key. Not counted
    /// against offline limits until it is stored offline.
    pub async fn add_intent(&self, c: &Collected, now: f64) -> Result<Header, PosError> {
        self.add(c, StoredState::Intent, SCHEMA_VERSION, now, None)
            .await
    }

    async fn add(
        &self,
        c: &Collected,
        state: StoredState,
        version: u32,
        now: f64,
        limits: Option<&OfflineLimits>,
    ) -> Result<Header, PosError> {
        let header = Header {
            id: c.id.clone(),
            version,
            state,
            stored_at: now,
            updated_at: now,
            next_attempt_at: now,
        };
        let body = self.body_of(c);
        if counts(state) {
            if let Some(stored) = self.add_predicted(&header, &body, limits, now).await? {
                return Ok(stored);
            }
        }
        // Seal before the transaction opens: an await inside it would let it auto-commit.
        let record = self.to_record(&header, &body)?;
        let tx = StrictTx::begin(&self.db, &[PAYMENTS_STORE, KEYS_STORE])?;
        let added = async {
            let payments = tx.store(PAYMENTS_STORE)?;
            let count = payments
                .count_with_key(&header.id.as_str().into())
                .map_err(|e| storage_error(&e))?;
            let ledger = Self::ledger_request(&tx.store(KEYS_STORE)?)?;
            // Both asked at once; answered in order.
            let (existing, stored) =
                futures_util::future::try_join(idb::request(&count), idb::request(&ledger)).await?;
            if existing.as_f64().unwrap_or(0.0) > 0.0 {
                return Ok(None);
            }
            if !counts(state) {
                let req = payments.add(&record).map_err(|e| storage_error(&e))?;
                return Ok(Some(((), Last::new(None, vec![req]))));
            }
            let change = Change::Enter(Counted::of(&header.id, now, &body));
            let applied = self
                .apply_in(&tx, &stored, vec![change], limits, now)
                .await?;
            let req = payments.add(&record).map_err(|e| storage_error(&e))?;
            Ok::<_, PosError>(Some(((), Last::new(Some(applied), vec![req]))))
        }
        .await;
        if let Some(((), summary)) = end_round(tx, added, &self.ledger_cache).await? {
            if summary.is_some() {
                *self.summary.borrow_mut() = summary;
            }
            return Ok(header);
        }
        match self.get(&c.id).await? {
            Some(existing) => Ok(existing.header),
            None => Err(PosError::Internal("a record vanished".into())),
        }
    }

    fn entries_of(&self, records: impl Iterator<Item = JsValue>) -> Vec<Entry> {
        let mut entries: Vec<Entry> = records.filter_map(|r| self.entry_of(&r)).collect();
        entries.sort_by(|a, b| a.header.stored_at.total_cmp(&b.header.stored_at));
        entries
    }

    /// Every stored payment, oldest first.
    pub async fn all(&self) -> Result<Vec<Entry>, PosError> {
        let (_tx, store) = self.db.read(PAYMENTS_STORE)?;
        let req = store.get_all().map_err(|e| storage_error(&e))?;
        let records: Array = idb::request(&req).await?.unchecked_into();
        Ok(self.entries_of(records.iter()))
    }

    /// The records in `state`, oldest first, read through the `state` index.
    pub async fn in_state(&self, state: StoredState) -> Result<Vec<Entry>, PosError> {
        let (_tx, store) = self.db.read(PAYMENTS_STORE)?;
        let records = records_in(&store, &[state]).await?;
        Ok(self.entries_of(records.into_iter()))
    }

    /// The payments the backend has not answered yet (`pending`, `forwarding`), oldest first,
    /// read through the `state` index so the cost does not grow with the history.
    pub async fn outstanding(&self) -> Result<Vec<Entry>, PosError> {
        let (_tx, store) = self.db.read(PAYMENTS_STORE)?;
        let records = outstanding_records(&store).await?;
        Ok(self.entries_of(records.into_iter()))
    }

    pub async fn get(&self, id: &str) -> Result<Option<Entry>, PosError> {
        let (_tx, store) = self.db.read(PAYMENTS_STORE)?;
        let req = store
            .get(&JsValue::from_str(id))
            .map_err(|e| storage_error(&e))?;
        let record = idb::request(&req).await?;
        if record.is_undefined() {
            return Ok(None);
        }
        Ok(self.entry_of(&record))
    }

    /// The records of `ids`, in one read: `None` for one that is gone, unreadable, or of
    /// another backend.
    pub async fn get_many(&self, ids: &[String]) -> Result<Vec<Option<Entry>>, PosError> {
        let (_tx, store) = self.db.read(PAYMENTS_STORE)?;
        let requests = ids
            .iter()
            .map(|id| {
                store
                    .get(&JsValue::from_str(id))
                    .map_err(|e| storage_error(&e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let records = futures_util::future::try_join_all(requests.iter().map(idb::request)).await?;
        Ok(records
            .iter()
            .map(|r| {
                if r.is_undefined() {
                    None
                } else {
                    self.entry_of(r)
                }
            })
            .collect())
    }

    /// True when a record of payment `id` exists, in any state, readable or not.
    pub async fn contains(&self, id: &str) -> Result<bool, PosError> {
        let (_tx, store) = self.db.read(PAYMENTS_STORE)?;
        let req = store
            .count_with_key(&JsValue::from_str(id))
            .map_err(|e| storage_error(&e))?;
        Ok(idb::request(&req).await?.as_f64().unwrap_or(0.0) > 0.0)
    }

    /// Compare-and-set: moves the record to `to` (with a re-sealed `body`) only if it is still
    /// as `header` describes it, in one strict transaction. Returns the new header, or `None`
    /// when someone else moved it first.
    pub async fn transition(
        &self,
        header: &Header,
        to: StoredState,
        body: Option<&SealedBody>,
        next_attempt_at: f64,
    ) -> Result<Option<Header>, PosError> {
        self.transition_within(header, to, body, next_attempt_at, None)
            .await
    }

    /// `transition`, refused with `offline_limit_exceeded` when the record starts counting
    /// against offline limits (an intent stored offline) and `limits` do not allow it.
    pub async fn transition_within(
        &self,
        header: &Header,
        to: StoredState,
        body: Option<&SealedBody>,
        next_attempt_at: f64,
        limits: Option<&OfflineLimits>,
    ) -> Result<Option<Header>, PosError> {
        if !header.state.can_move_to(to) {
            return Err(PosError::Internal(format!(
                "refused state change {} -> {} (a bug: callers check first)",
                header.state.as_str(),
                to.as_str()
            )));
        }
        self.write(header, to, body, next_attempt_at, limits).await
    }

    /// Re-seals a forwarded record with `body` (what the backend said of it since: a capture
    /// or cancel), a compare-and-set like `transition`. `None` when it changed meanwhile.
    pub async fn update_forwarded(
        &self,
        header: &Header,
        body: &SealedBody,
    ) -> Result<Option<Header>, PosError> {
        if header.state != StoredState::Forwarded {
            return Err(PosError::Internal(
                "only a forwarded record is updated in place".into(),
            ));
        }
        let to = StoredState::Forwarded;
        self.write(header, to, Some(body), header.next_attempt_at, None)
            .await
    }

    async fn write(
        &self,
        header: &Header,
        to: StoredState,
        body: Option<&SealedBody>,
        next_attempt_at: f64,
        limits: Option<&OfflineLimits>,
    ) -> Result<Option<Header>, PosError> {
        let now = js::now_ms();
        let next = Header {
            state: to,
            updated_at: now,
            next_attempt_at,
            // Re-sealed records take the current schema; quarantined bytes keep theirs.
            version: if body.is_some() {
                SCHEMA_VERSION
            } else {
                header.version
            },
            ..header.clone()
        };
        let new_record = match body {
            Some(b) => Some(self.to_record(&next, b)?),
            None => None,
        };
        let tx = StrictTx::begin(&self.db, &[PAYMENTS_STORE, KEYS_STORE])?;
        let moved = async {
            let store = tx.store(PAYMENTS_STORE)?;
            let req = store
                .get(&JsValue::from_str(&header.id))
                .map_err(|e| storage_error(&e))?;
            // The ledger is read only when the record starts or stops counting; asked for
            // together with the record.
            let ledger = match counts(header.state) != counts(to) {
                true => Some(Self::ledger_request(&tx.store(KEYS_STORE)?)?),
                false => None,
            };
            let (current, stored) = futures_util::future::try_join(idb::request(&req), async {
                match &ledger {
                    Some(r) => idb::request(r).await.map(Some),
                    None => Ok(None),
                }
            })
            .await?;
            // Same state and same last update: nobody moved it since we read it (this holds
            // even where Web Locks are missing and two forwarders race).
            let current_state = js::get(&current, "state").as_string();
            let current_updated = js::get(&current, "updatedAt").as_f64();
            if current.is_undefined()
                || current_state.as_deref() != Some(header.state.as_str())
                || current_updated != Some(header.updated_at)
            {
                return Ok(None);
            }
            let change = match (counts(header.state), counts(to), body) {
                (false, false, _) | (true, true, _) => None,
                (false, true, Some(b)) => {
                    Some(Change::Enter(Counted::of(&header.id, header.stored_at, b)))
                }
                (false, true, None) => {
                    return Err(PosError::Internal(
                        "a record starts counting without its body".into(),
                    ))
                }
                (true, false, Some(b)) => {
                    Some(Change::Leave(Counted::of(&header.id, header.stored_at, b)))
                }
                (true, false, None) => Some(Change::LeaveUnread(header.id.clone())),
            };
            let applied = match (change, &stored) {
                (Some(change), Some(stored)) => Some(
                    self.apply_in(&tx, stored, vec![change], limits, now)
                        .await?,
                ),
                _ => None,
            };
            let record = match new_record {
                Some(r) => r,
                None => {
                    // Quarantine keeps the sealed bytes as they are, for inspection.
                    js::set(&current, "state", &to.as_str().into());
                    js::set(&current, "updatedAt", &now.into());
                    js::set(&current, "nextAttemptAt", &next_attempt_at.into());
                    current
                }
            };
            let req = store.put(&record).map_err(|e| storage_error(&e))?;
            Ok::<_, PosError>(Some(((), Last::new(applied, vec![req]))))
        }
        .await;
        let Some(((), summary)) = end_round(tx, moved, &self.ledger_cache).await? else {
            return Ok(None);
        };
        if summary.is_some() {
            *self.summary.borrow_mut() = summary;
        }
        Ok(Some(next))
    }

    /// Several compare-and-sets in ONE strict transaction (a forwarding run claims a page
    /// of records, then settles the answers that arrived together): each record moves to its
    /// `to` with its re-sealed body only if it is still as its header describes it; the
    /// others are left as they are (`None` at their place). The ledger, if any record starts
    /// or stops counting, is written once. Returns after the transaction completed.
    pub async fn transition_many(
        &self,
        moves: &[Move<'_>],
    ) -> Result<Vec<Option<Header>>, PosError> {
        let none = || vec![None; moves.len()];
        if moves.is_empty() {
            return Ok(Vec::new());
        }
        let now = js::now_ms();
        let mut nexts = Vec::with_capacity(moves.len());
        let mut records = Vec::with_capacity(moves.len());
        for m in moves {
            if !m.header.state.can_move_to(m.to) || m.to == StoredState::Quarantined {
                return Err(PosError::Internal(format!(
                    "refused state change {} -> {} (a bug: callers check first)",
                    m.header.state.as_str(),
                    m.to.as_str()
                )));
            }
            let next = Header {
                state: m.to,
                updated_at: now,
                next_attempt_at: m.next_attempt_at,
                version: SCHEMA_VERSION,
                ..m.header.clone()
            };
            // Sealed before the transaction opens (synchronous anyway).
            records.push(self.to_record(&next, m.body)?);
            nexts.push(next);
        }
        let needs_ledger = moves.iter().any(|m| counts(m.header.state) != counts(m.to));
        let tx = StrictTx::begin(&self.db, &[PAYMENTS_STORE, KEYS_STORE])?;
        let moved = async {
            let store = tx.store(PAYMENTS_STORE)?;
            let gets = moves
                .iter()
                .map(|m| {
                    store
                        .get(&JsValue::from_str(&m.header.id))
                        .map_err(|e| storage_error(&e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let ledger = match needs_ledger {
                true => Some(Self::ledger_request(&tx.store(KEYS_STORE)?)?),
                false => None,
            };
            let (currents, stored) = futures_util::future::try_join(
                futures_util::future::try_join_all(gets.iter().map(idb::request)),
                async {
                    match &ledger {
                        Some(r) => idb::request(r).await.map(Some),
                        None => Ok(None),
                    }
                },
            )
            .await?;
            let mut out = none();
            let mut changes = Vec::new();
            let mut keep = Vec::new();
            for (i, (m, current)) in moves.iter().zip(&currents).enumerate() {
                // Same state and same last update: nobody moved it since it was read.
                if current.is_undefined()
                    || js::get(current, "state").as_string().as_deref()
                        != Some(m.header.state.as_str())
                    || js::get(current, "updatedAt").as_f64() != Some(m.header.updated_at)
                {
                    continue;
                }
                let c = || Counted::of(&m.header.id, m.header.stored_at, m.body);
                match (counts(m.header.state), counts(m.to)) {
                    (false, true) => changes.push(Change::Enter(c())),
                    (true, false) => changes.push(Change::Leave(c())),
                    _ => {}
                }
                keep.push(i);
                out[i] = Some(nexts[i].clone());
            }
            if keep.is_empty() {
                return Ok(None);
            }
            // The ledger's reads (a rebuild) come before the records' writes.
            let applied = match (changes.is_empty(), &stored) {
                (false, Some(stored)) => {
                    Some(self.apply_in(&tx, stored, changes, None, now).await?)
                }
                _ => None,
            };
            let puts = keep
                .iter()
                .map(|&i| store.put(&records[i]).map_err(|e| storage_error(&e)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, PosError>(Some((out, Last::new(applied, puts))))
        }
        .await;
        let Some((out, summary)) = end_round(tx, moved, &self.ledger_cache).await? else {
            return Ok(none());
        };
        if summary.is_some() {
            *self.summary.borrow_mut() = summary;
        }
        Ok(out)
    }

    /// The durability a strict transaction really gets in this browser.
    pub fn probe_durability(&self) -> Result<String, PosError> {
        let tx = StrictTx::begin(&self.db, &[PAYMENTS_STORE])?;
        let d = tx.durability();
        let _ = tx; // ends with no requests: commits nothing
        Ok(d)
    }
}

/// The raw records in `pending` and `forwarding`, through the `state` index of `payments`.
async fn outstanding_records(payments: &IdbObjectStore) -> Result<Vec<JsValue>, PosError> {
    records_in(payments, &[StoredState::Pending, StoredState::Forwarding]).await
}

/// The records in `states`, through the `state` index (the rest stays on disk).
async fn records_in(
    payments: &IdbObjectStore,
    states: &[StoredState],
) -> Result<Vec<JsValue>, PosError> {
    let index = payments.index(STATE_INDEX).map_err(|e| storage_error(&e))?;
    let mut all = Vec::new();
    for state in states {
        let range = IdbKeyRange::only(&state.as_str().into()).map_err(|e| storage_error(&e))?;
        let req = index
            .get_all_with_key(&range)
            .map_err(|e| storage_error(&e))?;
        let records: Array = idb::request(&req).await?.unchecked_into();
        all.extend(records.iter());
    }
    Ok(all)
}

/// The last round of a write transaction: its writes issued, not awaited, and the ledger
/// change among them if any (`end_round` commits them together).
struct Last {
    applied: Option<ledger::Applied>,
    writes: Vec<IdbRequest>,
}

impl Last {
    fn new(applied: Option<ledger::Applied>, writes: Vec<IdbRequest>) -> Self {
        Last { applied, writes }
    }
}

/// `end_tx` for a transaction whose last writes are still in flight (`Last`): `commit()` is
/// asked for at once (a failed write aborts the transaction and the commit names its
/// cause), saving the round trip of waiting for each write's success before committing.
/// Returns the work's value and the new status summary when the ledger changed.
async fn end_round<T>(
    tx: StrictTx,
    work: Result<Option<(T, Last)>, PosError>,
    cache: &RefCell<Option<predict::LedgerCache>>,
) -> Result<Option<(T, Option<Outstanding>)>, PosError> {
    match work {
        Ok(Some((value, last))) => {
            let summary = match last.applied {
                Some(applied) => Some(applied.commit(tx, last.writes, cache).await?),
                None => {
                    drop(last.writes);
                    tx.commit().await?;
                    None
                }
            };
            Ok(Some((value, summary)))
        }
        Ok(None) => end_tx::<()>(tx, Ok(None)).await.map(|_| None),
        Err(e) => end_tx::<()>(tx, Err(e)).await.map(|_| None),
    }
}

/// Ends `tx` after its requests ran: commits when `work` asks to keep its writes
/// (`Ok(Some)`), aborts otherwise, and names a failure by its real cause.
async fn end_tx<T>(tx: StrictTx, work: Result<Option<T>, PosError>) -> Result<Option<T>, PosError> {
    match work {
        Ok(Some(value)) => {
            tx.commit().await?;
            Ok(Some(value))
        }
        Ok(None) => {
            tx.abort().await;
            Ok(None)
        }
        Err(PosError::Storage(e)) => Err(tx.fail(e).await.into()),
        Err(e) => {
            tx.abort().await;
            Err(e)
        }
    }
}
