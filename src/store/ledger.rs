//! The sealed ledger of outstanding payments (`limits::Ledger`, aggregates per backend) and
//! the age keys beside it, read (or rebuilt) and written inside the same strict transaction
//! as the records they sum, so offline limits are checked and the write they allow happen
//! together. Neither grows in cost with the number stored: the ledger is one small record,
//! and the oldest outstanding payment is the first age key of a key range.
//!
//! Age keys live in the `keys` store, one per outstanding payment:
//! `["age", backend, stored_at, id]` → `1` (`backend` is `""` for a payment sealed without
//! one). IndexedDB orders array keys element by element, so the first key of
//! `["age", backend] .. ["age", backend, []]` is that backend's oldest. Beside what the
//! record's clear header shows (id, time), they show the backend URL of each outstanding
//! payment in clear (the README's threat model says so).

use std::cell::RefCell;

use futures_util::future::try_join_all;
use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{IdbKeyRange, IdbObjectStore, IdbRequest};

use super::predict::LedgerCache;
use super::{outstanding_records, Store, KEYS_STORE, LEDGER_ID, PAYMENTS_STORE};
use crate::error::PosError;
use crate::idb::{self, StrictTx};
use crate::js::storage_error;
use crate::limits::{Ledger, OfflineLimits, Outstanding, Totals};
use crate::payment::{SealedBody, StoredState};

/// Layout version of the sealed ledger, bound into its associated data. 1 kept one entry per
/// payment; 2 keeps aggregates and the age keys. A ledger that does not open under this
/// version (an older one included) is rebuilt from the records.
pub(super) const LEDGER_VERSION: u32 = 2;
const AGE: &str = "age";

/// True for the states the ledger sums (stored offline, not yet answered).
pub(super) fn counts(state: StoredState) -> bool {
    state.is_outstanding()
}

/// Whether a store bound to `bound` sees payments sealed for `backend` (`""`: none), as
/// `SealedBody::belongs_to` decides for records.
pub(super) fn visible(bound: Option<&str>, backend: &str) -> bool {
    backend.is_empty() || bound.is_none_or(|b| b == backend)
}

/// One outstanding payment as the ledger and the age keys know it.
#[derive(Debug, Clone)]
pub(super) struct Counted {
    pub id: String,
    pub backend: String,
    pub currency: String,
    pub amount: u64,
    pub stored_at: f64,
}

impl Counted {
    pub fn of(id: &str, stored_at: f64, body: &SealedBody) -> Self {
        Counted {
            id: id.to_owned(),
            backend: body.backend_url.clone().unwrap_or_default(),
            currency: body.currency.clone(),
            amount: body.amount,
            stored_at,
        }
    }
}

/// What a record's move does to the ledger.
pub(super) enum Change {
    /// Starts counting (stored offline, requeued).
    Enter(Counted),
    /// Stops counting (answered).
    Leave(Counted),
    /// Stops counting, but its body does not open (quarantined): the ledger is rebuilt from
    /// the other outstanding records.
    LeaveUnread(String),
    /// The ledger counts payments no outstanding record shows (a record's clear state was
    /// flipped out of `pending`/`forwarding`, or a record deleted): rebuilt from the records.
    Recount,
}

fn age_key(backend: &str, stored_at: f64, id: &str) -> JsValue {
    let key = Array::new();
    key.push(&AGE.into());
    key.push(&backend.into());
    key.push(&stored_at.into());
    key.push(&id.into());
    key.into()
}

/// Every age key (`backend`: `None`), or one backend's.
fn age_range(backend: Option<&str>) -> Result<IdbKeyRange, PosError> {
    let (lower, upper) = (Array::of1(&AGE.into()), Array::of1(&AGE.into()));
    if let Some(b) = backend {
        lower.push(&b.into());
        upper.push(&b.into());
    }
    // An array sorts after every number and string: the end of the range.
    upper.push(&Array::new());
    IdbKeyRange::bound(&lower, &upper).map_err(|e| storage_error(&e).into())
}

