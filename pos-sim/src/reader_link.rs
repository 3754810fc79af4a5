//! A simulated reader's own link to the backend: `process` (send now, or store), and the
//! forwarding loop that sends its stored payments when the link allows.
//!
//! The link "sends" by calling the backend's logic in-process, recorded like any request;
//! when the reader's link is cut (`POST /_sim/readers/{id}/network`) it fails as unreachable.
//! The calls into the backend side of pos-sim (sealing a card, charging, checking a pairing)
//! are in the "backend adapters" section below, and nowhere else.

use std::sync::Arc;
use std::time::Duration;

use pos_protocol::backend::{OfflineInfo, PaymentBody};
use pos_protocol::offline_rules;
use pos_protocol::reader::{ForwardResult, ProcessMode, ProcessResult, ReaderErrorCode};

use crate::api::{self, ApiState};
use crate::card_crypto::{self, CardBinding, CardCryptoError, CardData, CardKey};
use crate::reader_store::{Entry, ReaderStore, ReaderStoreError, RowState, Stored, MAX_PENDING};
use crate::readers::Reader;
use crate::store::Store;
use crate::util::now_ms;

/// First wait after a failed forward; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two forwarding attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The forwarding loop looks again at least this often, even unwoken.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// What the backend made of a payment the reader sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// Its final word: approved, declined or refused.
    Final(ForwardResult),
    /// Nothing was sent: the reader's link is down.
    Unreachable,
    /// Sent, no usable answer (the backend failed): it may have it.
    Unknown(String),
}

fn process_result_of(result: ForwardResult) -> ProcessResult {
    match result {
        ForwardResult::Approved {
            payment_intent,
            status,
        } => ProcessResult::Approved {
            payment_intent,
            status,
        },
        ForwardResult::Declined { decline_code } => ProcessResult::Declined { decline_code },
        ForwardResult::Rejected { code, message } => ProcessResult::Rejected { code, message },
    }
}

/// The shared pieces a reader's link works with.
pub struct LinkContext {
    pub api: ApiState,
    pub store: Arc<ReaderStore>,
}

/// A refusal of `process`: the `error` the reader answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessError {
    pub code: ReaderErrorCode,
    pub message: String,
}

impl ProcessError {
    fn new(code: ReaderErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn storage(e: impl std::fmt::Display) -> Self {
        eprintln!("[pos-sim] reader store failed: {e}");
        Self::new(ReaderErrorCode::StorageFull, "the reader's store failed")
    }
}

/// Sends `body` over the reader's link, unless it is down.
pub async fn send(ctx: &LinkContext, reader: &Reader, body: PaymentBody) -> Charge {
    if !reader.link_up() {
        return Charge::Unreachable;
    }
    let api = ctx.api.clone();
    match tokio::task::spawn_blocking(move || charge(&api, &body)).await {
        Ok(charge) => charge,
        Err(e) => Charge::Unknown(format!("the backend call failed: {e}")),
    }
}

/// Runs the blocking store call `f` off the async workers.
async fn blocking<T, F>(f: F) -> Result<T, ProcessError>
where
    F: FnOnce() -> Result<T, ReaderStoreError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ProcessError::storage(e)),
        Err(e) => Err(ProcessError::storage(e)),
    }
}

/// `process {mode, payment}`: the answer for `processed`, or the `error` to send.
pub async fn process(
    ctx: &LinkContext,
    reader: &Reader,
    mode: ProcessMode,
    payment: PaymentBody,
) -> Result<ProcessResult, ProcessError> {
    if payment.reader_id != reader.id {
        return Err(ProcessError::new(
            ReaderErrorCode::InvalidMessage,
            "payment.reader_id is not this reader",
        ));
    }
    if let Err(reason) = api::validate(&payment) {
        return Err(ProcessError::new(ReaderErrorCode::InvalidMessage, reason));
    }
    let (store, reader_id, payment_id) = (ctx.store.clone(), reader.id.clone(), payment.id.clone());
    let existing = blocking(move || store.find(&reader_id, &payment_id)).await?;
    if let Some(entry) = existing {
        return answer_for_existing(&entry, &payment);
    }
    match mode {
        ProcessMode::Store => store_payment(ctx, reader, payment).await,
        ProcessMode::Online | ProcessMode::OnlineOrStore => {
            match (mode, send(ctx, reader, payment.clone()).await) {
                (_, Charge::Final(result)) => Ok(process_result_of(result)),
                (ProcessMode::Online, Charge::Unknown(message)) => {
                    Ok(ProcessResult::Unknown { message })
                }
                (ProcessMode::Online, _) => Ok(ProcessResult::Unreachable {
                    message: String::from("the reader's link to the backend is down"),
                }),
                (_, Charge::Unknown(message)) => {
                    let stored = store_payment(ctx, reader, payment).await;
                    Ok(after_unknown(stored, message))
                }
                _ => store_payment(ctx, reader, payment).await,
            }
        }
    }
}

