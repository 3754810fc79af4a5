//! In a real browser against a running pos-sim: stored payments are forwarded exactly once,
//! a tampered record is quarantined without blocking the others, a timed-out online
//! attempt is stored under the same key and charged once, a run the backend stops gives
//! back every record it claimed and did not send, and a `fetchConnectionToken` that never
//! settles fails within `requestTimeoutMs` (stored offline, or refused) and blocks nothing.
#![cfg(target_arch = "wasm32")]

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::*;
use js_sys::{Function, Promise};
use pos_terminal::auth::{TokenFuture, TokenSource};
use pos_terminal::payment::{new_payment_id, OfflineBehavior, ResultStatus, StoredState};
use pos_terminal::terminal::Terminal;
use pos_terminal::PosError;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn forwarding_against_pos_sim_is_exactly_once_and_quarantines_tampering() {
    let (api, url) = sim_addrs();
    let db = unique_db("forward");
    let (terminal, events) = connected_terminal(options(api, &db), "rdr_sim_2").await;

    let mut ids = Vec::new();
    for amount in [4_321.0, 4_322.0] {
        let result = pay(
            &terminal,
            request(amount, Some(OfflineBehavior::ForceOffline)),
        )
        .await
        .unwrap();
        assert_eq!(result.status, ResultStatus::StoredOffline);
        ids.push(result.id);
    }
    // Tamper with the second one below the SDK: it must be quarantined, not block the first.
    call(
        &tamper_fn(),
        &[db.clone().into(), ids[1].clone().into(), 5.into()],
    )
    .await;

    let report = terminal.forward_stored_payments().await.unwrap();
    assert_eq!(report.forwarded, 1);
    assert_eq!(report.failed, 1);
    assert_eq!(report.remaining, 0);

    let list = terminal.list_stored_payments(None).await.unwrap();
    let state_of = |id: &str| list.iter().find(|p| p.id == id).map(|p| p.state);
    assert_eq!(state_of(&ids[0]), Some(StoredState::Forwarded));
    assert_eq!(state_of(&ids[1]), Some(StoredState::Quarantined));
    assert!(events.forwarded.borrow().iter().any(|p| p.id == ids[0]));
    assert!(events
        .failures
        .borrow()
        .iter()
        .any(|f| f.payment.id == ids[1] && f.code == "record_tampered"));

    // A second forward sends nothing again.
    let again = terminal.forward_stored_payments().await.unwrap();
    assert_eq!(again.forwarded, 0);

    let mine = received(url, &ids[0]).await.expect("the backend has it");
    assert_eq!(get(&mine, "requests").as_f64(), Some(1.0));
    assert_eq!(get(&mine, "amount").as_f64(), Some(4_321.0));
    assert_eq!(get(&mine, "offline").as_bool(), Some(true));
    assert!(
        received(url, &ids[1]).await.is_none(),
        "a quarantined record is never sent"
    );
    terminal.close();
}

