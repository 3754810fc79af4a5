//! What a forwarding run works through, read by the `state` index in pages: the ids of the
//! records in a state are taken once (kept on the JS side, not in wasm memory), and records
//! are opened a page at a time, so neither the history nor the whole backlog is ever loaded
//! at once.

use futures_util::future::try_join_all;
use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::IdbKeyRange;

use super::{Store, PAYMENTS_STORE, STATE_INDEX};
use crate::error::PosError;
use crate::idb;
use crate::js::storage_error;
use crate::payment::{Entry, StoredState};

/// The ids of the records a run may forward, in the order it takes them: crashed tries
/// (`forwarding`) first, then `pending`, then intents (the forwarder keeps the abandoned).
pub struct ForwardQueue {
    ids: Vec<Array>,
    list: usize,
    next: u32,
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

impl Store {
    /// The ids of every record in `forwarding`, `pending` and `intent`, through the `state`
    /// index (keys only: the records stay on disk).
    pub async fn forward_queue(&self) -> Result<ForwardQueue, PosError> {
        let (_tx, store) = self.db.read(PAYMENTS_STORE)?;
        let index = store.index(STATE_INDEX).map_err(|e| storage_error(&e))?;
        let mut requests = Vec::new();
        for state in [
            StoredState::Forwarding,
            StoredState::Pending,
            StoredState::Intent,
        ] {
            let range = IdbKeyRange::only(&state.as_str().into()).map_err(|e| storage_error(&e))?;
            requests.push(
                index
                    .get_all_keys_with_key(&range)
                    .map_err(|e| storage_error(&e))?,
            );
        }
        let ids = try_join_all(requests.iter().map(idb::request)).await?;
        Ok(ForwardQueue {
            ids: ids
                .into_iter()
                .map(JsCast::unchecked_into::<Array>)
                .collect(),
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
