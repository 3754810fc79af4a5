//! Processing a collected payment: online when the backend answers, stored offline (sealed,
//! strict) when it does not and the payment allows it, following `fallback`'s decisions.

use std::cell::RefCell;
use std::rc::Rc;

use pos_protocol::backend::{PaymentBody, PaymentOk};

use crate::auth::Auth;
use crate::backend::{Backend, PaymentOutcome};
use crate::connectivity::{Connectivity, QUICK_PROBE_MS};
use crate::error::PosError;
use crate::error::{BackendError, DomErrorName, StorageError};
use crate::fallback::{self, AfterFailure, OnlineFailure, Route};
use crate::held::Held;
use crate::js;
use crate::limits::OfflineLimits;
use crate::options::OfflineStorage;
use crate::payment::{Collected, Header, OfflineBehavior, PaymentResult, StoredState};
use crate::reader::agent::ReaderAgent;
use crate::reader_fallback::{self, AfterReader};
use crate::status::{NetworkStatus, StatusReporter};
use crate::store::Store;

/// The body of `POST /v1/payments` for `p`, whoever sends it (the SDK or the reader).
fn payment_body(p: &Collected) -> PaymentBody {
    PaymentBody {
        id: p.id.clone(),
        amount: p.amount,
        currency: p.currency.clone(),
        capture_method: p.capture_method,
        card_payload: p.card_payload.clone(),
        card: p.card.clone(),
        reader_id: p.reader_id.clone(),
        offline: None,
        metadata: p.metadata.clone(),
    }
}

/// The intent record of an online attempt.
enum Intent {
    /// `earlier`: written by an earlier attempt of this payment (its outcome unknown).
    Written { header: Header, earlier: bool },
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
    /// The connected reader as the second agent.
    pub agent: Rc<ReaderAgent>,
    /// Which agent stores a payment when neither reaches the backend.
    pub offline_storage: OfflineStorage,
    /// How long the reader may take to answer a `process`.
    pub reader_timeout_ms: u32,
}

impl Checkout {
    /// Processes the held payment `id`. A result that is not final puts it back, so the
    /// caller may retry with the same payment (same id: never charged twice).
    pub async fn process(&self, id: &str) -> Result<PaymentResult, PosError> {
        let (payment, earlier_unknown) = self.held.borrow_mut().take(id)?;
        // `close()` while this runs must not close the store under it: its intent would be
        // left behind and forwarded (charged, or reported a second time) later.
        let _open = self.store.keep_open();
        let mut result = self.process_collected(&payment, earlier_unknown).await;
        if earlier_unknown {
            result = result.map_err(fallback::after_earlier_unknown);
        }
        let put_back = (!Held::is_final(&result))
            .then_some(matches!(result, Err(PosError::OutcomeUnknown(_))));
        self.held.borrow_mut().end(payment, put_back);
        result
    }

