//! Verification of real NSM attestation documents published in public repositories (see
//! `tests/data/README.md`), and of tampered variants of them. Expected values (PCRs,
//! timestamps) come from the source repositories' own tests, not from this crate.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use nitro_attestation::{
    parse, verify, AttestationDocument, CborError, CertPosition, ChainError, CoseError,
    DocumentError, ParseError, Policy, PolicyError, Report, VerifyError, AWS_NITRO_ROOT_G1_SHA256,
};
use sha2::{Digest, Sha256};

const NON_DEBUG: [&str; 4] = [
    "evervault-valid",
    "marlin-oyster",
    "turnkey-indefinite",
    "nitrite-valid",
];
const DEBUG: [&str; 2] = ["evervault-debug", "nitrite-debug"];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}.cose", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parsed(doc: &[u8]) -> AttestationDocument {
    parse(doc).expect("fixture parses")
}

/// The document's own timestamp, the natural check time for a recorded document.
fn doc_time(doc: &[u8]) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(parsed(doc).timestamp_ms)
}

fn allow_debug() -> Policy {
    Policy {
        allow_debug: true,
        ..Policy::default()
    }
}

/// Splits an untagged NSM envelope `84 44 a1013822 a0 59 LEN payload 58 60 signature`.
fn split(doc: &[u8]) -> (&[u8], &[u8]) {
    assert_eq!(doc[..8], [0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x59]);
    let len = usize::from(u16::from_be_bytes([doc[8], doc[9]]));
    let (payload, rest) = doc[10..].split_at(len);
    assert_eq!(rest[..2], [0x58, 0x60]);
    assert_eq!(rest.len(), 2 + 96);
    (payload, &rest[2..])
}

/// Rebuilds an untagged envelope around a (possibly modified) payload and signature.
fn envelope(payload: &[u8], signature: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).expect("payload under 64 KiB");
    let mut out = vec![0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x59];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&[0x58, 0x60]);
    out.extend_from_slice(signature);
    out
}

fn pcrs(entries: &[(u8, &str)]) -> BTreeMap<u8, Vec<u8>> {
    entries
        .iter()
        .map(|&(i, h)| (i, hex::decode(h).expect("hex")))
        .collect()
}

