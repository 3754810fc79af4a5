//! Hostile frames, fuzzed natively: any bytes given to the frame parsers or the WebUSB
//! deframer end in a value or a typed error, never a panic, and the frame parsers (written by
//! hand, `src/reader/parse.rs`) judge them as serde's derive would. Bounded so CI stays fast
//! (`PROPTEST_CASES` raises the count for a longer local run).

use pos_protocol::reader::{
    encode_usb_frame, parse_pos_frame, parse_reader_frame, to_frame, DeframeError, Deframer,
    FrameError, PosMessage, ReaderMessage, MAX_FRAME_BYTES,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Frames a reader might plausibly send, to mutate: valid ones with fields in and out of bounds.
fn near_valid_frame() -> impl Strategy<Value = String> {
    let id = "[a-z_0-9]{0,70}";
    prop_oneof![
        (id, "[0-9]{0,6}", 0u8..14, 1990u16..2110, "[a-z_]{0,20}").prop_map(
            |(id, last4, m, y, brand)| format!(
                r#"{{"type":"card_read","request_id":"{id}","card":{{"brand":"{brand}","last4":"{last4}","exp_month":{m},"exp_year":{y}}},"card_payload":"AAAA"}}"#
            )
        ),
        (id, "[a-z_]{0,12}").prop_map(|(id, code)| format!(
            r#"{{"type":"error","request_id":"{id}","code":"{code}","message":"m"}}"#
        )),
        (0u32..4, "[a-z]{0,70}").prop_map(|(v, rid)| format!(
            r#"{{"type":"hello_ack","protocol_version":{v},"reader":{{"id":"{rid}","label":"l","serial_number":"s","device_type":"d","firmware_version":"f"}},"status":"in_use"}}"#
        )),
        (id, "[a-z]{0,10}").prop_map(|(id, ev)| format!(
            r#"{{"type":"card_event","request_id":"{id}","event":"{ev}"}}"#
        )),
        any::<u64>().prop_map(|n| format!(r#"{{"type":"ping","nonce":{n}}}"#)),
        (id, prop::sample::select(vec![
            r#"{"outcome":"approved","payment_intent":"pi_1","status":"requires_capture"}"#,
            r#"{"outcome":"declined","decline_code":"generic_decline"}"#,
            r#"{"outcome":"rejected","code":"c","message":"m"}"#,
            r#"{"outcome":"stored","stored_at":12}"#,
            r#"{"outcome":"unreachable","message":"m"}"#,
            r#"{"outcome":"unknown","message":"m"}"#,
        ])).prop_map(|(id, result)| format!(
            r#"{{"type":"processed","request_id":"{id}","payment_id":"pay_1","result":{result}}}"#
        )),
        (id, 0u64..1000).prop_map(|(id, stored_at)| format!(
            r#"{{"type":"forwarded","payment_id":"{id}","amount":1,"currency":"usd","stored_at":{stored_at},"result":{{"outcome":"declined","decline_code":"d"}}}}"#
        )),
    ]
}

/// `parse_reader_frame` (a hand-written parser, `src/reader/parse.rs`) refuses as malformed
/// what serde's derived `Deserialize` refuses, and reads the rest as the derive does.
fn reader_parse_agrees_with_the_derive(text: &str) -> Result<(), TestCaseError> {
    let derived = serde_json::from_str::<ReaderMessage>(text);
    match parse_reader_frame(text) {
        Ok(msg) => prop_assert_eq!(derived.ok(), Some(msg)),
        Err(FrameError::Malformed(why)) => prop_assert!(derived.is_err(), "{}: {}", text, why),
        Err(FrameError::Invalid(_)) => prop_assert!(derived.is_ok(), "{}", text),
        Err(FrameError::TooLarge { .. }) => {}
    }
    Ok(())
}

/// The same for `parse_pos_frame`.
fn pos_parse_agrees_with_the_derive(text: &str) -> Result<(), TestCaseError> {
    let derived = serde_json::from_str::<PosMessage>(text);
    match parse_pos_frame(text) {
        Ok(msg) => prop_assert_eq!(derived.ok(), Some(msg)),
        Err(FrameError::Malformed(why)) => prop_assert!(derived.is_err(), "{}: {}", text, why),
        Err(FrameError::Invalid(_)) => prop_assert!(derived.is_ok(), "{}", text),
        Err(FrameError::TooLarge { .. }) => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn reader_frame_parser_never_panics(text in ".{0,600}") {
        reader_parse_agrees_with_the_derive(&text)?;
        pos_parse_agrees_with_the_derive(&text)?;
    }

    #[test]
    fn mutated_frames_give_a_value_or_a_typed_error(
        frame in near_valid_frame(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        // Whole, truncated, and with one byte replaced.
        if let Ok(msg) = parse_reader_frame(&frame) {
            // What parses re-serializes to something that parses the same.
            prop_assert_eq!(parse_reader_frame(&to_frame(&msg)).ok(), Some(msg));
        }
        reader_parse_agrees_with_the_derive(&frame)?;
        let at = cut.index(frame.len().max(1)).min(frame.len());
        reader_parse_agrees_with_the_derive(frame.get(..at).unwrap_or(""))?;
        let mut bytes = frame.into_bytes();
        if !bytes.is_empty() {
            let i = flip.index(bytes.len());
            bytes[i] = byte;
        }
        reader_parse_agrees_with_the_derive(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn deframer_never_panics_on_any_bytes(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16)
    ) {
        let mut d = Deframer::new();
        let mut fatal = false;
        for chunk in &chunks {
            for frame in d.push(chunk) {
                match frame {
                    Ok(text) => {
                        prop_assert!(!fatal, "no frame after a fatal error");
                        prop_assert!(text.len() <= MAX_FRAME_BYTES);
                        let _ = parse_reader_frame(&text);
                    }
                    Err(e) => fatal |= e.is_fatal(),
                }
            }
        }
    }

    #[test]
    fn deframer_output_does_not_depend_on_transfer_boundaries(
        nonces in prop::collection::vec(any::<u64>(), 1..8),
        cuts in prop::collection::vec(1usize..40, 1..20),
    ) {
        let frames: Vec<String> =
            nonces.iter().map(|&nonce| to_frame(&ReaderMessage::Ping { nonce })).collect();
        let stream: Vec<u8> = frames.iter().flat_map(|f| encode_usb_frame(f)).collect();
        let mut d = Deframer::new();
        let mut got = Vec::new();
        let mut rest = stream.as_slice();
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at((*cut).min(rest.len()));
            got.extend(d.push(now));
            rest = later;
        }
        let got: Vec<String> = got.into_iter().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(got, frames);
        prop_assert!(!d.is_mid_frame());
    }

    #[test]
    fn oversized_prefix_is_refused_whatever_follows(
        len in (MAX_FRAME_BYTES as u32 + 1)..=u32::MAX,
        tail in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut d = Deframer::new();
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend(tail);
        let out = d.push(&bytes);
        prop_assert_eq!(out, vec![Err(DeframeError::TooLarge { bytes: len as usize })]);
    }
}
