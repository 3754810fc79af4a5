use axum::http::Request;
use pos_protocol::backend::ErrorBody;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::card_crypto::CardData;

struct Harness {
    router: Router,
    state: ApiState,
    token: String,
}

async fn harness() -> Harness {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let card_key = store.card_key().expect("key");
    let state = ApiState { store, card_key };
    let router = router(state.clone());
    let (status, body) = send(&router, "POST", "/v1/connection_tokens", &[], "").await;
    assert_eq!(status, 200);
    let token = body["secret"].as_str().expect("secret").to_owned();
    Harness {
        router,
        state,
        token,
    }
}

async fn send(
    router: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Body::from(body.to_owned())).expect("request");
    let res = router.clone().oneshot(req).await.expect("response");
    let status = res.status().as_u16();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .expect("body");
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    (status, value)
}

impl Harness {
    /// A v2 payload sealed by reader `rdr_sim_1` for payment `id` of `amount` usd.
    fn payload(&self, id: &str, amount: u64, number: &str) -> String {
        self.payload_for("rdr_sim_1", id, amount, "usd", number)
    }

    fn payload_for(
        &self,
        reader: &str,
        id: &str,
        amount: u64,
        currency: &str,
        number: &str,
    ) -> String {
        let card = CardData {
            number: number.into(),
            exp_month: 12,
            exp_year: 2030,
        };
        let binding = CardBinding {
            payment_id: id.into(),
            amount,
            currency: currency.into(),
        };
        card_crypto::encrypt(&self.state.card_key, reader, &binding, &card).expect("encrypt")
    }

    fn body(&self, id: &str, amount: u64, number: &str) -> Value {
        json!({
            "id": id,
            "amount": amount,
            "currency": "usd",
            "capture_method": "automatic",
            "card_payload": self.payload(id, amount, number),
            "card": {"brand": "visa", "last4": &number[number.len() - 4..], "exp_month": 12, "exp_year": 2030},
            "reader_id": "rdr_sim_1",
            "offline": null,
            "metadata": {"order": "42"}
        })
    }

    async fn pay(&self, key: &str, body: &Value) -> (u16, Value) {
        let auth = format!("Bearer {}", self.token);
        send(
            &self.router,
            "POST",
            "/v1/payments",
            &[
                ("authorization", &auth),
                ("idempotency-key", key),
                ("content-type", "application/json"),
            ],
            &body.to_string(),
        )
        .await
    }

    fn requests_for(&self, key: &str) -> u64 {
        let list = self.state.store.list_payments().expect("list");
        list.iter()
            .find(|p| p.key == key)
            .map(|p| p.requests)
            .unwrap_or(0)
    }
}

fn error_code(body: &Value) -> String {
    let e: ErrorBody = serde_json::from_value(body.clone()).expect("ErrorBody");
    e.error.code
}

#[tokio::test]
async fn health_is_ok() {
    let h = harness().await;
    let (status, body) = send(&h.router, "GET", "/v1/health", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"ok": true}));
}

#[tokio::test]
async fn tokens_look_right_and_are_stored() {
    let h = harness().await;
    assert!(h.token.starts_with("pst_test_"));
    assert_eq!(h.token.len(), "pst_test_".len() + 32);
    assert!(h.state.store.token_exists(&h.token).expect("query"));
}

