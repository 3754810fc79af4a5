//! One reader session, two transports: the same scenarios over WebSocket and over WebUSB
//! (a fake USBDevice bridged to the same pos-sim reader, so the SDK's real framing code runs,
//! with frames split across transfers and several frames in one transfer). Each: connect,
//! display a cart (seen on pos-sim's reader screen), collect and process online and offline,
//! cancel while waiting for the card, one command at a time, the reader killed mid-collection
//! (coded error, nothing stored, automatic reconnection). Over USB also: unplugged
//! mid-payment, and the WebUSB error codes.
#![cfg(target_arch = "wasm32")]

mod common;
mod reader_kit;

use common::*;
use futures_util::future::join;
use pos_terminal::events::{ConnectionStatus, PaymentStatus};
use pos_terminal::payment::{OfflineBehavior, ResultStatus};
use pos_terminal::reader::{default_usb_filters, CartInput, Discovered, Discovery, LineItemInput};
use pos_terminal::terminal::Terminal;
use reader_kit::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WS_READER: &str = "rdr_sim_1";
const USB_READER: &str = "rdr_sim_2";

async fn discover_ws(terminal: &Terminal, reader: &str) -> Discovered {
    let found = terminal
        .discover_readers(&Discovery::WebSocket {
            urls: vec![reader_ws_url(reader)],
        })
        .await
        .unwrap();
    found.into_iter().next().expect("the reader answers")
}

fn cart() -> CartInput {
    CartInput {
        line_items: vec![LineItemInput {
            description: "Latte".into(),
            amount: 450,
            quantity: 2,
        }],
        tax: 72,
        total: 972,
        currency: "usd".into(),
    }
}

/// Everything a cashier does with a connected reader, whatever carries its frames.
async fn session_scenario(terminal: &Terminal, events: &ReaderEvents, reader: &str) {
    let (_, url) = sim_addrs();

    // The cart the customer sees.
    terminal.set_reader_display(cart()).await.unwrap();
    let view = reader_view(reader).await;
    let screen = get(&view, "screen");
    assert_eq!(get(&screen, "kind").as_string().as_deref(), Some("cart"));
    assert_eq!(get(&get(&screen, "cart"), "total").as_f64(), Some(972.0));

    // Online, then offline.
    let online = pay(terminal, request(1_250.0, None)).await.unwrap();
    assert_eq!(online.status, ResultStatus::Succeeded);
    assert!(received(url, &online.id).await.is_some());
    assert_eq!(screen_kind(reader).await, "result");
    let offline = pay(
        terminal,
        request(1_300.0, Some(OfflineBehavior::ForceOffline)),
    )
    .await
    .unwrap();
    assert_eq!(offline.status, ResultStatus::StoredOffline);

    // Cancel while the reader waits for the card; a display command meanwhile is refused.
    let (collected, (display, canceled)) = join(
        terminal.collect_payment_method(request(1_400.0, None)),
        async {
            sleep(100).await;
            assert_eq!(screen_kind(reader).await, "waiting_for_card");
            let display = terminal.set_reader_display(cart()).await;
            (display, terminal.cancel_collect_payment_method())
        },
    )
    .await;
    assert_eq!(display.unwrap_err().code(), "command_in_progress");
    canceled.unwrap();
    assert_eq!(collected.unwrap_err().code(), "collect_canceled");
    assert_eq!(screen_kind(reader).await, "result");

    // The customer cancels on the reader.
    let (collected, ()) = join(
        terminal.collect_payment_method(request(1_450.0, None)),
        async {
            sleep(100).await;
            sim_post(&format!("/_sim/readers/{reader}/cancel"), "{}").await;
        },
    )
    .await;
    assert_eq!(collected.unwrap_err().code(), "collect_canceled");
    let statuses = events.payment.borrow().clone();
    for s in [
        PaymentStatus::Ready,
        PaymentStatus::WaitingForInput,
        PaymentStatus::Processing,
    ] {
        assert!(statuses.contains(&s), "{s:?} in {statuses:?}");
    }
    assert_eq!(statuses.last(), Some(&PaymentStatus::Ready));

    // The reader dies mid-collection: a coded error, nothing stored, then it comes back.
    let stored_before = terminal.list_stored_payments(None).await.unwrap().len();
    let disconnects_before = events.disconnects.borrow().len();
    let (collected, ()) = join(
        terminal.collect_payment_method(request(1_500.0, Some(OfflineBehavior::ForceOffline))),
        async {
            sleep(100).await;
            kill(reader).await;
        },
    )
    .await;
    assert_eq!(collected.unwrap_err().code(), "reader_disconnected");
    wait_until("onUnexpectedReaderDisconnect", 2_000, || {
        events.disconnects.borrow()[disconnects_before..] == ["reader_disconnected".to_string()]
    })
    .await;
    assert_eq!(
        terminal.list_stored_payments(None).await.unwrap().len(),
        stored_before,
        "a collect that never finished leaves nothing stored"
    );
    wait_until("automatic reconnection", 10_000, || {
        terminal.reader_session().is_connected()
    })
    .await;
    assert_eq!(events.last_connection(), Some(ConnectionStatus::Connected));
    let again = pay(terminal, request(1_600.0, None)).await.unwrap();
    assert_eq!(again.status, ResultStatus::Succeeded);
}