    /// `earlier_unknown`: an earlier attempt of this payment may have reached the backend, so
    /// no failure of this one means "not charged", and its intent is kept unless the backend
    /// approves or declines.
    async fn process_collected(
        &self,
        p: &Collected,
        earlier_unknown: bool,
    ) -> Result<PaymentResult, PosError> {
        let offline_allowed = fallback::offline_allowed(p.offline_behavior, self.offline_enabled);
        // The offline rules, whoever would store it: checked before anything is stored.
        let country = self.agent.country_of(&p.reader_id);
        let rules = fallback::offline_rules_check(&p.card, country.as_deref());
        let may_store = offline_allowed && rules.is_ok();
        let known_offline = self.connectivity.known_offline(js::navigator_on_line());
        match fallback::route(p.offline_behavior, self.offline_enabled, known_offline) {
            Route::Offline => {
                let why = BackendError::NotSent("offlineBehavior is force_offline".into());
                let earlier = self.earlier_intent(p, earlier_unknown).await;
                return self
                    .without_backend(p, &earlier, earlier_unknown, why.into(), rules)
                    .await;
            }
            Route::ProbeFirst => {
                if let Err(e) = self.backend.health_within(QUICK_PROBE_MS).await {
                    let why = BackendError::NotSent(format!("the health check failed: {e}"));
                    let earlier = self.earlier_intent(p, earlier_unknown).await;
                    return self
                        .without_backend(p, &earlier, earlier_unknown, why.into(), rules)
                        .await;
                }
                self.connectivity.set(NetworkStatus::Online);
            }
            Route::Online => {}
        }
        // Without an offline fallback, confirm the backend before sending: "unreachable" is
        // then certain (nothing was sent); any failure after sending is an unknown outcome.
        if !may_store {
            if let Err(e) = self.backend.health_within(QUICK_PROBE_MS).await {
                self.connectivity.set(NetworkStatus::Offline);
                let why = BackendError::NotSent(format!(
                    "the health check failed, the payment was not sent: {e}"
                ));
                let earlier = self.earlier_intent(p, earlier_unknown).await;
                return self
                    .without_backend(p, &earlier, earlier_unknown, why.into(), rules)
                    .await;
            }
        }
        let intent = self.intent_for(p).await;
        if let Intent::AlreadyStored(header) = &intent {
            return Ok(PaymentResult::stored(p, header));
        }
        let earlier = earlier_unknown || matches!(intent, Intent::Written { earlier: true, .. });
        let online_error = match self.online(p).await {
            Err(e) => e,
            ok => {
                self.settle_intent(&intent).await;
                return ok;
            }
        };
        if fallback::means_offline(&online_error) {
            self.connectivity.set(NetworkStatus::Offline);
        }
        match fallback::classify(online_error) {
            // A decline is the backend's verdict on the payment, whatever came before.
            OnlineFailure::Final(e @ PosError::CardDeclined { .. }) => {
                self.settle_intent(&intent).await;
                Err(e)
            }
            // This attempt was refused (a 401, a conflict): it charged nothing, but an
            // earlier one may have, and its intent is then what forwards it.
            OnlineFailure::Final(e) if earlier => Err(fallback::after_earlier_unknown(e)),
            OnlineFailure::Final(e) => Err(self.fail_uncharged(&intent, e).await),
            // The reader next, then the SDK's store, all under the same id: if this attempt
            // did reach the backend, the others get its stored answer, not a second charge.
            OnlineFailure::NotReached {
                may_have_arrived,
                error,
            } => {
                self.without_backend(p, &intent, may_have_arrived || earlier, error, rules)
                    .await
            }
        }
    }

