//! Starts the real `pos-sim` binary and talks to it over real TCP: ureq for HTTP, and
//! tungstenite for the readers.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};
use ureq::http;
use ureq::Agent;

use common::{
    discover, ends, header, payment_body, payments, raw_request, request, send, Sim, BIN,
};

impl Sim {
    fn start(db: &Path) -> Sim {
        Self::start_with(db, &[])
    }

    fn start_with(db: &Path, extra: &[&str]) -> Sim {
        Sim::launch(db, 50, extra)
    }

    /// A POS session with reader `id`, paired with a credential issued with `token`.
    fn paired_reader(&self, id: &str, token: &str) -> WebSocket<TcpStream> {
        self.hello(id, &self.pairing(token, id)).0
    }

    /// `POST /v1/payments/{id}/{action}` (`capture` or `cancel`).
    fn transition(&self, token: &str, id: &str, action: &str) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        request(
            self.api,
            "POST",
            &format!("/v1/payments/{id}/{action}"),
            &[("Authorization", auth.as_str())],
            "",
        )
        .expect("capture request")
    }

    fn pay(&self, token: &str, key: &str, body: &Value) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        request(
            self.api,
            "POST",
            "/v1/payments",
            &[
                ("Authorization", auth.as_str()),
                ("Idempotency-Key", key),
                ("Content-Type", "application/json"),
            ],
            &body.to_string(),
        )
        .expect("payment request")
    }
}

/// The next protocol message, skipping the reader's heartbeat pings and its `store_status`
/// reports (sent after `hello_ack` and on every change of its own store).
fn recv(ws: &mut WebSocket<TcpStream>) -> Value {
    loop {
        let v = common::recv(ws);
        if v["type"] != "store_status" {
            return v;
        }
    }
}

/// A full collect on `ws`: returns the card_read message.
fn collect(ws: &mut WebSocket<TcpStream>, request_id: &str, amount: u64) -> Value {
    send(
        ws,
        json!({"type":"collect","request_id":request_id,"amount":amount,"currency":"usd"}),
    );
    let started = recv(ws);
    assert_eq!(
        started,
        json!({"type":"collect_started","request_id":request_id})
    );
    // `tapped` (contactless) or `inserted` (chip), after the card the reader presents.
    let presented = recv(ws);
    assert_eq!(
        (&presented["type"], &presented["request_id"]),
        (&json!("card_event"), &json!(request_id)),
        "{presented}"
    );
    assert!(
        presented["event"] == "tapped" || presented["event"] == "inserted",
        "{presented}"
    );
    let read = recv(ws);
    assert_eq!(read["type"], "card_read", "{read}");
    assert_eq!(read["request_id"], request_id);
    read
}

