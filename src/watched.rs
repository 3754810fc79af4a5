//! The payments this terminal stored that were outstanding when it last looked: when another
//! context (a service worker, another tab) settles one, the page hears of its outcome
//! (`onPaymentForwarded` / `onForwardingFailure`) at this terminal's next timer tick, as if
//! it had forwarded it itself (`events::once_per_payment` keeps it to once). They are looked up only
//! when the store's outstanding count fell, or is below how many are watched.

use std::cell::{Cell, RefCell};

use crate::events::Events;
use crate::forward_policy::Outcome;
use crate::payment::StoredPayment;
use crate::store::Store;

/// At most this many payments are watched (the oldest goes first): a long outage's backlog
/// is reported by whoever forwards it, and this terminal's own runs report theirs.
pub const MAX_WATCHED: usize = 1_000;

#[derive(Default)]
pub struct Watched {
    ids: RefCell<Vec<String>>,
    /// The outstanding count at the last look.
    outstanding: Cell<Option<u32>>,
}

impl Watched {
    /// This terminal stored payment `id`.
    pub fn add(&self, id: &str) {
        let mut ids = self.ids.borrow_mut();
        if ids.len() >= MAX_WATCHED {
            ids.remove(0);
        }
        ids.push(id.to_owned());
    }

    /// With `outstanding` the store's outstanding count now: reports the watched payments
    /// that were settled since, and stops watching them (and those gone).
    pub async fn report_settled(&self, outstanding: u32, store: &Store, events: &dyn Events) {
        let fell = self
            .outstanding
            .replace(Some(outstanding))
            .is_some_and(|before| outstanding < before);
        let ids = self.ids.borrow().clone();
        let watched = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        if ids.is_empty() || !(fell || watched > outstanding) {
            return;
        }
        let Ok(entries) = store.get_many(&ids).await else {
            return;
        };
        let mut done = Vec::new();
        for (id, entry) in ids.iter().zip(entries) {
            let Some(entry) = entry else {
                done.push(id);
                continue;
            };
            let Ok(body) = &entry.body else {
                continue;
            };
            if let Some(outcome) = Outcome::of_record(StoredPayment::from(&entry), body) {
                outcome.emit(events);
                done.push(id);
            }
        }
        self.ids.borrow_mut().retain(|id| !done.contains(&id));
    }
}