/// Issues one request per backend for its oldest age key (run them with `oldest_of`).
pub(super) fn oldest_requests<'a>(
    keys: &IdbObjectStore,
    backends: impl Iterator<Item = &'a str>,
) -> Result<Vec<IdbRequest>, PosError> {
    backends
        .map(|b| {
            keys.get_all_keys_with_key_and_limit(&age_range(Some(b))?.into(), 1)
                .map_err(|e| storage_error(&e).into())
        })
        .collect()
}

/// The earliest `stored_at` among the first keys the `oldest_requests` returned.
pub(super) async fn oldest_of(requests: &[IdbRequest]) -> Result<Option<f64>, PosError> {
    let found = try_join_all(requests.iter().map(idb::request)).await?;
    Ok(found
        .iter()
        .filter_map(|keys| Array::from(keys).get(0).dyn_into::<Array>().ok())
        .filter_map(|key| key.get(2).as_f64())
        .min_by(f64::total_cmp))
}

/// The ledger and the oldest per backend rebuilt from the records.
struct Rebuilt {
    ledger: Ledger,
    counted: Vec<Counted>,
}

impl Rebuilt {
    fn oldest(&self, visible: impl Fn(&str) -> bool) -> Option<f64> {
        self.counted
            .iter()
            .filter(|c| visible(&c.backend))
            .map(|c| c.stored_at)
            .min_by(f64::total_cmp)
    }
}

impl Store {
    /// Asks for the sealed ledger in `keys` (give the answer to `apply_in`).
    pub(super) fn ledger_request(keys: &IdbObjectStore) -> Result<IdbRequest, PosError> {
        keys.get(&JsValue::from_str(LEDGER_ID))
            .map_err(|e| storage_error(&e).into())
    }

    /// The ledger in `stored` (an answer to `ledger_request`), remembered as this store's
    /// prediction for the next payment entering (`predict::LedgerCache`).
    pub(super) fn open_ledger(&self, stored: &JsValue) -> Option<Ledger> {
        let sealed = stored.dyn_ref::<Uint8Array>()?.to_vec();
        let ledger = self
            .vault
            .open_json::<Ledger>(LEDGER_ID, LEDGER_VERSION, &sealed)
            .ok()?;
        *self.ledger_cache.borrow_mut() = Some(LedgerCache {
            sealed,
            ledger: ledger.clone(),
        });
        Some(ledger)
    }

    pub(super) fn bound(&self) -> Option<String> {
        self.backend.borrow().clone()
    }

    /// The outstanding records (every backend) summed again, leaving out `except`.
    async fn rebuild(
        &self,
        payments: &IdbObjectStore,
        except: &[&str],
    ) -> Result<Rebuilt, PosError> {
        let mut rebuilt = Rebuilt {
            ledger: Ledger::default(),
            counted: Vec::new(),
        };
        for record in outstanding_records(payments).await? {
            let Some(entry) = self.open_entry(&record) else {
                continue;
            };
            let Ok(body) = entry.body else {
                continue;
            };
            if except.contains(&entry.header.id.as_str()) {
                continue;
            }
            let c = Counted::of(&entry.header.id, entry.header.stored_at, &body);
            rebuilt.ledger.add(&c.backend, &c.currency, c.amount);
            rebuilt.counted.push(c);
        }
        Ok(rebuilt)
    }

