//! Reader pairing credentials (protocol v2): before a `connect` or `take_over` hello the POS
//! gets a credential for that one reader from the backend (`POST /v1/reader_pairings`, with
//! the connection token and its refresh), keeps it sealed per reader in the keys store, and
//! sends it in the hello. The connection token itself never goes to a reader.
//!
//! What to do with a cached credential is decided here without a browser (`plan`,
//! `may_fall_back`); the browser side (`Pairings`) fetches, caches and saves.

use crate::error::{PosError, ReaderError};
use pos_protocol::reader::ReaderErrorCode;

/// A cached credential with less life left than this is renewed on a reconnection too (the
/// backend is asked; the cached one still serves if it does not answer).
pub const RENEW_MARGIN_MS: u64 = 60 * 60 * 1000;

/// Why a credential is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `connectReader`: the caller is there; ask the backend for a current credential.
    Connect,
    /// The SDK reconnecting by itself after a drop (a reader reboot, a network blip):
    /// the cached credential, so it works while the backend is unreachable.
    Reconnect,
    /// The reader refused the credential just sent: only a fresh one will do.
    AfterRefusal,
}

/// Where the credential for a hello comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The cached credential, without asking the backend.
    Cached,
    /// Ask the backend; if it gives no final answer, the cached credential (still valid).
    FetchOrCached,
    /// Ask the backend; there is nothing to fall back to.
    Fetch,
}

/// The plan for a credential cached until `cached_expires_at` (ms since the epoch; `None`:
/// nothing cached for this reader and backend) at `now_ms`.
pub fn plan(cached_expires_at: Option<u64>, now_ms: u64, purpose: Purpose) -> Plan {
    let left = match cached_expires_at {
        Some(expires_at) if expires_at > now_ms => expires_at - now_ms,
        _ => return Plan::Fetch,
    };
    match purpose {
        Purpose::AfterRefusal => Plan::Fetch,
        Purpose::Reconnect if left >= RENEW_MARGIN_MS => Plan::Cached,
        Purpose::Reconnect | Purpose::Connect => Plan::FetchOrCached,
    }
}

/// True when a failed fetch leaves the cached credential usable: the backend gave no final
/// word (unreachable, timeout, 5xx, an unreadable answer) or no token could be had (the
/// merchant's server is unreachable too). A refusal (401 after a fresh token, a 4xx) is final.
pub fn may_fall_back(e: &PosError) -> bool {
    match e {
        PosError::Backend(b) => b.is_retryable(),
        PosError::ConnectionToken(_) => true,
        _ => false,
    }
}

/// True when a reader refused the hello's pairing credential.
pub fn is_pairing_refused(e: &PosError) -> bool {
    e.reader_code() == Some(ReaderErrorCode::PairingRefused)
}

/// The error when the reader refused a fresh credential too.
pub fn refused_twice(reader_id: &str, e: &PosError) -> PosError {
    let why = match e {
        PosError::Reader(ReaderError::Reported { message, .. }) if !message.is_empty() => {
            message.chars().take(200).collect::<String>()
        }
        _ => "pairing_refused".to_string(),
    };
    ReaderError::PairingRefused(format!(
        "reader {reader_id} refused a fresh pairing from the backend ({why})"
    ))
    .into()
}

#[cfg(target_arch = "wasm32")]
pub use browser::Pairings;

#[cfg(target_arch = "wasm32")]
mod browser {
    use std::cell::RefCell;
    use std::rc::Rc;

    use pos_protocol::backend::ReaderPairing;
    use serde::{Deserialize, Serialize};

    use super::{may_fall_back, plan, Plan, Purpose};
    use crate::auth::Auth;
    use crate::backend::Backend;
    use crate::error::PosError;
    use crate::js;
    use crate::small_map::SmallMap;
    use crate::store::{pairing_key, Store};

