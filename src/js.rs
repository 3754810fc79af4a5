//! Small bridges to the browser that work in a page and in a service worker alike
//! (everything goes through `js_sys::global()`, never `window()`).

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::error::{BackendError, DomErrorName, PosError, StorageError};

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
pub fn fetch(request: &web_sys::Request) -> Result<Promise, BackendError> {
    let g = global();
    if let Some(w) = g.dyn_ref::<web_sys::Window>() {
        return Ok(w.fetch_with_request(request));
    }
    if let Some(w) = g.dyn_ref::<web_sys::WorkerGlobalScope>() {
        return Ok(w.fetch_with_request(request));
    }
    Err(BackendError::NotSent(
        "no fetch in this global scope".into(),
    ))
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

/// Readable text for a JS exception or rejection value.
pub fn describe_js(value: &JsValue) -> String {
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        return format!("{}: {}", String::from(e.name()), String::from(e.message()));
    }
    if let Some(s) = value.as_string() {
        return s;
    }
    if let Some(ex) = value.dyn_ref::<web_sys::DomException>() {
        return format!("{}: {}", ex.name(), ex.message());
    }
    format!("{value:?}")
}

/// The `name` of a DOMException or Error, if any (e.g. "QuotaExceededError").
pub fn js_error_name(value: &JsValue) -> Option<String> {
    if let Some(ex) = value.dyn_ref::<web_sys::DomException>() {
        return Some(ex.name());
    }
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.name()))
}

/// An IndexedDB failure as a typed storage error, by the DOMException's name.
pub fn storage_error(e: &JsValue) -> StorageError {
    StorageError::Dom {
        name: js_error_name(e)
            .as_deref()
            .map_or(DomErrorName::Other, DomErrorName::from_name),
        message: describe_js(e),
    }
}
