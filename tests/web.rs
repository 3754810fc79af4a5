//! In headless Chromium (wasm-bindgen-test): the vault and store against real IndexedDB and
//! WebCrypto, and forwarding against a running pos-sim (`cargo xtask test` starts one and
//! passes its addresses at compile time as POS_SIM_API / POS_SIM_URL).
#![cfg(target_arch = "wasm32")]

use std::collections::BTreeMap;

use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use pos_protocol::backend::CaptureMethod;
use pos_protocol::CardSummary;
use pos_terminal::payment::{new_payment_id, Collected, OfflineBehavior, StoredState};
use pos_terminal::store::Store;
use pos_terminal::{PosError, Terminal};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn unique_db(prefix: &str) -> String {
    format!("{prefix}-{}", new_payment_id().unwrap())
}

fn collected(amount: u64) -> Collected {
    Collected {
        id: new_payment_id().unwrap(),
        amount,
        currency: "usd".into(),
        capture_method: CaptureMethod::Automatic,
        offline_behavior: OfflineBehavior::ForceOffline,
        metadata: BTreeMap::from([("order".to_string(), "secret-order-77".to_string())]),
        reader_id: "rdr_test".into(),
        card: CardSummary {
            brand: "visa".into(),
            last4: "4242".into(),
            exp_month: 12,
            exp_year: 2031,
        },
        card_payload: "PAYLOAD-CIPHERTEXT-FROM-READER".into(),
    }
}

fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &k.into()).unwrap()
}

async fn call(f: &Function, args: &[JsValue]) -> JsValue {
    let arr = Array::new();
    for a in args {
        arr.push(a);
    }
    let p: Promise = f.apply(&JsValue::NULL, &arr).unwrap().unchecked_into();
    JsFuture::from(p).await.unwrap()
}

/// Reads the database back raw, below the SDK: { payments: [...], kek, dek, config }.
fn dump_fn() -> Function {
    Function::new_with_args(
        "name",
        r#"return new Promise((res, rej) => {
            const r = indexedDB.open(name);
            r.onerror = () => rej(r.error);
            r.onsuccess = () => {
              const db = r.result, out = {};
              const tx = db.transaction(['payments', 'keys']);
              tx.objectStore('payments').getAll().onsuccess = e => { out.payments = e.target.result; };
              const ks = tx.objectStore('keys');
              ks.get('kek').onsuccess = e => { out.kek = e.target.result; };
              ks.get('dek').onsuccess = e => { out.dek = e.target.result; };
              ks.get('config').onsuccess = e => { out.config = e.target.result; };
              tx.oncomplete = () => { db.close(); res(out); };
              tx.onerror = () => rej(tx.error);
            };
          });"#,
    )
}

/// Flips one byte of a record's sealed bytes, below the SDK.
fn tamper_fn() -> Function {
    Function::new_with_args(
        "name, id, index",
        r#"return new Promise((res, rej) => {
            const r = indexedDB.open(name);
            r.onerror = () => rej(r.error);
            r.onsuccess = () => {
              const db = r.result;
              const tx = db.transaction('payments', 'readwrite');
              const st = tx.objectStore('payments');
              st.get(id).onsuccess = e => {
                const rec = e.target.result;
                const bytes = new Uint8Array(rec.sealed);
                bytes[index % bytes.length] ^= 1;
                rec.sealed = bytes;
                st.put(rec);
              };
              tx.oncomplete = () => { db.close(); res(true); };
              tx.onerror = () => rej(tx.error);
            };
          });"#,
    )
}

