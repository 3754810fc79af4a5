//! Simulated internet smart readers: one WebSocket endpoint each, speaking the reader
//! protocol of `pos_protocol::reader` (see `docs/reader-protocol.md`). This file holds the
//! readers' state and what the admin side does to them; `session` speaks the protocol.

mod session;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pos_protocol::reader::{
    Capabilities, Cart, LinkStatus, ReaderInfo, ReaderMessage, ReaderStatus,
};
use pos_protocol::EntryMode;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::api::ApiState;
use crate::http_util::error;
use crate::reader_link::{self, LinkContext};
use crate::reader_store::{ReaderStore, Report, Summary};

/// The card every reader presents unless told otherwise.
pub const DEFAULT_CARD: &str = "4242424242424242";
/// How long a rebooting reader refuses connections.
pub const BOOT_TIME: Duration = Duration::from_millis(500);
/// What pos-sim's readers can do: process over their own link, and store.
pub const CAPABILITIES: Capabilities = Capabilities {
    process: true,
    store: true,
};
/// How often a paired reader pings the POS.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// WebSocket messages above this are refused by the transport (the connection closes);
/// anything between `pos_protocol::reader::MAX_POS_FRAME_BYTES` and this gets an `invalid_message` error instead.
const TRANSPORT_MAX_MESSAGE: usize = 1024 * 1024;

/// One simulated reader.
pub struct Reader {
    pub id: String,
    pub label: String,
    pub serial: String,
    pub url: String,
    pub registration_code: String,
    slot: Mutex<Slot>,
    /// The reader's own store (shared file, rows per reader).
    store: Arc<ReaderStore>,
    /// Wakes the forwarding loop: something was stored, the link came back, boot ended.
    wake: Notify,
}

/// The card the reader presents at the next read, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextCard {
    pub number: String,
    pub entry: EntryMode,
    pub pin: bool,
}

impl NextCard {
    /// `number` read with `entry`; `pin` defaults to true for chip, false otherwise.
    pub fn new(number: String, entry: Option<EntryMode>, pin: Option<bool>) -> Self {
        let entry = entry.unwrap_or(EntryMode::Chip);
        Self {
            number,
            entry,
            pin: pin.unwrap_or(entry == EntryMode::Chip),
        }
    }
}

#[derive(Default)]
struct Slot {
    /// The reader's own link to the backend is cut (`/_sim/readers/{id}/network`).
    link_down: bool,
    /// ISO 3166-1 alpha-2, upper case.
    country: String,
    /// Rebooting until then: connections are refused and nothing is forwarded.
    booting_until: Option<Instant>,
    /// The connected POS, if any.
    session: Option<SessionSlot>,
    display: Option<Cart>,
    screen: Screen,
    /// One-shot card for the next read.
    next_card: Option<NextCard>,
    /// One-shot misbehaviour for tests (`POST /_sim/readers/{id}/fault`).
    fault: Option<Fault>,
}

struct SessionSlot {
    id: u64,
    control: mpsc::UnboundedSender<Control>,
}

/// What the admin side (or a POS taking over) tells the session holding the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Control {
    /// The store or the link changed: send `store_status`.
    StoreChanged,
    /// A stored payment was forwarded: send `forwarded`.
    Report(Report),
    /// Drop the socket without a close frame.
    Kill,
    /// Another POS took the reader: say `taken_over` and close.
    TakenOver,
    /// The customer pressed cancel on the reader.
    CustomerCancel,
}

/// What the customer sees on the reader's screen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Screen {
    #[default]
    Idle,
    Cart {
        cart: Cart,
    },
    WaitingForCard {
        amount: u64,
        currency: String,
    },
    /// The last collect's end: `card_read` (with the card's last 4), `canceled` or `failed`.
    Result {
        outcome: &'static str,
        last4: Option<String>,
    },
}

