//! A reader simulated inside the page, like Stripe's simulated reader: it speaks the same
//! protocol as a real one behind the same transport seam, reads the test card chosen with
//! `setSimulatorConfiguration`, and needs no reader hardware or simulator process. It takes
//! the POS's messages as values (so the package has no parser for them) and answers in
//! frames, which the connection parses as a real reader's.
//!
//! Its `card_payload` is `simulated:v1:<test card number>`, not a backend-sealed ciphertext: a
//! backend in test mode may accept it; a live backend must refuse it.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::Timeout;
use pos_protocol::outcomes::brand_of;
use pos_protocol::reader::{
    to_frame, CancelSource, Capabilities, CardEventKind, HelloIntent, PosMessage, ReaderErrorCode,
    ReaderInfo, ReaderMessage, ReaderStatus, PROTOCOL_VERSION,
};
use pos_protocol::{CardSummary, EntryMode};

use super::transport::{Inbound, Incoming, Transport};
use super::{Address, Discovered, Method, SimulatorConfig};
use crate::error::PosError;

pub const SIMULATED_URL: &str = "simulated";

/// What the simulated reader says about itself; its location's country comes from `config`.
pub fn info(config: &SimulatorConfig) -> ReaderInfo {
    ReaderInfo {
        id: "rdr_simulated".into(),
        label: "Simulated reader (in page)".into(),
        serial_number: "SIMULATED-0001".into(),
        device_type: "simulated_in_page".into(),
        firmware_version: env!("CARGO_PKG_VERSION").into(),
        country: Some(config.country.clone()),
    }
}

/// It has no link of its own to the backend: it neither processes nor stores payments.
pub const CAPABILITIES: Capabilities = Capabilities {
    process: false,
    store: false,
};

pub fn discovered(config: &SimulatorConfig) -> Discovered {
    Discovered {
        info: info(config),
        address: Address {
            method: Method::Simulated,
            url: SIMULATED_URL.into(),
        },
        status: ReaderStatus::Online,
    }
}

struct State {
    paired: bool,
    /// The active collect and the timer that taps the card for it.
    active: Option<(String, Timeout)>,
    closed: bool,
}

pub struct SimulatedTransport {
    state: Rc<RefCell<State>>,
    inbound: Inbound,
    config: Rc<RefCell<SimulatorConfig>>,
}

impl SimulatedTransport {
    pub fn open(inbound: Inbound, config: Rc<RefCell<SimulatorConfig>>) -> Box<dyn Transport> {
        Box::new(SimulatedTransport {
            state: Rc::new(RefCell::new(State {
                paired: false,
                active: None,
                closed: false,
            })),
            inbound,
            config,
        })
    }

    /// Delivers `msg` later, as a reader's reply arrives later: never inside `send`.
    fn reply(&self, msg: ReaderMessage) {
        let inbound = self.inbound.clone();
        let state = self.state.clone();
        wasm_bindgen_futures::spawn_local(async move {
            if !state.borrow().closed {
                inbound(Incoming::Frame(to_frame(&msg)));
            }
        });
    }

    fn error(&self, request_id: Option<String>, code: ReaderErrorCode, message: &str) {
        self.reply(ReaderMessage::Error {
            request_id,
            code,
            message: message.into(),
        });
    }

