//! The backend's SQLite file: settings (the card key), issued connection tokens and the
//! permanent idempotency records of payments.
//!
//! One connection behind a mutex: every read-check-write (the idempotency decision above all)
//! runs while holding it, so two requests with the same key can never both be "first".

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::card_crypto::CardKey;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored card key is {0} bytes, expected 32")]
    BadKey(usize),
}

/// What the backend decided for a payment; the `outcome` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentOutcome {
    Succeeded,
    RequiresCapture,
    Declined,
    /// Refused before deciding (e.g. an undecryptable card payload).
    Failed,
}

impl PaymentOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::RequiresCapture => "requires_capture",
            Self::Declined => "declined",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "succeeded" => Self::Succeeded,
            "requires_capture" => Self::RequiresCapture,
            "declined" => Self::Declined,
            _ => Self::Failed,
        }
    }
}

/// An HTTP answer as stored: replays return exactly this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: String,
}

/// A payment seen for the first time, with the answer to store for its key.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub amount: u64,
    pub currency: String,
    pub outcome: PaymentOutcome,
    pub decline_code: Option<String>,
    pub payment_intent: Option<String>,
    pub offline: bool,
    pub first_seen: u64,
    pub answer: StoredAnswer,
}

/// How a request with an idempotency key was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotent {
    /// First request with this key: the decision was made and stored.
    First(StoredAnswer),
    /// Same key, same fingerprint: the stored first answer.
    Replay(StoredAnswer),
    /// Same key, different fingerprint.
    Conflict,
}

/// One row of `GET /_sim/payments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentRecord {
    pub key: String,
    pub amount: u64,
    pub currency: String,
    pub outcome: PaymentOutcome,
    pub decline_code: Option<String>,
    pub payment_intent: Option<String>,
    pub requests: u64,
    pub offline: bool,
    pub first_seen: u64,
}

