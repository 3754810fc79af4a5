//! Schema upgrades against other connections: the SDK's connection closes itself for another
//! context's upgrade and tells the page; an upgrade blocked by a connection that does not
//! close fails with `storage_blocked` instead of hanging, and leaves no connection behind.
#![cfg(target_arch = "wasm32")]

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::*;
use futures_util::future::{select, Either};
use js_sys::Function;
use pos_terminal::events::Events;
use pos_terminal::store::Store;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Counts `database_closed_for_upgrade`.
#[derive(Default)]
struct ClosedForUpgrade(Cell<u32>);

impl Events for ClosedForUpgrade {
    fn database_closed_for_upgrade(&self) {
        self.0.set(self.0.get() + 1);
    }
}

/// Another tab's upgrade to `version` that adds nothing: "blocked", or "upgraded:<version>".
fn upgrade_fn() -> Function {
    Function::new_with_args(
        "name, version",
        r#"return new Promise((resolve) => {
            const req = indexedDB.open(name, version);
            req.onupgradeneeded = () => {};
            req.onblocked = () => resolve("blocked");
            req.onsuccess = () => { req.result.close(); resolve("upgraded:" + req.result.version); };
            req.onerror = () => resolve("error:" + req.error.name);
        });"#,
    )
}

/// An older tab: a connection at version 1 that ignores `versionchange`.
fn hold_fn() -> Function {
    Function::new_with_args(
        "name",
        r#"return new Promise((resolve, reject) => {
            const req = indexedDB.open(name, 1);
            req.onsuccess = () => { req.result.onversionchange = () => {}; resolve(req.result); };
            req.onerror = () => reject(req.error);
        });"#,
    )
}

/// The database's current version and object store names, read raw.
fn describe_fn() -> Function {
    Function::new_with_args(
        "name",
        r#"return new Promise((resolve, reject) => {
            const req = indexedDB.open(name);
            req.onsuccess = () => {
                const db = req.result;
                const out = db.version + ":" + Array.from(db.objectStoreNames).join(",");
                db.close();
                resolve(out);
            };
            req.onerror = () => reject(req.error);
        });"#,
    )
}

async fn sleep(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

#[wasm_bindgen_test]
async fn an_upgrade_in_another_tab_closes_the_terminal_and_tells_the_page_once() {
    let db = unique_db("vchg");
    let (api, _) = sim_addrs();
    let events = Rc::new(ClosedForUpgrade::default());
    let terminal = terminal_with(options(api, &db), events.clone()).await;
    assert!(terminal.list_stored_payments(None).await.is_ok());

    let outcome = call(&upgrade_fn(), &[db.as_str().into(), 2.into()]).await;
    assert_eq!(
        outcome.as_string().as_deref(),
        Some("upgraded:2"),
        "not blocked"
    );
    sleep(100).await;
    assert_eq!(events.0.get(), 1, "the page is told exactly once");

    // Later storage calls fail at once with a storage error.
    let err = terminal.list_stored_payments(None).await.unwrap_err();
    assert_eq!(err.code(), "storage_failed", "{err}");
    terminal.close();
}

#[wasm_bindgen_test]
async fn a_store_opened_without_events_closes_for_an_upgrade_too() {
    let db = unique_db("vchg-store");
    let closed = Rc::new(Cell::new(0));
    let seen = closed.clone();
    let store = Store::open_observed(&db, move || seen.set(seen.get() + 1))
        .await
        .unwrap();
    let outcome = call(&upgrade_fn(), &[db.as_str().into(), 3.into()]).await;
    assert_eq!(outcome.as_string().as_deref(), Some("upgraded:3"));
    assert_eq!(closed.get(), 1);
    assert_eq!(store.all().await.unwrap_err().code(), "storage_failed");
}

#[wasm_bindgen_test]
async fn a_blocked_upgrade_fails_with_a_typed_error_and_leaves_nothing_open() {
    let db = unique_db("blocked");
    let held = call(&hold_fn(), &[db.as_str().into()]).await;

    let open = Box::pin(Store::probe_open_at(&db, 2));
    let deadline = Box::pin(sleep(5_000));
    let err = match select(open, deadline).await {
        Either::Left((result, _)) => result.expect_err("an open blocked by an older tab fails"),
        Either::Right(_) => panic!("a blocked open hung for 5 s"),
    };
    assert_eq!(err.code(), "storage_blocked", "{err}");

    // The older tab goes away: the abandoned request's upgrade is aborted, not applied, and
    // the connection it would have opened does not block the next upgrade.
    let close: Function = get(&held, "close").unchecked_into();
    close.call0(&held).unwrap();
    sleep(200).await;
    let after = call(&describe_fn(), &[db.as_str().into()]).await;
    assert_eq!(after.as_string().as_deref(), Some("1:"), "nothing upgraded");
    Store::probe_open_at(&db, 2)
        .await
        .expect("the upgrade proceeds once the older tab closed");
    let upgraded = call(&describe_fn(), &[db.as_str().into()]).await;
    assert_eq!(upgraded.as_string().as_deref(), Some("2:keys,payments"));
}
