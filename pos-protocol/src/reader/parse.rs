//! The parsing behind `parse_reader_frame` and `parse_pos_frame`, written by hand to keep the
//! SDK's wasm package small.
//!
//! `#[derive(Deserialize)]` on an internally tagged enum (`#[serde(tag = "type")]`) first reads
//! the whole object into serde's `Content` buffer, then deserializes the variant from that
//! buffer. Every type reachable from such an enum is then deserialized a second way, through
//! serde's `ContentDeserializer`: for `PosMessage`, `ReaderMessage`, `ProcessResult` and
//! `ForwardResult`, `serde::private::de::content::*` alone was about 120 KB of the wasm module
//! before wasm-opt. Parsing by hand took 73 KB off the shipped module (18 KB gzipped).
//!
//! A `PosMessage` is parsed twice, straight from its text: a first pass reads only its
//! `type` (every other field is skipped as `IgnoredAny`), a second pass reads the fields of
//! that variant into a plain struct, with the same attributes as on the enum (defaults,
//! unknown fields refused). Parsing a frame of a few hundred bytes twice costs microseconds.
//!
//! A `ReaderMessage`, the one the SDK reads, is parsed once, into the union of its variants'
//! fields, then checked against its `type`: one struct instead of one per variant, 27 KB less
//! wasm. The nested `outcome`-tagged results are read the same way.
//!
//! The enums keep their derived `Deserialize` (for anyone else reading these frames); the
//! tests check that both parse every frame alike. The known differences, on frames no reader
//! sends: a top-level array (`["ping", 1]`, which serde's derive reads as tag then fields) is
//! refused here, and in a `ReaderMessage` or a `result` a field of another variant is
//! type-checked (and refused if repeated) rather than ignored. Error messages may word things
//! differently (here `type` is among the fields a `PosMessage` expects, and every error has
//! its position).

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use super::{
    CancelSource, Capabilities, CardEventKind, Cart, ForwardResult, HelloIntent, LinkStatus,
    PosMessage, ProcessMode, ProcessResult, ReaderErrorCode, ReaderInfo, ReaderMessage,
    ReaderStatus,
};
use crate::backend::{PaymentBody, PaymentStatus};
use crate::{CardSummary, SortedMap};