#[wasm_bindgen_test]
async fn a_timed_out_online_attempt_is_stored_with_the_same_key_and_charged_once() {
    let (api, url) = sim_addrs();
    let db = unique_db("timeout");
    let mut opts = options(api, &db);
    opts.request_timeout_ms = Some(300.0);
    let (terminal, _events) = connected_terminal(opts, "rdr_sim_1").await;

    // The backend records the payment, then answers after the SDK stopped waiting. The
    // reader's own link is down too, so the SDK stores it (not the reader's link: see
    // tests/reader_agent.rs).
    reader_link("rdr_sim_1", true).await;
    fetch_json(
        &format!("{url}/_sim/network"),
        "POST",
        Some(r#"{"down":false,"latency_ms":1500}"#),
    )
    .await;
    let result = pay(&terminal, request(7_700.0, None)).await;
    fetch_json(
        &format!("{url}/_sim/network"),
        "POST",
        Some(r#"{"down":false,"latency_ms":0}"#),
    )
    .await;
    reader_link("rdr_sim_1", false).await;
    let result = result.unwrap();
    assert_eq!(result.status, ResultStatus::StoredOffline);

    let report = terminal.forward_stored_payments().await.unwrap();
    assert_eq!(report.forwarded, 1);

    let mine = received(url, &result.id)
        .await
        .expect("one payment at the backend");
    assert_eq!(get(&mine, "requests").as_f64(), Some(2.0), "tried twice");
    assert_eq!(
        get(&mine, "offline").as_bool(),
        Some(false),
        "the first attempt counted"
    );

    // The stored record ends with the backend's first answer: the same payment intent.
    let list = terminal.list_stored_payments(None).await.unwrap();
    assert_eq!(list[0].state, StoredState::Forwarded);
    assert_eq!(
        list[0].payment_intent_id,
        get(&mine, "payment_intent").as_string()
    );
    terminal.close();
}

#[wasm_bindgen_test]
async fn a_backlog_of_several_pages_is_forwarded_whole_and_the_status_follows() {
    let (api, url) = sim_addrs();
    let db = unique_db("backlog");
    let (terminal, _events) = connected_terminal(options(api, &db), "rdr_sim_2").await;
    // More than two pages of the forwarder's queue (64 records each), with requests in flight
    // while the next page is read.
    let ids = store_offline(&terminal, 140).await;
    let status = terminal.offline_status().await.unwrap();
    assert_eq!(status.pending_count, 140);
    assert_eq!(status.pending_amounts.get("usd"), Some(&(140 * 4_321)));
    assert!(status.oldest_stored_at.is_some());

    let report = terminal.forward_stored_payments().await.unwrap();
    assert_eq!((report.forwarded, report.remaining), (140, 0), "{report:?}");
    let status = terminal.offline_status().await.unwrap();
    assert_eq!(status.pending_count, 0);
    assert!(status.pending_amounts.is_empty());
    assert_eq!(status.oldest_stored_at, None);
    for id in [&ids[0], &ids[70], &ids[139]] {
        let mine = received(url, id).await.expect("the backend has it");
        assert_eq!(get(&mine, "requests").as_f64(), Some(1.0));
    }
    terminal.close();
}

/// A 200 whose body has no length and never ends in a small object (64 MiB, chunked): the
/// answer is not read past the limit (the rest is cancelled, not buffered in the page), the
/// payment stays pending, and is forwarded once when the backend answers properly.
#[wasm_bindgen_test]
async fn an_endless_answer_is_not_read_whole_and_nothing_is_lost() {
    let (api, url) = sim_addrs();
    let db = unique_db("huge");
    let (terminal, _events) = connected_terminal(options(api, &db), "rdr_sim_2").await;
    let ids = store_offline(&terminal, 1).await;
    faults(url, r#"[{"kind":"huge","mb":64}]"#).await;
    let first = terminal.forward_stored_payments().await;
    let sent = fetch_json(&format!("{url}/_sim/faults"), "GET", None).await;
    faults(url, "[]").await;
    let sent = get(&sent, "huge_bytes_sent").as_f64().unwrap_or(f64::MAX);
    let recorded = received(url, &ids[0]).await.is_some();
    let second = terminal.forward_stored_payments().await;
    // Closed before any assertion: a failure here must not keep the reader from the next test.
    terminal.close();
    assert!(sent > 0.0, "the huge answer was served");
    // The page reads at most 256 KiB; the rest is what the socket buffers (and a browser's
    // network process) took before the cancel arrived.
    assert!(sent < 24.0 * 1024.0 * 1024.0, "{sent} bytes taken");
    let first = first.unwrap();
    assert_eq!((first.forwarded, first.remaining), (0, 1), "{first:?}");
    assert!(!recorded, "nothing recorded");
    assert_eq!(second.unwrap().forwarded, 1);
    let mine = received(url, &ids[0]).await.expect("forwarded");
    assert_eq!(get(&mine, "requests").as_f64(), Some(1.0));
}

/// `POST /_sim/faults`: the next `POST /v1/payments` requests follow `script`, one fault each.
async fn faults(url: &str, script: &str) {
    let body = format!(r#"{{"faults":{script}}}"#);
    let answer = fetch_json(&format!("{url}/_sim/faults"), "POST", Some(&body)).await;
    assert!(get(&answer, "faults").is_array(), "script accepted: {body}");
}

/// Stores `n` payments offline through `terminal`, each of an amount pos-sim approves (some
/// amounts are its decline triggers); their ids in order.
async fn store_offline(terminal: &Terminal, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let result = pay(
            terminal,
            request(4_321.0, Some(OfflineBehavior::ForceOffline)),
        )
        .await
        .unwrap();
        ids.push(result.id);
    }
    ids
}

/// How many requests pos-sim received for each of `ids` (0: none).
async fn requests_for(url: &str, ids: &[String]) -> Vec<f64> {
    let all: js_sys::Array = fetch_json(&format!("{url}/_sim/payments"), "GET", None)
        .await
        .unchecked_into();
    ids.iter()
        .map(|id| {
            all.iter()
                .find(|p| get(p, "key").as_string().as_deref() == Some(id.as_str()))
                .and_then(|p| get(&p, "requests").as_f64())
                .unwrap_or(0.0)
        })
        .collect()
}

/// Holds a read-write transaction on the `payments` store of database `name` for `ms`, below
/// the SDK: the SDK's transactions on it wait meanwhile.
fn hold_payments_fn() -> js_sys::Function {
    js_sys::Function::new_with_args(
        "name, ms",
        r#"return new Promise((res, rej) => {
            const r = indexedDB.open(name);
            r.onerror = () => rej(r.error);
            r.onsuccess = () => {
              const db = r.result;
              const tx = db.transaction('payments', 'readwrite');
              const st = tx.objectStore('payments');
              const end = Date.now() + ms;
              const spin = () => { if (Date.now() < end) st.count().onsuccess = spin; };
              spin();
              tx.oncomplete = () => { db.close(); res(true); };
              tx.onerror = () => rej(tx.error);
            };
          });"#,
    )
}

#[wasm_bindgen_test]
async fn a_stop_gives_back_every_claimed_record_of_the_prefetched_page_too() {
    let (api, url) = sim_addrs();
    let db = unique_db("stop");
    let (terminal, _events) = connected_terminal(options(api, &db), "rdr_sim_2").await;
    // More than the forwarder's first two pages (16, then 64 read and claimed while the
    // first is being sent).
    let ids = store_offline(&terminal, 80).await;
    // 36 requests answered, then the backend is gone (reset, nothing recorded). The
    // settlements wait behind a transaction held from the 5th answer on, so the stop finds
    // claimed records of both pages unsent.
    let answered = [r#"{"kind":"delay","ms":0}"#; 36].join(",");
    let gone = [r#"{"kind":"reset_before"}"#; 6].join(",");
    faults(url, &format!("[{answered},{gone}]")).await;
    let hold = async {
        let deadline = js_sys::Date::now() + 20_000.0;
        while requests_for(url, &ids).await.iter().sum::<f64>() < 5.0 {
            assert!(js_sys::Date::now() < deadline, "the run sent nothing");
        }
        call(&hold_payments_fn(), &[db.clone().into(), 1_500.into()]).await;
    };
    let (report, _) = futures_util::future::join(terminal.forward_stored_payments(), hold).await;
    faults(url, "[]").await;
    let first = report.unwrap();
    // Chromium and Firefox stop the run at the first reset: 36 forwarded, 44 left. WebKit
    // (WebKitGTK 2.50 here) did so in one run and in another went on past the 6 resets, each
    // record cut off left for later: 74 forwarded, 6 left. Either way nothing is lost.
    assert_eq!(first.forwarded + first.remaining, 80, "{first:?}");
    assert!(first.forwarded >= 36, "{first:?}");

    // Nothing lost, nothing left `forwarding`: the requests cut off (at most the 6 resets)
    // are pending with their attempt counted, the records claimed and never sent (the next
    // page's too) are pending with it given back.
    let pending = terminal
        .list_stored_payments(Some(StoredState::Pending))
        .await
        .unwrap();
    let tried = pending.iter().filter(|p| p.attempts == 1).count();
    let untried = pending.iter().filter(|p| p.attempts == 0).count();
    assert_eq!(pending.len() as u32, first.remaining, "{first:?}");
    assert_eq!(
        tried + untried,
        pending.len(),
        "{tried} tried, {untried} not"
    );
    assert!((3..=6).contains(&tried), "{tried} requests cut off");
    let forwarding = terminal
        .list_stored_payments(Some(StoredState::Forwarding))
        .await
        .unwrap();
    assert!(
        forwarding.is_empty(),
        "{} left forwarding",
        forwarding.len()
    );

    // The next run forwards the rest: each payment reached the backend once.
    let report = terminal.forward_stored_payments().await.unwrap();
    assert_eq!(
        (report.forwarded, report.remaining),
        (first.remaining, 0),
        "{report:?}"
    );
    assert!(requests_for(url, &ids).await.iter().all(|&n| n == 1.0));
    terminal.close();
}

/// How the test's `fetchConnectionToken` behaves.
#[derive(Clone, Copy, PartialEq)]
enum TokenMode {
    /// Its promise never settles (a `fetch` to the merchant's server that hangs).
    Never,
    /// It settles with a token long after the SDK stopped waiting.
    Late,
    /// It answers with a token from pos-sim.
    Working,
}

/// A JS promise as the page's callback would return it: never settled, or settled late.
fn page_token_promise(mode: TokenMode) -> TokenFuture {
    let make = Function::new_with_args(
        "late",
        "return late ? new Promise(r => setTimeout(() => r('tok_late_abandoned'), 1500)) \
                     : new Promise(() => {});",
    );
    let promise: Promise = make
        .call1(&JsValue::NULL, &(mode == TokenMode::Late).into())
        .unwrap()
        .unchecked_into();
    Box::pin(async move {
        let value = JsFuture::from(promise)
            .await
            .map_err(|_| PosError::ConnectionToken("rejected".into()))?;
        Ok(value.as_string().unwrap())
    })
}

#[wasm_bindgen_test]
async fn a_token_source_that_never_settles_times_out_and_nothing_is_lost() {
    let (api, url) = sim_addrs();
    let mut opts = options(api, &unique_db("token-hang"));
    opts.request_timeout_ms = Some(500.0);
    opts.offline = offline_limits(r#"{"transactionLimit":{"usd":5000}}"#);
    let mode = Rc::new(Cell::new(TokenMode::Never));
    let asked = Rc::new(Cell::new(0u32));
    let source: Rc<dyn TokenSource> = {
        let (mode, asked, working) = (mode.clone(), asked.clone(), tokens(api));
        Rc::new(move || -> TokenFuture {
            asked.set(asked.get() + 1);
            match mode.get() {
                TokenMode::Working => working.fetch_token(),
                hanging => page_token_promise(hanging),
            }
        })
    };
    let events = Rc::new(Recorder::default());
    let terminal = terminal_with_tokens(opts, source, events.clone()).await;
    // The in-page simulated reader pairs with nobody and has no link of its own: whatever
    // happens to the payment is the SDK's doing.
    connect_simulated(&terminal).await;
    // The terminal's first run (started by create, beside the start-up token fetch) ends
    // before anything is stored: with nothing to forward it asks for no token, so the counts
    // below are this test's own calls.
    while terminal.offline_status().await.unwrap().forwarding {
        sleep_ms(20).await;
    }
    // Terminal.create asked for a fresh token at once (for the service worker), in vain.
    assert_eq!(asked.get(), 1, "a token is fetched at start-up");

    // prefer_online: no token, nothing sent, so it is stored offline within the timeout.
    let collected = terminal
        .collect_payment_method(request(2_500.0, Some(OfflineBehavior::PreferOnline)))
        .await
        .unwrap();
    let started = js_sys::Date::now();
    let stored = terminal.process_payment(&collected.id).await.unwrap();
    let took = js_sys::Date::now() - started;
    assert_eq!(stored.status, ResultStatus::StoredOffline);
    assert!((450.0..5_000.0).contains(&took), "stored after {took} ms");
    assert_eq!(asked.get(), 2);

    // prefer_online over the per-payment limit: nothing sent, nothing stored, and so its
    // intent must not be left to forward either (checked below, once the promises settle).
    let over = terminal
        .collect_payment_method(request(6_000.0, Some(OfflineBehavior::PreferOnline)))
        .await
        .unwrap();
    let refused = terminal.process_payment(&over.id).await.unwrap_err();
    assert_eq!(refused.code(), "offline_limit_exceeded", "{refused}");
    assert_eq!(asked.get(), 3);

    // require_online: the token's own error, asked again (a late answer this time).
    mode.set(TokenMode::Late);
    let refused = pay(
        &terminal,
        request(2_600.0, Some(OfflineBehavior::RequireOnline)),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), "connection_token_failed", "{refused}");
    assert!(refused.to_string().contains("500 ms"), "{refused}");
    assert_eq!(asked.get(), 4, "a timed-out wait is no cached failure");

    // A forwarding run ends with the token's error and frees `forwarding`; the payment stays.
    let run = terminal.forward_stored_payments();
    let watch = async {
        sleep_ms(200).await;
        terminal.offline_status().await.unwrap().forwarding
    };
    let (run, forwarding_meanwhile) = futures_util::future::join(run, watch).await;
    assert!(forwarding_meanwhile, "the run waits for the token");
    let err = run.unwrap_err();
    assert_eq!(err.code(), "connection_token_failed", "{err}");
    assert!(!terminal.offline_status().await.unwrap().forwarding);

    // Capture needs a token too: refused with its error, not left pending.
    let err = terminal
        .capture_payment(&new_payment_id().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "connection_token_failed", "{err}");
    assert_eq!(asked.get(), 6);

    // The abandoned promises settle: nothing changes. The payment is pending, the refused
    // ones left nothing behind (not even their intents), and the backend has none.
    sleep_ms(1_800).await;
    let pending = terminal
        .list_stored_payments(Some(StoredState::Pending))
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, stored.id);
    assert!(terminal
        .list_stored_payments(Some(StoredState::Intent))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(terminal.offline_status().await.unwrap().pending_count, 1);
    assert!(received(url, &stored.id).await.is_none());
    assert!(received(url, &over.id).await.is_none());

    // The merchant's server answers again: the payment is forwarded, once.
    mode.set(TokenMode::Working);
    let report = terminal.forward_stored_payments().await.unwrap();
    assert_eq!((report.forwarded, report.remaining), (1, 0), "{report:?}");
    let mine = received(url, &stored.id).await.expect("forwarded");
    assert_eq!(get(&mine, "requests").as_f64(), Some(1.0));
    assert_eq!(get(&mine, "offline").as_bool(), Some(true));
    assert!(events.forwarded.borrow().iter().any(|p| p.id == stored.id));
    let again = terminal.forward_stored_payments().await.unwrap();
    assert_eq!(again.forwarded, 0);
    assert_eq!(
        terminal
            .list_stored_payments(Some(StoredState::Forwarded))
            .await
            .unwrap()
            .len(),
        1
    );
    terminal.close();
}

async fn sleep_ms(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}
