//! pos-sim's readers as storing agents (protocol v2), over real sockets: the real binary,
//! ureq for HTTP, tungstenite for the readers. Pairing, `process` through the reader's own
//! link, the sealed store, reboot, forwarding, `forwarded` reports and `store_status`.

mod common;

use std::path::Path;

use serde_json::{json, Value};

use common::{discover, ends, eventually, payment_body, payments, recv, send, Sim, Ws};

const R1: &str = "rdr_sim_1";

impl Sim {
    fn start(db: &Path) -> Sim {
        Sim::launch(db, 20, &[])
    }

    /// A pairing credential for `reader_id`, issued with a fresh connection token.
    fn pair(&self, reader_id: &str) -> String {
        self.pairing(&self.token(), reader_id)
    }

    /// Connects with `pairing`; returns the socket after `hello_ack` and the first
    /// `store_status`, and those two messages.
    fn connect(&self, id: &str, pairing: &str) -> (Ws, Value, Value) {
        let (mut ws, ack) = self.hello(id, pairing);
        let status = recv(&mut ws);
        assert_eq!(status["type"], "store_status", "{status}");
        (ws, ack, status)
    }

    fn view(&self, id: &str) -> Value {
        let (status, view) = self.admin("GET", &format!("/_sim/readers/{id}"), "");
        assert_eq!(status, 200);
        view
    }

    fn set_link(&self, id: &str, down: bool) {
        let (status, view) = self.admin(
            "POST",
            &format!("/_sim/readers/{id}/network"),
            &json!({ "down": down }).to_string(),
        );
        assert_eq!(status, 200, "{view}");
    }

    fn set_card(&self, id: &str, card: Value) {
        let (status, view) = self.admin(
            "POST",
            &format!("/_sim/readers/{id}/card"),
            &card.to_string(),
        );
        assert_eq!(status, 200, "{view}");
    }

    /// How many requests the backend saw for this idempotency key (0: never).
    fn requests_for(&self, key: &str) -> u64 {
        payments(self)
            .iter()
            .find(|p| p["key"] == key)
            .and_then(|p| p["requests"].as_u64())
            .unwrap_or(0)
    }
}

/// Reads until a message matches `want`, returning it and what came before.
fn recv_until(ws: &mut Ws, want: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
    let mut before = Vec::new();
    loop {
        let msg = recv(ws);
        if want(&msg) {
            return (msg, before);
        }
        before.push(msg);
    }
}

/// A collect on `ws` for payment `id`: the card_event and card_read messages.
fn collect(ws: &mut Ws, id: &str, amount: u64) -> (Value, Value) {
    send(
        ws,
        json!({"type":"collect","request_id":id,"amount":amount,"currency":"usd"}),
    );
    // Link changes made just before arrive first as store_status.
    let (started, before) = recv_until(ws, |m| m["type"] != "store_status");
    assert!(before.len() <= 2, "{before:?}");
    assert_eq!(started, json!({"type":"collect_started","request_id":id}));
    let event = recv(ws);
    assert_eq!(event["type"], "card_event", "{event}");
    let read = recv(ws);
    assert_eq!(read["type"], "card_read", "{read}");
    (event, read)
}

/// The POS goes away: close and wait until the reader is free again.
fn hang_up(sim: &Sim, mut ws: Ws) {
    let _ = ws.close(None);
    let _ = ends(&mut ws);
    eventually("the reader to be free", || {
        sim.view(R1)["connected"] == false
    });
}

fn process(ws: &mut Ws, request_id: &str, mode: &str, payment: &Value) -> Value {
    send(
        ws,
        json!({"type":"process","request_id":request_id,"mode":mode,"payment":payment}),
    );
    recv_until(ws, |m| m["request_id"] == request_id).0
}

