//! Shared by the reader tests: a recorder of reader events, the fake WebUSB device
//! (`www/fake-usb.js`, bridged to a pos-sim reader), pos-sim's reader admin endpoints, and
//! waiting for a condition.
#![allow(dead_code)]

use std::cell::RefCell;

use gloo_timers::future::TimeoutFuture;
use std::rc::Rc;

use pos_terminal::events::{ConnectionStatus, Events, PaymentStatus};
use pos_terminal::payment::StoredPayment;
use pos_terminal::reader::{default_usb_filters, Discovered, Discovery, Timeouts};
use pos_terminal::terminal::Terminal;
use pos_terminal::PosError;
use wasm_bindgen::prelude::*;

use crate::common::{fetch_json, get, options, sim_addrs, terminal_with, unique_db};

#[wasm_bindgen(module = "/www/fake-usb.js")]
extern "C" {
    /// A fake USBDevice bridged to a pos-sim reader (see the file for the knobs).
    pub type FakeUsbDevice;
    #[wasm_bindgen(js_name = fakeUsbReader)]
    pub fn fake_usb_reader(ws_url: &str, serial: &str, options: &JsValue) -> FakeUsbDevice;
    #[wasm_bindgen(method)]
    pub fn unplug(this: &FakeUsbDevice);
    #[wasm_bindgen(method)]
    pub fn plug(this: &FakeUsbDevice);
    #[wasm_bindgen(method, getter)]
    pub fn stats(this: &FakeUsbDevice) -> JsValue;
    #[wasm_bindgen(method, getter)]
    pub fn opened(this: &FakeUsbDevice) -> bool;

    pub type FakeUsb;
    #[wasm_bindgen(js_name = installFakeUsb)]
    pub fn install_fake_usb() -> FakeUsb;
    #[wasm_bindgen(method, setter = requestResult)]
    pub fn set_request_result(this: &FakeUsb, value: &str);
    #[wasm_bindgen(js_name = removeUsb)]
    pub fn remove_usb();
}

/// Reader events as a page's callbacks would see them.
#[derive(Default)]
pub struct ReaderEvents {
    pub connection: RefCell<Vec<ConnectionStatus>>,
    pub payment: RefCell<Vec<PaymentStatus>>,
    pub disconnects: RefCell<Vec<String>>,
    /// Ids of the payments `onPaymentForwarded` reported.
    pub forwarded: RefCell<Vec<String>>,
}

impl Events for ReaderEvents {
    fn unexpected_reader_disconnect(&self, error: &PosError) {
        self.disconnects.borrow_mut().push(error.code().to_string());
    }
    fn connection_status(&self, status: ConnectionStatus) {
        self.connection.borrow_mut().push(status);
    }
    fn payment_status(&self, status: PaymentStatus) {
        self.payment.borrow_mut().push(status);
    }
    fn payment_forwarded(&self, payment: &StoredPayment) {
        self.forwarded.borrow_mut().push(payment.id.clone());
    }
}

impl ReaderEvents {
    pub fn last_connection(&self) -> Option<ConnectionStatus> {
        self.connection.borrow().last().copied()
    }

    /// How many times `onPaymentForwarded` reported payment `id`.
    pub fn forwarded_count(&self, id: &str) -> usize {
        self.forwarded.borrow().iter().filter(|f| *f == id).count()
    }
}

/// Short timeouts, so dead readers and reconnections show within a test's patience.
pub fn quick_timeouts() -> Timeouts {
    Timeouts {
        connect_ms: 4_000,
        command_ms: 3_000,
        cancel_ms: 2_000,
        collect_ms: 10_000,
        heartbeat_ms: 500,
        silence_ms: 2_000,
        reconnect_attempts: 6,
        reconnect_base_ms: 300,
    }
}

/// A terminal on pos-sim's backend with a database of its own and quick reader timeouts.
pub async fn terminal(prefix: &str) -> (Terminal, Rc<ReaderEvents>) {
    let (api, _) = sim_addrs();
    let events = Rc::new(ReaderEvents::default());
    let terminal = terminal_with(options(api, &unique_db(prefix)), events.clone()).await;
    terminal.reader_session().set_timeouts(quick_timeouts());
    (terminal, events)
}

/// The permitted USB reader with serial number `serial`.
pub async fn discover_usb(terminal: &Terminal, serial: &str) -> Discovered {
    let found = terminal
        .discover_readers(&Discovery::Usb {
            request_permission: false,
            filters: default_usb_filters(),
        })
        .await
        .unwrap();
    found
        .into_iter()
        .find(|r| r.info.serial_number == serial)
        .expect("the permitted USB reader is listed")
}

pub async fn sleep(ms: u32) {
    TimeoutFuture::new(ms).await;
}

/// Polls `cond` every 50 ms until it holds; panics naming `what` after `ms`.
pub async fn wait_until(what: &str, ms: u32, mut cond: impl FnMut() -> bool) {
    let mut waited = 0;
    while !cond() {
        assert!(waited < ms, "timed out after {ms} ms waiting for {what}");
        sleep(50).await;
        waited += 50;
    }
}

/// `GET /_sim/readers/{id}`: the reader, with its `screen`.
pub async fn reader_view(id: &str) -> JsValue {
    let (_, url) = sim_addrs();
    fetch_json(&format!("{url}/_sim/readers/{id}"), "GET", None).await
}

/// The kind of what the reader's screen shows (`idle`, `cart`, `waiting_for_card`, `result`).
pub async fn screen_kind(id: &str) -> String {
    get(&get(&reader_view(id).await, "screen"), "kind")
        .as_string()
        .unwrap_or_default()
}

pub async fn sim_post(path: &str, body: &str) -> JsValue {
    let (_, url) = sim_addrs();
    fetch_json(&format!("{url}{path}"), "POST", Some(body)).await
}

/// Makes pos-sim's reader `id` misbehave once (`garbage`, `truncated`, `huge`, …).
pub async fn fault(id: &str, kind: &str) {
    sim_post(
        &format!("/_sim/readers/{id}/fault"),
        &format!(r#"{{"kind":"{kind}"}}"#),
    )
    .await;
}

/// Drops the POS's socket at pos-sim's reader `id` (the reader process dies, as far as the
/// POS can tell).
pub async fn kill(id: &str) {
    sim_post(&format!("/_sim/readers/{id}/disconnect"), "{}").await;
}

/// Waits until pos-sim's reader `id` is free (its previous POS went away).
pub async fn wait_free(id: &str) {
    for _ in 0..100 {
        if get(&reader_view(id).await, "connected") == JsValue::FALSE {
            return;
        }
        sleep(50).await;
    }
    panic!("reader {id} stayed connected");
}
