//! In a real browser: every write the store makes is a strict-durability transaction.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use js_sys::{Array, Function};
use pos_terminal::limits::OfflineLimits;
use pos_terminal::payment::StoredState;
use pos_terminal::store::Store;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

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
    let header = store
        .add_pending(&c, 1.0, &OfflineLimits::default())
        .await
        .unwrap();
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
