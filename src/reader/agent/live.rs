//! The live agent (wasm only): listens to the connected reader's reports and sends
//! `process` through it.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use gloo_timers::future::TimeoutFuture;
use pos_protocol::backend::PaymentBody;
use pos_protocol::reader::{
    Capabilities, ForwardResult, PosMessage, ProcessMode, ReaderInfo, ReaderMessage,
};

use crate::small_map::SmallMap;

use super::{forwarded_by_reader, reader_status, Known, RecentIds};
use crate::error::{PosError, ReaderError};
use crate::events::Events;
use crate::payment::{new_payment_id, CardView};
use crate::reader::connection::Connection;
use crate::reader_fallback::ReaderAnswer;
use crate::status::StatusReporter;
use crate::store::Store;

/// How long after connecting a reader that stores may stay silent about its store
/// before the SDK asks (`store_status_request`).
const STATUS_GRACE_MS: u32 = 500;
/// Payments sent through the reader whose card summary is remembered for its reports.
const MAX_KNOWN: usize = 256;

fn warn(message: &str) {
    web_sys::console::warn_1(&format!("pos-terminal: {message}").into());
}

/// Tells the reader on `conn` that its report of `payment_id` was taken note of.
fn ack(conn: &Weak<Connection>, payment_id: String) {
    if let Some(conn) = conn.upgrade() {
        let _ = conn.send(&PosMessage::ForwardedAck { payment_id });
    }
}

/// A reader's `forwarded` report.
struct Report {
    payment_id: String,
    amount: u64,
    currency: String,
    stored_at: u64,
    result: ForwardResult,
}

struct Link {
    conn: Weak<Connection>,
    reader_id: String,
    capabilities: Capabilities,
    status_seen: bool,
}

pub struct ReaderAgent {
    events: Rc<dyn Events>,
    status: Rc<StatusReporter>,
    /// This terminal's own store: a report about a payment in it that this terminal never
    /// sent to the reader is not the reader's to make.
    store: Rc<Store>,
    link: RefCell<Option<Link>>,
    /// Bumped on every attach and detach: reports of an older connection are dropped.
    generation: Cell<u64>,
    /// The country of each reader seen by this terminal (for the offline rules).
    countries: RefCell<SmallMap<Option<String>>>,
    reported: RefCell<RecentIds>,
    /// Payments the reader stored for this terminal and has not reported forwarded yet
    /// (the backend does not know them: capture answers `payment_not_forwarded`).
    on_reader: RefCell<RecentIds>,
    known: RefCell<SmallMap<Known>>,
}

impl ReaderAgent {
    pub fn new(events: Rc<dyn Events>, status: Rc<StatusReporter>, store: Rc<Store>) -> Self {
        Self {
            events,
            status,
            store,
            link: RefCell::new(None),
            generation: Cell::new(0),
            countries: RefCell::new(SmallMap::new()),
            reported: RefCell::new(RecentIds::default()),
            on_reader: RefCell::new(RecentIds::default()),
            known: RefCell::new(SmallMap::new()),
        }
    }

    /// A reader is connected on `conn`: listen to its reports, and ask for its store's
    /// status if it stores and has not said yet.
    pub fn attached(self: &Rc<Self>, conn: &Rc<Connection>, info: &ReaderInfo) {
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        self.countries
            .borrow_mut()
            .insert(info.id.clone(), info.country.clone());
        let capabilities = conn.capabilities();
        *self.link.borrow_mut() = Some(Link {
            conn: Rc::downgrade(conn),
            reader_id: info.id.clone(),
            capabilities,
            status_seen: false,
        });
        let weak: Weak<Self> = Rc::downgrade(self);
        conn.on_notice(Rc::new(move |msg| {
            if let Some(agent) = weak.upgrade() {
                agent.on_notice(generation, msg);
            }
        }));
        if capabilities.store {
            let agent = self.clone();
            wasm_bindgen_futures::spawn_local(async move {
                TimeoutFuture::new(STATUS_GRACE_MS).await;
                agent.ask_status(generation);
            });
        }
    }

