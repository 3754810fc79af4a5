//! One POS's WebSocket session with a simulated reader: `hello` and pairing, the commands
//! (`collect`, `cancel`, `display_cart`, `process`, …), what the admin side tells the session
//! (store changes, forwarded reports, kill, take-over, customer cancel), heartbeat and logs.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use pos_protocol::backend::PaymentBody;
use pos_protocol::outcomes::brand_of;
use pos_protocol::reader::{
    parse_pos_frame, to_frame, CancelSource, CardEventKind, HelloIntent, PosMessage, ProcessMode,
    ReaderErrorCode, ReaderMessage, ReaderStatus, PROTOCOL_VERSION,
};
use pos_protocol::{CardSummary, EntryMode};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use super::{last4, Control, Fault, Reader, Readers, Screen, CAPABILITIES, HEARTBEAT};
use crate::card_crypto::CardData;
use crate::reader_link;
use crate::reader_store::Report;
use crate::util::current_year;

pub(super) async fn run_socket(readers: Arc<Readers>, reader: Arc<Reader>, mut socket: WebSocket) {
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
