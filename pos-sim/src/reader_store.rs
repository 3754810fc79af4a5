//! The simulated readers' own durable store: the payments a reader stored while its link to
//! the backend was down, sealed at rest, and the `forwarded` reports it still owes the POS.
//!
//! One SQLite file beside pos-sim's database (`<db>.readers.sqlite`), one row per (reader,
//! payment). The payment body (card payload, card summary, metadata) is sealed with
//! AES-256-GCM under a key of its reader, the AAD binding the row to its reader id and payment
//! id; amount, currency, state and times stay in clear for `store_status`. A real reader keeps
//! its key in a secure element; this simulator keeps it in the same file (`reader_keys`).
//! Once a payment is forwarded its sealed body is erased: only the report remains.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pos_protocol::backend::PaymentBody;
use pos_protocol::reader::ForwardResult;
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::seal::{self, NONCE_LEN};

/// AAD prefix of a sealed row; `reader_id|payment_id` follows.
pub const AAD_PREFIX: &str = "pos-sim/reader-store/v1|";
/// A reader refuses to store more pending payments than this (`storage_full`).
pub const MAX_PENDING: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ReaderStoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("reader key has {0} bytes, expected 32")]
    BadKey(usize),
    #[error("a stored payment could not be sealed")]
    Seal,
    #[error("a stored payment does not open (wrong key or tampered)")]
    Open,
    #[error("a stored row is not what this version wrote")]
    Corrupt,
}

/// Where a stored payment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    /// Stored, not yet forwarded.
    Pending,
    /// The backend approved it.
    Forwarded,
    /// The backend declined it.
    Declined,
    /// The backend refused it for another final reason.
    Failed,
}

impl RowState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Forwarded => "forwarded",
            Self::Declined => "declined",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "forwarded" => Some(Self::Forwarded),
            "declined" => Some(Self::Declined),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    fn of(result: &ForwardResult) -> Self {
        match result {
            ForwardResult::Approved { .. } => Self::Forwarded,
            ForwardResult::Declined { .. } => Self::Declined,
            ForwardResult::Rejected { .. } => Self::Failed,
        }
    }
}

/// A stored payment as the reader sees it without opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub payment_id: String,
    pub state: RowState,
    pub stored_at: u64,
    pub amount: u64,
    pub currency: String,
    /// Set once forwarded.
    pub result: Option<ForwardResult>,
}

/// What a reader owes the POS after forwarding: the `forwarded` message's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub payment_id: String,
    pub amount: u64,
    pub currency: String,
    pub stored_at: u64,
    pub result: ForwardResult,
}

/// Pending payments of one reader: count and amounts per currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub count: u32,
    pub amounts: BTreeMap<String, u64>,
}

/// What [`ReaderStore::store`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Newly stored at this time.
    New { stored_at: u64 },
    /// A payment with this id was already there (stored once, never twice).
    Existing(Entry),
}

