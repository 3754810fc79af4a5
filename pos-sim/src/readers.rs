//! Simulated internet smart readers: one WebSocket endpoint each, speaking the reader
//! protocol of `pos_protocol::reader` (see `docs/reader-protocol.md`).

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pos_protocol::backend::PaymentBody;
use pos_protocol::outcomes::brand_of;
use pos_protocol::reader::{
    parse_pos_frame, to_frame, CancelSource, Capabilities, CardEventKind, Cart, HelloIntent,
    LinkStatus, PosMessage, ProcessMode, ReaderErrorCode, ReaderInfo, ReaderMessage, ReaderStatus,
    PROTOCOL_VERSION,
};
use pos_protocol::{CardSummary, EntryMode};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};
use tokio::time::{Instant, Sleep};

use crate::api::ApiState;
use crate::card_crypto::CardData;
use crate::http_util::error;
use crate::reader_link::{self, LinkContext};
use crate::reader_store::{ReaderStore, Report, Summary};
use crate::util::current_year;

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
/// anything between `pos_protocol::reader::MAX_FRAME_BYTES` and this gets an `invalid_message` error instead.
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
            pending_amounts: summary.amounts,
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
        .on_upgrade(move |socket| run_socket(readers, reader, socket))
}

async fn run_socket(readers: Arc<Readers>, reader: Arc<Reader>, mut socket: WebSocket) {
    let session_id = readers
        .next_session
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let end = Session::new(&readers, &reader, &mut socket, session_id)
        .run()
        .await;
    reader.release(session_id);
    match end {
        End::Closed => eprintln!("[pos-sim] reader {}: POS disconnected", reader.id),
        End::Killed => eprintln!("[pos-sim] reader {}: socket dropped (admin)", reader.id),
        End::Refused(code, reason) => {
            close(&mut socket, code, reason).await;
            eprintln!("[pos-sim] reader {}: closed ({reason})", reader.id);
        }
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

fn error_msg(request_id: Option<String>, code: ReaderErrorCode, message: &str) -> ReaderMessage {
    ReaderMessage::Error {
        request_id,
        code,
        message: message.to_owned(),
    }
}

/// Why a session loop ended.
enum End {
    /// The POS closed or the socket failed.
    Closed,
    /// `/_sim/readers/{id}/disconnect`: drop the socket without a close frame.
    Killed,
    /// The reader refuses the POS: send this close code and reason.
    Refused(u16, &'static str),
}

struct ActiveCollect {
    request_id: String,
    amount: u64,
    currency: String,
}

struct Session<'a> {
    readers: &'a Readers,
    reader: &'a Reader,
    socket: &'a mut WebSocket,
    id: u64,
    paired: bool,
    /// Set once paired: what the admin side or a POS taking over tells this session.
    control: Option<mpsc::UnboundedReceiver<Control>>,
    active: Option<ActiveCollect>,
    tap: Pin<Box<Sleep>>,
    ping_nonce: u64,
    /// `Fault::Silent`: read the socket (to notice the POS leaving) but answer nothing.
    silent: bool,
}

async fn next_control(control: &mut Option<mpsc::UnboundedReceiver<Control>>) -> Control {
    match control {
        // A closed channel (the reader was released) never wakes the session again.
        Some(rx) => match rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

impl<'a> Session<'a> {
    fn new(readers: &'a Readers, reader: &'a Reader, socket: &'a mut WebSocket, id: u64) -> Self {
        Self {
            readers,
            reader,
            socket,
            id,
            paired: false,
            control: None,
            active: None,
            tap: Box::pin(tokio::time::sleep(Duration::ZERO)),
            ping_nonce: 0,
            silent: false,
        }
    }

    async fn run(mut self) -> End {
        let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
        loop {
            let collecting = self.active.is_some() && !self.silent;
            let paired = self.paired && !self.silent;
            tokio::select! {
                control = next_control(&mut self.control) => {
                    if let Step::End(end) = self.on_control(control).await {
                        return end;
                    }
                }
                incoming = self.socket.recv() => {
                    let step = match incoming {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return End::Closed,
                        Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
                        Some(Ok(Message::Binary(_))) => {
                            self.log_in("binary", None);
                            self.send(&error_msg(
                                None,
                                ReaderErrorCode::InvalidMessage,
                                "binary frames are not part of the protocol",
                            ))
                            .await
                        }
                        // WebSocket-level ping/pong is answered by the transport.
                        Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => Step::Continue,
                    };
                    match step {
                        Step::Continue => {}
                        Step::End(end) => return end,
                    }
                }
                () = self.tap.as_mut(), if collecting => {
                    if let Step::End(end) = self.card_read().await {
                        return end;
                    }
                }
                _ = heartbeat.tick(), if paired => {
                    self.ping_nonce += 1;
                    let ping = ReaderMessage::Ping { nonce: self.ping_nonce };
                    if let Step::End(end) = self.send(&ping).await {
                        return end;
                    }
                }
            }
        }
    }

    async fn on_control(&mut self, control: Control) -> Step {
        match control {
            Control::Kill => Step::End(End::Killed),
            Control::StoreChanged => self.send(&self.reader.store_status(None)).await,
            Control::Report(report) => self.send(&forwarded_message(report)).await,
            Control::TakenOver => {
                let _ = self
                    .send(&error_msg(
                        None,
                        ReaderErrorCode::TakenOver,
                        "another POS took this reader over",
                    ))
                    .await;
                Step::End(End::Refused(1008, "taken_over"))
            }
            Control::CustomerCancel => {
                let Some(active) = self.active.take() else {
                    return Step::Continue;
                };
                self.reader.set_screen(Screen::Result {
                    outcome: "canceled",
                    last4: None,
                });
                self.send(&ReaderMessage::Canceled {
                    request_id: active.request_id,
                    by: CancelSource::Customer,
                })
                .await
            }
        }
    }

    async fn on_text(&mut self, text: &str) -> Step {
        if self.silent {
            return Step::Continue;
        }
        let msg = match parse_pos_frame(text) {
            Ok(msg) => msg,
            Err(e) => {
                self.log_in("invalid", None);
                return self
                    .send(&error_msg(
                        None,
                        ReaderErrorCode::InvalidMessage,
                        &e.to_string(),
                    ))
                    .await;
            }
        };
        let (kind, request_id) = describe_pos(&msg);
        self.log_in(kind, request_id);
        if !self.paired {
            return self.before_hello(msg).await;
        }
        match msg {
            PosMessage::Hello { .. } => {
                self.send(&error_msg(
                    None,
                    ReaderErrorCode::InvalidMessage,
                    "already paired",
                ))
                .await
            }
            PosMessage::Collect {
                request_id,
                amount,
                currency,
            } => self.collect(request_id, amount, &currency).await,
            PosMessage::Cancel { request_id } => self.cancel(request_id).await,
            PosMessage::DisplayCart { request_id, cart } => {
                self.reader.set_display(Some(cart));
                self.send(&ReaderMessage::Ack { request_id }).await
            }
            PosMessage::ClearDisplay { request_id } => {
                self.reader.set_display(None);
                self.send(&ReaderMessage::Ack { request_id }).await
            }
            PosMessage::Process {
                request_id,
                mode,
                payment,
            } => self.process(request_id, mode, payment).await,
            PosMessage::StoreStatusRequest { request_id } => {
                self.send(&self.reader.store_status(Some(request_id))).await
            }
            PosMessage::ForwardedAck { payment_id } => {
                if let Err(e) = self.readers.link.store.ack(&self.reader.id, &payment_id) {
                    eprintln!(
                        "[pos-sim] reader {}: recording an ack failed: {e}",
                        self.reader.id
                    );
                }
                Step::Continue
            }
            PosMessage::Ping { nonce } => self.send(&ReaderMessage::Pong { nonce }).await,
            PosMessage::Pong { .. } => Step::Continue,
        }
    }

    async fn before_hello(&mut self, msg: PosMessage) -> Step {
        let PosMessage::Hello {
            protocol_version,
            pairing,
            intent,
            registration_code,
            ..
        } = msg
        else {
            let request_id = describe_pos(&msg).1.map(str::to_owned);
            return self
                .send(&error_msg(
                    request_id,
                    ReaderErrorCode::NotPaired,
                    "send hello first",
                ))
                .await;
        };
        if protocol_version != PROTOCOL_VERSION {
            let message = format!("this reader speaks protocol version {PROTOCOL_VERSION}");
            let _ = self
                .send(&error_msg(
                    None,
                    ReaderErrorCode::UnsupportedVersion,
                    &message,
                ))
                .await;
            return Step::End(End::Refused(1002, "unsupported_version"));
        }
        let code_ok = registration_code
            .as_ref()
            .is_none_or(|code| *code == self.reader.registration_code);
        if !code_ok {
            let _ = self
                .send(&error_msg(
                    None,
                    ReaderErrorCode::NotPaired,
                    "wrong registration code",
                ))
                .await;
            return Step::End(End::Refused(1008, "not_paired"));
        }
        if intent == HelloIntent::Discover {
            // Who the reader is and whether it is free; no credential needed, the POS closes
            // next.
            return self
                .send(&ReaderMessage::HelloAck {
                    protocol_version: PROTOCOL_VERSION,
                    reader: self.reader.info(),
                    status: self.reader.status(),
                    capabilities: CAPABILITIES,
                })
                .await;
        }
        let paired = pairing.as_deref().is_some_and(|secret| {
            reader_link::pairing_valid(&self.readers.link.api.store, &self.reader.id, secret)
        });
        if !paired {
            let _ = self
                .send(&error_msg(
                    None,
                    ReaderErrorCode::PairingRefused,
                    "no valid pairing credential for this reader",
                ))
                .await;
            return Step::End(End::Refused(1008, "pairing_refused"));
        }
        let Some(control) = self.reader.claim(self.id, intent == HelloIntent::TakeOver) else {
            eprintln!(
                "[pos-sim] reader {}: refused a second POS (busy)",
                self.reader.id
            );
            let _ = self
                .send(&error_msg(
                    None,
                    ReaderErrorCode::Busy,
                    "reader is in use by another POS",
                ))
                .await;
            return Step::End(End::Refused(1013, "busy"));
        };
        eprintln!("[pos-sim] reader {}: POS connected", self.reader.id);
        self.control = Some(control);
        self.paired = true;
        let wrong = self.reader.take_fault_if(|f| f == Fault::WrongVersion);
        let ack = ReaderMessage::HelloAck {
            protocol_version: if wrong.is_some() {
                99
            } else {
                PROTOCOL_VERSION
            },
            reader: self.reader.info(),
            status: ReaderStatus::Online,
            capabilities: CAPABILITIES,
        };
        if let Step::End(end) = self.send(&ack).await {
            return Step::End(end);
        }
        if let Step::End(end) = self.send(&self.reader.store_status(None)).await {
            return Step::End(end);
        }
        // Reports the POS has not acknowledged yet, again.
        let reports = match self.readers.link.store.unacked_reports(&self.reader.id) {
            Ok(reports) => reports,
            Err(e) => {
                eprintln!(
                    "[pos-sim] reader {}: reading its reports failed: {e}",
                    self.reader.id
                );
                Vec::new()
            }
        };
        for report in reports {
            if let Step::End(end) = self.send(&forwarded_message(report)).await {
                return Step::End(end);
            }
        }
        Step::Continue
    }

    /// `process`: send the payment over the reader's own link, or store it.
    async fn process(
        &mut self,
        request_id: String,
        mode: ProcessMode,
        payment: PaymentBody,
    ) -> Step {
        let payment_id = payment.id.clone();
        match reader_link::process(&self.readers.link, self.reader, mode, payment).await {
            Ok(result) => {
                self.send(&ReaderMessage::Processed {
                    request_id,
                    payment_id,
                    result,
                })
                .await
            }
            Err(refusal) => {
                self.send(&error_msg(Some(request_id), refusal.code, &refusal.message))
                    .await
            }
        }
    }

    /// A one-shot fault set for the next collect, acted out before the collect proper.
    async fn misbehave(&mut self, request_id: &str) -> Step {
        let Some(fault) = self.reader.take_fault_if(|f| f != Fault::WrongVersion) else {
            return Step::Continue;
        };
        eprintln!("[pos-sim] reader {}: fault {fault:?}", self.reader.id);
        let text = match fault {
            Fault::Silent => {
                self.silent = true;
                return Step::Continue;
            }
            Fault::Garbage => "\u{1}\u{2}not json at all \u{fffd}".to_owned(),
            Fault::Truncated => {
                format!(r#"{{"type":"card_read","request_id":"{request_id}","card":{{"brand""#)
            }
            Fault::Huge => format!(
                r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#,
                "x".repeat(5_000_000)
            ),
            Fault::WrongRequest => to_frame(&ReaderMessage::CardRead {
                request_id: String::from("pay_someone_else"),
                card: CardSummary {
                    brand: String::from("visa"),
                    last4: String::from("4242"),
                    exp_month: 12,
                    exp_year: current_year().saturating_add(3),
                    entry_mode: Some(EntryMode::Chip),
                    pin_verified: true,
                },
                card_payload: String::from("AAAA"),
            }),
            Fault::WrongVersion => return Step::Continue,
        };
        match self.socket.send(Message::Text(text.into())).await {
            Ok(()) => Step::Continue,
            Err(_) => Step::End(End::Closed),
        }
    }

    async fn collect(&mut self, request_id: String, amount: u64, currency: &str) -> Step {
        if self.active.is_some() {
            return self
                .send(&error_msg(
                    Some(request_id),
                    ReaderErrorCode::Busy,
                    "a collect is already in progress",
                ))
                .await;
        }
        let currency_ok = currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_lowercase());
        if amount == 0 || !currency_ok {
            return self
                .send(&error_msg(
                    Some(request_id),
                    ReaderErrorCode::InvalidMessage,
                    "amount must be positive and currency a lowercase ISO code",
                ))
                .await;
        }
        if let Step::End(end) = self.misbehave(&request_id).await {
            return Step::End(end);
        }
        if self.silent {
            return Step::Continue;
        }
        self.reader.set_screen(Screen::WaitingForCard {
            amount,
            currency: currency.to_owned(),
        });
        self.active = Some(ActiveCollect {
            request_id: request_id.clone(),
            amount,
            currency: currency.to_owned(),
        });
        self.tap
            .as_mut()
            .reset(Instant::now() + self.readers.tap_delay);
        self.send(&ReaderMessage::CollectStarted { request_id })
            .await
    }

    async fn cancel(&mut self, request_id: String) -> Step {
        let matches = self
            .active
            .as_ref()
            .is_some_and(|a| a.request_id == request_id);
        if !matches {
            return self
                .send(&error_msg(
                    Some(request_id),
                    ReaderErrorCode::InvalidMessage,
                    "no collect in progress with this request_id",
                ))
                .await;
        }
        self.active = None;
        self.reader.set_screen(Screen::Result {
            outcome: "canceled",
            last4: None,
        });
        self.send(&ReaderMessage::Canceled {
            request_id,
            by: CancelSource::Pos,
        })
        .await
    }

    /// The tap delay is over: read the card and send it, encrypted for the backend.
    async fn card_read(&mut self) -> Step {
        let Some(active) = self.active.take() else {
            return Step::Continue;
        };
        let next = self.reader.take_card();
        let card = CardData {
            exp_month: 12,
            exp_year: current_year().saturating_add(3),
            number: next.number,
        };
        let summary = CardSummary {
            brand: brand_of(&card.number).to_owned(),
            last4: last4(&card.number).to_owned(),
            exp_month: card.exp_month,
            exp_year: card.exp_year,
            entry_mode: Some(next.entry),
            pin_verified: next.pin,
        };
        let event = ReaderMessage::CardEvent {
            request_id: active.request_id.clone(),
            event: match next.entry {
                EntryMode::Chip => CardEventKind::Inserted,
                EntryMode::Contactless | EntryMode::Swipe => CardEventKind::Tapped,
            },
        };
        if let Step::End(end) = self.send(&event).await {
            return Step::End(end);
        }
        let sealed = reader_link::seal_card(
            &self.readers.link.api.card_key,
            &self.reader.id,
            &active.request_id,
            active.amount,
            &active.currency,
            &card,
        );
        match sealed {
            Ok(card_payload) => {
                self.reader.set_screen(Screen::Result {
                    outcome: "card_read",
                    last4: Some(summary.last4.clone()),
                });
                self.send(&ReaderMessage::CardRead {
                    request_id: active.request_id,
                    card: summary,
                    card_payload,
                })
                .await
            }
            Err(e) => {
                self.reader.set_screen(Screen::Result {
                    outcome: "failed",
                    last4: None,
                });
                self.send(&error_msg(
                    Some(active.request_id),
                    ReaderErrorCode::CardReadFailed,
                    &e.to_string(),
                ))
                .await
            }
        }
    }

    async fn send(&mut self, msg: &ReaderMessage) -> Step {
        let (kind, request_id) = describe_reader(msg);
        eprintln!(
            "[pos-sim] reader {} -> {kind}{}",
            self.reader.id,
            request_id
                .map(|id| format!(" request_id={id}"))
                .unwrap_or_default()
        );
        match self.socket.send(Message::Text(to_frame(msg).into())).await {
            Ok(()) => Step::Continue,
            Err(_) => Step::End(End::Closed),
        }
    }

    fn log_in(&self, kind: &str, request_id: Option<&str>) {
        eprintln!(
            "[pos-sim] reader {} <- {kind}{}",
            self.reader.id,
            request_id
                .map(|id| format!(" request_id={id}"))
                .unwrap_or_default()
        );
    }
}

enum Step {
    Continue,
    End(End),
}

fn forwarded_message(report: Report) -> ReaderMessage {
    ReaderMessage::Forwarded {
        payment_id: report.payment_id,
        amount: report.amount,
        currency: report.currency,
        stored_at: report.stored_at,
        result: report.result,
    }
}

/// Message type and request id, for logs and error replies. Never the token.
fn describe_pos(msg: &PosMessage) -> (&'static str, Option<&str>) {
    match msg {
        PosMessage::Hello { .. } => ("hello", None),
        PosMessage::Collect { request_id, .. } => ("collect", Some(request_id)),
        PosMessage::Cancel { request_id } => ("cancel", Some(request_id)),
        PosMessage::DisplayCart { request_id, .. } => ("display_cart", Some(request_id)),
        PosMessage::ClearDisplay { request_id } => ("clear_display", Some(request_id)),
        PosMessage::Process { request_id, .. } => ("process", Some(request_id)),
        PosMessage::StoreStatusRequest { request_id } => ("store_status_request", Some(request_id)),
        PosMessage::ForwardedAck { payment_id } => ("forwarded_ack", Some(payment_id)),
        PosMessage::Ping { .. } => ("ping", None),
        PosMessage::Pong { .. } => ("pong", None),
    }
}

/// Message type and request id, for logs. Never the card payload.
fn describe_reader(msg: &ReaderMessage) -> (&'static str, Option<&str>) {
    match msg {
        ReaderMessage::HelloAck { .. } => ("hello_ack", None),
        ReaderMessage::CollectStarted { request_id } => ("collect_started", Some(request_id)),
        ReaderMessage::CardEvent { request_id, .. } => ("card_event", Some(request_id)),
        ReaderMessage::CardRead { request_id, .. } => ("card_read", Some(request_id)),
        ReaderMessage::Canceled { request_id, .. } => ("canceled", Some(request_id)),
        ReaderMessage::Ack { request_id } => ("ack", Some(request_id)),
        ReaderMessage::Processed { request_id, .. } => ("processed", Some(request_id)),
        ReaderMessage::StoreStatus { request_id, .. } => ("store_status", request_id.as_deref()),
        ReaderMessage::Forwarded { payment_id, .. } => ("forwarded", Some(payment_id)),
        ReaderMessage::Error {
            request_id, code, ..
        } => (error_kind(*code), request_id.as_deref()),
        ReaderMessage::Ping { .. } => ("ping", None),
        ReaderMessage::Pong { .. } => ("pong", None),
    }
}

fn error_kind(code: ReaderErrorCode) -> &'static str {
    match code {
        ReaderErrorCode::Busy => "error(busy)",
        ReaderErrorCode::UnsupportedVersion => "error(unsupported_version)",
        ReaderErrorCode::NotPaired => "error(not_paired)",
        ReaderErrorCode::InvalidMessage => "error(invalid_message)",
        ReaderErrorCode::CardReadFailed => "error(card_read_failed)",
        ReaderErrorCode::Timeout => "error(timeout)",
        ReaderErrorCode::TakenOver => "error(taken_over)",
        ReaderErrorCode::PairingRefused => "error(pairing_refused)",
        ReaderErrorCode::OfflinePaymentMethodUnsupported => {
            "error(offline_payment_method_unsupported)"
        }
        ReaderErrorCode::StorageFull => "error(storage_full)",
        ReaderErrorCode::Unknown => "error(unknown)",
    }
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