/// Ways a simulated reader misbehaves once, for the SDK's hostile-reader tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// At the next collect, first send bytes that are not JSON.
    Garbage,
    /// At the next collect, first send half a JSON object.
    Truncated,
    /// At the next collect, first send a 5 MB frame.
    Huge,
    /// At the next collect, first send a `card_read` for another request id.
    WrongRequest,
    /// The next `hello_ack` claims protocol version 99.
    WrongVersion,
    /// From the next collect on, answer nothing (not even pings) until the POS goes away.
    Silent,
}

/// A reader as `/_sim/readers` and `/_sim/readers/{id}` show it.
#[derive(Debug, Clone, Serialize)]
pub struct ReaderView {
    pub id: String,
    pub label: String,
    pub url: String,
    pub connected: bool,
    pub display: Option<Cart>,
    /// What the customer sees now.
    pub screen: Screen,
    /// Last four digits of the card the reader presents next.
    pub next_card: String,
    /// The code this reader shows for registration (`hello.registration_code`).
    pub registration_code: String,
    /// The reader's own link to the backend: `online` or `offline`.
    pub link: &'static str,
    /// Payments stored on the reader, not yet forwarded.
    pub stored: Summary,
    /// The country of the reader's location.
    pub country: String,
    /// Rebooting: connections are refused.
    pub booting: bool,
}

/// A reader as the READY line and `/_sim/config` list it.
#[derive(Debug, Clone, Serialize)]
pub struct ReaderAddress {
    pub id: String,
    pub label: String,
    pub url: String,
}