fn bytes_to_text(v: &JsValue) -> String {
    let bytes = Uint8Array::new(v).to_vec();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[wasm_bindgen_test]
async fn vault_round_trip_through_indexeddb() {
    let name = unique_db("roundtrip");
    let store = Store::open(&name).await.unwrap();
    let c = collected(12_345);
    let header = store.add_pending(&c, 1_000.0).await.unwrap();
    assert_eq!(header.state, StoredState::Pending);
    store.close();
    drop(store);

    // A fresh open (as after a reload) unwraps the same data key and reads the record.
    let reopened = Store::open(&name).await.unwrap();
    let all = reopened.all().await.unwrap();
    assert_eq!(all.len(), 1);
    let body = all[0].body.as_ref().unwrap();
    assert_eq!(all[0].header.id, c.id);
    assert_eq!(body.amount, 12_345);
    assert_eq!(body.currency, "usd");
    assert_eq!(body.card.last4, "4242");
    assert_eq!(
        body.card_payload.as_deref(),
        Some("PAYLOAD-CIPHERTEXT-FROM-READER")
    );
    assert_eq!(
        body.metadata.get("order").map(String::as_str),
        Some("secret-order-77")
    );

    // Storing the same payment twice keeps one record.
    reopened.add_pending(&c, 2_000.0).await.unwrap();
    assert_eq!(reopened.all().await.unwrap().len(), 1);
}

#[wasm_bindgen_test]
async fn flipped_ciphertext_byte_is_detected() {
    let name = unique_db("tamper");
    let store = Store::open(&name).await.unwrap();
    let good = collected(500);
    let bad = collected(600);
    store.add_pending(&good, 1.0).await.unwrap();
    store.add_pending(&bad, 2.0).await.unwrap();
    call(
        &tamper_fn(),
        &[name.clone().into(), bad.id.clone().into(), 20.into()],
    )
    .await;
    // The clear state is bound into the seal too: pending → forwarded is detected.
    let flipped = collected(700);
    store.add_pending(&flipped, 3.0).await.unwrap();
    let set_state = Function::new_with_args(
        "name, id",
        r#"return new Promise((res, rej) => {
            const r = indexedDB.open(name);
            r.onsuccess = () => {
              const db = r.result, tx = db.transaction('payments', 'readwrite'), st = tx.objectStore('payments');
              st.get(id).onsuccess = e => { const rec = e.target.result; rec.state = 'forwarded'; st.put(rec); };
              tx.oncomplete = () => { db.close(); res(true); };
              tx.onerror = () => rej(tx.error);
            };
            r.onerror = () => rej(r.error);
          });"#,
    );
    call(
        &set_state,
        &[name.clone().into(), flipped.id.clone().into()],
    )
    .await;

    let all = store.all().await.unwrap();
    assert_eq!(all.len(), 3, "tampered records are reported, not dropped");
    let by_id = |id: &str| all.iter().find(|e| e.header.id == id).unwrap();
    assert!(by_id(&good.id).body.is_ok(), "the other record still opens");
    assert_eq!(
        by_id(&bad.id).body.as_ref().err(),
        Some(&PosError::RecordTampered)
    );
    assert_eq!(
        by_id(&flipped.id).body.as_ref().err(),
        Some(&PosError::RecordTampered)
    );
}

