//! What a forwarding run works through, read by the `state` index in pages: the ids of the
//! records in a state are taken once (kept on the JS side, not in wasm memory), and records
//! are opened a page at a time, so neither the history nor the whole backlog is ever loaded
//! at once.

use futures_util::future::{try_join, try_join_all};
use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::IdbKeyRange;

use super::{Store, KEYS_STORE, PAYMENTS_STORE, STATE_INDEX};
use crate::error::PosError;
use crate::idb;
use crate::js::{self, storage_error};
use crate::payment::{Entry, StoredState};

/// The ids of the records a run may forward, in the order it takes them: crashed tries
/// (`forwarding`) first, then `pending`, then intents (the forwarder keeps the abandoned).
pub struct ForwardQueue {
    ids: Vec<Array>,
    list: usize,
    next: u32,
    /// Some record is in no state's list (its state missing, or none this SDK writes): it is
    /// not in this queue, and only a search of every record finds it. Looked for at most
    /// hourly per store (`UNLISTED_CHECK_EVERY_MS`); `false` in between.
    pub unlisted: bool,
    /// The sealed ledger counts other than the `state` index lists as `pending` and
    /// `forwarding`, which only a change behind this SDK's back makes. More: some record's
    /// clear state was flipped out of them (or a record deleted), which only a search of the
    /// finished records tells apart (`Store::quarantine_flipped`); compared at every run, one
    /// small read in the queue's own transaction. Fewer: an older sealed ledger was put back
    /// (its totals would let the limits pass more), or a record was put in; the same search
    /// recounts it; compared with the hourly count (`unlisted`), so at a page's first run.
    pub ledger_mismatch: bool,
}

impl ForwardQueue {
    /// Ids of `forwarding` and `pending` records not handed out yet (intents left out: most
    /// are online attempts still in progress).
    pub fn remaining_outstanding(&self) -> u32 {
        let mut left = 0;
        for (i, ids) in self.ids.iter().enumerate().take(2).skip(self.list) {
            left += ids.length() - if i == self.list { self.next } else { 0 };
        }
        left
    }

    /// The next `n` ids (fewer at the end), crossing from one state's list to the next.
    fn take(&mut self, n: u32) -> Vec<JsValue> {
        let mut page = Vec::new();
        while (page.len() as u32) < n && self.list < self.ids.len() {
            let ids = &self.ids[self.list];
            if self.next >= ids.length() {
                self.list += 1;
                self.next = 0;
                continue;
            }
            page.push(ids.get(self.next));
            self.next += 1;
        }
        page
    }
}

/// How often a store counts every record to find those in no state's list: counting is
/// linear in the records stored, history included (~50 ms for 10,000 here), and such a record
/// only comes from outside this SDK (tampering, a newer version's state).
pub(super) const UNLISTED_CHECK_EVERY_MS: f64 = 3_600_000.0;

/// The states a run takes records from, in its order.
const QUEUED: [StoredState; 3] = [
    StoredState::Forwarding,
    StoredState::Pending,
    StoredState::Intent,
];

impl Store {
    /// The ids of every record in `forwarding`, `pending` and `intent`, through the `state`
    /// index (keys only: the records stay on disk), whether any record is in no state's
    /// list, and whether the sealed ledger counts more outstanding payments than are listed.
    pub async fn forward_queue(&self) -> Result<ForwardQueue, PosError> {
        let now = js::now_ms();
        let count_all = self.unlisted_check.take(now);
        let queue = self.read_queue(count_all).await;
        if count_all && queue.is_err() {
            // The count did not happen: at the next run, not an hour later.
            self.unlisted_check.retry_in(now, 0.0);
        }
        queue
    }

