//! The JS API: `Terminal` and the service worker's `forwardStoredPayments`. Each method
//! converts its arguments, delegates to the Rust core (`crate::terminal`, `crate::scheduler`)
//! and converts the result; every error becomes a JS `Error` with a stable `code` here.

mod events;
pub mod types;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::auth::{Auth, TokenFuture};
use crate::backend::Backend;
use crate::error::{BackendError, PosError};
use crate::events::{Events, NoEvents};
use crate::js;
use crate::options::{self, Settings, TerminalOptions, OPTION_KEYS};
use crate::payment::{CollectedView, PaymentRequest};
use crate::reader::{CartInput, ReaderView};
use crate::scheduler;
use crate::store::Store;
use crate::terminal;
use events::JsEvents;
use types::{
    from_js, to_js, CollectedRef, ConnectOptions, DiscoveryConfig, ListFilter, ReaderRef,
    SimulatorInput, WorkerOptions,
};

/// A JS `Error` with `.code` (and `.declineCode`), named `PosTerminalError`.
pub fn error_to_js(e: &PosError) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    err.set_name("PosTerminalError");
    js::set(&err, "code", &e.code().into());
    if let Some(dc) = e.decline_code() {
        js::set(&err, "declineCode", &dc.into());
    }
    err.into()
}

/// The method's future as a JS promise. Boxed first, so that `future_to_promise` (its task,
/// waker and promise glue: 1–7 KB of wasm per instance) is compiled once for every method
/// instead of once per method's future type.
fn promise<F>(fut: F) -> Promise
where
    F: Future<Output = Result<JsValue, PosError>> + 'static,
{
    promise_boxed(Box::pin(fut))
}

#[inline(never)]
fn promise_boxed(fut: Pin<Box<dyn Future<Output = Result<JsValue, PosError>>>>) -> Promise {
    future_to_promise(async move { fut.await.map_err(|e| error_to_js(&e)) })
}

fn optional(value: Option<JsValue>) -> Option<JsValue> {
    value.filter(|v| !v.is_undefined() && !v.is_null())
}

/// A payment request that serde refused, told by its field where the field is the culprit:
/// an `amount` that is not a number is `invalid_amount`, a metadata value that is not a
/// string `invalid_metadata` (as their checks on the values themselves say), the rest as is.
fn field_error(request: &JsValue, e: PosError) -> PosError {
    if !request.is_object() || js_sys::Array::is_array(request) {
        return e;
    }
    let amount = js::get(request, "amount");
    if !amount.is_undefined() && amount.as_f64().is_none() {
        return PosError::InvalidAmount(format!(
            "amount must be a number of minor units, got {}",
            js_type(&amount)
        ));
    }
    let metadata = js::get(request, "metadata");
    if metadata.is_object() && !js_sys::Array::is_array(&metadata) {
        let values = js_sys::Object::values(metadata.unchecked_ref());
        if values.iter().any(|v: JsValue| v.as_string().is_none()) {
            return PosError::InvalidMetadata(format!(
                "every metadata value must be a string: {e}"
            ));
        }
    }
    e
}

/// What kind of JS value `v` is, for a message: its `typeof`, or "null" or "array".
fn js_type(v: &JsValue) -> String {
    if v.is_null() {
        "null".into()
    } else if js_sys::Array::is_array(v) {
        "array".into()
    } else {
        v.js_typeof().as_string().unwrap_or_default()
    }
}

/// A payment id argument. Taken as a `JsValue`, not a `String`: wasm-bindgen's glue for a
/// `String` parameter throws synchronously (or traps) on a number, an object or `null`, so
/// a caller without TypeScript got no rejected promise and no error code.
fn payment_id(id: JsValue) -> Result<String, PosError> {
    id.as_string().ok_or_else(|| {
        PosError::InvalidArgument(format!(
            "a payment id must be a string, got {}",
            js_type(&id)
        ))
    })
}

