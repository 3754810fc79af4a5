//! What the socket tests share: the real `pos-sim` binary started on free ports, HTTP over
//! ureq and the readers' WebSocket over tungstenite.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};
use ureq::http::{self, HeaderMap};
use ureq::Agent;

pub const BIN: &str = env!("CARGO_BIN_EXE_pos-sim");
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

pub type Ws = WebSocket<TcpStream>;

/// A running simulator; killed when dropped.
pub struct Sim {
    pub child: Child,
    /// The `POS_SIM_READY` line's JSON.
    pub ready: Value,
    pub pos: SocketAddr,
    pub api: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Sim {
    /// `pos-sim serve` on free ports with `db`, a card tap taking `tap_delay_ms`, and `extra`
    /// arguments; returns once it printed its READY line.
    pub fn launch(db: &Path, tap_delay_ms: u64, extra: &[&str]) -> Sim {
        let mut child = Command::new(BIN)
            .args(["serve", "--port", "0", "--tap-delay-ms"])
            .arg(tap_delay_ms.to_string())
            .arg("--db")
            .arg(db)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pos-sim");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(line)) => line,
            other => {
                let _ = child.kill();
                panic!(
                    "no READY line ({other:?}); stderr:\n{}",
                    log.lock().expect("log")
                );
            }
        };
        let json = line
            .strip_prefix("POS_SIM_READY ")
            .unwrap_or_else(|| panic!("first stdout line is not READY: {line}"));
        let ready: Value = serde_json::from_str(json).expect("READY JSON");
        let pos = addr_of(ready["url"].as_str().expect("url"));
        let api = addr_of(ready["api"].as_str().expect("api"));
        Sim {
            child,
            ready,
            pos,
            api,
            stderr: log,
        }
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().expect("log").clone()
    }

    pub fn token(&self) -> String {
        let (status, body) =
            request(self.api, "POST", "/v1/connection_tokens", &[], "").expect("token request");
        assert_eq!(status, 200, "{body}");
        body["secret"].as_str().expect("secret").to_owned()
    }

    /// A reader pairing credential for `reader_id`, issued with `token`.
    pub fn pairing(&self, token: &str, reader_id: &str) -> String {
        let auth = format!("Bearer {token}");
        let (status, body) = request(
            self.api,
            "POST",
            "/v1/reader_pairings",
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            &json!({ "reader_id": reader_id }).to_string(),
        )
        .expect("pairing request");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["reader_id"], reader_id);
        body["secret"].as_str().expect("secret").to_owned()
    }

    pub fn try_reader(&self, id: &str) -> Result<Ws, tungstenite::Error> {
        let url = format!("ws://{}/readers/{id}", self.pos);
        let stream = TcpStream::connect(self.pos).expect("connect reader");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        tungstenite::client(url.as_str(), stream)
            .map(|(ws, _)| ws)
            .map_err(|e| match e {
                tungstenite::HandshakeError::Failure(e) => e,
                tungstenite::HandshakeError::Interrupted(_) => {
                    panic!("handshake interrupted")
                }
            })
    }

    pub fn reader(&self, id: &str) -> Ws {
        self.try_reader(id).expect("ws handshake")
    }

    /// Says `hello` to reader `id` with `pairing`; returns the socket and its `hello_ack`.
    pub fn hello(&self, id: &str, pairing: &str) -> (Ws, Value) {
        let mut ws = self.reader(id);
        send(
            &mut ws,
            json!({"type":"hello","protocol_version":2,"client":"test","pairing":pairing}),
        );
        let ack = recv(&mut ws);
        assert_eq!(ack["type"], "hello_ack", "{ack}");
        (ws, ack)
    }

    pub fn admin(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        request(self.pos, method, path, &[], body).expect("admin request")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn addr_of(url: &str) -> SocketAddr {
    let rest = url
        .strip_prefix("http://")
        .expect("http url")
        .trim_end_matches('/');
    assert!(rest.starts_with("127.0.0.1:"), "must bind loopback: {url}");
    rest.parse().expect("socket address")
}

/// An HTTP answer: status, headers and body text.
pub type Answer = (u16, HeaderMap, String);

/// One HTTP/1.1 request on a fresh connection (no pooling, so a fault injected between two
/// requests meets the second). Non-2xx statuses are answers; `Err` when the connection fails
/// or no HTTP answer arrives.
pub fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Answer, ureq::Error> {
    let agent: Agent = Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(0)
        .timeout_global(Some(IO_TIMEOUT))
        .build()
        .into();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body.to_owned())?;
    let mut response = agent.run(request)?;
    let text = response.body_mut().read_to_string()?;
    Ok((response.status().as_u16(), response.headers().clone(), text))
}

/// [`raw_request`] with the body as JSON (`Null` when empty, a string when not JSON).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, Value), ureq::Error> {
    let (status, _, body) = raw_request(addr, method, path, headers, body)?;
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or(Value::String(body))
    };
    Ok((status, value))
}

/// A header's value as text, `""` when absent.
pub fn header(headers: &HeaderMap, name: http::header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub fn send(ws: &mut Ws, msg: Value) {
    ws.send(Message::text(msg.to_string())).expect("ws send");
}

/// The next protocol message, skipping heartbeat pings.
pub fn recv(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("ws read") {
            Message::Text(text) => {
                let v: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
                if v["type"] != "ping" {
                    return v;
                }
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Says `hello` with intent `discover` (no credential) and checks the `hello_ack` says
/// `status`; returns it.
pub fn discover(ws: &mut Ws, status: &str) -> Value {
    send(
        ws,
        json!({"type":"hello","protocol_version":2,"client":"t","intent":"discover"}),
    );
    let ack = recv(ws);
    assert_eq!(
        (&ack["type"], &ack["status"]),
        (&json!("hello_ack"), &json!(status))
    );
    ack
}

/// Reads until the socket ends; `true` if it did (close frame or EOF/reset) within the timeout.
pub fn ends(ws: &mut Ws) -> bool {
    loop {
        match ws.read() {
            // On a close frame tungstenite answers; the next read ends it.
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Polls `check` until true or [`IO_TIMEOUT`] passes.
pub fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// The `POST /v1/payments` body for a payment read as `card_read` by `reader`.
pub fn payment_body(id: &str, amount: u64, card_read: &Value, reader: &str) -> Value {
    json!({
        "id": id,
        "amount": amount,
        "currency": "usd",
        "capture_method": "automatic",
        "card_payload": card_read["card_payload"],
        "card": card_read["card"],
        "reader_id": reader,
        "offline": null,
        "metadata": {}
    })
}

/// What `/_sim/payments` lists: one entry per idempotency key.
pub fn payments(sim: &Sim) -> Vec<Value> {
    let (status, list) = sim.admin("GET", "/_sim/payments", "");
    assert_eq!(status, 200);
    list.as_array().expect("array").clone()
}