#[test]
fn process_online_through_the_readers_own_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(&dir.path().join("sim.db"));
    let pairing = sim.pair(R1);
    let (mut ws, ack, status) = sim.connect(R1, &pairing);
    assert_eq!(ack["capabilities"], json!({"process": true, "store": true}));
    assert_eq!(ack["reader"]["country"], "US");
    assert_eq!(
        status,
        json!({"type":"store_status","request_id":null,"link":"online","pending_count":0,"pending_amounts":{}})
    );

    // The POS's own backend link is down; the reader's is not.
    let (code, _) = sim.admin("POST", "/_sim/network", r#"{"down":true}"#);
    assert_eq!(code, 200);
    let (event, read) = collect(&mut ws, "pay_online_1", 1500);
    assert_eq!(event["event"], "inserted");
    assert_eq!(read["card"]["entry_mode"], "chip");
    assert_eq!(read["card"]["pin_verified"], true);
    let body = payment_body("pay_online_1", 1500, &read, R1);
    let processed = process(&mut ws, "proc_1", "online", &body);
    assert_eq!(processed["type"], "processed", "{processed}");
    assert_eq!(processed["payment_id"], "pay_online_1");
    assert_eq!(processed["result"]["outcome"], "approved", "{processed}");
    assert_eq!(processed["result"]["status"], "succeeded");
    assert_eq!(sim.requests_for("pay_online_1"), 1, "charged once");
    // Again: the backend answers from its idempotency record, the reader stores nothing.
    let again = process(&mut ws, "proc_2", "online_or_store", &body);
    assert_eq!(again["result"], processed["result"]);
    assert_eq!(sim.view(R1)["stored"]["count"], 0);

    // A declined card through the reader.
    sim.set_card(R1, json!({"number": "4000000000000002"}));
    let (_, read) = collect(&mut ws, "pay_declined", 700);
    let declined = process(
        &mut ws,
        "proc_3",
        "online",
        &payment_body("pay_declined", 700, &read, R1),
    );
    assert_eq!(declined["result"]["outcome"], "declined", "{declined}");

    // Mode online with the reader's link down: unreachable, nothing kept, nothing sent.
    sim.set_link(R1, true);
    let (_, read) = collect(&mut ws, "pay_unreachable", 900);
    let unreachable = process(
        &mut ws,
        "proc_4",
        "online",
        &payment_body("pay_unreachable", 900, &read, R1),
    );
    assert_eq!(
        unreachable["result"]["outcome"], "unreachable",
        "{unreachable}"
    );
    assert_eq!(sim.requests_for("pay_unreachable"), 0);
    assert_eq!(sim.view(R1)["stored"]["count"], 0);

    // A payment for another reader is refused.
    let wrong = process(
        &mut ws,
        "proc_5",
        "store",
        &payment_body("pay_other", 900, &read, "rdr_sim_2"),
    );
    assert_eq!(
        (&wrong["type"], &wrong["code"]),
        (&json!("error"), &json!("invalid_message")),
        "{wrong}"
    );
    let logs = sim.logs();
    assert!(
        !logs.contains(&pairing),
        "the pairing secret is never logged"
    );
    assert!(!logs.contains("4242424242424242"), "nor a card number");
}

#[test]
fn stored_on_the_reader_survives_reboot_and_is_forwarded_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(&dir.path().join("sim.db"));
    let pairing = sim.pair(R1);
    let (mut ws, _, _) = sim.connect(R1, &pairing);

    sim.set_link(R1, true);
    let (status, _) = recv_until(&mut ws, |m| m["type"] == "store_status");
    assert_eq!(status["link"], "offline");
    let (_, read) = collect(&mut ws, "pay_stored_1", 2500);
    let body = payment_body("pay_stored_1", 2500, &read, R1);
    let processed = process(&mut ws, "proc_1", "online_or_store", &body);
    assert_eq!(processed["result"]["outcome"], "stored", "{processed}");
    let stored_at = processed["result"]["stored_at"]
        .as_u64()
        .expect("stored_at");
    let (status, _) = recv_until(&mut ws, |m| m["type"] == "store_status");
    assert_eq!(
        (&status["pending_count"], &status["pending_amounts"]),
        (&json!(1), &json!({"usd": 2500}))
    );
    // Idempotent: the same answer, one row.
    let again = process(&mut ws, "proc_2", "online_or_store", &body);
    assert_eq!(
        again["result"],
        json!({"outcome":"stored","stored_at":stored_at})
    );
    let view = sim.view(R1);
    assert_eq!(
        view["stored"],
        json!({"count": 1, "amounts": {"usd": 2500}})
    );
    assert_eq!(view["link"], "offline");
    assert_eq!(sim.requests_for("pay_stored_1"), 0, "nothing sent yet");

    // Reboot: the socket drops, connections are refused while booting, the store survives.
    let (code, view) = sim.admin("POST", "/_sim/readers/rdr_sim_1/reboot", "");
    assert_eq!((code, &view["booting"]), (200, &json!(true)));
    assert!(ends(&mut ws), "the socket drops");
    assert!(sim.try_reader(R1).is_err(), "refused while booting");
    eventually("boot", || sim.view(R1)["booting"] == false);
    let (mut ws, _, status) = sim.connect(R1, &pairing);
    assert_eq!(
        (&status["pending_count"], &status["link"]),
        (&json!(1), &json!("offline"))
    );

    // The link returns: forwarded once, reported to the connected POS.
    sim.set_link(R1, false);
    let (forwarded, _) = recv_until(&mut ws, |m| m["type"] == "forwarded");
    assert_eq!(forwarded["payment_id"], "pay_stored_1");
    assert_eq!(forwarded["amount"], 2500);
    assert_eq!(forwarded["currency"], "usd");
    assert_eq!(forwarded["stored_at"], stored_at);
    assert_eq!(forwarded["result"]["outcome"], "approved", "{forwarded}");
    let (status, _) = recv_until(&mut ws, |m| m["type"] == "store_status");
    assert_eq!(
        (&status["pending_count"], &status["link"]),
        (&json!(0), &json!("online"))
    );
    assert_eq!(
        sim.requests_for("pay_stored_1"),
        1,
        "the backend saw the key once"
    );
    let (_, list) = sim.admin("GET", "/_sim/payments", "");
    let record = list
        .as_array()
        .expect("array")
        .iter()
        .find(|p| p["key"] == "pay_stored_1")
        .cloned()
        .expect("record");
    assert_eq!(record["offline"], true, "{record}");
    hang_up(&sim, ws);

    // Not acknowledged: resent after each hello until forwarded_ack.
    let (mut ws, _, status) = sim.connect(R1, &pairing);
    assert_eq!(status["pending_count"], 0);
    let report = recv(&mut ws);
    assert_eq!(report, forwarded, "resent after the hello");
    hang_up(&sim, ws);
    let (mut ws, _, _) = sim.connect(R1, &pairing);
    assert_eq!(recv(&mut ws), forwarded, "resent again");
    send(
        &mut ws,
        json!({"type":"forwarded_ack","payment_id":"pay_stored_1"}),
    );
    hang_up(&sim, ws);
    let (mut ws, _, _) = sim.connect(R1, &pairing);
    send(
        &mut ws,
        json!({"type":"store_status_request","request_id":"st_1"}),
    );
    let next = recv(&mut ws);
    assert_eq!(
        (&next["type"], &next["request_id"]),
        (&json!("store_status"), &json!("st_1")),
        "no report once acknowledged: {next}"
    );
    // A later process of the same id answers its final result, never stores it again.
    let replay = process(&mut ws, "proc_3", "store", &body);
    assert_eq!(replay["result"]["outcome"], "approved", "{replay}");
    assert_eq!(sim.requests_for("pay_stored_1"), 1);
}

