//! `/_sim/*` on the POS port: configuration, reader control, network faults and what the
//! backend received. Never served on the API port.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use tower_http::cors::{Any, CorsLayer};

use crate::card_crypto::is_card_number;
use crate::cli::parse_country;
use crate::http_util::{error, json};
use crate::network::{Fault, Network};
use crate::reader_store::Report;
use crate::readers::{Fault as ReaderFault, NextCard, Reader, ReaderAddress, Readers};
use crate::store::Store;
use pos_protocol::reader::ForwardResult;
use pos_protocol::EntryMode;

#[derive(Clone)]
pub struct AdminState {
    pub readers: Arc<Readers>,
    pub network: Network,
    pub store: Arc<Store>,
    pub config: Arc<SimConfig>,
}

/// `GET /_sim/config`.
#[derive(Debug, Clone, Serialize)]
pub struct SimConfig {
    pub backend_url: String,
    pub readers: Vec<ReaderAddress>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/_sim/config", get(config))
        .route("/_sim/readers", get(list_readers))
        .route("/_sim/readers/{id}", get(show_reader))
        .route("/_sim/readers/{id}/card", post(set_card))
        .route("/_sim/readers/{id}/fault", post(set_fault))
        .route("/_sim/readers/{id}/cancel", post(customer_cancel))
        .route("/_sim/readers/{id}/disconnect", post(disconnect))
        .route("/_sim/readers/{id}/report", post(unbacked_report))
        .route("/_sim/readers/{id}/network", post(set_reader_network))
        .route("/_sim/readers/{id}/reboot", post(reboot))
        .route("/_sim/readers/{id}/location", post(set_location))
        .route("/_sim/network", get(get_network).post(set_network))
        .route("/_sim/payments", get(payments))
        .route("/_sim/faults", get(get_faults).post(set_faults))
        // Test pages served from other loopback origins (wasm-bindgen-test's) drive it too.
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
                .allow_headers([header::CONTENT_TYPE]),
        )
        .with_state(state)
}

/// A handler's answer: `Err` is a refusal, answered as is, so `?` can return it early.
type Answer = Result<Response, Response>;

/// The reader `id`, or the 404 to answer.
// The error is the handler's answer, returned as is once per request: no need to box it.
#[allow(clippy::result_large_err)]
fn reader_or_404<'a>(state: &'a AdminState, id: &str) -> Result<&'a Arc<Reader>, Response> {
    state
        .readers
        .get(id)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "not_found", "no such reader"))
}

/// The request body as `T`, or the 400 that says what the body must be.
#[allow(clippy::result_large_err)]
fn body_or_400<T: serde::de::DeserializeOwned>(body: &[u8], usage: &str) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "invalid_request", usage))
}

/// A request to reader `id` with a body: the reader and the body as `T`, or the 404 (no such
/// reader, looked up first) or the 400 (with `usage`) to answer.
#[allow(clippy::result_large_err)]
fn reader_request<'a, T: serde::de::DeserializeOwned>(
    state: &'a AdminState,
    id: &str,
    body: &[u8],
    usage: &str,
) -> Result<(&'a Arc<Reader>, T), Response> {
    let reader = reader_or_404(state, id)?;
    Ok((reader, body_or_400(body, usage)?))
}

/// 200 with what the reader shows now.
fn reader_view(reader: &Reader) -> Response {
    json(StatusCode::OK, &reader.view())
}

async fn config(State(state): State<AdminState>) -> Response {
    json(StatusCode::OK, state.config.as_ref())
}

async fn list_readers(State(state): State<AdminState>) -> Response {
    let views: Vec<_> = state.readers.all().iter().map(|r| r.view()).collect();
    json(StatusCode::OK, &views)
}

