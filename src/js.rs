//! Small bridges to the browser that work in a page and in a service worker alike
//! (everything goes through `js_sys::global()`, never `window()`).

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::error::{describe_js, PosError};

pub fn global() -> js_sys::Object {
    js_sys::global()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// A uniform random number in [0, 1) for jitter (not for secrets).
pub fn random_unit() -> f64 {
    js_sys::Math::random()
}

pub fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

pub fn set(target: &JsValue, key: &str, value: &JsValue) {
    // Only used on plain objects this crate created.
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

/// `navigator.onLine`; `None` where there is no navigator.
pub fn navigator_on_line() -> Option<bool> {
    let nav = get(&global(), "navigator");
    if nav.is_undefined() {
        return None;
    }
    get(&nav, "onLine").as_bool()
}

/// `fetch` of the current global (window or worker).
pub fn fetch(request: &web_sys::Request) -> Result<Promise, PosError> {
    let g = global();
    if let Some(w) = g.dyn_ref::<web_sys::Window>() {
        return Ok(w.fetch_with_request(request));
    }
    if let Some(w) = g.dyn_ref::<web_sys::WorkerGlobalScope>() {
        return Ok(w.fetch_with_request(request));
    }
    Err(PosError::Internal("no fetch in this global scope".into()))
}

pub fn subtle() -> Result<web_sys::SubtleCrypto, PosError> {
    let crypto = get(&global(), "crypto");
    if crypto.is_undefined() || crypto.is_null() {
        return Err(PosError::CryptoUnavailable(
            "no crypto in this scope".into(),
        ));
    }
    let subtle = get(&crypto, "subtle");
    if subtle.is_undefined() || subtle.is_null() {
        return Err(PosError::CryptoUnavailable(
            "crypto.subtle needs a secure context (https or localhost)".into(),
        ));
    }
    Ok(subtle.unchecked_into())
}

/// Calls a JS callback, never letting its exception escape into the SDK.
pub fn call_callback(f: &Function, arg: &JsValue) {
    if let Err(e) = f.call1(&JsValue::NULL, arg) {
        web_sys::console::warn_1(
            &format!("pos-terminal: a callback threw: {}", describe_js(&e)).into(),
        );
    }
}

/// Runs `work` while holding the Web Lock `name` (exclusive), so tabs and the service worker
/// never forward at the same time. Runs unlocked where Web Locks are missing (old browsers).
pub async fn with_web_lock<T, F, Fut>(name: &str, work: F) -> Result<T, PosError>
where
    T: 'static,
    F: FnOnce() -> Fut + 'static,
    Fut: std::future::Future<Output = Result<T, PosError>> + 'static,
{
    let nav = get(&global(), "navigator");
    let locks = if nav.is_undefined() {
        JsValue::UNDEFINED
    } else {
        get(&nav, "locks")
    };
    let request = match get(&locks, "request").dyn_into::<Function>() {
        Ok(f) if !locks.is_undefined() => f,
        _ => return work().await,
    };
    let slot: Rc<RefCell<Option<Result<T, PosError>>>> = Rc::new(RefCell::new(None));
    let filled = slot.clone();
    let callback = Closure::once_into_js(move |_lock: JsValue| -> JsValue {
        wasm_bindgen_futures::future_to_promise(async move {
            let result = work().await;
            *filled.borrow_mut() = Some(result);
            Ok(JsValue::UNDEFINED)
        })
        .into()
    });
    let promise: Promise = request
        .call2(&locks, &JsValue::from_str(name), &callback)
        .map_err(|e| PosError::Internal(describe_js(&e)))?
        .unchecked_into();
    JsFuture::from(promise)
        .await
        .map_err(|e| PosError::Internal(format!("web lock: {}", describe_js(&e))))?;
    let result = slot.borrow_mut().take();
    result.unwrap_or_else(|| Err(PosError::Internal("web lock callback did not run".into())))
}
