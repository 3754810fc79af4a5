//! Processing a collected payment: online when the backend answers, stored offline (sealed,
//! strict) when it does not and the payment allows it, following `fallback`'s decisions.

use std::cell::RefCell;
use std::rc::Rc;

use pos_protocol::backend::PaymentBody;

use crate::auth::Auth;
use crate::backend::{Backend, PaymentOutcome};
use crate::connectivity::{Connectivity, QUICK_PROBE_MS};
use crate::error::PosError;
use crate::fallback::{self, AfterFailure, Route};
use crate::held::Held;
use crate::js;
use crate::limits::OfflineLimits;
use crate::payment::{Collected, PaymentResult};
use crate::status::{NetworkStatus, StatusReporter};
use crate::store::Store;

pub struct Checkout {
    pub offline_enabled: bool,
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
            self.held.borrow_mut().put_back(payment);
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
        let online_error = match self.online(p).await {
            Err(e) => e,
            ok => return ok,
        };
        if fallback::means_offline(&online_error) {
            self.connectivity.set(NetworkStatus::Offline);
        }
        match fallback::after_online_failure(online_error.clone(), offline_allowed) {
            AfterFailure::Fail(e) => Err(e),
            // Same id as the online attempt: if that attempt did reach the backend,
            // forwarding gets its stored answer instead of a second charge.
            AfterFailure::StoreOffline { may_have_arrived } => {
                self.store_offline(p).await.map_err(|stored| {
                    fallback::after_store_failure(stored, &online_error, may_have_arrived)
                })
            }
        }
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

    async fn store_offline(&self, p: &Collected) -> Result<PaymentResult, PosError> {
        if !self.offline_enabled {
            return Err(PosError::OfflineDisabled);
        }
        let outstanding = self.status.outstanding().await?;
        self.limits.check(p.amount, &p.currency, &outstanding)?;
        let header = self.store.add_pending(p, js::now_ms()).await?;
        self.status.publish().await;
        Ok(PaymentResult::stored(p, &header))
    }
}