pub struct Store {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS settings (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    secret     TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS payments (
    key            TEXT PRIMARY KEY,
    fingerprint    TEXT NOT NULL,
    status_code    INTEGER NOT NULL,
    response_body  TEXT NOT NULL,
    amount         INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    decline_code   TEXT,
    payment_intent TEXT,
    offline        INTEGER NOT NULL,
    first_seen     INTEGER NOT NULL,
    requests       INTEGER NOT NULL
);
";

const CARD_KEY_SETTING: &str = "card_key";

impl Store {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::init(Connection::open(path)?)
    }

    /// A private in-memory database, for tests.
    #[cfg(test)]
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(Duration::from_secs(5))?;
        // `journal_mode` answers with the mode in force ("memory" for in-memory databases).
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// The connection. A panic while it was held poisons the mutex, but SQLite rolled back
    /// whatever that request had open, so later requests go on instead of all failing.
    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        Ok(self.conn.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Panics while holding the connection, as a bug in a handler would (for tests).
    #[cfg(test)]
    pub fn poison(self: &std::sync::Arc<Self>) {
        let store = self.clone();
        let _ = std::thread::spawn(move || {
            let _held = store.conn.lock();
            panic!("a handler panicked while holding the database");
        })
        .join();
    }

    /// The card key shared by readers and backend: created on first use, then kept.
    pub fn card_key(&self) -> Result<CardKey, StoreError> {
        let conn = self.lock()?;
        let existing: Option<Vec<u8>> = conn
            .query_row(
                "SELECT value FROM settings WHERE name = ?1",
                [CARD_KEY_SETTING],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(bytes) = existing {
            let len = bytes.len();
            let bytes: [u8; 32] = bytes.try_into().map_err(|_| StoreError::BadKey(len))?;
            return Ok(CardKey::from_bytes(bytes));
        }
        let key = CardKey::random();
        conn.execute(
            "INSERT INTO settings (name, value) VALUES (?1, ?2)",
            params![CARD_KEY_SETTING, key.as_bytes().as_slice()],
        )?;
        Ok(key)
    }

    pub fn insert_token(&self, secret: &str, created_at: u64) -> Result<(), StoreError> {
        self.lock()?.execute(
            "INSERT INTO tokens (secret, created_at) VALUES (?1, ?2)",
            params![secret, to_sql_int(created_at)],
        )?;
        Ok(())
    }

    pub fn token_exists(&self, secret: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = self
            .lock()?
            .query_row("SELECT 1 FROM tokens WHERE secret = ?1", [secret], |row| {
                row.get(0)
            })
            .optional()?;
        Ok(found.is_some())
    }

    /// The idempotency rule, atomically: a known key is counted and answered from the store
    /// (or refused when its fingerprint differs); an unknown key is decided by `decide` and
    /// stored with its answer. `decide` runs under the lock, so it must be quick and pure.
    pub fn answer_once<F>(
        &self,
        key: &str,
        fingerprint: &str,
        decide: F,
    ) -> Result<Idempotent, StoreError>
    where
        F: FnOnce() -> NewPayment,
    {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let existing: Option<(String, u16, String)> = tx
            .query_row(
                "SELECT fingerprint, status_code, response_body FROM payments WHERE key = ?1",
                [key],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let answer = match existing {
            Some((stored_fingerprint, status, body)) => {
                tx.execute(
                    "UPDATE payments SET requests = requests + 1 WHERE key = ?1",
                    [key],
                )?;
                if stored_fingerprint == fingerprint {
                    Idempotent::Replay(StoredAnswer { status, body })
                } else {
                    Idempotent::Conflict
                }
            }
            None => {
                let new = decide();
                tx.execute(
                    "INSERT INTO payments (key, fingerprint, status_code, response_body, amount,
                        currency, outcome, decline_code, payment_intent, offline, first_seen,
                        requests)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1)",
                    params![
                        key,
                        fingerprint,
                        new.answer.status,
                        new.answer.body,
                        to_sql_int(new.amount),
                        new.currency,
                        new.outcome.as_str(),
                        new.decline_code,
                        new.payment_intent,
                        new.offline,
                        to_sql_int(new.first_seen),
                    ],
                )?;
                Idempotent::First(new.answer)
            }
        };
        tx.commit()?;
        Ok(answer)
    }

    /// Every payment key the backend has seen, in first-seen order.
    pub fn list_payments(&self) -> Result<Vec<PaymentRecord>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(
            "SELECT key, amount, currency, outcome, decline_code, payment_intent, requests,
                    offline, first_seen
             FROM payments ORDER BY first_seen, rowid",
        )?;
        let rows = stmt.query_map([], |row| {
            let outcome: String = row.get(3)?;
            Ok(PaymentRecord {
                key: row.get(0)?,
                amount: from_sql_int(row.get(1)?),
                currency: row.get(2)?,
                outcome: PaymentOutcome::parse(&outcome),
                decline_code: row.get(4)?,
                payment_intent: row.get(5)?,
                requests: from_sql_int(row.get(6)?),
                offline: row.get(7)?,
                first_seen: from_sql_int(row.get(8)?),
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }
}

/// SQLite integers are i64; every value stored here (amounts ≤ 99 999 999, ms timestamps)
/// fits, and anything larger saturates instead of wrapping.
fn to_sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql_int(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_key_is_created_once_and_kept_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sim.db");
        let first = Store::open(&path).expect("open").card_key().expect("key");
        let again = Store::open(&path).expect("open").card_key().expect("key");
        assert_eq!(first.as_bytes(), again.as_bytes());
    }

    #[test]
    fn tokens_are_remembered() {
        let store = Store::open_in_memory().expect("open");
        assert!(!store.token_exists("pst_test_x").expect("query"));
        store.insert_token("pst_test_x", 1).expect("insert");
        assert!(store.token_exists("pst_test_x").expect("query"));
    }
}
