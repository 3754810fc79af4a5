//! Web Locks (`navigator.locks`): one exclusive lock held while work runs, so tabs and the
//! service worker never forward at the same time. Where the API is missing (old browsers)
//! the work runs unlocked; the store's compare-and-set still keeps each change single.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{LockManager, Navigator, WorkerNavigator};

use crate::error::PosError;
use crate::js;

/// The lock manager of this global (page or worker), if the browser has one.
fn lock_manager() -> Option<LockManager> {
    let nav = js::get(&js::global(), "navigator");
    // Feature check first: the binding below would throw where `locks` is missing.
    if js::get(&nav, "locks").is_undefined() {
        return None;
    }
    if let Some(n) = nav.dyn_ref::<Navigator>() {
        return Some(n.locks());
    }
    nav.dyn_ref::<WorkerNavigator>().map(WorkerNavigator::locks)
}

/// Whether this browser has Web Locks.
pub fn available() -> bool {
    lock_manager().is_some()
}

/// Runs `work` while holding the exclusive Web Lock `name`.
pub async fn with_lock<T, F, Fut>(name: &str, work: F) -> Result<T, PosError>
where
    T: 'static,
    F: FnOnce() -> Fut + 'static,
    Fut: Future<Output = Result<T, PosError>> + 'static,
{
    let Some(locks) = lock_manager() else {
        return work().await;
    };
    let slot: Rc<RefCell<Option<Result<T, PosError>>>> = Rc::new(RefCell::new(None));
    let filled = slot.clone();
    let callback = Closure::once_into_js(move |_lock: JsValue| -> Promise {
        future_to_promise(async move {
            let result = work().await;
            *filled.borrow_mut() = Some(result);
            Ok(JsValue::UNDEFINED)
        })
    });
    let promise = locks.request(name, callback.unchecked_ref());
    if let Err(e) = JsFuture::from(promise).await {
        return Err(PosError::Internal(format!(
            "the Web Lock request failed: {}",
            js::describe_js(&e)
        )));
    }
    let result = slot.borrow_mut().take();
    result.unwrap_or_else(|| {
        Err(PosError::Internal(
            "the Web Lock callback did not run".into(),
        ))
    })
}
