//! Network faults on the API port, and the API port's own accept loop that makes them real.
//!
//! * `down`: every new TCP connection is accepted and reset at once (`SO_LINGER` 0, then
//!   close → RST), and every open connection is aborted the moment the flag flips. The
//!   browser sees a network error (fetch `TypeError`), never an HTTP answer.
//! * `latency_ms`: the request is processed (a payment is recorded) and only then does the
//!   answer wait, as when a request reached the backend but its answer came too late.
//! * scripted faults (`POST /_sim/faults`): each of the next `POST /v1/payments` requests
//!   takes the next fault of the script: an error status (with `Retry-After`), a late
//!   answer, a reset before or after the payment is recorded, a hang, a captive portal's
//!   HTML 200, a proxy's non-JSON 404.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use futures_util::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    pub down: bool,
    pub latency_ms: u64,
}

/// One scripted fault for one `POST /v1/payments` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Answer `status` with an error body (and `Retry-After: retry_after` seconds); nothing
    /// is recorded.
    Status {
        status: u16,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Record the payment, then answer only after `ms`.
    Delay { ms: u64 },
    /// Cut the connection mid-answer without recording anything.
    ResetBefore,
    /// Record the payment, then cut the connection mid-answer.
    ResetAfter,
    /// Never answer (until the client gives up); nothing is recorded.
    Hang,
    /// A captive portal's page: `200 text/html`; nothing is recorded.
    Html200,
    /// A proxy's `404 text/plain`; nothing is recorded.
    NotJson404,
    /// `200 application/json` with `mb` MiB of whitespace and no `Content-Length` (chunked):
    /// an answer a client must stop reading; nothing is recorded. How much of it the client
    /// took is `GET /_sim/faults`' `huge_bytes_sent`.
    Huge { mb: u64 },
}

/// The shared fault switch and fault script. Cloning shares them.
#[derive(Clone)]
pub struct Network {
    tx: Arc<watch::Sender<NetworkState>>,
    script: Arc<Mutex<VecDeque<Fault>>>,
    /// Bytes of the last `Huge` answer handed to the connection (what the client took, plus
    /// what the socket buffers hold).
    huge_sent: Arc<AtomicU64>,
}

impl Default for Network {
    fn default() -> Self {
        Self::new()
    }
}

impl Network {
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(NetworkState::default());
        Self {
            tx: Arc::new(tx),
            script: Arc::default(),
            huge_sent: Arc::default(),
        }
    }

    /// Bytes of the last `Huge` answer handed to the connection.
    pub fn huge_bytes_sent(&self) -> u64 {
        self.huge_sent.load(Ordering::Relaxed)
    }

    /// Replaces the fault script.
    pub fn set_faults(&self, faults: Vec<Fault>) {
        // A panic elsewhere must not disable fault injection for the rest of the run.
        *self.script.lock().unwrap_or_else(PoisonError::into_inner) = faults.into();
    }

    /// The faults not yet used.
    pub fn faults(&self) -> Vec<Fault> {
        let script = self.script.lock().unwrap_or_else(PoisonError::into_inner);
        script.iter().cloned().collect()
    }

    fn next_fault(&self) -> Option<Fault> {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    pub fn get(&self) -> NetworkState {
        *self.tx.borrow()
    }

    /// Sets the outage flag, and the latency when given (`None` keeps it).
    pub fn set(&self, down: bool, latency_ms: Option<u64>) -> NetworkState {
        self.tx.send_modify(|state| {
            state.down = down;
            if let Some(ms) = latency_ms {
                state.latency_ms = ms;
            }
        });
        self.get()
    }

    fn subscribe(&self) -> watch::Receiver<NetworkState> {
        self.tx.subscribe()
    }
}

/// Middleware on the API router: the next scripted fault for `POST /v1/payments`, then
/// `latency_ms`: a POST is answered only after it, once the handler has run. CORS preflights
/// and health probes stay fast, so a late answer is what a client sees, not a request that
/// never left.
pub async fn latency(State(network): State<Network>, request: Request, next: Next) -> Response {
    let delayed = request.method() == Method::POST;
    let scripted = delayed && request.uri().path() == "/v1/payments";
    let response = match scripted.then(|| network.next_fault()).flatten() {
        Some(fault) => {
            eprintln!("[pos-sim] api: scripted fault {fault:?}");
            apply(fault, request, next, &network).await
        }
        None => next.run(request).await,
    };
    let ms = network.get().latency_ms;
    if delayed && ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    response
}