/// `GET /_sim/readers/{id}`: one reader, with what its screen shows.
async fn show_reader(State(state): State<AdminState>, Path(id): Path<String>) -> Answer {
    Ok(reader_view(reader_or_404(&state, &id)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    kind: ReaderFault,
}

/// `POST /_sim/readers/{id}/fault {"kind": …}`: the reader misbehaves once (tests).
async fn set_fault(State(state): State<AdminState>, Path(id): Path<String>, body: Bytes) -> Answer {
    let (reader, FaultRequest { kind }) = reader_request(
        &state,
        &id,
        &body,
        r#"body must be {"kind":"garbage|truncated|huge|wrong_request|wrong_version|silent"}"#,
    )?;
    reader.set_fault(kind);
    Ok(reader_view(reader))
}

#[derive(Serialize)]
struct Canceled {
    sent: bool,
}

/// `POST /_sim/readers/{id}/cancel`: the customer presses cancel on the reader.
async fn customer_cancel(State(state): State<AdminState>, Path(id): Path<String>) -> Answer {
    let sent = reader_or_404(&state, &id)?.customer_cancel();
    Ok(json(StatusCode::OK, &Canceled { sent }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardRequest {
    number: String,
    #[serde(default)]
    entry: Option<EntryMode>,
    #[serde(default)]
    pin: Option<bool>,
}

async fn set_card(State(state): State<AdminState>, Path(id): Path<String>, body: Bytes) -> Answer {
    let (reader, CardRequest { number, entry, pin }) = reader_request(
        &state,
        &id,
        &body,
        r#"body must be {"number":"<12 to 19 digits>","entry"?:"chip|contactless|swipe","pin"?:bool}"#,
    )?;
    if !is_card_number(&number) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "number must be 12 to 19 digits",
        ));
    }
    reader.set_next_card(NextCard::new(number, entry, pin));
    Ok(reader_view(reader))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReaderNetworkRequest {
    down: bool,
}

/// `POST /_sim/readers/{id}/network {"down": bool}`: cuts or restores the reader's own link
/// to the backend (the POS's link, `/_sim/network`, is another switch).
async fn set_reader_network(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let (reader, ReaderNetworkRequest { down }) =
        reader_request(&state, &id, &body, r#"body must be {"down":bool}"#)?;
    reader.set_link_down(down);
    Ok(reader_view(reader))
}

/// `POST /_sim/readers/{id}/reboot`: the socket drops, connections are refused while it
/// boots, its stored payments survive.
async fn reboot(State(state): State<AdminState>, Path(id): Path<String>) -> Answer {
    let reader = reader_or_404(&state, &id)?;
    reader.reboot();
    Ok(reader_view(reader))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocationRequest {
    country: String,
}

/// `POST /_sim/readers/{id}/location {"country": "FR"}`: moves the reader (offline rules).
async fn set_location(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let usage = r#"body must be {"country":"<ISO 3166-1 alpha-2, e.g. FR>"}"#;
    let (reader, LocationRequest { country }) = reader_request(&state, &id, &body, usage)?;
    let country = parse_country(&country)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "invalid_request", usage))?;
    reader.set_country(&country);
    Ok(reader_view(reader))
}

#[derive(Serialize)]
struct Disconnected {
    disconnected: bool,
}

async fn disconnect(State(state): State<AdminState>, Path(id): Path<String>) -> Answer {
    let disconnected = reader_or_404(&state, &id)?.kill_session();
    Ok(json(StatusCode::OK, &Disconnected { disconnected }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportRequest {
    payment_id: String,
    amount: u64,
    currency: String,
    result: ForwardResult,
}

#[derive(Serialize)]
struct ReportSent {
    sent: bool,
}

/// `POST /_sim/readers/{id}/report {"payment_id", "amount", "currency", "result"}`: the reader
/// sends the connected POS a `forwarded` report for a payment it never stored (a lying
/// reader). Nothing is stored or charged.
async fn unbacked_report(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let usage = r#"body must be {"payment_id":"pay_…","amount":1,"currency":"usd","result":{"outcome":"declined","decline_code":"…"}}"#;
    let (reader, r) = reader_request::<ReportRequest>(&state, &id, &body, usage)?;
    let sent = reader.send_unbacked_report(Report {
        payment_id: r.payment_id,
        amount: r.amount,
        currency: r.currency,
        stored_at: crate::util::now_ms(),
        result: r.result,
    });
    Ok(json(StatusCode::OK, &ReportSent { sent }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkRequest {
    down: bool,
    #[serde(default)]
    latency_ms: Option<u64>,
}

async fn get_network(State(state): State<AdminState>) -> Response {
    json(StatusCode::OK, &state.network.get())
}

async fn set_network(State(state): State<AdminState>, body: Bytes) -> Answer {
    let request: NetworkRequest =
        body_or_400(&body, r#"body must be {"down":bool,"latency_ms"?:number}"#)?;
    let now = state.network.set(request.down, request.latency_ms);
    eprintln!(
        "[pos-sim] network: down={} latency_ms={}",
        now.down, now.latency_ms
    );
    Ok(json(StatusCode::OK, &now))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsRequest {
    faults: Vec<Fault>,
}

#[derive(Serialize)]
struct FaultsView {
    faults: Vec<Fault>,
    /// Bytes of the last `huge` answer the client took (with what the socket buffers held).
    huge_bytes_sent: u64,
}

async fn get_faults(State(state): State<AdminState>) -> Response {
    json(
        StatusCode::OK,
        &FaultsView {
            faults: state.network.faults(),
            huge_bytes_sent: state.network.huge_bytes_sent(),
        },
    )
}

/// `POST /_sim/faults {"faults":[{"kind":"status","status":503,"retry_after":2}, …]}`
/// replaces the script the next `POST /v1/payments` requests follow, one fault each.
async fn set_faults(State(state): State<AdminState>, body: Bytes) -> Response {
    let request = match serde_json::from_slice::<FaultsRequest>(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("body must be {{\"faults\":[{{\"kind\":…}}]}}: {e}"),
            )
        }
    };
    eprintln!("[pos-sim] faults: {:?}", request.faults);
    state.network.set_faults(request.faults);
    get_faults(State(state)).await
}

async fn payments(State(state): State<AdminState>) -> Response {
    let store = state.store.clone();
    let listed = tokio::task::spawn_blocking(move || store.list_payments()).await;
    match listed {
        Ok(Ok(list)) => json(StatusCode::OK, &list),
        Ok(Err(e)) => {
            eprintln!("[pos-sim] admin: listing payments failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "storage failed",
            )
        }
        Err(e) => {
            eprintln!("[pos-sim] admin: listing payments failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "listing failed",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::Request;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    use super::*;
    use crate::api::ApiState;
    use crate::reader_store::ReaderStore;
    use crate::readers::ReadersSetup;

    fn app() -> (Router, AdminState) {
        let store = Arc::new(Store::open_in_memory().expect("store"));
        let card_key = store.card_key().expect("key");
        let readers = Arc::new(Readers::new(ReadersSetup {
            count: 2,
            ws_base: "ws://127.0.0.1:1".into(),
            api: ApiState {
                store: store.clone(),
                card_key,
            },
            store: Arc::new(ReaderStore::open_in_memory().expect("reader store")),
            tap_delay: Duration::from_millis(1),
            country: "US".into(),
        }));
        let state = AdminState {
            config: Arc::new(SimConfig {
                backend_url: "http://127.0.0.1:2".into(),
                readers: readers.addresses(),
            }),
            readers,
            network: Network::new(),
            store,
        };
        (router(state.clone()), state)
    }

    async fn send(router: &Router, method: &str, path: &str, body: &str) -> (u16, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request");
        let res = router.clone().oneshot(req).await.expect("response");
        let status = res.status().as_u16();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn config_lists_backend_and_readers() {
        let (router, _) = app();
        let (status, body) = send(&router, "GET", "/_sim/config", "").await;
        assert_eq!(status, 200);
        assert_eq!(body["backend_url"], "http://127.0.0.1:2");
        assert_eq!(body["readers"][0]["id"], "rdr_sim_1");
        assert_eq!(
            body["readers"][1]["url"],
            "ws://127.0.0.1:1/readers/rdr_sim_2"
        );
    }

    #[tokio::test]
    async fn cards_are_validated_and_shown_as_last4() {
        let (router, _) = app();
        let (status, body) = send(
            &router,
            "POST",
            "/_sim/readers/rdr_sim_1/card",
            r#"{"number":"4000000000000002"}"#,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["next_card"], "0002");
        for bad in [
            r#"{"number":"4000"}"#,
            r#"{"number":"40000000000000020000"}"#,
            r#"{"number":"4000-0000-0000-0002"}"#,
            r#"{"num":"4000000000000002"}"#,
            "nope",
        ] {
            let (status, _) = send(&router, "POST", "/_sim/readers/rdr_sim_1/card", bad).await;
            assert_eq!(status, 400, "{bad}");
        }
        let (status, _) = send(
            &router,
            "POST",
            "/_sim/readers/rdr_sim_9/card",
            r#"{"number":"4000000000000002"}"#,
        )
        .await;
        assert_eq!(status, 404);
        let (_, list) = send(&router, "GET", "/_sim/readers", "").await;
        assert_eq!(
            list,
            json!([
                {"id":"rdr_sim_1","label":"Simulated reader 1","url":"ws://127.0.0.1:1/readers/rdr_sim_1","connected":false,"display":null,"screen":{"kind":"idle"},"next_card":"0002","registration_code":"sim-1-register","link":"online","stored":{"count":0,"amounts":{}},"country":"US","booting":false},
                {"id":"rdr_sim_2","label":"Simulated reader 2","url":"ws://127.0.0.1:1/readers/rdr_sim_2","connected":false,"display":null,"screen":{"kind":"idle"},"next_card":"4242","registration_code":"sim-2-register","link":"online","stored":{"count":0,"amounts":{}},"country":"US","booting":false}
            ])
        );
        let (status, one) = send(&router, "GET", "/_sim/readers/rdr_sim_2", "").await;
        assert_eq!((status, &one["screen"]), (200, &json!({"kind":"idle"})));
        let (status, _) = send(&router, "GET", "/_sim/readers/rdr_sim_9", "").await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn faults_and_customer_cancel_are_validated() {
        let (router, _state) = app();
        let (status, _) = send(
            &router,
            "POST",
            "/_sim/readers/rdr_sim_1/fault",
            r#"{"kind":"silent"}"#,
        )
        .await;
        assert_eq!(status, 200);
        let (status, _) = send(
            &router,
            "POST",
            "/_sim/readers/rdr_sim_1/fault",
            r#"{"kind":"meltdown"}"#,
        )
        .await;
        assert_eq!(status, 400);
        let (status, body) = send(&router, "POST", "/_sim/readers/rdr_sim_1/cancel", "").await;
        assert_eq!((status, body), (200, json!({"sent": false})));
    }

    #[tokio::test]
    async fn reader_link_location_card_entry_and_reboot() {
        let (router, state) = app();
        let (status, body) = send(
            &router,
            "POST",
            "/_sim/readers/rdr_sim_1/network",
            r#"{"down":true}"#,
        )
        .await;
        assert_eq!((status, &body["link"]), (200, &json!("offline")));
        assert!(!state.readers.get("rdr_sim_1").expect("reader").link_up());
        assert!(state.readers.get("rdr_sim_2").expect("reader").link_up());
        assert!(
            !state.network.get().down,
            "the POS's link is another switch"
        );
        let (status, _) = send(&router, "POST", "/_sim/readers/rdr_sim_1/network", "{}").await;
        assert_eq!(status, 400);

        let (status, body) = send(
            &router,
            "POST",
            "/_sim/readers/rdr_sim_1/location",
            r#"{"country":"fr"}"#,
        )
        .await;
        assert_eq!((status, &body["country"]), (200, &json!("FR")));
        for bad in [r#"{"country":"FRA"}"#, r#"{"country":"F1"}"#, r#"{}"#] {
            let (status, _) = send(&router, "POST", "/_sim/readers/rdr_sim_1/location", bad).await;
            assert_eq!(status, 400, "{bad}");
        }

        let (status, _) = send(
            &router,
            "POST",
            "/_sim/readers/rdr_sim_1/card",
            r#"{"number":"4242424242424242","entry":"swipe","pin":false}"#,
        )
        .await;
        assert_eq!(status, 200);
        let (status, _) = send(
            &router,
            "POST",
            "/_sim/readers/rdr_sim_1/card",
            r#"{"number":"4242424242424242","entry":"magic"}"#,
        )
        .await;
        assert_eq!(status, 400);

        let (status, body) = send(&router, "POST", "/_sim/readers/rdr_sim_2/reboot", "").await;
        assert_eq!((status, &body["booting"]), (200, &json!(true)));
        tokio::time::sleep(crate::readers::BOOT_TIME + Duration::from_millis(50)).await;
        let (_, body) = send(&router, "GET", "/_sim/readers/rdr_sim_2", "").await;
        assert_eq!(body["booting"], json!(false));
        let (status, _) = send(&router, "POST", "/_sim/readers/nope/reboot", "").await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn network_switch_round_trips() {
        let (router, state) = app();
        let (_, body) = send(&router, "GET", "/_sim/network", "").await;
        assert_eq!(body, json!({"down": false, "latency_ms": 0}));
        let (_, body) = send(
            &router,
            "POST",
            "/_sim/network",
            r#"{"down":true,"latency_ms":250}"#,
        )
        .await;
        assert_eq!(body, json!({"down": true, "latency_ms": 250}));
        let (_, body) = send(&router, "POST", "/_sim/network", r#"{"down":false}"#).await;
        assert_eq!(body, json!({"down": false, "latency_ms": 250}));
        assert!(!state.network.get().down);
        let (status, _) = send(&router, "POST", "/_sim/network", r#"{"latency_ms":1}"#).await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn disconnect_without_session_reports_false() {
        let (router, _) = app();
        let (status, body) = send(&router, "POST", "/_sim/readers/rdr_sim_1/disconnect", "").await;
        assert_eq!((status, body), (200, json!({"disconnected": false})));
        let (status, _) = send(&router, "POST", "/_sim/readers/nope/disconnect", "").await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn payments_start_empty() {
        let (router, _) = app();
        assert_eq!(
            send(&router, "GET", "/_sim/payments", "").await,
            (200, json!([]))
        );
    }
}