    /// The reader is gone (or disconnected): its part of the status is `null`.
    pub fn detached(&self) {
        self.generation.set(self.generation.get() + 1);
        self.link.borrow_mut().take();
        let status = self.status.clone();
        wasm_bindgen_futures::spawn_local(async move { status.set_reader(None).await });
    }

    fn ask_status(&self, generation: u64) {
        if self.generation.get() != generation {
            return;
        }
        let conn = match self.link.borrow().as_ref() {
            Some(link) if !link.status_seen => link.conn.upgrade(),
            _ => None,
        };
        let (Some(conn), Ok(id)) = (conn, new_payment_id()) else {
            return;
        };
        let request_id = id.replacen("pay_", "sts_", 1);
        if let Err(e) = conn.send(&PosMessage::StoreStatusRequest { request_id }) {
            web_sys::console::warn_1(
                &format!("pos-terminal: store_status_request not sent: {e}").into(),
            );
        }
    }

    fn on_notice(self: &Rc<Self>, generation: u64, msg: ReaderMessage) {
        if self.generation.get() != generation {
            return;
        }
        match msg {
            ReaderMessage::StoreStatus {
                link,
                pending_count,
                ref pending_amounts,
                ..
            } => {
                let stores = {
                    let mut current = self.link.borrow_mut();
                    match current.as_mut() {
                        Some(l) => {
                            l.status_seen = true;
                            l.capabilities.store
                        }
                        None => false,
                    }
                };
                if !stores {
                    return;
                }
                let view = reader_status(link, pending_count, pending_amounts);
                let status = self.status.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    status.set_reader(Some(view)).await;
                });
            }
            ReaderMessage::Forwarded {
                payment_id,
                amount,
                currency,
                stored_at,
                result,
            } => {
                let report = Report {
                    payment_id,
                    amount,
                    currency,
                    stored_at,
                    result,
                };
                let link = self
                    .link
                    .borrow()
                    .as_ref()
                    .map(|l| (l.conn.clone(), l.reader_id.clone()));
                let Some((conn, reader_id)) = link else {
                    return;
                };
                let sent_to = self
                    .known
                    .borrow()
                    .get(&report.payment_id)
                    .map(|k| k.reader_id.clone());
                match sent_to {
                    // Sent through this reader by this terminal: its report stands.
                    Some(Some(to)) if to == reader_id => return self.report(report, &conn),
                    Some(to) => {
                        warn(&format!(
                            "the reader {reader_id} reported payment {}, which this terminal \
                             sent to {}: ignored",
                            report.payment_id,
                            to.as_deref().unwrap_or("another reader")
                        ));
                        return ack(&conn, report.payment_id);
                    }
                    None => {}
                }
                // Not sent by this terminal in this session: a payment the reader stored for
                // an earlier session (nothing here to check it against), unless this
                // terminal's own store holds it, which then reports its own outcome.
                let agent = self.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let held = agent.store.contains(&report.payment_id).await;
                    if agent.generation.get() != generation {
                        // That connection is gone: the reader repeats it after its next hello.
                        return;
                    }
                    match held {
                        Ok(false) => agent.report(report, &conn),
                        Ok(true) => {
                            warn(&format!(
                                "the reader reported payment {}, which this terminal stores \
                                 itself and did not send to it: ignored (the terminal forwards \
                                 it and reports the backend's answer)",
                                report.payment_id
                            ));
                            ack(&conn, report.payment_id);
                        }
                        // Not acknowledged: the reader repeats it, and it is looked at again.
                        Err(e) => warn(&format!(
                            "the reader's report of payment {} waits: {e}",
                            report.payment_id
                        )),
                    }
                });
            }
            _ => {}
        }
    }

    /// Tells the page of a reader's `forwarded` report (once per payment), then acknowledges
    /// it on `conn`, the connection it came on.
    fn report(&self, r: Report, conn: &Weak<Connection>) {
        self.on_reader.borrow_mut().remove(&r.payment_id);
        if self.reported.borrow_mut().first_time(&r.payment_id) {
            let known = self
                .known
                .borrow_mut()
                .remove(&r.payment_id)
                .unwrap_or_default();
            if known.differs(r.amount, &r.currency) {
                warn(&format!(
                    "the reader reported payment {} as {} {}, not as sent: reported as sent",
                    r.payment_id, r.amount, r.currency
                ));
            }
            forwarded_by_reader(
                &r.payment_id,
                r.amount,
                &r.currency,
                r.stored_at,
                &r.result,
                known,
            )
            .emit(self.events.as_ref());
        }
        // After the callback ran (or for a repeat): the reader may drop the report.
        ack(conn, r.payment_id);
    }

    /// What the connected reader can do, if it is `reader_id`.
    pub fn capabilities_of(&self, reader_id: &str) -> Option<Capabilities> {
        self.link
            .borrow()
            .as_ref()
            .filter(|l| l.reader_id == reader_id && l.conn.upgrade().is_some())
            .map(|l| l.capabilities)
    }

    /// The reader answered `stored` for payment `id`: it holds it until its `forwarded`.
    pub fn stored_on_reader(&self, id: &str) {
        self.on_reader.borrow_mut().first_time(id);
    }

    /// True when the reader stored payment `id` for this terminal and has not reported
    /// it forwarded yet.
    pub fn held_by_reader(&self, id: &str) -> bool {
        self.on_reader.borrow().contains(id)
    }

    /// The reader `reader_id` is now located in `country` (the in-page simulated
    /// reader's location changes without a new hello).
    pub fn set_country(&self, reader_id: &str, country: Option<String>) {
        self.countries
            .borrow_mut()
            .insert(reader_id.to_string(), country);
    }

    /// The country of reader `reader_id` as it last said (`None`: it did not say, or
    /// this terminal never connected it).
    pub fn country_of(&self, reader_id: &str) -> Option<String> {
        self.countries.borrow().get(reader_id).cloned().flatten()
    }

    /// Sends `payment` through the connected reader's own link (`process`), waiting at
    /// most `timeout_ms` for its `processed`.
    pub async fn process(
        &self,
        payment: &PaymentBody,
        mode: ProcessMode,
        timeout_ms: u32,
    ) -> ReaderAnswer {
        let conn = self.link.borrow().as_ref().and_then(|l| l.conn.upgrade());
        let Some(conn) = conn else {
            return ReaderAnswer::Failed(ReaderError::NotConnected.into());
        };
        let request_id = match new_payment_id() {
            Ok(id) => id.replacen("pay_", "prc_", 1),
            Err(e) => return ReaderAnswer::Failed(e),
        };
        {
            let mut known = self.known.borrow_mut();
            if known.len() >= MAX_KNOWN {
                known.remove_oldest();
            }
            known.insert(
                payment.id.clone(),
                Known {
                    card: Some(CardView::from(&payment.card)),
                    metadata: payment.metadata.clone(),
                    sent: Some((payment.amount, payment.currency.clone())),
                    reader_id: self.link.borrow().as_ref().map(|l| l.reader_id.clone()),
                },
            );
        }
        let msg = PosMessage::Process {
            request_id: request_id.clone(),
            mode,
            payment: payment.clone(),
        };
        match conn.request(&request_id, &msg, Some(timeout_ms)).await {
            Ok(ReaderMessage::Processed {
                payment_id, result, ..
            }) if payment_id == payment.id => ReaderAnswer::Processed(result),
            Ok(ReaderMessage::Processed { payment_id, .. }) => {
                ReaderAnswer::Failed(PosError::from(ReaderError::Protocol(format!(
                    "the reader answered processed for payment {payment_id}, not {}",
                    payment.id
                ))))
            }
            Ok(ReaderMessage::Error { code, message, .. }) => {
                ReaderAnswer::Refused { code, message }
            }
            Ok(other) => ReaderAnswer::Failed(PosError::from(ReaderError::Protocol(format!(
                "expected processed for this payment, got {}",
                other.kind()
            )))),
            Err(e) => ReaderAnswer::Failed(e),
        }
    }
}
