//! One protocol session with a reader, over any transport: `hello` (pairing), requests
//! matched to replies by request id, heartbeat and silence detection, and the hook that hears
//! of an unexpected end. Written once for WebSocket, WebUSB and the simulated reader.

use std::cell::RefCell;
use std::future::Future;
use std::rc::{Rc, Weak};

use futures_channel::oneshot;
use futures_util::future::{select, Either};
use gloo_timers::callback::Interval;
use gloo_timers::future::TimeoutFuture;
use pos_protocol::reader::{
    parse_reader_frame, Capabilities, FrameError, HelloIntent, PosMessage, ReaderErrorCode,
    ReaderInfo, ReaderMessage, ReaderStatus, PROTOCOL_VERSION,
};

use super::transport::{Inbound, Incoming, Transport};
use super::Timeouts;
use crate::error::{PosError, ReaderError};
use crate::js;
use crate::small_map::SmallMap;

const HELLO_KEY: &str = "\u{0}hello";

type Reply = Result<ReaderMessage, PosError>;
type DisconnectHook = Box<dyn FnOnce(PosError)>;
/// Hears what a reader sends on its own (`store_status`, `forwarded`).
pub type NoticeHook = Rc<dyn Fn(ReaderMessage)>;

/// Reports a reader sends before anyone listens (right after `hello_ack`) wait here.
const MAX_BUFFERED_NOTICES: usize = 64;

#[derive(Default)]
struct Shared {
    waiters: SmallMap<oneshot::Sender<Reply>>,
    closed: bool,
    last_seen: f64,
    next_nonce: u64,
    on_disconnect: Option<DisconnectHook>,
    /// What the reader's `hello_ack` declared it can do.
    capabilities: Capabilities,
    on_notice: Option<NoticeHook>,
    notices: Vec<ReaderMessage>,
}

impl Shared {
    fn resolve(&mut self, key: &str, reply: Reply) {
        if let Some(tx) = self.waiters.remove(key) {
            let _ = tx.send(reply);
        }
    }
}

pub struct Connection {
    transport: RefCell<Option<Box<dyn Transport>>>,
    shared: RefCell<Shared>,
    heartbeat: RefCell<Option<Interval>>,
    timeouts: Timeouts,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(t) = self.transport.get_mut().take() {
            t.close();
        }
    }
}

/// Waits for `rx`, or fails with `on_timeout` after `ms`.
async fn with_timeout<T>(
    rx: oneshot::Receiver<Result<T, PosError>>,
    ms: u32,
    on_timeout: PosError,
) -> Result<T, PosError> {
    match select(rx, TimeoutFuture::new(ms)).await {
        Either::Left((Ok(reply), _)) => reply,
        Either::Left((Err(_canceled), _)) => Err(PosError::Reader(ReaderError::Disconnected)),
        Either::Right(_) => Err(on_timeout),
    }
}

/// What `hello` established.
pub struct Paired {
    pub conn: Rc<Connection>,
    pub info: ReaderInfo,
    pub status: ReaderStatus,
}

