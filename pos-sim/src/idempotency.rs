//! The payment fingerprint behind the idempotency rule: same `Idempotency-Key` + same
//! fingerprint → the stored first answer, forever; different fingerprint → 409.
//!
//! The fingerprint covers the whole body except `offline`: that field is transport metadata.
//! An online attempt that timed out and the later offline forward of the same payment carry
//! the same key and must be deduplicated, not refused as a reused key.

use pos_protocol::backend::PaymentBody;
use sha2::{Digest, Sha256};

/// Hex SHA-256 of the JSON body with `offline` cleared.
pub fn fingerprint(body: &PaymentBody) -> String {
    let mut canonical = body.clone();
    canonical.offline = None;
    // Field order is fixed by the struct and metadata is sorted by key, so this is canonical.
    let json = serde_json::to_vec(&canonical).unwrap_or_default();
    format!("{:x}", Sha256::digest(&json))
}

#[cfg(test)]
mod tests {
    use pos_protocol::backend::{CaptureMethod, OfflineInfo};
    use pos_protocol::{CardSummary, SortedMap};

    use super::*;
    use crate::store::{Idempotent, NewPayment, PaymentOutcome, Store, StoredAnswer};

    fn body(amount: u64) -> PaymentBody {
        PaymentBody {
            id: "pay_1".into(),
            amount,
            currency: "usd".into(),
            capture_method: CaptureMethod::Automatic,
            card_payload: "cipher".into(),
            card: CardSummary {
                brand: "visa".into(),
                last4: "4242".into(),
                exp_month: 12,
                exp_year: 2030,
                entry_mode: None,
                pin_verified: false,
            },
            reader_id: "rdr_sim_1".into(),
            offline: None,
            metadata: SortedMap::new(),
        }
    }

    fn new_payment(body: &PaymentBody, intent: &str) -> Result<NewPayment, StoredAnswer> {
        Ok(NewPayment {
            amount: body.amount,
            currency: body.currency.clone(),
            outcome: PaymentOutcome::Succeeded,
            decline_code: None,
            payment_intent: Some(intent.into()),
            offline: body.offline.is_some(),
            first_seen: 1,
            answer: StoredAnswer {
                status: 200,
                body: format!(r#"{{"payment_intent":"{intent}","status":"succeeded"}}"#),
            },
        })
    }

    #[test]
    fn offline_field_is_excluded_from_the_fingerprint() {
        let online = body(1000);
        let mut offline = online.clone();
        offline.offline = Some(OfflineInfo { stored_at: 42 });
        assert_eq!(fingerprint(&online), fingerprint(&offline));
    }

    #[test]
    fn every_other_field_is_in_the_fingerprint() {
        let base = fingerprint(&body(1000));
        assert_ne!(base, fingerprint(&body(1001)));
        let mut b = body(1000);
        b.metadata.insert("order".into(), "7".into());
        assert_ne!(base, fingerprint(&b));
        let mut b = body(1000);
        b.capture_method = CaptureMethod::Manual;
        assert_ne!(base, fingerprint(&b));
        let mut b = body(1000);
        b.card_payload = "other".into();
        assert_ne!(base, fingerprint(&b));
        assert_eq!(base.len(), 64);
    }

    #[test]
    fn fingerprint_is_lowercase_hex_sha256_of_the_canonical_json() {
        // Pinned: fingerprints already stored in a pos-sim.db must keep matching.
        assert_eq!(
            fingerprint(&body(1000)),
            "e9bdb1d1aed209bc7560d710a24db72a7dea86ebeed1e112346b3390938a6c89"
        );
    }

    #[test]
    fn replay_returns_first_answer_and_counts() {
        let store = Store::open_in_memory().expect("store");
        let b = body(1000);
        let fp = fingerprint(&b);
        let first = store
            .answer_once("pay_1", &fp, None, || new_payment(&b, "pi_sim_first"))
            .expect("first");
        let Idempotent::First(first_answer) = first else {
            panic!("expected First, got {first:?}");
        };
        let replay = store
            .answer_once("pay_1", &fp, None, || new_payment(&b, "pi_sim_second"))
            .expect("replay");
        assert_eq!(replay, Idempotent::Replay(first_answer.clone()));
        assert!(first_answer.body.contains("pi_sim_first"));

        let payments = store.list_payments().expect("list");
        assert_eq!(payments.len(), 1);
        assert_eq!(payments[0].requests, 2);
        assert_eq!(payments[0].payment_intent.as_deref(), Some("pi_sim_first"));
    }

    #[test]
    fn different_body_is_a_conflict_and_is_counted() {
        let store = Store::open_in_memory().expect("store");
        let b = body(1000);
        store
            .answer_once("pay_1", &fingerprint(&b), None, || {
                new_payment(&b, "pi_sim_a")
            })
            .expect("first");
        let other = body(2000);
        let answer = store
            .answer_once("pay_1", &fingerprint(&other), None, || {
                new_payment(&other, "pi_sim_b")
            })
            .expect("conflict");
        assert_eq!(answer, Idempotent::Conflict);
        let payments = store.list_payments().expect("list");
        assert_eq!(payments.len(), 1);
        assert_eq!(payments[0].requests, 2);
        assert_eq!(payments[0].amount, 1000, "stored answer unchanged");
        assert_eq!(payments[0].payment_intent.as_deref(), Some("pi_sim_a"));
    }

    #[test]
    fn offline_forward_of_a_timed_out_payment_is_a_replay() {
        let store = Store::open_in_memory().expect("store");
        let online = body(1000);
        store
            .answer_once("pay_1", &fingerprint(&online), None, || {
                new_payment(&online, "pi_sim_a")
            })
            .expect("first");
        let mut forwarded = online.clone();
        forwarded.offline = Some(OfflineInfo { stored_at: 99 });
        let answer = store
            .answer_once("pay_1", &fingerprint(&forwarded), None, || {
                new_payment(&forwarded, "pi_sim_b")
            })
            .expect("replay");
        assert!(matches!(answer, Idempotent::Replay(a) if a.body.contains("pi_sim_a")));
    }

    #[test]
    fn keys_are_permanent_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sim.db");
        let b = body(1000);
        let fp = fingerprint(&b);
        Store::open(&path)
            .expect("open")
            .answer_once("pay_1", &fp, None, || new_payment(&b, "pi_sim_a"))
            .expect("first");
        let again = Store::open(&path)
            .expect("reopen")
            .answer_once("pay_1", &fp, None, || new_payment(&b, "pi_sim_b"))
            .expect("replay");
        assert!(matches!(again, Idempotent::Replay(a) if a.body.contains("pi_sim_a")));
    }
}
