//! Shared by the browser tests: fixtures, raw IndexedDB access below the SDK, and a
//! terminal of the Rust core connected to the running pos-sim (`cargo xtask test` starts one
//! and passes its addresses at compile time as POS_SIM_API / POS_SIM_URL).
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use pos_protocol::backend::CaptureMethod;
use pos_protocol::{CardSummary, SortedMap};
use pos_terminal::auth::TokenFuture;
use pos_terminal::error::ReaderError;
use pos_terminal::events::Events;
use pos_terminal::forward_policy::ForwardingFailure;
use pos_terminal::options::{OfflineOptions, Settings, TerminalOptions};
use pos_terminal::payment::{
    new_payment_id, Collected, OfflineBehavior, PaymentRequest, PaymentResult, StoredPayment,
};
use pos_terminal::reader::Discovery;
use pos_terminal::terminal::Terminal;
use pos_terminal::PosError;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

pub fn unique_db(prefix: &str) -> String {
    format!("{prefix}-{}", new_payment_id().unwrap())
}

pub fn collected(amount: u64) -> Collected {
    Collected {
        id: new_payment_id().unwrap(),
        amount,
        currency: "usd".into(),
        capture_method: CaptureMethod::Automatic,
        offline_behavior: OfflineBehavior::ForceOffline,
        metadata: SortedMap::from([("order".to_string(), "secret-order-77".to_string())]),
        reader_id: "rdr_test".into(),
        card: CardSummary {
            brand: "visa".into(),
            last4: "4242".into(),
            exp_month: 12,
            exp_year: 2031,
            entry_mode: Some(pos_protocol::EntryMode::Chip),
            pin_verified: true,
        },
        card_payload: "PAYLOAD-CIPHERTEXT-FROM-READER".into(),
    }
}

pub fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &k.into()).unwrap()
}

/// Calls a JS function returning a promise, and awaits it.
pub async fn call(f: &Function, args: &[JsValue]) -> JsValue {
    let arr = Array::new();
    for a in args {
        arr.push(a);
    }
    let p: Promise = f.apply(&JsValue::NULL, &arr).unwrap().unchecked_into();
    JsFuture::from(p).await.unwrap()
}

/// Reads the database back raw, below the SDK: { payments: [...], kek, dek, config }.
pub fn dump_fn() -> Function {
    Function::new_with_args(
        "name",
        r#"return new Promise((res, rej) => {
            const r = indexedDB.open(name);
            r.onerror = () => rej(r.error);
            r.onsuccess = () => {
              const db = r.result, out = {};
              const tx = db.transaction(['payments', 'keys']);
              tx.objectStore('payments').getAll().onsuccess = e => { out.payments = e.target.result; };
              const ks = tx.objectStore('keys');
              ks.get('kek').onsuccess = e => { out.kek = e.target.result; };
              ks.get('dek').onsuccess = e => { out.dek = e.target.result; };
              ks.get('config').onsuccess = e => { out.config = e.target.result; };
              tx.oncomplete = () => { db.close(); res(out); };
              tx.onerror = () => rej(tx.error);
            };
          });"#,
    )
}

/// Flips one byte of a record's sealed bytes, below the SDK.
pub fn tamper_fn() -> Function {
    Function::new_with_args(
        "name, id, index",
        r#"return new Promise((res, rej) => {
            const r = indexedDB.open(name);
            r.onerror = () => rej(r.error);
            r.onsuccess = () => {
              const db = r.result;
              const tx = db.transaction('payments', 'readwrite');
              const st = tx.objectStore('payments');
              st.get(id).onsuccess = e => {
                const rec = e.target.result;
                const bytes = new Uint8Array(rec.sealed);
                bytes[index % bytes.length] ^= 1;
                rec.sealed = bytes;
                st.put(rec);
              };
              tx.oncomplete = () => { db.close(); res(true); };
              tx.onerror = () => rej(tx.error);
            };
          });"#,
    )
}

pub fn bytes_to_text(v: &JsValue) -> String {
    let bytes = Uint8Array::new(v).to_vec();
    String::from_utf8_lossy(&bytes).into_owned()
}

// ---- against a running pos-sim ----

/// The running pos-sim's addresses, set at compile time by `cargo xtask test`.
pub fn sim_addrs() -> (&'static str, &'static str) {
    match (option_env!("POS_SIM_API"), option_env!("POS_SIM_URL")) {
        (Some(api), Some(url)) => (api, url.trim_end_matches('/')),
        _ => panic!("POS_SIM_API/POS_SIM_URL not set at compile time: run `cargo xtask test`"),
    }
}

pub async fn fetch_json(url: &str, method: &str, body: Option<&str>) -> JsValue {
    let f = Function::new_with_args(
        "url, method, body",
        r#"return fetch(url, { method, body: body || undefined,
             headers: body ? { 'content-type': 'application/json' } : {} }).then(r => r.json());"#,
    );
    call(
        &f,
        &[
            url.into(),
            method.into(),
            body.map(JsValue::from).unwrap_or(JsValue::NULL),
        ],
    )
    .await
}

/// What pos-sim received for payment `id`: `(requests, the record)`, if anything.
pub async fn received(url: &str, id: &str) -> Option<JsValue> {
    let all: Array = fetch_json(&format!("{url}/_sim/payments"), "GET", None)
        .await
        .unchecked_into();
    let mine: Vec<JsValue> = all
        .iter()
        .filter(|p| get(p, "key").as_string().as_deref() == Some(id))
        .collect();
    assert!(mine.len() <= 1, "one record per key at the backend");
    mine.into_iter().next()
}