impl Connection {
    /// Opens a transport with `open_transport` (given where to deliver what it receives) and
    /// says `hello` with `intent` and the reader's `pairing` credential (none for a
    /// `discover`); fails if either takes longer than `timeouts.connect_ms`.
    pub async fn open<F, Fut>(
        open_transport: F,
        pairing: Option<&str>,
        intent: HelloIntent,
        timeouts: Timeouts,
    ) -> Result<Paired, PosError>
    where
        F: FnOnce(Inbound) -> Fut,
        Fut: Future<Output = Result<Box<dyn Transport>, PosError>>,
    {
        let conn = Rc::new(Connection {
            transport: RefCell::new(None),
            shared: RefCell::new(Shared {
                last_seen: js::now_ms(),
                ..Shared::default()
            }),
            heartbeat: RefCell::new(None),
            timeouts,
        });
        let weak: Weak<Connection> = Rc::downgrade(&conn);
        let inbound: Inbound = Rc::new(move |incoming| {
            if let Some(conn) = weak.upgrade() {
                conn.deliver(incoming);
            }
        });
        let opening = open_transport(inbound);
        let transport = match select(Box::pin(opening), TimeoutFuture::new(timeouts.connect_ms))
            .await
        {
            Either::Left((opened, _)) => opened?,
            Either::Right(_) => {
                return Err(
                    ReaderError::ConnectionFailed("the reader did not open in time".into()).into(),
                )
            }
        };
        *conn.transport.borrow_mut() = Some(transport);

        let hello = PosMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            client: format!("pos-terminal/{}", env!("CARGO_PKG_VERSION")),
            // The reader's own credential, never the backend's connection token.
            pairing: pairing.map(str::to_string),
            intent,
            registration_code: None,
        };
        let reply = conn
            .request(HELLO_KEY, &hello, Some(timeouts.connect_ms))
            .await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                conn.close();
                return Err(e);
            }
        };
        let paired = match reply {
            ReaderMessage::HelloAck {
                protocol_version,
                reader,
                status,
                ..
            } if protocol_version == PROTOCOL_VERSION => Ok((reader, status)),
            ReaderMessage::HelloAck {
                protocol_version, ..
            } => Err(ReaderError::Protocol(format!(
                "reader speaks protocol {protocol_version}, this SDK {PROTOCOL_VERSION}"
            ))
            .into()),
            ReaderMessage::Error {
                code: ReaderErrorCode::Busy,
                ..
            } => Err(ReaderError::Busy.into()),
            ReaderMessage::Error { code, message, .. } => {
                Err(ReaderError::Reported { code, message }.into())
            }
            other => Err(ReaderError::Protocol(format!(
                "expected hello_ack, got {}",
                other.kind()
            ))
            .into()),
        };
        match paired {
            Ok((info, status)) => {
                if intent != HelloIntent::Discover {
                    conn.start_heartbeat();
                }
                Ok(Paired { conn, info, status })
            }
            Err(e) => {
                conn.close();
                Err(e)
            }
        }
    }

    fn start_heartbeat(self: &Rc<Self>) {
        let weak = Rc::downgrade(self);
        let limit = f64::from(self.timeouts.silence_ms);
        let interval = Interval::new(self.timeouts.heartbeat_ms, move || {
            let Some(conn) = weak.upgrade() else { return };
            let silent_for = js::now_ms() - conn.shared.borrow().last_seen;
            if silent_for > limit {
                web_sys::console::warn_1(
                    &format!("pos-terminal: reader silent for {silent_for:.0} ms; dropping it")
                        .into(),
                );
                conn.lost(ReaderError::Disconnected.into());
                return;
            }
            let nonce = {
                let mut s = conn.shared.borrow_mut();
                s.next_nonce += 1;
                s.next_nonce
            };
            let _ = conn.send(&PosMessage::Ping { nonce });
        });
        *self.heartbeat.borrow_mut() = Some(interval);
    }

    /// What the reader's `hello_ack` declared it can do (`process`, `store`).
    pub fn capabilities(&self) -> Capabilities {
        self.shared.borrow().capabilities
    }

    /// Hands every report the reader sends on its own (`store_status`, `forwarded`) to
    /// `hook`, those that arrived before first.
    pub fn on_notice(&self, hook: NoticeHook) {
        let waiting = {
            let mut s = self.shared.borrow_mut();
            s.on_notice = Some(hook.clone());
            std::mem::take(&mut s.notices)
        };
        for msg in waiting {
            hook(msg);
        }
    }

    fn notice(&self, msg: ReaderMessage) {
        let hook = {
            let mut s = self.shared.borrow_mut();
            match &s.on_notice {
                Some(hook) => hook.clone(),
                None => {
                    if s.notices.len() < MAX_BUFFERED_NOTICES {
                        s.notices.push(msg);
                    }
                    return;
                }
            }
        };
        // Outside the borrow: the hook may send (an ack) through this connection.
        hook(msg);
    }

    /// Called once if the reader goes away without `close()` being called.
    pub fn on_disconnect(&self, hook: DisconnectHook) {
        self.shared.borrow_mut().on_disconnect = Some(hook);
    }

    pub fn send(&self, msg: &PosMessage) -> Result<(), PosError> {
        if self.shared.borrow().closed {
            return Err(PosError::Reader(ReaderError::Disconnected));
        }
        match self.transport.borrow().as_ref() {
            Some(t) => t.send(msg),
            None => Err(PosError::Reader(ReaderError::Disconnected)),
        }
    }

    /// Sends `msg` and waits for the reply tagged with `key` (its request id).
    pub async fn request(
        &self,
        key: &str,
        msg: &PosMessage,
        timeout_ms: Option<u32>,
    ) -> Result<ReaderMessage, PosError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.shared.borrow_mut();
            if s.closed {
                return Err(PosError::Reader(ReaderError::Disconnected));
            }
            s.waiters.insert(key.to_string(), tx);
        }
        if let Err(e) = self.send(msg) {
            self.shared.borrow_mut().waiters.remove(key);
            return Err(e);
        }
        match timeout_ms {
            Some(ms) => {
                let r = with_timeout(rx, ms, PosError::Reader(ReaderError::Timeout)).await;
                self.shared.borrow_mut().waiters.remove(key);
                r
            }
            None => rx
                .await
                .unwrap_or(Err(PosError::Reader(ReaderError::Disconnected))),
        }
    }

    /// Ends a pending request locally with `err` (when the reader does not answer a cancel).
    pub fn fail_request(&self, key: &str, err: PosError) {
        self.shared.borrow_mut().resolve(key, Err(err));
    }

    pub fn is_open(&self) -> bool {
        !self.shared.borrow().closed
    }

    /// Ends the session on purpose: no disconnect hook.
    pub fn close(&self) {
        self.shared.borrow_mut().on_disconnect = None;
        self.lost(ReaderError::Disconnected.into());
    }

    /// Ends the session: closes the transport, fails every waiter with `why` and (once, later)
    /// tells the hook, unless `close()` removed it.
    fn lost(&self, why: PosError) {
        let hook = {
            let mut s = self.shared.borrow_mut();
            if s.closed {
                return;
            }
            s.closed = true;
            for (_, tx) in s.waiters.drain() {
                let _ = tx.send(Err(why.clone()));
            }
            s.on_disconnect.take()
        };
        *self.heartbeat.borrow_mut() = None;
        let transport = self.transport.borrow_mut().take();
        if let Some(hook) = hook {
            // Later, outside the transport's own callback: the hook may drop this connection
            // (and with it the closures that are running now).
            wasm_bindgen_futures::spawn_local(async move {
                if let Some(t) = transport {
                    t.close();
                }
                hook(why);
            });
        } else if let Some(t) = transport {
            wasm_bindgen_futures::spawn_local(async move { t.close() });
        }
    }

    fn deliver(&self, incoming: Incoming) {
        match incoming {
            Incoming::Frame(text) => {
                self.shared.borrow_mut().last_seen = js::now_ms();
                self.on_frame(&text);
            }
            Incoming::Refused(why) => {
                self.shared.borrow_mut().last_seen = js::now_ms();
                web_sys::console::warn_1(
                    &format!("pos-terminal: refused reader frame: {why}").into(),
                );
            }
            Incoming::Closed(why) => self.lost(why),
        }
    }

    fn on_frame(&self, text: &str) {
        let msg = match parse_reader_frame(text) {
            Ok(m) => m,
            Err(e) => {
                // The parser's message may quote field values: log only what kind of fault.
                let why = match e {
                    FrameError::TooLarge { bytes } => format!("{bytes} bytes, over the limit"),
                    FrameError::Malformed(_) => format!("malformed ({} bytes)", text.len()),
                    FrameError::Invalid(rule) => rule.to_string(),
                };
                web_sys::console::warn_1(
                    &format!("pos-terminal: refused reader frame: {why}").into(),
                );
                return;
            }
        };
        match msg {
            ReaderMessage::HelloAck { capabilities, .. } => {
                let mut s = self.shared.borrow_mut();
                s.capabilities = capabilities;
                s.resolve(HELLO_KEY, Ok(msg));
            }
            ReaderMessage::CollectStarted { .. } | ReaderMessage::CardEvent { .. } => {}
            // Reports of the reader's own store: to whoever listens (the reader agent).
            ReaderMessage::StoreStatus { .. } | ReaderMessage::Forwarded { .. } => {
                self.notice(msg);
            }
            ReaderMessage::Processed { ref request_id, .. }
            | ReaderMessage::CardRead { ref request_id, .. }
            | ReaderMessage::Canceled { ref request_id, .. }
            | ReaderMessage::Ack { ref request_id } => {
                let key = request_id.clone();
                // A reply to a request nobody waits for (stale or someone else's) is dropped.
                self.shared.borrow_mut().resolve(&key, Ok(msg));
            }
            ReaderMessage::Error {
                request_id: Some(ref id),
                ..
            } => {
                let key = id.clone();
                self.shared.borrow_mut().resolve(&key, Ok(msg));
            }
            ReaderMessage::Error {
                request_id: None,
                code: ReaderErrorCode::TakenOver,
                ..
            } => self.lost(ReaderError::TakenOver.into()),
            ReaderMessage::Error {
                request_id: None,
                code,
                ref message,
            } => {
                let waiting_for_hello = self.shared.borrow().waiters.contains_key(HELLO_KEY);
                if waiting_for_hello {
                    self.shared.borrow_mut().resolve(HELLO_KEY, Ok(msg));
                } else {
                    web_sys::console::warn_1(
                        &format!("pos-terminal: reader error {}: {message}", code.as_str()).into(),
                    );
                }
            }
            ReaderMessage::Ping { nonce } => {
                let _ = self.send(&PosMessage::Pong { nonce });
            }
            ReaderMessage::Pong { .. } => {}
        }
    }
}
