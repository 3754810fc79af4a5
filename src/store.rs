//! The offline payment store in IndexedDB (through `idb`): every write in a strict
//! transaction, every state change a compare-and-set. A record keeps id, schema version,
//! state and times in the clear; the rest is sealed by the vault. Nothing is deleted: a
//! record only changes state.

use js_sys::{Array, Object, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{IdbDatabase, IdbIndexParameters, IdbKeyRange, IdbTransaction};

use crate::error::{DomErrorName, PosError};
use crate::idb::{self, Database, StrictTx};
use crate::js::{self, storage_error};
use crate::keystore::{self, KEYS_STORE};
use crate::payment::{Collected, Entry, Header, SealedBody, StoredState, SCHEMA_VERSION};
use crate::vault::Vault;

pub const PAYMENTS_STORE: &str = "payments";
const STATE_INDEX: &str = "state";
const CONFIG_ID: &str = "config";
/// Database version (object stores and indexes); records carry `SCHEMA_VERSION`.
const DB_VERSION: u32 = 1;

/// What the page persists (sealed) for a forwarder running without it, e.g. a service worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedConfig {
    pub backend_url: String,
    pub connection_token: Option<String>,
}

/// The payments store of one database, with its vault.
pub struct Store {
    db: Database,
    vault: Vault,
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

impl Store {
    pub async fn open(name: &str) -> Result<Store, PosError> {
        let db = Database::open(name, DB_VERSION, upgrade)
            .await
            .map_err(|e| match e.name() {
                Some(DomErrorName::Version) => PosError::UnknownSchemaVersion(DB_VERSION + 1),
                _ => e.into(),
            })?;
        let mut key = keystore::load_or_create(&db).await?;
        let vault = Vault::from_key(&mut key, name);
        Ok(Store { db, vault })
    }

    /// Closes the connection; later calls fail with a storage error.
    pub fn close(&self) {
        self.db.close();
    }

    /// What a record's seal is bound to besides the database and schema: its id and its
    /// state, so flipping the clear `state` (say pending → forwarded) is detected too.
    fn seal_context(header: &Header) -> String {
        format!("{}|{}", header.id, header.state.as_str())
    }

