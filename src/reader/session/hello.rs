//! The reader session's hellos: discovery (no credential: a reader says who it is and
//! whether it is free), which reader is at an address (its id, learnt from a discovery
//! hello and remembered), and a `connect`/`take_over` hello with that reader's pairing
//! credential, retried once with a fresh credential after a refusal.

use pos_protocol::reader::HelloIntent;

use futures_util::future::join_all;

use super::{open, ReaderSession, MAX_DISCOVERY_URLS, MAX_KNOWN_IDS};
use crate::error::{PosError, ReaderError};
use crate::pairing::{is_pairing_refused, refused_twice, Pairings, Purpose};
use crate::reader::connection::Paired;
use crate::reader::{check_reader_url, simulated, usb, Address, Discovered, Discovery, Method};

impl ReaderSession {
    /// Every reader found, each with its status (`in_use` when another POS holds it).
    /// Discovery hellos carry no credential: a reader answers who it is and whether it is free.
    pub async fn discover(&self, discovery: &Discovery) -> Result<Vec<Discovered>, PosError> {
        match discovery {
            Discovery::WebSocket { urls } => self.discover_websocket(urls).await,
            Discovery::Usb {
                request_permission,
                filters,
            } => usb::discover(*request_permission, filters).await,
            Discovery::Simulated => Ok(vec![simulated::discovered(&self.simulator.borrow())]),
        }
    }

    async fn discover_websocket(&self, urls: &[String]) -> Result<Vec<Discovered>, PosError> {
        if urls.is_empty() || urls.len() > MAX_DISCOVERY_URLS {
            return Err(PosError::InvalidArgument(format!(
                "urls must list 1 to {MAX_DISCOVERY_URLS} reader addresses"
            )));
        }
        // Every address first: an insecure one fails the call, it is not silently skipped.
        for url in urls {
            check_reader_url(url)?;
        }
        let timeouts = self.timeouts.get();
        let probes = urls.iter().map(|url| async move {
            let address = Address {
                method: Method::WebSocket,
                url: url.clone(),
            };
            let paired = open(
                &address,
                None,
                HelloIntent::Discover,
                timeouts,
                &self.simulator,
            )
            .await?;
            paired.conn.close();
            Ok::<_, PosError>(Discovered {
                info: paired.info,
                address,
                status: paired.status,
            })
        });
        let found: Vec<Discovered> = join_all(probes)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        for d in &found {
            self.remember(&d.address.url, &d.info.id);
        }
        Ok(found)
    }

    pub(super) fn remember(&self, url: &str, reader_id: &str) {
        let mut known = self.known_ids.borrow_mut();
        if known.len() >= MAX_KNOWN_IDS && !known.contains_key(url) {
            known.clear();
        }
        known.insert(url.to_string(), reader_id.to_string());
    }

    /// The id of the reader at `address`: as it said before, else from a discover hello.
    async fn reader_id(&self, address: &Address) -> Result<String, PosError> {
        let known = self.known_ids.borrow().get(&address.url).cloned();
        if let Some(id) = known {
            return Ok(id);
        }
        let timeouts = self.timeouts.get();
        let probe = open(
            address,
            None,
            HelloIntent::Discover,
            timeouts,
            &self.simulator,
        )
        .await?;
        probe.conn.close();
        self.remember(&address.url, &probe.info.id);
        Ok(probe.info.id)
    }

    /// Says hello to the reader at `address` with its pairing credential (`purpose` decides
    /// whether the backend is asked for it). After a refusal: the reader's id again (another
    /// reader may answer at this address now) and a fresh credential, once.
    pub(super) async fn open_paired(
        &self,
        address: &Address,
        intent: HelloIntent,
        purpose: Purpose,
        pairings: &Pairings,
    ) -> Result<Paired, PosError> {
        if address.method == Method::Simulated {
            // In this page and part of this terminal: there is nothing to pair with.
            return open(address, None, intent, self.timeouts.get(), &self.simulator).await;
        }
        let reader_id = self.reader_id(address).await?;
        let secret = pairings.secret(&reader_id, purpose).await?;
        match self.hello_as(address, &reader_id, &secret, intent).await {
            Err(e) if is_pairing_refused(&e) => {}
            other => return other,
        }
        self.known_ids.borrow_mut().remove(&address.url);
        let reader_id = self.reader_id(address).await?;
        let secret = pairings.secret(&reader_id, Purpose::AfterRefusal).await?;
        match self.hello_as(address, &reader_id, &secret, intent).await {
            Err(e) if is_pairing_refused(&e) => Err(refused_twice(&reader_id, &e)),
            other => other,
        }
    }

    /// A hello with `secret`, the credential of `reader_id`; the reader must be that one.
    async fn hello_as(
        &self,
        address: &Address,
        reader_id: &str,
        secret: &str,
        intent: HelloIntent,
    ) -> Result<Paired, PosError> {
        let timeouts = self.timeouts.get();
        let paired = open(address, Some(secret), intent, timeouts, &self.simulator).await?;
        if paired.info.id != reader_id {
            paired.conn.close();
            return Err(ReaderError::Protocol(format!(
                "the reader paired as {reader_id} answered as another reader"
            ))
            .into());
        }
        Ok(paired)
    }
}