pub struct ReaderStore {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reader_keys (
    reader_id TEXT PRIMARY KEY,
    key       BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS stored_payments (
    reader_id    TEXT NOT NULL,
    payment_id   TEXT NOT NULL,
    state        TEXT NOT NULL,
    stored_at    INTEGER NOT NULL,
    amount       INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    sealed       BLOB,
    result       TEXT,
    finished_at  INTEGER,
    report_acked INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (reader_id, payment_id)
);
";

fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn aad(reader_id: &str, payment_id: &str) -> Vec<u8> {
    format!("{AAD_PREFIX}{reader_id}|{payment_id}").into_bytes()
}

type RawEntry = (String, String, i64, i64, String, Option<String>);

/// A row selected as `payment_id, state, stored_at, amount, currency, result`.
fn raw_entry(row: &Row) -> rusqlite::Result<RawEntry> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

impl ReaderStore {
    /// Opens (creating if needed) the readers' database file.
    pub fn open(path: &Path) -> Result<Self, ReaderStoreError> {
        Self::init(Connection::open(path)?)
    }

    /// A private in-memory database, for tests.
    #[cfg(test)]
    pub fn open_in_memory() -> Result<Self, ReaderStoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, ReaderStoreError> {
        conn.busy_timeout(Duration::from_secs(5))?;
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // SQLite rolled back whatever a panicking holder had open.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The reader's sealing key: created on first use, then kept.
    fn key(conn: &Connection, reader_id: &str) -> Result<[u8; 32], ReaderStoreError> {
        let existing: Option<Vec<u8>> = conn
            .query_row(
                "SELECT key FROM reader_keys WHERE reader_id = ?1",
                [reader_id],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(bytes) = existing {
            let len = bytes.len();
            return bytes.try_into().map_err(|_| ReaderStoreError::BadKey(len));
        }
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        conn.execute(
            "INSERT INTO reader_keys (reader_id, key) VALUES (?1, ?2)",
            params![reader_id, key.as_slice()],
        )?;
        Ok(key)
    }

    /// Stores `body` sealed for `reader_id`, unless a payment with its id is already there.
    pub fn store(
        &self,
        reader_id: &str,
        body: &PaymentBody,
        now: u64,
    ) -> Result<Stored, ReaderStoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        if let Some(entry) = Self::find_in(&tx, reader_id, &body.id)? {
            return Ok(Stored::Existing(entry));
        }
        let key = Self::key(&tx, reader_id)?;
        let plaintext = serde_json::to_vec(body).map_err(|_| ReaderStoreError::Seal)?;
        let sealed = seal::seal(&key, &plaintext, &aad(reader_id, &body.id))
            .map_err(|_| ReaderStoreError::Seal)?;
        tx.execute(
            "INSERT INTO stored_payments
                (reader_id, payment_id, state, stored_at, amount, currency, sealed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                reader_id,
                body.id,
                RowState::Pending.as_str(),
                to_sql(now),
                to_sql(body.amount),
                body.currency,
                sealed
            ],
        )?;
        tx.commit()?;
        Ok(Stored::New { stored_at: now })
    }

    fn find_in(
        conn: &Connection,
        reader_id: &str,
        payment_id: &str,
    ) -> Result<Option<Entry>, ReaderStoreError> {
        let raw: Option<RawEntry> = conn
            .query_row(
                "SELECT payment_id, state, stored_at, amount, currency, result
                 FROM stored_payments WHERE reader_id = ?1 AND payment_id = ?2",
                params![reader_id, payment_id],
                raw_entry,
            )
            .optional()?;
        raw.map(entry_of).transpose()
    }

    /// The payment `payment_id` of `reader_id`, if stored.
    pub fn find(
        &self,
        reader_id: &str,
        payment_id: &str,
    ) -> Result<Option<Entry>, ReaderStoreError> {
        Self::find_in(&self.lock(), reader_id, payment_id)
    }

    /// Ids of the reader's pending payments, oldest first.
    pub fn pending(&self, reader_id: &str) -> Result<Vec<String>, ReaderStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT payment_id FROM stored_payments WHERE reader_id = ?1 AND state = 'pending'
             ORDER BY stored_at, payment_id",
        )?;
        let ids = stmt
            .query_map([reader_id], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }

    /// Opens a pending payment: its body and when it was stored. `None` if not pending.
    pub fn open_pending(
        &self,
        reader_id: &str,
        payment_id: &str,
    ) -> Result<Option<(PaymentBody, u64)>, ReaderStoreError> {
        let conn = self.lock();
        let row: Option<(Option<Vec<u8>>, i64, i64, String)> = conn
            .query_row(
                "SELECT sealed, stored_at, amount, currency FROM stored_payments
                 WHERE reader_id = ?1 AND payment_id = ?2 AND state = 'pending'",
                params![reader_id, payment_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()?;
        let Some((sealed, stored_at, amount, currency)) = row else {
            return Ok(None);
        };
        let sealed = sealed.ok_or(ReaderStoreError::Corrupt)?;
        if sealed.len() <= NONCE_LEN {
            return Err(ReaderStoreError::Corrupt);
        }
        let key = Self::key(&conn, reader_id)?;
        let plaintext = seal::open(&key, &sealed, &aad(reader_id, payment_id))
            .map_err(|_| ReaderStoreError::Open)?;
        let body: PaymentBody =
            serde_json::from_slice(&plaintext).map_err(|_| ReaderStoreError::Corrupt)?;
        // Amount and currency are also in clear (for `store_status` and repeated `process`
        // answers), outside the AAD: they must agree with the sealed body.
        if body.id != payment_id || body.amount != from_sql(amount) || body.currency != currency {
            return Err(ReaderStoreError::Corrupt);
        }
        Ok(Some((body, from_sql(stored_at))))
    }

    /// Records the final answer of a forwarded payment, erases its sealed body, and keeps the
    /// report until the POS acknowledges it. `None` if it was not pending.
    pub fn finish(
        &self,
        reader_id: &str,
        payment_id: &str,
        result: &ForwardResult,
        now: u64,
    ) -> Result<Option<Report>, ReaderStoreError> {
        let conn = self.lock();
        let json = serde_json::to_string(result).map_err(|_| ReaderStoreError::Corrupt)?;
        let changed = conn.execute(
            "UPDATE stored_payments
             SET state = ?3, result = ?4, finished_at = ?5, sealed = NULL, report_acked = 0
             WHERE reader_id = ?1 AND payment_id = ?2 AND state = 'pending'",
            params![
                reader_id,
                payment_id,
                RowState::of(result).as_str(),
                json,
                to_sql(now)
            ],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        let entry =
            Self::find_in(&conn, reader_id, payment_id)?.ok_or(ReaderStoreError::Corrupt)?;
        Ok(report_of(entry))
    }

    /// Reports the POS has not acknowledged yet, oldest first.
    pub fn unacked_reports(&self, reader_id: &str) -> Result<Vec<Report>, ReaderStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT payment_id, state, stored_at, amount, currency, result FROM stored_payments
             WHERE reader_id = ?1 AND state != 'pending' AND report_acked = 0
             ORDER BY finished_at, payment_id",
        )?;
        let raws = stmt
            .query_map([reader_id], raw_entry)?
            .collect::<Result<Vec<RawEntry>, _>>()?;
        let mut reports = Vec::with_capacity(raws.len());
        for raw in raws {
            if let Some(report) = report_of(entry_of(raw)?) {
                reports.push(report);
            }
        }
        Ok(reports)
    }

    /// The POS took note of the report for `payment_id`. `false` if there was none to ack.
    pub fn ack(&self, reader_id: &str, payment_id: &str) -> Result<bool, ReaderStoreError> {
        let changed = self.lock().execute(
            "UPDATE stored_payments SET report_acked = 1
             WHERE reader_id = ?1 AND payment_id = ?2 AND state != 'pending' AND report_acked = 0",
            params![reader_id, payment_id],
        )?;
        Ok(changed > 0)
    }

    /// The reader's pending payments: count and amounts per currency.
    pub fn summary(&self, reader_id: &str) -> Result<Summary, ReaderStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT currency, COUNT(*), SUM(amount) FROM stored_payments
             WHERE reader_id = ?1 AND state = 'pending' GROUP BY currency",
        )?;
        let rows = stmt
            .query_map([reader_id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut summary = Summary::default();
        for (currency, count, sum) in rows {
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            summary.count = summary.count.saturating_add(count);
            summary.amounts.insert(currency, from_sql(sum));
        }
        Ok(summary)
    }
}

fn entry_of(raw: RawEntry) -> Result<Entry, ReaderStoreError> {
    let (payment_id, state, stored_at, amount, currency, result) = raw;
    let state = RowState::parse(&state).ok_or(ReaderStoreError::Corrupt)?;
    let result = match result {
        Some(json) => Some(serde_json::from_str(&json).map_err(|_| ReaderStoreError::Corrupt)?),
        None => None,
    };
    Ok(Entry {
        payment_id,
        state,
        stored_at: from_sql(stored_at),
        amount: from_sql(amount),
        currency,
        result,
    })
}

fn report_of(entry: Entry) -> Option<Report> {
    Some(Report {
        result: entry.result?,
        payment_id: entry.payment_id,
        amount: entry.amount,
        currency: entry.currency,
        stored_at: entry.stored_at,
    })
}

#[cfg(test)]
mod tests {
    use pos_protocol::backend::{CaptureMethod, PaymentStatus};
    use pos_protocol::{CardSummary, EntryMode, SortedMap};

    use super::*;

    pub fn body(id: &str, amount: u64, currency: &str) -> PaymentBody {
        PaymentBody {
            id: id.into(),
            amount,
            currency: currency.into(),
            capture_method: CaptureMethod::Automatic,
            card_payload: "c2VhbGVk".into(),
            card: CardSummary {
                brand: "visa".into(),
                last4: "4242".into(),
                exp_month: 12,
                exp_year: 2030,
                entry_mode: Some(EntryMode::Chip),
                pin_verified: true,
            },
            reader_id: "rdr_sim_1".into(),
            offline: None,
            metadata: SortedMap::new(),
        }
    }

    /// Changes the stored rows behind the store's back.
    fn tamper(store: &ReaderStore, sql: &str) {
        store.lock().execute(sql, []).expect("tamper");
    }

    #[test]
    fn stores_once_seals_and_forwards() {
        let store = ReaderStore::open_in_memory().expect("store");
        assert_eq!(
            store
                .store("rdr_sim_1", &body("pay_1", 100, "usd"), 5)
                .expect("store"),
            Stored::New { stored_at: 5 }
        );
        store
            .store("rdr_sim_1", &body("pay_2", 50, "usd"), 6)
            .expect("store");
        store
            .store("rdr_sim_1", &body("pay_3", 7, "eur"), 7)
            .expect("store");
        let again = store
            .store("rdr_sim_1", &body("pay_1", 100, "usd"), 9)
            .expect("again");
        assert!(matches!(
            again,
            Stored::Existing(Entry {
                stored_at: 5,
                state: RowState::Pending,
                ..
            })
        ));
        let summary = store.summary("rdr_sim_1").expect("summary");
        assert_eq!(summary.count, 3);
        assert_eq!(summary.amounts.get("usd"), Some(&150));
        assert_eq!(summary.amounts.get("eur"), Some(&7));
        assert_eq!(store.summary("rdr_sim_2").expect("other").count, 0);
        assert_eq!(
            store.pending("rdr_sim_1").expect("pending"),
            ["pay_1", "pay_2", "pay_3"]
        );

        // Sealed at rest: the card payload is not in the file in clear.
        let sealed: Vec<u8> = store
            .lock()
            .query_row(
                "SELECT sealed FROM stored_payments WHERE payment_id = 'pay_1'",
                [],
                |r| r.get(0),
            )
            .expect("row");
        assert!(!sealed.windows(8).any(|w| w == b"c2VhbGVk"));
        let (opened, stored_at) = store
            .open_pending("rdr_sim_1", "pay_1")
            .expect("open")
            .expect("pending");
        assert_eq!((opened, stored_at), (body("pay_1", 100, "usd"), 5));
        // The AAD binds the row to its reader.
        tamper(
            &store,
            "UPDATE stored_payments SET reader_id = 'rdr_sim_2' WHERE payment_id = 'pay_2'",
        );
        assert!(matches!(
            store.open_pending("rdr_sim_2", "pay_2"),
            Err(ReaderStoreError::Open)
        ));
        // The clear amount must agree with the sealed one.
        tamper(
            &store,
            "UPDATE stored_payments SET amount = 1 WHERE payment_id = 'pay_3'",
        );
        assert!(matches!(
            store.open_pending("rdr_sim_1", "pay_3"),
            Err(ReaderStoreError::Corrupt)
        ));

        let approved = ForwardResult::Approved {
            payment_intent: "pi_1".into(),
            status: PaymentStatus::Succeeded,
        };
        let report = store
            .finish("rdr_sim_1", "pay_1", &approved, 10)
            .expect("finish")
            .expect("report");
        assert_eq!((report.amount, report.stored_at), (100, 5));
        assert_eq!(
            store
                .finish("rdr_sim_1", "pay_1", &approved, 11)
                .expect("twice"),
            None
        );
        assert_eq!(
            store.open_pending("rdr_sim_1", "pay_1").expect("done"),
            None
        );
        assert_eq!(
            store.unacked_reports("rdr_sim_1").expect("reports"),
            [report]
        );
        assert!(store.ack("rdr_sim_1", "pay_1").expect("ack"));
        assert!(!store.ack("rdr_sim_1", "pay_1").expect("ack twice"));
        assert!(store
            .unacked_reports("rdr_sim_1")
            .expect("reports")
            .is_empty());
        assert_eq!(store.summary("rdr_sim_1").expect("summary").count, 1);
        let found = store
            .find("rdr_sim_1", "pay_1")
            .expect("find")
            .expect("entry");
        assert_eq!(
            (found.state, found.result),
            (RowState::Forwarded, Some(approved))
        );
    }

    #[test]
    fn survives_reopening_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.sqlite");
        {
            let store = ReaderStore::open(&path).expect("open");
            store
                .store("rdr_sim_1", &body("pay_1", 100, "usd"), 5)
                .expect("store");
        }
        let store = ReaderStore::open(&path).expect("reopen");
        let (opened, _) = store
            .open_pending("rdr_sim_1", "pay_1")
            .expect("open")
            .expect("pending");
        assert_eq!(opened.amount, 100);
    }
}