    /// The SDK did not get the payment to the backend (`why`; `may_have_arrived`: its
    /// attempt may have reached it): through the connected reader's own link if it can (or
    /// stored on it, when it is the chosen agent), else stored here if allowed. The intent
    /// is settled only on a final answer.
    async fn without_backend(
        &self,
        p: &Collected,
        intent: &Intent,
        may_have_arrived: bool,
        why: PosError,
        rules: Result<(), PosError>,
    ) -> Result<PaymentResult, PosError> {
        let mut may_have_arrived = may_have_arrived;
        let mut why = why;
        let may_store = fallback::offline_allowed(p.offline_behavior, self.offline_enabled)
            && rules.is_ok()
            && self.within_transaction_limit(p);
        let mode = reader_fallback::reader_mode(
            p.offline_behavior,
            self.offline_storage,
            self.agent.capabilities_of(&p.reader_id),
            may_store,
        );
        if let Some(mode) = mode {
            let answer = self
                .agent
                .process(&payment_body(p), mode, self.reader_timeout_ms)
                .await;
            match reader_fallback::after_reader(answer) {
                AfterReader::Approved(ok) => {
                    self.settle_intent(intent).await;
                    return Ok(PaymentResult::online_through_reader(p, &ok));
                }
                AfterReader::StoredOnReader { stored_at } => {
                    self.agent.stored_on_reader(&p.id);
                    self.settle_intent(intent).await;
                    return Ok(PaymentResult::stored_on_reader(p, stored_at));
                }
                // The backend's verdict on this id, relayed: a decline.
                AfterReader::Final(e @ PosError::CardDeclined { .. }) => {
                    self.settle_intent(intent).await;
                    return Err(e);
                }
                // A refusal of the reader's request (a conflict, a 400 of its own link): it
                // charged nothing, but the SDK's attempt may have; then its intent stays.
                AfterReader::Final(e) if may_have_arrived => {
                    return Err(PosError::OutcomeUnknown(format!("{}: {e}", e.code())));
                }
                AfterReader::Final(e) => return Err(self.fail_uncharged(intent, e).await),
                AfterReader::Refused(e) if !may_have_arrived => {
                    return Err(self.fail_uncharged(intent, e).await);
                }
                // The SDK's attempt may have arrived: never "not charged".
                AfterReader::Refused(e) => {
                    return Err(PosError::OutcomeUnknown(format!("{}: {e}", e.code())));
                }
                AfterReader::NotThrough {
                    may_have_arrived: reader_may,
                    why: reader_why,
                } => {
                    web_sys::console::warn_1(
                        &format!(
                            "pos-terminal: {} not processed by the reader: {reader_why}",
                            p.id
                        )
                        .into(),
                    );
                    may_have_arrived |= reader_may;
                    if reader_may {
                        why = PosError::OutcomeUnknown(reader_why);
                    }
                }
            }
        }
        match fallback::nobody_got_through(
            may_have_arrived,
            p.offline_behavior,
            self.offline_enabled,
            rules,
            &why,
        ) {
            // An unknown outcome keeps its intent: it is forwarded with the same key.
            AfterFailure::Fail(e @ PosError::OutcomeUnknown(_)) => Err(e),
            AfterFailure::Fail(e) => Err(self.fail_uncharged(intent, e).await),
            AfterFailure::StoreOffline { may_have_arrived } => {
                let stored = match intent {
                    Intent::Written { header, .. } => self.intent_offline(p, header).await,
                    Intent::Unwritten | Intent::AlreadyStored(_) => self.store_offline(p).await,
                };
                match stored {
                    Ok(stored) => Ok(stored),
                    // A retry that found its payment settled meanwhile: that is the answer.
                    Err(e @ PosError::CardDeclined { .. }) => Err(e),
                    Err(refused) => {
                        match fallback::after_store_failure(refused, &why, may_have_arrived) {
                            e @ PosError::OutcomeUnknown(_) => Err(e),
                            // "Nothing stored" must hold for the intent too: left behind, it
                            // would be forwarded, and charged, later.
                            e => Err(self.fail_uncharged(intent, e).await),
                        }
                    }
                }
            }
        }
    }

    /// The terminal's per-payment offline limit, which binds the reader's store too.
    fn within_transaction_limit(&self, p: &Collected) -> bool {
        self.limits
            .transaction_limit
            .get(&p.currency)
            .is_none_or(|limit| p.amount <= *limit)
    }

    /// The intent record of this payment, written (sealed, strict) before anything is sent.
    /// A retry after an unknown outcome finds its own; a payment already stored offline
    /// answers as such. A failed write does not stop an online payment.
    async fn intent_for(&self, p: &Collected) -> Intent {
        let now = js::now_ms();
        let header = match self.store.add_intent(p, now).await {
            Ok(h) => h,
            Err(e) => {
                web_sys::console::warn_1(
                    &format!("pos-terminal: the intent of {} was not written: {e}", p.id).into(),
                );
                return Intent::Unwritten;
            }
        };
        match header.state {
            // The store answers a duplicate with the record it found: an intent written at
            // another time is an earlier attempt's.
            StoredState::Intent => Intent::Written {
                earlier: header.stored_at != now,
                header,
            },
            StoredState::Pending | StoredState::Forwarding => Intent::AlreadyStored(header),
            _ => Intent::Unwritten,
        }
    }

