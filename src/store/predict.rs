//! Storing a payment in one round trip to the database instead of two. The slow path
//! (`Store::add` with `apply_in`) reads the duplicate-id count and the sealed ledger, waits
//! for them, checks the offline limits, then issues its writes and commits. Here the ledger
//! this store last read or wrote (`LedgerCache`) is taken as a prediction: the reads, the
//! record, its age key and the predicted ledger are all issued at once, and the commit is
//! asked for only once the reads answered and show what was predicted — the stored ledger
//! byte for byte the cached one (every change re-seals it under a fresh nonce, and every
//! age-key change rewrites it) and no record with this id. Requests of a transaction run in
//! order, so the reads see the database as it was before these writes. Anything else (a tab
//! or the service worker stored or forwarded meanwhile, a duplicate, a limit exceeded)
//! aborts the transaction: nothing of it is written. The limits are still checked and the
//! write they allow still happens in one transaction.

use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use web_sys::{IdbObjectStore, IdbRequest};

use super::ledger::{oldest_of, oldest_requests, put_age, visible, Applied, Counted};
use super::{end_tx, Store, KEYS_STORE, PAYMENTS_STORE};
use crate::error::PosError;
use crate::idb::{self, StrictTx};
use crate::js::storage_error;
use crate::limits::{Ledger, OfflineLimits, Outstanding, Totals};
use crate::payment::{Header, SealedBody};

/// The sealed ledger as this store last read it or committed it.
#[derive(Clone)]
pub(super) struct LedgerCache {
    pub sealed: Vec<u8>,
    pub ledger: Ledger,
}

/// A payment entering, its writes issued from the cached ledger; `confirm` says whether
/// they may commit.
struct Predicted {
    /// The ledger as stored, read before the writes.
    stored: IdbRequest,
    /// Every backend's oldest age key, read before the writes (for `max_stored_age_ms`).
    oldest_before: Vec<IdbRequest>,
    /// What `stored` must be for the writes to stand.
    expected: LedgerCache,
    applied: Applied,
}

/// How a predicted add ended once its reads answered.
enum Checked {
    /// As predicted and within the limits: commit.
    Stored(Applied),
    /// A record with this id exists (the add fails too): abort, the first one stands.
    Duplicate,
    /// The ledger changed since it was cached: abort, take the slow path.
    Changed,
}

impl Store {
    /// Adds a record that the ledger counts in one strict transaction, as `add` does, with
    /// its writes issued from the cached ledger. The record is sealed while the reads are on
    /// their way to the database.
    /// `Ok(None)` when there is no cached ledger or it was out of date (the transaction
    /// aborted, nothing written): the caller takes the slow path.
    pub(super) async fn add_predicted(
        &self,
        header: &Header,
        body: &SealedBody,
        limits: Option<&OfflineLimits>,
        now: f64,
    ) -> Result<Option<Header>, PosError> {
        let Some(cached) = self.ledger_cache.borrow().clone() else {
            return Ok(None);
        };
        let counted = &Counted::of(&header.id, header.stored_at, body);
        let tx = StrictTx::begin(&self.db, &[PAYMENTS_STORE, KEYS_STORE])?;
        let checked = async {
            let payments = tx.store(PAYMENTS_STORE)?;
            let count = payments
                .count_with_key(&header.id.as_str().into())
                .map_err(|e| storage_error(&e))?;
            let predicted = self.predict_enter(&tx.store(KEYS_STORE)?, cached, counted, limits)?;
            let record = self.to_record(header, body)?;
            let add = payments.add(&record).map_err(|e| storage_error(&e))?;
            let (existing, checked) = futures_util::future::join(
                idb::request(&count),
                predicted.confirm(counted, limits, now),
            )
            .await;
            // A duplicate answers with the first record, whatever the limits say now.
            if existing?.as_f64().unwrap_or(0.0) > 0.0 {
                return Ok((Checked::Duplicate, add));
            }
            Ok::<_, PosError>((checked?, add))
        }
        .await;
        match checked {
            Ok((Checked::Stored(applied), add)) => {
                let summary = applied.commit(tx, vec![add], &self.ledger_cache).await?;
                *self.summary.borrow_mut() = Some(summary);
                Ok(Some(header.clone()))
            }
            Ok((Checked::Duplicate, _)) => {
                tx.abort().await;
                match self.get(&counted.id).await? {
                    Some(existing) => Ok(Some(existing.header)),
                    None => Err(PosError::Internal("a record vanished".into())),
                }
            }
            Ok((Checked::Changed, _)) => {
                tx.abort().await;
                Ok(None)
            }
            Err(e) => end_tx::<()>(tx, Err(e)).await.map(|_| None),
        }
    }

    /// Issues, in `keys` and in this order: the ledger read, the oldest-age reads the age
    /// limit needs, the age key and the ledger with `c` added to `cached`, and the reads of
    /// the oldest payment this store shows (after the writes, so they include `c`).
    fn predict_enter(
        &self,
        keys: &IdbObjectStore,
        cached: LedgerCache,
        c: &Counted,
        limits: Option<&OfflineLimits>,
    ) -> Result<Predicted, PosError> {
        let stored = Self::ledger_request(keys)?;
        let oldest_before = match limits.and_then(|l| l.max_stored_age_ms) {
            Some(_) => oldest_requests(keys, cached.ledger.backends.keys().map(String::as_str))?,
            None => Vec::new(),
        };
        let mut ledger = cached.ledger.clone();
        ledger.add(&c.backend, &c.currency, c.amount);
        let age = put_age(keys, c)?;
        let (put, next) = self.put_ledger(keys, ledger)?;
        let bound = self.bound();
        let bound = bound.as_deref();
        let Totals { count, amounts } = next.ledger.totals(|b| visible(bound, b));
        let shown = next
            .ledger
            .backends
            .keys()
            .map(String::as_str)
            .filter(|b| visible(bound, b));
        let oldest = oldest_requests(keys, shown)?;
        Ok(Predicted {
            stored,
            oldest_before,
            expected: cached,
            applied: Applied {
                summary: Outstanding {
                    count,
                    amounts,
                    oldest_stored_at: None,
                },
                writes: vec![age, put],
                oldest,
                next,
            },
        })
    }
}

impl Predicted {
    /// Waits for the reads issued before the writes, then decides: `Changed` unless the
    /// stored ledger is the predicted one; the limits checked against it as stored (an
    /// exceeded limit is an error, and the caller aborts).
    async fn confirm(
        self,
        c: &Counted,
        limits: Option<&OfflineLimits>,
        now: f64,
    ) -> Result<Checked, PosError> {
        let stored = async { Ok::<_, PosError>(idb::request(&self.stored).await?) };
        let (stored, oldest) =
            futures_util::future::try_join(stored, oldest_of(&self.oldest_before)).await?;
        let same = stored
            .dyn_ref::<Uint8Array>()
            .is_some_and(|b| b.to_vec() == self.expected.sealed);
        if !same {
            return Ok(Checked::Changed);
        }
        if let Some(limits) = limits {
            let mut before = self.expected.ledger.outstanding();
            before.oldest_stored_at = oldest;
            limits.check(c.amount, &c.currency, &before, now)?;
        }
        Ok(Checked::Stored(self.applied))
    }
}
