//! Network faults on the API port, and the API port's own accept loop that makes them real.
//!
//! * `down`: every new TCP connection is accepted and reset at once (`SO_LINGER` 0, then
//!   close → RST), and every open connection is aborted the moment the flag flips. The
//!   browser sees a network error (fetch `TypeError`), never an HTTP answer.
//! * `latency_ms`: the request is processed (a payment is recorded) and only then does the
//!   answer wait, as when a request reached the backend but its answer came too late.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
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

/// The shared fault switch. Cloning shares it.
#[derive(Clone)]
pub struct Network {
    tx: Arc<watch::Sender<NetworkState>>,
}

impl Default for Network {
    fn default() -> Self {
        Self::new()
    }
}

impl Network {
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(NetworkState::default());
        Self { tx: Arc::new(tx) }
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

/// Middleware on the API router: answer a POST only after `latency_ms`, once the handler has
/// run. CORS preflights and health probes stay fast, so a late answer is what a client sees,
/// not a request that never left.
pub async fn latency(State(network): State<Network>, request: Request, next: Next) -> Response {
    let delayed = request.method() == axum::http::Method::POST;
    let response = next.run(request).await;
    let ms = network.get().latency_ms;
    if delayed && ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
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
