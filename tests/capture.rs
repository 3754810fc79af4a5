//! Manual capture: `capturePayment` / `cancelPayment` against pos-sim's backend, for a payment
//! approved online and for one stored offline and forwarded. Each is captured once (a second
//! capture answers the same), cancel after capture is refused with its own code, a payment
//! still stored here is `payment_not_forwarded`, and a backend that does not answer is a
//! retryable `backend_unreachable`.
#![cfg(target_arch = "wasm32")]

mod common;
mod reader_kit;

use common::*;
use pos_protocol::backend::{CaptureMethod, PaymentStatus};
use pos_terminal::payment::{OfflineBehavior, PaymentRequest, ResultStatus, StoredState};
use pos_terminal::terminal::Terminal;
use reader_kit::*;
use std::rc::Rc;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// A terminal on pos-sim's backend with the in-page simulated reader connected.
async fn simulated_terminal(prefix: &str) -> (Terminal, Rc<ReaderEvents>) {
    let (terminal, events) = terminal(prefix).await;
    connect_simulated(&terminal).await;
    (terminal, events)
}

fn manual(amount: f64, behavior: Option<OfflineBehavior>) -> PaymentRequest {
    PaymentRequest {
        capture_method: Some(CaptureMethod::Manual),
        ..request(amount, behavior)
    }
}

#[wasm_bindgen_test]
async fn an_online_manual_payment_is_captured_once_then_cancel_is_refused() {
    let (terminal, _) = simulated_terminal("capture-online").await;
    let paid = pay(&terminal, manual(1_200.0, None)).await.unwrap();
    assert_eq!(paid.status, ResultStatus::RequiresCapture);

    let first = terminal.capture_payment(&paid.id).await.unwrap();
    assert_eq!(first.id, paid.id);
    assert_eq!(first.status, PaymentStatus::Succeeded);
    assert_eq!(
        Some(first.payment_intent_id.clone()),
        paid.payment_intent_id
    );
    // Idempotent: the same answer again, nothing captured twice.
    let again = terminal.capture_payment(&paid.id).await.unwrap();
    assert_eq!(again, first);

    let err = terminal.cancel_payment(&paid.id).await.unwrap_err();
    assert_eq!(err.code(), "payment_unexpected_state");
    terminal.close();
}

#[wasm_bindgen_test]
async fn a_canceled_payment_stays_canceled_and_cannot_be_captured() {
    let (terminal, _) = simulated_terminal("capture-cancel").await;
    let paid = pay(&terminal, manual(1_250.0, None)).await.unwrap();
    assert_eq!(paid.status, ResultStatus::RequiresCapture);
    let canceled = terminal.cancel_payment(&paid.id).await.unwrap();
    assert_eq!(canceled.status, PaymentStatus::Canceled);
    assert_eq!(terminal.cancel_payment(&paid.id).await.unwrap(), canceled);
    let err = terminal.capture_payment(&paid.id).await.unwrap_err();
    assert_eq!(err.code(), "payment_unexpected_state");
    terminal.close();
}

#[wasm_bindgen_test]
async fn a_manual_payment_stored_offline_is_captured_once_after_it_was_forwarded() {
    let (terminal, events) = simulated_terminal("capture-offline").await;
    let stored = pay(
        &terminal,
        manual(1_300.0, Some(OfflineBehavior::ForceOffline)),
    )
    .await
    .unwrap();
    assert_eq!(stored.status, ResultStatus::StoredOffline);

    // The backend has not seen it yet.
    for err in [
        terminal.capture_payment(&stored.id).await.unwrap_err(),
        terminal.cancel_payment(&stored.id).await.unwrap_err(),
    ] {
        assert_eq!(err.code(), "payment_not_forwarded");
    }

    // The terminal's own first run may take it before this call does (it starts with the
    // terminal, and the simulated reader is quick); either way it is forwarded once.
    let report = terminal.forward_stored_payments().await.unwrap();
    assert_eq!(report.remaining, 0);
    assert_eq!(
        events.forwarded_count(&stored.id),
        1,
        "onPaymentForwarded once"
    );
    let (_, url) = sim_addrs();
    let record = received(url, &stored.id).await.expect("the backend has it");
    assert_eq!(get(&record, "requests").as_f64(), Some(1.0));
    let listed = terminal.list_stored_payments(None).await.unwrap();
    let mine = listed.iter().find(|p| p.id == stored.id).unwrap();
    assert_eq!(mine.state, StoredState::Forwarded);
    assert_eq!(mine.payment_status, Some(PaymentStatus::RequiresCapture));

    let first = terminal.capture_payment(&stored.id).await.unwrap();
    assert_eq!(first.status, PaymentStatus::Succeeded);
    assert_eq!(
        Some(&first.payment_intent_id),
        mine.payment_intent_id.as_ref()
    );
    assert_eq!(terminal.capture_payment(&stored.id).await.unwrap(), first);
    let listed = terminal.list_stored_payments(None).await.unwrap();
    let mine = listed.iter().find(|p| p.id == stored.id).unwrap();
    assert_eq!(mine.payment_status, Some(PaymentStatus::Succeeded));

    let err = terminal.cancel_payment(&stored.id).await.unwrap_err();
    assert_eq!(err.code(), "payment_unexpected_state");
    terminal.close();
}

/// A payment whose online attempt has not answered (its intent stored, as a tab that died
/// mid-request leaves it) is unknown to the backend: "not forwarded yet", never "not found".
#[wasm_bindgen_test]
async fn a_payment_whose_online_attempt_has_not_answered_is_not_forwarded_not_unknown() {
    let (api, _) = sim_addrs();
    let db = unique_db("capture-intent");
    let events = Rc::new(ReaderEvents::default());
    let terminal = terminal_with(options(api, &db), events).await;
    connect_simulated(&terminal).await;
    let collected = terminal
        .collect_payment_method(manual(1_400.0, None))
        .await
        .unwrap();
    let store = pos_terminal::store::Store::open(&db).await.unwrap();
    store
        .add_intent(&collected, js_sys::Date::now())
        .await
        .unwrap();
    store.close();
    for err in [
        terminal.capture_payment(&collected.id).await.unwrap_err(),
        terminal.cancel_payment(&collected.id).await.unwrap_err(),
    ] {
        assert_eq!(err.code(), "payment_not_forwarded", "{err}");
    }
    terminal.close();
}

#[wasm_bindgen_test]
async fn unknown_ids_bad_ids_and_a_silent_backend_have_their_own_codes() {
    let (terminal, _) = simulated_terminal("capture-errors").await;
    let err = terminal
        .capture_payment("pay_nosuchpaymentatall")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "payment_not_found");
    for bad in ["", "pay/../../v1/health", "pay 1"] {
        let err = terminal.capture_payment(bad).await.unwrap_err();
        assert_eq!(err.code(), "invalid_argument", "{bad:?}");
    }

    let paid = pay(&terminal, manual(1_400.0, None)).await.unwrap();
    sim_network(true).await;
    let while_down = terminal.capture_payment(&paid.id).await;
    sim_network(false).await;
    assert_eq!(while_down.unwrap_err().code(), "backend_unreachable");
    // Retrying is safe: capture is idempotent at the backend.
    let captured = terminal.capture_payment(&paid.id).await.unwrap();
    assert_eq!(captured.status, PaymentStatus::Succeeded);
    terminal.close();
}
