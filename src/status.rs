//! The offline status: what is stored and not yet accepted by the backend, computed in one
//! place from the sealed ledger's summary (`Store::summary`), never from the records.

use pos_protocol::SortedMap;
use serde::Serialize;

use crate::limits::Outstanding;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkStatus {
    Online,
    Offline,
    Unknown,
}

pos_protocol::wire_names!(NetworkStatus {
    Online => "online",
    Offline => "offline",
    Unknown => "unknown",
});

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OfflineStatus {
    pub network_status: NetworkStatus,
    pub pending_count: u32,
    pub pending_amounts: SortedMap<u64>,
    pub oldest_stored_at: Option<f64>,
    pub forwarding: bool,
    #[serde(flatten)]
    pub storage: StorageGuarantees,
    /// The connected reader's own store, from its latest `store_status`; `None` with no
    /// reader connected, a reader that cannot store, or before its first report.
    pub reader: Option<ReaderOfflineStatus>,
}

/// What the connected reader stores and whether its own link reaches the backend.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReaderOfflineStatus {
    /// The reader's own link to the backend.
    pub network_status: NetworkStatus,
    pub pending_count: u32,
    pub pending_amounts: SortedMap<u64>,
}

/// What this browser grants the stored payments, detected once per terminal. Payments are
/// taken either way; a POS can warn when a guarantee is missing.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StorageGuarantees {
    /// The origin's storage is persistent (`navigator.storage.persisted()`, then `persist()`'s
    /// grant); `None` before the first answer, or where there is no StorageManager.
    pub persisted: Option<bool>,
    /// IndexedDB reports `durability: "strict"` on the store's transactions (an engine
    /// without the option commits with its default, which may not survive power loss).
    pub strict_durability: bool,
}

/// The status from the outstanding payments' summary, the network as last seen, whether a
/// forwarding run is under way and what the browser grants the store.
pub fn compute(
    outstanding: Outstanding,
    network: NetworkStatus,
    forwarding: bool,
    storage: StorageGuarantees,
) -> OfflineStatus {
    let Outstanding {
        count,
        amounts,
        oldest_stored_at,
    } = outstanding;
    OfflineStatus {
        network_status: network,
        pending_count: count,
        pending_amounts: amounts,
        oldest_stored_at,
        forwarding,
        storage,
        reader: None,
    }
}

#[cfg(target_arch = "wasm32")]
pub use reporter::StatusReporter;

#[cfg(target_arch = "wasm32")]
mod reporter {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    use super::{compute, OfflineStatus, ReaderOfflineStatus, StorageGuarantees};
    use crate::connectivity::Connectivity;
    use crate::error::PosError;
    use crate::events::Events;
    use crate::limits::Outstanding;
    use crate::persistence::Persistence;
    use crate::store::Store;

    /// The one place the status is read and published from.
    pub struct StatusReporter {
        store: Rc<Store>,
        connectivity: Rc<Connectivity>,
        events: Rc<dyn Events>,
        forwarding: Cell<u32>,
        last: RefCell<Option<OfflineStatus>>,
        strict_durability: bool,
        persistence: RefCell<Option<Rc<Persistence>>>,
        reader: RefCell<Option<ReaderOfflineStatus>>,
    }

    impl StatusReporter {
        pub fn new(
            store: Rc<Store>,
            connectivity: Rc<Connectivity>,
            events: Rc<dyn Events>,
        ) -> Self {
            // Detected once: the engine either honours the option or reports its default.
            let strict_durability = store.probe_durability().is_ok_and(|d| d == "strict");
            Self {
                store,
                connectivity,
                events,
                forwarding: Cell::new(0),
                last: RefCell::new(None),
                strict_durability,
                persistence: RefCell::new(None),
                reader: RefCell::new(None),
            }
        }

        /// Asks for persistent storage once; the answer is published when it comes.
        pub fn request_persistence(self: &Rc<Self>) {
            let me = Rc::downgrade(self);
            let persistence = Persistence::request(move || {
                if let Some(me) = me.upgrade() {
                    wasm_bindgen_futures::spawn_local(async move { me.publish().await });
                }
            });
            *self.persistence.borrow_mut() = Some(persistence);
        }

