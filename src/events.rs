//! What the core tells whoever embeds it: a page's callbacks, a service worker's log, or a
//! test's recorder. Every method has a default that ignores the event.

use serde::Serialize;

use crate::error::PosError;
use crate::forward_policy::ForwardingFailure;
use crate::payment::StoredPayment;
use crate::status::{NetworkStatus, OfflineStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connecting,
    Connected,
    NotConnected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    NotReady,
    Ready,
    WaitingForInput,
    Processing,
}

pub trait Events {
    fn network_status(&self, _status: NetworkStatus) {}
    fn offline_status(&self, _status: &OfflineStatus) {}
    fn payment_forwarded(&self, _payment: &StoredPayment) {}
    fn forwarding_failure(&self, _failure: &ForwardingFailure) {}
    fn unexpected_reader_disconnect(&self, _error: &PosError) {}
    fn connection_status(&self, _status: ConnectionStatus) {}
    fn payment_status(&self, _status: PaymentStatus) {}
    /// Another context upgraded or deleted the database: this one closed its connection, so
    /// storage calls fail from now on (the page should reload).
    fn database_closed_for_upgrade(&self) {}
}

/// Ignores every event (a service worker forwarding on its own).
pub struct NoEvents;

impl Events for NoEvents {}
