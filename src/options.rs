//! `TerminalOptions` as one serde struct (the callbacks are taken apart by the facade), and
//! the settings the core runs with once every value was checked.

use pos_protocol::SortedMap;
use serde::Deserialize;

use crate::error::PosError;
use crate::forward_policy::DEFAULT_CONCURRENCY;
use crate::limits::OfflineLimits;
use crate::validate;

pub const DEFAULT_DB: &str = "pos-terminal";
/// `requestTimeoutMs` when not given (a service worker's forwarding uses it too).
pub const DEFAULT_REQUEST_TIMEOUT_MS: u32 = 8_000;
/// Finished records are kept as history for 30 days by default.
pub const DEFAULT_RETENTION_MS: u32 = 30 * 24 * 3_600 * 1_000;

/// Every key `Terminal.create` takes: the fields below and the callbacks (taken by the
/// facade). The facade refuses any other key, so a typo (`requestTimeoutMS`) is an error, not
/// a default silently kept. Keep in step with the struct.
pub const OPTION_KEYS: &[&str] = &[
    "backendUrl",
    "databaseName",
    "requestTimeoutMs",
    "forwardIntervalMs",
    "forwardConcurrency",
    "offline",
    "offlineStorage",
    "fetchConnectionToken",
    "onNetworkStatusChange",
    "onOfflineStatusChange",
    "onPaymentForwarded",
    "onForwardingFailure",
    "onUnexpectedReaderDisconnect",
    "onConnectionStatusChange",
    "onPaymentStatusChange",
    "onDatabaseVersionChange",
];

/// The data fields of `TerminalOptions` (the callbacks are the facade's; the facade checks
/// the keys against `OPTION_KEYS` first).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminalOptions {
    pub backend_url: Option<String>,
    pub database_name: Option<String>,
    pub request_timeout_ms: Option<f64>,
    pub forward_interval_ms: Option<f64>,
    /// Forwarding requests in flight at once (1 to 16).
    pub forward_concurrency: Option<f64>,
    pub offline: Option<OfflineOptions>,
    /// Which agent stores a payment when neither reaches the backend (default the SDK).
    pub offline_storage: Option<OfflineStorage>,
}

/// `offlineStorage`: the agent that stores a payment when neither the SDK nor the reader
/// reaches the backend. `Reader` falls back to the SDK for readers that cannot store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OfflineStorage {
    #[default]
    Sdk,
    Reader,
}

pos_protocol::wire_names!(OfflineStorage {
    Sdk => "sdk",
    Reader => "reader",
});

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OfflineOptions {
    pub enabled: Option<bool>,
    #[serde(default)]
    pub transaction_limit: SortedMap<f64>,
    #[serde(default)]
    pub stored_amount_limit: SortedMap<f64>,
    pub max_stored_payments: Option<f64>,
    /// Refuse storing while the oldest stored payment is older than this (ms).
    pub max_stored_age_ms: Option<f64>,
    /// Refuse storing offline unless the browser granted persistent storage.
    pub require_persistent_storage: Option<bool>,
    /// How long finished (forwarded, declined) records are kept as history (ms).
    pub retention_ms: Option<f64>,
}

/// What a terminal runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub backend_url: String,
    pub db_name: String,
    pub offline_enabled: bool,
    pub require_persistent_storage: bool,
    pub retention_ms: u32,
    pub limits: OfflineLimits,
    pub request_timeout_ms: u32,
    pub forward_interval_ms: u32,
    pub forward_concurrency: usize,
    pub offline_storage: OfflineStorage,
}

