//! The offline payment store in IndexedDB: opened and read through rexie, written through
//! `idb::StrictTx`. A record keeps id, schema version, state and times in the clear; the rest
//! is sealed by the vault. Nothing is deleted: a record only changes state.

use js_sys::{Object, Uint8Array};
use rexie::{Index, KeyRange, ObjectStore, Rexie, TransactionMode};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::IdbDatabase;

use crate::error::PosError;
use crate::idb::{self, StrictTx};
use crate::js;
use crate::keystore::{self, KEYS_STORE};
use crate::payment::{Collected, Header, SealedBody, StoredState, SCHEMA_VERSION};
use crate::vault::Vault;

pub const PAYMENTS_STORE: &str = "payments";
const CONFIG_ID: &str = "config";
/// Database version (object stores and indexes); records carry `SCHEMA_VERSION`.
const DB_VERSION: u32 = 1;

/// What the page persists (sealed) for a forwarder running without it, e.g. a service worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedConfig {
    pub backend_url: String,
    pub connection_token: Option<String>,
}

/// One stored payment as read back: the clear header and the opened body, or why it could
/// not be opened.
pub struct Entry {
    pub header: Header,
    pub body: Result<SealedBody, PosError>,
}

pub struct Store {
    rexie: Rexie,
    raw: IdbDatabase,
    vault: Vault,
}

fn rexie_err(e: rexie::Error) -> PosError {
    let text = e.to_string();
    let detail = format!("{e:?}");
    if detail.contains("VersionError") {
        PosError::UnknownSchemaVersion(0)
    } else if detail.contains("QuotaExceeded") {
        PosError::StorageQuotaExceeded(text)
    } else {
        PosError::Storage(format!("{text} ({detail})"))
    }
}

impl Store {
    pub async fn open(name: &str) -> Result<Store, PosError> {
        idb::factory()?;
        let rexie = Rexie::builder(name)
            .version(DB_VERSION)
            .add_object_store(
                ObjectStore::new(PAYMENTS_STORE)
                    .key_path("id")
                    .add_index(Index::new("state", "state")),
            )
            .add_object_store(ObjectStore::new(KEYS_STORE))
            .build()
            .await
            .map_err(|e| match rexie_err(e) {
                PosError::UnknownSchemaVersion(_) => PosError::UnknownSchemaVersion(DB_VERSION + 1),
                other => other,
            })?;
        let raw = idb::open_existing(name).await?;
        let mut key = keystore::load_or_create(&raw).await?;
        let vault = Vault::from_key(&mut key, name);
        Ok(Store { rexie, raw, vault })
    }

    /// Closes this store's raw connection; rexie's stays open until the page goes away
    /// (it can only be closed by value).
    pub fn close(&self) {
        self.raw.close();
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
        let tx = StrictTx::begin(&self.raw, &[PAYMENTS_STORE])?;
        let store = tx.store(PAYMENTS_STORE)?;
        if let Err(e) = store.add(&record) {
            tx.abort().await;
            return Err(idb::storage_error(&e));
        }
        match tx.commit().await {
            Ok(()) => Ok(header),
            Err(PosError::Storage(msg)) if msg.contains("Constraint") => {
                match self.get(&c.id).await? {
                    Some(existing) => Ok(existing.header),
                    None => Err(PosError::Storage(msg)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A read-only transaction on one object store (keep the transaction alive while reading).
    fn read(&self, name: &str) -> Result<(rexie::Transaction, rexie::Store), PosError> {
        let tx = self
            .rexie
            .transaction(&[name], TransactionMode::ReadOnly)
            .map_err(rexie_err)?;
        let store = tx.store(name).map_err(rexie_err)?;
        Ok((tx, store))
    }

    /// Every stored payment, oldest first.
    pub async fn all(&self) -> Result<Vec<Entry>, PosError> {
        let (_tx, store) = self.read(PAYMENTS_STORE)?;
        let records = store.get_all(None, None).await.map_err(rexie_err)?;
        let mut entries: Vec<Entry> = records.iter().filter_map(|r| self.entry_of(r)).collect();
        entries.sort_by(|a, b| a.header.stored_at.total_cmp(&b.header.stored_at));
        Ok(entries)
    }

    /// The payments the backend has not answered yet (`pending`, `forwarding`), oldest first,
    /// read through the `state` index so the cost does not grow with the history.
    pub async fn outstanding(&self) -> Result<Vec<Entry>, PosError> {
        let (_tx, store) = self.read(PAYMENTS_STORE)?;
        let index = store.index("state").map_err(rexie_err)?;
        let mut entries = Vec::new();
        for state in [StoredState::Pending, StoredState::Forwarding] {
            let range = KeyRange::only(&state.as_str().into())
                .map_err(|e| rexie_err(rexie::Error::from(e)))?;
            let records = index.get_all(Some(range), None).await.map_err(rexie_err)?;
            entries.extend(records.iter().filter_map(|r| self.entry_of(r)));
        }
        entries.sort_by(|a, b| a.header.stored_at.total_cmp(&b.header.stored_at));
        Ok(entries)
    }

    pub async fn get(&self, id: &str) -> Result<Option<Entry>, PosError> {
        let (_tx, store) = self.read(PAYMENTS_STORE)?;
        let record = store.get(id.into()).await.map_err(rexie_err)?;
        Ok(record.and_then(|r| self.entry_of(&r)))
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
                "refused state change {} -> {}",
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
        let tx = StrictTx::begin(&self.raw, &[PAYMENTS_STORE])?;
        let store = tx.store(PAYMENTS_STORE)?;
        let current = match store.get(&JsValue::from_str(&header.id)) {
            Ok(req) => idb::request(&req).await,
            Err(e) => Err(idb::storage_error(&e)),
        };
        let current = match current {
            Ok(c) => c,
            Err(e) => {
                tx.abort().await;
                return Err(e);
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
        if let Err(e) = store.put(&record) {
            tx.abort().await;
            return Err(idb::storage_error(&e));
        }
        tx.commit().await?;
        Ok(Some(next))
    }

    pub async fn save_config(&self, config: &PersistedConfig) -> Result<(), PosError> {
        let sealed = self.vault.seal_json(CONFIG_ID, config)?;
        let tx = StrictTx::begin(&self.raw, &[KEYS_STORE])?;
        let store = tx.store(KEYS_STORE)?;
        if let Err(e) = store.put_with_key(
            &Uint8Array::from(&sealed[..]),
            &JsValue::from_str(CONFIG_ID),
        ) {
            tx.abort().await;
            return Err(idb::storage_error(&e));
        }
        tx.commit().await
    }

    pub async fn load_config(&self) -> Result<Option<PersistedConfig>, PosError> {
        let (_tx, store) = self.read(KEYS_STORE)?;
        let value = store.get(CONFIG_ID.into()).await.map_err(rexie_err)?;
        match value.and_then(|v| v.dyn_into::<Uint8Array>().ok()) {
            Some(bytes) => self.vault.open_json(CONFIG_ID, &bytes.to_vec()).map(Some),
            None => Ok(None),
        }
    }

    /// The durability a strict transaction really gets in this browser (for tests).
    pub fn probe_durability(&self) -> Result<String, PosError> {
        let tx = StrictTx::begin(&self.raw, &[PAYMENTS_STORE])?;
        let d = tx.durability();
        let _ = tx; // ends with no requests: commits nothing
        Ok(d)
    }
}
