//! In a real browser against a running pos-sim: the entry point a service worker calls
//! forwards with the configuration the page saved, and refuses clearly without one.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use pos_terminal::facade::forward_saved;
use pos_terminal::payment::OfflineBehavior;
use wasm_bindgen::JsCast;
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

    // Without a saved configuration it refuses clearly, and leaves no database behind for a
    // name no page used (a misspelt `databaseName` in the worker).
    let never = unique_db("none");
    let err = forward_saved(&never).await.unwrap_err();
    assert_eq!(err.code(), "invalid_argument");
    let names = database_names().await;
    assert!(names.contains(&db), "{names:?}");
    assert!(!names.contains(&never), "{names:?}");
}

/// The names of this origin's databases (`indexedDB.databases()`).
async fn database_names() -> Vec<String> {
    let factory = web_sys::window().unwrap().indexed_db().unwrap().unwrap();
    let list = js_sys::Reflect::get(&factory, &"databases".into()).unwrap();
    let list = list
        .unchecked_ref::<js_sys::Function>()
        .call0(&factory)
        .unwrap();
    let list = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(list))
        .await
        .unwrap();
    js_sys::Array::from(&list)
        .iter()
        .filter_map(|d| js_sys::Reflect::get(&d, &"name".into()).ok()?.as_string())
        .collect()
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