/// `response` with its body cut: the status line, the headers and a first chunk go out, then
/// hyper aborts the connection. The client has an answer's start, so it does not resend the
/// request (browsers resend one that got no bytes at all on a reused connection), and then a
/// network error (fetch `TypeError`).
fn cut(response: Response) -> Response {
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let first = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{"))]);
    // The pause lets hyper flush the head and the first chunk before the body fails.
    let then_fail = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Err(std::io::Error::other("scripted reset"))
    });
    Response::from_parts(parts, Body::from_stream(first.chain(then_fail)))
}

/// A response made here, outside the API router's CORS layer: readable by the page.
fn readable(status: StatusCode, content_type: &'static str, body: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after"),
    );
    response
}

async fn apply(fault: Fault, request: Request, next: Next, network: &Network) -> Response {
    match fault {
        Fault::Status {
            status,
            retry_after,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut response = readable(
                status,
                "application/json",
                r#"{"error":{"code":"sim_fault","message":"scripted by /_sim/faults"}}"#,
            );
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
        Fault::Delay { ms } => {
            let response = next.run(request).await;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            response
        }
        Fault::ResetBefore => cut(readable(StatusCode::OK, "application/json", "")),
        Fault::ResetAfter => cut(next.run(request).await),
        Fault::Hang => std::future::pending().await,
        Fault::Html200 => readable(
            StatusCode::OK,
            "text/html",
            "<!doctype html><title>Wi-Fi login</title><p>Sign in to continue</p>",
        ),
        Fault::NotJson404 => readable(StatusCode::NOT_FOUND, "text/plain", "Not Found"),
        Fault::Huge { mb } => huge(mb, network.huge_sent.clone()),
    }
}

/// `mb` MiB of JSON whitespace in 64 KiB chunks, one a millisecond, with no length: hyper
/// sends it chunked and polls the next chunk only once the socket took the last, so `sent`
/// counts what the client took (and the socket buffers hold). The pace leaves a client that
/// stops reading time to say so (WebKit's network process reads ahead of the page).
fn huge(mb: u64, sent: Arc<AtomicU64>) -> Response {
    const CHUNK: usize = 64 * 1024;
    sent.store(0, Ordering::Relaxed);
    let chunks = mb.saturating_mul(1024 * 1024) / CHUNK as u64;
    let body = futures_util::stream::iter(0..chunks).then(move |_| {
        let sent = sent.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            sent.fetch_add(CHUNK as u64, Ordering::Relaxed);
            Ok::<_, std::io::Error>(Bytes::from(vec![b' '; CHUNK]))
        }
    });
    let mut response = readable(StatusCode::OK, "application/json", "");
    *response.body_mut() = Body::from_stream(body);
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

/// Serves `router` on `listener` forever, one task per connection, obeying `network`.
pub async fn serve_api(listener: TcpListener, router: Router, network: Network) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                eprintln!("[pos-sim] api: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if network.get().down {
            reset(stream, peer);
            continue;
        }
        tokio::spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            network.subscribe(),
        ));
    }
}

/// Closes `stream` with RST instead of FIN.
fn reset(stream: TcpStream, peer: SocketAddr) {
    if let Err(e) = stream.set_zero_linger() {
        eprintln!("[pos-sim] api: SO_LINGER on {peer} failed: {e}");
    }
    drop(stream);
    eprintln!("[pos-sim] api: network down, reset new connection from {peer}");
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    mut network: watch::Receiver<NetworkState>,
) {
    // A second descriptor for the same socket, so the connection can be reset while hyper
    // owns the stream: SO_LINGER belongs to the socket, not to the descriptor.
    let (stream, abort_handle) = match duplicate(stream) {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("[pos-sim] api: connection from {peer} unusable: {e}");
            return;
        }
    };
    let service = TowerToHyperService::new(router);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                // Clients that go away mid-request end up here; worth a line, not more.
                eprintln!("[pos-sim] api: connection from {peer} ended: {e}");
            }
        }
        () = wait_until_down(&mut network) => {
            if let Err(e) = SockRef::from(&abort_handle).set_linger(Some(Duration::ZERO)) {
                eprintln!("[pos-sim] api: SO_LINGER on {peer} failed: {e}");
            }
            eprintln!("[pos-sim] api: network down, reset open connection from {peer}");
        }
    }
    // Returning drops the connection (closing its descriptor) and then the duplicate: the
    // last close of a socket with linger 0 sends RST.
}

/// The stream back as a Tokio stream, plus a duplicate descriptor of the same socket.
fn duplicate(stream: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let std_stream = stream.into_std()?;
    let duplicate = std_stream.try_clone()?;
    Ok((TcpStream::from_std(std_stream)?, duplicate))
}

async fn wait_until_down(network: &mut watch::Receiver<NetworkState>) {
    if network.wait_for(|state| state.down).await.is_err() {
        // The switch is gone (shutting down): never fire.
        std::future::pending::<()>().await;
    }
}
