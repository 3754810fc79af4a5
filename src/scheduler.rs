//! When and how forwarding runs: confirm the backend with `/v1/health`, take the Web Lock,
//! run the forwarder with the current token (once more with a fresh one if it was refused).
//! A terminal runs it now, on `online`, and on a timer while anything is pending; a service
//! worker runs it once.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use futures_channel::oneshot;
use gloo_timers::callback::Interval;
use gloo_timers::future::TimeoutFuture;
use wasm_bindgen_futures::spawn_local;

use crate::auth::Auth;
use crate::backend::Backend;
use crate::connectivity::{Connectivity, OnlineListeners};
use crate::error::{BackendError, PosError};
use crate::events::{Events, OutcomeFilter};
use crate::every::Every;
use crate::forward_policy::{ForwardReport, Stop, DEFAULT_CONCURRENCY};
use crate::forwarder::{Forwarder, RunOutcome};
use crate::js;
use crate::status::{NetworkStatus, StatusReporter};
use crate::store::Store;
use crate::watched::Watched;
use crate::weblock;

/// The Web Lock every forwarder (tabs, service worker) takes.
pub const LOCK_NAME: &str = "pos-terminal-forward";

/// How often a terminal looks for finished records to prune: each look reads every
/// `forwarded` and `declined` record (up to the retention's worth of history, a month by
/// default), too much for every run while payments wait out an outage.
const PRUNE_EVERY_MS: f64 = 3_600_000.0;
/// A pruning that failed (an aborted transaction, a closing database) is tried again this
/// much later.
const PRUNE_RETRY_MS: f64 = 60_000.0;

/// How a terminal drains its store.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    /// Finished records older than this are pruned (at a run, at most hourly).
    pub retention_ms: f64,
    /// Requests in flight at once.
    pub concurrency: usize,
}

pub struct Scheduler {
    pub store: Rc<Store>,
    pub backend: Rc<Backend>,
    pub auth: Rc<Auth>,
    pub connectivity: Rc<Connectivity>,
    pub status: Rc<StatusReporter>,
    pub events: Rc<dyn Events>,
    pub drain: Drain,
    timer: RefCell<Option<Interval>>,
    listeners: RefCell<Option<OnlineListeners>>,
    /// When this terminal looks for finished records to prune.
    pruning: Every,
    /// Set by `stop()`: a run still going sends nothing more and ends with the database
    /// still open (`Forwarder::closing`); what it meets after is no news.
    stopped: Rc<Cell<bool>>,
    /// An idle health probe is out.
    probing: Cell<bool>,
    /// The payments this terminal stored, for the outcomes other contexts settle.
    pub watched: Watched,
    /// What every run of this terminal settled so far (`remaining` unused; the counts wrap).
    tally: Cell<ForwardReport>,
    /// `forward_all` calls waiting for this terminal's runs to end.
    idle_waiters: RefCell<Vec<oneshot::Sender<()>>>,
}

/// How often, at most, a run publishes the offline status while it settles payments.
const PROGRESS_EVERY_MS: f64 = 250.0;

/// A run's events, passed on, with the offline status published (at most every
/// `PROGRESS_EVERY_MS`) as payments settle: a drain of thousands takes a minute, and the
/// page's pending count should move during it.
fn with_progress(inner: Rc<dyn Events>, status: Rc<StatusReporter>) -> OutcomeFilter {
    let last = Cell::new(js::now_ms());
    OutcomeFilter::new(inner, move |_| {
        let now = js::now_ms();
        if now - last.get() >= PROGRESS_EVERY_MS {
            last.set(now);
            let status = status.clone();
            spawn_local(async move { status.publish().await });
        }
        true
    })
}

/// What a run and its caller tell each other.
#[derive(Default)]
struct RunSignals {
    /// Set by the terminal's `close()` (`Forwarder::closing`).
    closing: Rc<Cell<bool>>,
    /// Set once the run holds the Web Lock: until then another context's run has it.
    locked: Rc<Cell<bool>>,
}

