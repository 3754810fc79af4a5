//! Forwarding stored payments to the backend, exactly once per payment: the caller holds the
//! Web Lock; each record is marked `forwarding` (a page of them per strict transaction)
//! before its request, and moves on only after the backend answered (`forward_policy`;
//! answers are gathered, 16 or what 100 ms brings, and settled in one strict transaction).
//! Transport failures put it back to `pending` with a backoff; nothing is deleted. It knows
//! nothing of the page: what happens is told through `Events`. `source` reads and claims the
//! records (the next page while the current one is sent); this module sends them and settles
//! the answers.

mod source;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures_util::future::poll_fn;
use futures_util::stream::{self, StreamExt};
use gloo_timers::future::TimeoutFuture;
use pos_protocol::backend::{OfflineInfo, PaymentBody};

use crate::backend::Backend;
use crate::error::PosError;
use crate::events::Events;
use crate::forward_policy::{
    next_after, settle, ForwardReport, ForwardingFailure, Next, Notify, Settled, Stop,
};
use crate::js;
use crate::payment::{Entry, ErrorInfo, Header, SealedBody, StoredPayment, StoredState};
use crate::store::{Move, Store};
use source::{Claimed, Source, StartRead};

/// Each settlement costs a strict transaction and a rewrite of the sealed ledger whatever its
/// size, so answers are gathered: a settlement starts once this many are waiting (more, if
/// more arrived while the previous one was written), ...
const SETTLE_BATCH: usize = 16;

/// ... or once the first of them has waited this long, or when no request is left in flight.
/// An answered record not settled yet is still `forwarding`: after a crash it is sent again
/// with the same idempotency key and the backend replays its answer; the wait only delays
/// `paymentForwarded` events and the pending count by this much.
const SETTLE_WAIT_MS: u32 = 100;

/// What one run did, and why it stopped early if it did.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    pub report: ForwardReport,
    pub stop: Option<Stop>,
}

pub struct Forwarder<'a> {
    pub store: &'a Store,
    pub backend: &'a Backend,
    pub events: &'a dyn Events,
    /// Requests in flight at once while draining.
    pub concurrency: usize,
    /// Set by the terminal's `close()`: no further record is sent; the requests in flight
    /// end and are settled, and the records claimed and not sent go back to `pending`.
    pub closing: &'a Cell<bool>,
}

fn body_for(header: &Header, body: &SealedBody) -> Option<PaymentBody> {
    Some(PaymentBody {
        id: header.id.clone(),
        amount: body.amount,
        currency: body.currency.clone(),
        capture_method: body.capture_method,
        card_payload: body.card_payload.clone()?,
        card: body.card.clone(),
        reader_id: body.reader_id.clone(),
        offline: Some(OfflineInfo {
            stored_at: header.stored_at.max(0.0) as u64,
        }),
        metadata: body.metadata.clone(),
    })
}

/// A claimed record after its request: how it settles.
struct Answered {
    header: Header,
    body: SealedBody,
    settled: Settled,
}

/// A settlement being written.
type Writing<'a> = Pin<Box<dyn Future<Output = Result<RunOutcome, PosError>> + 'a>>;

/// What the run loop waits for next.
enum Event {
    /// The next page was read and claimed (or failed to be).
    Read(Result<(), PosError>),
    Answer(Option<Box<Answered>>),
    Written(Result<RunOutcome, PosError>),
    /// The answers waiting to be settled have waited `SETTLE_WAIT_MS`.
    Due,
}

