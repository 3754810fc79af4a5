//! The JS facade: `Terminal` and the service worker's `forwardStoredPayments`. Thin: it parses
//! options, converts values and delegates to the reader, store, backend and forwarder.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::{Rc, Weak};

use futures_util::future::join_all;
use gloo_timers::callback::{Interval, Timeout};
use js_sys::{Function, Promise};
use pos_protocol::backend::{CaptureMethod, PaymentBody};
use pos_protocol::reader::{PosMessage, ReaderMessage};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, spawn_local, JsFuture};
use web_sys::{Event, EventTarget};

use crate::backend::{Backend, PaymentOutcome};
use crate::error::{describe_js, PosError};
use crate::events::Callbacks;
use crate::forwarder::{Forwarder, RunOutcome, Stop, LOCK_NAME};
use crate::js;
use crate::limits::{OfflineLimits, Outstanding};
use crate::payment::{new_payment_id, Collected, OfflineBehavior, StoredState};
use crate::reader::websocket::WsConnection;
use crate::reader::{Discovered, CANCEL_TIMEOUT_MS, COMMAND_TIMEOUT_MS, CONNECT_TIMEOUT_MS};
use crate::store::{PersistedConfig, Store};
use crate::types::*;
use crate::validate;

const DEFAULT_DB: &str = "pos-terminal";
const MAX_HELD_COLLECTED: usize = 16;
const MAX_DISCOVERY_URLS: usize = 32;
/// Health probe before a payment while the backend is known to be down.
const QUICK_PROBE_MS: u32 = 1_500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Network {
    Online,
    Offline,
    Unknown,
}

impl Network {
    fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Unknown => "unknown",
        }
    }
}

struct Settings {
    offline_enabled: bool,
    limits: OfflineLimits,
    request_timeout_ms: u32,
    forward_interval_ms: u32,
}