    fn collect(&self, request_id: String) {
        if self.state.borrow().active.is_some() {
            return self.error(
                Some(request_id),
                ReaderErrorCode::Busy,
                "a collect is already in progress",
            );
        }
        let (number, delay, entry_mode, pin_verified) = {
            let c = self.config.borrow();
            (
                c.test_card_number.clone(),
                c.tap_delay_ms,
                c.entry_mode,
                c.pin_verified,
            )
        };
        let inbound = self.inbound.clone();
        let state = self.state.clone();
        let id = request_id.clone();
        let tap = Timeout::new(delay, move || {
            let taken = state.borrow_mut().active.take();
            let closed = state.borrow().closed;
            // This timer is running now: drop it after its callback returns.
            let live = taken.is_some();
            wasm_bindgen_futures::spawn_local(async move { drop(taken) });
            if !live || closed {
                return;
            }
            let last4 = number.get(number.len().saturating_sub(4)..).unwrap_or("");
            let exp_year = js_sys::Date::new_0().get_full_year() + 3;
            // The protocol has no event for a swipe: the card_read says it.
            let event = match entry_mode {
                EntryMode::Contactless => Some(CardEventKind::Tapped),
                EntryMode::Chip => Some(CardEventKind::Inserted),
                EntryMode::Swipe => None,
            };
            if let Some(event) = event {
                inbound(Incoming::Frame(to_frame(&ReaderMessage::CardEvent {
                    request_id: id.clone(),
                    event,
                })));
            }
            inbound(Incoming::Frame(to_frame(&ReaderMessage::CardRead {
                request_id: id,
                card: CardSummary {
                    brand: brand_of(&number).into(),
                    last4: last4.into(),
                    exp_month: 12,
                    exp_year: u16::try_from(exp_year).unwrap_or(2030),
                    entry_mode: Some(entry_mode),
                    pin_verified,
                },
                card_payload: format!("simulated:v1:{number}"),
            })));
        });
        self.state.borrow_mut().active = Some((request_id.clone(), tap));
        self.reply(ReaderMessage::CollectStarted { request_id });
    }

    fn on_message(&self, msg: PosMessage) {
        if !self.state.borrow().paired {
            return match msg {
                PosMessage::Hello {
                    protocol_version: PROTOCOL_VERSION,
                    intent,
                    ..
                } => {
                    // A page's simulated reader belongs to its terminal: never in use elsewhere.
                    self.state.borrow_mut().paired = intent != HelloIntent::Discover;
                    let reader = info(&self.config.borrow());
                    self.reply(ReaderMessage::HelloAck {
                        protocol_version: PROTOCOL_VERSION,
                        reader,
                        status: ReaderStatus::Online,
                        capabilities: CAPABILITIES,
                    });
                }
                PosMessage::Hello { .. } => self.error(
                    None,
                    ReaderErrorCode::UnsupportedVersion,
                    "this reader speaks protocol version 2",
                ),
                _ => self.error(None, ReaderErrorCode::NotPaired, "send hello first"),
            };
        }
        match msg {
            PosMessage::Hello { .. } => {
                self.error(None, ReaderErrorCode::InvalidMessage, "already paired")
            }
            PosMessage::Collect { request_id, .. } => self.collect(request_id),
            PosMessage::Cancel { request_id } => {
                let active = self.state.borrow().active.as_ref().map(|a| a.0.clone());
                if active.as_deref() == Some(request_id.as_str()) {
                    self.state.borrow_mut().active = None;
                    self.reply(ReaderMessage::Canceled {
                        request_id,
                        by: CancelSource::Pos,
                    });
                } else {
                    self.error(
                        Some(request_id),
                        ReaderErrorCode::InvalidMessage,
                        "no collect in progress with this request_id",
                    );
                }
            }
            PosMessage::DisplayCart { request_id, .. }
            | PosMessage::ClearDisplay { request_id } => {
                self.reply(ReaderMessage::Ack { request_id })
            }
            // No link of its own: its hello_ack declares neither capability.
            PosMessage::Process { request_id, .. }
            | PosMessage::StoreStatusRequest { request_id } => self.error(
                Some(request_id),
                ReaderErrorCode::InvalidMessage,
                "the simulated reader neither processes nor stores payments",
            ),
            PosMessage::ForwardedAck { .. } => {}
            PosMessage::Ping { nonce } => self.reply(ReaderMessage::Pong { nonce }),
            PosMessage::Pong { .. } => {}
        }
    }
}

impl Transport for SimulatedTransport {
    fn send(&self, msg: &PosMessage) -> Result<(), PosError> {
        if self.state.borrow().closed {
            return Err(crate::error::ReaderError::Disconnected.into());
        }
        self.on_message(msg.clone());
        Ok(())
    }

    fn close(&self) {
        let mut s = self.state.borrow_mut();
        s.closed = true;
        s.active = None;
    }
}
