//! In a real browser against a running pos-sim (issue 9): unknown outcomes keep an intent
//! and the same-id retry; limits are checked and written in one transaction; a full disk is
//! a clear code with nothing half-written; persistence is asked for and reported; a failed
//! payment can be requeued under the same key. Faults are scripted through `/_sim/faults`.
#![cfg(target_arch = "wasm32")]

mod common;

use std::rc::Rc;

use common::*;
use js_sys::Function;
use pos_terminal::forward_policy::INTENT_GRACE_MS;
use pos_terminal::limits::OfflineLimits;
use pos_terminal::options::Settings;
use pos_terminal::payment::{OfflineBehavior, PaymentResult, ResultStatus, StoredState};
use pos_terminal::store::Store;
use pos_terminal::terminal::Terminal;
use pos_terminal::PosError;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

async fn faults(url: &str, script: &str) {
    let body = format!(r#"{{"faults":{script}}}"#);
    let answer = fetch_json(&format!("{url}/_sim/faults"), "POST", Some(&body)).await;
    assert!(get(&answer, "faults").is_array(), "script accepted: {body}");
}

/// Resets after the backend recorded the payment, twice: a browser may resend a POST once
/// when its reused connection was reset.
const RESETS: &str = r#"[{"kind":"reset_after"},{"kind":"reset_after"}]"#;

/// The scenarios that use the one simulated reader and the one fault script, in turn.
#[wasm_bindgen_test]
async fn against_pos_sim_one_scenario_at_a_time() {
    reader_link("rdr_sim_1", true).await;
    a_reset_after_the_backend_recorded_is_an_unknown_outcome_under_require_online().await;
    a_reset_then_a_refused_store_is_unknown_not_a_limit_error().await;
    an_abandoned_intent_is_forwarded_once_and_a_fresh_one_is_left_alone().await;
    persistence_is_requested_reported_and_may_be_required().await;
    a_collect_that_may_be_stored_is_refused_before_the_card_when_space_is_short().await;
    a_failed_payment_is_requeued_under_the_same_key().await;
    odd_answers_never_fail_a_payment_and_retry_after_is_honoured().await;
    a_record_with_an_unreadable_header_is_moved_reported_and_not_pending().await;
    a_counted_record_whose_header_breaks_stops_counting().await;
    a_clear_state_flipped_out_of_pending_is_quarantined_reported_and_never_sent().await;
    a_flip_with_the_ledger_taken_away_is_found_by_the_next_run().await;
    an_older_ledger_put_back_is_recounted_by_the_next_run().await;
    without_web_locks_a_forwarding_record_is_taken_over_only_after_its_lease().await;
    draining_keeps_a_few_requests_in_flight().await;
    reader_link("rdr_sim_1", false).await;
}

/// A terminal on a database of its own, and a payment of `amount` stored offline in it.
async fn with_stored_payment(
    prefix: &str,
    amount: f64,
) -> (String, Terminal, Rc<Recorder>, String) {
    let (api, _url) = sim_addrs();
    let db = unique_db(prefix);
    let (terminal, events) = connected_terminal(options(api, &db), "rdr_sim_1").await;
    let stored = pay(
        &terminal,
        request(amount, Some(OfflineBehavior::ForceOffline)),
    )
    .await
    .unwrap();
    (db, terminal, events, stored.id)
}

/// The object whose `persisted`/`persist`/`estimate` the SDK calls: `StorageManager`'s
/// prototype, or, in a browser without one (WebKitGTK's MiniBrowser), a stand-in
/// `navigator.storage` that a test can patch the same way.
const STORAGE: &str = r#"(self.__storageTarget ??= (typeof StorageManager !== 'undefined')
    ? StorageManager.prototype
    : (Object.defineProperty(navigator, 'storage', { configurable: true, value: {
         persisted: async () => false, persist: async () => false,
         estimate: async () => ({ quota: 1e12, usage: 0 }) } }), navigator.storage))"#;

fn run_js(code: &str) {
    Function::new_no_args(code).call0(&JsValue::NULL).unwrap();
}

fn requests(record: &JsValue) -> f64 {
    get(record, "requests").as_f64().unwrap_or(0.0)
}

async fn a_reset_after_the_backend_recorded_is_an_unknown_outcome_under_require_online() {
    let (api, url) = sim_addrs();
    let db = unique_db("unknown");
    let (terminal, _events) = connected_terminal(options(api, &db), "rdr_sim_1").await;
    // A warm-up payment fetches the connection token while nothing is scripted.
    pay(&terminal, request(1_000.0, None)).await.unwrap();

    let collected = terminal
        .collect_payment_method(request(2_300.0, Some(OfflineBehavior::RequireOnline)))
        .await
        .unwrap();
    // Twice: a browser may resend a POST once when its reused connection was reset.
    faults(url, RESETS).await;
    let err = terminal.process_payment(&collected.id).await.unwrap_err();
    faults(url, "[]").await;
    assert_eq!(err.code(), "payment_outcome_unknown", "{err}");
    let at_backend = received(url, &collected.id).await.expect("recorded");
    let before = requests(&at_backend);
    assert!(before >= 1.0);
    // Its intent is kept: a tab that dies now still leaves it to forward with the same key.
    let intents = terminal
        .list_stored_payments(Some(StoredState::Intent))
        .await
        .unwrap();
    assert!(intents.iter().any(|p| p.id == collected.id), "intent kept");
    assert!(
        terminal
            .list_stored_payments(None)
            .await
            .unwrap()
            .is_empty(),
        "nothing stored offline"
    );

    // The same-id retry gets the backend's first answer: charged once.
    let result = terminal.process_payment(&collected.id).await.unwrap();
    assert_eq!(result.status, ResultStatus::Succeeded);
    let at_backend = received(url, &collected.id).await.expect("recorded");
    assert_eq!(
        requests(&at_backend),
        before + 1.0,
        "the replay, not a second charge"
    );
    assert_eq!(
        get(&at_backend, "outcome").as_string().as_deref(),
        Some("succeeded")
    );
    assert!(
        terminal
            .list_stored_payments(Some(StoredState::Intent))
            .await
            .unwrap()
            .is_empty(),
        "the answered intent is gone"
    );
    terminal.close();
}

