//! pos-terminal: card payments from internet smart readers for web POS pages and PWAs, with
//! an offline mode: payments collected while the backend is unreachable are sealed with
//! AES-256-GCM in IndexedDB and forwarded exactly once when it is reachable again.

pub mod backend;
pub mod backoff;
pub mod error;
mod events;
pub mod forwarder;
mod idb;
pub mod js;
mod keystore;
pub mod limits;
pub mod payment;
pub mod reader;
pub mod store;
mod terminal;
mod types;
pub mod validate;
pub mod vault;

pub use error::PosError;
pub use terminal::{forward_stored_payments, Terminal};
