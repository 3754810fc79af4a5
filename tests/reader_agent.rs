//! The reader as the second storing agent, against pos-sim's readers (which process and store
//! payments over their own link): the POS's backend link down and the reader's up, the
//! payment goes online through the reader; both down, it is stored on the reader, survives a
//! reboot (the SDK reconnects by itself) and is forwarded once by the reader, reported once;
//! payments held by both agents are each charged once; payments the offline rules refuse
//! are stored nowhere; a reader's report about a payment the SDK stores itself and never
//! sent it is ignored.
#![cfg(target_arch = "wasm32")]

mod common;
mod reader_kit;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use pos_protocol::backend::PaymentStatus;
use pos_terminal::events::Events;
use pos_terminal::forward_policy::ForwardingFailure;
use pos_terminal::options::{OfflineStorage, TerminalOptions};
use pos_terminal::payment::{Agent, OfflineBehavior, ResultStatus, StoredPayment, StoredState};
use pos_terminal::reader::Discovery;
use pos_terminal::status::{NetworkStatus, OfflineStatus};
use pos_terminal::terminal::Terminal;
use pos_terminal::PosError;
use reader_kit::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// pos-sim's second reader: its default card (4242, chip and PIN) is approved.
const READER: &str = "rdr_sim_2";

/// What a page's callbacks would have seen.
#[derive(Default)]
struct Seen {
    forwarded: RefCell<Vec<StoredPayment>>,
    failures: RefCell<Vec<ForwardingFailure>>,
    statuses: RefCell<Vec<OfflineStatus>>,
}

impl Events for Seen {
    fn payment_forwarded(&self, p: &StoredPayment) {
        self.forwarded.borrow_mut().push(p.clone());
    }
    fn forwarding_failure(&self, f: &ForwardingFailure) {
        self.failures.borrow_mut().push(f.clone());
    }
    fn offline_status(&self, s: &OfflineStatus) {
        self.statuses.borrow_mut().push(s.clone());
    }
}

impl Seen {
    /// Every `onPaymentForwarded` heard for payment `id`.
    fn forwarded_of(&self, id: &str) -> Vec<StoredPayment> {
        self.forwarded
            .borrow()
            .iter()
            .filter(|p| p.id == id)
            .cloned()
            .collect()
    }

    fn forwarded_by_reader(&self, id: &str) -> usize {
        self.forwarded
            .borrow()
            .iter()
            .filter(|p| p.id == id && p.stored_by == Agent::Reader)
            .count()
    }
}

/// A terminal storing with `storage`, connected to `READER`, once the reader reported its
/// store (it can store: `offlineStatus().reader` is not null).
async fn agent_terminal(storage: OfflineStorage) -> (Terminal, Rc<Seen>) {
    agent_terminal_with(storage, None).await
}

/// `agent_terminal`, waiting at most `request_timeout_ms` for the backend.
async fn agent_terminal_with(
    storage: OfflineStorage,
    request_timeout_ms: Option<f64>,
) -> (Terminal, Rc<Seen>) {
    let (api, _) = sim_addrs();
    let opts = TerminalOptions {
        offline_storage: Some(storage),
        request_timeout_ms,
        ..options(api, &unique_db("reader-agent"))
    };
    let seen = Rc::new(Seen::default());
    let terminal = terminal_with(opts, seen.clone()).await;
    terminal.reader_session().set_timeouts(quick_timeouts());
    let found = terminal
        .discover_readers(&Discovery::WebSocket {
            urls: vec![reader_ws_url(READER)],
        })
        .await
        .unwrap();
    // Taken over: a terminal of an earlier test that failed may still hold it.
    terminal
        .connect_reader(&found[0].address, true)
        .await
        .unwrap();
    wait_for_reader_count(&terminal, 0).await;
    (terminal, seen)
}

async fn reader_part(terminal: &Terminal) -> Option<pos_terminal::status::ReaderOfflineStatus> {
    terminal.offline_status().await.unwrap().reader
}

/// Waits until the terminal's view of the reader's store holds `n` payments.
async fn wait_for_reader_count(terminal: &Terminal, n: u32) {
    for _ in 0..200 {
        if reader_part(terminal).await.map(|r| r.pending_count) == Some(n) {
            return;
        }
        sleep(50).await;
    }
    panic!(
        "offlineStatus().reader never showed {n} stored: {:?}",
        reader_part(terminal).await
    );
}

