//! Keeping the store healthy: unreadable records quarantined, finished ones pruned after the
//! retention, failed ones requeued by support, intents discarded once answered.

use futures_util::future::try_join_all;
use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use web_sys::IdbKeyRange;

use super::ledger::Change;
use super::{end_round, end_tx, Last, Store, KEYS_STORE, PAYMENTS_STORE, STATE_INDEX};
use crate::error::PosError;
use crate::idb::{self, StrictTx};
use crate::js::{self, storage_error};
use crate::payment::{Entry, Header, StoredState};

/// The states a record may be flipped to from `pending` or `forwarding` without leaving
/// every list (and without being opened by a run): the finished ones.
const FINISHED: [StoredState; 3] = [
    StoredState::Forwarded,
    StoredState::Declined,
    StoredState::Failed,
];

impl Store {
    /// Moves every record whose clear header cannot be read (and so cannot be compared and
    /// set) to `quarantined`, so it stops counting as pending; returns their ids.
    ///
    /// Every record is read: the forwarder calls this only when some record is in no
    /// state's list (`ForwardQueue::unlisted`); one listed as outstanding is found by the
    /// page that reads it, and goes through `quarantine_ids`.
    pub async fn quarantine_unreadable(&self) -> Result<Vec<String>, PosError> {
        self.quarantine_where(None).await
    }

    /// Moves the records of `ids` whose clear header cannot be read to `quarantined` (a
    /// record someone else rewrote or quarantined meanwhile is left as it is); their ids.
    pub async fn quarantine_ids(&self, ids: &[String]) -> Result<Vec<String>, PosError> {
        self.quarantine_where(Some(ids)).await
    }

    /// The quarantine itself, in one strict transaction: over every record (`None`) or the
    /// records of `ids`. A moved record may still have been counted by the sealed ledger (its
    /// clear state said `pending`): the ledger is counted again from the outstanding records
    /// that open, in the same transaction, so the limits and the status no longer count it.
    async fn quarantine_where(&self, ids: Option<&[String]>) -> Result<Vec<String>, PosError> {
        let tx = StrictTx::begin(&self.db, &[PAYMENTS_STORE, KEYS_STORE])?;
        let work = async {
            let store = tx.store(PAYMENTS_STORE)?;
            let ledger = Self::ledger_request(&tx.store(KEYS_STORE)?)?;
            let records = async {
                Ok::<Vec<JsValue>, PosError>(match ids {
                    None => {
                        let req = store.get_all().map_err(|e| storage_error(&e))?;
                        idb::request(&req).await?.unchecked_into::<Array>().to_vec()
                    }
                    Some(ids) => {
                        let requests = ids
                            .iter()
                            .map(|id| store.get(&id.into()).map_err(|e| storage_error(&e)))
                            .collect::<Result<Vec<_>, _>>()?;
                        try_join_all(requests.iter().map(idb::request)).await?
                    }
                })
            };
            // Awaited together: a request is heard only if it is awaited before it ends.
            let (stored, records) = futures_util::future::try_join(
                async { Ok::<_, PosError>(idb::request(&ledger).await?) },
                records,
            )
            .await?;
            let now = js::now_ms();
            let mut moved = Vec::new();
            let mut puts = Vec::new();
            for record in records {
                if record.is_undefined() {
                    continue;
                }
                let quarantined = js::get(&record, "state").as_string().as_deref()
                    == Some(StoredState::Quarantined.as_str());
                if quarantined || Self::header_of(&record).is_some() {
                    continue;
                }
                let Some(id) = js::get(&record, "id").as_string() else {
                    continue;
                };
                js::set(&record, "state", &StoredState::Quarantined.as_str().into());
                js::set(&record, "updatedAt", &now.into());
                puts.push(record);
                moved.push(id);
            }
            if moved.is_empty() {
                return Ok(None);
            }
            // The rebuild skips records whose header does not open.
            let last = self
                .recount_then_put(&tx, &store, &stored, &puts, now)
                .await?;
            Ok::<_, PosError>(Some((moved, last)))
        }
        .await;
        let Some((moved, summary)) = end_round(tx, work, &self.ledger_cache).await? else {
            return Ok(Vec::new());
        };
        if summary.is_some() {
            *self.summary.borrow_mut() = summary;
        }
        Ok(moved)
    }

