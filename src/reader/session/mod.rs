//! The reader session of one terminal: discovery, connect and disconnect (with automatic
//! reconnection after an unexpected end), display commands, collecting a card and canceling
//! it, one command at a time. It reports connection and payment status through `Events` and
//! knows nothing of payments' storage, the backend, or which transport carries the frames.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use gloo_timers::future::TimeoutFuture;
use pos_protocol::reader::{Cart, HelloIntent, PosMessage, ReaderMessage, ReaderStatus};
use pos_protocol::CardSummary;

mod hello;

use super::agent::ReaderAgent;
use super::connection::{Connection, Paired};
use super::simulated::SimulatedTransport;
use super::transport::Inbound;
use super::usb::UsbTransport;
use super::websocket::WsTransport;
use super::{
    check_reader_url, reconnect_delay_ms, Address, Discovered, Method, SimulatorConfig, Timeouts,
};
use crate::error::{PosError, ReaderError};
use crate::events::{ConnectionStatus, Events, PaymentStatus};
use crate::pairing::{Pairings, Purpose};
use crate::payment::new_payment_id;
use crate::small_map::SmallMap;

/// At most this many reader addresses per discovery.
pub const MAX_DISCOVERY_URLS: usize = 32;

/// At most this many reader ids remembered by address (then the memory starts over).
const MAX_KNOWN_IDS: usize = 256;

/// What a reader returned for a collect: the card summary and the ciphertext for the backend.
pub struct CardRead {
    pub reader_id: String,
    pub card: CardSummary,
    pub card_payload: String,
}

struct Connected {
    conn: Rc<Connection>,
    reader: Discovered,
}

pub struct ReaderSession {
    events: Rc<dyn Events>,
    timeouts: Cell<Timeouts>,
    simulator: Rc<RefCell<SimulatorConfig>>,
    connected: RefCell<Option<Connected>>,
    connecting: Cell<bool>,
    collecting: RefCell<Option<String>>,
    /// A display command is waiting for its ack (one command at a time).
    commanding: Cell<bool>,
    /// Bumped by every connect and disconnect: a reconnection loop of an older one stops.
    generation: Cell<u64>,
    /// Reader ids by address, as the readers said in their `hello_ack` (discovery, connects):
    /// the reader a pairing credential is asked for.
    known_ids: RefCell<SmallMap<String>>,
    /// Hears of every connected reader's store and forwarded payments (the second agent).
    agent: RefCell<Option<Rc<ReaderAgent>>>,
}

/// Opens the transport for `address` and says `hello` with `intent` and `pairing`.
async fn open(
    address: &Address,
    pairing: Option<&str>,
    intent: HelloIntent,
    timeouts: Timeouts,
    simulator: &Rc<RefCell<SimulatorConfig>>,
) -> Result<Paired, PosError> {
    let url = address.url.clone();
    let method = address.method;
    let simulator = simulator.clone();
    let open_transport = move |inbound: Inbound| async move {
        match method {
            Method::WebSocket => WsTransport::open(&url, inbound).await,
            Method::Usb => UsbTransport::open(&url, inbound).await,
            Method::Simulated => Ok(SimulatedTransport::open(inbound, simulator)),
        }
    };
    Connection::open(open_transport, pairing, intent, timeouts).await
}

impl ReaderSession {
    pub fn new(events: Rc<dyn Events>, timeouts: Timeouts) -> Self {
        Self {
            events,
            timeouts: Cell::new(timeouts),
            simulator: Rc::new(RefCell::new(SimulatorConfig::default())),
            connected: RefCell::new(None),
            connecting: Cell::new(false),
            collecting: RefCell::new(None),
            commanding: Cell::new(false),
            generation: Cell::new(0),
            known_ids: RefCell::new(SmallMap::new()),
            agent: RefCell::new(None),
        }
    }

    /// The reader agent told of every connection (its reports, `process`).
    pub fn set_agent(&self, agent: Rc<ReaderAgent>) {
        *self.agent.borrow_mut() = Some(agent);
    }

    fn agent(&self) -> Option<Rc<ReaderAgent>> {
        self.agent.borrow().clone()
    }

    /// Changes the timeouts of later commands and connections (tests shorten them).
    pub fn set_timeouts(&self, timeouts: Timeouts) {
        self.timeouts.set(timeouts);
    }

    /// The in-page simulated reader's settings.
    pub fn simulator(&self) -> &Rc<RefCell<SimulatorConfig>> {
        &self.simulator
    }

    pub fn is_connected(&self) -> bool {
        self.connected.borrow().is_some()
    }

