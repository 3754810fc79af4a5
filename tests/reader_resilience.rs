//! Readers that are busy, simulated, slow or hostile. A reader held by another POS is listed
//! `in_use` and refuses a plain connect with `reader_busy`; taking it over tells the first
//! POS. The in-page simulated reader takes a full payment with no pos-sim reader. Misbehaving
//! readers (garbage, truncated frames, a 5 MB frame, a wrong protocol version, replies to the
//! wrong request, silence mid-collect) over WebSocket and WebUSB leave the SDK usable.
#![cfg(target_arch = "wasm32")]

mod common;
mod reader_kit;

use common::*;
use futures_util::future::join;
use pos_protocol::reader::ReaderStatus;
use pos_terminal::payment::{OfflineBehavior, ResultStatus, StoredState};
use pos_terminal::reader::{Address, Discovery, Method, Timeouts};
use pos_terminal::terminal::Terminal;
use reader_kit::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn ws(reader: &str) -> Address {
    Address {
        method: Method::WebSocket,
        url: reader_ws_url(reader),
    }
}

#[wasm_bindgen_test]
async fn a_busy_reader_is_listed_in_use_and_can_be_taken_over() {
    wait_free("rdr_sim_1").await;
    let (first, first_events) = terminal("busy-a").await;
    let (second, _) = terminal("busy-b").await;
    let discovery = Discovery::WebSocket {
        urls: vec![reader_ws_url("rdr_sim_1")],
    };
    let found = second.discover_readers(&discovery).await.unwrap();
    assert_eq!(found[0].status, ReaderStatus::Online);

    first.connect_reader(&ws("rdr_sim_1"), false).await.unwrap();
    let found = second.discover_readers(&discovery).await.unwrap();
    assert_eq!(found.len(), 1, "a reader in use is still listed");
    assert_eq!(found[0].status, ReaderStatus::InUse);
    let err = second
        .connect_reader(&ws("rdr_sim_1"), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "reader_busy");
    assert!(
        first.reader_session().is_connected(),
        "a refused connect changes nothing"
    );

    // Taking over: the first POS hears `reader_taken_over` and does not fight back.
    second.connect_reader(&ws("rdr_sim_1"), true).await.unwrap();
    wait_until("the first POS to hear it was taken over", 3_000, || {
        first_events.disconnects.borrow().as_slice() == ["reader_taken_over".to_string()]
    })
    .await;
    sleep(1_000).await;
    assert!(!first.reader_session().is_connected());
    let paid = pay(&second, request(3_000.0, None)).await.unwrap();
    assert_eq!(paid.status, ResultStatus::Succeeded);
    first.close();
    second.close();
    wait_free("rdr_sim_1").await;
}

