//! In a real browser: the vault and store against real IndexedDB and WebCrypto — records
//! round-trip across a reopen, tampering is detected, nothing readable is at rest.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use js_sys::{Array, Object, Uint8Array};
use pos_terminal::limits::OfflineLimits;
use pos_terminal::payment::StoredState;
use pos_terminal::store::Store;
use pos_terminal::PosError;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn vault_round_trip_through_indexeddb() {
    let name = unique_db("roundtrip");
    let store = Store::open(&name).await.unwrap();
    let c = collected(12_345);
    let header = store
        .add_pending(&c, 1_000.0, &OfflineLimits::default())
        .await
        .unwrap();
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
    reopened
        .add_pending(&c, 2_000.0, &OfflineLimits::default())
        .await
        .unwrap();
    assert_eq!(reopened.all().await.unwrap().len(), 1);
}

#[wasm_bindgen_test]
async fn flipped_ciphertext_byte_is_detected() {
    let name = unique_db("tamper");
    let store = Store::open(&name).await.unwrap();
    let good = collected(500);
    let bad = collected(600);
    store
        .add_pending(&good, 1.0, &OfflineLimits::default())
        .await
        .unwrap();
    store
        .add_pending(&bad, 2.0, &OfflineLimits::default())
        .await
        .unwrap();
    call(
        &tamper_fn(),
        &[name.clone().into(), bad.id.clone().into(), 20.into()],
    )
    .await;
    // The clear state is bound into the seal too: pending → forwarded is detected.
    let flipped = collected(700);
    store
        .add_pending(&flipped, 3.0, &OfflineLimits::default())
        .await
        .unwrap();
    let set_state = js_sys::Function::new_with_args(
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
    store
        .add_pending(&collected(987_654), 1.0, &OfflineLimits::default())
        .await
        .unwrap();
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
