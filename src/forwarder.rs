//! Forwarding stored payments to the backend, exactly once per payment: the caller holds the
//! Web Lock; each record is marked `forwarding` (strict transaction) before its request, and
//! moves on only after the backend answered (`forward_policy`). Transport failures put it
//! back to `pending` with a backoff; nothing is deleted. It knows nothing of the page: what
//! happens is told through `Events`.

use std::cell::{Cell, RefCell};

use futures_util::stream::{self, StreamExt};
use pos_protocol::backend::{OfflineInfo, PaymentBody};

use crate::backend::Backend;
use crate::error::PosError;
use crate::events::Events;
use crate::forward_policy::{
    intent_abandoned, next_after, settle, ForwardReport, ForwardingFailure, Next, Notify, Stop,
    FORWARDING_LEASE_MS,
};
use crate::js;
use crate::payment::{Entry, ErrorInfo, Header, SealedBody, StoredPayment, StoredState};
use crate::store::{ForwardQueue, Store};
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

impl Forwarder<'_> {
    /// One pass over the stored payments. `force` ignores backoff (the "forward now" button).
    /// Must run under the Web Lock `scheduler::LOCK_NAME`.
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
        // `concurrency` requests in flight at all times, a new one as soon as one ends; the
        // records come a page at a time through the `state` index. A request that finds the
        // backend gone stops the run (the scheduler probed `/v1/health` before it): the
        // requests in flight end, the rest stays pending. One stream polls the page reads
        // and the requests in flight together, so no transaction of either waits unpolled
        // (IndexedDB would commit it under it).
        let start = (self.store.forward_queue().await?, Vec::new().into_iter());
        let halt = Cell::new(false);
        let found = RefCell::new(RunOutcome::default());
        // What was not handed out when the source ended (after a stop), for `remaining`.
        let rest = RefCell::new(None);
        let source = stream::unfold(start, |(mut queue, mut page)| async {
            if halt.get() {
                *rest.borrow_mut() = Some((queue, page));
                return None;
            }
            match self.next_entry(&mut queue, &mut page, &found).await {
                Ok(Some(entry)) => Some((Ok(entry), (queue, page))),
                Ok(None) => None,
                Err(e) => Some((Err(e), (queue, page))),
            }
        });
        let results = source
            .map(|item| async move { self.forward_one(item?, token, force).await })
            .buffer_unordered(self.concurrency.max(1));
        let mut results = std::pin::pin!(results);
        let mut failure = None;
        while let Some(one) = results.next().await {
            match one {
                Ok(one) => {
                    out.report.merge(one.report);
                    if one.stop.is_some() {
                        out.stop = one.stop;
                        halt.set(true);
                    }
                }
                Err(e) => {
                    failure = failure.or(Some(e));
                    halt.set(true);
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        out.report.merge(found.borrow().report);
        if let Some((queue, page)) = rest.borrow_mut().take() {
            let left_in_page = page.filter(|e| e.header.state.is_outstanding()).count() as u32;
            out.report.remaining += left_in_page + queue.remaining_outstanding();
        }
        Ok(out)
    }

    /// The next record to forward, from the page or the next one; quarantines tampered ones
    /// (reported in `found`) and skips intents still in progress on the way. `None` at the
    /// end of the queue.
    async fn next_entry(
        &self,
        queue: &mut ForwardQueue,
        page: &mut std::vec::IntoIter<Entry>,
        found: &RefCell<RunOutcome>,
    ) -> Result<Option<Entry>, PosError> {
        loop {
            let Some(entry) = page.next() else {
                let next = self.store.next_page(queue, PAGE).await?;
                if next.is_empty() {
                    return Ok(None);
                }
                *page = next.into_iter();
                continue;
            };
            let state = entry.header.state;
            if state == StoredState::Quarantined {
                continue;
            }
            if let Err(PosError::RecordTampered) = entry.body {
                let mut quarantined = RunOutcome::default();
                self.quarantine(entry, &mut quarantined).await?;
                found.borrow_mut().report.merge(quarantined.report);
                continue;
            }
            // An intent is an online attempt in progress (in this tab or another) until it
            // is old enough to have been abandoned; then it is forwarded like `pending`.
            let abandoned = state == StoredState::Intent
                && intent_abandoned(entry.header.updated_at, js::now_ms());
            if !state.is_outstanding() && !abandoned {
                continue;
            }
            return Ok(Some(entry));
        }
    }

    async fn forward_one(
        &self,
        entry: Entry,
        token: &str,
        force: bool,
    ) -> Result<RunOutcome, PosError> {
        let mut out = RunOutcome::default();
        self.forward_entry(entry, token, force, &mut out).await?;
        Ok(out)
    }

    async fn forward_entry(
        &self,
        entry: Entry,
        token: &str,
        force: bool,
        out: &mut RunOutcome,
    ) -> Result<(), PosError> {
        let header = entry.header.clone();
        let mut body = match entry.body {
            Ok(b) => b,
            Err(PosError::UnknownSchemaVersion(_)) => {
                // Written by a newer SDK: leave it for that version to forward.
                out.report.remaining += 1;
                return Ok(());
            }
            Err(err) => {
                let entry = Entry {
                    header,
                    body: Err(err),
                };
                return self.quarantine(entry, out).await;
            }
        };
        let now = js::now_ms();
        let backing_off =
            !force && header.state == StoredState::Pending && header.next_attempt_at > now;
        // Under the Web Lock a `forwarding` record is a crashed try, taken at once; without
        // Web Locks another context may be sending it, so it is taken only once its lease
        // ran out.
        let leased = header.state == StoredState::Forwarding
            && !weblock::available()
            && header.next_attempt_at > now;
        if backing_off || leased {
            out.report.remaining += 1;
            return Ok(());
        }
        // Mark in flight first: a crash from here on leaves `forwarding`, retried later with
        // the same key, never lost and never charged twice.
        body.attempts = body.attempts.saturating_add(1);
        let Some(in_flight) = self
            .store
            .transition(
                &header,
                StoredState::Forwarding,
                Some(&body),
                now + FORWARDING_LEASE_MS,
            )
            .await?
        else {
            return Ok(());
        };
        let next = match body_for(&in_flight, &body) {
            Some(request) => next_after(&self.backend.create_payment(token, &request).await),
            None => Next::Failed(ErrorInfo {
                code: "internal_error".into(),
                message: "the stored payment has no card payload".into(),
            }),
        };
        self.finish(&in_flight, body, next, out).await
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

    async fn finish(
        &self,
        header: &Header,
        mut body: SealedBody,
        next: Next,
        out: &mut RunOutcome,
    ) -> Result<(), PosError> {
        let now = js::now_ms();
        let settled = settle(next, &mut body, now, js::random_unit(), &mut out.report);
        if settled.stop.is_some() {
            out.stop = settled.stop.clone();
        }
        let Some(header) = self
            .store
            .transition(header, settled.state, Some(&body), settled.next_attempt_at)
            .await?
        else {
            // Moved by someone else meanwhile (only possible without Web Locks): theirs stands.
            return Ok(());
        };
        let payment = StoredPayment::from(&Entry {
            header,
            body: Ok(body.clone()),
        });
        match settled.notify {
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
        Ok(())
    }
}