#[wasm_bindgen_test]
async fn the_simulated_reader_takes_a_full_payment_without_pos_sim_readers() {
    let (terminal, events) = terminal("simulated").await;
    let found = terminal
        .discover_readers(&Discovery::Simulated)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].address.method, Method::Simulated);
    terminal
        .connect_reader(&found[0].address, false)
        .await
        .unwrap();
    {
        let session = terminal.reader_session();
        let mut sim = session.simulator().borrow_mut();
        sim.set_test_card("5555555555554444").unwrap();
        sim.tap_delay_ms = 50;
    }
    terminal.set_reader_display(cart_of(500)).await.unwrap();
    let collected = terminal
        .collect_payment_method(request(500.0, Some(OfflineBehavior::ForceOffline)))
        .await
        .unwrap();
    assert_eq!(collected.card.brand, "mastercard");
    assert_eq!(collected.card.last4, "4444");
    assert_eq!(collected.reader_id, "rdr_simulated");
    let result = terminal.process_payment(&collected.id).await.unwrap();
    assert_eq!(result.status, ResultStatus::StoredOffline);
    let stored = terminal.list_stored_payments(None).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].state, StoredState::Pending);

    // pos-sim's backend accepts a simulated reader's test card (test mode): the stored
    // payment is forwarded once, and a second forward sends nothing.
    let (_, url) = sim_addrs();
    // A busy machine may time a request out: the payment then stays pending (same key) and
    // the next run sends it; the terminal's own first run may also take it before this call.
    // What counts is one forward reported in all, nothing failed.
    for _ in 0..5 {
        let report = terminal.forward_stored_payments().await.unwrap();
        assert_eq!(report.failed, 0);
        if report.remaining == 0 {
            break;
        }
    }
    assert_eq!(events.forwarded_count(&result.id), 1);
    let stored = terminal.list_stored_payments(None).await.unwrap();
    assert_eq!(stored[0].state, StoredState::Forwarded);
    assert_eq!(stored[0].id, result.id);
    assert_eq!(
        terminal.forward_stored_payments().await.unwrap().forwarded,
        0
    );
    let mine = received(url, &result.id).await.expect("the backend has it");
    // One payment at the backend; a run that timed out may have sent it twice (same key).
    assert!(get(&mine, "requests").as_f64().is_some_and(|n| n >= 1.0));
    assert_eq!(get(&mine, "amount").as_f64(), Some(500.0));
    assert_eq!(
        get(&mine, "outcome").as_string().as_deref(),
        Some("succeeded")
    );
    assert_eq!(get(&mine, "offline").as_bool(), Some(true));

    // The test card is chosen per payment; a cancel works as with a real reader.
    terminal
        .reader_session()
        .simulator()
        .borrow_mut()
        .set_test_card("4242424242424242")
        .unwrap();
    terminal
        .reader_session()
        .simulator()
        .borrow_mut()
        .tap_delay_ms = 2_000;
    let (collected, canceled) = join(
        terminal.collect_payment_method(request(600.0, None)),
        async {
            sleep(50).await;
            terminal.cancel_collect_payment_method()
        },
    )
    .await;
    canceled.unwrap();
    assert_eq!(collected.unwrap_err().code(), "collect_canceled");
    terminal
        .reader_session()
        .simulator()
        .borrow_mut()
        .tap_delay_ms = 50;
    let collected = terminal
        .collect_payment_method(request(700.0, None))
        .await
        .unwrap();
    assert_eq!(collected.card.last4, "4242");

    // And it goes online: pos-sim approves it and has it exactly once.
    let result = terminal.process_payment(&collected.id).await.unwrap();
    assert_eq!(result.status, ResultStatus::Succeeded);
    let mine = received(url, &result.id).await.expect("the backend has it");
    assert_eq!(get(&mine, "requests").as_f64(), Some(1.0));
    assert_eq!(get(&mine, "amount").as_f64(), Some(700.0));
    assert_eq!(
        get(&mine, "outcome").as_string().as_deref(),
        Some("succeeded")
    );
    assert_eq!(get(&mine, "offline").as_bool(), Some(false));
    assert_eq!(
        terminal.list_stored_payments(None).await.unwrap().len(),
        1,
        "an online payment is not stored"
    );
    terminal.close();
}

fn cart_of(total: u64) -> pos_terminal::reader::CartInput {
    pos_terminal::reader::CartInput {
        line_items: vec![],
        tax: 0,
        total,
        currency: "usd".into(),
    }
}