/// While a run waits for the Web Lock, another context (the service worker, another tab) is
/// forwarding: the status is read again this often, so the page's count follows that run.
const LOCK_WAIT_POLL_MS: u32 = 500;

/// One forwarding run under the Web Lock, with one token refresh if the backend refused it.
async fn run_locked(
    store: &Rc<Store>,
    backend: &Rc<Backend>,
    auth: &Auth,
    events: &Rc<dyn Events>,
    force: bool,
    concurrency: usize,
    signals: &RunSignals,
) -> Result<RunOutcome, PosError> {
    let total = Rc::new(RefCell::new(ForwardReport::default()));
    let round = |token: String| {
        let (store, backend, events, total, closing, locked) = (
            store.clone(),
            backend.clone(),
            events.clone(),
            total.clone(),
            signals.closing.clone(),
            signals.locked.clone(),
        );
        async move {
            let outcome = weblock::with_lock(LOCK_NAME, move || async move {
                locked.set(true);
                // Closed while waiting for the lock: the database may be closed already.
                if closing.get() {
                    return Err(PosError::TerminalClosed);
                }
                // A `close()` meanwhile waits for the run's end: its claims are settled or
                // released, not left leased.
                let _open = store.keep_open();
                Forwarder {
                    store: &store,
                    backend: &backend,
                    events: events.as_ref(),
                    concurrency,
                    closing: &closing,
                }
                .run(&token, force)
                .await
            })
            .await;
            if let Ok(o) = &outcome {
                total.borrow_mut().add(o.report);
            }
            outcome
        }
    };
    let refused =
        |r: &Result<RunOutcome, PosError>| matches!(r, Ok(o) if o.stop == Some(Stop::Unauthorized));
    let last = auth.retry_when(round, refused).await??;
    if last.stop == Some(Stop::Unauthorized) {
        return Err(BackendError::Unauthorized(
            "the backend refused a fresh connection token".into(),
        )
        .into());
    }
    let report = *total.borrow();
    Ok(RunOutcome {
        report,
        stop: last.stop,
    })
}

/// Forwards once, for a context without a terminal (a service worker's `sync`: the browser
/// believes it is online, so no `/v1/health` probe first; the first request's own failure
/// says the backend is not reachable). Errors if the backend is not reachable.
pub async fn forward_once(
    store: &Rc<Store>,
    backend: &Rc<Backend>,
    auth: &Auth,
    events: &Rc<dyn Events>,
) -> Result<ForwardReport, PosError> {
    let outcome = run_locked(
        store,
        backend,
        auth,
        events,
        true,
        DEFAULT_CONCURRENCY,
        &RunSignals::default(),
    )
    .await?;
    if let Some(Stop::NetworkDown(why)) = outcome.stop {
        return Err(BackendError::Unreachable(why).into());
    }
    Ok(outcome.report)
}

impl Scheduler {
    pub fn new(
        store: Rc<Store>,
        backend: Rc<Backend>,
        auth: Rc<Auth>,
        connectivity: Rc<Connectivity>,
        status: Rc<StatusReporter>,
        events: Rc<dyn Events>,
        drain: Drain,
    ) -> Self {
        Self {
            store,
            backend,
            auth,
            connectivity,
            status,
            events,
            drain,
            timer: RefCell::new(None),
            listeners: RefCell::new(None),
            pruning: Every::new(PRUNE_EVERY_MS),
            stopped: Rc::new(Cell::new(false)),
            probing: Cell::new(false),
            watched: Watched::default(),
            tally: Cell::new(ForwardReport::default()),
            idle_waiters: RefCell::new(Vec::new()),
        }
    }