    /// A pairing as saved: bound to the backend that issued it.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Saved {
        backend_url: String,
        pairing: ReaderPairing,
    }

    /// The pairing credentials of one terminal: fetched, cached in memory and sealed in the
    /// store per reader.
    pub struct Pairings {
        backend: Rc<Backend>,
        auth: Rc<Auth>,
        store: Rc<Store>,
        backend_url: String,
        memory: RefCell<SmallMap<ReaderPairing>>,
    }

    impl Pairings {
        pub fn new(
            backend: Rc<Backend>,
            auth: Rc<Auth>,
            store: Rc<Store>,
            backend_url: String,
        ) -> Self {
            Self {
                backend,
                auth,
                store,
                backend_url,
                memory: RefCell::new(SmallMap::new()),
            }
        }

        /// The credential to send in a hello to reader `reader_id`.
        pub async fn secret(&self, reader_id: &str, purpose: Purpose) -> Result<String, PosError> {
            let cached = self.cached(reader_id).await;
            let now = js::now_ms().max(0.0) as u64;
            let step = plan(cached.as_ref().map(|p| p.expires_at), now, purpose);
            let cached_secret = cached.map(|p| p.secret);
            match (step, cached_secret) {
                (Plan::Cached, Some(secret)) => Ok(secret),
                (Plan::FetchOrCached, Some(secret)) => match self.fetch(reader_id).await {
                    Ok(fresh) => Ok(fresh),
                    Err(e) if may_fall_back(&e) => {
                        web_sys::console::warn_1(
                            &format!(
                                "pos-terminal: no new pairing for reader {reader_id} ({}); \
                                 using the saved one",
                                e.code()
                            )
                            .into(),
                        );
                        Ok(secret)
                    }
                    Err(e) => Err(e),
                },
                _ => self.fetch(reader_id).await,
            }
        }

        /// A fresh credential from the backend, cached and saved sealed.
        async fn fetch(&self, reader_id: &str) -> Result<String, PosError> {
            let backend = self.backend.clone();
            let pairing = self
                .auth
                .retry(|token| {
                    let backend = backend.clone();
                    async move {
                        backend
                            .reader_pairing(&token, reader_id)
                            .await
                            .map_err(PosError::from)
                    }
                })
                .await?;
            self.memory
                .borrow_mut()
                .insert(reader_id.to_string(), pairing.clone());
            let saved = Saved {
                backend_url: self.backend_url.clone(),
                pairing: pairing.clone(),
            };
            // Saved for reconnections while the backend is down; without it this one works.
            if let Err(e) = self
                .store
                .save_sealed(&pairing_key(reader_id), &saved)
                .await
            {
                web_sys::console::warn_1(
                    &format!("pos-terminal: reader pairing not saved: {}", e.code()).into(),
                );
            }
            Ok(pairing.secret)
        }

        /// The cached credential for `reader_id` and this backend (memory, then the store).
        async fn cached(&self, reader_id: &str) -> Option<ReaderPairing> {
            if let Some(p) = self.memory.borrow().get(reader_id) {
                return Some(p.clone());
            }
            let saved: Saved = self
                .store
                .load_sealed(&pairing_key(reader_id))
                .await
                .ok()
                .flatten()?;
            if saved.backend_url != self.backend_url || saved.pairing.reader_id != reader_id {
                return None;
            }
            self.memory
                .borrow_mut()
                .insert(reader_id.to_string(), saved.pairing.clone());
            Some(saved.pairing)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BackendError;

    const NOW: u64 = 1_000_000_000;

    #[test]
    fn nothing_cached_or_expired_means_asking_the_backend() {
        for purpose in [Purpose::Connect, Purpose::Reconnect, Purpose::AfterRefusal] {
            assert_eq!(plan(None, NOW, purpose), Plan::Fetch);
            assert_eq!(plan(Some(NOW), NOW, purpose), Plan::Fetch, "expires now");
            assert_eq!(plan(Some(NOW - 1), NOW, purpose), Plan::Fetch);
        }
    }

    #[test]
    fn a_connect_asks_the_backend_and_falls_back_to_a_valid_cached_pairing() {
        assert_eq!(
            plan(Some(NOW + 24 * 3_600_000), NOW, Purpose::Connect),
            Plan::FetchOrCached
        );
        assert_eq!(
            plan(Some(NOW + 1), NOW, Purpose::Connect),
            Plan::FetchOrCached
        );
    }

    #[test]
    fn a_reconnection_uses_the_cached_pairing_until_it_nears_expiry() {
        assert_eq!(
            plan(Some(NOW + RENEW_MARGIN_MS), NOW, Purpose::Reconnect),
            Plan::Cached
        );
        assert_eq!(
            plan(Some(NOW + RENEW_MARGIN_MS - 1), NOW, Purpose::Reconnect),
            Plan::FetchOrCached
        );
    }

    #[test]
    fn a_refused_pairing_is_never_reused() {
        assert_eq!(
            plan(Some(NOW + 24 * 3_600_000), NOW, Purpose::AfterRefusal),
            Plan::Fetch
        );
    }

    #[test]
    fn only_a_backend_without_a_final_answer_leaves_the_cache_usable() {
        for e in [
            BackendError::Unreachable("reset".into()),
            BackendError::NotSent("x".into()),
            BackendError::Timeout(8_000),
            BackendError::status(503, String::new()),
            BackendError::InvalidResponse("a portal".into()),
        ] {
            assert!(may_fall_back(&e.clone().into()), "{e:?}");
        }
        assert!(may_fall_back(&PosError::ConnectionToken("offline".into())));
        for e in [
            PosError::from(BackendError::Unauthorized(String::new())),
            BackendError::status(400, String::new()).into(),
            PosError::TerminalClosed,
        ] {
            assert!(!may_fall_back(&e), "{e:?}");
        }
    }

    #[test]
    fn a_second_refusal_has_its_own_code() {
        let refused: PosError = ReaderError::Reported {
            code: ReaderErrorCode::PairingRefused,
            message: "not this reader's".into(),
        }
        .into();
        assert!(is_pairing_refused(&refused));
        assert!(!is_pairing_refused(&ReaderError::Busy.into()));
        let e = refused_twice("rdr_1", &refused);
        assert_eq!(e.code(), "reader_pairing_refused");
        assert!(e.to_string().contains("rdr_1"));
        assert!(e.to_string().contains("not this reader's"));
    }
}
