//! The sealed ledger of outstanding payments: read (or rebuilt) and written inside the same
//! strict transaction as the records it sums, so offline limits are checked and the write
//! they allow happen together.

use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::{
    outstanding_records, Store, KEYS_STORE, LEDGER_ID, PAYMENTS_STORE, SEALED_META_VERSION,
};
use crate::error::PosError;
use crate::idb::{self, StrictTx};
use crate::js::storage_error;
use crate::limits::{Ledger, LedgerEntry, OfflineLimits};
use crate::payment::{Header, SealedBody, StoredState};

impl Store {
    /// The ledger as stored, or rebuilt from the outstanding records when it is missing
    /// (a database from before it existed) or does not open; inside `tx`.
    pub(super) async fn ledger_in(&self, tx: &StrictTx) -> Result<Ledger, PosError> {
        let keys = tx.store(KEYS_STORE)?;
        let req = keys
            .get(&JsValue::from_str(LEDGER_ID))
            .map_err(|e| storage_error(&e))?;
        if let Ok(bytes) = idb::request(&req).await?.dyn_into::<Uint8Array>() {
            if let Ok(ledger) =
                self.vault
                    .open_json::<Ledger>(LEDGER_ID, SEALED_META_VERSION, &bytes.to_vec())
            {
                return Ok(ledger);
            }
        }
        let mut ledger = Ledger::default();
        let records = outstanding_records(&tx.store(PAYMENTS_STORE)?).await?;
        for entry in records.iter().filter_map(|r| self.entry_of(r)) {
            if let Ok(body) = entry.body {
                ledger.entries.insert(
                    entry.header.id,
                    LedgerEntry {
                        currency: body.currency,
                        amount: body.amount,
                        stored_at: entry.header.stored_at,
                    },
                );
            }
        }
        Ok(ledger)
    }

    pub(super) async fn put_ledger(&self, tx: &StrictTx, ledger: &Ledger) -> Result<(), PosError> {
        // Sealing is synchronous (AES-GCM in Rust): the transaction stays active.
        let sealed = self
            .vault
            .seal_json(LEDGER_ID, SEALED_META_VERSION, ledger)?;
        let req = tx
            .store(KEYS_STORE)?
            .put_with_key(
                &Uint8Array::from(&sealed[..]),
                &JsValue::from_str(LEDGER_ID),
            )
            .map_err(|e| storage_error(&e))?;
        idb::request(&req).await?;
        Ok(())
    }

    /// The outstanding payments as the ledger sums them (one record read).
    pub async fn ledger(&self) -> Result<Ledger, PosError> {
        let tx = StrictTx::begin(&self.db, &[PAYMENTS_STORE, KEYS_STORE])?;
        let ledger = self.ledger_in(&tx).await;
        tx.abort().await;
        ledger
    }
}

/// True for the states the ledger sums (stored offline, not yet answered).
pub(super) fn counts(state: StoredState) -> bool {
    state.is_outstanding()
}

/// The ledger after a record with `body` moves from `from` (`None`: new) to `to`, or `None`
/// when it does not change. Entering the ledger with `limits` checks them first.
pub(super) fn ledger_change(
    ledger: &Ledger,
    header: &Header,
    from: Option<StoredState>,
    to: StoredState,
    body: &SealedBody,
    limits: Option<&OfflineLimits>,
    now: f64,
) -> Result<Option<Ledger>, PosError> {
    let (was, will) = (from.is_some_and(counts), counts(to));
    if was == will {
        return Ok(None);
    }
    let mut next = ledger.clone();
    if will {
        if let Some(limits) = limits {
            limits.check(body.amount, &body.currency, &ledger.outstanding(), now)?;
        }
        next.entries.insert(
            header.id.clone(),
            LedgerEntry {
                currency: body.currency.clone(),
                amount: body.amount,
                stored_at: header.stored_at,
            },
        );
    } else {
        next.entries.remove(&header.id);
    }
    Ok(Some(next))
}
