//! In a real browser against a running pos-sim: a stored payment is forwarded only to the
//! backend it was taken for (invariant 7). Backend "A" and backend "B" are two URLs of the
//! same pos-sim (`127.0.0.1` and `localhost`), so whatever B would be sent, pos-sim would see.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use pos_terminal::facade::forward_saved;
use pos_terminal::payment::{OfflineBehavior, ResultStatus, StoredState};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn a_payment_sealed_for_backend_a_is_not_sent_to_backend_b() {
    let (api, url) = sim_addrs();
    let backend_a = api.replacen("127.0.0.1", "localhost", 1);
    assert_ne!(backend_a, api, "pos-sim's API listens on 127.0.0.1");
    let backend_b = api;
    let db = unique_db("binding");

    let (terminal_a, _) = connected_terminal(options(&backend_a, &db), "rdr_sim_1").await;
    let stored = pay(
        &terminal_a,
        request(4_100.0, Some(OfflineBehavior::ForceOffline)),
    )
    .await
    .unwrap();
    terminal_a.close();

    // The same database, now configured for backend B: the payment is neither listed nor sent.
    backend_b_sees_nothing(backend_b, &db, &stored.id).await;

    // Back on backend A, it is forwarded there, once.
    let (terminal_a, _) = connected_terminal(options(&backend_a, &db), "rdr_sim_1").await;
    let report = terminal_a.forward_stored_payments().await.unwrap();
    assert_eq!(report.remaining, 0);
    let listed = terminal_a.list_stored_payments(None).await.unwrap();
    assert_eq!(listed.len(), 1);
    terminal_a.close();
    let mine = received(url, &stored.id).await.expect("forwarded to A");
    assert_eq!(get(&mine, "requests").as_f64(), Some(1.0));
}

/// The same for a payment stored after its online attempt failed (its intent record, sealed
/// for the backend before the request, moved to pending): it stays backend A's.
#[wasm_bindgen_test]
async fn a_payment_stored_after_a_failed_online_attempt_stays_bound_to_its_backend() {
    let (api, url) = sim_addrs();
    let backend_a = api.replacen("127.0.0.1", "localhost", 1);
    let backend_b = api;
    let db = unique_db("binding-intent");

    let (terminal_a, _) = connected_terminal(options(&backend_a, &db), "rdr_sim_1").await;
    // The reader's own link is cut too, so that the SDK stores the payment itself.
    reader_link("rdr_sim_1", true).await;
    let collected = terminal_a
        .collect_payment_method(request(4_200.0, None))
        .await
        .unwrap();
    // The terminal saw the backend online: the attempt is written as an intent (sealed for
    // backend A), sent, and failing, moved to pending with its body sealed again.
    sim_network(true).await;
    let stored = terminal_a.process_payment(&collected.id).await;
    sim_network(false).await;
    reader_link("rdr_sim_1", false).await;
    let stored = stored.unwrap();
    assert_eq!(stored.status, ResultStatus::StoredOffline);
    assert_eq!(
        terminal_a.list_stored_payments(None).await.unwrap().len(),
        1
    );
    terminal_a.close();

    backend_b_sees_nothing(backend_b, &db, &stored.id).await;

    // Backend A forwards it, once (pos-sim counts the failed attempt's request too if it
    // arrived; it did not: the network was cut).
    let (terminal_a, _) = connected_terminal(options(&backend_a, &db), "rdr_sim_1").await;
    // (its first run at create may be the one that sends it)
    let report = terminal_a.forward_stored_payments().await.unwrap();
    assert_eq!(report.remaining, 0);
    let listed = terminal_a.list_stored_payments(None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, StoredState::Forwarded);
    terminal_a.close();
    let mine = received(url, &stored.id).await.expect("forwarded to A");
    assert_eq!(get(&mine, "requests").as_f64(), Some(1.0));
}

/// A terminal for `backend_b` on `db`, then the service worker's entry point (with the
/// configuration B saved), neither list, count nor send payment `id`, and pos-sim never got it.
async fn backend_b_sees_nothing(backend_b: &str, db: &str, id: &str) {
    let (_, url) = sim_addrs();
    let (terminal_b, _) = connected_terminal(options(backend_b, db), "rdr_sim_1").await;
    assert!(terminal_b
        .list_stored_payments(None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(terminal_b.offline_status().await.unwrap().pending_count, 0);
    let report = terminal_b.forward_stored_payments().await.unwrap();
    assert_eq!((report.forwarded, report.remaining), (0, 0));
    terminal_b.close();
    let report = forward_saved(db).await.unwrap();
    assert_eq!((report.forwarded, report.remaining), (0, 0));
    assert!(received(url, id).await.is_none(), "backend B never saw it");
}