impl Reader {
    fn new(index: usize, ws_base: &str, store: Arc<ReaderStore>, country: &str) -> Self {
        let id = format!("rdr_sim_{index}");
        Self {
            url: format!("{ws_base}/readers/{id}"),
            id,
            label: format!("Simulated reader {index}"),
            serial: format!("SIM-{index:04}"),
            registration_code: format!("sim-{index}-register"),
            slot: Mutex::new(Slot {
                country: country.to_owned(),
                ..Slot::default()
            }),
            store,
            wake: Notify::new(),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        // The slot holds plain data; a panic elsewhere cannot leave it inconsistent.
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn info(&self) -> ReaderInfo {
        ReaderInfo {
            id: self.id.clone(),
            label: self.label.clone(),
            serial_number: self.serial.clone(),
            device_type: String::from("simulated_wisepos_e"),
            firmware_version: String::from("1.0.0"),
            country: Some(self.country()),
        }
    }

    /// The country of the reader's location.
    pub fn country(&self) -> String {
        self.slot().country.clone()
    }

    /// Moves the reader. The caller validated `country` (two ASCII letters).
    pub fn set_country(&self, country: &str) {
        self.slot().country = country.to_ascii_uppercase();
    }

    /// The reader's own link to the backend is up.
    pub fn link_up(&self) -> bool {
        !self.slot().link_down
    }

    fn link_status(&self) -> LinkStatus {
        if self.link_up() {
            LinkStatus::Online
        } else {
            LinkStatus::Offline
        }
    }

    /// Cuts or restores the reader's own link; the POS hears of it (`store_status`).
    pub fn set_link_down(&self, down: bool) {
        let changed = {
            let mut slot = self.slot();
            let changed = slot.link_down != down;
            slot.link_down = down;
            changed
        };
        if changed {
            eprintln!(
                "[pos-sim] reader {}: link {}",
                self.id,
                if down { "down" } else { "up" }
            );
            self.store_changed();
            self.wake_forwarder();
        }
    }

    /// Rebooting: connections refused, nothing forwarded.
    pub fn is_booting(&self) -> bool {
        self.slot()
            .booting_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// It may forward now: link up and not booting.
    pub fn can_forward(&self) -> bool {
        self.link_up() && !self.is_booting()
    }

    /// Restarts the reader: the POS's socket drops, connections are refused for
    /// [`BOOT_TIME`], what it held in memory (display, next card, fault) is lost; its store,
    /// link and location stay. Forwarding resumes after boot.
    pub fn reboot(self: &Arc<Self>) {
        {
            let mut slot = self.slot();
            slot.booting_until = Some(Instant::now() + BOOT_TIME);
            slot.display = None;
            slot.screen = Screen::Idle;
            slot.next_card = None;
            slot.fault = None;
        }
        eprintln!("[pos-sim] reader {}: rebooting", self.id);
        self.tell(Control::Kill);
        let reader = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(BOOT_TIME).await;
            eprintln!("[pos-sim] reader {}: booted", reader.id);
            reader.wake_forwarder();
        });
    }

    /// Wakes the forwarding loop.
    pub fn wake_forwarder(&self) {
        self.wake.notify_one();
    }

    /// Resolves when [`Reader::wake_forwarder`] was called (now or since the last wait).
    pub async fn forwarder_woken(&self) {
        self.wake.notified().await;
    }

    /// The store or link changed: the connected POS gets a `store_status`.
    pub fn store_changed(&self) {
        self.tell(Control::StoreChanged);
    }

    /// A stored payment was forwarded: the connected POS gets a `forwarded` (it is also kept
    /// until acknowledged, and repeated after each hello).
    pub fn report(&self, report: Report) {
        self.tell(Control::Report(report));
    }

    /// Pending payments, for `store_status` and the admin view.
    pub fn stored_summary(&self) -> Summary {
        match self.store.summary(&self.id) {
            Ok(summary) => summary,
            Err(e) => {
                eprintln!(
                    "[pos-sim] reader {}: reading its store failed: {e}",
                    self.id
                );
                Summary::default()
            }
        }
    }

    fn store_status(&self, request_id: Option<String>) -> ReaderMessage {
        let summary = self.stored_summary();
        ReaderMessage::StoreStatus {
            request_id,
            link: self.link_status(),
            pending_count: summary.count,
            pending_amounts: summary.amounts.into_iter().collect(),
        }
    }

    pub fn address(&self) -> ReaderAddress {
        ReaderAddress {
            id: self.id.clone(),
            label: self.label.clone(),
            url: self.url.clone(),
        }
    }

    pub fn view(&self) -> ReaderView {
        let stored = self.stored_summary();
        let booting = self.is_booting();
        let slot = self.slot();
        let next = slot
            .next_card
            .as_ref()
            .map_or(DEFAULT_CARD, |card| card.number.as_str());
        ReaderView {
            link: if slot.link_down { "offline" } else { "online" },
            stored,
            country: slot.country.clone(),
            booting,
            id: self.id.clone(),
            label: self.label.clone(),
            url: self.url.clone(),
            connected: slot.session.is_some(),
            display: slot.display.clone(),
            screen: slot.screen.clone(),
            next_card: last4(next).to_owned(),
            registration_code: self.registration_code.clone(),
        }
    }

    /// Sets the one-shot card for the next read. The caller validated the number.
    pub fn set_next_card(&self, card: NextCard) {
        self.slot().next_card = Some(card);
    }

    /// Sets the one-shot misbehaviour.
    pub fn set_fault(&self, fault: Fault) {
        self.slot().fault = Some(fault);
    }

    fn take_fault_if(&self, pick: impl Fn(Fault) -> bool) -> Option<Fault> {
        let mut slot = self.slot();
        let fault = slot.fault.filter(|f| pick(*f))?;
        slot.fault = None;
        Some(fault)
    }

    fn tell(&self, control: Control) -> bool {
        self.slot()
            .session
            .as_ref()
            .is_some_and(|s| s.control.send(control).is_ok())
    }

    /// Drops the connected POS's socket without a close frame. `false` if none was connected.
    pub fn kill_session(&self) -> bool {
        self.tell(Control::Kill)
    }

    /// Sends the connected POS a `forwarded` report that this reader's store does not back
    /// (a lying reader, for the SDK's tests). `false` if no POS is connected.
    pub fn send_unbacked_report(&self, report: Report) -> bool {
        self.tell(Control::Report(report))
    }

    /// The customer presses cancel on the reader. `false` if no POS is connected.
    pub fn customer_cancel(&self) -> bool {
        self.tell(Control::CustomerCancel)
    }

    fn set_screen(&self, screen: Screen) {
        self.slot().screen = screen;
    }

    fn status(&self) -> ReaderStatus {
        if self.slot().session.is_some() {
            ReaderStatus::InUse
        } else {
            ReaderStatus::Online
        }
    }

    fn take_card(&self) -> NextCard {
        self.slot()
            .next_card
            .take()
            .unwrap_or_else(|| NextCard::new(DEFAULT_CARD.to_owned(), None, None))
    }

    fn set_display(&self, cart: Option<Cart>) {
        let mut slot = self.slot();
        slot.screen = match &cart {
            Some(cart) => Screen::Cart { cart: cart.clone() },
            None => Screen::Idle,
        };
        slot.display = cart;
    }

    /// Claims the reader for a session; `None` when another POS holds it and `take_over` is
    /// false. Taking over tells the holder `taken_over`.
    fn claim(&self, session_id: u64, take_over: bool) -> Option<mpsc::UnboundedReceiver<Control>> {
        let mut slot = self.slot();
        if let Some(holder) = &slot.session {
            if !take_over {
                return None;
            }
            let _ = holder.control.send(Control::TakenOver);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        slot.session = Some(SessionSlot {
            id: session_id,
            control: tx,
        });
        Some(rx)
    }

    fn release(&self, session_id: u64) {
        let mut slot = self.slot();
        if slot.session.as_ref().map(|s| s.id) == Some(session_id) {
            slot.session = None;
            // Back to the idle screen when the POS goes away.
            slot.display = None;
            slot.screen = Screen::Idle;
        }
    }
}

fn last4(number: &str) -> &str {
    number.get(number.len().saturating_sub(4)..).unwrap_or("")
}

/// What [`Readers::new`] needs.
pub struct ReadersSetup {
    pub count: usize,
    /// e.g. `ws://127.0.0.1:8787`.
    pub ws_base: String,
    /// The backend the readers' own links reach (in-process).
    pub api: ApiState,
    /// The readers' durable store.
    pub store: Arc<ReaderStore>,
    pub tap_delay: Duration,
    /// Country of every reader's location at start.
    pub country: String,
}

/// All readers, plus what their sessions need.
pub struct Readers {
    readers: Vec<Arc<Reader>>,
    link: Arc<LinkContext>,
    tap_delay: Duration,
    next_session: std::sync::atomic::AtomicU64,
}

impl Readers {
    pub fn new(setup: ReadersSetup) -> Self {
        Self {
            readers: (1..=setup.count)
                .map(|i| {
                    Arc::new(Reader::new(
                        i,
                        &setup.ws_base,
                        setup.store.clone(),
                        &setup.country,
                    ))
                })
                .collect(),
            link: Arc::new(LinkContext {
                api: setup.api,
                store: setup.store,
            }),
            tap_delay: setup.tap_delay,
            next_session: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Starts each reader's forwarding loop (needs a tokio runtime).
    pub fn start_forwarders(&self) {
        for reader in &self.readers {
            tokio::spawn(reader_link::forward_loop(self.link.clone(), reader.clone()));
        }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Reader>> {
        self.readers.iter().find(|r| r.id == id)
    }

    pub fn all(&self) -> &[Arc<Reader>] {
        &self.readers
    }

    pub fn addresses(&self) -> Vec<ReaderAddress> {
        self.readers.iter().map(|r| r.address()).collect()
    }
}

/// `GET /readers/{id}`: the WebSocket upgrade.
pub async fn upgrade(
    State(readers): State<Arc<Readers>>,
    Path(id): Path<String>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Some(reader) = readers.get(&id).cloned() else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such reader");
    };
    if reader.is_booting() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "reader_booting",
            "the reader is restarting",
        );
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    ws.max_message_size(TRANSPORT_MAX_MESSAGE)
        .max_frame_size(TRANSPORT_MAX_MESSAGE)
        .on_upgrade(move |socket| session::run_socket(readers, reader, socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readers() -> Readers {
        let store = Arc::new(crate::store::Store::open_in_memory().expect("store"));
        let card_key = store.card_key().expect("key");
        Readers::new(ReadersSetup {
            count: 2,
            ws_base: "ws://127.0.0.1:1".into(),
            api: ApiState { store, card_key },
            store: Arc::new(ReaderStore::open_in_memory().expect("reader store")),
            tap_delay: Duration::from_millis(1),
            country: "US".into(),
        })
    }

    #[test]
    fn readers_are_named_in_order() {
        let r = readers();
        let a = r.addresses();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].id, "rdr_sim_1");
        assert_eq!(a[1].label, "Simulated reader 2");
        assert_eq!(a[1].url, "ws://127.0.0.1:1/readers/rdr_sim_2");
        let info = r.get("rdr_sim_1").expect("reader").info();
        assert_eq!(info.serial_number, "SIM-0001");
        assert_eq!(info.device_type, "simulated_wisepos_e");
        assert!(r.get("rdr_sim_3").is_none());
    }

    #[test]
    fn next_card_is_one_shot() {
        let r = readers();
        let reader = r.get("rdr_sim_1").expect("reader");
        assert_eq!(reader.view().next_card, "4242");
        reader.set_next_card(NextCard::new(
            "4000000000000002".into(),
            Some(EntryMode::Swipe),
            None,
        ));
        assert_eq!(reader.view().next_card, "0002");
        let card = reader.take_card();
        assert_eq!(
            (card.number.as_str(), card.entry, card.pin),
            ("4000000000000002", EntryMode::Swipe, false)
        );
        let card = reader.take_card();
        assert_eq!(
            (card.number.as_str(), card.entry, card.pin),
            (DEFAULT_CARD, EntryMode::Chip, true)
        );
    }

    #[test]
    fn one_pos_at_a_time() {
        let r = readers();
        let reader = r.get("rdr_sim_1").expect("reader");
        let _control = reader.claim(1, false).expect("first claim");
        assert!(reader.claim(2, false).is_none());
        assert!(reader.view().connected);
        assert_eq!(reader.status(), ReaderStatus::InUse);
        reader.release(2); // not the holder: no effect
        assert!(reader.view().connected);
        reader.release(1);
        assert!(!reader.view().connected);
        assert!(reader.claim(3, false).is_some());
    }

    #[test]
    fn taking_over_tells_the_holder() {
        let r = readers();
        let reader = r.get("rdr_sim_1").expect("reader");
        let mut first = reader.claim(1, false).expect("first claim");
        let _second = reader.claim(2, true).expect("take over");
        assert_eq!(first.try_recv(), Ok(Control::TakenOver));
        reader.release(1); // the old holder leaving does not free the new one's claim
        assert!(reader.view().connected);
    }

    #[test]
    fn kill_and_customer_cancel_reach_the_session() {
        let r = readers();
        let reader = r.get("rdr_sim_2").expect("reader");
        assert!(!reader.kill_session());
        let mut control = reader.claim(1, false).expect("claim");
        assert!(reader.kill_session());
        assert!(reader.customer_cancel());
        assert_eq!(control.try_recv(), Ok(Control::Kill));
        assert_eq!(control.try_recv(), Ok(Control::CustomerCancel));
    }

    #[test]
    fn the_screen_follows_display_and_release() {
        let r = readers();
        let reader = r.get("rdr_sim_1").expect("reader");
        let _control = reader.claim(1, false).expect("claim");
        let cart = Cart {
            line_items: vec![],
            tax: 0,
            total: 100,
            currency: "usd".into(),
        };
        reader.set_display(Some(cart.clone()));
        assert_eq!(reader.view().screen, Screen::Cart { cart });
        reader.release(1);
        assert_eq!(reader.view().screen, Screen::Idle);
    }

    #[test]
    fn faults_are_one_shot_and_picked_by_kind() {
        let r = readers();
        let reader = r.get("rdr_sim_1").expect("reader");
        reader.set_fault(Fault::WrongVersion);
        assert_eq!(reader.take_fault_if(|f| f != Fault::WrongVersion), None);
        assert_eq!(
            reader.take_fault_if(|f| f == Fault::WrongVersion),
            Some(Fault::WrongVersion)
        );
        assert_eq!(reader.take_fault_if(|_| true), None);
    }
}