/// `online_or_store` after a send without an answer: the backend may have charged it. If the
/// reader cannot store it (offline rules, full or failing store), the answer is `unknown`, not
/// an error: an error would tell the POS nothing happened, and a cashier taking the payment
/// again with another card could charge the customer twice. The POS keeps the key instead.
fn after_unknown(stored: Result<ProcessResult, ProcessError>, message: String) -> ProcessResult {
    match stored {
        Ok(result) => result,
        Err(refusal) => ProcessResult::Unknown {
            message: format!(
                "{message}; the reader could not store it either ({})",
                refusal.message
            ),
        },
    }
}

/// A second `process` for a payment already stored: the same answer, never a second row.
fn answer_for_existing(
    entry: &Entry,
    payment: &PaymentBody,
) -> Result<ProcessResult, ProcessError> {
    if entry.amount != payment.amount || entry.currency != payment.currency {
        return Err(ProcessError::new(
            ReaderErrorCode::InvalidMessage,
            "another payment with this id is already stored on the reader",
        ));
    }
    match (&entry.state, &entry.result) {
        (RowState::Pending, _) | (_, None) => Ok(ProcessResult::Stored {
            stored_at: entry.stored_at,
        }),
        (_, Some(result)) => Ok(process_result_of(result.clone())),
    }
}

/// Stores `payment` sealed, after the offline rules and the store's limit.
async fn store_payment(
    ctx: &LinkContext,
    reader: &Reader,
    payment: PaymentBody,
) -> Result<ProcessResult, ProcessError> {
    let country = reader.country();
    if let Err(refusal) = offline_rules::check(&payment.card, Some(&country)) {
        return Err(ProcessError::new(
            ReaderErrorCode::OfflinePaymentMethodUnsupported,
            refusal.to_string(),
        ));
    }
    let (store, reader_id) = (ctx.store.clone(), reader.id.clone());
    let stored = blocking(move || {
        if store.summary(&reader_id)?.count >= MAX_PENDING {
            return Ok(None);
        }
        store.store(&reader_id, &payment, now_ms()).map(Some)
    })
    .await?;
    match stored {
        None => Err(ProcessError::new(
            ReaderErrorCode::StorageFull,
            "the reader holds too many stored payments",
        )),
        Some(Stored::New { stored_at }) => {
            eprintln!("[pos-sim] reader {}: stored a payment", reader.id);
            reader.store_changed();
            reader.wake_forwarder();
            Ok(ProcessResult::Stored { stored_at })
        }
        Some(Stored::Existing(entry)) => Ok(ProcessResult::Stored {
            stored_at: entry.stored_at,
        }),
    }
}

/// What one forwarding attempt did.
enum Forward {
    /// A final answer: reported, not sent again.
    Done,
    /// Not pending any more (or never was).
    Gone,
    /// Network failure: try again later.
    Retry,
}

async fn forward_one(ctx: &LinkContext, reader: &Reader, payment_id: String) -> Forward {
    let (store, reader_id, id) = (ctx.store.clone(), reader.id.clone(), payment_id.clone());
    let opened = tokio::task::spawn_blocking(move || store.open_pending(&reader_id, &id)).await;
    let (mut body, stored_at) = match opened {
        Ok(Ok(Some(opened))) => opened,
        Ok(Ok(None)) => return Forward::Gone,
        // SQLite busy or failing, a missing key row, a panicked task: the payment is still
        // there, try again later. Ending it here would lose it.
        Ok(Err(e)) if !unreadable(&e) => {
            eprintln!(
                "[pos-sim] reader {}: opening a stored payment failed: {e}",
                reader.id
            );
            return Forward::Retry;
        }
        Err(e) => {
            eprintln!(
                "[pos-sim] reader {}: opening a stored payment failed: {e}",
                reader.id
            );
            return Forward::Retry;
        }
        Ok(Err(e)) => {
            // A row that does not open never will: end it rather than retry forever.
            eprintln!(
                "[pos-sim] reader {}: a stored payment is unreadable: {e}",
                reader.id
            );
            let failed = ForwardResult::Rejected {
                code: String::from("reader_store_unreadable"),
                message: String::from("the reader could not open this stored payment"),
            };
            return finish(ctx, reader, payment_id, failed).await;
        }
    };
    if body.offline.is_none() {
        body.offline = Some(OfflineInfo { stored_at });
    }
    match send(ctx, reader, body).await {
        Charge::Final(result) => finish(ctx, reader, payment_id, result).await,
        Charge::Unreachable | Charge::Unknown(_) => Forward::Retry,
    }
}