#[test]
fn the_readers_store_survives_a_pos_sim_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("sim.db");
    {
        let sim = Sim::start(&db);
        let pairing = sim.pair(R1);
        let (mut ws, _, _) = sim.connect(R1, &pairing);
        sim.set_link(R1, true);
        let (_, read) = collect(&mut ws, "pay_restart", 1200);
        let processed = process(
            &mut ws,
            "proc_1",
            "store",
            &payment_body("pay_restart", 1200, &read, R1),
        );
        assert_eq!(processed["result"]["outcome"], "stored", "{processed}");
    }
    assert!(dir.path().join("sim.db.readers.sqlite").exists());
    let sim = Sim::start(&db);
    // The link starts up: the reader forwards what it held.
    eventually("the forward after restart", || {
        sim.requests_for("pay_restart") == 1 && sim.view(R1)["stored"]["count"] == 0
    });
    let pairing = sim.pair(R1);
    let (mut ws, _, _) = sim.connect(R1, &pairing);
    let report = recv(&mut ws);
    assert_eq!(
        (&report["type"], &report["payment_id"]),
        (&json!("forwarded"), &json!("pay_restart")),
        "{report}"
    );
}

#[test]
fn offline_rules_refuse_before_storing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(&dir.path().join("sim.db"));
    let pairing = sim.pair(R1);
    let (mut ws, _, _) = sim.connect(R1, &pairing);
    sim.set_link(R1, true);

    let refused = |ws: &mut Ws, id: &str, card: Value| {
        sim.set_card(R1, card);
        let (_, read) = collect(ws, id, 1000);
        let answer = process(
            ws,
            &format!("proc_{id}"),
            "online_or_store",
            &payment_body(id, 1000, &read, R1),
        );
        assert_eq!(
            (&answer["type"], &answer["code"]),
            (
                &json!("error"),
                &json!("offline_payment_method_unsupported")
            ),
            "{id}: {answer}"
        );
        assert_eq!(answer["request_id"], format!("proc_{id}"));
        (read, answer)
    };
    let (read, _) = refused(
        &mut ws,
        "pay_swipe",
        json!({"number":"4242424242424242","entry":"swipe"}),
    );
    assert_eq!(read["card"]["entry_mode"], "swipe");
    assert_eq!(
        read["card"]["pin_verified"],
        Value::Null,
        "no PIN: left out"
    );
    refused(
        &mut ws,
        "pay_interac",
        json!({"number":"4506445006931933","entry":"chip","pin":true}),
    );
    // In the EEA, chip without PIN and contactless are refused; chip + PIN is stored.
    let (code, view) = sim.admin(
        "POST",
        "/_sim/readers/rdr_sim_1/location",
        r#"{"country":"FR"}"#,
    );
    assert_eq!((code, &view["country"]), (200, &json!("FR")));
    refused(
        &mut ws,
        "pay_eea_nopin",
        json!({"number":"4242424242424242","entry":"chip","pin":false}),
    );
    let (event, read) = {
        sim.set_card(
            R1,
            json!({"number":"4242424242424242","entry":"contactless"}),
        );
        collect(&mut ws, "pay_eea_tap", 1000)
    };
    assert_eq!(event["event"], "tapped");
    let answer = process(
        &mut ws,
        "proc_tap",
        "store",
        &payment_body("pay_eea_tap", 1000, &read, R1),
    );
    assert_eq!(
        answer["code"], "offline_payment_method_unsupported",
        "{answer}"
    );
    assert_eq!(sim.view(R1)["stored"]["count"], 0, "nothing stored");
    for id in ["pay_swipe", "pay_interac", "pay_eea_nopin", "pay_eea_tap"] {
        assert_eq!(sim.requests_for(id), 0, "{id} never sent");
    }

    sim.set_card(
        R1,
        json!({"number":"4242424242424242","entry":"chip","pin":true}),
    );
    let (_, read) = collect(&mut ws, "pay_eea_pin", 1000);
    let answer = process(
        &mut ws,
        "proc_pin",
        "store",
        &payment_body("pay_eea_pin", 1000, &read, R1),
    );
    assert_eq!(answer["result"]["outcome"], "stored", "{answer}");
    assert_eq!(sim.view(R1)["stored"]["count"], 1);
    // And the hello_ack says where the reader is.
    hang_up(&sim, ws);
    let (_, ack, _) = sim.connect(R1, &pairing);
    assert_eq!(ack["reader"]["country"], "FR");
}

