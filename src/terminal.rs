//! The terminal, in Rust: the same core a page (through `facade`), a test or any other Rust
//! caller uses. It wires the parts together and checks that it is still open; the work is in
//! `reader::session`, `checkout`, `scheduler` and `status`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use pos_protocol::backend::{CaptureMethod, PaymentStatus as BackendPaymentStatus};

use crate::auth::{Auth, TokenSource};
use crate::backend::Backend;
use crate::checkout::Checkout;
use crate::connectivity::Connectivity;
use crate::error::PosError;
use crate::events::{once_per_payment, Events, PaymentStatus};
use crate::forward_policy::ForwardReport;
use crate::held::Held;
use crate::options::Settings;
use crate::pairing::Pairings;
use crate::payment::{
    capture_error, check_capturable, check_payment_id, new_payment_id, CaptureResult, Collected,
    Entry, PaymentRequest, PaymentResult, ResultStatus, StoredPayment, StoredState,
};
use crate::reader::agent::ReaderAgent;
use crate::reader::session::ReaderSession;
use crate::reader::{Address, CartInput, Discovered, Discovery, Timeouts};
use crate::scheduler::{Drain, Scheduler};
use crate::status::{OfflineStatus, StatusReporter};
use crate::store::{PersistedConfig, Store};
use crate::validate;

pub struct Terminal {
    store: Rc<Store>,
    pairings: Rc<Pairings>,
    reader: Rc<ReaderSession>,
    checkout: Checkout,
    scheduler: Rc<Scheduler>,
    status: Rc<StatusReporter>,
    events: Rc<dyn Events>,
    closed: Cell<bool>,
}

impl Terminal {
    /// Opens the offline store (creating its keys on first use), starts forwarding (now, on
    /// `online`, and on a timer while anything is pending) and returns the terminal.
    pub async fn create(
        settings: Settings,
        tokens: Rc<dyn TokenSource>,
        events: Rc<dyn Events>,
    ) -> Result<Terminal, PosError> {
        // Both agents may hold the same payment: the page hears of its outcome once.
        let events: Rc<dyn Events> = Rc::new(once_per_payment(events));
        let closed_for_upgrade = events.clone();
        let store = Rc::new(
            Store::open_observed(&settings.db_name, move || {
                closed_for_upgrade.database_closed_for_upgrade()
            })
            .await?,
        );
        store.bind_backend(&settings.backend_url);
        // The token saved for this backend lets a service worker forward with no page.
        let saved = store.load_config().await.ok().flatten();
        let token = saved
            .filter(|c| c.backend_url == settings.backend_url)
            .and_then(|c| c.connection_token);
        // The config only helps a service worker: a full disk must not stop the terminal.
        if let Err(e) = store
            .save_config(&PersistedConfig {
                backend_url: settings.backend_url.clone(),
                connection_token: token.clone(),
            })
            .await
        {
            web_sys::console::warn_1(&format!("pos-terminal: config not saved: {e}").into());
        }
        let backend = Rc::new(Backend::new(
            &settings.backend_url,
            settings.request_timeout_ms,
        ));
        // A `fetchConnectionToken` that never settles fails like a backend that never answers.
        let auth = Rc::new(Auth::new(
            tokens,
            settings.request_timeout_ms,
            token,
            store.clone(),
            settings.backend_url.clone(),
        ));
        let pairings = Rc::new(Pairings::new(
            backend.clone(),
            auth.clone(),
            store.clone(),
            settings.backend_url.clone(),
        ));
        let connectivity = Rc::new(Connectivity::new(events.clone()));
        let status = Rc::new(StatusReporter::new(
            store.clone(),
            connectivity.clone(),
            events.clone(),
        ));
        let scheduler = Rc::new(Scheduler::new(
            store.clone(),
            backend.clone(),
            auth.clone(),
            connectivity.clone(),
            status.clone(),
            events.clone(),
            Drain {
                retention_ms: f64::from(settings.retention_ms),
                concurrency: settings.forward_concurrency,
            },
        ));
        // The connected reader as the second agent: its store, its forwarded payments.
        let agent = Rc::new(ReaderAgent::new(
            events.clone(),
            status.clone(),
            store.clone(),
        ));
        let reader = Rc::new(ReaderSession::new(events.clone(), Timeouts::default()));
        reader.set_agent(agent.clone());
        let checkout = Checkout {
            offline_enabled: settings.offline_enabled,
            require_persistent_storage: settings.require_persistent_storage,
            limits: settings.limits.clone(),
            store: store.clone(),
            backend,
            auth,
            connectivity,
            status: status.clone(),
            held: RefCell::new(Held::default()),
            agent,
            offline_storage: settings.offline_storage,
            // The reader sends it with its own timeout, maybe after the token's refresh.
            reader_timeout_ms: settings.request_timeout_ms.saturating_mul(2) + 5_000,
        };
        let terminal = Terminal {
            store,
            pairings,
            reader,
            checkout,
            scheduler: scheduler.clone(),
            status,
            events,
            closed: Cell::new(false),
        };
        Scheduler::start(&scheduler, settings.forward_interval_ms);
        // Without it the browser may evict stored payments under disk pressure. Asked without
        // waiting: a headless Firefox never answers its prompt.
        terminal.status.request_persistence();
        terminal.events.payment_status(PaymentStatus::NotReady);
        Ok(terminal)
    }

