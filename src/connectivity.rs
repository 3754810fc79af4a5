//! Whether the backend is reachable, as last seen: set from the health probe and from every
//! request's outcome, reported through `Events` when it changes. `navigator.onLine` alone
//! lies (captive portals), so it only ever says "offline".

use std::cell::Cell;
use std::rc::Rc;

use crate::events::Events;
use crate::status::NetworkStatus;

/// Health probe before a payment while the backend is known to be down: short, so the
/// cashier doesn't wait, and payments go online as soon as the backend is back.
pub const QUICK_PROBE_MS: u32 = 1_500;

pub struct Connectivity {
    status: Cell<NetworkStatus>,
    /// Bumped at every `set`: a probe's answer counts only if nothing newer was seen.
    seen: Cell<u64>,
    events: Rc<dyn Events>,
}

impl Connectivity {
    pub fn new(events: Rc<dyn Events>) -> Self {
        Self {
            status: Cell::new(NetworkStatus::Unknown),
            seen: Cell::new(0),
            events,
        }
    }

    pub fn get(&self) -> NetworkStatus {
        self.status.get()
    }

    pub fn set(&self, status: NetworkStatus) {
        self.seen.set(self.seen.get().wrapping_add(1));
        if self.status.replace(status) != status {
            self.events.network_status(status);
        }
    }

    /// What has been seen so far, for `set_unless_newer`.
    pub fn seen(&self) -> u64 {
        self.seen.get()
    }

    /// `set`, unless something was seen since `seen()` answered `since` (a probe started
    /// before a newer request's outcome must not undo it).
    pub fn set_unless_newer(&self, since: u64, status: NetworkStatus) {
        if self.seen.get() == since {
            self.set(status);
        }
    }

    /// Known to be down: last seen offline, or the browser says it has no network.
    pub fn known_offline(&self, browser_on_line: Option<bool>) -> bool {
        self.get() == NetworkStatus::Offline || browser_on_line == Some(false)
    }
}

#[cfg(target_arch = "wasm32")]
pub use listeners::OnlineListeners;

#[cfg(target_arch = "wasm32")]
mod listeners {
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;
    use web_sys::{Event, EventTarget};

    use crate::js;

    type Listener = (&'static str, Closure<dyn FnMut(Event)>);

    /// The global `online` / `offline` listeners, removed on drop.
    pub struct OnlineListeners {
        target: Option<EventTarget>,
        listeners: Vec<Listener>,
    }

    impl OnlineListeners {
        pub fn install(
            on_online: impl FnMut() + 'static,
            on_offline: impl FnMut() + 'static,
        ) -> Self {
            let target = js::global().dyn_ref::<EventTarget>().cloned();
            let (mut on_online, mut on_offline) = (on_online, on_offline);
            let listeners: Vec<Listener> = vec![
                ("online", Closure::new(move |_e: Event| on_online())),
                ("offline", Closure::new(move |_e: Event| on_offline())),
            ];
            if let Some(t) = &target {
                for (name, closure) in &listeners {
                    let _ =
                        t.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
                }
            }
            Self { target, listeners }
        }
    }

    impl Drop for OnlineListeners {
        fn drop(&mut self) {
            if let Some(t) = &self.target {
                for (name, closure) in self.listeners.drain(..) {
                    let _ = t.remove_event_listener_with_callback(
                        name,
                        closure.as_ref().unchecked_ref(),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Seen(RefCell<Vec<NetworkStatus>>);
    impl Events for Seen {
        fn network_status(&self, s: NetworkStatus) {
            self.0.borrow_mut().push(s);
        }
    }

    #[test]
    fn reports_only_changes() {
        let seen = Rc::new(Seen::default());
        let c = Connectivity::new(seen.clone());
        c.set(NetworkStatus::Online);
        c.set(NetworkStatus::Online);
        c.set(NetworkStatus::Offline);
        assert_eq!(
            *seen.0.borrow(),
            [NetworkStatus::Online, NetworkStatus::Offline]
        );
        assert!(c.known_offline(None));
        c.set(NetworkStatus::Online);
        assert!(!c.known_offline(Some(true)));
        assert!(
            c.known_offline(Some(false)),
            "the browser knows it has no network"
        );
    }
}
