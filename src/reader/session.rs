//! The reader session of one terminal: discovery, connect and disconnect, display commands,
//! collecting a card and canceling it. It reports connection and payment status through
//! `Events` and knows nothing of payments' storage or the backend.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use futures_util::future::join_all;
use gloo_timers::callback::Timeout;
use pos_protocol::reader::{Cart, PosMessage, ReaderMessage};
use pos_protocol::CardSummary;

use super::websocket::WsConnection;
use super::{Discovered, CANCEL_TIMEOUT_MS, COMMAND_TIMEOUT_MS, CONNECT_TIMEOUT_MS};
use crate::auth::{is_refused_token, Auth};
use crate::error::{PosError, ReaderError};
use crate::events::{ConnectionStatus, Events, PaymentStatus};
use crate::payment::new_payment_id;

/// At most this many reader addresses per discovery.
pub const MAX_DISCOVERY_URLS: usize = 32;

/// What a reader returned for a collect: the card summary and the ciphertext for the backend.
pub struct CardRead {
    pub reader_id: String,
    pub card: CardSummary,
    pub card_payload: String,
}

struct Connected {
    conn: Rc<WsConnection>,
    reader: Discovered,
}

pub struct ReaderSession {
    events: Rc<dyn Events>,
    connected: RefCell<Option<Connected>>,
    connecting: Cell<bool>,
    collecting: RefCell<Option<String>>,
}

/// Opens each reader, pairs, reads what it says about itself and closes again.
async fn probe(urls: &[String], token: &str) -> Vec<Result<Discovered, PosError>> {
    let probes = urls.iter().map(|url| async move {
        let (conn, info) = WsConnection::open(url, token, CONNECT_TIMEOUT_MS).await?;
        conn.close();
        Ok(Discovered {
            info,
            url: url.clone(),
        })
    });
    join_all(probes).await
}

impl ReaderSession {
    pub fn new(events: Rc<dyn Events>) -> Self {
        Self {
            events,
            connected: RefCell::new(None),
            connecting: Cell::new(false),
            collecting: RefCell::new(None),
        }
    }

    /// The readers at `urls` that answered (pairing with a fresh token if one refused ours).
    pub async fn discover(
        &self,
        urls: &[String],
        auth: &Auth,
    ) -> Result<Vec<Discovered>, PosError> {
        if urls.is_empty() || urls.len() > MAX_DISCOVERY_URLS {
            return Err(PosError::InvalidArgument(format!(
                "urls must list 1 to {MAX_DISCOVERY_URLS} reader addresses"
            )));
        }
        let refused = |found: &Vec<Result<Discovered, PosError>>| {
            found
                .iter()
                .any(|r| matches!(r, Err(e) if is_refused_token(e)))
        };
        let found = auth
            .retry_when(|token| async move { probe(urls, &token).await }, refused)
            .await?;
        Ok(found.into_iter().filter_map(Result::ok).collect())
    }

    pub fn is_connected(&self) -> bool {
        self.connected.borrow().is_some()
    }

    /// Connects to the reader at `url`; `Events` hear of an unexpected disconnect later.
    pub async fn connect(self: &Rc<Self>, url: &str, auth: &Auth) -> Result<Discovered, PosError> {
        if self.is_connected() || self.connecting.get() {
            return Err(ReaderError::AlreadyConnected.into());
        }
        self.connecting.set(true);
        self.events.connection_status(ConnectionStatus::Connecting);
        let opened = auth
            .retry(|token| async move { WsConnection::open(url, &token, CONNECT_TIMEOUT_MS).await })
            .await;
        self.connecting.set(false);
        let (conn, info) = match opened {
            Ok(o) => o,
            Err(e) => {
                self.events
                    .connection_status(ConnectionStatus::NotConnected);
                return Err(e);
            }
        };
        let weak: Weak<Self> = Rc::downgrade(self);
        conn.on_disconnect(Box::new(move |err: PosError| {
            if let Some(session) = weak.upgrade() {
                session.connected.borrow_mut().take();
                session
                    .events
                    .connection_status(ConnectionStatus::NotConnected);
                session.events.payment_status(PaymentStatus::NotReady);
                session.events.unexpected_reader_disconnect(&err);
            }
        }));
        let reader = Discovered {
            info,
            url: url.to_string(),
        };
        *self.connected.borrow_mut() = Some(Connected {
            conn,
            reader: reader.clone(),
        });
        self.events.connection_status(ConnectionStatus::Connected);
        self.events.payment_status(PaymentStatus::Ready);
        Ok(reader)
    }

    pub fn disconnect(&self) {
        let taken = self.connected.borrow_mut().take();
        if let Some(c) = taken {
            c.conn.close();
            self.events
                .connection_status(ConnectionStatus::NotConnected);
            self.events.payment_status(PaymentStatus::NotReady);
        }
    }

    fn connection(&self) -> Result<(Rc<WsConnection>, String), PosError> {
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
        let request_id = new_payment_id()?.replacen("pay_", "cmd_", 1);
        let msg = make(request_id.clone());
        match conn
            .request(&request_id, &msg, Some(COMMAND_TIMEOUT_MS))
            .await?
        {
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

    /// Asks the reader for a card for payment `id`.
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
        *self.collecting.borrow_mut() = Some(id.to_string());
        self.events.payment_status(PaymentStatus::WaitingForInput);
        let msg = PosMessage::Collect {
            request_id: id.to_string(),
            amount,
            currency: currency.to_string(),
        };
        let reply = conn.request(id, &msg, None).await;
        *self.collecting.borrow_mut() = None;
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
        Timeout::new(CANCEL_TIMEOUT_MS, move || {
            if let Some(conn) = weak.upgrade() {
                conn.fail_request(&id, PosError::CollectCanceled);
            }
        })
        .forget();
        Ok(())
    }
}
