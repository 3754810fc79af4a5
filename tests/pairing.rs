//! Readers pair with a credential of their own, never the connection token: the SDK gets one
//! per reader from the backend (`POST /v1/reader_pairings`), keeps it sealed, and reconnects
//! on the saved one while the backend is unreachable. Reader addresses must be `wss://`
//! except on loopback. The in-page simulated reader reports entry mode, PIN and country.
#![cfg(target_arch = "wasm32")]

mod common;
mod reader_kit;

use std::rc::Rc;

use common::*;
use js_sys::Function;
use pos_protocol::reader::Capabilities;
use pos_protocol::EntryMode;
use pos_terminal::events::ConnectionStatus;
use pos_terminal::payment::OfflineBehavior;
use pos_terminal::reader::{simulated, Address, Discovery, Method};
use reader_kit::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const READER: &str = "rdr_sim_2";

/// The raw value under `key` in the database's keys store (below the SDK).
async fn raw_key(db: &str, key: &str) -> JsValue {
    let f = Function::new_with_args(
        "name, key",
        r#"return new Promise((res, rej) => {
            const r = indexedDB.open(name);
            r.onerror = () => rej(r.error);
            r.onsuccess = () => {
              const db = r.result;
              const get = db.transaction(['keys']).objectStore('keys').get(key);
              get.onsuccess = () => { db.close(); res(get.result === undefined ? null : get.result); };
              get.onerror = () => { db.close(); rej(get.error); };
            };
          });"#,
    );
    call(&f, &[db.into(), key.into()]).await
}

async fn network(down: bool) {
    sim_post("/_sim/network", &format!(r#"{{"down":{down}}}"#)).await;
}

#[wasm_bindgen_test]
async fn plain_ws_to_another_host_is_refused_before_anything_opens() {
    let (terminal, events) = terminal("insecure").await;
    for urls in [
        vec!["ws://192.0.2.10:8787/readers/rdr_1".to_string()],
        vec![
            "wss://192.0.2.10/readers/rdr_1".to_string(),
            "ws://reader-1.example/readers/rdr_1".to_string(),
        ],
    ] {
        let err = terminal
            .discover_readers(&Discovery::WebSocket { urls })
            .await
            .unwrap_err();
        assert_eq!(err.code(), "insecure_reader_url");
        assert!(err.to_string().contains("wss://"), "{err}");
    }
    let err = terminal
        .connect_reader(
            &Address {
                method: Method::WebSocket,
                url: "ws://192.0.2.10:8787/readers/rdr_sim_1".into(),
            },
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "insecure_reader_url");
    assert!(
        events.connection.borrow().is_empty(),
        "refused before connecting: {:?}",
        events.connection.borrow()
    );
    terminal.close();
}

#[wasm_bindgen_test]
async fn the_simulated_reader_reports_entry_mode_pin_and_country() {
    let (terminal, _events) = terminal("sim-entry").await;
    assert_eq!(simulated::CAPABILITIES, Capabilities::default());
    let found = terminal
        .discover_readers(&Discovery::Simulated)
        .await
        .unwrap();
    assert_eq!(found[0].info.country.as_deref(), Some("US"));
    let reader = terminal
        .connect_reader(&found[0].address, false)
        .await
        .unwrap();
    assert_eq!(reader.info.country.as_deref(), Some("US"));
    terminal
        .reader_session()
        .simulator()
        .borrow_mut()
        .tap_delay_ms = 20;

    let chip = terminal
        .collect_payment_method(request(700.0, None))
        .await
        .unwrap();
    assert_eq!(chip.card.entry_mode, Some(EntryMode::Chip));
    assert!(chip.card.pin_verified);
    terminal.process_payment(&chip.id).await.unwrap();

    {
        let session = terminal.reader_session();
        let mut sim = session.simulator().borrow_mut();
        sim.set_entry(EntryMode::Contactless, None);
        sim.set_country("fr").unwrap();
    }
    let tapped = terminal
        .collect_payment_method(request(710.0, None))
        .await
        .unwrap();
    assert_eq!(tapped.card.entry_mode, Some(EntryMode::Contactless));
    assert!(!tapped.card.pin_verified);
    terminal.process_payment(&tapped.id).await.unwrap();
    // Now in France, still connected (no new hello): the offline rules judge the card where
    // the reader is now. Contactless without PIN may not be stored in the EEA.
    let refused = pay(
        &terminal,
        request(720.0, Some(OfflineBehavior::ForceOffline)),
    )
    .await;
    assert_eq!(
        refused.map(|r| r.status).map_err(|e| e.code()),
        Err("offline_payment_method_unsupported")
    );
    assert_eq!(
        terminal.offline_status().await.unwrap().pending_count,
        0,
        "nothing stored"
    );
    terminal.disconnect_reader();
    let again = terminal
        .connect_reader(&found[0].address, false)
        .await
        .unwrap();
    assert_eq!(again.info.country.as_deref(), Some("FR"));
    terminal.close();
}

#[wasm_bindgen_test]
async fn a_reader_pairs_with_its_own_credential_and_reconnects_on_the_saved_one_while_the_backend_is_down(
) {
    wait_free(READER).await;
    let (api, _) = sim_addrs();
    let db = unique_db("pairing");
    let events = Rc::new(ReaderEvents::default());
    let terminal = terminal_with(options(api, &db), events.clone()).await;
    terminal.reader_session().set_timeouts(quick_timeouts());
    // Discovery needs no credential.
    let found = terminal
        .discover_readers(&Discovery::WebSocket {
            urls: vec![reader_ws_url(READER)],
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    terminal
        .connect_reader(&found[0].address, false)
        .await
        .unwrap();

    // Saved sealed under the reader's id: no secret in the clear.
    let saved = raw_key(&db, &format!("pairing:{READER}")).await;
    assert!(!saved.is_null(), "the pairing is saved");
    let text = bytes_to_text(&saved);
    assert!(!text.contains("rpair_") && !text.contains(READER), "sealed");

    // The backend goes away; the reader drops the socket: the SDK reconnects on its own with
    // the saved pairing.
    network(true).await;
    events.connection.borrow_mut().clear();
    kill(READER).await;
    wait_until("the reconnection", 15_000, || {
        events.last_connection() == Some(ConnectionStatus::Connected)
    })
    .await;
    assert!(terminal.reader_session().is_connected());
    terminal.close();
    wait_free(READER).await;

    // A new page on the same database, the backend still down: the saved pairing serves.
    let second = terminal_with(options(api, &db), Rc::new(ReaderEvents::default())).await;
    second.reader_session().set_timeouts(quick_timeouts());
    let connected = second.connect_reader(&found[0].address, false).await;
    network(false).await;
    let reader = connected.unwrap();
    assert_eq!(reader.info.id, READER);
    second.close();
    wait_free(READER).await;
}