/// A global event listener, kept so `close` can remove it.
type Listener = (&'static str, Closure<dyn FnMut(Event)>);

struct ConnectedReader {
    conn: Rc<WsConnection>,
    reader: Discovered,
}

struct Inner {
    store: Store,
    backend: Backend,
    settings: Settings,
    callbacks: Callbacks,
    fetch_token: Function,
    token: RefCell<Option<String>>,
    network: Cell<Network>,
    reader: RefCell<Option<ConnectedReader>>,
    connecting: Cell<bool>,
    collecting: RefCell<Option<String>>,
    collected: RefCell<Vec<Collected>>,
    forwarding: Cell<u32>,
    closed: Cell<bool>,
    last_status: RefCell<Option<OfflineStatusJs>>,
    timer: RefCell<Option<Interval>>,
    listeners: RefCell<Vec<Listener>>,
}

/// A point-of-sale terminal: readers, payments, and the offline store of this browser.
#[wasm_bindgen]
pub struct Terminal {
    inner: Rc<Inner>,
}

fn promise<F>(fut: F) -> Promise
where
    F: Future<Output = Result<JsValue, PosError>> + 'static,
{
    future_to_promise(async move { fut.await.map_err(|e| e.to_js()) })
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

fn number_option(
    options: &JsValue,
    name: &str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, PosError> {
    let v = js::get(options, name);
    if v.is_undefined() || v.is_null() {
        return Ok(default);
    }
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && n >= min as f64 && n <= max as f64 => Ok(n as u32),
        _ => Err(PosError::InvalidArgument(format!(
            "{name} must be an integer between {min} and {max}"
        ))),
    }
}

fn limit_map(map: BTreeMap<String, f64>, what: &str) -> Result<BTreeMap<String, u64>, PosError> {
    map.into_iter()
        .map(|(currency, v)| {
            let currency = validate::currency(&currency)?;
            if !(v.is_finite() && v.fract() == 0.0 && (0.0..=1e15).contains(&v)) {
                return Err(PosError::InvalidArgument(format!(
                    "offline.{what}.{currency} must be a non-negative integer"
                )));
            }
            Ok((currency, v as u64))
        })
        .collect()
}

fn parse_settings(options: &JsValue) -> Result<Settings, PosError> {
    let offline = js::get(options, "offline");
    let offline: OfflineOptionsJs = if offline.is_undefined() || offline.is_null() {
        OfflineOptionsJs::default()
    } else {
        from_js(offline, "offline")?
    };
    let max_stored_payments = match offline.max_stored_payments {
        None => None,
        Some(n) if n.fract() == 0.0 && (0.0..=1e6).contains(&n) => Some(n as u32),
        Some(_) => {
            return Err(PosError::InvalidArgument(
                "offline.maxStoredPayments must be an integer between 0 and 1000000".into(),
            ))
        }
    };
    Ok(Settings {
        offline_enabled: offline.enabled.unwrap_or(true),
        limits: OfflineLimits {
            transaction_limit: limit_map(offline.transaction_limit, "transactionLimit")?,
            stored_amount_limit: limit_map(offline.stored_amount_limit, "storedAmountLimit")?,
            max_stored_payments,
        },
        request_timeout_ms: number_option(options, "requestTimeoutMs", 8_000, 100, 120_000)?,
        forward_interval_ms: number_option(options, "forwardIntervalMs", 10_000, 500, 3_600_000)?,
    })
}

fn parse_db_name(options: &JsValue) -> Result<String, PosError> {
    let v = js::get(options, "databaseName");
    if v.is_undefined() || v.is_null() {
        return Ok(DEFAULT_DB.to_string());
    }
    match v.as_string() {
        Some(name) if !name.is_empty() && name.len() <= 64 => Ok(name),
        _ => Err(PosError::InvalidArgument(
            "databaseName must be a string of 1 to 64 characters".into(),
        )),
    }
}

/// Opens each reader, pairs, reads what it says about itself and closes again.
async fn probe_readers(urls: &[String], token: &str) -> Vec<Result<Discovered, PosError>> {
    let probes = urls.iter().map(|url| async move {
        let (conn, info) = WsConnection::open(url, token, CONNECT_TIMEOUT_MS).await?;
        conn.close();
        Ok(Discovered {
            info,
            url: url.clone(),
        })
    });
    join_all(probes).await
}

#[wasm_bindgen]
impl Terminal {
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
            let backend_url = js::get(&options, "backendUrl")
                .as_string()
                .ok_or_else(|| PosError::InvalidArgument("backendUrl is required".into()))
                .and_then(|u| validate::backend_url(&u))?;
            let fetch_token = callback(&options, "fetchConnectionToken")?.ok_or_else(|| {
                PosError::InvalidArgument("fetchConnectionToken is required".into())
            })?;
            let settings = parse_settings(&options)?;
            let callbacks = Callbacks {
                on_network_status_change: callback(&options, "onNetworkStatusChange")?,
                on_offline_status_change: callback(&options, "onOfflineStatusChange")?,
                on_payment_forwarded: callback(&options, "onPaymentForwarded")?,
                on_forwarding_failure: callback(&options, "onForwardingFailure")?,
                on_unexpected_reader_disconnect: callback(
                    &options,
                    "onUnexpectedReaderDisconnect",
                )?,
                on_connection_status_change: callback(&options, "onConnectionStatusChange")?,
                on_payment_status_change: callback(&options, "onPaymentStatusChange")?,
            };
            let db_name = parse_db_name(&options)?;
            let store = Store::open(&db_name).await?;

            // A token saved for this backend lets readers pair while the backend is down.
            let saved = store.load_config().await.ok().flatten();
            let token = saved
                .filter(|c| c.backend_url == backend_url)
                .and_then(|c| c.connection_token);
            store
                .save_config(&PersistedConfig {
                    backend_url: backend_url.clone(),
                    connection_token: token.clone(),
                })
                .await?;

            let inner = Rc::new(Inner {
                backend: Backend::new(&backend_url, settings.request_timeout_ms),
                store,
                settings,
                callbacks,
                fetch_token,
                token: RefCell::new(token),
                network: Cell::new(Network::Unknown),
                reader: RefCell::new(None),
                connecting: Cell::new(false),
                collecting: RefCell::new(None),
                collected: RefCell::new(Vec::new()),
                forwarding: Cell::new(0),
                closed: Cell::new(false),
                last_status: RefCell::new(None),
                timer: RefCell::new(None),
                listeners: RefCell::new(Vec::new()),
            });
            Inner::start_background(&inner);
            inner.callbacks.payment_status("not_ready");
            let first = inner.clone();
            spawn_local(async move {
                let _ = first.forward(false).await;
            });
            Ok(Terminal { inner }.into())
        })
    }

    #[wasm_bindgen(js_name = discoverReaders, unchecked_return_type = "Promise<Reader[]>")]
    pub fn discover_readers(
        &self,
        #[wasm_bindgen(unchecked_param_type = "DiscoveryConfig")] config: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.check_open()?;
            let config: DiscoveryConfigJs = from_js(config, "discovery config")?;
            if config.method != "websocket" {
                return Err(PosError::Unsupported(format!(
                    "discovery method {:?} is not supported yet; use \"websocket\"",
                    config.method
                )));
            }
            if config.urls.is_empty() || config.urls.len() > MAX_DISCOVERY_URLS {
                return Err(PosError::InvalidArgument(format!(
                    "urls must list 1 to {MAX_DISCOVERY_URLS} reader addresses"
                )));
            }
            let token = inner.token(false).await?;
            let mut found = probe_readers(&config.urls, &token).await;
            let stale_token = found
                .iter()
                .any(|r| matches!(r, Err(PosError::Reader { code, .. }) if code == "not_paired"));
            if stale_token {
                let token = inner.token(true).await?;
                found = probe_readers(&config.urls, &token).await;
            }
            let readers: Vec<ReaderJs> = found
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .map(ReaderJs::from)
                .collect();
            to_js(&readers)
        })
    }

    #[wasm_bindgen(js_name = connectReader, unchecked_return_type = "Promise<Reader>")]
    pub fn connect_reader(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reader")] reader: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.check_open()?;
            let target: ReaderRef = from_js(reader, "reader")?;
            if inner.reader.borrow().is_some() || inner.connecting.get() {
                return Err(PosError::ReaderAlreadyConnected);
            }
            inner.connecting.set(true);
            inner.callbacks.connection_status("connecting");
            let result = Inner::connect(&inner, &target.url).await;
            inner.connecting.set(false);
            if result.is_ok() && inner.closed.get() {
                // `close()` ran while connecting: don't leave a reader attached.
                inner.disconnect();
                return Err(PosError::TerminalClosed);
            }
            match result {
                Ok(reader) => {
                    inner.callbacks.connection_status("connected");
                    inner.callbacks.payment_status("ready");
                    to_js(&reader)
                }
                Err(e) => {
                    inner.callbacks.connection_status("not_connected");
                    Err(e)
                }
            }
        })
    }

    #[wasm_bindgen(js_name = disconnectReader, unchecked_return_type = "Promise<void>")]
    pub fn disconnect_reader(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.disconnect();
            Ok(JsValue::UNDEFINED)
        })
    }

    #[wasm_bindgen(js_name = setReaderDisplay, unchecked_return_type = "Promise<void>")]
    pub fn set_reader_display(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Cart")] cart: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.check_open()?;
            let cart = from_js::<CartJs>(cart, "cart")?.into_cart()?;
            let request_id = new_payment_id()?.replacen("pay_", "cmd_", 1);
            let msg = PosMessage::DisplayCart {
                request_id: request_id.clone(),
                cart,
            };
            inner.reader_command(&request_id, msg).await
        })
    }

    #[wasm_bindgen(js_name = clearReaderDisplay, unchecked_return_type = "Promise<void>")]
    pub fn clear_reader_display(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.check_open()?;
            let request_id = new_payment_id()?.replacen("pay_", "cmd_", 1);
            let msg = PosMessage::ClearDisplay {
                request_id: request_id.clone(),
            };
            inner.reader_command(&request_id, msg).await
        })
    }

    /// Asks the reader for a card. Resolves with the card's summary; the card data itself
    /// stays inside the SDK, encrypted for the backend.
    #[wasm_bindgen(js_name = collectPaymentMethod, unchecked_return_type = "Promise<CollectedPayment>")]
    pub fn collect_payment_method(
        &self,
        #[wasm_bindgen(unchecked_param_type = "PaymentRequest")] request: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.check_open()?;
            let req: PaymentRequestJs = from_js(request, "payment request")?;
            let amount = validate::amount(req.amount)?;
            let currency = validate::currency(&req.currency)?;
            let metadata = req.metadata.unwrap_or_default();
            validate::metadata(&metadata)?;
            let collected = inner
                .collect(
                    amount,
                    currency,
                    req.offline_behavior.unwrap_or_default(),
                    req.capture_method.unwrap_or(CaptureMethod::Automatic),
                    metadata,
                )
                .await?;
            to_js(&CollectedJs::from(&collected))
        })
    }

    #[wasm_bindgen(js_name = cancelCollectPaymentMethod, unchecked_return_type = "Promise<void>")]
    pub fn cancel_collect_payment_method(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let id = inner
                .collecting
                .borrow()
                .clone()
                .ok_or(PosError::NoCollectInProgress)?;
            let conn = inner.connection()?;
            conn.send(&PosMessage::Cancel {
                request_id: id.clone(),
            })?;
            // If the reader never confirms, end the collect here anyway.
            let weak = Rc::downgrade(&conn);
            Timeout::new(CANCEL_TIMEOUT_MS, move || {
                if let Some(conn) = weak.upgrade() {
                    conn.fail_request(&id, PosError::CollectCanceled);
                }
            })
            .forget();
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Sends the payment to the backend, or stores it offline (see `offlineBehavior`).
    #[wasm_bindgen(js_name = processPayment, unchecked_return_type = "Promise<PaymentResult>")]
    pub fn process_payment(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CollectedPayment")] collected: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.check_open()?;
            let r: CollectedRef = from_js(collected, "collected payment")?;
            // Taken out while processing: a double click gets `payment_not_collected`.
            let payment = {
                let mut held = inner.collected.borrow_mut();
                let at = held
                    .iter()
                    .position(|c| c.id == r.id)
                    .ok_or(PosError::PaymentNotCollected)?;
                held.remove(at)
            };
            inner.callbacks.payment_status("processing");
            let result = inner.process(&payment).await;
            let ready = if inner.reader.borrow().is_some() {
                "ready"
            } else {
                "not_ready"
            };
            inner.callbacks.payment_status(ready);
            if !matches!(&result, Ok(_) | Err(PosError::CardDeclined { .. })) {
                // Not a final answer: the caller may retry; the same id keeps a retry from
                // charging twice.
                inner.collected.borrow_mut().push(payment);
            }
            to_js(&result?)
        })
    }

    #[wasm_bindgen(js_name = offlineStatus, unchecked_return_type = "Promise<OfflineStatus>")]
    pub fn offline_status(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move { to_js(&inner.status().await?) })
    }

    /// Typed in `types.rs` (an optional parameter needs a hand-written signature).
    #[wasm_bindgen(js_name = listStoredPayments, skip_typescript)]
    pub fn list_stored_payments(&self, filter: Option<JsValue>) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let filter = filter.unwrap_or(JsValue::UNDEFINED);
            let state = if filter.is_undefined() || filter.is_null() {
                None
            } else {
                let s = js::get(&filter, "state");
                if s.is_undefined() {
                    None
                } else {
                    let name = s.as_string().unwrap_or_default();
                    Some(StoredState::parse(&name).ok_or_else(|| {
                        PosError::InvalidArgument(format!("unknown state {name:?}"))
                    })?)
                }
            };
            let list: Vec<StoredPaymentJs> = inner
                .store
                .all()
                .await?
                .iter()
                .filter(|e| state.is_none_or(|s| e.header.state == s))
                .map(StoredPaymentJs::from)
                .collect();
            to_js(&list)
        })
    }

    /// Forwards every stored payment now, ignoring backoff.
    #[wasm_bindgen(js_name = forwardStoredPayments, unchecked_return_type = "Promise<ForwardReport>")]
    pub fn forward_stored_payments(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.check_open()?;
            to_js(&inner.forward(true).await?)
        })
    }

    /// Stops timers and listeners and disconnects the reader. Stored payments stay.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            if !inner.closed.replace(true) {
                inner.disconnect();
                *inner.timer.borrow_mut() = None;
                if let Some(target) = js::global().dyn_ref::<EventTarget>() {
                    for (name, listener) in inner.listeners.borrow_mut().drain(..) {
                        let _ = target.remove_event_listener_with_callback(
                            name,
                            listener.as_ref().unchecked_ref(),
                        );
                    }
                }
                inner.store.close();
            }
            Ok(JsValue::UNDEFINED)
        })
    }
}