#[wasm_bindgen_test]
async fn no_raw_key_and_no_plaintext_in_indexeddb() {
    let name = unique_db("atrest");
    let store = Store::open(&name).await.unwrap();
    store.add_pending(&collected(987_654), 1.0).await.unwrap();
    store.close();

    let raw = call(&dump_fn(), &[name.clone().into()]).await;

    // The key-encryption key is a non-extractable CryptoKey: usable, never readable.
    let kek = get(&raw, "kek");
    let kek: web_sys::CryptoKey = kek.dyn_into().expect("kek is stored as a CryptoKey");
    assert!(!kek.extractable());
    let export = web_sys::window()
        .unwrap()
        .crypto()
        .unwrap()
        .subtle()
        .export_key("raw", &kek)
        .unwrap();
    assert!(
        JsFuture::from(export).await.is_err(),
        "exporting the kek must fail"
    );

    // The data key is stored only wrapped: 32 key bytes + 16 tag bytes of AES-GCM output.
    let dek = get(&raw, "dek");
    assert_eq!(Uint8Array::new(&get(&dek, "key")).length(), 48);
    assert_eq!(Uint8Array::new(&get(&dek, "iv")).length(), 12);

    // The payment record: only id, version, state and times in the clear.
    let payments: Array = get(&raw, "payments").unchecked_into();
    assert_eq!(payments.length(), 1);
    let record = payments.get(0);
    let mut keys: Vec<String> = Object::keys(record.unchecked_ref::<Object>())
        .iter()
        .filter_map(|k| k.as_string())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "id",
            "nextAttemptAt",
            "sealed",
            "state",
            "storedAt",
            "updatedAt",
            "v"
        ]
    );
    let sealed_text = bytes_to_text(&get(&record, "sealed"));
    let clear = js_sys::JSON::stringify(&record)
        .unwrap()
        .as_string()
        .unwrap();
    for secret in [
        "987654",
        "4242",
        "usd",
        "secret-order-77",
        "PAYLOAD-CIPHERTEXT",
        "visa",
    ] {
        assert!(
            !sealed_text.contains(secret),
            "{secret} readable in sealed bytes"
        );
        assert!(!clear.contains(secret), "{secret} readable in the record");
    }
    // The saved backend configuration is sealed too.
    let config = get(&raw, "config");
    if !config.is_undefined() {
        assert!(config.is_instance_of::<Uint8Array>());
    }
}

#[wasm_bindgen_test]
async fn writes_use_strict_durability() {
    // Record the options of every transaction the SDK opens, at the browser's own API.
    let install = Function::new_no_args(
        r#"const proto = IDBDatabase.prototype;
           if (!proto.__origTransaction) {
             proto.__origTransaction = proto.transaction;
             self.__idbLog = [];
             proto.transaction = function (stores, mode, options) {
               const tx = proto.__origTransaction.call(this, stores, mode, options);
               self.__idbLog.push({ mode: tx.mode, durability: tx.durability });
               return tx;
             };
           }
           self.__idbLog.length = 0;"#,
    );
    install.call0(&JsValue::NULL).unwrap();
    let name = unique_db("durability");
    let store = Store::open(&name).await.unwrap();
    let c = collected(4_200);
    let header = store.add_pending(&c, 1.0).await.unwrap();
    store
        .transition(&header, StoredState::Forwarding, None, 0.0)
        .await
        .unwrap();
    let log: Array = get(&js_sys::global(), "__idbLog").unchecked_into();
    let writes: Vec<String> = log
        .iter()
        .filter(|e| get(e, "mode").as_string().as_deref() == Some("readwrite"))
        .map(|e| get(&e, "durability").as_string().unwrap_or_default())
        .collect();
    assert!(
        writes.len() >= 3,
        "key creation, add and transition write: {writes:?}"
    );
    assert!(writes.iter().all(|d| d == "strict"), "{writes:?}");
    assert_eq!(store.probe_durability().unwrap(), "strict");
}

// ---- forwarding against a running pos-sim ----

fn sim() -> Option<(&'static str, &'static str)> {
    match (option_env!("POS_SIM_API"), option_env!("POS_SIM_URL")) {
        (Some(api), Some(url)) => Some((api, url.trim_end_matches('/'))),
        _ => None,
    }
}

async fn fetch_json(url: &str, method: &str, body: Option<&str>) -> JsValue {
    let f = Function::new_with_args(
        "url, method, body",
        r#"return fetch(url, { method, body: body || undefined,
             headers: body ? { 'content-type': 'application/json' } : {} }).then(r => r.json());"#,
    );
    call(
        &f,
        &[
            url.into(),
            method.into(),
            body.map(JsValue::from).unwrap_or(JsValue::NULL),
        ],
    )
    .await
}