impl Forwarder<'_> {
    /// One pass over the stored payments. `force` ignores backoff (the "forward now" button).
    /// Must run under the Web Lock `scheduler::LOCK_NAME`.
    ///
    /// Records are read a page at a time through the `state` index and each page's records
    /// are claimed together (`forwarding`, leased, attempt counted) in ONE strict
    /// transaction before any of them is sent; the next page is read and claimed while this
    /// one is sent (`source`); `concurrency` requests are in flight at all times; answers are
    /// gathered (`SETTLE_BATCH`, `SETTLE_WAIT_MS`) and settled together in one strict
    /// transaction (one ledger write), one settlement written at a time. A crash anywhere
    /// leaves a claimed record `forwarding`: the next run sends it again with the same key.
    pub async fn run(&self, token: &str, force: bool) -> Result<RunOutcome, PosError> {
        let mut out = RunOutcome::default();
        let queue = self.store.forward_queue().await?;
        if queue.unlisted {
            self.quarantine_unreadable(&mut out).await?;
        }
        // Before anything this run does could rebuild the ledger from the records (a
        // quarantine on a page does), which would forget the payments it counts and no
        // outstanding record shows.
        if queue.ledger_mismatch {
            self.quarantine_flipped(&mut out).await?;
        }
        let found = RefCell::new(RunOutcome::default());
        let start: StartRead<'_> =
            Box::new(|queue, size| Box::pin(self.read_page(queue, size, &found, force)));
        let source = RefCell::new(Source::new(queue, start));
        let drained = self.drain(&source, token).await;
        // However the run ended (a stop, a failure), the records it claimed and did not send
        // go back to `pending`, a prefetched page's too; with the queue's rest they are left.
        let (unsent, outstanding) = source.borrow_mut().unsent();
        let left = unsent.len() as u32 + outstanding;
        let released = self.release(unsent).await;
        let drained = drained?;
        released?;
        out.stop = drained.stop;
        out.report.merge(drained.report);
        out.report.merge(found.borrow().report);
        out.report.remaining += left;
        Ok(out)
    }

    /// Moves the records whose clear header is unreadable to `quarantined` and reports them
    /// (a search of every record: only when some record is in no state's list).
    async fn quarantine_unreadable(&self, out: &mut RunOutcome) -> Result<(), PosError> {
        for id in self.store.quarantine_unreadable().await? {
            self.report_unreadable(id, &mut out.report);
        }
        Ok(())
    }

    /// Moves the finished records that fail authentication (a clear state flipped out of
    /// `pending` or `forwarding`) to `quarantined` and reports them (a search of the finished
    /// records: only when the sealed ledger counts more outstanding payments than are listed).
    async fn quarantine_flipped(&self, out: &mut RunOutcome) -> Result<(), PosError> {
        for header in self.store.quarantine_flipped().await? {
            let err = PosError::RecordTampered;
            self.report_quarantined(header, &err, err.to_string(), &mut out.report);
        }
        Ok(())
    }

    /// Tells the caller about a record moved to `quarantined` because its clear header is
    /// unreadable, and counts it as failed.
    fn report_unreadable(&self, id: String, report: &mut ForwardReport) {
        let header = Header {
            id,
            version: 0,
            state: StoredState::Quarantined,
            stored_at: 0.0,
            updated_at: js::now_ms(),
            next_attempt_at: 0.0,
        };
        let message = "the record's clear header is unreadable".to_string();
        self.report_quarantined(header, &PosError::RecordTampered, message, report);
    }

    /// Reports a record now `quarantined` (`header`) for `err` through
    /// `onForwardingFailure`, and counts it as failed.
    fn report_quarantined(
        &self,
        header: Header,
        err: &PosError,
        message: String,
        report: &mut ForwardReport,
    ) {
        let payment = StoredPayment::from(&Entry {
            header,
            body: Err(err.clone()),
        });
        self.events.forwarding_failure(&ForwardingFailure {
            payment,
            code: err.code().into(),
            message,
            decline_code: None,
        });
        report.failed += 1;
    }

    /// Sends what `source` hands out, `concurrency` requests at a time, and settles the
    /// answers, until the source is used up or the run stops. A request that finds the
    /// backend gone (or refuses the token) stops it: the requests in flight end, the page
    /// being read is read to its end, the settlements are written; nothing more is sent.
    /// One loop polls the page read, the requests in flight and the settlement being written
    /// together, so no transaction waits unpolled (IndexedDB would commit it under it).
    async fn drain(
        &self,
        source: &RefCell<Source<'_>>,
        token: &str,
    ) -> Result<RunOutcome, PosError> {
        let in_flight = Cell::new(0usize);
        let answers = stream::poll_fn(|_| {
            let mut source = source.borrow_mut();
            if self.closing.get() {
                source.halt();
            }
            source.next()
        })
        .map(|claimed| {
            in_flight.set(in_flight.get() + 1);
            async move { Box::new(self.send(claimed, token).await) }
        })
        .buffer_unordered(self.concurrency.max(1));
        let mut answers = std::pin::pin!(answers);
        let mut out = RunOutcome::default();
        let mut ready: Vec<Answered> = Vec::new();
        // Runs from the first answer waiting to be settled.
        let mut wait: Option<TimeoutFuture> = None;
        let mut waited = false;
        let mut writing: Option<Writing<'_>> = None;
        let mut answers_done = false;
        let mut failure = None;
        loop {
            let due = ready.len() >= SETTLE_BATCH || in_flight.get() == 0 || answers_done || waited;
            if writing.is_none() && !ready.is_empty() && due {
                writing = Some(Box::pin(self.settle_batch(std::mem::take(&mut ready))));
                wait = None;
                waited = false;
            }
            if ready.is_empty() {
                wait = None;
            } else if wait.is_none() && !waited {
                wait = Some(TimeoutFuture::new(SETTLE_WAIT_MS));
            }
            if writing.is_none() && answers_done && !source.borrow().reading() {
                break;
            }
            let event = poll_fn(|cx| {
                // The requests first: a slot an answer freed is refilled before a settlement
                // is sealed and written.
                if !answers_done {
                    if let Poll::Ready(a) = answers.poll_next_unpin(cx) {
                        return Poll::Ready(Event::Answer(a));
                    }
                }
                if let Some(w) = writing.as_mut() {
                    if let Poll::Ready(r) = w.as_mut().poll(cx) {
                        return Poll::Ready(Event::Written(r));
                    }
                }
                // After the requests: handing records out may have made the next read due.
                if let Poll::Ready(r) = source.borrow_mut().poll_read(cx) {
                    return Poll::Ready(Event::Read(r));
                }
                if let Some(w) = wait.as_mut() {
                    if Pin::new(w).poll(cx).is_ready() {
                        return Poll::Ready(Event::Due);
                    }
                }
                Poll::Pending
            })
            .await;
            let stopped = match event {
                Event::Written(Ok(one)) => {
                    writing = None;
                    out.report.merge(one.report);
                    None
                }
                Event::Written(Err(e)) => {
                    writing = None;
                    Some(e)
                }
                // Its records are handed out as the loop polls the requests again.
                Event::Read(Ok(())) => None,
                Event::Read(Err(e)) => Some(e),
                Event::Answer(None) => {
                    answers_done = true;
                    None
                }
                Event::Due => {
                    wait = None;
                    waited = true;
                    None
                }
                Event::Answer(Some(a)) => {
                    in_flight.set(in_flight.get().saturating_sub(1));
                    if a.settled.stop.is_some() {
                        out.stop = a.settled.stop.clone();
                        source.borrow_mut().halt();
                    }
                    ready.push(*a);
                    None
                }
            };
            if let Some(e) = stopped {
                failure = failure.or(Some(e));
                source.borrow_mut().halt();
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Sends one claimed record and decides how it settles (nothing written yet).
    async fn send(&self, claimed: Claimed, token: &str) -> Answered {
        let Claimed { header, mut body } = claimed;
        let next = match body_for(&header, &body) {
            Some(request) => next_after(&self.backend.create_payment(token, &request).await),
            None => Next::Failed(ErrorInfo {
                code: "internal_error".into(),
                message: "the stored payment has no card payload".into(),
            }),
        };
        let mut report = ForwardReport::default();
        let settled = settle(
            next,
            &mut body,
            js::now_ms(),
            js::random_unit(),
            &mut report,
        );
        Answered {
            header,
            body,
            settled,
        }
    }

    /// Writes the answers that arrived together in one strict transaction, then tells the
    /// caller about each record that moved.
    async fn settle_batch(&self, answered: Vec<Answered>) -> Result<RunOutcome, PosError> {
        let moves: Vec<Move> = answered
            .iter()
            .map(|a| Move {
                header: &a.header,
                to: a.settled.state,
                body: &a.body,
                next_attempt_at: a.settled.next_attempt_at,
            })
            .collect();
        let moved = self.store.transition_many(&moves).await?;
        let mut out = RunOutcome::default();
        for (a, header) in answered.into_iter().zip(moved) {
            // `None`: moved by someone else meanwhile (only possible without Web Locks):
            // theirs stands.
            let Some(header) = header else {
                continue;
            };
            count(&a.settled, &mut out.report);
            self.notify(header, a.body, a.settled.notify);
        }
        Ok(out)
    }

    fn notify(&self, header: Header, body: SealedBody, notify: Notify) {
        let payment = StoredPayment::from(&Entry {
            header,
            body: Ok(body.clone()),
        });
        match notify {
            Notify::Forwarded => self.events.payment_forwarded(&payment),
            Notify::Failure { decline_code } => {
                let error = body.last_error.unwrap_or(ErrorInfo {
                    code: "internal_error".into(),
                    message: String::new(),
                });
                self.events.forwarding_failure(&ForwardingFailure {
                    payment,
                    code: error.code,
                    message: error.message,
                    decline_code,
                });
            }
            Notify::Nothing => {}
        }
    }
}

/// Counts a settled record in `report` as `forward_policy::settle` did.
fn count(settled: &Settled, report: &mut ForwardReport) {
    match settled.state {
        StoredState::Forwarded => report.forwarded += 1,
        StoredState::Declined => report.declined += 1,
        StoredState::Failed => report.failed += 1,
        _ => report.remaining += 1,
    }
}
