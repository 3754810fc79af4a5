//! pos-terminal: card payments from internet smart readers for web POS pages and PWAs, with
//! an offline mode: payments collected while the backend is unreachable are sealed with
//! AES-256-GCM in IndexedDB and forwarded exactly once when it is reachable again.
//!
//! The modules without a browser (errors, validation, limits, policies, sealing, options)
//! compile and test natively; the browser glue compiles for wasm32 only.

pub mod auth;
pub mod backend;
pub mod backoff;
pub mod connectivity;
mod currency;
pub mod error;
pub mod events;
pub mod every;
pub mod fallback;
pub mod forward_policy;
pub mod held;
pub mod limits;
pub mod options;
pub mod pairing;
pub mod payment;
pub mod reader;
pub mod reader_fallback;
pub mod small_map;
pub mod status;
pub mod validate;
pub mod vault;

#[cfg(target_arch = "wasm32")]
pub mod checkout;
#[cfg(target_arch = "wasm32")]
pub mod facade;
#[cfg(target_arch = "wasm32")]
pub mod forwarder;
#[cfg(target_arch = "wasm32")]
mod idb;
#[cfg(target_arch = "wasm32")]
pub mod js;
#[cfg(target_arch = "wasm32")]
mod keystore;
#[cfg(target_arch = "wasm32")]
pub mod persistence;
#[cfg(target_arch = "wasm32")]
pub mod scheduler;
#[cfg(target_arch = "wasm32")]
pub mod store;
#[cfg(target_arch = "wasm32")]
pub mod terminal;
#[cfg(target_arch = "wasm32")]
mod watched;
#[cfg(target_arch = "wasm32")]
pub mod weblock;

pub use error::PosError;