#[test]
fn full_payment_flow_over_real_sockets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(&dir.path().join("sim.db"));

    let readers = sim.ready["readers"].as_array().expect("readers");
    assert_eq!(readers.len(), 2);
    assert_eq!(readers[0]["id"], "rdr_sim_1");
    assert_eq!(readers[0]["label"], "Simulated reader 1");
    assert_eq!(
        readers[0]["url"],
        format!("ws://{}/readers/rdr_sim_1", sim.pos)
    );
    assert_ne!(sim.pos.port(), sim.api.port());

    let (status, health) = request(sim.api, "GET", "/v1/health", &[], "").expect("health");
    assert_eq!((status, health), (200, json!({"ok": true})));
    let token = sim.token();
    assert!(token.starts_with("pst_test_"));

    let mut ws = sim.paired_reader("rdr_sim_1", &token);
    let (_, list) = sim.admin("GET", "/_sim/readers", "");
    assert_eq!(list[0]["connected"], true);

    let cart = json!({"line_items":[{"description":"Coffee","amount":450,"quantity":2}],"tax":0,"total":900,"currency":"usd"});
    send(
        &mut ws,
        json!({"type":"display_cart","request_id":"d1","cart":cart}),
    );
    assert_eq!(recv(&mut ws), json!({"type":"ack","request_id":"d1"}));
    let (_, list) = sim.admin("GET", "/_sim/readers", "");
    assert_eq!(list[0]["display"], cart);

    // Approved.
    let read = collect(&mut ws, "pay_ok_1", 1000);
    assert_eq!(read["card"]["brand"], "visa");
    assert_eq!(read["card"]["last4"], "4242");
    assert_eq!(read["card"]["exp_month"], 12);
    let payload = read["card_payload"].as_str().expect("payload").to_owned();
    assert!(!payload.contains("4242424242424242"));
    let body = payment_body("pay_ok_1", 1000, &read, "rdr_sim_1");
    let (status, first) = sim.pay(&token, "pay_ok_1", &body);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "succeeded");
    let intent = first["payment_intent"].as_str().expect("intent").to_owned();
    assert!(intent.starts_with("pi_sim_"));

    // Replay: the same answer, counted.
    let (status, again) = sim.pay(&token, "pay_ok_1", &body);
    assert_eq!((status, &again["payment_intent"]), (200, &json!(intent)));
    let list = payments(&sim);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["key"], "pay_ok_1");
    assert_eq!(list[0]["requests"], 2);
    assert_eq!(list[0]["outcome"], "succeeded");
    assert_eq!(list[0]["payment_intent"], json!(intent));
    assert_eq!(list[0]["offline"], false);

    // Declining test card, one-shot.
    let (status, view) = sim.admin(
        "POST",
        "/_sim/readers/rdr_sim_1/card",
        r#"{"number":"4000000000000002"}"#,
    );
    assert_eq!((status, &view["next_card"]), (200, &json!("0002")));
    let read = collect(&mut ws, "pay_decl_1", 1000);
    assert_eq!(read["card"]["last4"], "0002");
    let (status, declined) = sim.pay(
        &token,
        "pay_decl_1",
        &payment_body("pay_decl_1", 1000, &read, "rdr_sim_1"),
    );
    assert_eq!(status, 402, "{declined}");
    assert_eq!(declined["error"]["code"], "card_declined");
    assert_eq!(declined["error"]["decline_code"], "generic_decline");
    let read = collect(&mut ws, "pay_after", 1000);
    assert_eq!(read["card"]["last4"], "4242", "the test card is one-shot");

    // Offline forward of a payment already seen is a replay, not a conflict.
    let mut offline = body.clone();
    offline["offline"] = json!({"stored_at": 1_700_000_000_000u64});
    let (status, forwarded) = sim.pay(&token, "pay_ok_1", &offline);
    assert_eq!(
        (status, &forwarded["payment_intent"]),
        (200, &json!(intent))
    );
    // Same key, different body.
    let mut changed = body.clone();
    changed["amount"] = json!(1001);
    let (status, conflict) = sim.pay(&token, "pay_ok_1", &changed);
    assert_eq!(status, 409);
    assert_eq!(conflict["error"]["code"], "idempotency_key_reused");
    assert_eq!(payments(&sim)[0]["requests"], 4);

    // The logs name message types and keys, never the PAN, payloads or tokens.
    let logs = sim.logs();
    assert!(
        logs.contains("reader rdr_sim_1 -> card_read request_id=pay_ok_1"),
        "{logs}"
    );
    assert!(logs.contains("POST /v1/payments 200"), "{logs}");
    assert!(logs.contains("idempotency_key=pay_ok_1"), "{logs}");
    assert!(!logs.contains("4242424242424242"));
    assert!(!logs.contains("4000000000000002"));
    assert!(!logs.contains(&token));
    assert!(!logs.contains(&payload));
}