/// The stored row itself is bad (tampered, or not what this version wrote): retrying cannot
/// help. Anything else (SQLite busy or failing, a key row missing) may pass.
fn unreadable(e: &ReaderStoreError) -> bool {
    matches!(e, ReaderStoreError::Open | ReaderStoreError::Corrupt)
}

async fn finish(
    ctx: &LinkContext,
    reader: &Reader,
    payment_id: String,
    result: ForwardResult,
) -> Forward {
    let (store, reader_id) = (ctx.store.clone(), reader.id.clone());
    let finished = blocking(move || store.finish(&reader_id, &payment_id, &result, now_ms())).await;
    match finished {
        Ok(Some(report)) => {
            eprintln!(
                "[pos-sim] reader {}: forwarded payment_id={} ({})",
                reader.id,
                report.payment_id,
                outcome_name(&report.result)
            );
            reader.report(report);
            reader.store_changed();
            Forward::Done
        }
        Ok(None) => Forward::Gone,
        Err(_) => Forward::Retry,
    }
}

fn outcome_name(result: &ForwardResult) -> &'static str {
    match result {
        ForwardResult::Approved { .. } => "approved",
        ForwardResult::Declined { .. } => "declined",
        ForwardResult::Rejected { .. } => "rejected",
    }
}

/// The reader's forwarding loop: while its link is up and it is not booting, send each
/// pending payment with its own idempotency key; network failures back off (up to
/// [`MAX_BACKOFF`]), final answers end the payment and are reported to the POS.
pub async fn forward_loop(ctx: Arc<LinkContext>, reader: Arc<Reader>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        if !reader.can_forward() {
            let _ = tokio::time::timeout(IDLE_POLL, reader.forwarder_woken()).await;
            continue;
        }
        let (store, reader_id) = (ctx.store.clone(), reader.id.clone());
        let pending: Vec<String> = blocking(move || store.pending(&reader_id))
            .await
            .unwrap_or_default();
        if pending.is_empty() {
            let _ = tokio::time::timeout(IDLE_POLL, reader.forwarder_woken()).await;
            continue;
        }
        let mut retry = false;
        for payment_id in pending {
            if !reader.can_forward() {
                break;
            }
            match forward_one(&ctx, &reader, payment_id).await {
                Forward::Done | Forward::Gone => backoff = MIN_BACKOFF,
                Forward::Retry => {
                    retry = true;
                    break;
                }
            }
        }
        if retry {
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
        }
    }
}

// ---- Backend adapters: the one place the readers call into the backend side of pos-sim ----

/// Charges `body` as the backend would answer `POST /v1/payments` with `Idempotency-Key =
/// body.id` (in-process, recorded like any request). Blocks on SQLite.
fn charge(api: &ApiState, body: &PaymentBody) -> Charge {
    match api::charge_from_reader(api, body) {
        // A storage failure of the backend: retried like a network error.
        ForwardResult::Rejected { code, .. } if code == "internal" => {
            Charge::Unknown(String::from("the backend failed"))
        }
        result => Charge::Final(result),
    }
}

/// Seals `card` for the backend, bound to this reader and to the payment it is read for.
pub fn seal_card(
    key: &CardKey,
    reader_id: &str,
    payment_id: &str,
    amount: u64,
    currency: &str,
    card: &CardData,
) -> Result<String, CardCryptoError> {
    let binding = CardBinding {
        payment_id: payment_id.to_owned(),
        amount,
        currency: currency.to_owned(),
    };
    card_crypto::encrypt(key, reader_id, &binding, card)
}