        fn storage(&self) -> StorageGuarantees {
            StorageGuarantees {
                persisted: self.persisted(),
                strict_durability: self.strict_durability,
            }
        }

        /// Whether the browser granted persistent storage, as far as it answered yet.
        pub fn persisted(&self) -> Option<bool> {
            self.persistence.borrow().as_ref().and_then(|p| p.granted())
        }

        pub async fn outstanding(&self) -> Result<Outstanding, PosError> {
            self.store.summary().await
        }

        /// The status as stored now (the ledger: two small reads, whatever the number stored).
        pub async fn current(&self) -> Result<OfflineStatus, PosError> {
            Ok(self.status_of(self.store.summary().await?))
        }

        /// The connected reader's store as it last reported it (`None`: no such reader);
        /// publishes when it changed.
        pub async fn set_reader(&self, reader: Option<ReaderOfflineStatus>) {
            if *self.reader.borrow() == reader {
                return;
            }
            *self.reader.borrow_mut() = reader;
            self.publish().await;
        }

        fn status_of(&self, summary: Outstanding) -> OfflineStatus {
            let mut status = compute(
                summary,
                self.connectivity.get(),
                self.forwarding.get() > 0,
                self.storage(),
            );
            status.reader = self.reader.borrow().clone();
            status
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

        /// Emits `offline_status` when the status differs from the last one emitted. Right
        /// after a change of this store, its committed summary is used as it is (no read).
        pub async fn publish(&self) {
            let summary = match self.store.take_summary() {
                Some(s) => s,
                None => match self.store.summary().await {
                    Ok(s) => s,
                    Err(_) => return,
                },
            };
            let status = self.status_of(summary);
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

    #[test]
    fn the_status_shows_the_summary_as_it_is() {
        let summary = Outstanding {
            count: 4,
            amounts: [("usd".to_string(), 1_250), ("jpy".to_string(), 700)].into(),
            oldest_stored_at: Some(10.0),
        };
        let s = compute(
            summary,
            NetworkStatus::Offline,
            false,
            StorageGuarantees::default(),
        );
        assert_eq!(s.pending_count, 4);
        assert_eq!(s.pending_amounts.get("usd"), Some(&1_250));
        assert_eq!(s.pending_amounts.get("jpy"), Some(&700));
        assert_eq!(s.oldest_stored_at, Some(10.0));
        let empty = compute(
            Outstanding::default(),
            NetworkStatus::Online,
            true,
            StorageGuarantees::default(),
        );
        assert_eq!(empty.pending_count, 0);
        assert_eq!(empty.oldest_stored_at, None);
        assert!(empty.forwarding);
    }

    #[test]
    fn serializes_as_the_js_api_says() {
        let s = compute(
            Outstanding::default(),
            NetworkStatus::Unknown,
            false,
            StorageGuarantees::default(),
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["networkStatus"], "unknown");
        assert_eq!(json["pendingCount"], 0);
        assert!(json["oldestStoredAt"].is_null());
        assert!(json["persisted"].is_null());
        assert_eq!(json["strictDurability"], false);
        assert!(json["reader"].is_null(), "no reader that stores");
        let granted = StorageGuarantees {
            persisted: Some(true),
            strict_durability: true,
        };
        let json = serde_json::to_value(compute(
            Outstanding::default(),
            NetworkStatus::Online,
            false,
            granted,
        ))
        .unwrap();
        assert_eq!(json["persisted"], true);
        assert_eq!(json["strictDurability"], true);
        let mut with_reader = compute(
            Outstanding::default(),
            NetworkStatus::Online,
            false,
            granted,
        );
        with_reader.reader = Some(ReaderOfflineStatus {
            network_status: NetworkStatus::Offline,
            pending_count: 2,
            pending_amounts: SortedMap::from([("usd".to_string(), 300)]),
        });
        let json = serde_json::to_value(with_reader).unwrap();
        assert_eq!(json["reader"]["networkStatus"], "offline");
        assert_eq!(json["reader"]["pendingCount"], 2);
        assert_eq!(json["reader"]["pendingAmounts"]["usd"], 300);
    }
}