    /// A retry that sends nothing itself (`earlier_unknown`: an earlier attempt's outcome is
    /// unknown) still settles that attempt's intent when the reader's answer does: found in
    /// the store, if it is there.
    async fn earlier_intent(&self, p: &Collected, earlier_unknown: bool) -> Intent {
        if !earlier_unknown {
            return Intent::Unwritten;
        }
        match self.store.get(&p.id).await {
            Ok(Some(entry)) if entry.header.state == StoredState::Intent => Intent::Written {
                header: entry.header,
                earlier: true,
            },
            _ => Intent::Unwritten,
        }
    }

    /// The backend answered the online attempt for good (or nothing left this browser): the
    /// intent has served its purpose.
    async fn settle_intent(&self, intent: &Intent) {
        match self.discard_intent(intent).await {
            // Taken over by a forwarder: it sends it with the same key, and the backend
            // replays its answer.
            Ok(_) => {}
            // Left behind, it is forwarded later with the same key: the backend replays
            // its answer, nothing is charged twice.
            Err(e) => {
                web_sys::console::warn_1(&format!("pos-terminal: intent kept: {e}").into());
            }
        }
    }

    /// Deletes the intent: `false` when a forwarder claimed it meanwhile (it is being sent,
    /// with the same key), so it stays.
    async fn discard_intent(&self, intent: &Intent) -> Result<bool, PosError> {
        match intent {
            Intent::Written { header, .. } => self.store.discard_intent(header).await,
            Intent::Unwritten | Intent::AlreadyStored(_) => Ok(true),
        }
    }

    /// Ends an attempt that charged nothing (`e` says why, and promises nothing is kept):
    /// its intent goes. An intent that stays would be forwarded (or is being sent), so the
    /// outcome is then reported unknown instead of `e`.
    async fn fail_uncharged(&self, intent: &Intent, e: PosError) -> PosError {
        let stays = match self.discard_intent(intent).await {
            Ok(true) => return e,
            Ok(false) => "a forwarder took its intent record over and is sending it".to_string(),
            Err(kept) => format!(
                "its intent record could not be discarded ({}) and is forwarded later",
                kept.code()
            ),
        };
        PosError::OutcomeUnknown(format!("{}: {e}; but {stays}, with the same id", e.code()))
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
                Some(&self.store.body_of(p)),
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
        let body = &payment_body(p);
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
        // The store answers a duplicate with the record it found, whatever its state.
        match header.state {
            StoredState::Pending | StoredState::Forwarding => {}
            // An earlier attempt's intent: stored offline as this attempt's would be, within
            // the limits.
            StoredState::Intent => return self.intent_offline(p, &header).await,
            _ => return self.settled_before(p).await,
        }
        self.status.publish().await;
        Ok(PaymentResult::stored(p, &header))
    }

    /// A retry found its payment already settled by a forwarder (its earlier attempt's
    /// intent, or its stored copy, was forwarded meanwhile): the answer is that outcome.
    async fn settled_before(&self, p: &Collected) -> Result<PaymentResult, PosError> {
        let entry = self.store.get(&p.id).await?;
        let Some(entry) = entry else {
            return Err(PosError::OutcomeUnknown(format!(
                "the stored copy of {} went away meanwhile",
                p.id
            )));
        };
        let state = entry.header.state;
        match (state, entry.body) {
            (StoredState::Forwarded, Ok(body)) => {
                if let (Some(payment_intent), Some(status)) =
                    (body.payment_intent_id, body.payment_status)
                {
                    let ok = PaymentOk {
                        payment_intent,
                        status,
                    };
                    return Ok(PaymentResult::online(p, &ok));
                }
            }
            (StoredState::Declined, Ok(body)) => {
                return Err(PosError::CardDeclined {
                    decline_code: body
                        .decline_code
                        .unwrap_or_else(|| "generic_decline".into()),
                })
            }
            _ => {}
        }
        Err(PosError::OutcomeUnknown(format!(
            "{} is stored here as {}: see listStoredPayments()",
            p.id,
            state.as_str()
        )))
    }
}