async fn pos_link(down: bool) {
    sim_post("/_sim/network", &format!(r#"{{"down":{down}}}"#)).await;
}

async fn next_card(body: &str) {
    sim_post(&format!("/_sim/readers/{READER}/card"), body).await;
}

async fn location(country: &str) {
    sim_post(
        &format!("/_sim/readers/{READER}/location"),
        &format!(r#"{{"country":"{country}"}}"#),
    )
    .await;
}

/// What pos-sim's reader says it holds.
async fn stored_on_sim_reader() -> f64 {
    get(&get(&reader_view(READER).await, "stored"), "count")
        .as_f64()
        .unwrap_or(-1.0)
}

/// Every link back as it was, whatever a failed test left behind.
async fn restore() {
    pos_link(false).await;
    reader_link(READER, false).await;
    location("US").await;
}

fn charged_once(record: &Option<JsValue>) {
    let record = record.as_ref().expect("the backend has the payment");
    assert_eq!(
        get(record, "outcome").as_string().as_deref(),
        Some("succeeded")
    );
    assert_eq!(get(record, "requests").as_f64(), Some(1.0), "sent once");
}

#[wasm_bindgen_test]
async fn the_pos_link_down_and_the_readers_up_the_payment_goes_online_through_the_reader() {
    restore().await;
    let (terminal, _seen) = agent_terminal(OfflineStorage::Sdk).await;
    pos_link(true).await;
    let paid = pay(&terminal, request(1_500.0, None)).await;
    pos_link(false).await;
    let paid = paid.unwrap();
    assert_eq!(paid.status, ResultStatus::Succeeded);
    assert_eq!(paid.processed_by, Agent::Reader);
    assert!(paid.payment_intent_id.is_some());
    let (_, url) = sim_addrs();
    let record = received(url, &paid.id).await;
    charged_once(&record);
    let status = terminal.offline_status().await.unwrap();
    assert_eq!(status.pending_count, 0, "nothing stored by the SDK");
    assert_eq!(status.reader.map(|r| r.pending_count), Some(0));
    terminal.close();
}

#[wasm_bindgen_test]
async fn an_sdk_attempt_that_may_have_arrived_is_settled_by_the_readers_answer_charged_once() {
    restore().await;
    let (terminal, _seen) = agent_terminal_with(OfflineStorage::Reader, Some(300.0)).await;
    // The backend records the SDK's attempt, then answers after the SDK stopped waiting:
    // the outcome is unknown to the SDK. The reader sends the same payment (same key) over
    // its own link and gets the backend's first answer.
    sim_post("/_sim/network", r#"{"down":false,"latency_ms":1500}"#).await;
    let paid = pay(&terminal, request(1_700.0, None)).await;
    sim_post("/_sim/network", r#"{"down":false,"latency_ms":0}"#).await;
    let paid = paid.unwrap();
    assert_eq!(paid.status, ResultStatus::Succeeded);
    assert_eq!(paid.processed_by, Agent::Reader);
    let (_, url) = sim_addrs();
    let record = received(url, &paid.id).await;
    let record = record.expect("the backend has the payment");
    assert_eq!(
        get(&record, "outcome").as_string().as_deref(),
        Some("succeeded")
    );
    assert_eq!(
        get(&record, "requests").as_f64(),
        Some(2.0),
        "the SDK's attempt and the reader's, one key"
    );
    assert_eq!(
        paid.payment_intent_id,
        get(&record, "payment_intent").as_string(),
        "the backend's first answer, replayed"
    );
    // The reader's final answer settled the SDK's intent: nothing left to forward anywhere.
    let intents = terminal
        .list_stored_payments(Some(StoredState::Intent))
        .await
        .unwrap();
    assert!(intents.is_empty(), "intent left behind: {intents:?}");
    let status = terminal.offline_status().await.unwrap();
    assert_eq!(status.pending_count, 0);
    assert_eq!(status.reader.map(|r| r.pending_count), Some(0));
    terminal.close();
}

#[wasm_bindgen_test]
async fn both_links_down_it_is_stored_on_the_reader_and_forwarded_once_after_a_reboot() {
    restore().await;
    let (terminal, seen) = agent_terminal(OfflineStorage::Reader).await;
    pos_link(true).await;
    reader_link(READER, true).await;
    let stored = pay(&terminal, request(2_100.0, None)).await;
    let stored = match stored {
        Ok(r) => r,
        Err(e) => {
            restore().await;
            panic!("not stored: {e}");
        }
    };
    assert_eq!(stored.status, ResultStatus::StoredOnReader);
    assert_eq!(
        stored.offline_details.as_ref().map(|d| d.stored_by),
        Some(Agent::Reader)
    );
    wait_for_reader_count(&terminal, 1).await;
    let status = terminal.offline_status().await.unwrap();
    assert_eq!(status.pending_count, 0, "not stored by the SDK too");
    assert_eq!(
        status.reader.map(|r| r.network_status),
        Some(NetworkStatus::Offline)
    );
    // The backend does not know it yet: capture and cancel say so, never "not found".
    pos_link(false).await;
    for cancel in [false, true] {
        let answer = if cancel {
            terminal.cancel_payment(&stored.id).await
        } else {
            terminal.capture_payment(&stored.id).await
        };
        assert_eq!(
            answer.map(|r| r.status).map_err(|e| e.code()),
            Err("payment_not_forwarded"),
            "cancel: {cancel}"
        );
    }

    // The reader reboots: the socket drops, the SDK reconnects by itself.
    sim_post(&format!("/_sim/readers/{READER}/reboot"), "{}").await;
    wait_until("the reader's socket to drop", 3_000, || {
        !terminal.reader_session().is_connected()
    })
    .await;
    wait_until("the SDK to reconnect after the reboot", 20_000, || {
        terminal.reader_session().is_connected()
    })
    .await;
    wait_for_reader_count(&terminal, 1).await;
    assert_eq!(stored_on_sim_reader().await, 1.0, "it survived the reboot");

    // Its own link back: the reader forwards it, once; the SDK reports it once.
    reader_link(READER, false).await;
    wait_for_reader_count(&terminal, 0).await;
    wait_until("onPaymentForwarded from the reader", 10_000, || {
        seen.forwarded_by_reader(&stored.id) == 1
    })
    .await;
    pos_link(false).await;
    let (_, url) = sim_addrs();
    let record = received(url, &stored.id).await;
    charged_once(&record);
    assert_eq!(
        get(record.as_ref().unwrap(), "requests").as_f64(),
        Some(1.0),
        "forwarded once"
    );
    let by_reader = seen.forwarded_of(&stored.id);
    assert_eq!(by_reader.len(), 1, "reported once");
    assert_eq!(by_reader[0].amount, 2_100);
    assert!(by_reader[0].payment_intent_id.is_some());
    sleep(1_000).await;
    assert_eq!(seen.forwarded_by_reader(&stored.id), 1, "never twice");
    // Forwarded: the backend has it now (automatic capture: capturing answers succeeded).
    let captured = terminal.capture_payment(&stored.id).await.unwrap();
    assert_eq!(captured.status, PaymentStatus::Succeeded);
    terminal.close();
}

/// A reader that lies: it reports "declined, stolen card" (for 1 usd) about a payment this
/// terminal stored itself and never sent to it. The page must hear the backend's answer (the
/// payment approved, for its real amount), never the reader's story (an outside trial saw the
/// lie reported and the real outcome suppressed, "once per payment").
#[wasm_bindgen_test]
async fn a_readers_report_about_a_payment_it_never_held_is_ignored() {
    restore().await;
    let (terminal, seen) = agent_terminal(OfflineStorage::Sdk).await;
    let stored = pay(
        &terminal,
        request(4_321.0, Some(OfflineBehavior::ForceOffline)),
    )
    .await
    .unwrap();
    assert_eq!(stored.status, ResultStatus::StoredOffline);
    let lie = format!(
        r#"{{"payment_id":"{}","amount":1,"currency":"usd","result":{{"outcome":"declined","decline_code":"stolen_card"}}}}"#,
        stored.id
    );
    let sent = sim_post(&format!("/_sim/readers/{READER}/report"), &lie).await;
    assert_eq!(get(&sent, "sent").as_bool(), Some(true), "{sent:?}");
    // The report is looked up in the store and acknowledged; give it time to arrive.
    sleep(500).await;
    assert!(seen.failures.borrow().is_empty(), "the lie is not reported");
    let report = terminal.forward_stored_payments().await.unwrap();
    assert_eq!(report.forwarded, 1, "{report:?}");
    let heard = seen.forwarded_of(&stored.id);
    assert_eq!(heard.len(), 1, "the backend's answer reaches the page");
    assert_eq!(heard[0].stored_by, Agent::Sdk);
    assert_eq!(
        (heard[0].amount, heard[0].currency.as_str()),
        (4_321, "usd")
    );
    assert!(
        seen.failures.borrow().is_empty(),
        "{:?}",
        seen.failures.borrow()
    );
    let (_, url) = sim_addrs();
    charged_once(&received(url, &stored.id).await);
    terminal.close();
}

#[wasm_bindgen_test]
async fn payments_held_by_both_agents_are_each_charged_once() {
    restore().await;
    // Two terminals paired while the backend answers: one stores with the SDK, one with
    // the reader (a terminal taken over reconnects later with its saved pairing).
    let (terminal, seen) = agent_terminal(OfflineStorage::Sdk).await;
    let address = terminal.reader_session().reader().map(|r| r.address);
    let address = address.unwrap_or_else(|| panic!("the terminal knows its reader"));
    let (on_reader, _) = agent_terminal(OfflineStorage::Reader).await;
    pos_link(true).await;
    reader_link(READER, true).await;
    // One payment stored on the reader...
    let a = pay(&on_reader, request(1_100.0, None)).await;
    on_reader.close();
    // ...and one stored by the SDK (with "sdk", the reader only tries online).
    sleep(500).await;
    let b = match terminal.connect_reader(&address, true).await {
        Ok(_) => pay(&terminal, request(1_200.0, None)).await,
        Err(e) => Err(e),
    };
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            restore().await;
            panic!("not stored: {:?} {:?}", a.err(), b.err());
        }
    };
    assert_eq!(a.status, ResultStatus::StoredOnReader);
    assert_eq!(b.status, ResultStatus::StoredOffline);
    assert_eq!(
        b.offline_details.as_ref().map(|d| d.stored_by),
        Some(Agent::Sdk)
    );
    assert_eq!(terminal.offline_status().await.unwrap().pending_count, 1);
    wait_for_reader_count(&terminal, 1).await;

    // Both links back: each agent forwards its own.
    pos_link(false).await;
    reader_link(READER, false).await;
    let report = terminal.forward_stored_payments().await.unwrap();
    assert_eq!(report.forwarded, 1);
    wait_for_reader_count(&terminal, 0).await;
    wait_until("the reader's report of a", 10_000, || {
        seen.forwarded_by_reader(&a.id) == 1
    })
    .await;
    let (_, url) = sim_addrs();
    for (id, what) in [(&a.id, "a"), (&b.id, "b")] {
        let record = received(url, id).await;
        charged_once(&record);
        assert_eq!(
            get(record.as_ref().unwrap(), "requests").as_f64(),
            Some(1.0),
            "{what} sent once"
        );
    }
    let sdk_reported: Vec<_> = seen
        .forwarded
        .borrow()
        .iter()
        .filter(|p| p.id == b.id)
        .map(|p| p.stored_by)
        .collect();
    assert_eq!(sdk_reported, vec![Agent::Sdk]);
    terminal.close();
}

#[wasm_bindgen_test]
async fn payments_the_offline_rules_refuse_are_stored_nowhere() {
    restore().await;
    let (terminal, _) = agent_terminal(OfflineStorage::Reader).await;
    pos_link(true).await;
    reader_link(READER, true).await;
    let cases = [
        (
            "swiped",
            r#"{"number":"4242424242424242","entry":"swipe"}"#,
            "US",
        ),
        (
            "Interac",
            r#"{"number":"4506445006931933","entry":"chip","pin":true}"#,
            "US",
        ),
        (
            "EEA without PIN",
            r#"{"number":"4242424242424242","entry":"contactless"}"#,
            "FR",
        ),
    ];
    let mut outcomes: Vec<(String, Result<ResultStatus, PosError>)> = Vec::new();
    for (what, card, country) in cases {
        location(country).await;
        // pos-sim's reader takes a moment to tell the POS its new location: reconnecting
        // brings the new hello_ack (a real reader's location changes rarely).
        terminal.disconnect_reader();
        let found = terminal
            .discover_readers(&Discovery::WebSocket {
                urls: vec![reader_ws_url(READER)],
            })
            .await
            .unwrap();
        terminal
            .connect_reader(&found[0].address, true)
            .await
            .unwrap();
        next_card(card).await;
        for behavior in [None, Some(OfflineBehavior::ForceOffline)] {
            if behavior.is_some() {
                next_card(card).await;
            }
            let r = pay(&terminal, request(900.0, behavior)).await;
            outcomes.push((format!("{what} {behavior:?}"), r.map(|r| r.status)));
        }
    }
    let status = terminal.offline_status().await.unwrap();
    let on_sim = stored_on_sim_reader().await;
    restore().await;
    for (what, outcome) in outcomes {
        assert_eq!(
            outcome.map_err(|e| e.code()),
            Err("offline_payment_method_unsupported"),
            "{what}"
        );
    }
    assert_eq!(status.pending_count, 0, "nothing stored by the SDK");
    assert_eq!(status.reader.map(|r| r.pending_count), Some(0));
    assert_eq!(on_sim, 0.0, "nothing stored on the reader");
    terminal.close();
}
