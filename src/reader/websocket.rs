//! A reader session over WebSocket: one JSON message per text frame. Closures live in the
//! struct and are unregistered on drop (no `.forget()`), as gloo-net does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;
use futures_util::future::{select, Either};
use gloo_timers::callback::Interval;
use gloo_timers::future::TimeoutFuture;
use pos_protocol::reader::{
    parse_reader_frame, to_frame, FrameError, PosMessage, ReaderInfo, ReaderMessage,
    PROTOCOL_VERSION,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};

use super::{HEARTBEAT_MS, SILENCE_LIMIT_MS};
use crate::error::{PosError, ReaderError};
use crate::js;

const HELLO_KEY: &str = "\u{0}hello";

type Reply = Result<ReaderMessage, PosError>;
type DisconnectHook = Box<dyn FnMut(PosError)>;

#[derive(Default)]
struct Shared {
    waiters: HashMap<String, oneshot::Sender<Reply>>,
    opened: Option<oneshot::Sender<Result<(), PosError>>>,
    closed: bool,
    closing_on_purpose: bool,
    last_seen: f64,
    next_nonce: u64,
    on_disconnect: Option<DisconnectHook>,
}

impl Shared {
    fn resolve(&mut self, key: &str, reply: Reply) {
        if let Some(tx) = self.waiters.remove(key) {
            let _ = tx.send(reply);
        }
    }

    fn fail_all(&mut self, err: PosError) {
        for (_, tx) in self.waiters.drain() {
            let _ = tx.send(Err(err.clone()));
        }
        if let Some(tx) = self.opened.take() {
            let _ = tx.send(Err(err));
        }
    }
}

pub struct WsConnection {
    ws: WebSocket,
    shared: Rc<RefCell<Shared>>,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
    heartbeat: RefCell<Option<Interval>>,
}

impl Drop for WsConnection {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        self.shared.borrow_mut().closing_on_purpose = true;
        let _ = self.ws.close();
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

impl WsConnection {
    /// Opens the socket and pairs with `hello`; fails if either takes longer than `timeout_ms`.
    pub async fn open(
        url: &str,
        token: &str,
        timeout_ms: u32,
    ) -> Result<(Rc<WsConnection>, ReaderInfo), PosError> {
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(PosError::InvalidArgument(format!(
                "reader url must start with ws:// or wss://, got {url:?}"
            )));
        }
        let ws = WebSocket::new(url).map_err(|e| {
            PosError::from(ReaderError::ConnectionFailed(
                crate::js::js_error_name(&e).unwrap_or_default(),
            ))
        })?;
        let shared = Rc::new(RefCell::new(Shared {
            last_seen: js::now_ms(),
            ..Shared::default()
        }));
        let (open_tx, open_rx) = oneshot::channel();
        shared.borrow_mut().opened = Some(open_tx);