    /// Inside `tx`, with `stored` the answer to `ledger_request`: checks `limits` when a
    /// payment enters (`limits` only with a single change), then issues the writes of the
    /// changed ledger and age keys, not yet awaited (the caller's own writes join them:
    /// `Applied::commit`). Several changes (a batch of settled records) make one ledger write.
    pub(super) async fn apply_in(
        &self,
        tx: &StrictTx,
        stored: &JsValue,
        changes: Vec<Change>,
        limits: Option<&OfflineLimits>,
        now: f64,
    ) -> Result<Applied, PosError> {
        if limits.is_some() && changes.len() != 1 {
            return Err(PosError::Internal(
                "offline limits are checked one payment at a time".into(),
            ));
        }
        let keys = tx.store(KEYS_STORE)?;
        let bound = self.bound();
        let bound = bound.as_deref();
        let unread: Vec<&str> = changes
            .iter()
            .filter_map(|c| match c {
                Change::LeaveUnread(id) => Some(id.as_str()),
                _ => None,
            })
            .collect();
        let recount = changes.iter().any(|c| matches!(c, Change::Recount));
        let opened = match unread.is_empty() && !recount {
            true => self.open_ledger(stored),
            false => None,
        };
        let (mut ledger, rebuilt) = match opened {
            Some(ledger) => (ledger, None),
            None => {
                let r = self.rebuild(&tx.store(PAYMENTS_STORE)?, &unread).await?;
                (r.ledger.clone(), Some(r))
            }
        };
        // The single payment entering, if that is the whole change.
        let single_enter = match changes.as_slice() {
            [Change::Enter(c)] => Some(c),
            _ => None,
        };
        let visible_oldest_before = if let Some(c) = single_enter {
            // The limits count every payment on this device, whatever its backend.
            if let Some(limits) = limits {
                let mut now_out = ledger.outstanding();
                now_out.oldest_stored_at = match (&rebuilt, limits.max_stored_age_ms) {
                    (_, None) => None,
                    (Some(r), Some(_)) => r.oldest(|_| true),
                    (None, Some(_)) => {
                        let backends = ledger.backends.keys().map(String::as_str);
                        oldest_of(&oldest_requests(&keys, backends)?).await?
                    }
                };
                limits.check(c.amount, &c.currency, &now_out, now)?;
            }
            rebuilt.as_ref().map(|r| r.oldest(|b| visible(bound, b)))
        } else {
            None
        };

        let mut writes = Vec::new();
        if let Some(r) = &rebuilt {
            writes.push(
                keys.delete(&age_range(None)?.into())
                    .map_err(|e| storage_error(&e))?,
            );
            for c in &r.counted {
                writes.push(put_age(&keys, c)?);
            }
        }
        for change in &changes {
            match change {
                Change::Enter(c) => {
                    ledger.add(&c.backend, &c.currency, c.amount);
                    writes.push(put_age(&keys, c)?);
                }
                Change::Leave(c) => {
                    ledger.remove(&c.backend, &c.currency, c.amount);
                    writes.push(
                        keys.delete(&age_key(&c.backend, c.stored_at, &c.id))
                            .map_err(|e| storage_error(&e))?,
                    );
                }
                Change::LeaveUnread(_) | Change::Recount => {}
            }
        }
        // Sealing is synchronous (AES-GCM in Rust): the transaction stays active.
        let (put, next) = self.put_ledger(&keys, ledger)?;
        writes.push(put);
        let ledger = &next.ledger;

        let Totals { count, amounts } = ledger.totals(|b| visible(bound, b));
        let mut oldest = Vec::new();
        let oldest_stored_at = match (single_enter, visible_oldest_before) {
            // Entering only adds an age: no need to ask the store again.
            (Some(c), Some(before)) => {
                let mine = visible(bound, &c.backend).then_some(c.stored_at);
                before.into_iter().chain(mine).min_by(f64::total_cmp)
            }
            (Some(c), None) => {
                // The visible oldest before, and this payment's if it is visible.
                let backends = ledger
                    .backends
                    .keys()
                    .map(String::as_str)
                    .filter(|b| visible(bound, b) && *b != c.backend);
                oldest = oldest_requests(&keys, backends)?;
                let mine = visible(bound, &c.backend).then_some(c.stored_at);
                oldest.extend(oldest_requests(
                    &keys,
                    mine.map(|_| c.backend.as_str()).into_iter(),
                )?);
                None
            }
            _ => {
                // Issued after the writes, so it sees them.
                let backends = ledger
                    .backends
                    .keys()
                    .map(String::as_str)
                    .filter(|b| visible(bound, b));
                oldest = oldest_requests(&keys, backends)?;
                None
            }
        };
        Ok(Applied {
            summary: Outstanding {
                count,
                amounts,
                oldest_stored_at,
            },
            writes,
            oldest,
            next,
        })
    }