impl Inner {
    fn check_open(&self) -> Result<(), PosError> {
        if self.closed.get() {
            Err(PosError::TerminalClosed)
        } else {
            Ok(())
        }
    }

    fn start_background(this: &Rc<Inner>) {
        let weak: Weak<Inner> = Rc::downgrade(this);
        let interval = Interval::new(this.settings.forward_interval_ms, move || {
            if let Some(inner) = weak.upgrade() {
                spawn_local(async move { inner.tick().await });
            }
        });
        *this.timer.borrow_mut() = Some(interval);

        let Some(target) = js::global().dyn_ref::<EventTarget>().cloned() else {
            return;
        };
        let weak = Rc::downgrade(this);
        let on_online = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            if let Some(inner) = weak.upgrade() {
                spawn_local(async move {
                    let _ = inner.forward(true).await;
                });
            }
        });
        let weak = Rc::downgrade(this);
        let on_offline = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            if let Some(inner) = weak.upgrade() {
                inner.set_network(Network::Offline);
                spawn_local(async move { inner.publish_status().await });
            }
        });
        let mut listeners = this.listeners.borrow_mut();
        for (name, closure) in [("online", on_online), ("offline", on_offline)] {
            let _ = target.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
            listeners.push((name, closure));
        }
    }

    async fn tick(self: Rc<Self>) {
        if self.closed.get() || self.forwarding.get() > 0 {
            return;
        }
        let pending = match self.status().await {
            Ok(s) => s.pending_count,
            Err(_) => return,
        };
        if pending > 0 || self.network.get() != Network::Online {
            let _ = self.forward(false).await;
        }
    }

    fn set_network(&self, status: Network) {
        if self.network.replace(status) != status {
            self.callbacks.network_status(status.as_str());
        }
    }

    /// A connection token: the cached one unless `refresh`, else a new one from the
    /// caller's `fetchConnectionToken`, saved sealed for offline pairing and workers.
    async fn token(&self, refresh: bool) -> Result<String, PosError> {
        if !refresh {
            if let Some(t) = self.token.borrow().clone() {
                return Ok(t);
            }
        }
        let value = self
            .fetch_token
            .call0(&JsValue::NULL)
            .map_err(|e| PosError::ConnectionToken(describe_js(&e)))?;
        let value = match value.dyn_into::<Promise>() {
            Ok(p) => JsFuture::from(p)
                .await
                .map_err(|e| PosError::ConnectionToken(describe_js(&e)))?,
            Err(v) => v,
        };
        let token = value
            .as_string()
            // It goes into an Authorization header: visible ASCII only.
            .filter(|t| !t.is_empty() && t.len() <= 4096 && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                PosError::ConnectionToken(
                    "fetchConnectionToken must resolve to a non-empty string of visible ASCII"
                        .into(),
                )
            })?;
        *self.token.borrow_mut() = Some(token.clone());
        self.store
            .save_config(&PersistedConfig {
                backend_url: self.backend.base().to_string(),
                connection_token: Some(token.clone()),
            })
            .await?;
        Ok(token)
    }

    fn connection(&self) -> Result<Rc<WsConnection>, PosError> {
        self.reader
            .borrow()
            .as_ref()
            .map(|r| r.conn.clone())
            .ok_or(PosError::ReaderNotConnected)
    }

    async fn connect(this: &Rc<Inner>, url: &str) -> Result<ReaderJs, PosError> {
        let token = this.token(false).await?;
        let opened = match WsConnection::open(url, &token, CONNECT_TIMEOUT_MS).await {
            // A token from an earlier backend session: get a fresh one once.
            Err(PosError::Reader { code, .. }) if code == "not_paired" => {
                let token = this.token(true).await?;
                WsConnection::open(url, &token, CONNECT_TIMEOUT_MS).await
            }
            other => other,
        };
        let (conn, info) = opened?;
        let weak = Rc::downgrade(this);
        conn.on_disconnect(Box::new(move |err: PosError| {
            if let Some(inner) = weak.upgrade() {
                inner.reader.borrow_mut().take();
                inner.callbacks.connection_status("not_connected");
                inner.callbacks.payment_status("not_ready");
                inner.callbacks.unexpected_reader_disconnect(err.to_js());
            }
        }));
        let reader = Discovered {
            info,
            url: url.to_string(),
        };
        let js = ReaderJs::from(&reader);
        *this.reader.borrow_mut() = Some(ConnectedReader { conn, reader });
        Ok(js)
    }

    fn disconnect(&self) {
        let taken = self.reader.borrow_mut().take();
        if let Some(r) = taken {
            r.conn.close();
            self.callbacks.connection_status("not_connected");
            self.callbacks.payment_status("not_ready");
        }
    }

    async fn reader_command(&self, request_id: &str, msg: PosMessage) -> Result<JsValue, PosError> {
        let conn = self.connection()?;
        match conn
            .request(request_id, &msg, Some(COMMAND_TIMEOUT_MS))
            .await?
        {
            ReaderMessage::Ack { .. } => Ok(JsValue::UNDEFINED),
            ReaderMessage::Error { code, message, .. } => Err(PosError::Reader {
                code: code.as_str().into(),
                message,
            }),
            other => Err(PosError::ReaderProtocol(format!(
                "expected ack, got {}",
                other.kind()
            ))),
        }
    }

    async fn collect(
        &self,
        amount: u64,
        currency: String,
        offline_behavior: OfflineBehavior,
        capture_method: CaptureMethod,
        metadata: BTreeMap<String, String>,
    ) -> Result<Collected, PosError> {
        let (conn, reader_id) = {
            let r = self.reader.borrow();
            let r = r.as_ref().ok_or(PosError::ReaderNotConnected)?;
            (r.conn.clone(), r.reader.info.id.clone())
        };
        if self.collecting.borrow().is_some() {
            return Err(PosError::CollectInProgress);
        }
        let id = new_payment_id()?;
        *self.collecting.borrow_mut() = Some(id.clone());
        self.callbacks.payment_status("waiting_for_input");
        let msg = PosMessage::Collect {
            request_id: id.clone(),
            amount,
            currency: currency.clone(),
        };
        let reply = conn.request(&id, &msg, None).await;
        *self.collecting.borrow_mut() = None;
        self.callbacks
            .payment_status(if conn.is_open() { "ready" } else { "not_ready" });
        let collected = match reply? {
            ReaderMessage::CardRead {
                card, card_payload, ..
            } => Collected {
                id,
                amount,
                currency,
                capture_method,
                offline_behavior,
                metadata,
                reader_id,
                card,
                card_payload,
            },
            ReaderMessage::Canceled { .. } => return Err(PosError::CollectCanceled),
            ReaderMessage::Error { code, message, .. } => {
                return Err(PosError::Reader {
                    code: code.as_str().into(),
                    message,
                })
            }
            other => {
                return Err(PosError::ReaderProtocol(format!(
                    "expected card_read, got {}",
                    other.kind()
                )))
            }
        };
        let mut held = self.collected.borrow_mut();
        if held.len() >= MAX_HELD_COLLECTED {
            held.remove(0);
        }
        held.push(collected.clone());
        Ok(collected)
    }

    async fn process(&self, p: &Collected) -> Result<PaymentResultJs, PosError> {
        let offline_allowed =
            self.settings.offline_enabled && p.offline_behavior != OfflineBehavior::RequireOnline;
        if p.offline_behavior == OfflineBehavior::ForceOffline {
            return self.store_offline(p).await;
        }
        // Known offline: a short health probe instead of a full request timeout, so the
        // cashier doesn't wait while the backend is down and payments go online once it's back.
        let known_offline =
            self.network.get() == Network::Offline || js::navigator_on_line() == Some(false);
        if offline_allowed && known_offline {
            if self.backend.health_within(QUICK_PROBE_MS).await.is_err() {
                return self.store_offline(p).await;
            }
            self.set_network(Network::Online);
        }
        match self.process_online(p).await {
            Err(e) if e.is_retryable_transport() || matches!(e, PosError::ConnectionToken(_)) => {
                if matches!(
                    e,
                    PosError::BackendUnreachable(_) | PosError::BackendTimeout(_)
                ) {
                    self.set_network(Network::Offline);
                }
                if offline_allowed {
                    // Same id as the online attempt: if that attempt did reach the backend,
                    // forwarding gets its stored answer instead of a second charge.
                    let may_have_arrived = !matches!(
                        e,
                        PosError::BackendUnreachable(_) | PosError::ConnectionToken(_)
                    );
                    match self.store_offline(p).await {
                        Err(stored) if may_have_arrived => Err(PosError::OutcomeUnknown(format!(
                            "{}; storing it offline failed: {}",
                            e.code(),
                            stored.code()
                        ))),
                        other => other,
                    }
                } else {
                    Err(match e {
                        PosError::BackendUnreachable(_) | PosError::BackendTimeout(_) => e,
                        other => PosError::BackendUnreachable(other.to_string()),
                    })
                }
            }
            other => other,
        }
    }

    async fn process_online(&self, p: &Collected) -> Result<PaymentResultJs, PosError> {
        let body = PaymentBody {
            id: p.id.clone(),
            amount: p.amount,
            currency: p.currency.clone(),
            capture_method: p.capture_method,
            card_payload: p.card_payload.clone(),
            card: p.card.clone(),
            reader_id: p.reader_id.clone(),
            offline: None,
            metadata: p.metadata.clone(),
        };
        let token = self.token(false).await?;
        let answer = match self.backend.create_payment(&token, &body).await {
            Err(PosError::Unauthorized(_)) => {
                let token = self.token(true).await?;
                self.backend.create_payment(&token, &body).await
            }
            other => other,
        };
        if answer.is_ok() {
            self.set_network(Network::Online);
        }
        match answer? {
            PaymentOutcome::Approved(ok) => Ok(PaymentResultJs {
                id: p.id.clone(),
                status: ok.status.as_str().into(),
                payment_intent_id: Some(ok.payment_intent),
                amount: p.amount,
                currency: p.currency.clone(),
                card: (&p.card).into(),
                offline_details: None,
            }),
            PaymentOutcome::Declined { decline_code } => {
                Err(PosError::CardDeclined { decline_code })
            }
        }
    }

    async fn store_offline(&self, p: &Collected) -> Result<PaymentResultJs, PosError> {
        if !self.settings.offline_enabled {
            return Err(PosError::OfflineDisabled);
        }
        let outstanding = self.outstanding().await?;
        self.settings
            .limits
            .check(p.amount, &p.currency, &outstanding)?;
        let header = self.store.add_pending(p, js::now_ms()).await?;
        self.publish_status().await;
        Ok(PaymentResultJs {
            id: p.id.clone(),
            status: "stored_offline".into(),
            payment_intent_id: None,
            amount: p.amount,
            currency: p.currency.clone(),
            card: (&p.card).into(),
            offline_details: Some(OfflineDetailsJs {
                stored_at: header.stored_at,
                requires_upload: true,
            }),
        })
    }

    async fn outstanding(&self) -> Result<Outstanding, PosError> {
        let mut out = Outstanding::default();
        for e in self.store.outstanding().await? {
            out.count += 1;
            if let Ok(b) = &e.body {
                *out.amounts.entry(b.currency.clone()).or_default() += b.amount;
            }
        }
        Ok(out)
    }

    async fn status(&self) -> Result<OfflineStatusJs, PosError> {
        let entries = self.store.outstanding().await?;
        let mut status = OfflineStatusJs {
            network_status: self.network.get().as_str(),
            pending_count: 0,
            pending_amounts: BTreeMap::new(),
            oldest_stored_at: None,
            forwarding: self.forwarding.get() > 0,
        };
        for e in &entries {
            status.pending_count += 1;
            if let Ok(b) = &e.body {
                *status
                    .pending_amounts
                    .entry(b.currency.clone())
                    .or_default() += b.amount;
            }
            let at = e.header.stored_at;
            status.oldest_stored_at = Some(status.oldest_stored_at.map_or(at, |o: f64| o.min(at)));
        }
        Ok(status)
    }

    /// Emits `onOfflineStatusChange` when the status differs from the last one emitted.
    async fn publish_status(&self) {
        let Ok(status) = self.status().await else {
            return;
        };
        let changed = self.last_status.borrow().as_ref() != Some(&status);
        if changed {
            *self.last_status.borrow_mut() = Some(status.clone());
            self.callbacks.offline_status(&status);
        }
    }

    /// Confirms connectivity with `/v1/health`, then forwards under the Web Lock.
    async fn forward(self: &Rc<Self>, force: bool) -> Result<ForwardReportJs, PosError> {
        self.forwarding.set(self.forwarding.get() + 1);
        self.publish_status().await;
        let result = self.forward_inner(force).await;
        self.forwarding.set(self.forwarding.get().saturating_sub(1));
        self.publish_status().await;
        result
    }

    async fn forward_inner(self: &Rc<Self>, force: bool) -> Result<ForwardReportJs, PosError> {
        if let Err(e) = self.backend.health().await {
            self.set_network(Network::Offline);
            let remaining = self.outstanding().await?.count;
            return if force {
                Err(match e {
                    PosError::BackendUnreachable(_) | PosError::BackendTimeout(_) => e,
                    other => PosError::BackendUnreachable(other.to_string()),
                })
            } else {
                Ok(ForwardReportJs {
                    remaining,
                    ..ForwardReportJs::default()
                })
            };
        }
        self.set_network(Network::Online);
        if self.outstanding().await?.count == 0 {
            return Ok(ForwardReportJs::default());
        }
        let mut token = self.token(false).await?;
        let mut report = ForwardReportJs::default();
        for round in 0..2 {
            let me = self.clone();
            let t = token.clone();
            let outcome: RunOutcome = js::with_web_lock(LOCK_NAME, move || async move {
                Forwarder {
                    store: &me.store,
                    backend: &me.backend,
                    events: &me.callbacks,
                }
                .run(&t, force)
                .await
            })
            .await?;
            report.forwarded += outcome.report.forwarded;
            report.declined += outcome.report.declined;
            report.failed += outcome.report.failed;
            report.remaining = outcome.report.remaining;
            match outcome.stop {
                Some(Stop::Unauthorized) if round == 0 => {
                    token = self.token(true).await?;
                }
                Some(Stop::Unauthorized) => {
                    return Err(PosError::Unauthorized(
                        "the backend refused a fresh connection token".into(),
                    ));
                }
                Some(Stop::NetworkDown(_)) => {
                    self.set_network(Network::Offline);
                    return Ok(report);
                }
                None => return Ok(report),
            }
        }
        Ok(report)
    }
}

