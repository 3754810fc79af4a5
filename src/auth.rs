//! Connection tokens: fetched from the caller's source, cached, saved sealed (so a service
//! worker forwards while the page is gone), and refreshed once when the backend refuses one.
//! A token goes to the backend only: readers get a pairing credential (`pairing`).

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;

use crate::error::{BackendError, PosError};

pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, PosError>>>>;

/// Where fresh connection tokens come from (the page's `fetchConnectionToken`).
pub trait TokenSource {
    fn fetch_token(&self) -> TokenFuture;
}

impl<F: Fn() -> TokenFuture> TokenSource for F {
    fn fetch_token(&self) -> TokenFuture {
        self()
    }
}

/// A token is sent in an Authorization header: visible ASCII only, bounded.
pub fn check_token(token: String) -> Result<String, PosError> {
    if !token.is_empty() && token.len() <= 4096 && token.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(token)
    } else {
        Err(PosError::ConnectionToken(
            "fetchConnectionToken must resolve to a non-empty string of visible ASCII".into(),
        ))
    }
}

/// The error when the token source did not settle within `timeout_ms` (`requestTimeoutMs`).
pub fn token_timed_out(timeout_ms: u32) -> PosError {
    PosError::ConnectionToken(format!(
        "it did not settle within {timeout_ms} ms (requestTimeoutMs); \
         nothing was sent to the backend"
    ))
}