#[wasm_bindgen_test]
async fn websocket_reader_session() {
    let (terminal, events) = terminal("ws").await;
    wait_free(WS_READER).await;
    let reader = discover_ws(&terminal, WS_READER).await;
    assert_eq!(reader.address.method.as_str(), "websocket");
    terminal
        .connect_reader(&reader.address, false)
        .await
        .unwrap();
    session_scenario(&terminal, &events, WS_READER).await;
    terminal.close();
    wait_free(WS_READER).await;
}

#[wasm_bindgen_test]
async fn usb_reader_session_with_frames_split_across_transfers() {
    let (terminal, events) = terminal("usb-split").await;
    wait_free(USB_READER).await;
    let options = js_sys::JSON::parse(r#"{"maxTransfer": 7}"#).unwrap();
    let device = fake_usb_reader(&reader_ws_url(USB_READER), "USB-SPLIT", &options);
    let reader = discover_usb(&terminal, "USB-SPLIT").await;
    assert_eq!(reader.address.method.as_str(), "usb");
    assert_eq!(reader.address.url, "usb:1209:0001:USB-SPLIT");
    let connected = terminal
        .connect_reader(&reader.address, false)
        .await
        .unwrap();
    assert_eq!(
        connected.info.id, USB_READER,
        "the reader's own id, from its hello_ack"
    );
    session_scenario(&terminal, &events, USB_READER).await;
    let split = get(&device.stats(), "splitFrames").as_f64().unwrap();
    assert!(split > 5.0, "frames were split across transfers ({split})");
    terminal.close();
    device.unplug();
    wait_free(USB_READER).await;
}

#[wasm_bindgen_test]
async fn usb_reader_with_several_frames_per_transfer_and_unplugged_mid_payment() {
    let (terminal, events) = terminal("usb-joined").await;
    wait_free(USB_READER).await;
    let options = js_sys::JSON::parse(r#"{"batchMs": 40}"#).unwrap();
    let device = fake_usb_reader(&reader_ws_url(USB_READER), "USB-JOINED", &options);
    let reader = discover_usb(&terminal, "USB-JOINED").await;
    terminal
        .connect_reader(&reader.address, false)
        .await
        .unwrap();
    let paid = pay(&terminal, request(2_000.0, None)).await.unwrap();
    assert_eq!(paid.status, ResultStatus::Succeeded);
    let joined = get(&device.stats(), "joinedTransfers").as_f64().unwrap();
    assert!(
        joined >= 1.0,
        "card_event and card_read came in one transfer"
    );

    // Unplugged while waiting for the card: `reader_unplugged`, nothing stored, no retry.
    let (collected, ()) = join(
        terminal.collect_payment_method(request(2_100.0, Some(OfflineBehavior::ForceOffline))),
        async {
            sleep(100).await;
            device.unplug();
        },
    )
    .await;
    assert_eq!(collected.unwrap_err().code(), "reader_unplugged");
    wait_until("onUnexpectedReaderDisconnect", 2_000, || {
        events.disconnects.borrow().last().map(String::as_str) == Some("reader_unplugged")
    })
    .await;
    assert!(terminal
        .list_stored_payments(None)
        .await
        .unwrap()
        .is_empty());
    sleep(1_000).await;
    assert!(
        !terminal.reader_session().is_connected(),
        "no reconnection to a pulled cable"
    );
    assert_eq!(
        events.last_connection(),
        Some(ConnectionStatus::NotConnected)
    );
    wait_free(USB_READER).await;

    // Plugged back in: connect again and pay.
    device.plug();
    let reader = discover_usb(&terminal, "USB-JOINED").await;
    terminal
        .connect_reader(&reader.address, false)
        .await
        .unwrap();
    let paid = pay(&terminal, request(2_200.0, None)).await.unwrap();
    assert_eq!(paid.status, ResultStatus::Succeeded);
    terminal.close();
    device.unplug();
    wait_free(USB_READER).await;
}

#[wasm_bindgen_test]
async fn webusb_failures_have_their_own_codes() {
    let (terminal, _events) = terminal("usb-errors").await;
    let usb = install_fake_usb();
    let discover = |request_permission| {
        let terminal = &terminal;
        async move {
            terminal
                .discover_readers(&Discovery::Usb {
                    request_permission,
                    filters: default_usb_filters(),
                })
                .await
        }
    };

    // No device chosen in the chooser; no user gesture.
    let _device = fake_usb_reader(&reader_ws_url(USB_READER), "USB-ERR", &JsValue::NULL);
    usb.set_request_result("cancel");
    assert_eq!(
        discover(true).await.unwrap_err().code(),
        "usb_permission_denied"
    );
    usb.set_request_result("no_gesture");
    let err = discover(true).await.unwrap_err();
    assert_eq!(err.code(), "usb_permission_denied");
    assert!(err.to_string().contains("user gesture"), "{err}");
    usb.set_request_result("grant");
    assert!(!discover(true).await.unwrap().is_empty());

    // A protected interface class.
    let options = js_sys::JSON::parse(r#"{"protectedInterface": true}"#).unwrap();
    let protected = fake_usb_reader(&reader_ws_url(USB_READER), "USB-PROT", &options);
    let reader = discover_usb(&terminal, "USB-PROT").await;
    let err = terminal
        .connect_reader(&reader.address, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "usb_interface_protected");
    assert!(
        !protected.opened(),
        "a device that could not be claimed is closed again"
    );

    // A browser without WebUSB (Firefox, Safari).
    remove_usb();
    assert_eq!(discover(false).await.unwrap_err().code(), "usb_unavailable");
    let err = terminal
        .connect_reader(&reader.address, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "usb_unavailable");
    terminal.close();
}