#[test]
fn network_outage_is_a_connection_error_not_an_http_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(&dir.path().join("sim.db"));
    assert_eq!(
        request(sim.api, "GET", "/v1/health", &[], "")
            .expect("health")
            .0,
        200
    );

    // A keep-alive connection opened while up, with a request waiting on latency.
    let (status, state) = sim.admin(
        "POST",
        "/_sim/network",
        r#"{"down":false,"latency_ms":3000}"#,
    );
    assert_eq!(
        (status, state),
        (200, json!({"down": false, "latency_ms": 3000}))
    );
    let api = sim.api;
    let slow =
        std::thread::spawn(move || raw_request(api, "POST", "/v1/connection_tokens", &[], ""));
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let (status, state) = sim.admin("POST", "/_sim/network", r#"{"down":true}"#);
    assert_eq!(
        (status, state),
        (200, json!({"down": true, "latency_ms": 3000}))
    );
    let slow = slow.join().expect("thread");
    assert!(slow.is_err(), "open request must be aborted, got {slow:?}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "aborted at once, not after the latency"
    );

    // New connections: no HTTP answer at all.
    for _ in 0..3 {
        let result = raw_request(sim.api, "GET", "/v1/health", &[], "");
        assert!(result.is_err(), "expected a network error, got {result:?}");
    }
    let (status, state) = sim.admin("GET", "/_sim/network", "");
    assert_eq!((status, &state["down"]), (200, &json!(true)));
    // The POS port is not affected.
    assert_eq!(sim.admin("GET", "/_sim/config", "").0, 200);

    sim.admin("POST", "/_sim/network", r#"{"down":false,"latency_ms":0}"#);
    let (status, body) = request(sim.api, "GET", "/v1/health", &[], "").expect("health again");
    assert_eq!((status, body), (200, json!({"ok": true})));
    // Admin endpoints do not exist on the API port.
    assert_eq!(
        request(sim.api, "GET", "/_sim/payments", &[], "")
            .expect("404")
            .0,
        404
    );
}

#[test]
fn latency_answers_late_but_records_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(&dir.path().join("sim.db"));
    let token = sim.token();
    let mut ws = sim.paired_reader("rdr_sim_2", &token);
    let read = collect(&mut ws, "pay_late", 2500);
    sim.admin(
        "POST",
        "/_sim/network",
        r#"{"down":false,"latency_ms":1500}"#,
    );
    let api = sim.api;
    let auth = format!("Bearer {token}");
    let body = payment_body("pay_late", 2500, &read, "rdr_sim_2").to_string();
    let started = Instant::now();
    let late = std::thread::spawn(move || {
        raw_request(
            api,
            "POST",
            "/v1/payments",
            &[("Authorization", &auth), ("Idempotency-Key", "pay_late")],
            &body,
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    let list = payments(&sim);
    assert_eq!(list.len(), 1, "recorded before answering");
    assert_eq!(list[0]["key"], "pay_late");
    let (status, ..) = late.join().expect("thread").expect("late answer");
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

#[test]
fn reader_protocol_errors_and_faults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(&dir.path().join("sim.db"));
    let token = sim.token();

    // Unknown reader.
    assert_eq!(sim.admin("GET", "/readers/rdr_sim_9", "").0, 404);

    // Commands before hello.
    let mut ws = sim.reader("rdr_sim_1");
    send(
        &mut ws,
        json!({"type":"collect","request_id":"c0","amount":100,"currency":"usd"}),
    );
    let e = recv(&mut ws);
    assert_eq!(
        (&e["type"], &e["code"]),
        (&json!("error"), &json!("not_paired"))
    );
    assert_eq!(e["request_id"], "c0");
    // A pairing the backend never issued: pairing_refused, then close.
    send(
        &mut ws,
        json!({"type":"hello","protocol_version":2,"client":"t","pairing":"rpair_forged"}),
    );
    assert_eq!(recv(&mut ws)["code"], "pairing_refused");
    assert!(ends(&mut ws), "socket must close after a refused hello");
    // Nor the connection token, nor a pairing issued for another reader.
    let other_pairing = sim.pairing(&token, "rdr_sim_2");
    for credential in [token.as_str(), other_pairing.as_str()] {
        let mut ws = sim.reader("rdr_sim_1");
        send(
            &mut ws,
            json!({"type":"hello","protocol_version":2,"client":"t","pairing":credential}),
        );
        assert_eq!(recv(&mut ws)["code"], "pairing_refused");
        assert!(ends(&mut ws));
    }
    let pairing = sim.pairing(&token, "rdr_sim_1");

    // Wrong protocol version.
    let mut ws = sim.reader("rdr_sim_1");
    send(
        &mut ws,
        json!({"type":"hello","protocol_version":1,"client":"t","pairing":pairing}),
    );
    assert_eq!(recv(&mut ws)["code"], "unsupported_version");
    assert!(ends(&mut ws));

    // Paired; a second POS discovers it `in_use`, and its hello is refused with busy.
    let mut ws = sim.paired_reader("rdr_sim_1", &token);
    let mut other = sim.reader("rdr_sim_1");
    discover(&mut other, "in_use");
    let mut other = sim.reader("rdr_sim_1");
    send(
        &mut other,
        json!({"type":"hello","protocol_version":2,"client":"t","pairing":pairing}),
    );
    assert_eq!(recv(&mut other)["code"], "busy");
    assert!(ends(&mut other));
    // A wrong registration code is refused.
    let mut other = sim.reader("rdr_sim_1");
    send(
        &mut other,
        json!({"type":"hello","protocol_version":2,"client":"t","pairing":pairing,"registration_code":"nope"}),
    );
    assert_eq!(recv(&mut other)["code"], "not_paired");

    // Malformed, oversized and binary frames: error, connection kept.
    ws.send(Message::text("not json")).expect("send");
    let e = recv(&mut ws);
    assert_eq!(
        (&e["code"], &e["request_id"]),
        (&json!("invalid_message"), &Value::Null)
    );
    ws.send(Message::text(format!(
        r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#,
        "x".repeat(20_000)
    )))
    .expect("send");
    assert_eq!(recv(&mut ws)["code"], "invalid_message");
    ws.send(Message::binary(vec![1u8, 2, 3])).expect("send");
    assert_eq!(recv(&mut ws)["code"], "invalid_message");
    send(&mut ws, json!({"type":"ping","nonce":77}));
    assert_eq!(recv(&mut ws), json!({"type":"pong","nonce":77}));

    // Collect while collecting → busy; cancel → canceled and no card_read.
    send(
        &mut ws,
        json!({"type":"collect","request_id":"c1","amount":100,"currency":"usd"}),
    );
    assert_eq!(recv(&mut ws)["type"], "collect_started");
    send(
        &mut ws,
        json!({"type":"collect","request_id":"c2","amount":100,"currency":"usd"}),
    );
    let e = recv(&mut ws);
    assert_eq!(
        (&e["code"], &e["request_id"]),
        (&json!("busy"), &json!("c2"))
    );
    send(&mut ws, json!({"type":"cancel","request_id":"c1"}));
    assert_eq!(
        recv(&mut ws),
        json!({"type":"canceled","request_id":"c1","by":"pos"})
    );
    send(&mut ws, json!({"type":"cancel","request_id":"c1"}));
    let e = recv(&mut ws);
    assert_eq!(
        (&e["code"], &e["request_id"]),
        (&json!("invalid_message"), &json!("c1"))
    );
    // After the tap delay has passed, still no card_read for c1: the next frame is the pong.
    std::thread::sleep(Duration::from_millis(200));
    send(&mut ws, json!({"type":"ping","nonce":78}));
    assert_eq!(recv(&mut ws), json!({"type":"pong","nonce":78}));
    send(&mut ws, json!({"type":"clear_display","request_id":"x1"}));
    assert_eq!(recv(&mut ws), json!({"type":"ack","request_id":"x1"}));

    // Admin disconnect drops the socket; the reader is free again afterwards.
    let (status, body) = sim.admin("POST", "/_sim/readers/rdr_sim_1/disconnect", "");
    assert_eq!((status, body), (200, json!({"disconnected": true})));
    assert!(ends(&mut ws));
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.admin("GET", "/_sim/readers", "").1[0]["connected"] == true {
        assert!(Instant::now() < deadline, "reader never released");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut ws = sim.paired_reader("rdr_sim_1", &token);
    collect(&mut ws, "c3", 100);
    let screen = sim.admin("GET", "/_sim/readers/rdr_sim_1", "").1;
    assert_eq!(screen["screen"]["kind"], "result", "{screen}");
    assert_eq!(screen["screen"]["outcome"], "card_read");

    // The customer cancels on the reader.
    send(
        &mut ws,
        json!({"type":"collect","request_id":"c4","amount":100,"currency":"usd"}),
    );
    assert_eq!(recv(&mut ws)["type"], "collect_started");
    let screen = sim.admin("GET", "/_sim/readers/rdr_sim_1", "").1;
    assert_eq!(screen["screen"]["kind"], "waiting_for_card", "{screen}");
    let (status, _) = sim.admin("POST", "/_sim/readers/rdr_sim_1/cancel", "");
    assert_eq!(status, 200);
    let canceled = recv(&mut ws);
    assert_eq!(
        canceled,
        json!({"type":"canceled","request_id":"c4","by":"customer"})
    );

    // Another POS takes the reader over: the first is told `taken_over` and dropped.
    let mut second = sim.reader("rdr_sim_1");
    send(
        &mut second,
        json!({"type":"hello","protocol_version":2,"client":"t","pairing":pairing,"intent":"take_over"}),
    );
    assert_eq!(recv(&mut second)["type"], "hello_ack");
    assert_eq!(recv(&mut ws)["code"], "taken_over");
    assert!(ends(&mut ws));
}

#[test]
fn restart_keeps_the_card_key_and_the_idempotency_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("sim.db");
    let (token, body, first) = {
        let sim = Sim::start(&db);
        let token = sim.token();
        let mut ws = sim.paired_reader("rdr_sim_1", &token);
        let read = collect(&mut ws, "pay_keep", 1234);
        let body = payment_body("pay_keep", 1234, &read, "rdr_sim_1");
        let first = sim.pay(&token, "pay_keep", &body);
        assert_eq!(first.0, 200);
        let read = collect(&mut ws, "pay_keep_2", 1234);
        let later = payment_body("pay_keep_2", 1234, &read, "rdr_sim_1");
        (token, (body, later), first)
    };
    let (body, later) = body;
    let sim = Sim::start(&db);
    // Tokens and payment keys survive; a payload read before the restart still opens.
    assert_eq!(sim.pay(&token, "pay_keep", &body), first);
    let (status, _) = sim.pay(&token, "pay_keep_2", &later);
    assert_eq!(
        status, 200,
        "payload from the first run must decrypt after restart"
    );
    // The charged payloads are remembered too.
    let mut again = body.clone();
    again["id"] = json!("pay_keep_3");
    let (status, reused) = sim.pay(&token, "pay_keep_3", &again);
    assert_eq!(
        (status, &reused["error"]["code"]),
        (409, &json!("card_payload_reused"))
    );
    let list = payments(&sim);
    assert_eq!(list[0]["requests"], 2);
    assert_eq!(list.len(), 2);
}

#[test]
fn static_files_and_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).expect("mkdir");
    std::fs::write(www.join("index.html"), "<title>POS</title>").expect("write");
    std::fs::write(www.join("manifest.webmanifest"), "{}").expect("write");
    let missing_pkg = dir.path().join("no-pkg");
    let mut sim = Sim::start_with(
        &dir.path().join("sim.db"),
        &[
            "--www",
            www.to_str().expect("utf8"),
            "--pkg",
            missing_pkg.to_str().expect("utf8"),
            "--readers",
            "3",
        ],
    );
    assert_eq!(sim.ready["readers"].as_array().expect("readers").len(), 3);
    let (status, headers, body) = raw_request(sim.pos, "GET", "/", &[], "").expect("index");
    assert_eq!((status, body.as_str()), (200, "<title>POS</title>"));
    let content_type = header(&headers, http::header::CONTENT_TYPE);
    assert!(content_type.starts_with("text/html"), "{headers:?}");
    let cache_control = header(&headers, http::header::CACHE_CONTROL);
    assert!(cache_control.starts_with("no-cache"), "{headers:?}");
    let (status, headers, _) =
        raw_request(sim.pos, "GET", "/manifest.webmanifest", &[], "").expect("manifest");
    assert_eq!(status, 200);
    assert!(header(&headers, http::header::CONTENT_TYPE).starts_with("application/manifest+json"));
    let (status, ..) = raw_request(sim.pos, "GET", "/pkg/pos_terminal.js", &[], "").expect("pkg");
    assert_eq!(status, 404);

    let pid = sim.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = sim.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "pos-sim ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

#[test]
fn help_and_bad_arguments() {
    let out = Command::new(BIN).arg("--help").output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("pos-sim serve"));
    // The e2e tests look for this flag in `serve --help`.
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--tap-delay-ms"));
    // No subcommand: the usage, on stderr so stdout stays for the READY line.
    let out = Command::new(BIN).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: pos-sim"));
    assert!(out.stdout.is_empty());
    let out = Command::new(BIN)
        .args(["serve", "--readers", "x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no READY line on bad arguments");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'x'") && err.contains("--readers"), "{err}");
}

#[test]
fn scripted_faults_meet_the_next_payment_requests_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(&dir.path().join("sim.db"));
    let token = sim.token();
    let mut ws = sim.paired_reader("rdr_sim_1", &token);
    let read = collect(&mut ws, "pay_fault", 3100);
    let body = payment_body("pay_fault", 3100, &read, "rdr_sim_1").to_string();
    let (status, script) = sim.admin(
        "POST",
        "/_sim/faults",
        r#"{"faults":[{"kind":"status","status":503,"retry_after":7},{"kind":"html200"},
            {"kind":"not_json404"},{"kind":"reset_before"},{"kind":"reset_after"},
            {"kind":"delay","ms":800},{"kind":"hang"}]}"#,
    );
    assert_eq!(status, 200, "{script}");
    assert_eq!(script["faults"].as_array().map(Vec::len), Some(7));
    let auth = format!("Bearer {token}");
    let send = || {
        raw_request(
            sim.api,
            "POST",
            "/v1/payments",
            &[("Authorization", &auth), ("Idempotency-Key", "pay_fault")],
            &body,
        )
    };
    let (status, headers, _) = send().expect("503 answer");
    assert_eq!(status, 503);
    assert_eq!(header(&headers, http::header::RETRY_AFTER), "7");
    let (status, headers, text) = send().expect("html answer");
    assert_eq!(status, 200);
    assert!(header(&headers, http::header::CONTENT_TYPE).starts_with("text/html"));
    assert!(text.contains("<title>"));
    let (status, _, text) = send().expect("404 answer");
    assert_eq!((status, text.as_str()), (404, "Not Found"));
    assert!(payments(&sim).is_empty(), "nothing recorded so far");
    assert!(send().is_err(), "reset before recording");
    assert!(payments(&sim).is_empty());
    assert!(send().is_err(), "reset after recording");
    let list = payments(&sim);
    assert_eq!(list.len(), 1, "recorded, then reset");
    assert_eq!(list[0]["requests"], 1);
    let started = Instant::now();
    let (status, ..) = send().expect("late answer");
    assert_eq!(status, 200, "the stored first answer");
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(payments(&sim)[0]["requests"], 2, "per-key request count");
    // A hang: the client gives up, the backend never recorded it.
    let agent: Agent = Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(700)))
        .max_idle_connections(0)
        .build()
        .into();
    let hung = agent
        .post(format!("http://{}/v1/payments", sim.api))
        .header("Authorization", &auth)
        .header("Idempotency-Key", "pay_fault")
        .send(body.as_str());
    assert!(hung.is_err(), "no answer: {hung:?}");
    assert_eq!(payments(&sim)[0]["requests"], 2);
    let (_, script) = sim.admin("GET", "/_sim/faults", "");
    assert_eq!(script["faults"], json!([]), "script used up");
    let (status, ..) = send().expect("normal again");
    assert_eq!(status, 200);
    let (status, _) = sim.admin("POST", "/_sim/faults", r#"{"faults":[{"kind":"nope"}]}"#);
    assert_eq!(status, 400);
}