/// `fetch` unless `deadline` comes first: then `token_timed_out(timeout_ms)`, and `fetch` is
/// dropped (a promise behind it that settles later is ignored). Each call is a fresh wait.
pub async fn within_deadline<F, D>(
    fetch: F,
    deadline: D,
    timeout_ms: u32,
) -> Result<String, PosError>
where
    F: Future<Output = Result<String, PosError>>,
    D: Future<Output = ()>,
{
    let mut fetch = pin!(fetch);
    let mut deadline = pin!(deadline);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(token) = fetch.as_mut().poll(cx) {
            return Poll::Ready(token);
        }
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(token_timed_out(timeout_ms))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// True when `e` says the backend refused the token.
pub fn is_refused_token(e: &PosError) -> bool {
    matches!(e, PosError::Backend(BackendError::Unauthorized(_)))
}

/// Runs `op` with the current token; when `refused` says the token was refused, once more
/// with a fresh one. `token(refresh)` gives the token.
pub async fn with_token_retry<T, Tok, TokFut, Op, OpFut>(
    token: Tok,
    op: Op,
    refused: impl Fn(&T) -> bool,
) -> Result<T, PosError>
where
    Tok: Fn(bool) -> TokFut,
    TokFut: Future<Output = Result<String, PosError>>,
    Op: Fn(String) -> OpFut,
    OpFut: Future<Output = T>,
{
    let first = op(token(false).await?).await;
    if !refused(&first) {
        return Ok(first);
    }
    Ok(op(token(true).await?).await)
}

#[cfg(target_arch = "wasm32")]
pub use browser::Auth;

#[cfg(target_arch = "wasm32")]
mod browser {
    use std::cell::RefCell;
    use std::future::Future;
    use std::rc::Rc;

    use gloo_timers::future::TimeoutFuture;

    use super::{check_token, is_refused_token, with_token_retry, within_deadline, TokenSource};
    use crate::error::PosError;
    use crate::store::{PersistedConfig, Store};

    /// The token of one terminal: cached, persisted sealed beside its backend URL.
    pub struct Auth {
        source: Rc<dyn TokenSource>,
        /// How long the source may take to settle (`requestTimeoutMs`).
        timeout_ms: u32,
        cached: RefCell<Option<String>>,
        store: Rc<Store>,
        backend_url: String,
    }

    impl Auth {
        pub fn new(
            source: Rc<dyn TokenSource>,
            timeout_ms: u32,
            saved: Option<String>,
            store: Rc<Store>,
            backend_url: String,
        ) -> Self {
            Self {
                source,
                timeout_ms,
                cached: RefCell::new(saved),
                store,
                backend_url,
            }
        }

        /// The cached token unless `refresh`; else a fresh one, saved sealed. A source that
        /// does not settle within `timeout_ms` is a `connection_token_failed`; the next call
        /// asks it again.
        pub async fn token(&self, refresh: bool) -> Result<String, PosError> {
            if !refresh {
                if let Some(t) = self.cached.borrow().clone() {
                    return Ok(t);
                }
            }
            let fetch = self.source.fetch_token();
            let deadline = TimeoutFuture::new(self.timeout_ms);
            let token = check_token(within_deadline(fetch, deadline, self.timeout_ms).await?)?;
            *self.cached.borrow_mut() = Some(token.clone());
            // Saved for a service worker to forward with. A failed save (a full disk, a
            // database closed for an upgrade) must not fail what the token was fetched for:
            // an online payment needs no storage.
            let saved = self
                .store
                .save_config(&PersistedConfig {
                    backend_url: self.backend_url.clone(),
                    connection_token: Some(token.clone()),
                })
                .await;
            // After `close()` (a start-up fetch that answered late) there is nothing to say.
            if let (Err(e), false) = (saved, self.store.is_closed()) {
                web_sys::console::warn_1(
                    &format!("pos-terminal: the connection token was not saved for a service worker: {e}").into(),
                );
            }
            Ok(token)
        }

        /// `op` with the token, once more with a fresh token if the first was refused.
        pub async fn retry<T, Op, Fut>(&self, op: Op) -> Result<T, PosError>
        where
            Op: Fn(String) -> Fut,
            Fut: Future<Output = Result<T, PosError>>,
        {
            let refused = |r: &Result<T, PosError>| matches!(r, Err(e) if is_refused_token(e));
            with_token_retry(|refresh| self.token(refresh), op, refused).await?
        }

        /// Like `retry`, with the caller saying what counts as a refusal.
        pub async fn retry_when<T, Op, Fut>(
            &self,
            op: Op,
            refused: impl Fn(&T) -> bool,
        ) -> Result<T, PosError>
        where
            Op: Fn(String) -> Fut,
            Fut: Future<Output = T>,
        {
            with_token_retry(|refresh| self.token(refresh), op, refused).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn block_on<F: Future>(f: F) -> F::Output {
        futures_executor::block_on(f)
    }

    #[test]
    fn a_refused_token_is_refreshed_once() {
        let asked = RefCell::new(Vec::new());
        let token = |refresh: bool| {
            asked.borrow_mut().push(refresh);
            let t = if refresh { "fresh" } else { "stale" };
            async move { Ok(t.to_string()) }
        };
        let op = |t: String| async move {
            if t == "stale" {
                Err(PosError::from(BackendError::Unauthorized("expired".into())))
            } else {
                Ok(t)
            }
        };
        let refused = |r: &Result<String, PosError>| matches!(r, Err(e) if is_refused_token(e));
        let out = block_on(with_token_retry(token, op, refused)).unwrap();
        assert_eq!(out.unwrap(), "fresh");
        assert_eq!(*asked.borrow(), [false, true]);
    }

    #[test]
    fn other_failures_are_not_retried_and_a_second_refusal_stands() {
        let calls = RefCell::new(0);
        let token = |_refresh: bool| async { Ok("t".to_string()) };
        let op = |_t: String| {
            *calls.borrow_mut() += 1;
            async { Err::<(), _>(PosError::TerminalClosed) }
        };
        let refused = |r: &Result<(), PosError>| matches!(r, Err(e) if is_refused_token(e));
        let out = block_on(with_token_retry(token, op, refused)).unwrap();
        assert_eq!(out.unwrap_err(), PosError::TerminalClosed);
        assert_eq!(*calls.borrow(), 1);

        let always_refused = |_t: String| async {
            Err::<(), _>(PosError::from(BackendError::Unauthorized(String::new())))
        };
        let out = block_on(with_token_retry(token, always_refused, refused)).unwrap();
        assert!(is_refused_token(&out.unwrap_err()));
    }

    #[test]
    fn a_reader_refusal_is_no_token_refusal() {
        // Readers never see the token: their refusals are about the pairing credential.
        for code in [
            pos_protocol::reader::ReaderErrorCode::NotPaired,
            pos_protocol::reader::ReaderErrorCode::PairingRefused,
        ] {
            let e = PosError::from(crate::error::ReaderError::Reported {
                code,
                message: String::new(),
            });
            assert!(!is_refused_token(&e));
        }
        assert!(!is_refused_token(&PosError::TerminalClosed));
    }

    #[test]
    fn a_token_source_that_never_settles_fails_at_the_deadline() {
        let never = std::future::pending::<Result<String, PosError>>();
        let e = block_on(within_deadline(never, async {}, 2_000)).unwrap_err();
        assert_eq!(e.code(), "connection_token_failed");
        let message = e.to_string();
        assert!(message.contains("fetchConnectionToken"), "{message}");
        assert!(message.contains("2000 ms (requestTimeoutMs)"), "{message}");
    }

    #[test]
    fn a_token_source_that_settles_before_the_deadline_is_answered() {
        let never = std::future::pending::<()>();
        let ok = block_on(within_deadline(async { Ok("tok".into()) }, never, 1));
        assert_eq!(ok.unwrap(), "tok");
        // Its own failure stands, unchanged.
        let refused = async { Err(PosError::ConnectionToken("HTTP 500".into())) };
        let e = block_on(within_deadline(refused, std::future::pending(), 1)).unwrap_err();
        assert_eq!(e, PosError::ConnectionToken("HTTP 500".into()));
        // Both ready: the token wins (the deadline is only looked at while it is pending).
        let both = block_on(within_deadline(async { Ok("t".into()) }, async {}, 1));
        assert_eq!(both.unwrap(), "t");
    }

    #[test]
    fn a_timed_out_fetch_is_no_poisoned_state_the_next_call_asks_again() {
        // The retry helper over a source that hangs on its first call and answers the next.
        let calls = RefCell::new(0);
        let token = |_refresh: bool| {
            *calls.borrow_mut() += 1;
            let first = *calls.borrow() == 1;
            let fetch = async move {
                if first {
                    std::future::pending::<()>().await;
                }
                Ok("fresh".to_string())
            };
            within_deadline(fetch, async {}, 5)
        };
        let op = |t: String| async move { Ok::<_, PosError>(t) };
        let refused = |_: &Result<String, PosError>| false;
        let first = block_on(with_token_retry(token, op, refused));
        assert_eq!(first.unwrap_err().code(), "connection_token_failed");
        // The deadline of the second call has passed too, yet an answer in time wins.
        let second = block_on(with_token_retry(token, op, refused)).unwrap();
        assert_eq!(second.unwrap(), "fresh");
        assert_eq!(*calls.borrow(), 2);
    }

    #[test]
    fn tokens_are_checked() {
        assert!(check_token("sk_abc".into()).is_ok());
        for bad in ["", "has space", "new\nline"] {
            assert_eq!(
                check_token(bad.into()).unwrap_err().code(),
                "connection_token_failed"
            );
        }
        assert!(check_token("x".repeat(4097)).is_err());
    }
}