    fn to_record(&self, header: &Header, body: &SealedBody) -> Result<JsValue, PosError> {
        let sealed = self.vault.seal_json(&Self::seal_context(header), body)?;
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

    fn header_of(record: &JsValue) -> Option<(Header, Vec<u8>)> {
        let id = js::get(record, "id").as_string()?;
        let version = js::get(record, "v").as_f64()? as u32;
        let state = StoredState::parse(&js::get(record, "state").as_string()?)?;
        let sealed: Uint8Array = js::get(record, "sealed").dyn_into().ok()?;
        Some((
            Header {
                id,
                version,
                state,
                stored_at: js::get(record, "storedAt").as_f64().unwrap_or(0.0),
                updated_at: js::get(record, "updatedAt").as_f64().unwrap_or(0.0),
                next_attempt_at: js::get(record, "nextAttemptAt").as_f64().unwrap_or(0.0),
            },
            sealed.to_vec(),
        ))
    }

    fn entry_of(&self, record: &JsValue) -> Option<Entry> {
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
        let body = if header.version != SCHEMA_VERSION {
            Err(PosError::UnknownSchemaVersion(header.version))
        } else {
            self.vault
                .open_json::<SealedBody>(&Self::seal_context(&header), &sealed)
        };
        Some(Entry { header, body })
    }

    /// Stores a collected payment as `pending`. Returns only after the strict transaction
    /// completed. A second call for the same id returns the first record's header.
    pub async fn add_pending(&self, c: &Collected, now: f64) -> Result<Header, PosError> {
        let header = Header {
            id: c.id.clone(),
            version: SCHEMA_VERSION,
            state: StoredState::Pending,
            stored_at: now,
            updated_at: now,
            next_attempt_at: now,
        };
        // Seal before the transaction opens: an await inside it would let it auto-commit.
        let record = self.to_record(&header, &SealedBody::from_collected(c))?;
        let tx = StrictTx::begin(&self.db, &[PAYMENTS_STORE])?;
        let store = tx.store(PAYMENTS_STORE)?;
        let added = match store.add(&record) {
            Ok(req) => idb::request(&req).await,
            Err(e) => Err(storage_error(&e)),
        };
        match added {
            Ok(_) => {
                tx.commit().await?;
                Ok(header)
            }
            // Read the failed request's own error: engines differ on the transaction's.
            Err(e) if e.name() == Some(DomErrorName::Constraint) => {
                tx.abort().await;
                match self.get(&c.id).await? {
                    Some(existing) => Ok(existing.header),
                    None => Err(e.into()),
                }
            }
            Err(e) => {
                tx.abort().await;
                Err(e.into())
            }
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

    /// The payments the backend has not answered yet (`pending`, `forwarding`), oldest first,
    /// read through the `state` index so the cost does not grow with the history.
    pub async fn outstanding(&self) -> Result<Vec<Entry>, PosError> {
        let (_tx, store) = self.db.read(PAYMENTS_STORE)?;
        let index = store.index(STATE_INDEX).map_err(|e| storage_error(&e))?;
        let mut all = Vec::new();
        for state in [StoredState::Pending, StoredState::Forwarding] {
            let range = IdbKeyRange::only(&state.as_str().into()).map_err(|e| storage_error(&e))?;
            let req = index
                .get_all_with_key(&range)
                .map_err(|e| storage_error(&e))?;
            let records: Array = idb::request(&req).await?.unchecked_into();
            all.extend(records.iter());
        }
        Ok(self.entries_of(all.into_iter()))
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
        if !header.state.can_move_to(to) {
            return Err(PosError::Internal(format!(
                "refused state change {} -> {} (a bug: callers check first)",
                header.state.as_str(),
                to.as_str()
            )));
        }
        let now = js::now_ms();
        let next = Header {
            state: to,
            updated_at: now,
            next_attempt_at,
            ..header.clone()
        };
        let new_record = match body {
            Some(b) => Some(self.to_record(&next, b)?),
            None => None,
        };
        let tx = StrictTx::begin(&self.db, &[PAYMENTS_STORE])?;
        let store = tx.store(PAYMENTS_STORE)?;
        let current = match store.get(&JsValue::from_str(&header.id)) {
            Ok(req) => idb::request(&req).await,
            Err(e) => Err(storage_error(&e)),
        };
        let current = match current {
            Ok(c) => c,
            Err(e) => {
                tx.abort().await;
                return Err(e.into());
            }
        };
        // Same state and same last update: nobody moved it since we read it (this holds even
        // where Web Locks are missing and two forwarders race).
        let current_state = js::get(&current, "state").as_string();
        let current_updated = js::get(&current, "updatedAt").as_f64();
        if current.is_undefined()
            || current_state.as_deref() != Some(header.state.as_str())
            || current_updated != Some(header.updated_at)
        {
            tx.abort().await;
            return Ok(None);
        }
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
        let put = match store.put(&record) {
            Ok(req) => idb::request(&req).await,
            Err(e) => Err(storage_error(&e)),
        };
        if let Err(e) = put {
            tx.abort().await;
            return Err(e.into());
        }
        tx.commit().await?;
        Ok(Some(next))
    }

    pub async fn save_config(&self, config: &PersistedConfig) -> Result<(), PosError> {
        let sealed = self.vault.seal_json(CONFIG_ID, config)?;
        let tx = StrictTx::begin(&self.db, &[KEYS_STORE])?;
        let store = tx.store(KEYS_STORE)?;
        let put = match store.put_with_key(
            &Uint8Array::from(&sealed[..]),
            &JsValue::from_str(CONFIG_ID),
        ) {
            Ok(req) => idb::request(&req).await,
            Err(e) => Err(storage_error(&e)),
        };
        if let Err(e) = put {
            tx.abort().await;
            return Err(e.into());
        }
        Ok(tx.commit().await?)
    }

    pub async fn load_config(&self) -> Result<Option<PersistedConfig>, PosError> {
        let (_tx, store) = self.db.read(KEYS_STORE)?;
        let req = store
            .get(&JsValue::from_str(CONFIG_ID))
            .map_err(|e| storage_error(&e))?;
        match idb::request(&req).await?.dyn_into::<Uint8Array>() {
            Ok(bytes) => self.vault.open_json(CONFIG_ID, &bytes.to_vec()).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// The durability a strict transaction really gets in this browser.
    pub fn probe_durability(&self) -> Result<String, PosError> {
        let tx = StrictTx::begin(&self.db, &[PAYMENTS_STORE])?;
        let d = tx.durability();
        let _ = tx; // ends with no requests: commits nothing
        Ok(d)
    }
}