    async fn read_queue(&self, count_all: bool) -> Result<ForwardQueue, PosError> {
        // The ledger is read in the same snapshot as the lists, so the two always agree
        // unless something outside this SDK changed a record.
        let tx = self.db.read_stores(&[PAYMENTS_STORE, KEYS_STORE])?;
        let store = tx
            .object_store(PAYMENTS_STORE)
            .map_err(|e| storage_error(&e))?;
        let keys = tx.object_store(KEYS_STORE).map_err(|e| storage_error(&e))?;
        let ledger = Self::ledger_request(&keys)?;
        let index = store.index(STATE_INDEX).map_err(|e| storage_error(&e))?;
        let only = |state: StoredState| {
            IdbKeyRange::only(&state.as_str().into()).map_err(|e| storage_error(&e))
        };
        let mut requests = Vec::new();
        for state in QUEUED {
            requests.push(
                index
                    .get_all_keys_with_key(&JsValue::from(only(state)?))
                    .map_err(|e| storage_error(&e))?,
            );
        }
        // Counted, not read, in the same transaction (at most hourly, or when the clock went
        // back): every record, and the other states'.
        let mut counts = Vec::new();
        if count_all {
            counts.push(store.count().map_err(|e| storage_error(&e))?);
            for state in StoredState::ALL {
                if !QUEUED.contains(&state) {
                    counts.push(
                        index
                            .count_with_key(&JsValue::from(only(state)?))
                            .map_err(|e| storage_error(&e))?,
                    );
                }
            }
        }
        // Every request's handlers are set before any is awaited.
        let ((ids, counts), stored) = try_join(
            try_join(
                try_join_all(requests.iter().map(idb::request)),
                try_join_all(counts.iter().map(idb::request)),
            ),
            idb::request(&ledger),
        )
        .await?;
        let ids: Vec<Array> = ids
            .into_iter()
            .map(JsCast::unchecked_into::<Array>)
            .collect();
        let count = |v: &JsValue| v.as_f64().unwrap_or(0.0);
        let unlisted = match counts.split_first() {
            Some((all, others)) => {
                let listed = ids.iter().map(|a| f64::from(a.length())).sum::<f64>()
                    + others.iter().map(count).sum::<f64>();
                count(all) != listed
            }
            None => false,
        };
        // Listed as outstanding (`forwarding`, `pending`) against what the ledger counts,
        // every backend's. A ledger that does not open (none yet, another layout) tells
        // nothing.
        let listed_outstanding: u32 = ids
            .iter()
            .zip(QUEUED)
            .filter(|(_, state)| state.is_outstanding())
            .map(|(ids, _)| ids.length())
            .sum();
        // Behind only at the hourly count (and a store's first run): records listed but not
        // counted can also be ones no rebuild counts (a newer schema's, after a rollback),
        // and the search would then run at every run.
        let ledger_mismatch = match self.open_ledger(&stored) {
            Some(l) => {
                let counted = l.outstanding().count;
                counted > listed_outstanding || (count_all && counted < listed_outstanding)
            }
            // No ledger, or one that does not open, beside records: this SDK writes the
            // ledger with the first payment ever stored and never deletes it, so the records
            // may have been flipped out of pending with the ledger taken away (which would
            // leave nothing to compare). Their seals are checked (`quarantine_flipped`).
            // Counted in the same snapshot, only then.
            None => {
                let any = store.count().map_err(|e| storage_error(&e))?;
                count(&idb::request(&any).await?) > 0.0
            }
        };
        Ok(ForwardQueue {
            unlisted,
            ledger_mismatch,
            ids,
            list: 0,
            next: 0,
        })
    }

    /// The next `n` records of `queue`, opened, oldest first within the page; records gone
    /// meanwhile or taken for another backend are left out. Empty at the end.
    pub async fn next_page(
        &self,
        queue: &mut ForwardQueue,
        n: u32,
    ) -> Result<Vec<Entry>, PosError> {
        loop {
            let ids = queue.take(n);
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let (_tx, store) = self.db.read(PAYMENTS_STORE)?;
            let requests = ids
                .iter()
                .map(|id| store.get(id).map_err(|e| storage_error(&e)))
                .collect::<Result<Vec<_>, _>>()?;
            let records = try_join_all(requests.iter().map(idb::request)).await?;
            let mut entries: Vec<Entry> = records
                .iter()
                .filter(|r| !r.is_undefined())
                .filter_map(|r| self.entry_of(r))
                .collect();
            if entries.is_empty() {
                continue;
            }
            entries.sort_by(|a, b| a.header.stored_at.total_cmp(&b.header.stored_at));
            return Ok(entries);
        }
    }
}
