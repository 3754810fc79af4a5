//! Processing a collected payment: online when the backend answers, stored offline (sealed,
//! strict) when it does not and the payment allows it, following `fallback`'s decisions.

use std::cell::RefCell;
use std::rc::Rc;

use pos_protocol::backend::PaymentBody;

use crate::auth::Auth;
use crate::backend::{Backend, PaymentOutcome};
use crate::connectivity::{Connectivity, QUICK_PROBE_MS};
use crate::error::PosError;
use crate::error::{BackendError, DomErrorName, StorageError};
use crate::fallback::{self, AfterFailure, Route};
use crate::held::Held;
use crate::js;
use crate::limits::OfflineLimits;
use crate::payment::{Collected, Header, OfflineBehavior, PaymentResult, SealedBody, StoredState};
use crate::status::{NetworkStatus, StatusReporter};
use crate::store::Store;

/// The intent record of an online attempt.
enum Intent {
    Written(Header),
    /// Not written (a full disk must not stop online payments) or not needed.
    Unwritten,
    /// A retry found the payment already stored offline (by an earlier unknown outcome).
    AlreadyStored(Header),
}

pub struct Checkout {
    pub offline_enabled: bool,
    pub require_persistent_storage: bool,
    pub limits: OfflineLimits,
    pub store: Rc<Store>,
    pub backend: Rc<Backend>,
    pub auth: Rc<Auth>,
    pub connectivity: Rc<Connectivity>,
    pub status: Rc<StatusReporter>,
    pub held: RefCell<Held>,
}

impl Checkout {
    /// Processes the held payment `id`. A result that is not final puts it back, so the
    /// caller may retry with the same payment (same id: never charged twice).
    pub async fn process(&self, id: &str) -> Result<PaymentResult, PosError> {
        let payment = self.held.borrow_mut().take(id)?;
        let result = self.process_collected(&payment).await;
        if !Held::is_final(&result) {
            let unknown = matches!(result, Err(PosError::OutcomeUnknown(_)));
            self.held.borrow_mut().put_back(payment, unknown);
        }
        result
    }

    async fn process_collected(&self, p: &Collected) -> Result<PaymentResult, PosError> {
        let offline_allowed = fallback::offline_allowed(p.offline_behavior, self.offline_enabled);
        let known_offline = self.connectivity.known_offline(js::navigator_on_line());
        match fallback::route(p.offline_behavior, self.offline_enabled, known_offline) {
            Route::Offline => return self.store_offline(p).await,
            Route::ProbeFirst => {
                if self.backend.health_within(QUICK_PROBE_MS).await.is_err() {
                    return self.store_offline(p).await;
                }
                self.connectivity.set(NetworkStatus::Online);
            }
            Route::Online => {}
        }
        // Without an offline fallback, confirm the backend before sending: "unreachable" is
        // then certain (nothing was sent); any failure after sending is an unknown outcome.
        if !offline_allowed {
            if let Err(e) = self.backend.health_within(QUICK_PROBE_MS).await {
                self.connectivity.set(NetworkStatus::Offline);
                return Err(BackendError::Unreachable(format!(
                    "the health check failed, the payment was not sent: {e}"
                ))
                .into());
            }
        }
        let intent = self.intent_for(p).await;
        if let Intent::AlreadyStored(header) = &intent {
            return Ok(PaymentResult::stored(p, header));
        }
        let online = self.online(p).await;
        let online_error = match online {
            Err(e) => e,
            ok => {
                self.settle_intent(&intent).await;
                return ok;
            }
        };
        if fallback::means_offline(&online_error) {
            self.connectivity.set(NetworkStatus::Offline);
        }
        match fallback::after_online_failure(online_error.clone(), offline_allowed) {
            AfterFailure::Fail(e) => {
                // An unknown outcome keeps its intent: it is forwarded with the same key.
                if e.code() != "payment_outcome_unknown" {
                    self.settle_intent(&intent).await;
                }
                Err(e)
            }
            // Same id as the online attempt: if that attempt did reach the backend,
            // forwarding gets its stored answer instead of a second charge.
            AfterFailure::StoreOffline { may_have_arrived } => {
                let stored = match &intent {
                    Intent::Written(header) => self.intent_offline(p, header).await,
                    Intent::Unwritten | Intent::AlreadyStored(_) => self.store_offline(p).await,
                };
                stored.map_err(|stored| {
                    fallback::after_store_failure(stored, &online_error, may_have_arrived)
                })
            }
        }
    }