    /// Inside `tx`, with `stored` the answer to `ledger_request`: counts the ledger again from
    /// the outstanding records that open, then puts `records` (the rebuild's reads come
    /// before the records' writes). Left for `end_round` to commit.
    async fn recount_then_put(
        &self,
        tx: &StrictTx,
        store: &web_sys::IdbObjectStore,
        stored: &JsValue,
        records: &[JsValue],
        now: f64,
    ) -> Result<Last, PosError> {
        let applied = self
            .apply_in(tx, stored, vec![Change::Recount], None, now)
            .await?;
        let puts = records
            .iter()
            .map(|r| store.put(r).map_err(|e| storage_error(&e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Last::new(Some(applied), puts))
    }

    /// When the sealed ledger counts other than the outstanding records listed
    /// (`ForwardQueue::ledger_mismatch`): moves every finished record (`forwarded`, `declined`,
    /// `failed`) that fails authentication under its clear header to `quarantined` (its
    /// sealed bytes kept), and rebuilds the ledger from the outstanding records, in one
    /// strict transaction. Returns the quarantined records' headers (to report).
    ///
    /// A record's seal binds its state, so a clear state flipped out of `pending` or
    /// `forwarding` makes it fail here; the ledger, sealed, still counted it. Reads every
    /// finished record (the history within the retention), but runs only on a mismatch,
    /// which only a change behind this SDK's back makes; the rebuild then makes the counts
    /// agree again, so it is not repeated. Records that open are left as they are.
    pub async fn quarantine_flipped(&self) -> Result<Vec<Header>, PosError> {
        let tx = StrictTx::begin(&self.db, &[PAYMENTS_STORE, KEYS_STORE])?;
        let work = async {
            let store = tx.store(PAYMENTS_STORE)?;
            let index = store.index(STATE_INDEX).map_err(|e| storage_error(&e))?;
            let only = |state: StoredState| {
                IdbKeyRange::only(&state.as_str().into()).map_err(|e| storage_error(&e))
            };
            let ledger = Self::ledger_request(&tx.store(KEYS_STORE)?)?;
            let mut listed = Vec::new();
            for state in [StoredState::Pending, StoredState::Forwarding] {
                listed.push(
                    index
                        .count_with_key(&only(state)?.into())
                        .map_err(|e| storage_error(&e))?,
                );
            }
            let mut finished = Vec::new();
            for state in FINISHED {
                finished.push(
                    index
                        .get_all_with_key(&only(state)?.into())
                        .map_err(|e| storage_error(&e))?,
                );
            }
            let ((stored, listed), finished) = futures_util::future::try_join(
                futures_util::future::try_join(
                    idb::request(&ledger),
                    try_join_all(listed.iter().map(idb::request)),
                ),
                try_join_all(finished.iter().map(idb::request)),
            )
            .await?;
            // Looked at again under the write lock: another context may have set it right.
            let listed: f64 = listed.iter().map(|n| n.as_f64().unwrap_or(0.0)).sum();
            // No ledger (or one that does not open) says nothing: every finished record's
            // seal is checked then, and the ledger rebuilt.
            let differs = self
                .open_ledger(&stored)
                .is_none_or(|l| f64::from(l.outstanding().count) != listed);
            if !differs {
                return Ok(None);
            }
            let now = js::now_ms();
            let mut moved = Vec::new();
            let mut puts = Vec::new();
            for record in finished
                .into_iter()
                .flat_map(|r| r.unchecked_into::<Array>().to_vec())
            {
                let Some(entry) = self.open_entry(&record) else {
                    continue;
                };
                if !matches!(entry.body, Err(PosError::RecordTampered)) {
                    continue;
                }
                moved.push(Header {
                    state: StoredState::Quarantined,
                    updated_at: now,
                    ..entry.header
                });
                js::set(&record, "state", &StoredState::Quarantined.as_str().into());
                js::set(&record, "updatedAt", &now.into());
                puts.push(record);
            }
            let last = self
                .recount_then_put(&tx, &store, &stored, &puts, now)
                .await?;
            Ok::<_, PosError>(Some((moved, last)))
        }
        .await;
        let Some((moved, summary)) = end_round(tx, work, &self.ledger_cache).await? else {
            return Ok(Vec::new());
        };
        if summary.is_some() {
            *self.summary.borrow_mut() = summary;
        }
        Ok(moved)
    }

    /// Deletes the finished records (`forwarded`, `declined`: their card payload is already
    /// erased) last changed before `before`. `failed` and `quarantined` records are kept:
    /// support may still recover them. So is a record that fails authentication (its clear
    /// state or times changed behind this SDK's back): it is evidence, which the next
    /// forwarding run quarantines if the ledger still counts it (`quarantine_flipped`).
    /// Returns how many went.
    pub async fn prune_finished(&self, before: f64) -> Result<u32, PosError> {
        let tx = StrictTx::begin(&self.db, &[PAYMENTS_STORE])?;
        let pruned = async {
            let store = tx.store(PAYMENTS_STORE)?;
            let index = store.index(STATE_INDEX).map_err(|e| storage_error(&e))?;
            let mut pruned = 0u32;
            for state in [StoredState::Forwarded, StoredState::Declined] {
                let range =
                    IdbKeyRange::only(&state.as_str().into()).map_err(|e| storage_error(&e))?;
                let req = index
                    .get_all_with_key(&range)
                    .map_err(|e| storage_error(&e))?;
                let records: Array = idb::request(&req).await?.unchecked_into();
                for record in records.iter() {
                    let old = js::get(&record, "updatedAt")
                        .as_f64()
                        .is_some_and(|t| t < before);
                    let tampered = || {
                        self.open_entry(&record)
                            .is_none_or(|e| matches!(e.body, Err(PosError::RecordTampered)))
                    };
                    if !old || tampered() {
                        continue;
                    }
                    let req = store
                        .delete(&js::get(&record, "id"))
                        .map_err(|e| storage_error(&e))?;
                    idb::request(&req).await?;
                    pruned += 1;
                }
            }
            Ok::<_, PosError>((pruned > 0).then_some(pruned))
        }
        .await;
        Ok(end_tx(tx, pruned).await?.unwrap_or(0))
    }

    /// True when anything may need forwarding: outstanding payments or intents (some of
    /// which may have been abandoned), counted through the `state` index.
    pub async fn needs_forwarding(&self) -> Result<bool, PosError> {
        let (_tx, store) = self.db.read(PAYMENTS_STORE)?;
        let index = store.index(STATE_INDEX).map_err(|e| storage_error(&e))?;
        for state in [
            StoredState::Pending,
            StoredState::Forwarding,
            StoredState::Intent,
        ] {
            let req = index
                .count_with_key(&state.as_str().into())
                .map_err(|e| storage_error(&e))?;
            if idb::request(&req).await?.as_f64().unwrap_or(0.0) > 0.0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Support's way out of `failed`: back to `pending` under the same id (the same
    /// idempotency key), forwarded on the next run.
    pub async fn requeue(&self, id: &str) -> Result<Entry, PosError> {
        let entry = self
            .get(id)
            .await?
            .ok_or_else(|| PosError::InvalidArgument(format!("no stored payment {id}")))?;
        if entry.header.state != StoredState::Failed {
            return Err(PosError::InvalidArgument(format!(
                "payment {id} is {}, only a failed payment can be requeued",
                entry.header.state.as_str()
            )));
        }
        let mut body = match entry.body {
            Ok(body) => body,
            Err(PosError::RecordTampered) => {
                // Quarantined as a run would (the ledger left as it is: if the record was
                // flipped out of `pending`, the next run's count finds the others with it).
                self.transition(&entry.header, StoredState::Quarantined, None, 0.0)
                    .await?;
                return Err(PosError::RecordTampered);
            }
            Err(e) => return Err(e),
        };
        body.unreadable = 0;
        let now = js::now_ms();
        let header = self
            .transition(&entry.header, StoredState::Pending, Some(&body), now)
            .await?
            .ok_or_else(|| PosError::InvalidArgument(format!("payment {id} changed meanwhile")))?;
        Ok(Entry {
            header,
            body: Ok(body),
        })
    }

    /// Deletes an intent once the backend gave its final answer to the online attempt (or it
    /// never left this browser), if it is still as `header` describes it. `false`: it is not
    /// (a forwarder claimed it meanwhile, which sends it), so it was left as it is.
    pub async fn discard_intent(&self, header: &Header) -> Result<bool, PosError> {
        if header.state != StoredState::Intent {
            return Err(PosError::Internal("only an intent may be discarded".into()));
        }
        let tx = StrictTx::begin(&self.db, &[PAYMENTS_STORE])?;
        let deleted = async {
            let store = tx.store(PAYMENTS_STORE)?;
            let req = store
                .get(&JsValue::from_str(&header.id))
                .map_err(|e| storage_error(&e))?;
            let current = idb::request(&req).await?;
            // Gone already: nothing is left to send.
            if current.is_undefined() {
                return Ok(None);
            }
            if js::get(&current, "state").as_string().as_deref() != Some("intent")
                || js::get(&current, "updatedAt").as_f64() != Some(header.updated_at)
            {
                return Ok(Some(false));
            }
            let req = store
                .delete(&JsValue::from_str(&header.id))
                .map_err(|e| storage_error(&e))?;
            idb::request(&req).await?;
            Ok::<_, PosError>(Some(true))
        }
        .await;
        Ok(end_tx(tx, deleted).await?.unwrap_or(true))
    }
}
