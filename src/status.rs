//! The offline status: what is stored and not yet accepted by the backend, computed in one
//! place from the outstanding records.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::limits::Outstanding;
use crate::payment::Entry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkStatus {
    Online,
    Offline,
    Unknown,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OfflineStatus {
    pub network_status: NetworkStatus,
    pub pending_count: u32,
    pub pending_amounts: BTreeMap<String, u64>,
    pub oldest_stored_at: Option<f64>,
    pub forwarding: bool,
    /// Whether the browser granted persistent storage (`null` where it cannot say).
    pub persisted: Option<bool>,
}

/// Count and amounts per currency of outstanding records (those whose body opened).
pub fn outstanding(entries: &[Entry]) -> Outstanding {
    let mut out = Outstanding::default();
    for e in entries {
        out.count += 1;
        if let Ok(b) = &e.body {
            *out.amounts.entry(b.currency.clone()).or_default() += b.amount;
        }
    }
    out
}

/// The status from the outstanding records, the network as last seen and whether a
/// forwarding run is under way.
pub fn compute(entries: &[Entry], network: NetworkStatus, forwarding: bool) -> OfflineStatus {
    let Outstanding { count, amounts, .. } = outstanding(entries);
    OfflineStatus {
        network_status: network,
        pending_count: count,
        pending_amounts: amounts,
        oldest_stored_at: entries
            .iter()
            .map(|e| e.header.stored_at)
            .min_by(f64::total_cmp),
        forwarding,
        persisted: None,
    }
}

#[cfg(target_arch = "wasm32")]
pub use reporter::StatusReporter;

#[cfg(target_arch = "wasm32")]
mod reporter {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    use super::{compute, outstanding, OfflineStatus};
    use crate::connectivity::Connectivity;
    use crate::error::PosError;
    use crate::events::Events;
    use crate::limits::Outstanding;
    use crate::store::Store;

    /// The one place the status is read and published from.
    pub struct StatusReporter {
        store: Rc<Store>,
        connectivity: Rc<Connectivity>,
        events: Rc<dyn Events>,
        forwarding: Cell<u32>,
        persisted: Cell<Option<bool>>,
        last: RefCell<Option<OfflineStatus>>,
    }

    impl StatusReporter {
        pub fn new(
            store: Rc<Store>,
            connectivity: Rc<Connectivity>,
            events: Rc<dyn Events>,
        ) -> Self {
            Self {
                store,
                connectivity,
                events,
                forwarding: Cell::new(0),
                persisted: Cell::new(None),
                last: RefCell::new(None),
            }
        }

        pub fn set_persisted(&self, persisted: Option<bool>) {
            self.persisted.set(persisted);
        }

        pub fn persisted(&self) -> Option<bool> {
            self.persisted.get()
        }

        pub async fn outstanding(&self) -> Result<Outstanding, PosError> {
            Ok(outstanding(&self.store.outstanding().await?))
        }

        pub async fn current(&self) -> Result<OfflineStatus, PosError> {
            let entries = self.store.outstanding().await?;
            Ok(OfflineStatus {
                persisted: self.persisted.get(),
                ..compute(&entries, self.connectivity.get(), self.forwarding.get() > 0)
            })
        }

        pub fn is_forwarding(&self) -> bool {
            self.forwarding.get() > 0
        }

        /// Marks a forwarding run as started (`true`) or ended, and publishes.
        pub async fn set_forwarding(&self, running: bool) {
            let n = self.forwarding.get();
            self.forwarding
                .set(if running { n + 1 } else { n.saturating_sub(1) });
            self.publish().await;
        }

        /// Emits `offline_status` when the status differs from the last one emitted.
        pub async fn publish(&self) {
            let Ok(status) = self.current().await else {
                return;
            };
            let changed = self.last.borrow().as_ref() != Some(&status);
            if changed {
                *self.last.borrow_mut() = Some(status.clone());
                self.events.offline_status(&status);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::PosError;
    use crate::payment::{Header, StoredState, SCHEMA_VERSION};

    fn entry(id: &str, at: f64, body: Option<(u64, &str)>) -> Entry {
        let header = Header {
            id: id.into(),
            version: SCHEMA_VERSION,
            state: StoredState::Pending,
            stored_at: at,
            updated_at: at,
            next_attempt_at: at,
        };
        let body = match body {
            Some((amount, currency)) => {
                let mut b = crate::payment::tests::sealed_body();
                b.amount = amount;
                b.currency = currency.into();
                Ok(b)
            }
            None => Err(PosError::RecordTampered),
        };
        Entry { header, body }
    }

    #[test]
    fn counts_amounts_per_currency_and_the_oldest() {
        let entries = [
            entry("a", 30.0, Some((1_000, "usd"))),
            entry("b", 10.0, Some((250, "usd"))),
            entry("c", 20.0, Some((700, "jpy"))),
            entry("d", 40.0, None),
        ];
        let s = compute(&entries, NetworkStatus::Offline, false);
        assert_eq!(s.pending_count, 4, "an unreadable record still counts");
        assert_eq!(s.pending_amounts.get("usd"), Some(&1_250));
        assert_eq!(s.pending_amounts.get("jpy"), Some(&700));
        assert_eq!(s.oldest_stored_at, Some(10.0));
        let empty = compute(&[], NetworkStatus::Online, true);
        assert_eq!(empty.pending_count, 0);
        assert_eq!(empty.oldest_stored_at, None);
        assert!(empty.forwarding);
    }

    #[test]
    fn serializes_as_the_js_api_says() {
        let s = compute(&[], NetworkStatus::Unknown, false);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["networkStatus"], "unknown");
        assert_eq!(json["pendingCount"], 0);
        assert!(json["oldestStoredAt"].is_null());
        assert!(json["persisted"].is_null());
    }
}