    /// The intent record of this payment, written (sealed, strict) before anything is sent.
    /// A retry after an unknown outcome finds its own; a payment already stored offline
    /// answers as such. A failed write does not stop an online payment.
    async fn intent_for(&self, p: &Collected) -> Intent {
        let header = match self.store.add_intent(p, js::now_ms()).await {
            Ok(h) => h,
            Err(e) => {
                web_sys::console::warn_1(
                    &format!("pos-terminal: the intent of {} was not written: {e}", p.id).into(),
                );
                return Intent::Unwritten;
            }
        };
        match header.state {
            StoredState::Intent => Intent::Written(header),
            StoredState::Pending | StoredState::Forwarding => Intent::AlreadyStored(header),
            _ => Intent::Unwritten,
        }
    }

    /// The backend answered the online attempt for good (or nothing left this browser): the
    /// intent has served its purpose.
    async fn settle_intent(&self, intent: &Intent) {
        if let Intent::Written(header) = intent {
            if let Err(e) = self.store.discard_intent(header).await {
                // Left behind, it is forwarded later with the same key: the backend replays
                // its answer, nothing is charged twice.
                web_sys::console::warn_1(&format!("pos-terminal: intent kept: {e}").into());
            }
        }
    }

    /// Stores the payment offline by moving its intent to `pending`, limits checked in the
    /// same transaction.
    async fn intent_offline(
        &self,
        p: &Collected,
        header: &Header,
    ) -> Result<PaymentResult, PosError> {
        self.offline_allowed_now()?;
        let moved = self
            .store
            .transition_within(
                header,
                StoredState::Pending,
                Some(&SealedBody::from_collected(p)),
                js::now_ms(),
                Some(&self.limits),
            )
            .await?;
        let header = moved.ok_or_else(|| {
            PosError::OutcomeUnknown("another forwarder took this payment over".into())
        })?;
        self.status.publish().await;
        Ok(PaymentResult::stored(p, &header))
    }

    async fn online(&self, p: &Collected) -> Result<PaymentResult, PosError> {
        let body = PaymentBody {
            id: p.id.clone(),
            amount: p.amount,
            currency: p.currency.clone(),
            capture_method: p.capture_method,
            card_payload: p.card_payload.clone(),
            card: p.card.clone(),
            reader_id: p.reader_id.clone(),
            offline: None,
            metadata: p.metadata.clone(),
        };
        let body = &body;
        let answer = self
            .auth
            .retry(|token| async move { Ok(self.backend.create_payment(&token, body).await?) })
            .await;
        if answer.is_ok() {
            self.connectivity.set(NetworkStatus::Online);
        }
        match answer? {
            PaymentOutcome::Approved(ok) => Ok(PaymentResult::online(p, &ok)),
            PaymentOutcome::Declined { decline_code } => {
                Err(PosError::CardDeclined { decline_code })
            }
        }
    }

    fn offline_allowed_now(&self) -> Result<(), PosError> {
        if !self.offline_enabled {
            return Err(PosError::OfflineDisabled);
        }
        if self.require_persistent_storage && self.status.persisted() != Some(true) {
            return Err(PosError::OfflineDisabled);
        }
        Ok(())
    }

    /// Before a card is read for a payment that may be stored (offline first, or online
    /// while the backend is known down): refuses when the origin is short of space, so the
    /// card is never read for a payment that cannot be kept.
    pub async fn check_headroom(&self, behavior: OfflineBehavior) -> Result<(), PosError> {
        let known_offline = self.connectivity.known_offline(js::navigator_on_line());
        let may_be_stored = match fallback::route(behavior, self.offline_enabled, known_offline) {
            Route::Offline | Route::ProbeFirst => true,
            Route::Online => false,
        };
        if !may_be_stored {
            return Ok(());
        }
        match crate::store::storage_headroom().await {
            Some(free) if free < crate::store::STORAGE_MARGIN_BYTES => Err(StorageError::Dom {
                name: DomErrorName::QuotaExceeded,
                message: format!(
                    "only {free:.0} bytes of storage left; offline payments need {:.0}",
                    crate::store::STORAGE_MARGIN_BYTES
                ),
            }
            .into()),
            _ => Ok(()),
        }
    }

    async fn store_offline(&self, p: &Collected) -> Result<PaymentResult, PosError> {
        self.offline_allowed_now()?;
        let header = self
            .store
            .add_pending(p, js::now_ms(), &self.limits)
            .await?;
        self.status.publish().await;
        Ok(PaymentResult::stored(p, &header))
    }
}