async fn a_reset_then_a_refused_store_is_unknown_not_a_limit_error() {
    let (api, url) = sim_addrs();
    let db = unique_db("unknown-limit");
    let mut opts = options(api, &db);
    opts.offline = offline_limits(r#"{"transactionLimit":{"usd":100}}"#);
    let (terminal, _events) = connected_terminal(opts, "rdr_sim_1").await;
    pay(&terminal, request(1_000.0, None)).await.unwrap();

    let collected = terminal
        .collect_payment_method(request(1_500.0, None))
        .await
        .unwrap();
    faults(url, RESETS).await;
    let err = terminal.process_payment(&collected.id).await.unwrap_err();
    faults(url, "[]").await;
    // `offline_limit_exceeded` here would invite a second card for a charged payment.
    assert_eq!(err.code(), "payment_outcome_unknown", "{err}");

    // Retries that send nothing (the backend and the reader's link down) and find the store
    // still refused: the first attempt's outcome is still unknown, and its intent stays.
    sim_network(true).await;
    reader_link("rdr_sim_1", true).await;
    // The first goes online and fails; the second asks the health check first (the
    // terminal now knows the backend is down) and would find the first attempt's intent
    // in the store: neither "over the limit" nor "stored offline".
    for retry in ["online", "health check first"] {
        let err = terminal.process_payment(&collected.id).await.unwrap_err();
        assert_eq!(err.code(), "payment_outcome_unknown", "{retry}: {err}");
    }
    sim_network(false).await;
    reader_link("rdr_sim_1", false).await;
    let intents = terminal
        .list_stored_payments(Some(StoredState::Intent))
        .await
        .unwrap();
    assert!(intents.iter().any(|p| p.id == collected.id), "intent kept");
    assert_eq!(terminal.offline_status().await.unwrap().pending_count, 0);

    // The intent, abandoned (dated back past the grace), is forwarded by a run: the
    // backend's first answer, replayed. Charged once.
    let before = requests(&received(url, &collected.id).await.expect("recorded"));
    let long_ago = js_sys::Date::now() - INTENT_GRACE_MS - 60_000.0;
    patch_record(
        &db,
        &collected.id,
        &format!(r#"{{"updatedAt":{long_ago}}}"#),
    )
    .await;
    let report = terminal.forward_stored_payments().await.unwrap();
    assert_eq!(report.forwarded, 1, "{report:?}");
    let at_backend = received(url, &collected.id).await.expect("recorded");
    assert_eq!(requests(&at_backend), before + 1.0, "a replay");

    // A retry that cannot reach the backend finds the payment settled in the store, and
    // answers with that: approved (not "stored offline", not unknown).
    sim_network(true).await;
    reader_link("rdr_sim_1", true).await;
    let result = terminal.process_payment(&collected.id).await;
    sim_network(false).await;
    reader_link("rdr_sim_1", false).await;
    let result = result.unwrap();
    assert_eq!(result.status, ResultStatus::Succeeded);
    assert!(result.payment_intent_id.is_some(), "{result:?}");
    assert_eq!(
        requests(&received(url, &collected.id).await.expect("recorded")),
        before + 1.0,
        "nothing more sent"
    );
    let err = terminal.process_payment(&collected.id).await.unwrap_err();
    assert_eq!(err.code(), "payment_not_collected", "final: {err}");
    terminal.close();
}

async fn an_abandoned_intent_is_forwarded_once_and_a_fresh_one_is_left_alone() {
    let (api, url) = sim_addrs();
    let db = unique_db("intent");
    let (terminal, _events) = connected_terminal(options(api, &db), "rdr_sim_1").await;
    // Cards read by the reader, so the backend can open their payload.
    let old = terminal
        .collect_payment_method(request(3_400.0, None))
        .await
        .unwrap();
    let fresh = terminal
        .collect_payment_method(request(3_410.0, None))
        .await
        .unwrap();
    // As a tab killed mid-request leaves them: intents, one written long ago.
    let store = Store::open(&db).await.unwrap();
    let now = js_sys::Date::now();
    store
        .add_intent(&old, now - INTENT_GRACE_MS - 1_000.0)
        .await
        .unwrap();
    store.add_intent(&fresh, now).await.unwrap();
    store.close();

    let report = terminal.forward_stored_payments().await.unwrap();
    assert_eq!(report.forwarded, 1, "{report:?}");
    let all = terminal
        .list_stored_payments(Some(StoredState::Forwarded))
        .await
        .unwrap();
    assert!(all.iter().any(|p| p.id == old.id));
    assert_eq!(requests(&received(url, &old.id).await.unwrap()), 1.0);
    assert!(
        received(url, &fresh.id).await.is_none(),
        "an intent in progress is not sent twice"
    );
    terminal.close();
}

#[wasm_bindgen_test]
async fn limits_hold_for_two_tabs_storing_at_once() {
    let db = unique_db("race");
    // Two connections, as two tabs have.
    let a = Store::open(&db).await.unwrap();
    let b = Store::open(&db).await.unwrap();
    let limits = OfflineLimits {
        max_stored_payments: Some(1),
        ..OfflineLimits::default()
    };
    let (ca, cb) = (collected(100), collected(200));
    let (ra, rb) = futures_util::future::join(
        a.add_pending(&ca, 1.0, &limits),
        b.add_pending(&cb, 2.0, &limits),
    )
    .await;
    assert!(
        ra.is_ok() != rb.is_ok(),
        "exactly one fits: {ra:?} / {rb:?}"
    );
    let refused = ra.err().or(rb.err()).unwrap();
    assert_eq!(refused.code(), "offline_limit_exceeded");
    assert_eq!(a.outstanding().await.unwrap().len(), 1, "one stored");
    assert_eq!(a.ledger().await.unwrap().outstanding().count, 1);

    // The age limit: the oldest stored payment is too old, nothing more is stored.
    let aged = OfflineLimits {
        max_stored_age_ms: Some(60_000),
        ..OfflineLimits::default()
    };
    let now = js_sys::Date::now();
    let db2 = unique_db("age");
    let s = Store::open(&db2).await.unwrap();
    s.add_pending(&collected(1), now - 120_000.0, &aged)
        .await
        .unwrap();
    let err = s.add_pending(&collected(2), now, &aged).await.unwrap_err();
    assert_eq!(err.code(), "offline_limit_exceeded");
    for store in [a, b, s] {
        store.close();
    }
}

/// A store writes a payment from the ledger it last saw and checks it in the same
/// transaction (`store::predict`): when another tab (or the worker) changed the ledger
/// meanwhile, its prediction must not stand — the limits hold against what is stored, and
/// the ledger keeps counting every payment once.
#[wasm_bindgen_test]
async fn a_store_whose_ledger_another_tab_changed_checks_limits_against_the_stored_one() {
    let db = unique_db("stale");
    let a = Store::open(&db).await.unwrap();
    let b = Store::open(&db).await.unwrap();
    let two = OfflineLimits {
        max_stored_payments: Some(2),
        ..OfflineLimits::default()
    };
    a.add_pending(&collected(100), 1.0, &two).await.unwrap();
    // `a` now knows one payment; `b` stores the second behind its back.
    b.add_pending(&collected(200), 2.0, &two).await.unwrap();
    let err = a.add_pending(&collected(300), 3.0, &two).await.unwrap_err();
    assert_eq!(err.code(), "offline_limit_exceeded", "a third does not fit");
    assert_eq!(a.outstanding().await.unwrap().len(), 2);
    assert_eq!(a.ledger().await.unwrap().outstanding().count, 2);

    // Without a limit in the way, each tab's stale view is corrected, nothing double-counted.
    let four = OfflineLimits {
        max_stored_payments: Some(4),
        ..OfflineLimits::default()
    };
    let third = collected(300);
    a.add_pending(&third, 3.0, &four).await.unwrap();
    b.add_pending(&collected(400), 4.0, &four).await.unwrap();
    assert_eq!(
        a.add_pending(&collected(500), 5.0, &four)
            .await
            .unwrap_err()
            .code(),
        "offline_limit_exceeded"
    );
    // The same payment again answers with the first record and stores nothing.
    let again = a.add_pending(&third, 9.0, &four).await.unwrap();
    assert_eq!(again.stored_at, 3.0, "the first record stands");
    let ledger = b.ledger().await.unwrap().outstanding();
    assert_eq!(ledger.count, 4);
    assert_eq!(ledger.amounts.get("usd"), Some(&1000));
    assert_eq!(b.outstanding().await.unwrap().len(), 4);
    for store in [a, b] {
        store.close();
    }
}

#[wasm_bindgen_test]
async fn a_quota_error_wrapped_in_an_abort_is_a_clear_code_and_nothing_is_half_written() {
    let db = unique_db("quota");
    let store = Store::open(&db).await.unwrap();
    let first = collected(500);
    store
        .add_pending(&first, 1.0, &OfflineLimits::default())
        .await
        .unwrap();
    // The browser runs out of quota on the next add: the request fails with AbortError,
    // the transaction names the cause.
    run_js(
        r#"const proto = IDBObjectStore.prototype;
           self.__origAdd = proto.add;
           proto.add = function (value, key) {
             const req = self.__origAdd.call(this, value, key);
             const tx = this.transaction;
             Object.defineProperty(tx, 'error', {
               get: () => new DOMException('quota', 'QuotaExceededError') });
             tx.abort();
             return req;
           };"#,
    );
    let result = store
        .add_pending(&collected(700), 2.0, &OfflineLimits::default())
        .await;
    run_js("IDBObjectStore.prototype.add = self.__origAdd;");
    assert_eq!(result.unwrap_err().code(), "storage_quota_exceeded");
    let outstanding = store.outstanding().await.unwrap();
    assert_eq!(outstanding.len(), 1, "no record of the refused payment");
    let ledger = store.ledger().await.unwrap().outstanding();
    assert_eq!(
        (ledger.count, ledger.amounts.get("usd")),
        (1, Some(&500)),
        "the ledger is as before"
    );
    store.close();
}

#[wasm_bindgen_test]
async fn create_survives_a_config_write_that_fails() {
    let (api, _url) = sim_addrs();
    run_js(
        r#"const proto = IDBObjectStore.prototype;
           self.__origPut = proto.put;
           proto.put = function (value, key) {
             if (key === 'config') throw new DOMException('full', 'QuotaExceededError');
             return self.__origPut.call(this, value, key);
           };"#,
    );
    let settings = Settings::from_options(options(api, &unique_db("config-full"))).unwrap();
    let created = Terminal::create(settings, tokens(api), Rc::new(Recorder::default())).await;
    run_js("IDBObjectStore.prototype.put = self.__origPut;");
    let terminal = created.expect("online payments must not stop on a full disk");
    terminal.close();
}

async fn persistence_is_requested_reported_and_may_be_required() {
    let (api, _url) = sim_addrs();
    run_js(&format!(
        r#"const target = {STORAGE};
               self.__persistCalls = 0;
               self.__origPersist = target.persist;
               target.persist = async function () {{ self.__persistCalls += 1; return false; }};"#
    ));
    let mut opts = options(api, &unique_db("persist"));
    opts.offline = offline_limits(r#"{"requirePersistentStorage":true}"#);
    let (terminal, _events) = connected_terminal(opts, "rdr_sim_1").await;
    run_js("self.__storageTarget.persist = self.__origPersist;");
    let calls = get(&js_sys::global(), "__persistCalls").as_f64();
    assert_eq!(calls, Some(1.0), "persist() asked at create");
    let status = terminal.offline_status().await.unwrap();
    assert_eq!(status.storage.persisted, Some(false));
    let err = pay(
        &terminal,
        request(1_200.0, Some(OfflineBehavior::ForceOffline)),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.code(),
        "offline_disabled",
        "not granted: nothing stored"
    );
    assert!(terminal
        .list_stored_payments(None)
        .await
        .unwrap()
        .is_empty());
    terminal.close();
}

async fn a_collect_that_may_be_stored_is_refused_before_the_card_when_space_is_short() {
    let (api, _url) = sim_addrs();
    let (terminal, _events) =
        connected_terminal(options(api, &unique_db("estimate")), "rdr_sim_1").await;
    run_js(&format!(
        r#"const target = {STORAGE};
               self.__origEstimate = target.estimate;
               target.estimate = async () => ({{ quota: 1000000, usage: 999000 }});"#
    ));
    let offline = terminal
        .collect_payment_method(request(1_300.0, Some(OfflineBehavior::ForceOffline)))
        .await;
    let online = terminal
        .collect_payment_method(request(1_300.0, Some(OfflineBehavior::RequireOnline)))
        .await;
    run_js("self.__storageTarget.estimate = self.__origEstimate;");
    assert_eq!(offline.unwrap_err().code(), "storage_quota_exceeded");
    assert!(online.is_ok(), "an online-only payment needs no space");
    terminal.close();
}

async fn a_failed_payment_is_requeued_under_the_same_key() {
    let (_api, url) = sim_addrs();
    let (_db, terminal, events, id) = with_stored_payment("requeue", 4_400.0).await;
    // The backend refuses it for good once (its own error body): `failed`.
    faults(url, r#"[{"kind":"status","status":400}]"#).await;
    let report = terminal.forward_stored_payments().await.unwrap();
    assert_eq!(report.failed, 1, "{report:?}");
    assert!(events.failures.borrow().iter().any(|f| f.payment.id == id));

    let requeued = terminal.requeue_payment(&id).await.unwrap();
    assert_eq!(requeued.state, StoredState::Pending);
    assert_eq!(
        terminal.requeue_payment(&id).await.unwrap_err().code(),
        "invalid_argument",
        "only a failed payment"
    );
    let report = terminal.forward_stored_payments().await.unwrap();
    assert_eq!(report.forwarded, 1, "{report:?}");
    let at_backend = received(url, &id).await.expect("recorded");
    assert_eq!(requests(&at_backend), 1.0, "one charge, same key");
    terminal.close();
}

#[wasm_bindgen_test]
async fn records_of_the_previous_schema_stay_readable_and_migrate() {
    let db = unique_db("upgrade");
    let old_tab = Store::open(&db).await.unwrap();
    let c = collected(1_234);
    old_tab
        .add_pending_as_schema(&c, 1.0, pos_terminal::payment::SCHEMA_VERSION - 1)
        .await
        .unwrap();
    // Another tab with the current SDK finds it, opens it and counts it.
    let new_tab = Store::open(&db).await.unwrap();
    let all = new_tab.all().await.unwrap();
    assert_eq!(all.len(), 1);
    let entry = &all[0];
    assert_eq!(
        entry.header.version,
        pos_terminal::payment::SCHEMA_VERSION - 1
    );
    let body = entry.body.clone().expect("a previous-schema record opens");
    assert_eq!(body.amount, 1_234);
    assert_eq!(new_tab.ledger().await.unwrap().outstanding().count, 1);
    // Its next change re-seals it under the current schema, still readable.
    let moved = new_tab
        .transition(&entry.header, StoredState::Forwarding, Some(&body), 0.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.version, pos_terminal::payment::SCHEMA_VERSION);
    let again = new_tab.get(&c.id).await.unwrap().unwrap();
    assert!(again.body.is_ok());
    old_tab.close();
    new_tab.close();
}

async fn odd_answers_never_fail_a_payment_and_retry_after_is_honoured() {
    let (_api, url) = sim_addrs();
    let (db, terminal, events, id) = with_stored_payment("odd", 4_500.0).await;
    faults(
        url,
        r#"[{"kind":"html200"},{"kind":"not_json404"},{"kind":"status","status":503,"retry_after":30}]"#,
    )
    .await;
    for _ in 0..3 {
        let report = terminal.forward_stored_payments().await.unwrap();
        assert_eq!((report.failed, report.remaining), (0, 1), "{report:?}");
    }
    let store = Store::open(&db).await.unwrap();
    let entry = store.get(&id).await.unwrap().unwrap();
    store.close();
    assert_eq!(entry.header.state, StoredState::Pending, "never failed");
    assert!(
        entry.header.next_attempt_at >= js_sys::Date::now() + 25_000.0,
        "Retry-After: 30 s"
    );
    assert!(events.failures.borrow().is_empty());
    let report = terminal.forward_stored_payments().await.unwrap();
    assert_eq!(report.forwarded, 1, "{report:?}");
    assert_eq!(requests(&received(url, &id).await.unwrap()), 1.0);
    terminal.close();
}

#[wasm_bindgen_test]
async fn finished_records_are_pruned_after_the_retention_and_failed_ones_kept() {
    let db = unique_db("retention");
    let store = Store::open(&db).await.unwrap();
    let mut ids = Vec::new();
    for (amount, end) in [(100, StoredState::Forwarded), (200, StoredState::Failed)] {
        let c = collected(amount);
        let h = store
            .add_pending(&c, 1.0, &OfflineLimits::default())
            .await
            .unwrap();
        let mut body = store.get(&c.id).await.unwrap().unwrap().body.unwrap();
        let h = store
            .transition(&h, StoredState::Forwarding, Some(&body), 0.0)
            .await
            .unwrap()
            .unwrap();
        body.card_payload = None;
        store.transition(&h, end, Some(&body), 0.0).await.unwrap();
        ids.push(c.id);
    }
    assert_eq!(
        store.prune_finished(0.0).await.unwrap(),
        0,
        "within retention"
    );
    let pruned = store
        .prune_finished(js_sys::Date::now() + 1.0)
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    assert!(
        store.get(&ids[0]).await.unwrap().is_none(),
        "forwarded: pruned"
    );
    assert!(store.get(&ids[1]).await.unwrap().is_some(), "failed: kept");
    store.close();
}

async fn a_record_with_an_unreadable_header_is_moved_reported_and_not_pending() {
    let (api, _url) = sim_addrs();
    let db = unique_db("bad-header");
    // A record written behind the SDK's back, with a clear header not as this SDK writes it.
    let put = Function::new_with_args(
        "name, record",
        r#"return new Promise((res, rej) => {
            const r = indexedDB.open(name);
            r.onsuccess = () => {
              const db = r.result, tx = db.transaction('payments', 'readwrite');
              tx.objectStore('payments').put(JSON.parse(record));
              tx.oncomplete = () => { db.close(); res(true); };
              tx.onerror = () => rej(tx.error);
            };
            r.onerror = () => rej(r.error);
          });"#,
    );
    // Listed as pending (`v` is not a number): found by the forwarder's pages.
    let listed = (
        r#"{"id":"pay_badheader","state":"pending","v":"x"}"#,
        "pay_badheader",
    );
    // A state this SDK never writes, so in no state's list: found because the lists' counts
    // fall short of the store's: counted at a store's first run, then hourly, so a new
    // terminal (a page load) is what finds it. (A run needs something listed to forward: a
    // second listed one, which the same search finds.)
    let unlisted = (
        r#"{"id":"pay_badstate","state":"sent","v":2}"#,
        "pay_badstate",
    );
    let listed_too = (
        r#"{"id":"pay_badheader2","state":"forwarding","v":null}"#,
        "pay_badheader2",
    );
    for (first, records) in [(true, &[listed][..]), (false, &[unlisted, listed_too][..])] {
        // The database exists after the first terminal: the second phase's records are there
        // before its terminal starts (and before any run of its counts them).
        if !first {
            for (record, _) in records {
                call(&put, &[db.clone().into(), (*record).into()]).await;
            }
        }
        let (terminal, events) = connected_terminal(options(api, &db), "rdr_sim_1").await;
        if first {
            for (record, _) in records {
                call(&put, &[db.clone().into(), (*record).into()]).await;
            }
        }
        // The status sums the sealed ledger, which only this SDK's own writes change: a
        // record put behind its back counts nowhere until a forwarding run finds it.
        assert_eq!(terminal.offline_status().await.unwrap().pending_count, 0);
        // This run finds them, or the terminal's own first run already did.
        let report = terminal.forward_stored_payments().await.unwrap();
        assert_eq!(
            terminal.offline_status().await.unwrap().pending_count,
            0,
            "no longer pending"
        );
        let reported = |id: &str| tampered_reports(&events, id);
        for (_, id) in records {
            assert_eq!(reported(id), 1, "{id} reported once: {report:?}");
        }
        let quarantined = terminal
            .list_stored_payments(Some(StoredState::Quarantined))
            .await
            .unwrap();
        for (_, id) in records {
            assert!(quarantined.iter().any(|p| p.id == *id), "{id} quarantined");
        }
        let again = terminal.forward_stored_payments().await.unwrap();
        assert_eq!(again.failed, 0, "reported once: {again:?}");
        terminal.close();
    }
}

/// Sets a stored record's clear `state` with a raw IndexedDB write, below the SDK, and dates
/// its last change far back (as if finished long ago): its sealed body (whose associated data
/// binds the state) is left as it was.
/// How many times payment `id` was reported through `onForwardingFailure` as `record_tampered`.
fn tampered_reports(events: &Recorder, id: &str) -> usize {
    events
        .failures
        .borrow()
        .iter()
        .filter(|f| f.payment.id == id && f.code == "record_tampered")
        .count()
}

async fn flip_state(db: &str, id: &str, state: &str) {
    patch_record(db, id, &format!(r#"{{"state":"{state}","updatedAt":1}}"#)).await;
}

/// Overwrites some of a stored record's clear fields (`patch`, a JSON object) with a raw
/// IndexedDB write, below the SDK.
async fn patch_record(db: &str, id: &str, patch: &str) {
    let edit = Function::new_with_args(
        "name, id, patch",
        r#"return new Promise((res, rej) => {
            const r = indexedDB.open(name);
            r.onsuccess = () => {
              const db = r.result, tx = db.transaction('payments', 'readwrite');
              const payments = tx.objectStore('payments');
              const get = payments.get(id);
              get.onsuccess = () => {
                if (!get.result) { rej(new Error('no record ' + id)); return; }
                payments.put({ ...get.result, ...JSON.parse(patch) });
              };
              tx.oncomplete = () => { db.close(); res(true); };
              tx.onerror = () => rej(tx.error);
            };
            r.onerror = () => rej(r.error);
          });"#,
    );
    call(&edit, &[db.into(), id.into(), patch.into()]).await;
}

/// A payment this SDK stored, so counted by the sealed ledger, whose clear header then stops
/// opening (`v` a string; or its `updatedAt`, which every change compares, gone: the record
/// could then be neither claimed nor settled, pending for good): the run that meets it
/// quarantines and reports it, and the status and the limits stop counting it at once (an
/// outside trial found it counted for good, blocking offline payments at the stored-amount
/// limit).
async fn a_counted_record_whose_header_breaks_stops_counting() {
    let (api, url) = sim_addrs();
    for (n, patch) in [
        r#"{"v":"2"}"#,
        r#"{"updatedAt":null}"#,
        r#"{"storedAt":"x"}"#,
    ]
    .into_iter()
    .enumerate()
    {
        let db = unique_db(&format!("broken-counted-{n}"));
        let (terminal, events) = connected_terminal(options(api, &db), "rdr_sim_1").await;
        let stored = pay(
            &terminal,
            request(4_701.0, Some(OfflineBehavior::ForceOffline)),
        )
        .await
        .unwrap();
        let status = || async { terminal.offline_status().await.unwrap() };
        assert_eq!(status().await.pending_count, 1);
        patch_record(&db, &stored.id, patch).await;
        let report = terminal.forward_stored_payments().await.unwrap();
        assert_eq!(report.forwarded, 0, "{patch}: {report:?}");
        let now = status().await;
        assert_eq!(now.pending_count, 0, "{patch}: no longer counted: {now:?}");
        assert!(now.pending_amounts.is_empty(), "{patch}: {now:?}");
        assert!(now.oldest_stored_at.is_none(), "{patch}: {now:?}");
        let reported = events
            .failures
            .borrow()
            .iter()
            .filter(|f| f.payment.id == stored.id && f.code == "record_tampered")
            .count();
        assert_eq!(reported, 1, "{patch}");
        assert!(received(url, &stored.id).await.is_none(), "never sent");
        terminal.close();
    }
}

/// The sealed ledger as stored (`take`), or put back (`put`), with raw IndexedDB calls.
async fn raw_ledger(db: &str, put: Option<&JsValue>) -> JsValue {
    let f = Function::new_with_args(
        "name, value",
        r#"return new Promise((res, rej) => {
            const r = indexedDB.open(name);
            r.onsuccess = () => {
              const db = r.result, tx = db.transaction('keys', 'readwrite');
              const keys = tx.objectStore('keys');
              let out;
              if (value === undefined) { const g = keys.get('ledger'); g.onsuccess = () => { out = g.result; }; }
              else keys.put(value, 'ledger');
              tx.oncomplete = () => { db.close(); res(out); };
              tx.onerror = () => rej(tx.error);
            };
            r.onerror = () => rej(r.error);
          });"#,
    );
    call(&f, &[db.into(), put.cloned().unwrap_or(JsValue::UNDEFINED)]).await
}