    pub fn check_open(&self) -> Result<(), PosError> {
        if self.closed.get() {
            Err(PosError::TerminalClosed)
        } else {
            Ok(())
        }
    }

    pub async fn discover_readers(
        &self,
        discovery: &Discovery,
    ) -> Result<Vec<Discovered>, PosError> {
        self.check_open()?;
        self.reader.discover(discovery).await
    }

    /// Connects to the reader at `address`; `take_over` takes it from another POS.
    pub async fn connect_reader(
        &self,
        address: &Address,
        take_over: bool,
    ) -> Result<Discovered, PosError> {
        self.check_open()?;
        let reader = self
            .reader
            .connect(address, take_over, &self.pairings)
            .await?;
        if self.closed.get() {
            // `close()` ran while connecting: don't leave a reader attached.
            self.reader.disconnect();
            return Err(PosError::TerminalClosed);
        }
        Ok(reader)
    }

    /// The reader session: its timeouts and the in-page simulated reader's settings.
    pub fn reader_session(&self) -> &Rc<ReaderSession> {
        &self.reader
    }

    pub fn disconnect_reader(&self) {
        self.reader.disconnect();
    }

    pub async fn set_reader_display(&self, cart: CartInput) -> Result<(), PosError> {
        self.check_open()?;
        self.reader.display_cart(cart.into_cart()?).await
    }

    pub async fn clear_reader_display(&self) -> Result<(), PosError> {
        self.check_open()?;
        self.reader.clear_display().await
    }

    /// Asks the reader for a card. The card data itself stays here, encrypted for the backend.
    pub async fn collect_payment_method(&self, req: PaymentRequest) -> Result<Collected, PosError> {
        self.check_open()?;
        let amount = validate::amount(req.amount)?;
        let currency = validate::currency(&req.currency)?;
        let metadata = req.metadata.unwrap_or_default();
        validate::metadata(&metadata)?;
        let behavior = req.offline_behavior.unwrap_or_default();
        self.checkout.check_headroom(behavior).await?;
        let id = new_payment_id()?;
        let read = self.reader.collect(&id, amount, &currency).await;
        // `close()` while the card was awaited disconnected the reader: that is the cause.
        if self.closed.get() {
            return Err(PosError::TerminalClosed);
        }
        let read = read?;
        let collected = Collected {
            id,
            amount,
            currency,
            capture_method: req.capture_method.unwrap_or(CaptureMethod::Automatic),
            offline_behavior: behavior,
            metadata,
            reader_id: read.reader_id,
            card: read.card,
            card_payload: read.card_payload,
        };
        self.checkout.held.borrow_mut().hold(collected.clone());
        Ok(collected)
    }

    pub fn cancel_collect_payment_method(&self) -> Result<(), PosError> {
        self.reader.cancel_collect()
    }

    /// Sends the collected payment `id` to the backend, or stores it offline.
    pub async fn process_payment(&self, id: &str) -> Result<PaymentResult, PosError> {
        self.check_open()?;
        self.events.payment_status(PaymentStatus::Processing);
        let result = self.checkout.process(id).await;
        self.events.payment_status(self.reader.idle_status());
        if let Ok(r) = &result {
            if r.status == ResultStatus::StoredOffline {
                self.scheduler.watched.add(&r.id);
            }
        }
        result
    }

    pub async fn offline_status(&self) -> Result<OfflineStatus, PosError> {
        self.check_open()?;
        self.status.current().await
    }