fn integer(
    value: Option<f64>,
    name: &str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, PosError> {
    match value {
        None => Ok(default),
        Some(n) if n.fract() == 0.0 && n >= f64::from(min) && n <= f64::from(max) => Ok(n as u32),
        Some(_) => Err(PosError::InvalidArgument(format!(
            "{name} must be an integer between {min} and {max}"
        ))),
    }
}

fn limit_map(map: SortedMap<f64>, what: &str) -> Result<SortedMap<u64>, PosError> {
    map.into_iter()
        .map(|(currency, v)| {
            let currency = validate::currency(&currency)?;
            if !(v.is_finite() && v.fract() == 0.0 && (0.0..=1e15).contains(&v)) {
                return Err(PosError::InvalidArgument(format!(
                    "offline.{what}.{currency} must be a non-negative integer"
                )));
            }
            Ok((currency, v as u64))
        })
        .collect()
}

/// A database name: 1 to 64 characters, `pos-terminal` if absent.
pub fn database_name(name: Option<String>) -> Result<String, PosError> {
    match name {
        None => Ok(DEFAULT_DB.to_string()),
        Some(n) if !n.is_empty() && n.chars().count() <= 64 => Ok(n),
        Some(_) => Err(PosError::InvalidArgument(
            "databaseName must be a string of 1 to 64 characters".into(),
        )),
    }
}

impl Settings {
    pub fn from_options(o: TerminalOptions) -> Result<Settings, PosError> {
        let backend_url = o
            .backend_url
            .ok_or_else(|| PosError::InvalidArgument("backendUrl is required".into()))
            .and_then(|u| validate::backend_url(&u))?;
        let offline = o.offline.unwrap_or_default();
        Ok(Settings {
            backend_url,
            db_name: database_name(o.database_name)?,
            offline_enabled: offline.enabled.unwrap_or(true),
            require_persistent_storage: offline.require_persistent_storage.unwrap_or(false),
            retention_ms: integer(
                offline.retention_ms,
                "offline.retentionMs",
                DEFAULT_RETENTION_MS,
                60_000,
                u32::MAX,
            )?,
            limits: OfflineLimits {
                transaction_limit: limit_map(offline.transaction_limit, "transactionLimit")?,
                stored_amount_limit: limit_map(offline.stored_amount_limit, "storedAmountLimit")?,
                max_stored_payments: offline
                    .max_stored_payments
                    .map(|n| integer(Some(n), "offline.maxStoredPayments", 0, 0, 1_000_000))
                    .transpose()?,
                max_stored_age_ms: offline
                    .max_stored_age_ms
                    .map(|n| {
                        integer(Some(n), "offline.maxStoredAgeMs", 0, 60_000, u32::MAX)
                            .map(u64::from)
                    })
                    .transpose()?,
            },
            request_timeout_ms: integer(
                o.request_timeout_ms,
                "requestTimeoutMs",
                DEFAULT_REQUEST_TIMEOUT_MS,
                100,
                120_000,
            )?,
            forward_interval_ms: integer(
                o.forward_interval_ms,
                "forwardIntervalMs",
                10_000,
                500,
                3_600_000,
            )?,
            forward_concurrency: integer(
                o.forward_concurrency,
                "forwardConcurrency",
                DEFAULT_CONCURRENCY as u32,
                1,
                16,
            )? as usize,
            offline_storage: o.offline_storage.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field names serde's derive gives `deserialize_struct` (a deserializer that only
    /// records them).
    fn struct_fields<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
        struct Fields(std::cell::RefCell<Vec<&'static str>>);
        impl<'de> serde::Deserializer<'de> for &Fields {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: serde::de::Visitor<'de>>(
                self,
                _: V,
            ) -> Result<V::Value, Self::Error> {
                Err(serde::de::Error::custom("fields only"))
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                self.0.borrow_mut().extend_from_slice(fields);
                Err(serde::de::Error::custom("fields only"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string bytes byte_buf
                option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let fields = Fields(std::cell::RefCell::new(Vec::new()));
        let _ = T::deserialize(&fields);
        fields.0.into_inner()
    }

    #[test]
    fn the_option_keys_are_the_fields_and_the_callbacks() {
        let fields = struct_fields::<TerminalOptions>();
        assert!(!fields.is_empty());
        let callbacks: Vec<&str> = OPTION_KEYS
            .iter()
            .copied()
            .filter(|k| !fields.contains(k))
            .collect();
        for field in &fields {
            assert!(OPTION_KEYS.contains(field), "{field} is not in OPTION_KEYS");
        }
        assert!(
            callbacks
                .iter()
                .all(|k| *k == "fetchConnectionToken" || k.starts_with("on")),
            "OPTION_KEYS names what is neither a field nor a callback: {callbacks:?}"
        );
    }

    fn parse(json: &str) -> Result<Settings, PosError> {
        let o: TerminalOptions =
            serde_json::from_str(json).map_err(|e| PosError::InvalidArgument(e.to_string()))?;
        Settings::from_options(o)
    }

    #[test]
    fn defaults() {
        let s = parse(r#"{"backendUrl":"https://pos.example.com/"}"#).unwrap();
        assert_eq!(s.backend_url, "https://pos.example.com");
        assert_eq!(s.db_name, "pos-terminal");
        assert!(s.offline_enabled);
        assert_eq!(s.request_timeout_ms, 8_000);
        assert_eq!(s.forward_interval_ms, 10_000);
        assert_eq!(s.retention_ms, DEFAULT_RETENTION_MS);
        assert_eq!(s.forward_concurrency, 3);
        assert_eq!(s.limits, OfflineLimits::default());
        assert_eq!(s.offline_storage, OfflineStorage::Sdk);
    }

    #[test]
    fn offline_storage_names_an_agent() {
        let s = parse(r#"{"backendUrl":"https://x","offlineStorage":"reader"}"#).unwrap();
        assert_eq!(s.offline_storage, OfflineStorage::Reader);
        let s = parse(r#"{"backendUrl":"https://x","offlineStorage":"sdk"}"#).unwrap();
        assert_eq!(s.offline_storage, OfflineStorage::Sdk);
        for bad in [
            r#"{"backendUrl":"https://x","offlineStorage":"cloud"}"#,
            r#"{"backendUrl":"https://x","offlineStorage":true}"#,
        ] {
            assert_eq!(parse(bad).unwrap_err().code(), "invalid_argument", "{bad}");
        }
    }

    #[test]
    fn offline_limits_are_checked() {
        let s = parse(
            r#"{"backendUrl":"http://127.0.0.1:1","offline":{"enabled":false,
                "transactionLimit":{"jpy":10000},"maxStoredPayments":3}}"#,
        )
        .unwrap();
        assert!(!s.offline_enabled);
        assert_eq!(s.limits.transaction_limit.get("jpy"), Some(&10_000));
        assert_eq!(s.limits.max_stored_payments, Some(3));
        let s = parse(
            r#"{"backendUrl":"https://x","offline":{"maxStoredAgeMs":86400000,
                "requirePersistentStorage":true}}"#,
        )
        .unwrap();
        assert_eq!(s.limits.max_stored_age_ms, Some(86_400_000));
        assert!(s.require_persistent_storage);
        assert!(parse(r#"{"backendUrl":"https://x","offline":{"maxStoredAgeMs":5}}"#).is_err());
        for bad in [
            r#"{"backendUrl":"https://x","offline":{"transactionLimit":{"USD":1}}}"#,
            r#"{"backendUrl":"https://x","offline":{"transactionLimit":{"usd":1.5}}}"#,
            r#"{"backendUrl":"https://x","offline":{"maxStoredPayments":-1}}"#,
            r#"{"backendUrl":"https://x","offline":{"unknownLimit":1}}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_are_invalid_arguments() {
        for bad in [
            r#"{}"#,
            r#"{"backendUrl":"ftp://x"}"#,
            r#"{"backendUrl":"https://x","requestTimeoutMs":5}"#,
            r#"{"backendUrl":"https://x","forwardIntervalMs":1.5}"#,
            r#"{"backendUrl":"https://x","databaseName":""}"#,
            r#"{"backendUrl":"https://x","forwardConcurrency":0}"#,
        ] {
            assert_eq!(parse(bad).unwrap_err().code(), "invalid_argument", "{bad}");
        }
    }
}