#[test]
fn real_documents_verify_at_their_own_timestamp() {
    for name in NON_DEBUG {
        let doc = fixture(name);
        let at = doc_time(&doc);
        let verified =
            verify(&doc, &Policy::default(), at).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(verified.checked_at, at);
        assert!(!verified.document.is_debug(), "{name}");
    }
    for name in DEBUG {
        let doc = fixture(name);
        verify(&doc, &allow_debug(), doc_time(&doc)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn pcrs_match_values_published_with_the_fixtures() {
    // evervault/attestation-doc-validation `attestation_doc.rs` test `validate_get_pcrs`.
    let evervault = pcrs(&[
        (0, "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b"),
        (1, "bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f"),
        (2, "d8f114da658de5481f8d9ec73907feb553560787522f705c92d7d96beed8e15e2aa611984e098c576832c292e8dc469a"),
        (8, "8790eb3cce6c83d07e84b126dc61ca923333d6f66615c4a79157de48c5ab2418bdc60746ea7b7afbff03a1c6210201cb"),
    ]);
    // marlinprotocol/oyster-attestation-verifier `handler.rs` test `test_raw_attestation`.
    let marlin = pcrs(&[
        (0, "5fec1b73727425848d725d68f4a062c634061a035067bd0b9a6dc73e25ed5013dfe7ccbf8a7e9857eceb0841c4cb6ae6"),
        (1, "bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f"),
        (2, "ae41ca22df64a32d729667160a7f218e59e31586809e121ff2c446a36dc5354ba4e0f74dce737be3298cf82c364692e7"),
    ]);
    for (name, expected) in [("evervault-valid", evervault), ("marlin-oyster", marlin)] {
        let doc = fixture(name);
        let mut policy = Policy {
            expected_pcrs: expected,
            ..Policy::default()
        };
        verify(&doc, &policy, doc_time(&doc)).unwrap_or_else(|e| panic!("{name}: {e}"));

        let pcr2 = policy.expected_pcrs.get_mut(&2).expect("PCR2 expected");
        pcr2[47] ^= 1;
        assert!(
            matches!(
                verify(&doc, &policy, doc_time(&doc)),
                Err(VerifyError::Policy(PolicyError::PcrMismatch {
                    index: 2,
                    ..
                }))
            ),
            "{name}"
        );
    }
    assert_eq!(
        parsed(&fixture("marlin-oyster")).timestamp_ms,
        1_723_012_689_640
    );
}

#[test]
fn pinned_root_matches_published_root_and_every_fixture() {
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/aws_nitro_root_g1.pem"
    ))
    .expect("root PEM");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64");
    assert_eq!(
        hex::encode(Sha256::digest(&der)),
        "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
    );
    assert_eq!(Sha256::digest(&der)[..], AWS_NITRO_ROOT_G1_SHA256);
    for name in NON_DEBUG.iter().chain(&DEBUG) {
        assert_eq!(parsed(&fixture(name)).cabundle[0], der, "{name}");
    }
}

#[test]
fn debug_documents_are_rejected_unless_allowed() {
    for name in DEBUG {
        let doc = fixture(name);
        let document = parsed(&doc);
        assert!(document.is_debug(), "{name}");
        assert!((0..=2).all(|i| document.pcrs[&i] == [0; 48]), "{name}");
        assert_eq!(
            verify(&doc, &Policy::default(), doc_time(&doc)),
            Err(VerifyError::Policy(PolicyError::DebugMode)),
            "{name}"
        );
    }
}

#[test]
fn fixtures_cover_definite_and_indefinite_payload_maps() {
    let doc = fixture("turnkey-indefinite");
    assert_eq!(split(&doc).0[0], 0xbf, "indefinite-length map");
    for name in ["evervault-valid", "marlin-oyster", "nitrite-valid"] {
        let doc = fixture(name);
        assert_eq!(split(&doc).0[0], 0xa9, "{name}: definite map of 9 entries");
    }
}

#[test]
fn tagged_envelope_verifies() {
    let doc = fixture("marlin-oyster");
    let tagged = [&[0xd2][..], &doc].concat();
    verify(&tagged, &Policy::default(), doc_time(&doc)).expect("tag 18 is accepted");
}

#[test]
fn flipped_signature_byte_fails_only_the_signature() {
    for name in NON_DEBUG {
        let doc = fixture(name);
        let mut tampered = doc.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x01;
        assert_eq!(
            verify(&tampered, &Policy::default(), doc_time(&doc)),
            Err(VerifyError::Signature),
            "{name}"
        );
    }
}

#[test]
fn flipped_payload_byte_fails_the_signature() {
    let doc = fixture("evervault-valid");
    let (payload, signature) = split(&doc);
    let pcr0 = parsed(&doc).pcrs[&0].clone();
    let at = payload
        .windows(pcr0.len())
        .position(|w| w == pcr0.as_slice())
        .expect("PCR0 bytes in payload");
    let mut payload = payload.to_vec();
    payload[at] ^= 0x80;
    assert_eq!(
        verify(
            &envelope(&payload, signature),
            &Policy::default(),
            doc_time(&doc)
        ),
        Err(VerifyError::Signature)
    );
}

#[test]
fn reencoded_payload_parses_identically_but_fails_the_signature() {
    // Indefinite → definite (9 entries), and definite → indefinite.
    let cases = [("turnkey-indefinite", 0xbf), ("marlin-oyster", 0xa9)];
    for (name, header) in cases {
        let doc = fixture(name);
        let (payload, signature) = split(&doc);
        assert_eq!(payload[0], header);
        let reencoded = if header == 0xbf {
            assert_eq!(payload[payload.len() - 1], 0xff);
            [&[0xa9][..], &payload[1..payload.len() - 1]].concat()
        } else {
            [&[0xbf][..], &payload[1..], &[0xff][..]].concat()
        };
        let tampered = envelope(&reencoded, signature);
        assert_eq!(parsed(&tampered), parsed(&doc), "{name}: same content");
        assert_eq!(
            verify(&tampered, &Policy::default(), doc_time(&doc)),
            Err(VerifyError::Signature),
            "{name}"
        );
    }
}

#[test]
fn root_other_than_the_pinned_one_is_rejected() {
    let doc = fixture("turnkey-indefinite");
    let root = parsed(&doc).cabundle[0].clone();
    let (payload, signature) = split(&doc);
    let at = payload
        .windows(root.len())
        .position(|w| w == root.as_slice())
        .expect("root in payload");
    let mut payload = payload.to_vec();
    // Same size and structure, different bytes (last byte of the root's signature).
    payload[at + root.len() - 1] ^= 0x01;
    let result = verify(
        &envelope(&payload, signature),
        &Policy::default(),
        doc_time(&doc),
    );
    assert!(
        matches!(
            result,
            Err(VerifyError::Chain(ChainError::UntrustedRoot(_)))
        ),
        "{result:?}"
    );
}

#[test]
fn chain_is_valid_only_about_three_hours_from_the_document_time() {
    for name in NON_DEBUG {
        let doc = fixture(name);
        let time = doc_time(&doc);
        let minutes = |m: u64| Duration::from_secs(60 * m);

        verify(&doc, &Policy::default(), time + minutes(10)).expect("10 min later");
        let Err(VerifyError::Chain(ChainError::Expired { cert, not_after })) =
            verify(&doc, &Policy::default(), time + minutes(180))
        else {
            panic!("{name}: expected an expired leaf three hours later");
        };
        assert_eq!(cert, CertPosition::Leaf, "{name}");
        let lifetime = not_after
            .duration_since(time)
            .expect("expires after creation");
        assert!(
            lifetime > minutes(179) && lifetime <= minutes(180),
            "{name}: {lifetime:?}"
        );

        assert!(
            matches!(
                verify(&doc, &Policy::default(), time - minutes(1)),
                Err(VerifyError::Chain(ChainError::NotYetValid {
                    cert: CertPosition::Leaf,
                    ..
                }))
            ),
            "{name}"
        );
    }
}

#[test]
fn every_truncation_is_rejected() {
    for name in ["turnkey-indefinite", "evervault-debug"] {
        let doc = fixture(name);
        for len in 0..doc.len() {
            assert!(parse(&doc[..len]).is_err(), "{name} truncated to {len}");
        }
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let doc = fixture("marlin-oyster");
    let extended = [&doc[..], &[0x00]].concat();
    assert_eq!(
        parse(&extended),
        Err(ParseError::Cose(CoseError::Cbor(CborError::TrailingBytes(
            1
        ))))
    );
    let (payload, signature) = split(&doc);
    let padded = [payload, &[0x00]].concat();
    assert_eq!(
        parse(&envelope(&padded, signature)),
        Err(ParseError::Document(DocumentError::Cbor(
            CborError::TrailingBytes(1)
        )))
    );
}

#[test]
fn duplicate_payload_key_is_rejected() {
    let doc = fixture("turnkey-indefinite");
    let (payload, signature) = split(&doc);
    // A second `nonce` entry (null) before the indefinite map's break byte.
    let duplicated = [&payload[..payload.len() - 1], b"\x65nonce\xf6\xff"].concat();
    assert_eq!(
        parse(&envelope(&duplicated, signature)),
        Err(ParseError::Document(DocumentError::Cbor(
            CborError::DuplicateKey(payload.len() - 1)
        )))
    );
}

#[test]
fn nonce_must_match_when_expected() {
    let doc = fixture("evervault-valid");
    let nonce = parsed(&doc).nonce.expect("this fixture carries a nonce");
    let policy = |nonce: Vec<u8>| Policy {
        nonce: Some(nonce),
        ..Policy::default()
    };
    verify(&doc, &policy(nonce.clone()), doc_time(&doc)).expect("own nonce");
    let mut wrong = nonce;
    wrong[0] ^= 0xff;
    assert_eq!(
        verify(&doc, &policy(wrong), doc_time(&doc)),
        Err(VerifyError::Policy(PolicyError::FieldMismatch("nonce")))
    );
    let without = fixture("turnkey-indefinite");
    assert_eq!(
        verify(&without, &policy(vec![1]), doc_time(&without)),
        Err(VerifyError::Policy(PolicyError::FieldMissing("nonce")))
    );
}

#[test]
fn max_age_counts_from_the_document_timestamp() {
    let doc = fixture("marlin-oyster");
    let policy = Policy {
        max_age: Some(Duration::from_secs(300)),
        ..Policy::default()
    };
    let time = doc_time(&doc);
    verify(&doc, &policy, time + Duration::from_secs(300)).expect("exactly 5 min old");
    assert!(matches!(
        verify(&doc, &policy, time + Duration::from_millis(300_001)),
        Err(VerifyError::Policy(PolicyError::TooOld { .. }))
    ));
}

#[test]
fn report_serialises_document_fields() {
    let doc = fixture("nitrite-valid");
    let report = Report::new(&parsed(&doc));
    // blocky/nitrite `internal/testdata.go`: NitroAttestationTime = 2024-09-07 14:37:39.545 UTC.
    assert_eq!(report.timestamp, "2024-09-07T14:37:39.545Z");
    let json = serde_json::to_value(&report).expect("serialisable");
    assert_eq!(json["digest"], "SHA384");
    assert_eq!(json["debug_mode"], false);
    assert_eq!(json["pcrs"].as_object().map(|m| m.len()), Some(16));
    assert_eq!(json["pcrs"]["0"].as_str().map(str::len), Some(96));
    assert_eq!(
        json["cabundle"][0]["subject"],
        "CN=aws.nitro-enclaves,OU=AWS,O=Amazon,C=US"
    );
    assert_eq!(json["cabundle"][0]["not_after"], "2049-10-28T14:28:05.000Z");
    assert!(json["certificate"]["subject"]
        .as_str()
        .is_some_and(|s| s.contains(&report.module_id)));

    // blocky/nitrite `internal/testdata.go`: DebugNitroAttestationTime = 14:38:06.508 UTC.
    let debug = Report::new(&parsed(&fixture("nitrite-debug")));
    assert_eq!(debug.timestamp, "2024-09-07T14:38:06.508Z");
    assert!(debug.debug_mode);
}

#[test]
fn parse_reports_on_documents_that_do_not_verify() {
    let doc = fixture("evervault-valid");
    let mut tampered = doc.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    assert_eq!(parse(&tampered), parse(&doc));
}