#[tokio::test]
async fn approved_payment_succeeds() {
    let h = harness().await;
    let (status, body) = h
        .pay("pay_ok", &h.body("pay_ok", 1000, "4242424242424242"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded");
    let intent = body["payment_intent"].as_str().expect("intent");
    assert!(intent.starts_with("pi_sim_") && intent.len() == 7 + 24);
    let list = h.state.store.list_payments().expect("list");
    assert_eq!(list[0].outcome, PaymentOutcome::Succeeded);
    assert!(!list[0].offline);
}

#[tokio::test]
async fn manual_capture_requires_capture() {
    let h = harness().await;
    let mut body = h.body("pay_manual", 1000, "4242424242424242");
    body["capture_method"] = json!("manual");
    let (status, body) = h.pay("pay_manual", &body).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "requires_capture");
}

#[tokio::test]
async fn test_cards_and_amounts_decline() {
    let h = harness().await;
    for (number, amount, code) in [
        ("4000000000000002", 1000, "generic_decline"),
        ("4000000000009995", 1000, "insufficient_funds"),
        ("4242424242424242", 1005, "generic_decline"),
        ("4242424242424242", 2055, "incorrect_pin"),
    ] {
        let key = format!("pay_{number}_{amount}");
        let (status, body) = h.pay(&key, &h.body(&key, amount, number)).await;
        assert_eq!(status, 402, "{number} {amount}: {body}");
        assert_eq!(error_code(&body), "card_declined");
        assert_eq!(body["error"]["decline_code"], code);
        assert_eq!(body["error"]["message"], "Your card was declined.");
    }
    let list = h.state.store.list_payments().expect("list");
    assert!(list.iter().all(|p| p.outcome == PaymentOutcome::Declined));
    assert_eq!(list[0].decline_code.as_deref(), Some("generic_decline"));
}

#[tokio::test]
async fn replay_returns_the_first_answer_and_conflict_is_409() {
    let h = harness().await;
    let body = h.body("pay_r", 1000, "4242424242424242");
    let first = h.pay("pay_r", &body).await;
    let again = h.pay("pay_r", &body).await;
    assert_eq!(first, again);
    assert_eq!(h.requests_for("pay_r"), 2);

    let mut offline = body.clone();
    offline["offline"] = json!({"stored_at": 1_700_000_000_000u64});
    assert_eq!(h.pay("pay_r", &offline).await, first);
    assert_eq!(h.requests_for("pay_r"), 3);

    let mut changed = body.clone();
    changed["amount"] = json!(2000);
    let (status, conflict) = h.pay("pay_r", &changed).await;
    assert_eq!(status, 409);
    assert_eq!(error_code(&conflict), "idempotency_key_reused");
    assert_eq!(h.requests_for("pay_r"), 4);
    assert_eq!(
        h.pay("pay_r", &body).await,
        first,
        "stored answer unchanged"
    );
}

#[tokio::test]
async fn declines_replay_too() {
    let h = harness().await;
    let body = h.body("pay_d", 1000, "4000000000000002");
    let first = h.pay("pay_d", &body).await;
    assert_eq!(first.0, 402);
    assert_eq!(h.pay("pay_d", &body).await, first);
}

#[tokio::test]
async fn offline_flag_is_recorded() {
    let h = harness().await;
    let mut body = h.body("pay_off", 1000, "4242424242424242");
    body["offline"] = json!({"stored_at": 5});
    assert_eq!(h.pay("pay_off", &body).await.0, 200);
    assert!(h.state.store.list_payments().expect("list")[0].offline);
}

/// A body as the SDK's in-page simulated reader makes it.
fn simulated_body(h: &Harness, id: &str, amount: u64, payload: &str) -> Value {
    let mut body = h.body(id, amount, "4242424242424242");
    body["card_payload"] = json!(payload);
    body["reader_id"] = json!("rdr_simulated");
    body
}

#[tokio::test]
async fn simulated_test_card_payloads_decide_like_sealed_ones() {
    let h = harness().await;
    let body = simulated_body(&h, "pay_sim_ok", 1000, "simulated:v1:5555555555554444");
    let first = h.pay("pay_sim_ok", &body).await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first.1["status"], "succeeded");
    // Idempotency is unchanged: the same answer again, one record, two requests.
    assert_eq!(h.pay("pay_sim_ok", &body).await, first);
    assert_eq!(h.requests_for("pay_sim_ok"), 2);
    let mut other = body.clone();
    other["amount"] = json!(1001);
    assert_eq!(h.pay("pay_sim_ok", &other).await.0, 409);

    for (key, amount, payload, code) in [
        (
            "pay_sim_card",
            1000,
            "simulated:v1:4000000000000002",
            "generic_decline",
        ),
        (
            "pay_sim_05",
            1005,
            "simulated:v1:4242424242424242",
            "generic_decline",
        ),
    ] {
        let (status, resp) = h.pay(key, &simulated_body(&h, key, amount, payload)).await;
        assert_eq!(status, 402, "{key}: {resp}");
        assert_eq!(error_code(&resp), "card_declined");
        assert_eq!(resp["error"]["decline_code"], code);
    }
    let list = h.state.store.list_payments().expect("list");
    let outcome = |key: &str| list.iter().find(|p| p.key == key).map(|p| p.outcome);
    assert_eq!(outcome("pay_sim_ok"), Some(PaymentOutcome::Succeeded));
    assert_eq!(outcome("pay_sim_card"), Some(PaymentOutcome::Declined));
    assert_eq!(outcome("pay_sim_05"), Some(PaymentOutcome::Declined));
}