    /// Connects to the reader at `address`; with `take_over`, even if another POS holds it.
    /// The hello carries the reader's pairing credential (`pairings`), never the token.
    pub async fn connect(
        self: &Rc<Self>,
        address: &Address,
        take_over: bool,
        pairings: &Rc<Pairings>,
    ) -> Result<Discovered, PosError> {
        if self.is_connected() || self.connecting.get() {
            return Err(ReaderError::AlreadyConnected.into());
        }
        if address.method == Method::WebSocket {
            check_reader_url(&address.url)?;
        }
        self.generation.set(self.generation.get() + 1);
        self.connecting.set(true);
        self.events.connection_status(ConnectionStatus::Connecting);
        let intent = if take_over {
            HelloIntent::TakeOver
        } else {
            HelloIntent::Connect
        };
        let opened = self
            .open_paired(address, intent, Purpose::Connect, pairings)
            .await;
        self.connecting.set(false);
        match opened {
            Ok(paired) => Ok(self.attach(paired, address.clone(), pairings.clone())),
            Err(e) => {
                self.events
                    .connection_status(ConnectionStatus::NotConnected);
                Err(e)
            }
        }
    }

    /// Keeps `paired` as the connected reader and watches for its unexpected end.
    fn attach(
        self: &Rc<Self>,
        paired: Paired,
        address: Address,
        pairings: Rc<Pairings>,
    ) -> Discovered {
        let weak: Weak<Self> = Rc::downgrade(self);
        let generation = self.generation.get();
        let again = address.clone();
        self.remember(&address.url, &paired.info.id);
        paired.conn.on_disconnect(Box::new(move |err: PosError| {
            if let Some(session) = weak.upgrade() {
                session.on_lost(err, generation, again, pairings);
            }
        }));
        let reader = Discovered {
            info: paired.info,
            address,
            status: ReaderStatus::Online,
        };
        if let Some(agent) = self.agent() {
            agent.attached(&paired.conn, &reader.info);
        }
        *self.connected.borrow_mut() = Some(Connected {
            conn: paired.conn,
            reader: reader.clone(),
        });
        self.events.connection_status(ConnectionStatus::Connected);
        self.events.payment_status(PaymentStatus::Ready);
        reader
    }

    fn on_lost(
        self: &Rc<Self>,
        err: PosError,
        generation: u64,
        address: Address,
        pairings: Rc<Pairings>,
    ) {
        if self.generation.get() != generation {
            return;
        }
        self.connected.borrow_mut().take();
        if let Some(agent) = self.agent() {
            agent.detached();
        }
        self.events
            .connection_status(ConnectionStatus::NotConnected);
        self.events.payment_status(PaymentStatus::NotReady);
        self.events.unexpected_reader_disconnect(&err);
        // Taken over or unplugged: trying again would steal the reader back or find nothing.
        let retry = !matches!(
            err,
            PosError::Reader(ReaderError::TakenOver | ReaderError::Unplugged)
        );
        if retry && self.timeouts.get().reconnect_attempts > 0 {
            let session = self.clone();
            wasm_bindgen_futures::spawn_local(async move {
                session.reconnect(generation, address, pairings).await;
            });
        }
    }

    /// Tries the same reader again with growing delays, unless a connect or disconnect of the
    /// caller's happened meanwhile. The cached pairing serves while the backend is down.
    async fn reconnect(self: Rc<Self>, generation: u64, address: Address, pairings: Rc<Pairings>) {
        let timeouts = self.timeouts.get();
        for attempt in 1..=timeouts.reconnect_attempts {
            TimeoutFuture::new(reconnect_delay_ms(timeouts.reconnect_base_ms, attempt)).await;
            if self.generation.get() != generation || self.is_connected() || self.connecting.get() {
                return;
            }
            self.connecting.set(true);
            self.events.connection_status(ConnectionStatus::Connecting);
            let opened = self
                .open_paired(
                    &address,
                    HelloIntent::Connect,
                    Purpose::Reconnect,
                    &pairings,
                )
                .await;
            self.connecting.set(false);
            if self.generation.get() != generation {
                if let Ok(p) = opened {
                    p.conn.close();
                }
                return;
            }
            match opened {
                Ok(paired) => {
                    self.attach(paired, address, pairings);
                    return;
                }
                Err(e) => {
                    web_sys::console::warn_1(
                        &format!("pos-terminal: reconnect attempt {attempt} failed: {e}").into(),
                    );
                    self.events
                        .connection_status(ConnectionStatus::NotConnected);
                }
            }
        }
    }

    pub fn disconnect(&self) {
        self.generation.set(self.generation.get() + 1);
        let taken = self.connected.borrow_mut().take();
        if let Some(agent) = self.agent() {
            agent.detached();
        }
        if let Some(c) = taken {
            c.conn.close();
            self.events
                .connection_status(ConnectionStatus::NotConnected);
            self.events.payment_status(PaymentStatus::NotReady);
        }
    }

    /// The connected reader, if any.
    pub fn reader(&self) -> Option<Discovered> {
        self.connected.borrow().as_ref().map(|c| c.reader.clone())
    }