/// Whether `secret` is a valid pairing credential for `reader_id` now (the backend issued it
/// for this reader and it has not expired).
pub fn pairing_valid(store: &Store, reader_id: &str, secret: &str) -> bool {
    match store.pairing_valid(reader_id, secret, now_ms()) {
        Ok(valid) => valid,
        Err(e) => {
            eprintln!("[pos-sim] reader {reader_id}: pairing lookup failed: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use pos_protocol::backend::{CaptureMethod, PaymentStatus};
    use pos_protocol::{CardSummary, EntryMode, SortedMap};
    use rusqlite::Connection;

    use super::*;
    use crate::readers::{Readers, ReadersSetup};

    const R1: &str = "rdr_sim_1";

    struct Fixture {
        dir: tempfile::TempDir,
        readers: Readers,
        ctx: LinkContext,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Arc::new(Store::open(&dir.path().join("sim.db")).expect("backend"));
            let card_key = store.card_key().expect("key");
            let api = ApiState { store, card_key };
            let reader_store =
                Arc::new(ReaderStore::open(&dir.path().join("r.sqlite")).expect("readers"));
            let readers = Readers::new(ReadersSetup {
                count: 1,
                ws_base: "ws://127.0.0.1:1".into(),
                api: api.clone(),
                store: reader_store.clone(),
                tap_delay: Duration::from_millis(1),
                country: "US".into(),
            });
            let ctx = LinkContext {
                api,
                store: reader_store,
            };
            Self { dir, readers, ctx }
        }

        fn reader(&self) -> &Reader {
            self.readers.get(R1).expect("reader")
        }

        /// A body as the SDK builds it from this reader's `card_read`.
        fn body(&self, id: &str, amount: u64, entry: EntryMode) -> PaymentBody {
            let card = CardData {
                number: "4242424242424242".into(),
                exp_month: 12,
                exp_year: 2030,
            };
            let payload =
                seal_card(&self.ctx.api.card_key, R1, id, amount, "usd", &card).expect("seal");
            PaymentBody {
                id: id.into(),
                amount,
                currency: "usd".into(),
                capture_method: CaptureMethod::Automatic,
                card_payload: payload,
                card: CardSummary {
                    brand: "visa".into(),
                    last4: "4242".into(),
                    exp_month: 12,
                    exp_year: 2030,
                    entry_mode: Some(entry),
                    pin_verified: entry == EntryMode::Chip,
                },
                reader_id: R1.into(),
                offline: None,
                metadata: SortedMap::new(),
            }
        }

        /// Runs `sql` on the file `name` through a second connection, as another process
        /// breaking (or repairing) it would.
        fn tamper(&self, name: &str, sql: &str) {
            let conn = Connection::open(self.dir.path().join(Path::new(name))).expect("open");
            conn.execute_batch(sql).expect("tamper");
        }

        fn requests_for(&self, key: &str) -> Vec<u64> {
            let list = self.ctx.api.store.list_payments().expect("list");
            list.iter()
                .filter(|p| p.key == key)
                .map(|p| p.requests)
                .collect()
        }

        fn state_of(&self, id: &str) -> Option<RowState> {
            self.ctx.store.find(R1, id).expect("find").map(|e| e.state)
        }
    }

    #[tokio::test]
    async fn a_store_failure_while_forwarding_keeps_the_payment() {
        let f = Fixture::new();
        f.reader().set_link_down(true);
        let stored = process(
            &f.ctx,
            f.reader(),
            ProcessMode::Store,
            f.body("pay_t", 1000, EntryMode::Chip),
        )
        .await
        .expect("process");
        assert!(matches!(stored, ProcessResult::Stored { .. }), "{stored:?}");
        f.reader().set_link_down(false);

        // A failing store (here: its key table gone) is not an unreadable row: retry.
        f.tamper(
            "r.sqlite",
            "ALTER TABLE reader_keys RENAME TO reader_keys_away;",
        );
        assert!(matches!(
            forward_one(&f.ctx, f.reader(), "pay_t".into()).await,
            Forward::Retry
        ));
        assert_eq!(f.state_of("pay_t"), Some(RowState::Pending), "still held");
        assert!(f.requests_for("pay_t").is_empty(), "nothing sent");

        f.tamper(
            "r.sqlite",
            "ALTER TABLE reader_keys_away RENAME TO reader_keys;",
        );
        assert!(matches!(
            forward_one(&f.ctx, f.reader(), "pay_t".into()).await,
            Forward::Done
        ));
        assert_eq!(f.state_of("pay_t"), Some(RowState::Forwarded));
        assert_eq!(f.requests_for("pay_t"), [1]);
    }

    #[tokio::test]
    async fn a_tampered_row_ends_as_rejected_not_retried_forever() {
        let f = Fixture::new();
        f.reader().set_link_down(true);
        process(
            &f.ctx,
            f.reader(),
            ProcessMode::Store,
            f.body("pay_x", 1000, EntryMode::Chip),
        )
        .await
        .expect("process");
        f.reader().set_link_down(false);
        f.tamper(
            "r.sqlite",
            "UPDATE stored_payments SET sealed = zeroblob(64) WHERE payment_id = 'pay_x';",
        );
        assert!(matches!(
            forward_one(&f.ctx, f.reader(), "pay_x".into()).await,
            Forward::Done
        ));
        let entry = f.ctx.store.find(R1, "pay_x").expect("find").expect("entry");
        assert_eq!(entry.state, RowState::Failed);
        assert!(
            matches!(entry.result, Some(ForwardResult::Rejected { ref code, .. }) if code == "reader_store_unreadable")
        );
        assert!(f.requests_for("pay_x").is_empty());
    }

    #[tokio::test]
    async fn a_forward_charged_before_a_crash_is_resent_with_its_key_and_charged_once() {
        let f = Fixture::new();
        f.reader().set_link_down(true);
        let body = f.body("pay_c", 1500, EntryMode::Contactless);
        let ProcessResult::Stored { stored_at } =
            process(&f.ctx, f.reader(), ProcessMode::Store, body.clone())
                .await
                .expect("process")
        else {
            panic!("not stored");
        };
        // The reader sent it and the backend charged it, then the reader died before it
        // marked the row forwarded: the row is still pending.
        let mut sent = body;
        sent.offline = Some(OfflineInfo { stored_at });
        let ForwardResult::Approved { payment_intent, .. } =
            api::charge_from_reader(&f.ctx.api, &sent)
        else {
            panic!("not approved");
        };
        assert_eq!(f.state_of("pay_c"), Some(RowState::Pending));

        // After the restart it sends it again, same key and body: the backend replays.
        f.reader().set_link_down(false);
        assert!(matches!(
            forward_one(&f.ctx, f.reader(), "pay_c".into()).await,
            Forward::Done
        ));
        let reports = f.ctx.store.unacked_reports(R1).expect("reports");
        assert_eq!(reports.len(), 1);
        assert_eq!(
            reports[0].result,
            ForwardResult::Approved {
                payment_intent,
                status: PaymentStatus::Succeeded
            },
            "the first charge's answer"
        );
        assert_eq!(f.requests_for("pay_c"), [2], "one payment, two requests");
    }

    #[tokio::test]
    async fn online_or_store_without_an_answer_never_says_nothing_happened() {
        let f = Fixture::new();
        // The backend fails after the request reached it (500 internal): outcome unknown.
        f.tamper("sim.db", "ALTER TABLE payments RENAME TO payments_away;");

        // A swiped card may not be stored: the answer is `unknown`, not
        // `offline_payment_method_unsupported` (the backend may have charged it).
        let swiped = f.body("pay_swipe", 1000, EntryMode::Swipe);
        let answer = process(&f.ctx, f.reader(), ProcessMode::OnlineOrStore, swiped)
            .await
            .expect("an answer, not an error");
        assert!(
            matches!(answer, ProcessResult::Unknown { .. }),
            "{answer:?}"
        );
        assert_eq!(f.state_of("pay_swipe"), None, "nothing stored");

        // Nothing sent at all (link down): then the refusal is the answer.
        f.reader().set_link_down(true);
        let refused = process(
            &f.ctx,
            f.reader(),
            ProcessMode::OnlineOrStore,
            f.body("pay_swipe_2", 1000, EntryMode::Swipe),
        )
        .await
        .expect_err("refused");
        assert_eq!(
            refused.code,
            ReaderErrorCode::OfflinePaymentMethodUnsupported
        );
        f.reader().set_link_down(false);

        // A chip card is stored, and forwarded with its key once the backend works again.
        let chip = f.body("pay_chip", 1000, EntryMode::Chip);
        let answer = process(&f.ctx, f.reader(), ProcessMode::OnlineOrStore, chip)
            .await
            .expect("stored");
        assert!(matches!(answer, ProcessResult::Stored { .. }), "{answer:?}");
        f.tamper("sim.db", "ALTER TABLE payments_away RENAME TO payments;");
        assert!(matches!(
            forward_one(&f.ctx, f.reader(), "pay_chip".into()).await,
            Forward::Done
        ));
        assert_eq!(f.requests_for("pay_chip"), [1]);
    }
}