    /// Fetches a fresh connection token, forwards now (after the first tick), on `online`,
    /// and every `interval_ms` while anything is pending or the backend was not seen online.
    pub fn start(this: &Rc<Self>, interval_ms: u32) {
        let weak: Weak<Self> = Rc::downgrade(this);
        let interval = Interval::new(interval_ms, move || {
            if let Some(s) = weak.upgrade() {
                spawn_local(async move { s.tick().await });
            }
        });
        *this.timer.borrow_mut() = Some(interval);
        let (on_online, on_offline) = (Rc::downgrade(this), Rc::downgrade(this));
        let listeners = OnlineListeners::install(
            move || {
                if let Some(s) = on_online.upgrade() {
                    spawn_local(async move {
                        let _ = s.forward(true).await;
                    });
                }
            },
            move || {
                if let Some(s) = on_offline.upgrade() {
                    s.connectivity.set(NetworkStatus::Offline);
                    spawn_local(async move { s.status.publish().await });
                }
            },
        );
        *this.listeners.borrow_mut() = Some(listeners);
        // A fresh token at every start, saved sealed for the service worker ("Credentials
        // without a page" in the README): a worker that wakes up once this page is gone
        // forwards with it, even if no payment went online since. An offline start keeps
        // the saved one.
        let refresh = this.clone();
        spawn_local(async move {
            if let Err(e) = refresh.auth.token(true).await {
                if !refresh.stopped.get() {
                    web_sys::console::warn_1(
                        &format!("pos-terminal: no connection token at start-up: {e}").into(),
                    );
                }
            }
        });
        let first = this.clone();
        spawn_local(async move {
            let _ = first.forward(false).await;
        });
    }

    pub fn stop(&self) {
        self.stopped.set(true);
        self.timer.borrow_mut().take();
        self.listeners.borrow_mut().take();
    }

    async fn tick(&self) {
        if self.status.is_forwarding() {
            return;
        }
        let Ok(work) = self.store.needs_forwarding().await else {
            return;
        };
        if work || self.connectivity.get() != NetworkStatus::Online {
            let _ = self.forward(false).await;
        } else {
            // Idle and online as last seen: `/v1/health` again, so that an outage shows in
            // `onNetworkStatusChange` within a tick, not at the next payment. Another tab or
            // a service worker may have forwarded (or stored) payments of this database: the
            // status is read again, and emitted if it changed.
            // One probe at a time (a probe may take longer than a tick); its answer counts
            // unless a newer one was seen meanwhile.
            if !self.probing.replace(true) {
                let since = self.connectivity.seen();
                let reachable = self.backend.health().await.is_ok();
                self.probing.set(false);
                if !self.stopped.get() {
                    self.connectivity.set_unless_newer(
                        since,
                        if reachable {
                            NetworkStatus::Online
                        } else {
                            NetworkStatus::Offline
                        },
                    );
                }
            }
            self.status.publish().await;
        }
        self.report_others().await;
    }

    /// Payments of this terminal another context settled: their outcomes, told here too.
    async fn report_others(&self) {
        if let Ok(outstanding) = self.status.outstanding().await {
            if !self.stopped.get() {
                self.watched
                    .report_settled(outstanding.count, &self.store, self.events.as_ref())
                    .await;
            }
        }
    }

    /// Until `locked` is set: the status read and published again, and the outcomes other
    /// contexts settled reported, every `LOCK_WAIT_POLL_MS`. Never ends.
    async fn follow_others(&self, locked: &Cell<bool>) -> std::convert::Infallible {
        while !locked.get() {
            TimeoutFuture::new(LOCK_WAIT_POLL_MS).await;
            if !locked.get() && !self.stopped.get() {
                self.status.publish().await;
                self.report_others().await;
            }
        }
        futures_util::future::pending().await
    }

    /// Confirms connectivity with `/v1/health`, then forwards under the Web Lock. `force`
    /// ignores backoff and reports an unreachable backend as an error.
    pub async fn forward(&self, force: bool) -> Result<ForwardReport, PosError> {
        self.status.set_forwarding(true).await;
        let result = self.forward_inner(force).await;
        if let Ok(report) = &result {
            let t = self.tally.get();
            self.tally.set(ForwardReport {
                forwarded: t.forwarded.wrapping_add(report.forwarded),
                declined: t.declined.wrapping_add(report.declined),
                failed: t.failed.wrapping_add(report.failed),
                remaining: 0,
            });
        }
        self.status.set_forwarding(false).await;
        if !self.status.is_forwarding() {
            for waiter in self.idle_waiters.borrow_mut().drain(..) {
                let _ = waiter.send(());
            }
        }
        result
    }

