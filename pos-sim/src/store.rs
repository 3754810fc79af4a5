//! The backend's SQLite file: settings (the card key), issued connection tokens, reader
//! pairings, the permanent idempotency records of payments (with their capture state) and the
//! card payloads already charged.
//!
//! One connection behind a mutex: every read-check-write (the idempotency decision above all)
//! runs while holding it, so two requests with the same key can never both be "first".

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pos_protocol::backend::PaymentStatus;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

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

    /// The payment's state right after the decision: approved payments have one.
    pub fn initial_status(self) -> Option<PaymentStatus> {
        match self {
            Self::Succeeded => Some(PaymentStatus::Succeeded),
            Self::RequiresCapture => Some(PaymentStatus::RequiresCapture),
            Self::Declined | Self::Failed => None,
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
    /// New key, but its card payload was already charged under another key. Nothing stored.
    PayloadReused,
    /// New key, refused by the decision without storing anything (the answer to send).
    Refused(StoredAnswer),
}

/// What a capture or cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The payment is (now, or already) in `status`.
    Done {
        payment_intent: String,
        status: PaymentStatus,
    },
    /// No payment with this key.
    NotFound,
    /// Not possible from `state` (a declined or failed payment, a canceled one captured, a
    /// captured one canceled).
    Unexpected { state: &'static str },
}

/// One row of `GET /_sim/payments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentRecord {
    pub key: String,
    pub amount: u64,
    pub currency: String,
    pub outcome: PaymentOutcome,
    /// The approved payment's state now (`succeeded`, `requires_capture`, `canceled`); null
    /// for a declined or failed one.
    pub status: Option<PaymentStatus>,
    pub decline_code: Option<String>,
    pub payment_intent: Option<String>,
    pub requests: u64,
    /// `POST /v1/payments/{key}/capture` requests that reached this payment.
    pub captures: u64,
    /// `POST /v1/payments/{key}/cancel` requests that reached this payment.
    pub cancels: u64,
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
CREATE TABLE IF NOT EXISTS reader_pairings (
    secret_hash TEXT PRIMARY KEY,
    reader_id   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS card_payloads (
    payload_hash TEXT PRIMARY KEY,
    payment_id   TEXT NOT NULL
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
        migrate(&conn)?;
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

    /// Remembers a reader pairing credential (only its SHA-256 is stored).
    pub fn insert_pairing(
        &self,
        reader_id: &str,
        secret: &str,
        created_at: u64,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.lock()?.execute(
            "INSERT INTO reader_pairings (secret_hash, reader_id, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                sha256_hex(secret.as_bytes()),
                reader_id,
                to_sql_int(created_at),
                to_sql_int(expires_at),
            ],
        )?;
        Ok(())
    }

    /// Whether `secret` is a pairing credential issued for `reader_id` and not expired at
    /// `now_ms`. The readers check a POS's `hello.pairing` with it.
    pub fn pairing_valid(
        &self,
        reader_id: &str,
        secret: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        if secret.is_empty() {
            return Ok(false);
        }
        let found: Option<(String, i64)> = self
            .lock()?
            .query_row(
                "SELECT reader_id, expires_at FROM reader_pairings WHERE secret_hash = ?1",
                [sha256_hex(secret.as_bytes())],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(match found {
            Some((paired, expires_at)) => paired == reader_id && now_ms < from_sql_int(expires_at),
            None => false,
        })
    }

    /// The idempotency rule, atomically: a known key is counted and answered from the store
    /// (or refused when its fingerprint differs). For an unknown key, a card payload already
    /// charged under another key (`payload_hash`, from [`payload_hash`]) is refused; otherwise
    /// `decide` answers: `Ok` is stored with its answer (and the payload remembered, unless the
    /// payment failed before a decision), `Err` is a refusal stored nowhere. `decide` runs
    /// under the lock, so it must be quick and pure.
    pub fn answer_once<F>(
        &self,
        key: &str,
        fingerprint: &str,
        payload_hash: Option<&str>,
        decide: F,
    ) -> Result<Idempotent, StoreError>
    where
        F: FnOnce() -> Result<NewPayment, StoredAnswer>,
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
        if let Some((stored_fingerprint, status, body)) = existing {
            tx.execute(
                "UPDATE payments SET requests = requests + 1 WHERE key = ?1",
                [key],
            )?;
            tx.commit()?;
            return Ok(if stored_fingerprint == fingerprint {
                Idempotent::Replay(StoredAnswer { status, body })
            } else {
                Idempotent::Conflict
            });
        }
        if let Some(hash) = payload_hash {
            let charged_as: Option<String> = tx
                .query_row(
                    "SELECT payment_id FROM card_payloads WHERE payload_hash = ?1",
                    [hash],
                    |row| row.get(0),
                )
                .optional()?;
            if charged_as.is_some_and(|id| id != key) {
                return Ok(Idempotent::PayloadReused);
            }
        }
        let new = match decide() {
            Ok(new) => new,
            Err(refusal) => return Ok(Idempotent::Refused(refusal)),
        };
        tx.execute(
            "INSERT INTO payments (key, fingerprint, status_code, response_body, amount,
                currency, outcome, decline_code, payment_intent, offline, first_seen,
                requests, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, ?12)",
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
                new.outcome.initial_status().map(PaymentStatus::as_str),
            ],
        )?;
        if let (Some(hash), true) = (payload_hash, new.outcome != PaymentOutcome::Failed) {
            tx.execute(
                "INSERT OR IGNORE INTO card_payloads (payload_hash, payment_id) VALUES (?1, ?2)",
                params![hash, key],
            )?;
        }
        tx.commit()?;
        Ok(Idempotent::First(new.answer))
    }

    /// `POST /v1/payments/{key}/capture` (`capture` true) or `/cancel`, atomically: counted
    /// on the payment, then the state moves (or stays, for a repeat) or is refused.
    pub fn capture_or_cancel(&self, key: &str, capture: bool) -> Result<Transition, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let found: Option<(String, Option<String>, Option<String>)> = tx
            .query_row(
                "SELECT outcome, status, payment_intent FROM payments WHERE key = ?1",
                [key],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let Some((outcome, status, intent)) = found else {
            return Ok(Transition::NotFound);
        };
        let counter = if capture {
            "UPDATE payments SET captures = captures + 1 WHERE key = ?1"
        } else {
            "UPDATE payments SET cancels = cancels + 1 WHERE key = ?1"
        };
        tx.execute(counter, [key])?;
        let outcome = PaymentOutcome::parse(&outcome);
        // Rows written before the status column existed: their status is their outcome.
        let current = status
            .as_deref()
            .and_then(parse_status)
            .or_else(|| outcome.initial_status());
        let (Some(current), Some(intent)) = (current, intent) else {
            tx.commit()?;
            return Ok(Transition::Unexpected {
                state: outcome.as_str(),
            });
        };
        let next = match (current, capture) {
            (PaymentStatus::RequiresCapture, true) | (PaymentStatus::Succeeded, true) => {
                PaymentStatus::Succeeded
            }
            (PaymentStatus::RequiresCapture, false) | (PaymentStatus::Canceled, false) => {
                PaymentStatus::Canceled
            }
            (PaymentStatus::Canceled, true) | (PaymentStatus::Succeeded, false) => {
                tx.commit()?;
                return Ok(Transition::Unexpected {
                    state: current.as_str(),
                });
            }
        };
        tx.execute(
            "UPDATE payments SET status = ?2 WHERE key = ?1",
            params![key, next.as_str()],
        )?;
        tx.commit()?;
        Ok(Transition::Done {
            payment_intent: intent,
            status: next,
        })
    }

    /// Every payment key the backend has seen, in first-seen order.
    pub fn list_payments(&self) -> Result<Vec<PaymentRecord>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(
            "SELECT key, amount, currency, outcome, decline_code, payment_intent, requests,
                    offline, first_seen, status, captures, cancels
             FROM payments ORDER BY first_seen, rowid",
        )?;
        let rows = stmt.query_map([], |row| {
            let outcome = PaymentOutcome::parse(&row.get::<_, String>(3)?);
            let status: Option<String> = row.get(9)?;
            Ok(PaymentRecord {
                key: row.get(0)?,
                amount: from_sql_int(row.get(1)?),
                currency: row.get(2)?,
                outcome,
                status: status
                    .as_deref()
                    .and_then(parse_status)
                    .or_else(|| outcome.initial_status()),
                captures: from_sql_int(row.get(10)?),
                cancels: from_sql_int(row.get(11)?),
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

/// Columns added after the first release, for databases created before them. Each is
/// additive: old rows read as their defaults.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let mut stmt = conn.prepare("PRAGMA table_info(payments)")?;
    let names = stmt.query_map([], |row| row.get::<_, String>(1))?;
    let mut columns = Vec::new();
    for name in names {
        columns.push(name?);
    }
    for (column, ddl) in [
        // NULL in rows written before it: the status is then the outcome's.
        ("status", "ALTER TABLE payments ADD COLUMN status TEXT"),
        (
            "captures",
            "ALTER TABLE payments ADD COLUMN captures INTEGER NOT NULL DEFAULT 0",
        ),
        (
            "cancels",
            "ALTER TABLE payments ADD COLUMN cancels INTEGER NOT NULL DEFAULT 0",
        ),
    ] {
        if !columns.iter().any(|c| c == column) {
            conn.execute_batch(ddl)?;
        }
    }
    Ok(())
}

fn parse_status(s: &str) -> Option<PaymentStatus> {
    match s {
        "succeeded" => Some(PaymentStatus::Succeeded),
        "requires_capture" => Some(PaymentStatus::RequiresCapture),
        "canceled" => Some(PaymentStatus::Canceled),
        _ => None,
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The key of the `card_payloads` table: SHA-256 of the payload text.
pub fn payload_hash(payload: &str) -> String {
    sha256_hex(payload.as_bytes())
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

    #[test]
    fn a_database_from_before_the_status_column_keeps_working() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        {
            // The schema of the previous release, with one manual payment in it.
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(
                "CREATE TABLE settings (name TEXT PRIMARY KEY, value BLOB NOT NULL);
                 CREATE TABLE tokens (secret TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
                 CREATE TABLE payments (
                    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
                    status_code INTEGER NOT NULL, response_body TEXT NOT NULL,
                    amount INTEGER NOT NULL, currency TEXT NOT NULL, outcome TEXT NOT NULL,
                    decline_code TEXT, payment_intent TEXT, offline INTEGER NOT NULL,
                    first_seen INTEGER NOT NULL, requests INTEGER NOT NULL);
                 INSERT INTO payments VALUES ('pay_old', 'fp', 200, '{}', 1000, 'usd',
                    'requires_capture', NULL, 'pi_sim_old', 1, 5, 1);
                 INSERT INTO payments VALUES ('pay_declined', 'fp', 402, '{}', 1000, 'usd',
                    'declined', 'generic_decline', NULL, 0, 6, 1);",
            )
            .expect("old schema");
        }
        let store = Store::open(&path).expect("migrated");
        let list = store.list_payments().expect("list");
        assert_eq!(list[0].status, Some(PaymentStatus::RequiresCapture));
        assert_eq!((list[0].captures, list[0].cancels), (0, 0));
        assert_eq!(list[1].status, None);
        assert_eq!(
            store.capture_or_cancel("pay_old", true).expect("capture"),
            Transition::Done {
                payment_intent: "pi_sim_old".into(),
                status: PaymentStatus::Succeeded
            }
        );
        assert_eq!(
            store
                .capture_or_cancel("pay_declined", true)
                .expect("capture"),
            Transition::Unexpected { state: "declined" }
        );
        drop(store);
        // Opening again migrates nothing twice and keeps the state.
        let store = Store::open(&path).expect("reopen");
        let list = store.list_payments().expect("list");
        assert_eq!(list[0].status, Some(PaymentStatus::Succeeded));
        assert_eq!(list[0].captures, 1);
    }

    #[test]
    fn pairings_are_kept_across_reopen_as_hashes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sim.db");
        Store::open(&path)
            .expect("open")
            .insert_pairing("rdr_sim_1", "rpair_abc", 1, 100)
            .expect("insert");
        let store = Store::open(&path).expect("reopen");
        assert!(store
            .pairing_valid("rdr_sim_1", "rpair_abc", 99)
            .expect("query"));
        assert!(!store
            .pairing_valid("rdr_sim_1", "rpair_abc", 100)
            .expect("query"));
        let stored: String = store
            .lock()
            .expect("lock")
            .query_row("SELECT secret_hash FROM reader_pairings", [], |row| {
                row.get(0)
            })
            .expect("row");
        assert_ne!(stored, "rpair_abc", "the secret itself is not stored");
    }
}