/// `fetchConnectionToken` as the core's token source.
fn token_source(f: Function) -> Rc<dyn crate::auth::TokenSource> {
    Rc::new(move || -> TokenFuture {
        let f = f.clone();
        Box::pin(async move {
            let failed = |e: JsValue| PosError::ConnectionToken(js::describe_js(&e));
            let value = f.call0(&JsValue::NULL).map_err(failed)?;
            let value = match value.dyn_into::<Promise>() {
                Ok(p) => JsFuture::from(p).await.map_err(failed)?,
                Err(v) => v,
            };
            value.as_string().ok_or_else(|| {
                PosError::ConnectionToken("fetchConnectionToken must resolve to a string".into())
            })
        })
    })
}

/// A point-of-sale terminal: readers, payments, and the offline store of this browser.
#[wasm_bindgen(js_name = Terminal)]
pub struct JsTerminal {
    core: Rc<terminal::Terminal>,
}

#[wasm_bindgen(js_class = Terminal)]
impl JsTerminal {
    /// Opens the offline store (creating its keys on first use), starts page forwarding
    /// (now, on `online`, and on a timer while anything is pending) and returns the terminal.
    #[wasm_bindgen(unchecked_return_type = "Promise<Terminal>")]
    pub fn create(
        #[wasm_bindgen(unchecked_param_type = "TerminalOptions")] options: JsValue,
    ) -> Promise {
        promise(async move {
            if !options.is_object() {
                return Err(PosError::InvalidArgument(
                    "options must be an object".into(),
                ));
            }
            if let Some(key) = js_sys::Object::keys(options.unchecked_ref::<js_sys::Object>())
                .iter()
                .filter_map(|k| k.as_string())
                .find(|k| !OPTION_KEYS.contains(&k.as_str()))
            {
                return Err(PosError::InvalidArgument(format!(
                    "options: unknown option `{key}` (the options are {})",
                    OPTION_KEYS.join(", ")
                )));
            }
            let settings =
                Settings::from_options(from_js::<TerminalOptions>(options.clone(), "options")?)?;
            let tokens = token_source(JsEvents::token_callback(&options)?);
            let events: Rc<dyn Events> = Rc::new(JsEvents::from_options(&options)?);
            let core = terminal::Terminal::create(settings, tokens, events).await?;
            Ok(JsTerminal {
                core: Rc::new(core),
            }
            .into())
        })
    }

    #[wasm_bindgen(js_name = discoverReaders, unchecked_return_type = "Promise<Reader[]>")]
    pub fn discover_readers(
        &self,
        #[wasm_bindgen(unchecked_param_type = "DiscoveryConfig")] config: JsValue,
    ) -> Promise {
        let core = self.core.clone();
        promise(async move {
            let config: DiscoveryConfig = from_js(config, "discovery config")?;
            let found = core.discover_readers(&config.into_discovery()?).await?;
            to_js(&found.iter().map(ReaderView::from).collect::<Vec<_>>())
        })
    }

    /// Typed in `types.rs` (an optional parameter needs a hand-written signature).
    #[wasm_bindgen(js_name = connectReader, skip_typescript)]
    pub fn connect_reader(&self, reader: JsValue, options: Option<JsValue>) -> Promise {
        let core = self.core.clone();
        promise(async move {
            let target: ReaderRef = from_js(reader, "reader")?;
            let options: ConnectOptions = match optional(options) {
                Some(o) => from_js(o, "connect options")?,
                None => ConnectOptions::default(),
            };
            let reader = core
                .connect_reader(&target.address(), options.take_over)
                .await?;
            to_js(&ReaderView::from(&reader))
        })
    }

    /// Sets what the in-page simulated reader does (`discoverReaders({ method: "simulated" })`).
    #[wasm_bindgen(js_name = setSimulatorConfiguration)]
    pub fn set_simulator_configuration(
        &self,
        #[wasm_bindgen(unchecked_param_type = "SimulatorConfiguration")] config: JsValue,
    ) -> Result<(), JsValue> {
        let apply = || -> Result<(), PosError> {
            self.core.check_open()?;
            let input: SimulatorInput = from_js(config, "simulator configuration")?;
            let session = self.core.reader_session();
            let mut sim = session.simulator().borrow_mut();
            input.apply_to(&mut sim)
        };
        apply().map_err(|e| error_to_js(&e))
    }