/// Declares a parser for an enum tagged by `type`, each variant once with its fields (and
/// their serde attributes, as on the enum). Generates the tag's enum (variant names in
/// snake_case, as the enums' `rename_all`), the first pass on it, and per variant a private
/// struct of its fields (plus `type`, so that `deny_unknown_fields` accepts it), with the
/// attributes given in `each_variant`, read by the second pass.
macro_rules! tagged_parser {
    // The second pass for one variant (the struct's attributes come in as one group: a
    // repetition of the outer level cannot be used inside the variants' own).
    (@variant $text:ident, $Enum:ident :: $Variant:ident,
        { $(#[$struct_attr:meta])* },
        { $( $(#[$field_attr:meta])* $field:ident: $ty:ty, )* }
    ) => {{
        #[derive(Deserialize)]
        $(#[$struct_attr])*
        struct Fields {
            #[serde(rename = "type")]
            _kind: IgnoredAny,
            $( $(#[$field_attr])* $field: $ty, )*
        }
        let Fields { $($field,)* .. } = serde_json::from_str($text)?;
        Ok($Enum::$Variant { $($field),* })
    }};
    (
        $(#[$doc:meta])*
        fn $name:ident -> $Enum:ident;
        each_variant $struct_attrs:tt
        variants {
            $( $Variant:ident { $( $(#[$field_attr:meta])* $field:ident: $ty:ty ),* $(,)? } )*
        }
    ) => {
        $(#[$doc])*
        pub(super) fn $name(text: &str) -> serde_json::Result<$Enum> {
            #[derive(Deserialize)]
            #[serde(variant_identifier, rename_all = "snake_case")]
            enum Kind {
                $($Variant),*
            }

            #[derive(Deserialize)]
            #[serde(expecting = "a JSON object with a `type`")]
            struct Tag {
                #[serde(rename = "type")]
                kind: Kind,
            }

            let Tag { kind } = serde_json::from_str(text)?;
            match kind {
                $(Kind::$Variant => tagged_parser!(
                    @variant text, $Enum::$Variant,
                    $struct_attrs,
                    { $( $(#[$field_attr])* $field: $ty, )* }
                ),)*
            }
        }
    };
}

tagged_parser! {
    /// A `PosMessage` from its JSON text, as its derived `Deserialize` would read it.
    fn pos_message -> PosMessage;
    each_variant { #[serde(deny_unknown_fields)] }
    variants {
        Hello {
            protocol_version: u32,
            client: String,
            #[serde(default)]
            pairing: Option<String>,
            #[serde(default)]
            intent: HelloIntent,
            #[serde(default)]
            registration_code: Option<String>,
        }
        Collect { request_id: String, amount: u64, currency: String }
        Cancel { request_id: String }
        DisplayCart { request_id: String, cart: Cart }
        ClearDisplay { request_id: String }
        Process { request_id: String, mode: ProcessMode, payment: PaymentBody }
        StoreStatusRequest { request_id: String }
        ForwardedAck { payment_id: String }
        Ping { nonce: u64 }
        Pong { nonce: u64 }
    }
}

/// A `ReaderMessage` from its JSON text, as its derived `Deserialize` would read it: every
/// field of every variant read in one pass, then the ones its `type` requires. (One struct:
/// a struct per variant, as `pos_message` has, was 27 KB of the SDK's wasm.)
pub(super) fn reader_message(text: &str) -> serde_json::Result<ReaderMessage> {
    serde_json::from_str::<ReaderFields>(text)?.into_message()
}

#[derive(Deserialize)]
#[serde(variant_identifier, rename_all = "snake_case")]
enum ReaderKind {
    HelloAck,
    Processed,
    StoreStatus,
    Forwarded,
    CollectStarted,
    CardRead,
    CardEvent,
    Canceled,
    Ack,
    Error,
    Ping,
    Pong,
}

/// The fields of every `ReaderMessage` variant, each of the type its variants declare it
/// with (`null` only where they allow it). Present or not, then required or defaulted by the
/// `type`. Unknown fields are ignored, as by the enum.
#[derive(Deserialize)]
#[serde(expecting = "a JSON object with a `type`")]
struct ReaderFields {
    #[serde(rename = "type")]
    kind: ReaderKind,
    #[serde(default, deserialize_with = "present")]
    protocol_version: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    reader: Option<ReaderInfo>,
    #[serde(default, deserialize_with = "present")]
    status: Option<ReaderStatus>,
    #[serde(default, deserialize_with = "present")]
    capabilities: Option<Capabilities>,
    /// A string, or `null` (only `store_status` and `error` allow it).
    #[serde(default, deserialize_with = "present")]
    request_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    payment_id: Option<String>,
    /// `processed`'s or `forwarded`'s, told apart by the `type`.
    #[serde(default, deserialize_with = "present")]
    result: Option<OutcomeFields>,
    #[serde(default, deserialize_with = "present")]
    link: Option<LinkStatus>,
    #[serde(default, deserialize_with = "present")]
    pending_count: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    pending_amounts: Option<SortedMap<u64>>,
    #[serde(default, deserialize_with = "present")]
    amount: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    currency: Option<String>,
    #[serde(default, deserialize_with = "present")]
    stored_at: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    card: Option<CardSummary>,
    #[serde(default, deserialize_with = "present")]
    card_payload: Option<String>,
    #[serde(default, deserialize_with = "present")]
    event: Option<CardEventKind>,
    #[serde(default, deserialize_with = "present")]
    by: Option<CancelSource>,
    #[serde(default, deserialize_with = "present")]
    code: Option<ReaderErrorCode>,
    #[serde(default, deserialize_with = "present")]
    message: Option<String>,
    #[serde(default, deserialize_with = "present")]
    nonce: Option<u64>,
}

/// A field that is there, read as its own type (so `null` is refused unless `T` takes it).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A `request_id` its variant requires: a string, not `null`.
fn request_id<E: serde::de::Error>(value: Option<Option<String>>) -> Result<String, E> {
    match value {
        Some(Some(id)) => Ok(id),
        Some(None) => Err(E::invalid_type(serde::de::Unexpected::Unit, &"a string")),
        None => Err(E::missing_field("request_id")),
    }
}

impl ReaderFields {
    /// The variant its `type` names, from the fields it requires (checked in the variant's
    /// order, so a missing field is named as the derive names it).
    fn into_message<E: serde::de::Error>(self) -> Result<ReaderMessage, E> {
        let f = self;
        Ok(match f.kind {
            ReaderKind::HelloAck => ReaderMessage::HelloAck {
                protocol_version: need(f.protocol_version, "protocol_version")?,
                reader: need(f.reader, "reader")?,
                status: f.status.unwrap_or_default(),
                capabilities: f.capabilities.unwrap_or_default(),
            },
            ReaderKind::Processed => ReaderMessage::Processed {
                request_id: request_id(f.request_id)?,
                payment_id: need(f.payment_id, "payment_id")?,
                result: process_result(need(f.result, "result")?)?,
            },
            ReaderKind::StoreStatus => ReaderMessage::StoreStatus {
                request_id: f.request_id.flatten(),
                link: need(f.link, "link")?,
                pending_count: need(f.pending_count, "pending_count")?,
                pending_amounts: f.pending_amounts.unwrap_or_default(),
            },
            ReaderKind::Forwarded => ReaderMessage::Forwarded {
                payment_id: need(f.payment_id, "payment_id")?,
                amount: need(f.amount, "amount")?,
                currency: need(f.currency, "currency")?,
                stored_at: need(f.stored_at, "stored_at")?,
                result: forward_result(need(f.result, "result")?)?,
            },
            ReaderKind::CollectStarted => ReaderMessage::CollectStarted {
                request_id: request_id(f.request_id)?,
            },
            ReaderKind::CardRead => ReaderMessage::CardRead {
                request_id: request_id(f.request_id)?,
                card: need(f.card, "card")?,
                card_payload: need(f.card_payload, "card_payload")?,
            },
            ReaderKind::CardEvent => ReaderMessage::CardEvent {
                request_id: request_id(f.request_id)?,
                event: need(f.event, "event")?,
            },
            ReaderKind::Canceled => ReaderMessage::Canceled {
                request_id: request_id(f.request_id)?,
                by: f.by.unwrap_or_default(),
            },
            ReaderKind::Ack => ReaderMessage::Ack {
                request_id: request_id(f.request_id)?,
            },
            ReaderKind::Error => ReaderMessage::Error {
                request_id: f.request_id.flatten(),
                code: need(f.code, "code")?,
                message: need(f.message, "message")?,
            },
            ReaderKind::Ping => ReaderMessage::Ping {
                nonce: need(f.nonce, "nonce")?,
            },
            ReaderKind::Pong => ReaderMessage::Pong {
                nonce: need(f.nonce, "nonce")?,
            },
        })
    }
}

/// A field the `outcome` requires, or serde's own "missing field" error.
fn need<T, E: serde::de::Error>(value: Option<T>, field: &'static str) -> Result<T, E> {
    value.ok_or_else(|| E::missing_field(field))
}

/// Every outcome a `processed` or `forwarded` result may name.
#[derive(Deserialize)]
#[serde(variant_identifier, rename_all = "snake_case")]
enum Outcome {
    Approved,
    Declined,
    Rejected,
    Stored,
    Unreachable,
    Unknown,
}

/// A result's fields: the union of its outcomes' fields, read in one pass (no `Content`).
#[derive(Deserialize)]
#[serde(expecting = "a JSON object with an `outcome`")]
struct OutcomeFields {
    outcome: Outcome,
    payment_intent: Option<String>,
    status: Option<PaymentStatus>,
    decline_code: Option<String>,
    code: Option<String>,
    message: Option<String>,
    stored_at: Option<u64>,
}

/// `processed.result`: the outcome's own fields.
fn process_result<E: serde::de::Error>(f: OutcomeFields) -> Result<ProcessResult, E> {
    Ok(match f.outcome {
        Outcome::Approved => ProcessResult::Approved {
            payment_intent: need(f.payment_intent, "payment_intent")?,
            status: need(f.status, "status")?,
        },
        Outcome::Declined => ProcessResult::Declined {
            decline_code: need(f.decline_code, "decline_code")?,
        },
        Outcome::Rejected => ProcessResult::Rejected {
            code: need(f.code, "code")?,
            message: need(f.message, "message")?,
        },
        Outcome::Stored => ProcessResult::Stored {
            stored_at: need(f.stored_at, "stored_at")?,
        },
        Outcome::Unreachable => ProcessResult::Unreachable {
            message: need(f.message, "message")?,
        },
        Outcome::Unknown => ProcessResult::Unknown {
            message: need(f.message, "message")?,
        },
    })
}

/// `forwarded.result`: the fields, then the outcome's own; a forwarded payment was
/// approved, declined or rejected, never stored or unreachable.
fn forward_result<E: serde::de::Error>(f: OutcomeFields) -> Result<ForwardResult, E> {
    const FORWARD_OUTCOMES: &[&str] = &["approved", "declined", "rejected"];
    Ok(match f.outcome {
        Outcome::Approved => ForwardResult::Approved {
            payment_intent: need(f.payment_intent, "payment_intent")?,
            status: need(f.status, "status")?,
        },
        Outcome::Declined => ForwardResult::Declined {
            decline_code: need(f.decline_code, "decline_code")?,
        },
        Outcome::Rejected => ForwardResult::Rejected {
            code: need(f.code, "code")?,
            message: need(f.message, "message")?,
        },
        Outcome::Stored => {
            return Err(serde::de::Error::unknown_variant(
                "stored",
                FORWARD_OUTCOMES,
            ))
        }
        Outcome::Unreachable => {
            return Err(serde::de::Error::unknown_variant(
                "unreachable",
                FORWARD_OUTCOMES,
            ))
        }
        Outcome::Unknown => {
            return Err(serde::de::Error::unknown_variant(
                "unknown",
                FORWARD_OUTCOMES,
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    //! The hand-written parser and serde's derive read every frame alike.

    use super::*;
    use crate::backend::{CaptureMethod, OfflineInfo};
    use crate::reader::{to_frame, LineItem};
    use crate::EntryMode;

    /// Both refuse, or both accept the same message.
    fn assert_reader_agrees(text: &str) -> bool {
        let derived = serde_json::from_str::<ReaderMessage>(text);
        let hand = reader_message(text);
        match (&derived, &hand) {
            (Ok(d), Ok(h)) => assert_eq!(d, h, "{text}"),
            (Err(d), Err(h)) => assert_eq!(gist(d), gist(h), "{text}: {d} / {h}"),
            _ => panic!("derive {derived:?} but hand-written {hand:?} for {text}"),
        }
        hand.is_ok()
    }

    fn assert_pos_agrees(text: &str) -> bool {
        let derived = serde_json::from_str::<PosMessage>(text);
        let hand = pos_message(text);
        match (&derived, &hand) {
            (Ok(d), Ok(h)) => assert_eq!(d, h, "{text}"),
            (Err(d), Err(h)) => assert_eq!(gist(d), gist(h), "{text}: {d} / {h}"),
            _ => panic!("derive {derived:?} but hand-written {hand:?} for {text}"),
        }
        hand.is_ok()
    }

    /// What an error says, without what was expected (the hand-written structs also expect
    /// `type`, and are not named as the enums) and without its position (the derive reports
    /// some errors without one).
    fn gist(e: &serde_json::Error) -> String {
        let text = e.to_string();
        let end = [", expected", " at line "]
            .iter()
            .filter_map(|cut| text.find(cut))
            .min()
            .unwrap_or(text.len());
        text[..end].to_string()
    }

    fn card() -> CardSummary {
        CardSummary {
            brand: "visa".into(),
            last4: "4242".into(),
            exp_month: 12,
            exp_year: 2030,
            entry_mode: Some(EntryMode::Chip),
            pin_verified: true,
        }
    }

    fn reader_info(country: Option<&str>) -> ReaderInfo {
        ReaderInfo {
            id: "rdr_1".into(),
            label: "Front desk".into(),
            serial_number: "S1".into(),
            device_type: "sim".into(),
            firmware_version: "1.0".into(),
            country: country.map(Into::into),
        }
    }

    /// Every variant of `PosMessage`, optional fields set and unset.
    fn pos_samples() -> Vec<PosMessage> {
        let payment = |offline, metadata: &[(&str, &str)]| PaymentBody {
            id: "pay_1".into(),
            amount: 1000,
            currency: "usd".into(),
            capture_method: CaptureMethod::Manual,
            card_payload: "AAAA".into(),
            card: card(),
            reader_id: "rdr_1".into(),
            offline,
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        vec![
            PosMessage::Hello {
                protocol_version: 2,
                client: "c".into(),
                pairing: Some("rpair_x".into()),
                intent: HelloIntent::TakeOver,
                registration_code: Some("123-456".into()),
            },
            PosMessage::Hello {
                protocol_version: 2,
                client: "c".into(),
                pairing: None,
                intent: HelloIntent::Discover,
                registration_code: None,
            },
            PosMessage::Collect {
                request_id: "pay_1".into(),
                amount: 1000,
                currency: "usd".into(),
            },
            PosMessage::Cancel {
                request_id: "pay_1".into(),
            },
            PosMessage::DisplayCart {
                request_id: "d1".into(),
                cart: Cart {
                    line_items: vec![LineItem {
                        description: "Tea \"green\" \u{e9}".into(),
                        amount: 350,
                        quantity: 2,
                    }],
                    tax: 70,
                    total: 770,
                    currency: "eur".into(),
                },
            },
            PosMessage::ClearDisplay {
                request_id: "d2".into(),
            },
            PosMessage::Process {
                request_id: "p1".into(),
                mode: ProcessMode::OnlineOrStore,
                payment: payment(None, &[]),
            },
            PosMessage::Process {
                request_id: "p2".into(),
                mode: ProcessMode::Store,
                payment: payment(Some(OfflineInfo { stored_at: 9 }), &[("order", "42")]),
            },
            PosMessage::StoreStatusRequest {
                request_id: "s1".into(),
            },
            PosMessage::ForwardedAck {
                payment_id: "pay_1".into(),
            },
            PosMessage::Ping { nonce: u64::MAX },
            PosMessage::Pong { nonce: 0 },
        ]
    }

    /// Every variant of `ReaderMessage`, and every outcome of the results it carries.
    fn reader_samples() -> Vec<ReaderMessage> {
        let processed = |result| ReaderMessage::Processed {
            request_id: "p1".into(),
            payment_id: "pay_1".into(),
            result,
        };
        let forwarded = |result| ReaderMessage::Forwarded {
            payment_id: "pay_1".into(),
            amount: 100,
            currency: "usd".into(),
            stored_at: 1,
            result,
        };
        vec![
            ReaderMessage::HelloAck {
                protocol_version: 2,
                reader: reader_info(Some("FR")),
                status: ReaderStatus::InUse,
                capabilities: Capabilities {
                    process: true,
                    store: true,
                },
            },
            ReaderMessage::HelloAck {
                protocol_version: 2,
                reader: reader_info(None),
                status: ReaderStatus::Online,
                capabilities: Capabilities::default(),
            },
            processed(ProcessResult::Approved {
                payment_intent: "pi_1".into(),
                status: PaymentStatus::RequiresCapture,
            }),
            processed(ProcessResult::Declined {
                decline_code: "insufficient_funds".into(),
            }),
            processed(ProcessResult::Rejected {
                code: "card_payload_mismatch".into(),
                message: "m".into(),
            }),
            processed(ProcessResult::Stored { stored_at: 7 }),
            processed(ProcessResult::Unreachable {
                message: "down".into(),
            }),
            processed(ProcessResult::Unknown {
                message: "no answer".into(),
            }),
            ReaderMessage::StoreStatus {
                request_id: Some("s1".into()),
                link: LinkStatus::Offline,
                pending_count: 2,
                pending_amounts: [("usd".to_string(), 300), ("eur".to_string(), 5)].into(),
            },
            ReaderMessage::StoreStatus {
                request_id: None,
                link: LinkStatus::Unknown,
                pending_count: 0,
                pending_amounts: SortedMap::new(),
            },
            forwarded(ForwardResult::Approved {
                payment_intent: "pi_1".into(),
                status: PaymentStatus::Succeeded,
            }),
            forwarded(ForwardResult::Declined {
                decline_code: "generic_decline".into(),
            }),
            forwarded(ForwardResult::Rejected {
                code: "card_payload_reused".into(),
                message: "m".into(),
            }),
            ReaderMessage::CollectStarted {
                request_id: "pay_1".into(),
            },
            ReaderMessage::CardRead {
                request_id: "pay_1".into(),
                card: card(),
                card_payload: "AAAA".into(),
            },
            ReaderMessage::CardEvent {
                request_id: "pay_1".into(),
                event: CardEventKind::Removed,
            },
            ReaderMessage::Canceled {
                request_id: "pay_1".into(),
                by: CancelSource::Customer,
            },
            ReaderMessage::Ack {
                request_id: "d1".into(),
            },
            ReaderMessage::Error {
                request_id: Some("pay_1".into()),
                code: ReaderErrorCode::StorageFull,
                message: "full".into(),
            },
            ReaderMessage::Error {
                request_id: None,
                code: ReaderErrorCode::Busy,
                message: "busy".into(),
            },
            ReaderMessage::Ping { nonce: 1 },
            ReaderMessage::Pong { nonce: u64::MAX },
        ]
    }

    /// The wire `type` of a `PosMessage` (an exhaustive match: a new variant must be added to
    /// the samples, then to the parser, for the tests to pass).
    fn pos_kind(msg: &PosMessage) -> &'static str {
        match msg {
            PosMessage::Hello { .. } => "hello",
            PosMessage::Collect { .. } => "collect",
            PosMessage::Cancel { .. } => "cancel",
            PosMessage::DisplayCart { .. } => "display_cart",
            PosMessage::ClearDisplay { .. } => "clear_display",
            PosMessage::Process { .. } => "process",
            PosMessage::StoreStatusRequest { .. } => "store_status_request",
            PosMessage::ForwardedAck { .. } => "forwarded_ack",
            PosMessage::Ping { .. } => "ping",
            PosMessage::Pong { .. } => "pong",
        }
    }

    #[test]
    fn every_variant_parses_as_the_derive_parses_it() {
        let pos = pos_samples();
        let kinds: std::collections::BTreeSet<_> = pos.iter().map(pos_kind).collect();
        assert_eq!(kinds.len(), 10, "one sample of each PosMessage variant");
        for msg in pos {
            let text = to_frame(&msg);
            assert!(assert_pos_agrees(&text), "{text}");
            assert_eq!(pos_message(&text).unwrap(), msg);
        }
        let reader = reader_samples();
        let kinds: std::collections::BTreeSet<_> = reader.iter().map(ReaderMessage::kind).collect();
        assert_eq!(kinds.len(), 12, "one sample of each ReaderMessage variant");
        for msg in reader {
            let text = to_frame(&msg);
            assert!(assert_reader_agrees(&text), "{text}");
            assert_eq!(reader_message(&text).unwrap(), msg);
        }
    }

    /// The frames of this crate's other tests (`reader.rs`, `tests/fuzz.rs`).
    #[test]
    fn the_crates_test_frames_parse_alike() {
        let reader_frames = [
            r#"{"type":"store_status","link":"offline","pending_count":2,"pending_amounts":{"usd":300}}"#,
            r#"{"type":"forwarded","payment_id":"pay_1","amount":100,"currency":"usd","stored_at":1,"result":{"outcome":"declined","decline_code":"generic_decline"}}"#,
            r#"{"type":"hello_ack","protocol_version":2,"reader":{"id":"rdr_1","label":"L","serial_number":"s","device_type":"d","firmware_version":"f","country":"FR"},"capabilities":{"process":true,"store":true}}"#,
            r#"{"type":"hello_ack","protocol_version":1,"reader":{"id":"r","label":"l",
            "serial_number":"s","device_type":"d","firmware_version":"f"}}"#,
            r#"{"type":"hello_ack","protocol_version":3,"reader":{"id":"x","label":"l","serial_number":"s","device_type":"d","firmware_version":"f"},"status":"in_use"}"#,
            r#"{"type":"card_read","request_id":"r1","card_payload":"x",
            "card":{"brand":"visa","last4":"4242424242424242","exp_month":1,"exp_year":2030}}"#,
            r#"{"type":"card_read","request_id":"r1","card_payload":"x",
            "card":{"brand":"visa","last4":"4242","exp_month":13,"exp_year":2030}}"#,
            r#"{"type":"card_read","request_id":"r","card":{"brand":"b","last4":"1","exp_month":1,"exp_year":2000},"card_payload":"AAAA"}"#,
            r#"{"type":"error","code":"overheated","message":"hot"}"#,
            r#"{"type":"error","request_id":"r","code":"busy","message":"m"}"#,
            r#"{"type":"card_event","request_id":"p","event":"tapped"}"#,
            r#"{"type":"canceled","request_id":"p","by":"customer"}"#,
            r#"{"type":"ping","nonce":1}"#,
            r#"{"type":"pong","nonce":2}"#,
        ];
        for text in reader_frames {
            assert!(assert_reader_agrees(text), "{text}");
        }
        let pos_frames = [
            r#"{"type":"hello","protocol_version":2,"client":"c","pairing":"rpair_x"}"#,
            r#"{"type":"hello","protocol_version":1,"client":"c","pairing":"p"}"#,
            r#"{"type":"hello","protocol_version":1,"client":"c","pairing":"p","intent":"take_over"}"#,
            r#"{"type":"collect","request_id":"pay_1","amount":1000,"currency":"usd"}"#,
            r#"{"type":"cancel","request_id":""}"#,
        ];
        for text in pos_frames {
            assert!(assert_pos_agrees(text), "{text}");
        }
    }

    const PROCESSED: &str =
        r#"{"type":"processed","request_id":"p","payment_id":"pay_1","result":"#;
    const FORWARDED: &str = r#"{"type":"forwarded","payment_id":"pay_1","amount":1,"currency":"usd","stored_at":1,"result":"#;

    #[test]
    fn odd_and_bad_reader_frames_are_judged_alike() {
        let accepted = [
            // The tag anywhere, escaped, extra fields ignored.
            r#"{"nonce":1,"type":"ping"}"#,
            r#"{"type":"p\u0069ng","nonce":1}"#,
            r#" {"type" : "ping" , "nonce" : 1 } "#,
            r#"{"type":"ping","nonce":1,"extra":{"deep":[1,2,{"x":null}]}}"#,
            r#"{"type":"ack","request_id":"d","message":"unused","type_":1}"#,
            // Optional fields null or absent; an unknown error code.
            r#"{"type":"error","request_id":null,"code":"busy","message":"m"}"#,
            r#"{"type":"error","code":"new_in_v9","message":"m"}"#,
            r#"{"type":"store_status","request_id":null,"link":"online","pending_count":0}"#,
            r#"{"type":"hello_ack","protocol_version":2,"reader":{"id":"r","label":"l","serial_number":"s","device_type":"d","firmware_version":"f","country":null,"x":1},"capabilities":{}}"#,
            r#"{"type":"canceled","request_id":"p"}"#,
            // Structs as arrays: serde_json takes them either way.
            r#"{"type":"hello_ack","protocol_version":2,"reader":["r","l","s","d","f"]}"#,
        ];
        for text in accepted {
            assert!(assert_reader_agrees(text), "{text}");
        }
        let results_accepted = [
            r#"{"outcome":"stored","stored_at":7}"#,
            r#"{"stored_at":7,"outcome":"stored"}"#,
            r#"{"outcome":"approved","payment_intent":"pi","status":"succeeded","extra":[1]}"#,
            r#"{"status":"canceled","payment_intent":"pi","outcome":"approved"}"#,
            r#"{"outcome":"unknown","message":"m"}"#,
            r#"{"outcome":"rejected","code":"c","message":"m"}"#,
        ];
        for result in results_accepted {
            assert!(
                assert_reader_agrees(&format!("{PROCESSED}{result}}}")),
                "{result}"
            );
        }
        let forward_accepted = [
            r#"{"outcome":"declined","decline_code":"d"}"#,
            r#"{"decline_code":"d","outcome":"declined","other":null}"#,
        ];
        for result in forward_accepted {
            assert!(
                assert_reader_agrees(&format!("{FORWARDED}{result}}}")),
                "{result}"
            );
        }

        let refused = [
            "",
            "not json",
            "null",
            "{}",
            r#""ping""#,
            r#"{"type":"launch_missiles"}"#,
            r#"{"type":"Ping","nonce":1}"#,
            r#"{"nonce":1}"#,
            r#"{"type":null,"nonce":1}"#,
            r#"{"type":1,"nonce":1}"#,
            r#"{"type":"ping","type":"ping","nonce":1}"#,
            r#"{"type":"ping","nonce":1,"nonce":2}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"ping","nonce":"1"}"#,
            r#"{"type":"ping","nonce":-1}"#,
            r#"{"type":"ping","nonce":1.5}"#,
            r#"{"type":"ping","nonce":1} trailing"#,
            r#"{"type":"ping","nonce":1,}"#,
            r#"{"type":"ping","nonce":1"#,
            r#"{"type":"card_read","request_id":"r"}"#,
            r#"{"type":"card_read","request_id":"r","card":{"brand":"visa","last4":"4242","exp_month":300,"exp_year":2030},"card_payload":"A"}"#,
            r#"{"type":"store_status","link":"sideways","pending_count":1}"#,
            r#"{"type":"store_status","link":"online","pending_count":4294967296}"#,
            r#"{"type":"store_status","link":"online","pending_count":1,"pending_amounts":{"usd":-1}}"#,
            r#"{"type":"hello_ack","protocol_version":2,"reader":{"id":"r"}}"#,
            r#"{"type":"hello_ack","protocol_version":2,"reader":{"id":"r","label":"l","serial_number":"s","device_type":"d","firmware_version":"f"},"status":"asleep"}"#,
            r#"{"type":"error","code":"busy"}"#,
            r#"{"type":"card_event","request_id":"p","event":"licked"}"#,
            // An enum in serde's map form: names are strings only (`wire_names!`).
            r#"{"type":"card_event","request_id":"p","event":{"tapped":null}}"#,
            r#"{"type":"processed","request_id":"p","payment_id":"pay_1"}"#,
        ];
        for text in refused {
            assert!(!assert_reader_agrees(text), "{text}");
        }
        let results_refused = [
            "null",
            r#""stored""#,
            "{}",
            r#"{"stored_at":7}"#,
            r#"{"outcome":"stored"}"#,
            r#"{"outcome":"stored","stored_at":"7"}"#,
            r#"{"outcome":"stored","stored_at":7,"stored_at":8}"#,
            r#"{"outcome":"stored","outcome":"stored","stored_at":7}"#,
            r#"{"outcome":"shelved","stored_at":7}"#,
            r#"{"outcome":null,"stored_at":7}"#,
            r#"{"outcome":"approved","payment_intent":"pi"}"#,
            r#"{"outcome":"approved","payment_intent":"pi","status":"pending"}"#,
            r#"{"outcome":"rejected","message":"m"}"#,
            r#"{"outcome":"declined","decline_code":5}"#,
        ];
        for result in results_refused {
            assert!(
                !assert_reader_agrees(&format!("{PROCESSED}{result}}}")),
                "{result}"
            );
        }
        let forward_refused = [
            r#"{"outcome":"stored","stored_at":7}"#,
            r#"{"outcome":"unknown","message":"m"}"#,
            r#"{"outcome":"approved","status":"succeeded"}"#,
            r#"{"decline_code":"d"}"#,
        ];
        for result in forward_refused {
            assert!(
                !assert_reader_agrees(&format!("{FORWARDED}{result}}}")),
                "{result}"
            );
        }
    }

    #[test]
    fn odd_and_bad_pos_frames_are_judged_alike() {
        let accepted = [
            r#"{"client":"c","protocol_version":2,"type":"hello"}"#,
            r#"{"type":"hello","protocol_version":2,"client":"c","pairing":null,"registration_code":null}"#,
            r#"{"type":"hello","protocol_version":2,"client":"c","intent":"discover"}"#,
            r#"{"type":"display_cart","request_id":"d","cart":{"line_items":[],"total":0,"currency":"usd"}}"#,
            r#"{"type":"process","request_id":"p","mode":"online","payment":{"id":"pay_1","amount":1,"currency":"usd","capture_method":"automatic","card_payload":"A","card":{"brand":"visa","last4":"4242","exp_month":1,"exp_year":2030},"reader_id":"r"}}"#,
        ];
        for text in accepted {
            assert!(assert_pos_agrees(text), "{text}");
        }
        let refused = [
            "",
            "{}",
            r#"{"type":"launch"}"#,
            r#"{"request_id":"r"}"#,
            r#"{"type":"hello_ack","protocol_version":2}"#,
            r#"{"type":"ping","type":"ping","nonce":1}"#,
            // Unknown fields, at the top and in nested structs that refuse them.
            r#"{"type":"hello","protocol_version":2,"client":"c","token":"t"}"#,
            r#"{"type":"ping","nonce":1,"extra":0}"#,
            r#"{"extra":0,"type":"ping","nonce":1}"#,
            r#"{"type":"display_cart","request_id":"d","cart":{"line_items":[],"total":0,"currency":"usd","x":1}}"#,
            r#"{"type":"display_cart","request_id":"d","cart":{"line_items":[{"description":"d","amount":1,"quantity":1,"sku":"s"}],"total":0,"currency":"usd"}}"#,
            r#"{"type":"process","request_id":"p","mode":"online","payment":{"id":"pay_1","amount":1,"currency":"usd","capture_method":"automatic","card_payload":"A","card":{"brand":"visa","last4":"4242","exp_month":1,"exp_year":2030},"reader_id":"r","tip":1}}"#,
            // Wrong types and missing fields.
            r#"{"type":"collect","request_id":"r","amount":"10","currency":"usd"}"#,
            r#"{"type":"collect","request_id":"r","currency":"usd"}"#,
            r#"{"type":"hello","protocol_version":2,"client":"c","intent":"sideways"}"#,
            r#"{"type":"hello","protocol_version":-2,"client":"c"}"#,
            r#"{"type":"process","request_id":"p","mode":"later","payment":{}}"#,
            r#"{"type":"process","request_id":"p","mode":"online","payment":{"id":"pay_1"}}"#,
            r#"{"type":"forwarded_ack"}"#,
        ];
        for text in refused {
            assert!(!assert_pos_agrees(text), "{text}");
        }
    }

    /// Where the two differ, on frames no reader or POS sends (see the module's doc).
    #[test]
    fn the_known_differences() {
        // Both refuse an empty array, with different words ("missing field `type`" from the
        // derive, "invalid length 0" here).
        assert!(serde_json::from_str::<ReaderMessage>("[]").is_err());
        assert!(reader_message("[]").is_err());
        assert!(serde_json::from_str::<PosMessage>("[]").is_err());
        assert!(pos_message("[]").is_err());
        let array = r#"["ping",1]"#;
        assert!(serde_json::from_str::<ReaderMessage>(array).is_ok());
        assert!(reader_message(array).is_err());
        assert!(serde_json::from_str::<PosMessage>(array).is_ok());
        assert!(pos_message(array).is_err());
        let other_outcomes_field =
            format!(r#"{PROCESSED}{{"outcome":"stored","stored_at":7,"status":"bogus"}}}}"#);
        assert!(serde_json::from_str::<ReaderMessage>(&other_outcomes_field).is_ok());
        assert!(reader_message(&other_outcomes_field).is_err());
        // A field of another variant: type-checked, and not repeated.
        for text in [
            r#"{"type":"ping","nonce":1,"amount":"x"}"#,
            r#"{"type":"ack","request_id":"a","nonce":1,"nonce":2}"#,
            r#"{"type":"ping","nonce":1,"card":{}}"#,
            r#"{"type":"pong","nonce":1,"request_id":7}"#,
        ] {
            assert!(
                serde_json::from_str::<ReaderMessage>(text).is_ok(),
                "{text}"
            );
            assert!(reader_message(text).is_err(), "{text}");
        }
        // Well typed, it is ignored as by the derive.
        let ping = r#"{"type":"ping","nonce":1,"amount":5,"link":"online","request_id":null}"#;
        assert_eq!(
            reader_message(ping).unwrap(),
            serde_json::from_str::<ReaderMessage>(ping).unwrap()
        );
    }
}
