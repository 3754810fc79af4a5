//! What a forwarding run sends: the queue's records read a page at a time, each page's records
//! claimed together in one strict transaction, then handed out one by one. The next page is
//! read and claimed while the current one is still being sent, so a request never waits for a
//! page (a page read and claim take some 40 ms, during which the requests in flight would
//! otherwise drain out).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{Forwarder, RunOutcome};
use crate::error::PosError;
use crate::forward_policy::{intent_abandoned, FORWARDING_LEASE_MS};
use crate::js;
use crate::payment::{Entry, Header, SealedBody, StoredState};
use crate::store::{ForwardQueue, Move};
use crate::weblock;

/// Records opened at once from the queue: what a run holds in memory, whatever the backlog.
const PAGE: u32 = 64;

/// The first page is smaller, so the first requests leave sooner (a page's read and claim
/// cost grows with its records: ~55 ms for 64 here); the next, full page is read while it
/// is sent. Not below the largest `concurrency` (16), so every request slot fills at once.
const FIRST_PAGE: u32 = 16;

/// Claimed records left below which the next page is read and claimed. Half a page lasts
/// far longer than a page read and claim, even at the backend's fastest, and above the
/// largest `concurrency` (16); so at most one and a half pages are held claimed at once.
const LOW_WATER: usize = PAGE as usize / 2;

/// A record claimed for this run (`forwarding`, leased), with its body as claimed.
pub(super) struct Claimed {
    pub header: Header,
    pub body: SealedBody,
}

/// The next page being read and claimed. It holds the queue while it runs and gives it back
/// with the page's claimed records (`None`: the queue is used up).
pub(super) type PageRead<'a> =
    Pin<Box<dyn Future<Output = (ForwardQueue, Result<Option<Vec<Claimed>>, PosError>)> + 'a>>;

/// Starts reading and claiming the next page of a queue, of at most this many records.
pub(super) type StartRead<'a> = Box<dyn Fn(ForwardQueue, u32) -> PageRead<'a> + 'a>;

/// The claimed records of a run not handed out yet, and the read of the next page. The run
/// loop polls the read (`poll_read`) beside the requests and the settlements, so its
/// transactions are never left waiting unpolled; not from the request stream, which
/// `buffer_unordered` leaves unpolled while every request slot is busy.
pub(super) struct Source<'a> {
    /// Claimed and not handed out yet, oldest first.
    claimed: VecDeque<Claimed>,
    /// The queue, while no page is being read (a read holds it).
    queue: Option<ForwardQueue>,
    /// The next page being read and claimed.
    reading: Option<PageRead<'a>>,
    start: StartRead<'a>,
    /// The queue gave an empty page: there is nothing more to read.
    ended: bool,
    /// The run stops: nothing more is handed out or read.
    halted: bool,
    /// Pages read so far.
    pages: u32,
}

impl<'a> Source<'a> {
    pub fn new(queue: ForwardQueue, start: StartRead<'a>) -> Self {
        Self {
            claimed: VecDeque::new(),
            queue: Some(queue),
            reading: None,
            start,
            ended: false,
            halted: false,
            pages: 0,
        }
    }

    /// The next claimed record to send; `Pending` while the page it needs is being read (or
    /// is about to be: `poll_read` starts it), `None` once the queue is used up or the run
    /// stopped.
    pub fn next(&mut self) -> Poll<Option<Claimed>> {
        if self.halted {
            return Poll::Ready(None);
        }
        if let Some(c) = self.claimed.pop_front() {
            return Poll::Ready(Some(c));
        }
        if self.ended && self.reading.is_none() {
            return Poll::Ready(None);
        }
        Poll::Pending
    }

    /// Drives the next page's read: starts it once fewer than `LOW_WATER` claimed records are
    /// left, and polls it. `Ready` when it is done (with its failure if it failed): its
    /// records join the ones to hand out, after a halt too (they are released with them).
    /// `Pending` while it runs or none is due.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PosError>> {
        if self.reading.is_none() && self.read_due() {
            if let Some(queue) = self.queue.take() {
                let size = if self.pages == 0 { FIRST_PAGE } else { PAGE };
                self.pages += 1;
                self.reading = Some((self.start)(queue, size));
            }
        }
        let Some(reading) = self.reading.as_mut() else {
            return Poll::Pending;
        };
        let Poll::Ready((queue, page)) = reading.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        self.reading = None;
        self.queue = Some(queue);
        match page {
            Ok(Some(claimed)) => self.claimed.extend(claimed),
            Ok(None) => self.ended = true,
            Err(e) => return Poll::Ready(Err(e)),
        }
        Poll::Ready(Ok(()))
    }

    fn read_due(&self) -> bool {
        !self.halted && !self.ended && self.claimed.len() < LOW_WATER
    }

    /// Stops handing out records and starting reads; a read under way is still polled to its
    /// end, so that its claim is not cut short and its records are released.
    pub fn halt(&mut self) {
        self.halted = true;
    }

    /// Whether a page is being read: the run does not end before it is done.
    pub fn reading(&self) -> bool {
        self.reading.is_some()
    }

    /// What the run leaves unsent: the claimed records not handed out, and how many
    /// `forwarding` and `pending` ids the queue still holds. Called once no page is being
    /// read (a read holds the queue).
    pub fn unsent(&mut self) -> (Vec<Claimed>, u32) {
        let outstanding = self
            .queue
            .as_ref()
            .map_or(0, ForwardQueue::remaining_outstanding);
        (std::mem::take(&mut self.claimed).into(), outstanding)
    }
}

impl Forwarder<'_> {
    /// Reads and claims the next page of `queue` (see `claim_page`), handing the queue back
    /// with the outcome: the read runs beside the requests, the queue is needed after it.
    pub(super) async fn read_page(
        &self,
        mut queue: ForwardQueue,
        size: u32,
        found: &RefCell<RunOutcome>,
        force: bool,
    ) -> (ForwardQueue, Result<Option<Vec<Claimed>>, PosError>) {
        let claimed = self.claim_page(&mut queue, size, found, force).await;
        (queue, claimed)
    }

    /// The next page of `queue` (at most `size` records), opened, with the records this run
    /// should send claimed (in one strict transaction). `None` at the end of the queue.
    async fn claim_page(
        &self,
        queue: &mut ForwardQueue,
        size: u32,
        found: &RefCell<RunOutcome>,
        force: bool,
    ) -> Result<Option<Vec<Claimed>>, PosError> {
        let page = self.store.next_page(queue, size).await?;
        if page.is_empty() {
            return Ok(None);
        }
        let mut candidates = Vec::new();
        for entry in page {
            if let Some(c) = self.eligible(entry, force, found).await? {
                candidates.push(c);
            }
        }
        self.claim(candidates).await.map(Some)
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
            // Listed as outstanding, read as quarantined: its clear header is unreadable (or
            // another context quarantined it meanwhile, and then nothing moves here).
            if matches!(entry.body, Err(PosError::RecordTampered)) {
                let ids = [entry.header.id];
                for id in self.store.quarantine_ids(&ids).await? {
                    self.report_unreadable(id, &mut found.borrow_mut().report);
                }
            }
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
    pub(super) async fn release(&self, claimed: Vec<Claimed>) -> Result<(), PosError> {
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
        self.report_quarantined(header, err, err.to_string(), &mut out.report);
        Ok(())
    }
}
