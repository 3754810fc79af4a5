//! Forwarding stored payments to the backend, exactly once per payment: the caller holds the
//! Web Lock; each record is marked `forwarding` (a page of them per strict transaction)
//! before its request, and moves on only after the backend answered (`forward_policy`;
//! the answers that arrive together settle in one strict transaction). Transport failures put it
//! back to `pending` with a backoff; nothing is deleted. It knows nothing of the page: what
//! happens is told through `Events`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures_util::future::poll_fn;
use futures_util::stream::{self, StreamExt};
use pos_protocol::backend::{OfflineInfo, PaymentBody};

use crate::backend::Backend;
use crate::error::PosError;
use crate::events::Events;
use crate::forward_policy::{
    intent_abandoned, next_after, settle, ForwardReport, ForwardingFailure, Next, Notify, Settled,
    Stop, FORWARDING_LEASE_MS,
};
use crate::js;
use crate::payment::{Entry, ErrorInfo, Header, SealedBody, StoredPayment, StoredState};
use crate::store::{ForwardQueue, Move, Store};
use crate::weblock;

/// Records opened at once from the queue: what a run holds in memory, whatever the backlog.
const PAGE: u32 = 64;

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

/// A record claimed for this run (`forwarding`, leased), with its body as claimed.
struct Claimed {
    header: Header,
    body: SealedBody,
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
    Answer(Option<Result<Box<Answered>, PosError>>),
    Written(Result<RunOutcome, PosError>),
}