    #[wasm_bindgen(js_name = disconnectReader, unchecked_return_type = "Promise<void>")]
    pub fn disconnect_reader(&self) -> Promise {
        let core = self.core.clone();
        promise(async move {
            core.disconnect_reader();
            Ok(JsValue::UNDEFINED)
        })
    }

    #[wasm_bindgen(js_name = setReaderDisplay, unchecked_return_type = "Promise<void>")]
    pub fn set_reader_display(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Cart")] cart: JsValue,
    ) -> Promise {
        let core = self.core.clone();
        promise(async move {
            core.set_reader_display(from_js::<CartInput>(cart, "cart")?)
                .await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    #[wasm_bindgen(js_name = clearReaderDisplay, unchecked_return_type = "Promise<void>")]
    pub fn clear_reader_display(&self) -> Promise {
        let core = self.core.clone();
        promise(async move {
            core.clear_reader_display().await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Asks the reader for a card. Resolves with the card's summary; the card data itself
    /// stays inside the SDK, encrypted for the backend.
    #[wasm_bindgen(js_name = collectPaymentMethod, unchecked_return_type = "Promise<CollectedPayment>")]
    pub fn collect_payment_method(
        &self,
        #[wasm_bindgen(unchecked_param_type = "PaymentRequest")] request: JsValue,
    ) -> Promise {
        let core = self.core.clone();
        promise(async move {
            let request: PaymentRequest = from_js(request.clone(), "payment request")
                .map_err(|e| field_error(&request, e))?;
            to_js(&CollectedView::from(
                &core.collect_payment_method(request).await?,
            ))
        })
    }

    #[wasm_bindgen(js_name = cancelCollectPaymentMethod, unchecked_return_type = "Promise<void>")]
    pub fn cancel_collect_payment_method(&self) -> Promise {
        let core = self.core.clone();
        promise(async move {
            core.cancel_collect_payment_method()?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Sends the payment to the backend, or stores it offline (see `offlineBehavior`).
    #[wasm_bindgen(js_name = processPayment, unchecked_return_type = "Promise<PaymentResult>")]
    pub fn process_payment(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CollectedPayment")] collected: JsValue,
    ) -> Promise {
        let core = self.core.clone();
        promise(async move {
            let r: CollectedRef = from_js(collected, "collected payment")?;
            to_js(&core.process_payment(&r.id).await?)
        })
    }

    // -- sdkpair (issue 8): capture and cancel of manual-capture payments.

    /// Captures a `requires_capture` payment (online, or forwarded from offline storage).
    /// Idempotent at the backend: safe to call again after a network error.
    #[wasm_bindgen(js_name = capturePayment, unchecked_return_type = "Promise<CaptureResult>")]
    pub fn capture_payment(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
    ) -> Promise {
        let core = self.core.clone();
        promise(async move { to_js(&core.capture_payment(&payment_id(id)?).await?) })
    }

    /// Cancels (voids) a `requires_capture` payment. Idempotent like `capturePayment`.
    #[wasm_bindgen(js_name = cancelPayment, unchecked_return_type = "Promise<CaptureResult>")]
    pub fn cancel_payment(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
    ) -> Promise {
        let core = self.core.clone();
        promise(async move { to_js(&core.cancel_payment(&payment_id(id)?).await?) })
    }

    /// Support's way out of `failed`: back to `pending` under the same id (same key).
    #[wasm_bindgen(js_name = requeuePayment, unchecked_return_type = "Promise<StoredPayment>")]
    pub fn requeue_payment(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
    ) -> Promise {
        let core = self.core.clone();
        promise(async move { to_js(&core.requeue_payment(&payment_id(id)?).await?) })
    }

    #[wasm_bindgen(js_name = offlineStatus, unchecked_return_type = "Promise<OfflineStatus>")]
    pub fn offline_status(&self) -> Promise {
        let core = self.core.clone();
        promise(async move { to_js(&core.offline_status().await?) })
    }

    /// Typed in `types.rs` (an optional parameter needs a hand-written signature).
    #[wasm_bindgen(js_name = listStoredPayments, skip_typescript)]
    pub fn list_stored_payments(&self, filter: Option<JsValue>) -> Promise {
        let core = self.core.clone();
        promise(async move {
            let filter: ListFilter = match optional(filter) {
                Some(f) => from_js(f, "filter")?,
                None => ListFilter::default(),
            };
            to_js(&core.list_stored_payments(filter.state).await?)
        })
    }

    /// Forwards every stored payment now, ignoring backoff. The report counts every payment
    /// this terminal's runs settled from the call until none is left running (the whole of a
    /// run already going when it was called); `remaining` is what is still outstanding.
    #[wasm_bindgen(js_name = forwardStoredPayments, unchecked_return_type = "Promise<ForwardReport>")]
    pub fn forward_stored_payments(&self) -> Promise {
        let core = self.core.clone();
        promise(async move { to_js(&core.forward_stored_payments().await?) })
    }

    /// Stops timers and listeners and disconnects the reader. Stored payments stay.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self) -> Promise {
        let core = self.core.clone();
        promise(async move {
            core.close();
            Ok(JsValue::UNDEFINED)
        })
    }
}

/// For a service worker (or any script without a `Terminal`): forwards what is stored, with
/// the backend URL and token the page saved (sealed) in the same database. Typed in `types.rs`.
#[wasm_bindgen(js_name = forwardStoredPayments, skip_typescript)]
pub fn forward_stored_payments(options: Option<JsValue>) -> Promise {
    promise(async move {
        // A string (`forwardStoredPayments("shop")`) or a misspelt key would otherwise
        // forward the default database and report it, and the `sync` would not be retried.
        let options: WorkerOptions = match optional(options) {
            None => WorkerOptions::default(),
            Some(o) => from_js(o, "options")?,
        };
        let db_name = options::database_name(options.database_name)?;
        to_js(&forward_saved(&db_name).await?)
    })
}

/// Forwards with the configuration saved in `db_name`; the core of the worker entry point.
pub async fn forward_saved(
    db_name: &str,
) -> Result<crate::forward_policy::ForwardReport, PosError> {
    let no_config = || {
        PosError::InvalidArgument(
            "no backend configuration is stored; create a Terminal in a page first".into(),
        )
    };
    let store = Rc::new(Store::open_existing(db_name).await?.ok_or_else(no_config)?);
    let result = async {
        let config = store.load_config().await?.ok_or_else(no_config)?;
        // Only the payments taken for the saved backend are sent to it.
        store.bind_backend(&config.backend_url);
        // Nothing was sent, so nothing was refused: not `unauthorized`.
        let token = config.connection_token.ok_or_else(|| {
            PosError::ConnectionToken(
                "no connection token is stored yet: a POS page saves one once its \
                 fetchConnectionToken succeeds (Terminal.create asks at start-up)"
                    .into(),
            )
        })?;
        // No page, so no way to fetch a fresh token: a refused one ends the run.
        let no_refresh: Rc<dyn crate::auth::TokenSource> = Rc::new(|| -> TokenFuture {
            Box::pin(async {
                Err(PosError::from(BackendError::Unauthorized(
                    "the stored connection token was refused; open the POS page to refresh it"
                        .into(),
                )))
            })
        });
        let timeout_ms = options::DEFAULT_REQUEST_TIMEOUT_MS;
        let auth = Auth::new(
            no_refresh,
            timeout_ms,
            Some(token),
            store.clone(),
            config.backend_url.clone(),
        );
        let backend = Rc::new(Backend::new(&config.backend_url, timeout_ms));
        let events: Rc<dyn Events> = Rc::new(NoEvents);
        scheduler::forward_once(&store, &backend, &auth, &events).await
    }
    .await;
    store.close();
    result
}
