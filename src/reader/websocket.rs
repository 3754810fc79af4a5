//! The WebSocket transport: one frame per text message. Closures live in the struct and are
//! unregistered on drop (no `.forget()`), as gloo-net does.

use std::cell::RefCell;
use std::rc::Rc;

use futures_channel::oneshot;
use js_sys::JsString;
use pos_protocol::reader::{to_frame, PosMessage, MAX_FRAME_BYTES};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};

use super::transport::{Inbound, Incoming, Transport};
use crate::error::{PosError, ReaderError};

pub struct WsTransport {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
}

impl Drop for WsTransport {
    fn drop(&mut self) {
        self.detach();
    }
}

impl WsTransport {
    fn detach(&self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close();
    }

    /// Opens `url`; resolves once the socket is open (the caller bounds the wait).
    pub async fn open(url: &str, inbound: Inbound) -> Result<Box<dyn Transport>, PosError> {
        // wss:// except on loopback (also checked before discovery and connect).
        super::check_reader_url(url)?;
        let ws = WebSocket::new(url).map_err(|e| {
            PosError::from(ReaderError::ConnectionFailed(
                crate::js::js_error_name(&e).unwrap_or_default(),
            ))
        })?;
        let (open_tx, open_rx) = oneshot::channel::<bool>();
        let opened = Rc::new(RefCell::new(Some(open_tx)));

        let o = opened.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            if let Some(tx) = o.borrow_mut().take() {
                let _ = tx.send(true);
            }
        });
        let i = inbound.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let data = e.data();
            let Some(text) = data.dyn_ref::<JsString>() else {
                i(Incoming::Refused("a binary frame".into()));
                return;
            };
            // UTF-16 units never outnumber UTF-8 bytes: refuse before copying into wasm.
            let units = text.length() as usize;
            if units > MAX_FRAME_BYTES {
                i(Incoming::Refused(format!("a frame of {units} characters")));
                return;
            }
            i(Incoming::Frame(String::from(text)));
        });
        let o = opened.clone();
        let i = inbound;
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_e: CloseEvent| {
            if let Some(tx) = o.borrow_mut().take() {
                let _ = tx.send(false);
            }
            i(Incoming::Closed(ReaderError::Disconnected.into()));
        });
        let on_error = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
            // A `close` event always follows; it does the work.
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let transport = WsTransport {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
            _on_error: on_error,
        };
        match open_rx.await {
            Ok(true) => Ok(Box::new(transport)),
            _ => Err(ReaderError::ConnectionFailed(format!("{url} refused the connection")).into()),
        }
    }
}

impl Transport for WsTransport {
    fn send(&self, msg: &PosMessage) -> Result<(), PosError> {
        self.ws
            .send_with_str(&to_frame(msg))
            .map_err(|_| PosError::Reader(ReaderError::Disconnected))
    }

    fn close(&self) {
        self.detach();
    }
}