        let s = shared.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            if let Some(tx) = s.borrow_mut().opened.take() {
                let _ = tx.send(Ok(()));
            }
        });
        let s = shared.clone();
        let socket = ws.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            on_frame(&s, &socket, e.data());
        });
        let s = shared.clone();
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_e: CloseEvent| {
            on_closed(&s);
        });
        let on_error = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            // A `close` event always follows; it does the work.
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));

        let conn = Rc::new(WsConnection {
            ws,
            shared,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
            _on_error: on_error,
            heartbeat: RefCell::new(None),
        });

        with_timeout(
            open_rx,
            timeout_ms,
            ReaderError::ConnectionFailed(format!("{url} did not open in time")).into(),
        )
        .await
        .map_err(|e| match e {
            PosError::Reader(ReaderError::Disconnected) => {
                ReaderError::ConnectionFailed(format!("{url} refused the connection")).into()
            }
            other => other,
        })?;

        let hello = PosMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            client: format!("pos-terminal/{}", env!("CARGO_PKG_VERSION")),
            token: token.to_string(),
        };
        let reply = conn.request(HELLO_KEY, &hello, Some(timeout_ms)).await?;
        match reply {
            ReaderMessage::HelloAck {
                protocol_version,
                reader,
            } if protocol_version == PROTOCOL_VERSION => {
                conn.start_heartbeat();
                Ok((conn, reader))
            }
            ReaderMessage::HelloAck {
                protocol_version, ..
            } => Err(ReaderError::Protocol(format!(
                "reader speaks protocol {protocol_version}, this SDK {PROTOCOL_VERSION}"
            ))
            .into()),
            ReaderMessage::Error { code, message, .. } => {
                Err(ReaderError::Reported { code, message }.into())
            }
            other => Err(ReaderError::Protocol(format!(
                "expected hello_ack, got {}",
                other.kind()
            ))
            .into()),
        }
    }

    fn start_heartbeat(self: &Rc<Self>) {
        let weak = Rc::downgrade(self);
        let interval = Interval::new(HEARTBEAT_MS, move || {
            let Some(conn) = weak.upgrade() else { return };
            let silent_for = js::now_ms() - conn.shared.borrow().last_seen;
            if silent_for > SILENCE_LIMIT_MS {
                // Dead peer: close; `on_closed` reports the unexpected disconnect.
                let _ = conn.ws.close();
                on_closed(&conn.shared);
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

    /// Called once if the reader goes away without `close()` being called.
    pub fn on_disconnect(&self, hook: DisconnectHook) {
        self.shared.borrow_mut().on_disconnect = Some(hook);
    }

    pub fn send(&self, msg: &PosMessage) -> Result<(), PosError> {
        if self.shared.borrow().closed {
            return Err(PosError::Reader(ReaderError::Disconnected));
        }
        self.ws
            .send_with_str(&to_frame(msg))
            .map_err(|_| PosError::Reader(ReaderError::Disconnected))
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

    pub fn close(&self) {
        {
            let mut s = self.shared.borrow_mut();
            s.closing_on_purpose = true;
            s.on_disconnect = None;
        }
        *self.heartbeat.borrow_mut() = None;
        let _ = self.ws.close();
        on_closed(&self.shared);
    }
}

fn on_frame(shared: &Rc<RefCell<Shared>>, ws: &WebSocket, data: JsValue) {
    shared.borrow_mut().last_seen = js::now_ms();
    let Some(text) = data.as_string() else {
        web_sys::console::warn_1(&"pos-terminal: reader sent a binary frame; ignored".into());
        return;
    };
    let msg = match parse_reader_frame(&text) {
        Ok(m) => m,
        Err(e) => {
            // The parser's message may quote field values: log only what kind of fault.
            let why = match e {
                FrameError::TooLarge { bytes } => format!("{bytes} bytes, over the limit"),
                FrameError::Malformed(_) => format!("malformed ({} bytes)", text.len()),
                FrameError::Invalid(rule) => rule.to_string(),
            };
            web_sys::console::warn_1(&format!("pos-terminal: refused reader frame: {why}").into());
            return;
        }
    };
    let mut s = shared.borrow_mut();
    match msg {
        ReaderMessage::HelloAck { .. } => s.resolve(HELLO_KEY, Ok(msg)),
        ReaderMessage::CollectStarted { .. } => {}
        ReaderMessage::CardRead { ref request_id, .. }
        | ReaderMessage::Canceled { ref request_id }
        | ReaderMessage::Ack { ref request_id } => {
            let key = request_id.clone();
            s.resolve(&key, Ok(msg));
        }
        ReaderMessage::Error {
            request_id: Some(ref id),
            ..
        } => {
            let key = id.clone();
            s.resolve(&key, Ok(msg));
        }
        ReaderMessage::Error {
            request_id: None, ..
        } => {
            if s.waiters.contains_key(HELLO_KEY) {
                s.resolve(HELLO_KEY, Ok(msg));
            } else if let ReaderMessage::Error { code, message, .. } = msg {
                web_sys::console::warn_1(
                    &format!("pos-terminal: reader error {}: {message}", code.as_str()).into(),
                );
            }
        }
        ReaderMessage::Ping { nonce } => {
            let _ = ws.send_with_str(&to_frame(&PosMessage::Pong { nonce }));
        }
        ReaderMessage::Pong { .. } => {}
    }
}

fn on_closed(shared: &Rc<RefCell<Shared>>) {
    let hook = {
        let mut s = shared.borrow_mut();
        if s.closed {
            return;
        }
        s.closed = true;
        s.fail_all(PosError::Reader(ReaderError::Disconnected));
        if s.closing_on_purpose {
            None
        } else {
            s.on_disconnect.take()
        }
    };
    if let Some(mut hook) = hook {
        hook(PosError::Reader(ReaderError::Disconnected));
    }
}