fn options(api: &str, db: &str, events: &Array) -> JsValue {
    let make = Function::new_with_args(
        "api, db, events",
        r#"return {
            backendUrl: api,
            databaseName: db,
            fetchConnectionToken: () => fetch(api + '/v1/connection_tokens', { method: 'POST' })
                .then(r => r.json()).then(j => j.secret),
            forwardIntervalMs: 3600000,
            onPaymentForwarded: p => events.push({ type: 'forwarded', p }),
            onForwardingFailure: f => events.push({ type: 'failure', f }),
          };"#,
    );
    make.call3(&JsValue::NULL, &api.into(), &db.into(), events)
        .unwrap()
}

async fn method(target: &JsValue, name: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let f: Function = get(target, name).unchecked_into();
    let arr = Array::new();
    for a in args {
        arr.push(a);
    }
    let p: Promise = f.apply(target, &arr).unwrap().unchecked_into();
    JsFuture::from(p).await
}

/// The running pos-sim's addresses, set at compile time by `cargo xtask test`.
fn sim_addrs() -> (&'static str, &'static str) {
    sim().expect("POS_SIM_API/POS_SIM_URL not set at compile time: run `cargo xtask test`")
}

/// A terminal created with `opts` and connected to `reader` of the running pos-sim.
async fn connected_terminal(opts: JsValue, url: &str, reader: &str) -> JsValue {
    let terminal: JsValue = JsFuture::from(Terminal::create(opts)).await.unwrap();
    let reader_url = format!("{}/readers/{reader}", url.replacen("http://", "ws://", 1));
    let config = js_sys::JSON::parse(&format!(
        r#"{{"method":"websocket","urls":["{reader_url}"]}}"#
    ))
    .unwrap();
    let readers: Array = method(&terminal, "discoverReaders", &[config])
        .await
        .unwrap()
        .unchecked_into();
    assert_eq!(readers.length(), 1, "the simulated reader is discovered");
    method(&terminal, "connectReader", &[readers.get(0)])
        .await
        .unwrap();
    terminal
}

/// Collects a card for `request` (a PaymentRequest as JSON) and processes it.
async fn pay(terminal: &JsValue, request: &str) -> Result<JsValue, JsValue> {
    let req = js_sys::JSON::parse(request).unwrap();
    let collected = method(terminal, "collectPaymentMethod", &[req]).await?;
    method(terminal, "processPayment", &[collected]).await
}