#[wasm_bindgen_test]
async fn a_collect_that_outlasts_its_timeout_is_canceled_on_the_reader() {
    wait_free("rdr_sim_1").await;
    let (terminal, _events) = terminal("collect-timeout").await;
    terminal.reader_session().set_timeouts(Timeouts {
        collect_ms: 150,
        ..quick_timeouts()
    });
    terminal
        .connect_reader(&ws("rdr_sim_1"), false)
        .await
        .unwrap();
    let err = terminal
        .collect_payment_method(request(800.0, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "reader_timeout");
    sleep(100).await;
    assert_eq!(
        screen_kind("rdr_sim_1").await,
        "result",
        "the reader was told to stop"
    );
    terminal.reader_session().set_timeouts(quick_timeouts());
    let paid = pay(&terminal, request(810.0, None)).await.unwrap();
    assert_eq!(paid.status, ResultStatus::Succeeded);
    terminal.close();
    wait_free("rdr_sim_1").await;
}

/// Each fault once, then a normal payment: the SDK stays usable throughout.
async fn hostile_reader(
    terminal: &Terminal,
    events: &ReaderEvents,
    reader: &str,
    address: &Address,
) {
    // Junk before the card: ignored, the collect still completes.
    for kind in ["garbage", "truncated", "wrong_request"] {
        fault(reader, kind).await;
        let paid = pay(terminal, request(900.0, None)).await;
        assert_eq!(
            paid.unwrap().status,
            ResultStatus::Succeeded,
            "after {kind}"
        );
    }

    // A 5 MB frame: refused before it is copied (over USB the stream cannot be trusted after
    // it, so the SDK reconnects).
    fault(reader, "huge").await;
    let before = events.disconnects.borrow().len();
    let paid = pay(terminal, request(910.0, None)).await;
    match address.method {
        Method::WebSocket => assert_eq!(paid.unwrap().status, ResultStatus::Succeeded),
        _ => {
            assert_eq!(paid.unwrap_err().code(), "reader_protocol_error");
            wait_until("onUnexpectedReaderDisconnect", 2_000, || {
                events.disconnects.borrow().len() > before
            })
            .await;
            wait_until("reconnection after an unframeable stream", 10_000, || {
                terminal.reader_session().is_connected()
            })
            .await;
        }
    }

    // Silent mid-collect: the heartbeat notices within seconds; then automatic reconnection.
    fault(reader, "silent").await;
    let before = events.disconnects.borrow().len();
    let started = js_sys::Date::now();
    let err = terminal
        .collect_payment_method(request(920.0, Some(OfflineBehavior::ForceOffline)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "reader_disconnected");
    let took = js_sys::Date::now() - started;
    assert!(
        took < 5_000.0,
        "a dead reader is noticed within seconds ({took} ms)"
    );
    wait_until("onUnexpectedReaderDisconnect", 2_000, || {
        events.disconnects.borrow().len() > before
    })
    .await;
    wait_until("reconnection after silence", 10_000, || {
        terminal.reader_session().is_connected()
    })
    .await;
    assert!(
        terminal
            .list_stored_payments(Some(StoredState::Pending))
            .await
            .unwrap()
            .is_empty(),
        "nothing half-made was stored"
    );

    // A reader that answers hello with another protocol version.
    terminal.disconnect_reader();
    wait_free(reader).await;
    fault(reader, "wrong_version").await;
    let err = terminal.connect_reader(address, false).await.unwrap_err();
    assert_eq!(err.code(), "reader_protocol_error");
    wait_free(reader).await;
    terminal.connect_reader(address, false).await.unwrap();
    let paid = pay(terminal, request(930.0, None)).await.unwrap();
    assert_eq!(paid.status, ResultStatus::Succeeded);
}

#[wasm_bindgen_test]
async fn hostile_readers_over_websocket_leave_the_sdk_usable() {
    wait_free("rdr_sim_1").await;
    let (terminal, events) = terminal("hostile-ws").await;
    let address = ws("rdr_sim_1");
    terminal.connect_reader(&address, false).await.unwrap();
    hostile_reader(&terminal, &events, "rdr_sim_1", &address).await;
    terminal.close();
    wait_free("rdr_sim_1").await;
}

#[wasm_bindgen_test]
async fn hostile_readers_over_usb_leave_the_sdk_usable() {
    wait_free("rdr_sim_2").await;
    let (terminal, events) = terminal("hostile-usb").await;
    let options = js_sys::JSON::parse(r#"{"maxTransfer": 512}"#).unwrap();
    let device = fake_usb_reader(&reader_ws_url("rdr_sim_2"), "USB-HOSTILE", &options);
    let address = discover_usb(&terminal, "USB-HOSTILE").await.address;
    terminal.connect_reader(&address, false).await.unwrap();
    hostile_reader(&terminal, &events, "rdr_sim_2", &address).await;
    terminal.close();
    device.unplug();
    wait_free("rdr_sim_2").await;
}