/// An older sealed ledger put back from a copy (it opens: it is the SDK's own) counts fewer
/// payments than are stored, so the stored-amount limit would let more through: the next
/// page's first forwarding run sees it count fewer than the outstanding records listed, and
/// recounts it.
async fn store_3000(terminal: &Terminal) -> Result<PaymentResult, PosError> {
    pay(
        terminal,
        request(3_000.0, Some(OfflineBehavior::ForceOffline)),
    )
    .await
}

async fn an_older_ledger_put_back_is_recounted_by_the_next_run() {
    let (api, url) = sim_addrs();
    let db = unique_db("ledger-rollback");
    let opts = || {
        let mut opts = options(api, &db);
        opts.offline = offline_limits(r#"{"storedAmountLimit":{"usd":10000}}"#);
        opts
    };
    let (terminal, _events) = connected_terminal(opts(), "rdr_sim_1").await;
    for _ in 0..2 {
        store_3000(&terminal).await.unwrap();
    }
    let older = raw_ledger(&db, None).await;
    assert!(!older.is_undefined(), "a ledger is stored");
    store_3000(&terminal).await.unwrap();
    terminal.close();
    // Put back while no page is open (as a copy of the profile would be); the next page's
    // first run compares the counts. Its runs send nothing (every answer a 503): what they
    // change is the count alone.
    raw_ledger(&db, Some(&older)).await;
    faults(
        url,
        &format!(
            "[{}]",
            [r#"{"kind":"status","status":503,"retry_after":30}"#; 6].join(",")
        ),
    )
    .await;
    let (terminal, _events) = connected_terminal(opts(), "rdr_sim_1").await;
    let report = terminal.forward_stored_payments().await;
    faults(url, "[]").await;
    let report = report.unwrap();
    assert_eq!(report.forwarded, 0, "{report:?}");
    let status = terminal.offline_status().await.unwrap();
    assert_eq!(status.pending_count, 3, "recounted: {status:?}");
    assert_eq!(status.pending_amounts.get("usd"), Some(&9_000));
    // 9,000 stored: a fourth 3,000 is over the limit (the older ledger's 6,000 would not be).
    let err = store_3000(&terminal).await.unwrap_err();
    assert_eq!(err.code(), "offline_limit_exceeded", "{err}");
    terminal.close();
}

async fn a_clear_state_flipped_out_of_pending_is_quarantined_reported_and_never_sent() {
    let (api, url) = sim_addrs();
    let db = unique_db("flipped");
    let (terminal, events) = connected_terminal(options(api, &db), "rdr_sim_1").await;
    let mut ids = Vec::new();
    for amount in [4_601.0, 4_602.0, 4_603.0, 4_604.0, 4_605.0] {
        let stored = pay(
            &terminal,
            request(amount, Some(OfflineBehavior::ForceOffline)),
        )
        .await
        .unwrap();
        ids.push(stored.id);
    }
    let pending = || async { terminal.offline_status().await.unwrap().pending_count };
    assert_eq!(pending().await, 5);
    // Out of `pending` into states no run reads: none is in the forwarding queue.
    let flipped = [(&ids[0], "forwarded"), (&ids[1], "failed")];
    for (id, state) in flipped.into_iter().chain([(&ids[4], "failed")]) {
        flip_state(&db, id, state).await;
    }
    // The sealed ledger still counts them: not one of them reached the backend.
    assert_eq!(pending().await, 5, "still outstanding until found");
    // Pruning keeps a finished record that fails authentication, however old: evidence.
    let store = Store::open(&db).await.unwrap();
    let pruned = store.prune_finished(js_sys::Date::now() + 1.0).await;
    store.close();
    assert_eq!(pruned.unwrap(), 0, "the flipped `forwarded` record is kept");
    // Support requeues one: refused, and quarantined at once. Told to the caller, not
    // reported again; the others' evidence (the ledger's count) is left for the run.
    let requeued = terminal.requeue_payment(&ids[4]).await;
    assert_eq!(requeued.unwrap_err().code(), "record_tampered");
    let quarantined = terminal
        .list_stored_payments(Some(StoredState::Quarantined))
        .await
        .unwrap();
    assert!(
        quarantined.iter().any(|p| p.id == ids[4]),
        "requeue quarantines"
    );
    assert_eq!(pending().await, 5);
    let report = terminal.forward_stored_payments().await.unwrap();
    assert_eq!((report.forwarded, report.failed), (2, 2), "{report:?}");
    assert_eq!(pending().await, 0, "found, they stop counting");
    let reported = |id: &str| tampered_reports(&events, id);
    let quarantined = terminal
        .list_stored_payments(Some(StoredState::Quarantined))
        .await
        .unwrap();
    for (id, state) in flipped {
        assert_eq!(reported(id), 1, "{id} (flipped to {state}) reported once");
        assert!(
            quarantined.iter().any(|p| p.id == *id),
            "{id} (flipped to {state}) quarantined"
        );
        assert!(received(url, id).await.is_none(), "{id} never sent");
    }
    assert!(received(url, &ids[4]).await.is_none(), "never sent");
    for id in &ids[2..4] {
        assert_eq!(requests(&received(url, id).await.expect("forwarded")), 1.0);
        assert!(events.forwarded.borrow().iter().any(|p| p.id == *id));
        assert_eq!(reported(id), 0);
    }
    assert_eq!(events.failures.borrow().len(), 2, "nothing else reported");
    let again = terminal.forward_stored_payments().await.unwrap();
    assert_eq!((again.forwarded, again.failed), (0, 0), "{again:?}");
    assert_eq!(events.failures.borrow().len(), 2, "reported once");
    assert_eq!(pending().await, 0);
    terminal.close();
}

/// The same flip, with the sealed ledger deleted too (so no count is left to compare): the
/// next run checks every finished record's seal, quarantines and reports the flipped ones
/// (never sent), forwards the rest, and writes the ledger again.
async fn a_flip_with_the_ledger_taken_away_is_found_by_the_next_run() {
    let (api, url) = sim_addrs();
    let db = unique_db("flipped-no-ledger");
    let (terminal, _events) = connected_terminal(options(api, &db), "rdr_sim_1").await;
    let mut ids = Vec::new();
    for amount in [4_701.0, 4_702.0, 4_703.0] {
        let stored = pay(
            &terminal,
            request(amount, Some(OfflineBehavior::ForceOffline)),
        )
        .await
        .unwrap();
        ids.push(stored.id);
    }
    terminal.close();
    flip_state(&db, &ids[0], "forwarded").await;
    flip_state(&db, &ids[1], "declined").await;
    let delete = Function::new_with_args(
        "name",
        r#"return new Promise((res, rej) => {
            const r = indexedDB.open(name);
            r.onsuccess = () => {
              const db = r.result, tx = db.transaction('keys', 'readwrite');
              tx.objectStore('keys').delete('ledger');
              tx.oncomplete = () => { db.close(); res(true); };
              tx.onerror = () => rej(tx.error);
            };
            r.onerror = () => rej(r.error);
          });"#,
    );
    call(&delete, &[db.as_str().into()]).await;
    assert!(raw_ledger(&db, None).await.is_undefined(), "ledger gone");

    let (terminal, events) = connected_terminal(options(api, &db), "rdr_sim_1").await;
    // The run at create, or this one: the events tell, whichever found them.
    terminal.forward_stored_payments().await.unwrap();
    let reported = |id: &str| tampered_reports(&events, id);
    let quarantined = terminal
        .list_stored_payments(Some(StoredState::Quarantined))
        .await
        .unwrap();
    for id in &ids[..2] {
        assert_eq!(reported(id), 1, "{id} reported once");
        assert!(quarantined.iter().any(|p| p.id == *id), "{id} quarantined");
        assert!(received(url, id).await.is_none(), "{id} never sent");
    }
    assert_eq!(
        requests(&received(url, &ids[2]).await.expect("forwarded")),
        1.0
    );
    assert_eq!(terminal.offline_status().await.unwrap().pending_count, 0);
    assert!(
        !raw_ledger(&db, None).await.is_undefined(),
        "ledger written again"
    );
    terminal.close();
}

