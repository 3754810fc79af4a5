//! Persistent storage (`navigator.storage`): whether the browser may evict this origin's
//! data under storage pressure. Asked once per terminal, without waiting for the answer:
//! engines differ (Firefox may show a prompt that a headless or kiosk browser never answers,
//! Chromium and WebKit decide by heuristics, a worker has no `persist()`), and payments must
//! be taken whatever the answer is. `offlineStatus()` reports it as `persisted`.

use std::cell::Cell;
use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};

use crate::js;

/// Whether the origin's storage is persistent: `None` until `persisted()` answers, and for
/// good where there is no `navigator.storage`; `false` until a `persist()` grant arrives.
#[derive(Default)]
pub struct Persistence {
    granted: Cell<Option<bool>>,
}

impl Persistence {
    pub fn granted(&self) -> Option<bool> {
        self.granted.get()
    }

    /// Asks in the background: `persisted()` first (never prompts), then `persist()` where
    /// this scope has it; calls `on_change` each time the known answer changes.
    pub fn request(on_change: impl Fn() + 'static) -> Rc<Persistence> {
        let me = Rc::new(Persistence::default());
        let storage = js::get(&js::get(&js::global(), "navigator"), "storage");
        if storage.is_undefined() || storage.is_null() {
            return me;
        }
        let answer = me.clone();
        spawn_local(async move {
            let Some(persisted) = call_bool(&storage, "persisted").await else {
                return;
            };
            answer.granted.set(Some(persisted));
            on_change();
            // Firefox may prompt here and a headless one never answers: nothing waits on it.
            if !persisted && call_bool(&storage, "persist").await == Some(true) {
                answer.granted.set(Some(true));
                on_change();
            }
        });
        me
    }
}

/// `storage[name]()` awaited as a boolean; `None` if it is missing, throws or rejects.
async fn call_bool(storage: &wasm_bindgen::JsValue, name: &str) -> Option<bool> {
    let f = js::get(storage, name).dyn_into::<Function>().ok()?;
    let promise = f.call0(storage).ok()?.dyn_into::<Promise>().ok()?;
    JsFuture::from(promise).await.ok()?.as_bool()
}