#[wasm_bindgen_test]
async fn forwarding_against_pos_sim_is_exactly_once_and_quarantines_tampering() {
    let (api, url) = sim_addrs();
    let db = unique_db("forward");
    let events = Array::new();
    let terminal = connected_terminal(options(api, &db, &events), url, "rdr_sim_2").await;

    let mut ids = Vec::new();
    for amount in [4_321, 4_322] {
        let request =
            format!(r#"{{"amount":{amount},"currency":"usd","offlineBehavior":"force_offline"}}"#);
        let result = pay(&terminal, &request).await.unwrap();
        assert_eq!(
            get(&result, "status").as_string().unwrap(),
            "stored_offline"
        );
        ids.push(get(&result, "id").as_string().unwrap());
    }
    // Tamper with the second one below the SDK: it must be quarantined, not block the first.
    call(
        &tamper_fn(),
        &[db.clone().into(), ids[1].clone().into(), 5.into()],
    )
    .await;

    let report = method(&terminal, "forwardStoredPayments", &[])
        .await
        .unwrap();
    assert_eq!(get(&report, "forwarded").as_f64(), Some(1.0));
    assert_eq!(get(&report, "failed").as_f64(), Some(1.0));
    assert_eq!(get(&report, "remaining").as_f64(), Some(0.0));

    let list: Array = method(&terminal, "listStoredPayments", &[])
        .await
        .unwrap()
        .unchecked_into();
    let state_of = |id: &str| {
        list.iter()
            .find(|p| get(p, "id").as_string().as_deref() == Some(id))
            .map(|p| get(&p, "state").as_string().unwrap())
    };
    assert_eq!(state_of(&ids[0]).as_deref(), Some("forwarded"));
    assert_eq!(state_of(&ids[1]).as_deref(), Some("quarantined"));
    assert!(events
        .iter()
        .any(|e| get(&e, "type").as_string().as_deref() == Some("forwarded")));
    assert!(events.iter().any(|e| {
        get(&e, "type").as_string().as_deref() == Some("failure")
            && get(&get(&e, "f"), "code").as_string().as_deref() == Some("record_tampered")
    }));

    // A second forward sends nothing again.
    let again = method(&terminal, "forwardStoredPayments", &[])
        .await
        .unwrap();
    assert_eq!(get(&again, "forwarded").as_f64(), Some(0.0));

    let received: Array = fetch_json(&format!("{url}/_sim/payments"), "GET", None)
        .await
        .unchecked_into();
    let mine: Vec<JsValue> = received
        .iter()
        .filter(|p| get(p, "key").as_string().as_deref() == Some(ids[0].as_str()))
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(get(&mine[0], "requests").as_f64(), Some(1.0));
    assert_eq!(get(&mine[0], "amount").as_f64(), Some(4_321.0));
    assert_eq!(get(&mine[0], "offline").as_bool(), Some(true));
    assert!(
        !received
            .iter()
            .any(|p| get(&p, "key").as_string().as_deref() == Some(ids[1].as_str())),
        "a quarantined record is never sent"
    );
    method(&terminal, "close", &[]).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_timed_out_online_attempt_is_stored_with_the_same_key_and_charged_once() {
    let (api, url) = sim_addrs();
    let db = unique_db("timeout");
    let events = Array::new();
    let opts = options(api, &db, &events);
    Reflect::set(&opts, &"requestTimeoutMs".into(), &300.into()).unwrap();
    let terminal = connected_terminal(opts, url, "rdr_sim_1").await;

    // The backend records the payment, then answers after the SDK stopped waiting.
    fetch_json(
        &format!("{url}/_sim/network"),
        "POST",
        Some(r#"{"down":false,"latency_ms":1500}"#),
    )
    .await;
    let result = pay(&terminal, r#"{"amount":7700,"currency":"usd"}"#).await;
    fetch_json(
        &format!("{url}/_sim/network"),
        "POST",
        Some(r#"{"down":false,"latency_ms":0}"#),
    )
    .await;
    let result = result.unwrap();
    assert_eq!(
        get(&result, "status").as_string().unwrap(),
        "stored_offline"
    );
    let id = get(&result, "id").as_string().unwrap();

    let report = method(&terminal, "forwardStoredPayments", &[])
        .await
        .unwrap();
    assert_eq!(get(&report, "forwarded").as_f64(), Some(1.0));

    let received: Array = fetch_json(&format!("{url}/_sim/payments"), "GET", None)
        .await
        .unchecked_into();
    let mine: Vec<JsValue> = received
        .iter()
        .filter(|p| get(p, "key").as_string().as_deref() == Some(id.as_str()))
        .collect();
    assert_eq!(mine.len(), 1, "one payment at the backend");
    assert_eq!(get(&mine[0], "requests").as_f64(), Some(2.0), "tried twice");
    assert_eq!(
        get(&mine[0], "offline").as_bool(),
        Some(false),
        "the first attempt counted"
    );

    // The stored record ends with the backend's first answer: the same payment intent.
    let list: Array = method(&terminal, "listStoredPayments", &[])
        .await
        .unwrap()
        .unchecked_into();
    let stored = list.get(0);
    assert_eq!(get(&stored, "state").as_string().unwrap(), "forwarded");
    assert_eq!(
        get(&stored, "paymentIntentId").as_string(),
        get(&mine[0], "payment_intent").as_string()
    );
    method(&terminal, "close", &[]).await.unwrap();
}

#[wasm_bindgen_test]
async fn the_worker_entry_point_forwards_with_the_saved_configuration() {
    let (api, url) = sim_addrs();
    let db = unique_db("worker");
    let events = Array::new();
    let terminal = connected_terminal(options(api, &db, &events), url, "rdr_sim_2").await;
    let request = r#"{"amount":3300,"currency":"usd","offlineBehavior":"force_offline"}"#;
    let result = pay(&terminal, request).await.unwrap();
    let id = get(&result, "id").as_string().unwrap();
    // The page goes away; what a service worker would call remains.
    method(&terminal, "close", &[]).await.unwrap();

    let opts = js_sys::JSON::parse(&format!(r#"{{"databaseName":"{db}"}}"#)).unwrap();
    let report = JsFuture::from(pos_terminal::forward_stored_payments(Some(opts)))
        .await
        .unwrap();
    assert_eq!(get(&report, "forwarded").as_f64(), Some(1.0));
    assert_eq!(get(&report, "remaining").as_f64(), Some(0.0));

    let received: Array = fetch_json(&format!("{url}/_sim/payments"), "GET", None)
        .await
        .unchecked_into();
    assert!(received.iter().any(|p| {
        get(&p, "key").as_string().as_deref() == Some(id.as_str())
            && get(&p, "requests").as_f64() == Some(1.0)
    }));

    // Without a saved configuration it refuses clearly.
    let empty =
        js_sys::JSON::parse(&format!(r#"{{"databaseName":"{}"}}"#, unique_db("none"))).unwrap();
    let err = JsFuture::from(pos_terminal::forward_stored_payments(Some(empty)))
        .await
        .unwrap_err();
    assert_eq!(
        get(&err, "code").as_string().as_deref(),
        Some("invalid_argument")
    );
}

#[wasm_bindgen_test]
async fn offline_limits_refuse_and_store_nothing() {
    let (api, url) = sim_addrs();
    let db = unique_db("limits");
    let events = Array::new();
    let opts = options(api, &db, &events);
    let offline = js_sys::JSON::parse(
        r#"{"transactionLimit":{"usd":5000},"storedAmountLimit":{"usd":6000},"maxStoredPayments":2}"#,
    )
    .unwrap();
    Reflect::set(&opts, &"offline".into(), &offline).unwrap();
    let terminal = connected_terminal(opts, url, "rdr_sim_1").await;
    let offline_pay = |amount: u32| {
        let terminal = terminal.clone();
        async move {
            let request = format!(
                r#"{{"amount":{amount},"currency":"usd","offlineBehavior":"force_offline"}}"#
            );
            pay(&terminal, &request).await
        }
    };
    let code = |r: Result<JsValue, JsValue>| get(&r.unwrap_err(), "code").as_string().unwrap();

    assert_eq!(
        code(offline_pay(5001).await),
        "offline_limit_exceeded",
        "per payment"
    );
    offline_pay(4000).await.unwrap();
    assert_eq!(
        code(offline_pay(2500).await),
        "offline_limit_exceeded",
        "stored total"
    );
    offline_pay(2000).await.unwrap();
    assert_eq!(
        code(offline_pay(10).await),
        "offline_limit_exceeded",
        "count"
    );

    let status = method(&terminal, "offlineStatus", &[]).await.unwrap();
    assert_eq!(get(&status, "pendingCount").as_f64(), Some(2.0));
    assert_eq!(
        get(&get(&status, "pendingAmounts"), "usd").as_f64(),
        Some(6000.0)
    );
    let list: Array = method(&terminal, "listStoredPayments", &[])
        .await
        .unwrap()
        .unchecked_into();
    assert_eq!(list.length(), 2, "refused payments are not stored");

    // Bad input is refused with its code before anything reaches the reader.
    let bad = js_sys::JSON::parse(r#"{"amount":12.5,"currency":"usd"}"#).unwrap();
    assert_eq!(
        code(method(&terminal, "collectPaymentMethod", &[bad]).await),
        "invalid_amount"
    );
    let bad = js_sys::JSON::parse(r#"{"amount":100,"currency":"USD"}"#).unwrap();
    assert_eq!(
        code(method(&terminal, "collectPaymentMethod", &[bad]).await),
        "invalid_currency"
    );
    method(&terminal, "close", &[]).await.unwrap();
}
