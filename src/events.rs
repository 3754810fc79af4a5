//! The caller's callbacks. A callback that throws is logged and never breaks the SDK.

use js_sys::Function;
use serde::Serialize;
use wasm_bindgen::JsValue;

use crate::js;
use crate::types::{to_js, ForwardingFailureJs, OfflineStatusJs, StoredPaymentJs};

#[derive(Default, Clone)]
pub struct Callbacks {
    pub on_network_status_change: Option<Function>,
    pub on_offline_status_change: Option<Function>,
    pub on_payment_forwarded: Option<Function>,
    pub on_forwarding_failure: Option<Function>,
    pub on_unexpected_reader_disconnect: Option<Function>,
    pub on_connection_status_change: Option<Function>,
    pub on_payment_status_change: Option<Function>,
}

fn emit<T: Serialize>(f: &Option<Function>, payload: &T) {
    if let Some(f) = f {
        if let Ok(v) = to_js(payload) {
            js::call_callback(f, &v);
        }
    }
}

impl Callbacks {
    pub fn network_status(&self, status: &str) {
        emit(&self.on_network_status_change, &status);
    }
    pub fn offline_status(&self, status: &OfflineStatusJs) {
        emit(&self.on_offline_status_change, status);
    }
    pub fn payment_forwarded(&self, p: &StoredPaymentJs) {
        emit(&self.on_payment_forwarded, p);
    }
    pub fn forwarding_failure(&self, f: &ForwardingFailureJs) {
        emit(&self.on_forwarding_failure, f);
    }
    pub fn unexpected_reader_disconnect(&self, err: JsValue) {
        if let Some(f) = &self.on_unexpected_reader_disconnect {
            js::call_callback(f, &err);
        }
    }
    pub fn connection_status(&self, status: &str) {
        emit(&self.on_connection_status_change, &status);
    }
    pub fn payment_status(&self, status: &str) {
        emit(&self.on_payment_status_change, &status);
    }
}