    fn connection(&self) -> Result<(Rc<Connection>, String), PosError> {
        self.connected
            .borrow()
            .as_ref()
            .map(|c| (c.conn.clone(), c.reader.info.id.clone()))
            .ok_or_else(|| ReaderError::NotConnected.into())
    }

    /// The status to return to once a payment or collect is over.
    pub fn idle_status(&self) -> PaymentStatus {
        if self.is_connected() {
            PaymentStatus::Ready
        } else {
            PaymentStatus::NotReady
        }
    }

    async fn command(&self, make: impl FnOnce(String) -> PosMessage) -> Result<(), PosError> {
        let (conn, _) = self.connection()?;
        if self.commanding.get() || self.collecting.borrow().is_some() {
            return Err(PosError::CommandInProgress);
        }
        let request_id = new_payment_id()?.replacen("pay_", "cmd_", 1);
        let msg = make(request_id.clone());
        self.commanding.set(true);
        let reply = conn
            .request(&request_id, &msg, Some(self.timeouts.get().command_ms))
            .await;
        self.commanding.set(false);
        match reply? {
            ReaderMessage::Ack { .. } => Ok(()),
            ReaderMessage::Error { code, message, .. } => {
                Err(ReaderError::Reported { code, message }.into())
            }
            other => {
                Err(ReaderError::Protocol(format!("expected ack, got {}", other.kind())).into())
            }
        }
    }

    pub async fn display_cart(&self, cart: Cart) -> Result<(), PosError> {
        self.command(|request_id| PosMessage::DisplayCart { request_id, cart })
            .await
    }

    pub async fn clear_display(&self) -> Result<(), PosError> {
        self.command(|request_id| PosMessage::ClearDisplay { request_id })
            .await
    }

    /// The in-page simulated reader's location changes with `setSimulatorConfiguration`,
    /// without a new hello: the offline rules must judge its cards where it is now.
    fn note_simulated_location(&self, reader_id: &str) {
        let simulated = self
            .connected
            .borrow()
            .as_ref()
            .is_some_and(|c| c.reader.address.method == Method::Simulated);
        if let (true, Some(agent)) = (simulated, self.agent()) {
            let country = self.simulator.borrow().country.clone();
            agent.set_country(reader_id, Some(country));
        }
    }

    /// Asks the reader for a card for payment `id`; gives up (and cancels on the reader)
    /// after `timeouts.collect_ms`.
    pub async fn collect(
        &self,
        id: &str,
        amount: u64,
        currency: &str,
    ) -> Result<CardRead, PosError> {
        let (conn, reader_id) = self.connection()?;
        if self.collecting.borrow().is_some() {
            return Err(PosError::CollectInProgress);
        }
        if self.commanding.get() {
            return Err(PosError::CommandInProgress);
        }
        self.note_simulated_location(&reader_id);
        *self.collecting.borrow_mut() = Some(id.to_string());
        self.events.payment_status(PaymentStatus::WaitingForInput);
        let msg = PosMessage::Collect {
            request_id: id.to_string(),
            amount,
            currency: currency.to_string(),
        };
        let reply = conn
            .request(id, &msg, Some(self.timeouts.get().collect_ms))
            .await;
        *self.collecting.borrow_mut() = None;
        if matches!(reply, Err(PosError::Reader(ReaderError::Timeout))) {
            // The reader may still be waiting for a tap: tell it to stop.
            let _ = conn.send(&PosMessage::Cancel {
                request_id: id.to_string(),
            });
        }
        self.events.payment_status(if conn.is_open() {
            PaymentStatus::Ready
        } else {
            PaymentStatus::NotReady
        });
        match reply? {
            ReaderMessage::CardRead {
                card, card_payload, ..
            } => Ok(CardRead {
                reader_id,
                card,
                card_payload,
            }),
            ReaderMessage::Canceled { .. } => Err(PosError::CollectCanceled),
            ReaderMessage::Error { code, message, .. } => {
                Err(ReaderError::Reported { code, message }.into())
            }
            other => Err(ReaderError::Protocol(format!(
                "expected card_read, got {}",
                other.kind()
            ))
            .into()),
        }
    }

    /// Asks the reader to stop collecting; ends the collect here if it never confirms.
    pub fn cancel_collect(&self) -> Result<(), PosError> {
        let id = self
            .collecting
            .borrow()
            .clone()
            .ok_or(PosError::NoCollectInProgress)?;
        let (conn, _) = self.connection()?;
        conn.send(&PosMessage::Cancel {
            request_id: id.clone(),
        })?;
        let weak = Rc::downgrade(&conn);
        Timeout::new(self.timeouts.get().cancel_ms, move || {
            if let Some(conn) = weak.upgrade() {
                conn.fail_request(&id, PosError::CollectCanceled);
            }
        })
        .forget();
        Ok(())
    }
}
