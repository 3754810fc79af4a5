//! The page's callbacks as the core's `Events`. A callback that throws is logged and never
//! breaks the SDK.

use js_sys::Function;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::error_to_js;
use super::types::to_js;
use crate::error::PosError;
use crate::events::{ConnectionStatus, Events, PaymentStatus};
use crate::forward_policy::ForwardingFailure;
use crate::js;
use crate::payment::StoredPayment;
use crate::status::{NetworkStatus, OfflineStatus};

#[derive(Default)]
pub struct JsEvents {
    on_network_status_change: Option<Function>,
    on_offline_status_change: Option<Function>,
    on_payment_forwarded: Option<Function>,
    on_forwarding_failure: Option<Function>,
    on_unexpected_reader_disconnect: Option<Function>,
    on_connection_status_change: Option<Function>,
    on_payment_status_change: Option<Function>,
    on_database_version_change: Option<Function>,
}

fn callback(options: &JsValue, name: &str) -> Result<Option<Function>, PosError> {
    let v = js::get(options, name);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.dyn_into::<Function>()
        .map(Some)
        .map_err(|_| PosError::InvalidArgument(format!("{name} must be a function")))
}

impl JsEvents {
    /// Reads the `on…` callbacks of `TerminalOptions`.
    pub fn from_options(options: &JsValue) -> Result<Self, PosError> {
        Ok(Self {
            on_network_status_change: callback(options, "onNetworkStatusChange")?,
            on_offline_status_change: callback(options, "onOfflineStatusChange")?,
            on_payment_forwarded: callback(options, "onPaymentForwarded")?,
            on_forwarding_failure: callback(options, "onForwardingFailure")?,
            on_unexpected_reader_disconnect: callback(options, "onUnexpectedReaderDisconnect")?,
            on_connection_status_change: callback(options, "onConnectionStatusChange")?,
            on_payment_status_change: callback(options, "onPaymentStatusChange")?,
            on_database_version_change: callback(options, "onDatabaseVersionChange")?,
        })
    }

    /// The required `fetchConnectionToken`.
    pub fn token_callback(options: &JsValue) -> Result<Function, PosError> {
        callback(options, "fetchConnectionToken")?
            .ok_or_else(|| PosError::InvalidArgument("fetchConnectionToken is required".into()))
    }
}

fn emit<T: Serialize>(f: &Option<Function>, payload: &T) {
    if let Some(f) = f {
        if let Ok(v) = to_js(payload) {
            js::call_callback(f, &v);
        }
    }
}

impl Events for JsEvents {
    fn network_status(&self, status: NetworkStatus) {
        emit(&self.on_network_status_change, &status);
    }
    fn offline_status(&self, status: &OfflineStatus) {
        emit(&self.on_offline_status_change, status);
    }
    fn payment_forwarded(&self, payment: &StoredPayment) {
        emit(&self.on_payment_forwarded, payment);
    }
    fn forwarding_failure(&self, failure: &ForwardingFailure) {
        emit(&self.on_forwarding_failure, failure);
    }
    fn unexpected_reader_disconnect(&self, error: &PosError) {
        if let Some(f) = &self.on_unexpected_reader_disconnect {
            js::call_callback(f, &error_to_js(error));
        }
    }
    fn connection_status(&self, status: ConnectionStatus) {
        emit(&self.on_connection_status_change, &status);
    }
    fn payment_status(&self, status: PaymentStatus) {
        emit(&self.on_payment_status_change, &status);
    }
    fn database_closed_for_upgrade(&self) {
        if let Some(f) = &self.on_database_version_change {
            js::call_callback(f, &JsValue::UNDEFINED);
        }
    }
}