#[tokio::test]
async fn simulated_payloads_other_than_test_cards_are_refused() {
    let h = harness().await;
    for (i, payload) in [
        "simulated:v1:4111111111111112",
        "simulated:v1:",
        "simulated:v1:4242424242424242 ",
        "simulated:v1:4242 4242 4242 4242",
        "simulated:v2:4242424242424242",
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("pay_sim_bad_{i}");
        let body = simulated_body(&h, &key, 1000, payload);
        let first = h.pay(&key, &body).await;
        assert_eq!(first.0, 400, "{payload:?}: {}", first.1);
        assert_eq!(error_code(&first.1), "invalid_card_payload", "{payload:?}");
        assert_eq!(h.pay(&key, &body).await, first, "{payload:?}");
    }
}

#[tokio::test]
async fn bad_card_payload_is_400_and_stored() {
    let h = harness().await;
    let mut body = h.body("pay_bad", 1000, "4242424242424242");
    body["card_payload"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let first = h.pay("pay_bad", &body).await;
    assert_eq!(first.0, 400);
    assert_eq!(error_code(&first.1), "invalid_card_payload");
    assert_eq!(h.pay("pay_bad", &body).await, first);
    assert_eq!(h.requests_for("pay_bad"), 2);
    let list = h.state.store.list_payments().expect("list");
    assert_eq!(list[0].outcome, PaymentOutcome::Failed);

    // A payload sealed by another reader is refused as bound to something else, and
    // nothing is stored for it.
    let mut body = h.body("pay_other", 1000, "4242424242424242");
    body["reader_id"] = json!("rdr_sim_2");
    let (status, resp) = h.pay("pay_other", &body).await;
    assert_eq!(
        (status, error_code(&resp).as_str()),
        (400, "card_payload_mismatch")
    );
    assert_eq!(h.requests_for("pay_other"), 0);
}

#[tokio::test]
async fn auth_is_required() {
    let h = harness().await;
    let body = h.body("pay_a", 1000, "4242424242424242").to_string();
    for auth in [None, Some("Bearer pst_test_unknown"), Some("Basic xyz")] {
        let mut headers = vec![("idempotency-key", "pay_a")];
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        let (status, resp) = send(&h.router, "POST", "/v1/payments", &headers, &body).await;
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(error_code(&resp), "unauthorized");
    }
    assert_eq!(h.requests_for("pay_a"), 0, "refused requests store nothing");
}

#[tokio::test]
async fn invalid_requests_are_400() {
    let h = harness().await;
    let auth = format!("Bearer {}", h.token);
    let good = h.body("pay_v", 1000, "4242424242424242");

    // Missing key.
    let (status, resp) = send(
        &h.router,
        "POST",
        "/v1/payments",
        &[("authorization", &auth)],
        &good.to_string(),
    )
    .await;
    assert_eq!(
        (status, error_code(&resp).as_str()),
        (400, "invalid_request")
    );

    // Key differs from id.
    let (status, _) = h.pay("pay_other", &good).await;
    assert_eq!(status, 400);

    let mut cases: Vec<Value> = Vec::new();
    for (field, value) in [
        ("amount", json!(0)),
        ("amount", json!(100_000_000u64)),
        ("amount", json!(-5)),
        ("currency", json!("USD")),
        ("currency", json!("usdx")),
        ("capture_method", json!("later")),
        ("unknown_field", json!(1)),
    ] {
        let mut b = good.clone();
        b[field] = value;
        cases.push(b);
    }
    let mut b = good.clone();
    let many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    b["metadata"] = Value::Object(many);
    cases.push(b);
    let mut b = good.clone();
    b["card"]["last4"] = json!("4242424242424242");
    cases.push(b);
    for b in &cases {
        let (status, resp) = h.pay("pay_v", b).await;
        assert_eq!(status, 400, "{b}");
        assert_eq!(error_code(&resp), "invalid_request");
    }

    let bad_id = "bad id!";
    let mut b = good.clone();
    b["id"] = json!(bad_id);
    assert_eq!(h.pay(bad_id, &b).await.0, 400);

    let (status, resp) = send(
        &h.router,
        "POST",
        "/v1/payments",
        &[("authorization", &auth), ("idempotency-key", "pay_v")],
        "{not json",
    )
    .await;
    assert_eq!(
        (status, error_code(&resp).as_str()),
        (400, "invalid_request")
    );

    assert_eq!(h.requests_for("pay_v"), 0);
    // The good body still works afterwards.
    assert_eq!(h.pay("pay_v", &good).await.0, 200);
}

#[tokio::test]
async fn the_largest_body_the_sdk_sends_fits() {
    let h = harness().await;
    let mut b = h.body("pay_big", 1000, "4242424242424242");
    // 50 values of 500 four-byte characters, keys of 40: what the SDK allows at most.
    let many: serde_json::Map<String, Value> = (0..50)
        .map(|i| (format!("{i:0>40}"), json!("\u{1F600}".repeat(500))))
        .collect();
    b["metadata"] = Value::Object(many);
    assert!(b.to_string().len() > 64 * 1024);
    let (status, resp) = h.pay("pay_big", &b).await;
    assert_eq!(status, 200, "{resp}");
}

#[tokio::test]
async fn a_poisoned_lock_does_not_fail_later_requests() {
    let h = harness().await;
    h.state.store.poison();
    let b = h.body("pay_after_panic", 1000, "4242424242424242");
    assert_eq!(h.pay("pay_after_panic", &b).await.0, 200);
    assert_eq!(h.requests_for("pay_after_panic"), 1);
}

#[tokio::test]
async fn a_payload_sealed_for_another_amount_id_currency_or_reader_is_a_mismatch() {
    let h = harness().await;
    let number = "4242424242424242";
    let cases = [
        // (what the payload was sealed for) → sent as pay_m_*, 1000 usd, rdr_sim_1
        (
            "amount",
            h.payload_for("rdr_sim_1", "pay_m_amount", 999, "usd", number),
        ),
        (
            "id",
            h.payload_for("rdr_sim_1", "pay_m_other", 1000, "usd", number),
        ),
        (
            "currency",
            h.payload_for("rdr_sim_1", "pay_m_currency", 1000, "eur", number),
        ),
        (
            "reader",
            h.payload_for("rdr_sim_2", "pay_m_reader", 1000, "usd", number),
        ),
    ];
    for (what, payload) in cases {
        let key = format!("pay_m_{what}");
        let mut body = h.body(&key, 1000, number);
        body["card_payload"] = json!(payload);
        let (status, resp) = h.pay(&key, &body).await;
        assert_eq!(status, 400, "{what}: {resp}");
        assert_eq!(error_code(&resp), codes::CARD_PAYLOAD_MISMATCH, "{what}");
        assert!(!resp.to_string().contains(number));
        // Nothing stored: the key is not burned for the real payment.
        assert_eq!(h.requests_for(&key), 0, "{what}");
    }
    // A payload for 1000 replayed with the amount raised: the same refusal; the real
    // payment then goes through under its own key.
    let real = h.body("pay_m_real", 1000, number);
    let mut raised = real.clone();
    raised["amount"] = json!(50_000);
    let (status, resp) = h.pay("pay_m_real", &raised).await;
    assert_eq!(
        (status, error_code(&resp).as_str()),
        (400, "card_payload_mismatch")
    );
    assert_eq!(h.pay("pay_m_real", &real).await.0, 200);
}

#[tokio::test]
async fn a_payload_charged_under_one_key_is_refused_under_another() {
    let h = harness().await;
    for number in ["4242424242424242", "4000000000000002"] {
        let first = h.body("pay_once", 1000, number);
        let key = format!("pay_once_{number}");
        let mut first = first.clone();
        first["id"] = json!(key);
        // Sealed for this id so that the first charge is a good one.
        first["card_payload"] = json!(h.payload(&key, 1000, number));
        let answer = h.pay(&key, &first).await;
        assert!(answer.0 == 200 || answer.0 == 402, "{answer:?}");
        // Same key again: the idempotent replay, not a reuse.
        assert_eq!(h.pay(&key, &first).await, answer);

        // The same payload under another key and id (the binding would refuse it too, but
        // the reuse is what is reported, and nothing is stored for it).
        let other_key = format!("{key}_again");
        let mut again = first.clone();
        again["id"] = json!(other_key);
        let (status, resp) = h.pay(&other_key, &again).await;
        assert_eq!(status, 409, "{resp}");
        assert_eq!(error_code(&resp), codes::CARD_PAYLOAD_REUSED);
        assert_eq!(h.requests_for(&other_key), 0);
        assert_eq!(h.requests_for(&key), 2, "charged once");
    }
    // Simulated test-card payloads are the same text every time: not a reuse.
    for key in ["pay_sim_a", "pay_sim_b"] {
        let body = simulated_body(&h, key, 1000, "simulated:v1:4242424242424242");
        assert_eq!(h.pay(key, &body).await.0, 200, "{key}");
    }
}

#[tokio::test]
async fn unbound_v1_payloads_are_refused() {
    use base64::Engine as _;

    let h = harness().await;
    let raw = crate::seal::seal_with_nonce(
        h.state.card_key.as_bytes(),
        [3u8; crate::seal::NONCE_LEN],
        br#"{"number":"4242424242424242","exp_month":12,"exp_year":2030}"#,
        b"pos-sim/card/v1|rdr_sim_1",
    )
    .expect("seal");
    let mut body = h.body("pay_v1", 1000, "4242424242424242");
    body["card_payload"] = json!(base64::engine::general_purpose::STANDARD.encode(raw));
    let (status, resp) = h.pay("pay_v1", &body).await;
    assert_eq!(
        (status, error_code(&resp).as_str()),
        (400, "invalid_card_payload")
    );
}

impl Harness {
    async fn pair(&self, auth: Option<&str>, body: &str) -> (u16, Value) {
        let bearer = auth.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(b) = &bearer {
            headers.push(("authorization", b));
        }
        send(&self.router, "POST", "/v1/reader_pairings", &headers, body).await
    }

    async fn transition(&self, id: &str, action: &str) -> (u16, Value) {
        let auth = format!("Bearer {}", self.token);
        let path = format!("/v1/payments/{id}/{action}");
        send(&self.router, "POST", &path, &[("authorization", &auth)], "").await
    }

    fn record(&self, key: &str) -> crate::store::PaymentRecord {
        let list = self.state.store.list_payments().expect("list");
        list.into_iter().find(|p| p.key == key).expect("record")
    }
}

#[tokio::test]
async fn pairings_are_issued_for_one_reader_and_expire() {
    let h = harness().await;
    let token = h.token.clone();
    let (status, pairing) = h.pair(Some(&token), r#"{"reader_id":"rdr_sim_1"}"#).await;
    assert_eq!(status, 200, "{pairing}");
    assert_eq!(pairing["reader_id"], "rdr_sim_1");
    let secret = pairing["secret"].as_str().expect("secret");
    let hex = secret.strip_prefix("rpair_").expect("prefix");
    assert_eq!(hex.len(), 64);
    assert!(hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let expires_at = pairing["expires_at"].as_u64().expect("expires_at");
    let now = now_ms();
    assert!(
        expires_at > now + pairing::PAIRING_TTL_MS - 60_000
            && expires_at <= now + pairing::PAIRING_TTL_MS
    );

    let store = &h.state.store;
    assert!(store
        .pairing_valid("rdr_sim_1", secret, now)
        .expect("query"));
    assert!(store
        .pairing_valid("rdr_sim_1", secret, expires_at - 1)
        .expect("query"));
    assert!(
        !store
            .pairing_valid("rdr_sim_1", secret, expires_at)
            .expect("query"),
        "expired"
    );
    assert!(
        !store
            .pairing_valid("rdr_sim_2", secret, now)
            .expect("query"),
        "other reader"
    );
    assert!(
        !store
            .pairing_valid("rdr_sim_1", &token, now)
            .expect("query"),
        "a token is not a pairing"
    );
    assert!(!store
        .pairing_valid("rdr_sim_1", "rpair_00", now)
        .expect("query"));
    assert!(!store.pairing_valid("rdr_sim_1", "", now).expect("query"));

    // Each request issues a new secret; both stay valid.
    let (_, second) = h.pair(Some(&token), r#"{"reader_id":"rdr_sim_1"}"#).await;
    assert_ne!(second["secret"], pairing["secret"]);
    assert!(store
        .pairing_valid("rdr_sim_1", secret, now)
        .expect("query"));
}

#[tokio::test]
async fn pairings_need_a_token_and_a_reader_id() {
    let h = harness().await;
    let token = h.token.clone();
    for auth in [None, Some("pst_test_unknown")] {
        let (status, resp) = h.pair(auth, r#"{"reader_id":"rdr_sim_1"}"#).await;
        assert_eq!((status, error_code(&resp).as_str()), (401, "unauthorized"));
    }
    for body in [
        "",
        "{}",
        r#"{"reader_id":1}"#,
        r#"{"reader_id":"rdr_sim_1","x":1}"#,
    ] {
        let (status, resp) = h.pair(Some(&token), body).await;
        assert_eq!(
            (status, error_code(&resp).as_str()),
            (400, "invalid_request"),
            "{body}"
        );
    }
    for id in [
        "",
        "reader_1",
        "rdr_",
        "rdr_a b",
        &format!("rdr_{}", "x".repeat(61)),
    ] {
        let body = json!({ "reader_id": id }).to_string();
        let (status, resp) = h.pair(Some(&token), &body).await;
        assert_eq!(
            (status, error_code(&resp).as_str()),
            (404, "reader_not_found"),
            "{id}"
        );
    }
}

#[tokio::test]
async fn a_pairing_secret_authorises_nothing_on_the_backend() {
    let h = harness().await;
    let token = h.token.clone();
    let (_, pairing) = h.pair(Some(&token), r#"{"reader_id":"rdr_sim_1"}"#).await;
    let secret = pairing["secret"].as_str().expect("secret").to_owned();
    let auth = format!("Bearer {secret}");
    let body = h.body("pay_pair", 1000, "4242424242424242").to_string();
    let headers = [
        ("authorization", auth.as_str()),
        ("idempotency-key", "pay_pair"),
    ];
    let (status, resp) = send(&h.router, "POST", "/v1/payments", &headers, &body).await;
    assert_eq!((status, error_code(&resp).as_str()), (401, "unauthorized"));
    assert_eq!(h.requests_for("pay_pair"), 0);
    // Nor can it issue pairings, or capture.
    let (status, _) = h.pair(Some(&secret), r#"{"reader_id":"rdr_sim_1"}"#).await;
    assert_eq!(status, 401);
    assert_eq!(
        h.pay("pay_pair", &h.body("pay_pair", 1000, "4242424242424242"))
            .await
            .0,
        200
    );
    let (status, _) = send(
        &h.router,
        "POST",
        "/v1/payments/pay_pair/capture",
        &[("authorization", auth.as_str())],
        "",
    )
    .await;
    assert_eq!(status, 401);
}

fn manual(h: &Harness, id: &str) -> Value {
    let mut body = h.body(id, 1000, "4242424242424242");
    body["capture_method"] = json!("manual");
    body
}

#[tokio::test]
async fn capture_is_idempotent() {
    let h = harness().await;
    let (status, paid) = h.pay("pay_cap", &manual(&h, "pay_cap")).await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (200, Some("requires_capture"))
    );
    assert_eq!(
        h.record("pay_cap").status,
        Some(PaymentStatus::RequiresCapture)
    );

    let first = h.transition("pay_cap", "capture").await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first.1["status"], "succeeded");
    assert_eq!(first.1["payment_intent"], paid["payment_intent"]);
    assert_eq!(
        h.transition("pay_cap", "capture").await,
        first,
        "same answer"
    );
    let record = h.record("pay_cap");
    assert_eq!(record.status, Some(PaymentStatus::Succeeded));
    assert_eq!((record.captures, record.cancels), (2, 0));
    assert_eq!(
        record.outcome,
        PaymentOutcome::RequiresCapture,
        "the decision is kept"
    );

    // Canceling a captured payment is refused.
    let (status, resp) = h.transition("pay_cap", "cancel").await;
    assert_eq!(
        (status, error_code(&resp).as_str()),
        (409, "payment_unexpected_state")
    );
    assert_eq!(h.record("pay_cap").status, Some(PaymentStatus::Succeeded));
}

#[tokio::test]
async fn cancel_is_idempotent_and_a_canceled_payment_is_not_captured() {
    let h = harness().await;
    let body = manual(&h, "pay_void");
    assert_eq!(h.pay("pay_void", &body).await.0, 200);
    let first = h.transition("pay_void", "cancel").await;
    assert_eq!(
        (first.0, first.1["status"].as_str()),
        (200, Some("canceled"))
    );
    assert_eq!(h.transition("pay_void", "cancel").await, first);
    let (status, resp) = h.transition("pay_void", "capture").await;
    assert_eq!(
        (status, error_code(&resp).as_str()),
        (409, "payment_unexpected_state")
    );
    let record = h.record("pay_void");
    assert_eq!(record.status, Some(PaymentStatus::Canceled));
    assert_eq!((record.captures, record.cancels), (1, 2));
    // The payment's own replay keeps its first answer.
    let (status, replay) = h.pay("pay_void", &body).await;
    assert_eq!(
        (status, replay["status"].as_str()),
        (200, Some("requires_capture"))
    );
}

#[tokio::test]
async fn capture_of_unknown_automatic_and_declined_payments() {
    let h = harness().await;
    for action in ["capture", "cancel"] {
        let (status, resp) = h.transition("pay_nope", action).await;
        assert_eq!(
            (status, error_code(&resp).as_str()),
            (404, "payment_not_found")
        );
    }
    // Automatic: already succeeded; capture says so, cancel is refused.
    assert_eq!(
        h.pay("pay_auto", &h.body("pay_auto", 1000, "4242424242424242"))
            .await
            .0,
        200
    );
    let (status, resp) = h.transition("pay_auto", "capture").await;
    assert_eq!((status, resp["status"].as_str()), (200, Some("succeeded")));
    let (status, resp) = h.transition("pay_auto", "cancel").await;
    assert_eq!(
        (status, error_code(&resp).as_str()),
        (409, "payment_unexpected_state")
    );
    // Declined: nothing to capture or cancel.
    let mut declined = manual(&h, "pay_no");
    declined["card_payload"] = json!(h.payload("pay_no", 1000, "4000000000000002"));
    assert_eq!(h.pay("pay_no", &declined).await.0, 402);
    for action in ["capture", "cancel"] {
        let (status, resp) = h.transition("pay_no", action).await;
        assert_eq!(
            (status, error_code(&resp).as_str()),
            (409, "payment_unexpected_state")
        );
    }
    assert_eq!(h.record("pay_no").status, None);
    // Without the token: 401, nothing counted.
    let (status, _) = send(&h.router, "POST", "/v1/payments/pay_auto/capture", &[], "").await;
    assert_eq!(status, 401);
    assert_eq!(h.record("pay_auto").captures, 1);
}

#[tokio::test]
async fn a_forwarded_offline_manual_payment_is_captured() {
    let h = harness().await;
    let mut body = manual(&h, "pay_fwd");
    body["offline"] = json!({"stored_at": 1_700_000_000_000u64});
    let (status, paid) = h.pay("pay_fwd", &body).await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (200, Some("requires_capture"))
    );
    assert!(h.record("pay_fwd").offline);
    let first = h.transition("pay_fwd", "capture").await;
    assert_eq!(
        (first.0, first.1["status"].as_str()),
        (200, Some("succeeded"))
    );
    assert_eq!(h.transition("pay_fwd", "capture").await, first);
}

#[tokio::test]
async fn a_reader_charges_like_the_api_and_once_per_key() {
    let h = harness().await;
    let body: PaymentBody =
        serde_json::from_value(h.body("pay_rdr", 1000, "4242424242424242")).expect("body");
    let charge = charge_from_reader(&h.state, &body);
    let ForwardResult::Approved {
        payment_intent,
        status,
    } = charge.clone()
    else {
        panic!("expected approved, got {charge:?}");
    };
    assert_eq!(status, PaymentStatus::Succeeded);
    // The same payment by HTTP (the SDK's attempt arriving late): the same answer.
    let (code, resp) = h
        .pay("pay_rdr", &serde_json::to_value(&body).expect("json"))
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        resp["payment_intent"].as_str(),
        Some(payment_intent.as_str())
    );
    assert_eq!(charge_from_reader(&h.state, &body), charge);
    assert_eq!(h.requests_for("pay_rdr"), 3, "three requests, charged once");
    assert_eq!(h.state.store.list_payments().expect("list").len(), 1);

    let declined: PaymentBody =
        serde_json::from_value(h.body("pay_rdr_no", 1000, "4000000000009995")).expect("body");
    assert_eq!(
        charge_from_reader(&h.state, &declined),
        ForwardResult::Declined {
            decline_code: "insufficient_funds".into()
        }
    );

    let mut raised = body.clone();
    raised.id = "pay_rdr_raised".into();
    let ForwardResult::Rejected { code, .. } = charge_from_reader(&h.state, &raised) else {
        panic!("expected a refusal");
    };
    assert_eq!(code, codes::CARD_PAYLOAD_REUSED);
    let mut bad = body.clone();
    bad.currency = "USD".into();
    let ForwardResult::Rejected { code, .. } = charge_from_reader(&h.state, &bad) else {
        panic!("expected a refusal");
    };
    assert_eq!(code, codes::INVALID_REQUEST);
    let mut mismatch: PaymentBody =
        serde_json::from_value(h.body("pay_rdr_m", 1000, "4242424242424242")).expect("body");
    mismatch.amount = 10;
    let ForwardResult::Rejected { code, .. } = charge_from_reader(&h.state, &mismatch) else {
        panic!("expected a refusal");
    };
    assert_eq!(code, codes::CARD_PAYLOAD_MISMATCH);
}

#[tokio::test]
async fn unknown_paths_are_json_404() {
    let h = harness().await;
    let (status, body) = send(&h.router, "GET", "/v1/nope", &[], "").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "not_found");
    let (status, body) = send(&h.router, "GET", "/v1/payments", &[], "").await;
    assert_eq!(status, 405);
    assert_eq!(error_code(&body), "invalid_request");
}

#[tokio::test]
async fn cors_preflight_is_allowed() {
    let h = harness().await;
    let req = Request::builder()
        .method("OPTIONS")
        .uri("/v1/payments")
        .header("origin", "http://127.0.0.1:9999")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,idempotency-key",
        )
        .body(Body::empty())
        .expect("request");
    let res = h.router.clone().oneshot(req).await.expect("response");
    assert!(res.status().is_success());
    let headers = res.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(allowed.contains("idempotency-key") && allowed.contains("authorization"));
}