#[test]
fn card_payloads_are_bound_to_their_payment_and_charged_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(&dir.path().join("sim.db"));
    let token = sim.token();
    let mut ws = sim.paired_reader("rdr_sim_1", &token);
    let read = collect(&mut ws, "pay_bound", 1000);
    let body = payment_body("pay_bound", 1000, &read, "rdr_sim_1");

    // The payload replayed for another amount, currency, id or reader: refused, not recorded.
    let mut cases = Vec::new();
    for (field, value) in [
        ("amount", json!(99_000)),
        ("currency", json!("eur")),
        ("reader_id", json!("rdr_sim_2")),
    ] {
        let mut b = body.clone();
        b[field] = value;
        cases.push(("pay_bound", b));
    }
    let mut other_id = body.clone();
    other_id["id"] = json!("pay_thief");
    cases.push(("pay_thief", other_id));
    for (key, b) in &cases {
        let (status, resp) = sim.pay(&token, key, b);
        assert_eq!(status, 400, "{b}: {resp}");
        assert_eq!(resp["error"]["code"], "card_payload_mismatch", "{b}");
    }
    assert!(payments(&sim).is_empty(), "refusals record nothing");

    // The real payment goes through; the same payload under another key is refused.
    let (status, paid) = sim.pay(&token, "pay_bound", &body);
    assert_eq!(status, 200, "{paid}");
    let mut again = body.clone();
    again["id"] = json!("pay_bound_again");
    let (status, resp) = sim.pay(&token, "pay_bound_again", &again);
    assert_eq!(
        (status, &resp["error"]["code"]),
        (409, &json!("card_payload_reused"))
    );
    let list = payments(&sim);
    assert_eq!(list.len(), 1);
    assert_eq!(
        (&list[0]["key"], &list[0]["requests"]),
        (&json!("pay_bound"), &json!(1))
    );

    // A pairing credential is not a connection token.
    let pairing = sim.pairing(&token, "rdr_sim_2");
    assert!(pairing.starts_with("rpair_") && pairing.len() == 6 + 64);
    let read = collect(&mut ws, "pay_pairing_bearer", 1000);
    let (status, resp) = sim.pay(
        &pairing,
        "pay_pairing_bearer",
        &payment_body("pay_pairing_bearer", 1000, &read, "rdr_sim_1"),
    );
    assert_eq!(
        (status, &resp["error"]["code"]),
        (401, &json!("unauthorized"))
    );
    // Unknown reader ids get no pairing.
    let auth = format!("Bearer {token}");
    let (status, resp) = request(
        sim.api,
        "POST",
        "/v1/reader_pairings",
        &[("Authorization", auth.as_str())],
        r#"{"reader_id":"someone_else"}"#,
    )
    .expect("pairing");
    assert_eq!(
        (status, &resp["error"]["code"]),
        (404, &json!("reader_not_found"))
    );

    let logs = sim.logs();
    assert!(!logs.contains(&pairing), "pairing secrets are never logged");
    assert!(!logs.contains(read["card_payload"].as_str().expect("payload")));
}