/// The events a terminal reported, as a page's callbacks would see them.
#[derive(Default)]
pub struct Recorder {
    pub forwarded: RefCell<Vec<StoredPayment>>,
    pub failures: RefCell<Vec<ForwardingFailure>>,
}

impl Events for Recorder {
    fn payment_forwarded(&self, p: &StoredPayment) {
        self.forwarded.borrow_mut().push(p.clone());
    }
    fn forwarding_failure(&self, f: &ForwardingFailure) {
        self.failures.borrow_mut().push(f.clone());
    }
}

/// Cuts or restores the own link to the backend of pos-sim's reader `reader` (pos-sim's
/// readers process payments themselves: scenarios about what the SDK does alone cut it).
pub async fn reader_link(reader: &str, down: bool) {
    let (_, url) = sim_addrs();
    let body = format!(r#"{{"down":{down}}}"#);
    fetch_json(
        &format!("{url}/_sim/readers/{reader}/network"),
        "POST",
        Some(&body),
    )
    .await;
}

/// Cuts or restores pos-sim's backend network (its API refuses every request while down).
pub async fn sim_network(down: bool) {
    let (_, url) = sim_addrs();
    let body = format!(r#"{{"down":{down}}}"#);
    fetch_json(&format!("{url}/_sim/network"), "POST", Some(&body)).await;
}

/// Options for a terminal on pos-sim's backend, with a database of its own and no timer.
pub fn options(api: &str, db: &str) -> TerminalOptions {
    TerminalOptions {
        backend_url: Some(api.to_string()),
        database_name: Some(db.to_string()),
        forward_interval_ms: Some(3_600_000.0),
        ..TerminalOptions::default()
    }
}

pub fn offline_limits(json: &str) -> Option<OfflineOptions> {
    Some(serde_json::from_str(json).unwrap())
}

/// Connection tokens from pos-sim, as a merchant's server would hand them out.
pub fn tokens(api: &str) -> Rc<dyn pos_terminal::auth::TokenSource> {
    let api = api.to_string();
    Rc::new(move || -> TokenFuture {
        let api = api.clone();
        Box::pin(async move {
            let body = fetch_json(&format!("{api}/v1/connection_tokens"), "POST", None).await;
            get(&body, "secret")
                .as_string()
                .ok_or_else(|| PosError::ConnectionToken("no secret".into()))
        })
    })
}

/// The WebSocket address of pos-sim's reader `reader`.
pub fn reader_ws_url(reader: &str) -> String {
    let (_, url) = sim_addrs();
    format!("{}/readers/{reader}", url.replacen("http://", "ws://", 1))
}

/// A terminal of the Rust core with `opts` on pos-sim's backend, reporting to `events`.
pub async fn terminal_with<E: Events + 'static>(opts: TerminalOptions, events: Rc<E>) -> Terminal {
    let (api, _) = sim_addrs();
    terminal_with_tokens(opts, tokens(api), events).await
}

/// Like `terminal_with`, with connection tokens from `source`.
pub async fn terminal_with_tokens<E: Events + 'static>(
    opts: TerminalOptions,
    source: Rc<dyn pos_terminal::auth::TokenSource>,
    events: Rc<E>,
) -> Terminal {
    let settings = Settings::from_options(opts).unwrap();
    Terminal::create(settings, source, events).await.unwrap()
}

/// A terminal of the Rust core with `opts`, connected to `reader` of the running pos-sim.
pub async fn connected_terminal(opts: TerminalOptions, reader: &str) -> (Terminal, Rc<Recorder>) {
    let events = Rc::new(Recorder::default());
    let terminal = terminal_with(opts, events.clone()).await;
    let found = terminal
        .discover_readers(&Discovery::WebSocket {
            urls: vec![reader_ws_url(reader)],
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "the simulated reader is discovered");
    // A reader released by a terminal closed a moment ago may still be busy on pos-sim's side.
    for attempt in 0.. {
        match terminal.connect_reader(&found[0].address, false).await {
            Ok(_) => break,
            Err(PosError::Reader(ReaderError::Busy)) if attempt < 20 => {
                gloo_timers::future::TimeoutFuture::new(250).await;
            }
            Err(e) => panic!("connecting {reader}: {e}"),
        }
    }
    (terminal, events)
}

pub fn request(amount: f64, behavior: Option<OfflineBehavior>) -> PaymentRequest {
    PaymentRequest {
        amount,
        currency: "usd".into(),
        offline_behavior: behavior,
        capture_method: None,
        metadata: None,
    }
}

/// Connects the in-page simulated reader (no pos-sim reader, no pairing, no link of its
/// own), its card tapped 20 ms after a collect starts.
pub async fn connect_simulated(terminal: &Terminal) {
    let found = terminal
        .discover_readers(&Discovery::Simulated)
        .await
        .unwrap();
    terminal
        .connect_reader(&found[0].address, false)
        .await
        .unwrap();
    terminal
        .reader_session()
        .simulator()
        .borrow_mut()
        .tap_delay_ms = 20;
}

/// Collects a card for `req` and processes it.
pub async fn pay(terminal: &Terminal, req: PaymentRequest) -> Result<PaymentResult, PosError> {
    let collected = terminal.collect_payment_method(req).await?;
    terminal.process_payment(&collected.id).await
}