#[test]
fn pairing_is_required_to_connect_not_to_discover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(&dir.path().join("sim.db"));
    let token = sim.token();
    let other = sim.pairing(&token, "rdr_sim_2");
    let refused = |hello: Value| {
        let mut ws = sim.reader(R1);
        send(&mut ws, hello.clone());
        let error = recv(&mut ws);
        assert_eq!(
            (&error["type"], &error["code"]),
            (&json!("error"), &json!("pairing_refused")),
            "{hello}: {error}"
        );
        assert!(ends(&mut ws), "closed after pairing_refused");
    };
    refused(json!({"type":"hello","protocol_version":2,"client":"t"}));
    refused(json!({"type":"hello","protocol_version":2,"client":"t","pairing":"rpair_nope"}));
    refused(json!({"type":"hello","protocol_version":2,"client":"t","pairing":other}));
    refused(json!({"type":"hello","protocol_version":2,"client":"t","pairing":token}));
    refused(
        json!({"type":"hello","protocol_version":2,"client":"t","pairing":other,"intent":"take_over"}),
    );
    assert_eq!(sim.view(R1)["connected"], false);

    // Discovery needs no credential and holds nothing.
    let mut ws = sim.reader(R1);
    let ack = discover(&mut ws, "online");
    assert_eq!(ack["capabilities"], json!({"process": true, "store": true}));
    hang_up(&sim, ws);

    let pairing = sim.pairing(&token, R1);
    let (_ws, _, _) = sim.connect(R1, &pairing);
    assert_eq!(sim.view(R1)["connected"], true);
    assert!(!sim.logs().contains(&pairing), "never logged");
}

#[test]
fn store_status_on_request_and_on_every_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(&dir.path().join("sim.db"));
    let pairing = sim.pair(R1);
    let (mut ws, _, _) = sim.connect(R1, &pairing);
    send(
        &mut ws,
        json!({"type":"store_status_request","request_id":"s1"}),
    );
    assert_eq!(
        recv(&mut ws),
        json!({"type":"store_status","request_id":"s1","link":"online","pending_count":0,"pending_amounts":{}})
    );
    sim.set_link(R1, true);
    let status = recv(&mut ws);
    assert_eq!(
        (&status["type"], &status["link"]),
        (&json!("store_status"), &json!("offline"))
    );
    let (_, read) = collect(&mut ws, "pay_change", 300);
    let processed = process(
        &mut ws,
        "p1",
        "store",
        &payment_body("pay_change", 300, &read, R1),
    );
    assert_eq!(processed["result"]["outcome"], "stored");
    let status = recv(&mut ws);
    assert_eq!(
        (&status["pending_count"], &status["pending_amounts"]),
        (&json!(1), &json!({"usd":300}))
    );
    // Mode store with the link up: stored, then forwarded by the loop.
    sim.set_link(R1, false);
    let (forwarded, _) = recv_until(&mut ws, |m| m["type"] == "forwarded");
    assert_eq!(forwarded["payment_id"], "pay_change");
    let (status, _) = recv_until(&mut ws, |m| {
        m["type"] == "store_status" && m["pending_count"] == 0
    });
    assert_eq!(status["link"], "online");
}
