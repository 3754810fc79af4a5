//! In a real browser against a running pos-sim: a stored payment is forwarded only to the
//! backend it was taken for (invariant 7). Backend "A" and backend "B" are two URLs of the
//! same pos-sim (`127.0.0.1` and `localhost`), so whatever B would be sent, pos-sim would see.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use pos_terminal::facade::forward_saved;
use pos_terminal::payment::OfflineBehavior;
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
    let (terminal_b, _) = connected_terminal(options(backend_b, &db), "rdr_sim_1").await;
    assert!(terminal_b
        .list_stored_payments(None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(terminal_b.offline_status().await.unwrap().pending_count, 0);
    let report = terminal_b.forward_stored_payments().await.unwrap();
    assert_eq!((report.forwarded, report.remaining), (0, 0));
    terminal_b.close();
    // Nor by the service worker's entry point, which uses the saved (B) configuration.
    let report = forward_saved(&db).await.unwrap();
    assert_eq!((report.forwarded, report.remaining), (0, 0));
    assert!(
        received(url, &stored.id).await.is_none(),
        "backend B never saw it"
    );

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