impl Forwarder<'_> {
    /// One pass over the stored payments. `force` ignores backoff (the "forward now" button).
    /// Must run under the Web Lock `scheduler::LOCK_NAME`.
    ///
    /// Records are read a page at a time through the `state` index and each page's records
    /// are claimed together (`forwarding`, leased, attempt counted) in ONE strict
    /// transaction before any of them is sent; `concurrency` requests are in flight at all
    /// times; the answers that arrived while the previous settlement was being written are
    /// settled together in the next strict transaction (one ledger write). A crash anywhere
    /// leaves a claimed record `forwarding`: the next run sends it again with the same key.
    pub async fn run(&self, token: &str, force: bool) -> Result<RunOutcome, PosError> {
        let mut out = RunOutcome::default();
        for id in self.store.quarantine_unreadable().await? {
            let err = PosError::RecordTampered;
            let payment = StoredPayment::from(&Entry {
                header: Header {
                    id,
                    version: 0,
                    state: StoredState::Quarantined,
                    stored_at: 0.0,
                    updated_at: js::now_ms(),
                    next_attempt_at: 0.0,
                },
                body: Err(err.clone()),
            });
            self.events.forwarding_failure(&ForwardingFailure {
                payment,
                code: err.code().into(),
                message: "the record's clear header is unreadable".into(),
                decline_code: None,
            });
            out.report.failed += 1;
        }
        // A request that finds the backend gone (or refuses the token) stops the run: the
        // requests in flight end, the claimed records not sent yet go back to `pending`.
        // One loop polls the page reads and claims, the requests in flight and the
        // settlement being written together, so no transaction waits unpolled (IndexedDB
        // would commit it under it).
        let start = (self.store.forward_queue().await?, VecDeque::new());
        let halt = Cell::new(false);
        let found = RefCell::new(RunOutcome::default());
        // What was not handed out when the source ended (after a stop), for `remaining`.
        let rest = RefCell::new(None);
        let source = stream::unfold(start, |(mut queue, mut claimed)| async {
            if halt.get() {
                *rest.borrow_mut() = Some((queue, claimed));
                return None;
            }
            match self
                .next_claimed(&mut queue, &mut claimed, &found, force)
                .await
            {
                Ok(Some(c)) => Some((Ok(c), (queue, claimed))),
                Ok(None) => None,
                Err(e) => Some((Err(e), (queue, claimed))),
            }
        });
        let answers = source
            .map(|item| async move { self.send(item?, token).await.map(Box::new) })
            .buffer_unordered(self.concurrency.max(1));
        let mut answers = std::pin::pin!(answers);
        let mut ready: Vec<Answered> = Vec::new();
        let mut writing: Option<Writing<'_>> = None;
        let mut answers_done = false;
        let mut failure = None;
        loop {
            if writing.is_none() && !ready.is_empty() {
                writing = Some(Box::pin(self.settle_batch(std::mem::take(&mut ready))));
            }
            if writing.is_none() && answers_done {
                break;
            }
            let event = poll_fn(|cx| {
                if let Some(w) = writing.as_mut() {
                    if let Poll::Ready(r) = w.as_mut().poll(cx) {
                        return Poll::Ready(Event::Written(r));
                    }
                }
                if !answers_done {
                    if let Poll::Ready(a) = answers.poll_next_unpin(cx) {
                        return Poll::Ready(Event::Answer(a));
                    }
                }
                Poll::Pending
            })
            .await;
            match event {
                Event::Written(r) => {
                    writing = None;
                    match r {
                        Ok(one) => out.report.merge(one.report),
                        Err(e) => {
                            failure = failure.or(Some(e));
                            halt.set(true);
                        }
                    }
                }
                Event::Answer(None) => answers_done = true,
                Event::Answer(Some(Ok(a))) => {
                    if a.settled.stop.is_some() {
                        out.stop = a.settled.stop.clone();
                        halt.set(true);
                    }
                    ready.push(*a);
                }
                Event::Answer(Some(Err(e))) => {
                    failure = failure.or(Some(e));
                    halt.set(true);
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        out.report.merge(found.borrow().report);
        let rest = rest.borrow_mut().take();
        if let Some((queue, claimed)) = rest {
            out.report.remaining += claimed.len() as u32 + queue.remaining_outstanding();
            self.release(claimed.into()).await?;
        }
        Ok(out)
    }

    /// The next claimed record, claiming the next page when this one is used up. `None` at
    /// the end of the queue.
    async fn next_claimed(
        &self,
        queue: &mut ForwardQueue,
        claimed: &mut VecDeque<Claimed>,
        found: &RefCell<RunOutcome>,
        force: bool,
    ) -> Result<Option<Claimed>, PosError> {
        loop {
            if let Some(c) = claimed.pop_front() {
                return Ok(Some(c));
            }
            let page = self.store.next_page(queue, PAGE).await?;
            if page.is_empty() {
                return Ok(None);
            }
            let mut candidates = Vec::new();
            for entry in page {
                if let Some(c) = self.eligible(entry, force, found).await? {
                    candidates.push(c);
                }
            }
            claimed.extend(self.claim(candidates).await?);
        }
    }

    /// The record with its body if this run should send it; quarantines tampered ones and
    /// counts the ones left for later in `found`.
    async fn eligible(
        &self,
        entry: Entry,
        force: bool,
        found: &RefCell<RunOutcome>,
    ) -> Result<Option<Claimed>, PosError> {
        let state = entry.header.state;
        if state == StoredState::Quarantined {
            return Ok(None);
        }
        let now = js::now_ms();
        // An intent is an online attempt in progress (in this tab or another) until it is
        // old enough to have been abandoned; then it is forwarded like `pending`.
        let abandoned =
            state == StoredState::Intent && intent_abandoned(entry.header.updated_at, now);
        let body = match entry.body {
            Ok(b) => b,
            Err(PosError::UnknownSchemaVersion(_)) => {
                // Written by a newer SDK: leave it for that version to forward.
                if state.is_outstanding() || abandoned {
                    found.borrow_mut().report.remaining += 1;
                }
                return Ok(None);
            }
            Err(err) => {
                let mut quarantined = RunOutcome::default();
                let entry = Entry {
                    header: entry.header,
                    body: Err(err),
                };
                self.quarantine(entry, &mut quarantined).await?;
                found.borrow_mut().report.merge(quarantined.report);
                return Ok(None);
            }
        };
        if !state.is_outstanding() && !abandoned {
            return Ok(None);
        }
        let header = entry.header;
        let backing_off = !force && state == StoredState::Pending && header.next_attempt_at > now;
        // Under the Web Lock a `forwarding` record is a crashed try, taken at once; without
        // Web Locks another context may be sending it, so it is taken only once its lease
        // ran out.
        let leased = state == StoredState::Forwarding
            && !weblock::available()
            && header.next_attempt_at > now;
        if backing_off || leased {
            found.borrow_mut().report.remaining += 1;
            return Ok(None);
        }
        Ok(Some(Claimed { header, body }))
    }

    /// Marks `candidates` in flight (`forwarding`, leased, one more attempt) in one strict
    /// transaction, before any of them is sent: a crash from there on leaves them
    /// `forwarding`, sent again later with the same key, never lost and never charged twice.
    /// Records someone else moved meanwhile are left out.
    async fn claim(&self, candidates: Vec<Claimed>) -> Result<Vec<Claimed>, PosError> {
        let lease = js::now_ms() + FORWARDING_LEASE_MS;
        let bodies: Vec<SealedBody> = candidates
            .iter()
            .map(|c| SealedBody {
                attempts: c.body.attempts.saturating_add(1),
                ..c.body.clone()
            })
            .collect();
        let moves: Vec<Move> = candidates
            .iter()
            .zip(&bodies)
            .map(|(c, body)| Move {
                header: &c.header,
                to: StoredState::Forwarding,
                body,
                next_attempt_at: lease,
            })
            .collect();
        let moved = self.store.transition_many(&moves).await?;
        Ok(moved
            .into_iter()
            .zip(bodies)
            .filter_map(|(h, body)| h.map(|header| Claimed { header, body }))
            .collect())
    }

    /// Claimed records a stopped run did not send, back to `pending` as they were (their
    /// attempt given back), in one strict transaction.
    async fn release(&self, claimed: Vec<Claimed>) -> Result<(), PosError> {
        let bodies: Vec<SealedBody> = claimed
            .iter()
            .map(|c| SealedBody {
                attempts: c.body.attempts.saturating_sub(1),
                ..c.body.clone()
            })
            .collect();
        let now = js::now_ms();
        let moves: Vec<Move> = claimed
            .iter()
            .zip(&bodies)
            .map(|(c, body)| Move {
                header: &c.header,
                to: StoredState::Pending,
                body,
                next_attempt_at: now,
            })
            .collect();
        self.store.transition_many(&moves).await?;
        Ok(())
    }

    /// Sends one claimed record and decides how it settles (nothing written yet).
    async fn send(&self, claimed: Claimed, token: &str) -> Result<Answered, PosError> {
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
        Ok(Answered {
            header,
            body,
            settled,
        })
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

    /// Moves a record that failed authentication to `quarantined` and reports it; it is kept
    /// (sealed bytes untouched) for inspection and never sent.
    async fn quarantine(&self, entry: Entry, out: &mut RunOutcome) -> Result<(), PosError> {
        let Err(err) = &entry.body else {
            return Ok(());
        };
        let Some(header) = self
            .store
            .transition(&entry.header, StoredState::Quarantined, None, 0.0)
            .await?
        else {
            return Ok(());
        };
        let quarantined = Entry {
            header,
            body: Err(err.clone()),
        };
        self.events.forwarding_failure(&ForwardingFailure {
            payment: (&quarantined).into(),
            code: err.code().into(),
            message: err.to_string(),
            decline_code: None,
        });
        out.report.failed += 1;
        Ok(())
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