    /// Seals `ledger` and issues its write in `keys`; returns the write and what the cache
    /// holds once the transaction committed.
    pub(super) fn put_ledger(
        &self,
        keys: &IdbObjectStore,
        ledger: Ledger,
    ) -> Result<(IdbRequest, LedgerCache), PosError> {
        let sealed = self.vault.seal_json(LEDGER_ID, LEDGER_VERSION, &ledger)?;
        let put = keys
            .put_with_key(
                &Uint8Array::from(&sealed[..]),
                &JsValue::from_str(LEDGER_ID),
            )
            .map_err(|e| storage_error(&e))?;
        Ok((put, LedgerCache { sealed, ledger }))
    }

    /// The outstanding payments this store's status shows (its backend's), from the ledger
    /// and the age keys: two small reads. A missing ledger is summed from the records (and
    /// written by the next change).
    pub async fn summary(&self) -> Result<Outstanding, PosError> {
        let bound = self.bound();
        let bound = bound.as_deref();
        let (_tx, keys) = self.db.read(KEYS_STORE)?;
        let stored = idb::request(&Self::ledger_request(&keys)?).await?;
        if let Some(ledger) = self.open_ledger(&stored) {
            let backends = ledger
                .backends
                .keys()
                .map(String::as_str)
                .filter(|b| visible(bound, b));
            let oldest = oldest_of(&oldest_requests(&keys, backends)?).await?;
            let Totals { count, amounts } = ledger.totals(|b| visible(bound, b));
            return Ok(Outstanding {
                count,
                amounts,
                oldest_stored_at: oldest,
            });
        }
        let (_tx, payments) = self.db.read(PAYMENTS_STORE)?;
        let r = self.rebuild(&payments, &[]).await?;
        let Totals { count, amounts } = r.ledger.totals(|b| visible(bound, b));
        Ok(Outstanding {
            count,
            amounts,
            oldest_stored_at: r.oldest(|b| visible(bound, b)),
        })
    }

    /// The ledger as stored, or as it would be rebuilt from the records (every backend).
    pub async fn ledger(&self) -> Result<Ledger, PosError> {
        let (_tx, keys) = self.db.read(KEYS_STORE)?;
        let stored = idb::request(&Self::ledger_request(&keys)?).await?;
        if let Some(ledger) = self.open_ledger(&stored) {
            return Ok(ledger);
        }
        let (_tx, payments) = self.db.read(PAYMENTS_STORE)?;
        Ok(self.rebuild(&payments, &[]).await?.ledger)
    }
}

pub(super) fn put_age(keys: &IdbObjectStore, c: &Counted) -> Result<IdbRequest, PosError> {
    keys.put_with_key(&JsValue::from(1), &age_key(&c.backend, c.stored_at, &c.id))
        .map_err(|e| storage_error(&e).into())
}

/// The ledger change `apply_in` issued, to await with the caller's own writes.
pub(super) struct Applied {
    /// What this store's status shows once the transaction commits (the oldest from `oldest`
    /// when those were asked).
    pub summary: Outstanding,
    pub writes: Vec<IdbRequest>,
    /// Age-key reads issued after the writes, for the oldest stored time.
    pub oldest: Vec<IdbRequest>,
    /// The ledger written, for the cache once committed.
    pub next: LedgerCache,
}

impl Applied {
    /// Commits `tx` at once with this round's writes and the caller's own (`own`) still in
    /// flight, instead of waiting for each write's success first (a round trip to the
    /// database process before the commit even starts). A failed write aborts the
    /// transaction (nothing prevents its default action), and the commit reports the cause.
    /// Returns once the transaction completed, with the status summary; `cache` then holds
    /// the ledger written (nothing when the commit failed: what is stored is unknown).
    pub async fn commit(
        self,
        tx: StrictTx,
        own: Vec<IdbRequest>,
        cache: &RefCell<Option<LedgerCache>>,
    ) -> Result<Outstanding, PosError> {
        let Applied {
            mut summary,
            writes,
            oldest,
            next,
        } = self;
        cache.borrow_mut().take();
        drop((writes, own));
        // The commit is asked for first; the reads' handlers are set in the same poll, before
        // any of their events can be dispatched.
        let (committed, oldest) = futures_util::future::join(tx.commit(), oldest_of(&oldest)).await;
        committed?;
        *cache.borrow_mut() = Some(next);
        if let Some(t) = oldest? {
            summary.oldest_stored_at = Some(t);
        }
        Ok(summary)
    }
}
