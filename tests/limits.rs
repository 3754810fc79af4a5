//! In a real browser against a running pos-sim: offline limits refuse and store nothing;
//! bad input is refused with its code before anything reaches the reader.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use pos_terminal::payment::OfflineBehavior;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn offline_limits_refuse_and_store_nothing() {
    let (api, _url) = sim_addrs();
    let db = unique_db("limits");
    let mut opts = options(api, &db);
    opts.offline = offline_limits(
        r#"{"transactionLimit":{"usd":5000},"storedAmountLimit":{"usd":6000},"maxStoredPayments":2}"#,
    );
    let (terminal, _events) = connected_terminal(opts, "rdr_sim_1").await;
    let offline_pay = |amount: f64| {
        pay(
            &terminal,
            request(amount, Some(OfflineBehavior::ForceOffline)),
        )
    };
    let code = |r: Result<_, pos_terminal::PosError>| r.unwrap_err().code();

    assert_eq!(
        code(offline_pay(5001.0).await),
        "offline_limit_exceeded",
        "per payment"
    );
    offline_pay(4000.0).await.unwrap();
    assert_eq!(
        code(offline_pay(2500.0).await),
        "offline_limit_exceeded",
        "stored total"
    );
    offline_pay(2000.0).await.unwrap();
    assert_eq!(
        code(offline_pay(10.0).await),
        "offline_limit_exceeded",
        "count"
    );

    let status = terminal.offline_status().await.unwrap();
    assert_eq!(status.pending_count, 2);
    assert_eq!(status.pending_amounts.get("usd"), Some(&6000));
    let list = terminal.list_stored_payments(None).await.unwrap();
    assert_eq!(list.len(), 2, "refused payments are not stored");

    // Bad input is refused with its code before anything reaches the reader.
    let err = terminal
        .collect_payment_method(request(12.5, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_amount");
    let mut bad = request(100.0, None);
    bad.currency = "USD".into();
    let err = terminal.collect_payment_method(bad).await.unwrap_err();
    assert_eq!(err.code(), "invalid_currency");
    terminal.close();
}