#[test]
fn manual_payments_are_captured_or_canceled_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(&dir.path().join("sim.db"));
    let token = sim.token();
    let mut ws = sim.paired_reader("rdr_sim_1", &token);

    // Online, manual: captured; a second capture answers the same.
    let read = collect(&mut ws, "pay_cap_on", 1500);
    let mut body = payment_body("pay_cap_on", 1500, &read, "rdr_sim_1");
    body["capture_method"] = json!("manual");
    let (status, paid) = sim.pay(&token, "pay_cap_on", &body);
    assert_eq!((status, &paid["status"]), (200, &json!("requires_capture")));
    let first = sim.transition(&token, "pay_cap_on", "capture");
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(
        first.1,
        json!({"payment_intent": paid["payment_intent"], "status": "succeeded"})
    );
    assert_eq!(sim.transition(&token, "pay_cap_on", "capture"), first);
    let (status, resp) = sim.transition(&token, "pay_cap_on", "cancel");
    assert_eq!(
        (status, &resp["error"]["code"]),
        (409, &json!("payment_unexpected_state"))
    );

    // Collected offline and forwarded later, manual: captured the same way.
    let read = collect(&mut ws, "pay_cap_off", 2500);
    let mut body = payment_body("pay_cap_off", 2500, &read, "rdr_sim_1");
    body["capture_method"] = json!("manual");
    body["offline"] = json!({"stored_at": 1_700_000_000_000u64});
    let (status, paid) = sim.pay(&token, "pay_cap_off", &body);
    assert_eq!((status, &paid["status"]), (200, &json!("requires_capture")));
    let (status, captured) = sim.transition(&token, "pay_cap_off", "capture");
    assert_eq!((status, &captured["status"]), (200, &json!("succeeded")));

    // Canceled, then a capture is refused.
    let read = collect(&mut ws, "pay_void", 900);
    let mut body = payment_body("pay_void", 900, &read, "rdr_sim_1");
    body["capture_method"] = json!("manual");
    assert_eq!(sim.pay(&token, "pay_void", &body).0, 200);
    let canceled = sim.transition(&token, "pay_void", "cancel");
    assert_eq!(
        (canceled.0, &canceled.1["status"]),
        (200, &json!("canceled"))
    );
    assert_eq!(sim.transition(&token, "pay_void", "cancel"), canceled);
    let (status, resp) = sim.transition(&token, "pay_void", "capture");
    assert_eq!(
        (status, &resp["error"]["code"]),
        (409, &json!("payment_unexpected_state"))
    );

    // Unknown id; no token.
    let (status, resp) = sim.transition(&token, "pay_nobody", "capture");
    assert_eq!(
        (status, &resp["error"]["code"]),
        (404, &json!("payment_not_found"))
    );
    let (status, _) = request(sim.api, "POST", "/v1/payments/pay_void/capture", &[], "")
        .expect("capture without token");
    assert_eq!(status, 401);

    // What the backend saw.
    let list = payments(&sim);
    let row = |key: &str| {
        list.iter()
            .find(|p| p["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("no {key} in {list:?}"))
    };
    let on = row("pay_cap_on");
    assert_eq!(
        (&on["status"], &on["captures"], &on["cancels"]),
        (&json!("succeeded"), &json!(2), &json!(1))
    );
    assert_eq!(on["outcome"], "requires_capture", "the decision is kept");
    let off = row("pay_cap_off");
    assert_eq!(
        (&off["status"], &off["offline"]),
        (&json!("succeeded"), &json!(true))
    );
    let void = row("pay_void");
    assert_eq!(
        (&void["status"], &void["captures"], &void["cancels"]),
        (&json!("canceled"), &json!(1), &json!(2))
    );
}