async fn without_web_locks_a_forwarding_record_is_taken_over_only_after_its_lease() {
    let (_api, url) = sim_addrs();
    let (db, terminal, _events, leased_id) = with_stored_payment("lease", 4_600.0).await;
    let collected_expired = terminal
        .collect_payment_method(request(4_700.0, Some(OfflineBehavior::ForceOffline)))
        .await
        .unwrap();
    let expired_id = terminal
        .process_payment(&collected_expired.id)
        .await
        .unwrap()
        .id;
    // Another context marked both in flight: one lease still running, one run out.
    let store = Store::open(&db).await.unwrap();
    let now = js_sys::Date::now();
    for (id, lease_end) in [(&leased_id, now + 60_000.0), (&expired_id, now - 1.0)] {
        let entry = store.get(id).await.unwrap().unwrap();
        let body = entry.body.unwrap();
        store
            .transition(
                &entry.header,
                StoredState::Forwarding,
                Some(&body),
                lease_end,
            )
            .await
            .unwrap()
            .unwrap();
    }
    store.close();
    run_js(
        r#"self.__locks = Object.getOwnPropertyDescriptor(Navigator.prototype, 'locks');
           Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined, configurable: true });"#,
    );
    let report = terminal.forward_stored_payments().await;
    run_js("Object.defineProperty(Navigator.prototype, 'locks', self.__locks);");
    let report = report.unwrap();
    assert_eq!((report.forwarded, report.remaining), (1, 1), "{report:?}");
    assert!(received(url, &leased_id).await.is_none(), "not taken over");
    assert!(received(url, &expired_id).await.is_some(), "taken over");
    terminal.close();
}

async fn draining_keeps_a_few_requests_in_flight() {
    let (_api, url) = sim_addrs();
    let (_db, terminal, _events, first) = with_stored_payment("drain", 5_000.0).await;
    let mut ids = vec![first];
    for i in 1..6 {
        let amount = 5_000.0 + f64::from(i) * 10.0;
        let r = pay(
            &terminal,
            request(amount, Some(OfflineBehavior::ForceOffline)),
        )
        .await
        .unwrap();
        ids.push(r.id);
    }
    // Each answer comes 700 ms late: one at a time would take over 4 s.
    faults(
        url,
        &format!("[{}]", [r#"{"kind":"delay","ms":700}"#; 6].join(",")),
    )
    .await;
    let started = js_sys::Date::now();
    let report = terminal.forward_stored_payments().await.unwrap();
    let took = js_sys::Date::now() - started;
    faults(url, "[]").await;
    assert_eq!(report.forwarded, 6, "{report:?}");
    assert!(took < 3_200.0, "3 in flight by default: {took} ms");
    for id in &ids {
        assert_eq!(requests(&received(url, id).await.unwrap()), 1.0);
    }
    terminal.close();
}