    /// Every stored payment, oldest first; `state` filters (intents only when asked for).
    pub async fn list_stored_payments(
        &self,
        state: Option<StoredState>,
    ) -> Result<Vec<StoredPayment>, PosError> {
        self.check_open()?;
        let entries = match state {
            // One state: only its records are read and opened (the `state` index).
            // (A record whose header does not open is listed by the state it opens as.)
            Some(s) => {
                let mut listed = self.store.in_state(s).await?;
                listed.retain(|e| e.header.state == s);
                listed
            }
            // An intent is an online attempt, not a stored payment: listed only when asked for.
            None => {
                let mut all = self.store.all().await?;
                all.retain(|e| e.header.state != StoredState::Intent);
                all
            }
        };
        Ok(entries.iter().map(StoredPayment::from).collect())
    }

    /// Forwards every stored payment now, ignoring backoff.
    pub async fn forward_stored_payments(&self) -> Result<ForwardReport, PosError> {
        self.check_open()?;
        self.scheduler.forward_all().await
    }

    /// Support's way out of `failed`: the payment goes back to `pending` under the same id
    /// (the same idempotency key) and is forwarded on the next run.
    pub async fn requeue_payment(&self, id: &str) -> Result<StoredPayment, PosError> {
        self.check_open()?;
        let entry = self.store.requeue(id).await?;
        self.status.publish().await;
        Ok(StoredPayment::from(&entry))
    }

    /// Captures a `requires_capture` payment (`captureMethod: "manual"`), online or forwarded
    /// from offline storage. Idempotent at the backend: a second call answers `succeeded`
    /// again, so after a network error it is safe to call again.
    pub async fn capture_payment(&self, id: &str) -> Result<CaptureResult, PosError> {
        self.capture_or_cancel(id, false).await
    }

    /// Cancels (voids) a `requires_capture` payment; idempotent like `capture_payment`.
    pub async fn cancel_payment(&self, id: &str) -> Result<CaptureResult, PosError> {
        self.capture_or_cancel(id, true).await
    }

    async fn capture_or_cancel(&self, id: &str, cancel: bool) -> Result<CaptureResult, PosError> {
        self.check_open()?;
        check_payment_id(id)?;
        // The store only says whether this SDK still holds the payment; if it cannot be read,
        // the backend (which knows every payment it has) still answers.
        let entry = match self.store.get(id).await {
            Ok(entry) => entry,
            Err(e) => {
                web_sys::console::warn_1(
                    &format!("pos-terminal: stored payments not readable before capture: {e}")
                        .into(),
                );
                None
            }
        };
        check_capturable(id, entry.as_ref().map(|e| e.header.state))?;
        // An intent: its online attempt has not answered yet (or its outcome is unknown), so
        // a backend that has no such payment has not seen it *yet*.
        let attempt_open = entry
            .as_ref()
            .is_some_and(|e| e.header.state == StoredState::Intent);
        let backend = self.checkout.backend.clone();
        let ok = self
            .checkout
            .auth
            .retry(|token| {
                let backend = backend.clone();
                async move {
                    backend
                        .capture_or_cancel(&token, id, cancel)
                        .await
                        .map_err(PosError::from)
                }
            })
            .await
            .map_err(|e| {
                let not_sent_yet = attempt_open || self.checkout.agent.held_by_reader(id);
                capture_error(id, e, not_sent_yet)
            })?;
        if let Some(entry) = entry {
            self.note_payment_status(entry, ok.status).await;
        }
        Ok(CaptureResult::of(id, &ok))
    }

    /// Records the backend's new state of a payment this SDK forwarded, for
    /// `listStoredPayments`. Best effort: the capture itself already happened.
    async fn note_payment_status(&self, entry: Entry, status: BackendPaymentStatus) {
        let Ok(mut body) = entry.body else { return };
        if entry.header.state != StoredState::Forwarded || body.payment_status == Some(status) {
            return;
        }
        body.payment_status = Some(status);
        if let Err(e) = self.store.update_forwarded(&entry.header, &body).await {
            web_sys::console::warn_1(
                &format!("pos-terminal: the stored payment's new status was not saved: {e}").into(),
            );
        }
    }

    /// Stops timers and listeners and disconnects the reader. Stored payments stay.
    pub fn close(&self) {
        if !self.closed.replace(true) {
            self.reader.disconnect();
            self.scheduler.stop();
            self.store.close();
        }
    }
}