    /// `forwardStoredPayments()`: a run now, reported with every payment the runs of this
    /// terminal settled from the call until none is left running. A run already going when
    /// it was called (the one at start-up, or the timer's) may have taken the payments this
    /// run would have found: its outcomes are this call's too (the whole of that run's,
    /// since a run's report comes at its end), so the report adds up.
    pub async fn forward_all(&self) -> Result<ForwardReport, PosError> {
        let before = self.tally.get();
        let own = self.forward(true).await?;
        let mut remaining = own.remaining;
        if self.status.is_forwarding() {
            let (tx, rx) = oneshot::channel();
            self.idle_waiters.borrow_mut().push(tx);
            let _ = rx.await;
            remaining = self.status.outstanding().await?.count;
        }
        let after = self.tally.get();
        Ok(ForwardReport {
            forwarded: after.forwarded.wrapping_sub(before.forwarded),
            declined: after.declined.wrapping_sub(before.declined),
            failed: after.failed.wrapping_sub(before.failed),
            remaining,
        })
    }

    async fn forward_inner(&self, force: bool) -> Result<ForwardReport, PosError> {
        // History is kept for the retention, so it never fills the disk. The pruning runs (at
        // most hourly) beside the health check, a round trip to the backend; the look for work
        // comes after the check, so a payment stored during it is not missed.
        let now = js::now_ms();
        let prune = self.pruning.take(now);
        let pruning = async {
            if prune {
                self.store
                    .prune_finished(now - self.drain.retention_ms)
                    .await
                    .map(|_| ())
            } else {
                Ok(())
            }
        };
        let (pruned, health) = futures_util::future::join(pruning, self.backend.health()).await;
        if let Err(e) = pruned {
            // Tried again in a minute, not an hour.
            self.pruning.retry_in(now, PRUNE_RETRY_MS);
            if !self.stopped.get() {
                web_sys::console::warn_1(&format!("pos-terminal: pruning failed: {e}").into());
            }
        }
        if let Err(e) = health {
            self.connectivity.set(NetworkStatus::Offline);
            if force {
                return Err(match e {
                    BackendError::Unreachable(_) | BackendError::Timeout(_) => e.into(),
                    other => BackendError::Unreachable(other.to_string()).into(),
                });
            }
            let remaining = self.status.outstanding().await?.count;
            return Ok(ForwardReport {
                remaining,
                ..ForwardReport::default()
            });
        }
        self.connectivity.set(NetworkStatus::Online);
        // Closed during the health check: the database is closed, and nothing starts.
        if self.stopped.get() {
            return Err(PosError::TerminalClosed);
        }
        if !self.store.needs_forwarding().await? {
            return Ok(ForwardReport::default());
        }
        // The page's pending count follows a long drain, not only its end.
        let events: Rc<dyn Events> =
            Rc::new(with_progress(self.events.clone(), self.status.clone()));
        let signals = RunSignals {
            closing: self.stopped.clone(),
            locked: Rc::new(Cell::new(false)),
        };
        let run = std::pin::pin!(run_locked(
            &self.store,
            &self.backend,
            &self.auth,
            &events,
            force,
            self.drain.concurrency,
            &signals,
        ));
        let follow = std::pin::pin!(self.follow_others(&signals.locked));
        let outcome = match futures_util::future::select(run, follow).await {
            futures_util::future::Either::Left((outcome, _)) => outcome?,
            futures_util::future::Either::Right((never, _)) => match never {},
        };
        // What another context settled while this run waited for the lock, to the last one.
        self.report_others().await;
        if let Some(Stop::NetworkDown(_)) = outcome.stop {
            self.connectivity.set(NetworkStatus::Offline);
        }
        Ok(outcome.report)
    }
}