/// For a service worker (or any script without a `Terminal`): forwards what is stored, with
/// the backend URL and token the page saved (sealed) in the same database. Typed in `types.rs`.
#[wasm_bindgen(js_name = forwardStoredPayments, skip_typescript)]
pub fn forward_stored_payments(options: Option<JsValue>) -> Promise {
    promise(async move {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        let db_name = if options.is_object() {
            parse_db_name(&options)?
        } else {
            DEFAULT_DB.to_string()
        };
        let store = Rc::new(Store::open(&db_name).await?);
        let result = forward_saved(store.clone()).await;
        store.close();
        to_js(&result?)
    })
}

async fn forward_saved(store: Rc<Store>) -> Result<ForwardReportJs, PosError> {
    let config = store.load_config().await?.ok_or_else(|| {
        PosError::InvalidArgument(
            "no backend configuration is stored; create a Terminal in a page first".into(),
        )
    })?;
    let token = config
        .connection_token
        .ok_or_else(|| PosError::Unauthorized("no connection token is stored yet".into()))?;
    let backend = Rc::new(Backend::new(&config.backend_url, 8_000));
    backend.health().await?;
    let outcome = js::with_web_lock(LOCK_NAME, move || async move {
        let callbacks = Callbacks::default();
        Forwarder {
            store: &store,
            backend: &backend,
            events: &callbacks,
        }
        .run(&token, true)
        .await
    })
    .await?;
    Ok(outcome.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names() {
        assert_eq!(Network::Online.as_str(), "online");
        assert_eq!(Network::Offline.as_str(), "offline");
        assert_eq!(Network::Unknown.as_str(), "unknown");
    }
}
