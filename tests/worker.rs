//! In a real browser against a running pos-sim: the entry point a service worker calls
//! forwards with the configuration the page saved, and refuses clearly without one.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use pos_terminal::facade::forward_saved;
use pos_terminal::payment::OfflineBehavior;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn the_worker_entry_point_forwards_with_the_saved_configuration() {
    let (api, url) = sim_addrs();
    let db = unique_db("worker");
    let (terminal, _events) = connected_terminal(options(api, &db), "rdr_sim_2").await;
    let result = pay(
        &terminal,
        request(3_300.0, Some(OfflineBehavior::ForceOffline)),
    )
    .await
    .unwrap();
    // The page goes away; what a service worker would call remains.
    terminal.close();

    let report = forward_saved(&db).await.unwrap();
    assert_eq!(report.forwarded, 1);
    assert_eq!(report.remaining, 0);
    let mine = received(url, &result.id).await.expect("forwarded");
    assert_eq!(get(&mine, "requests").as_f64(), Some(1.0));

    // Without a saved configuration it refuses clearly.
    let err = forward_saved(&unique_db("none")).await.unwrap_err();
    assert_eq!(err.code(), "invalid_argument");
}

/// A page that never went online with a payment, nor paired a reader through the backend
/// (the in-page simulated reader needs no credential), still leaves a token for the worker:
/// `Terminal.create` fetches one at start-up and saves it sealed.
#[wasm_bindgen_test]
async fn the_worker_has_a_token_even_if_no_payment_went_online() {
    let (api, url) = sim_addrs();
    let db = unique_db("worker-startup-token");
    let terminal = terminal_with(options(api, &db), std::rc::Rc::new(Recorder::default())).await;
    connect_simulated(&terminal).await;
    // The terminal's first run (started by create) ends before the payment is stored, so that
    // the worker's entry point is the one to send it.
    while terminal.offline_status().await.unwrap().forwarding {
        gloo_timers::future::TimeoutFuture::new(20).await;
    }
    let result = pay(
        &terminal,
        request(3_400.0, Some(OfflineBehavior::ForceOffline)),
    )
    .await
    .unwrap();

    // The start-up fetch runs beside everything else (and its save needs the page's
    // database open): give it a moment, not forever, before the page goes away.
    let mut report = forward_saved(&db).await;
    for _ in 0..20 {
        if report.is_ok() {
            break;
        }
        gloo_timers::future::TimeoutFuture::new(100).await;
        report = forward_saved(&db).await;
    }
    terminal.close();
    let report = report.expect("the worker found a saved token");
    assert_eq!((report.forwarded, report.remaining), (1, 0));
    let mine = received(url, &result.id).await.expect("forwarded");
    assert_eq!(get(&mine, "requests").as_f64(), Some(1.0));
}

/// A page that never got a connection token (it started during an outage and closed before
/// `fetchConnectionToken` succeeded): the worker's entry point says so with
/// `connection_token_failed` (nothing was sent, so nothing was refused: not `unauthorized`),
/// and sends nothing.
#[wasm_bindgen_test]
async fn without_a_saved_token_the_worker_sends_nothing_and_says_why() {
    use pos_terminal::auth::{TokenFuture, TokenSource};
    let (api, url) = sim_addrs();
    let db = unique_db("worker-no-token");
    let never: std::rc::Rc<dyn TokenSource> = std::rc::Rc::new(|| -> TokenFuture {
        Box::pin(async { Err(pos_terminal::PosError::ConnectionToken("offline".into())) })
    });
    let terminal = terminal_with_tokens(
        options(api, &db),
        never,
        std::rc::Rc::new(Recorder::default()),
    )
    .await;
    connect_simulated(&terminal).await;
    while terminal.offline_status().await.unwrap().forwarding {
        gloo_timers::future::TimeoutFuture::new(20).await;
    }
    let result = pay(
        &terminal,
        request(3_500.0, Some(OfflineBehavior::ForceOffline)),
    )
    .await
    .unwrap();
    terminal.close();
    let err = forward_saved(&db).await.unwrap_err();
    assert_eq!(err.code(), "connection_token_failed", "{err}");
    assert!(received(url, &result.id).await.is_none(), "nothing sent");
}
