//! The QEMU-only entry point: QEMU-shaped documents pass it (and only it), any deviation from
//! QEMU's shape is refused, and the policy still applies in full.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nitro_attestation::{
    verify, verify_qemu_unsigned, CoseError, ParseError, Policy, PolicyError, QemuUnsignedError,
    VerifyError, UNSIGNED_QEMU_VERDICT,
};

const MODULE_ID: &str = "i-0123456789abcdef0-enc0123456789abcdef";
const TIMESTAMP_MS: u64 = 1_764_620_000_000;

/// Minimal CBOR encoding, enough to write documents in QEMU's layout.
fn head(out: &mut Vec<u8>, major: u8, len: usize) {
    let major = major << 5;
    match len {
        0..=23 => out.push(major | len as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, len as u8]),
        _ => {
            out.push(major | 25);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
    }
}
fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    head(out, 2, b.len());
    out.extend_from_slice(b);
}
fn text(out: &mut Vec<u8>, s: &str) {
    head(out, 3, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// The fields QEMU 10's virtio-nsm writes, in its order; each test changes one.
#[derive(Clone)]
struct Doc {
    tag: bool,
    protected: Vec<u8>,
    unprotected: Vec<u8>,
    signature: Vec<u8>,
    module_id: String,
    timestamp_ms: u64,
    pcrs: BTreeMap<u8, Vec<u8>>,
    certificate: Vec<u8>,
    cabundle: Vec<Vec<u8>>,
    user_data: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
}

fn pcr(i: u8) -> Vec<u8> {
    vec![0x10 + i; 48]
}

impl Doc {
    fn qemu() -> Self {
        let mut pcrs: BTreeMap<u8, Vec<u8>> = (0..16).map(|i| (i, vec![0; 48])).collect();
        for i in 0..3 {
            pcrs.insert(i, pcr(i));
        }
        Doc {
            tag: false,
            protected: vec![0xa1, 0x01, 0x20],
            unprotected: vec![0xa0],
            signature: vec![0; 64],
            module_id: MODULE_ID.into(),
            timestamp_ms: TIMESTAMP_MS,
            pcrs,
            certificate: vec![0; 64],
            cabundle: vec![vec![0; 64]],
            user_data: Some(b"boot test".to_vec()),
            nonce: Some(b"nonce chosen by the host".to_vec()),
        }
    }

    fn payload(&self) -> Vec<u8> {
        let mut p = Vec::new();
        head(&mut p, 5, 9);
        text(&mut p, "module_id");
        text(&mut p, &self.module_id);
        text(&mut p, "digest");
        text(&mut p, "SHA384");
        text(&mut p, "timestamp");
        p.push(0x1b);
        p.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        text(&mut p, "pcrs");
        head(&mut p, 5, self.pcrs.len());
        for (i, v) in &self.pcrs {
            p.push(*i);
            bytes(&mut p, v);
        }
        text(&mut p, "certificate");
        bytes(&mut p, &self.certificate);
        text(&mut p, "cabundle");
        head(&mut p, 4, self.cabundle.len());
        for c in &self.cabundle {
            bytes(&mut p, c);
        }
        text(&mut p, "public_key");
        p.push(0xf6);
        for (name, value) in [("user_data", &self.user_data), ("nonce", &self.nonce)] {
            text(&mut p, name);
            match value {
                Some(v) => bytes(&mut p, v),
                None => p.push(0xf6),
            }
        }
        p
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.tag {
            out.push(0xd2);
        }
        head(&mut out, 4, 4);
        bytes(&mut out, &self.protected);
        out.extend_from_slice(&self.unprotected);
        bytes(&mut out, &self.payload());
        bytes(&mut out, &self.signature);
        out
    }
}

fn policy() -> Policy {
    Policy {
        expected_pcrs: (0..3).map(|i| (i, pcr(i))).collect(),
        nonce: Some(b"nonce chosen by the host".to_vec()),
        user_data: Some(b"boot test".to_vec()),
        max_age: Some(Duration::from_secs(60)),
        ..Policy::default()
    }
}

fn at() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(TIMESTAMP_MS + 5_000)
}

fn check(doc: &Doc) -> Result<(), QemuUnsignedError> {
    verify_qemu_unsigned(&doc.encode(), &policy(), MODULE_ID, at()).map(|_| ())
}

#[test]
fn qemu_shaped_document_passes_the_whole_policy_and_is_reported_unsigned() {
    let accepted = verify_qemu_unsigned(&Doc::qemu().encode(), &policy(), MODULE_ID, at())
        .expect("QEMU's shape is accepted");
    assert_eq!(accepted.verdict(), "UNSIGNED TEST DOCUMENT (QEMU)");
    assert_eq!(accepted.verdict(), UNSIGNED_QEMU_VERDICT);
    let shown = accepted.to_string();
    assert!(shown.starts_with(UNSIGNED_QEMU_VERDICT), "{shown}");
    assert!(!shown.to_lowercase().contains("valid"), "{shown}");
    assert_eq!(accepted.document.pcrs[&1], pcr(1));
    assert_eq!(accepted.checked_at, at());
}

#[test]
fn verify_rejects_qemu_documents() {
    // The real envelope fails before anything is trusted: {1: -1} is no signature algorithm.
    assert_eq!(
        verify(&Doc::qemu().encode(), &policy(), at()),
        Err(VerifyError::Parse(ParseError::Cose(
            CoseError::UnsupportedProtectedHeader
        )))
    );
    // Dressed up as ES384 with a 96-byte signature, the same payload fails at the chain step.
    let disguised = Doc {
        protected: vec![0xa1, 0x01, 0x38, 0x22],
        signature: vec![0; 96],
        ..Doc::qemu()
    };
    assert!(
        matches!(
            verify(&disguised.encode(), &policy(), at()),
            Err(VerifyError::Chain(_))
        ),
        "{:?}",
        verify(&disguised.encode(), &policy(), at())
    );
}

#[test]
fn every_deviation_from_qemu_shape_is_refused() {
    let mut nonzero_signature = vec![0; 64];
    nonzero_signature[63] = 1;
    let mut nonzero_cert = vec![0; 64];
    nonzero_cert[0] = 0x30;
    let variants: Vec<(&str, Doc)> = vec![
        (
            "tagged envelope",
            Doc {
                tag: true,
                ..Doc::qemu()
            },
        ),
        (
            "ES384 header",
            Doc {
                protected: vec![0xa1, 0x01, 0x38, 0x22],
                ..Doc::qemu()
            },
        ),
        (
            "ES256 header",
            Doc {
                protected: vec![0xa1, 0x01, 0x26],
                ..Doc::qemu()
            },
        ),
        (
            "empty protected",
            Doc {
                protected: vec![],
                ..Doc::qemu()
            },
        ),
        (
            "unprotected kid",
            Doc {
                unprotected: vec![0xa1, 0x04, 0x40],
                ..Doc::qemu()
            },
        ),
        (
            "signature not zero",
            Doc {
                signature: nonzero_signature,
                ..Doc::qemu()
            },
        ),
        (
            "96-byte signature",
            Doc {
                signature: vec![0; 96],
                ..Doc::qemu()
            },
        ),
        (
            "empty signature",
            Doc {
                signature: vec![],
                ..Doc::qemu()
            },
        ),
        (
            "certificate not zero",
            Doc {
                certificate: nonzero_cert.clone(),
                ..Doc::qemu()
            },
        ),
        (
            "65-byte certificate",
            Doc {
                certificate: vec![0; 65],
                ..Doc::qemu()
            },
        ),
        (
            "two cabundle entries",
            Doc {
                cabundle: vec![vec![0; 64]; 2],
                ..Doc::qemu()
            },
        ),
        (
            "cabundle entry not zero",
            Doc {
                cabundle: vec![nonzero_cert],
                ..Doc::qemu()
            },
        ),
        (
            "63-byte cabundle entry",
            Doc {
                cabundle: vec![vec![0; 63]],
                ..Doc::qemu()
            },
        ),
    ];
    for (what, doc) in variants {
        match check(&doc) {
            Err(QemuUnsignedError::NotQemuShape(_)) => {}
            other => panic!("{what}: expected NotQemuShape, got {other:?}"),
        }
    }
    // A real, AWS-signed document is not QEMU's shape either.
    let real = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/evervault-valid.cose"
    ))
    .expect("fixture");
    assert!(matches!(
        verify_qemu_unsigned(&real, &Policy::default(), MODULE_ID, SystemTime::now()),
        Err(QemuUnsignedError::NotQemuShape(_))
    ));
    // Garbage is a parse error, never a panic.
    assert!(matches!(
        verify_qemu_unsigned(&[0x84, 0x43], &policy(), MODULE_ID, at()),
        Err(QemuUnsignedError::Parse(_))
    ));
}

#[test]
fn the_policy_still_applies_in_full() {
    let mut wrong_pcr = Doc::qemu();
    wrong_pcr.pcrs.insert(2, vec![0xee; 48]);
    assert!(matches!(
        check(&wrong_pcr),
        Err(QemuUnsignedError::Policy(PolicyError::PcrMismatch {
            index: 2,
            ..
        }))
    ));
    let wrong_nonce = Doc {
        nonce: Some(b"replayed".to_vec()),
        ..Doc::qemu()
    };
    assert_eq!(
        check(&wrong_nonce),
        Err(QemuUnsignedError::Policy(PolicyError::FieldMismatch(
            "nonce"
        )))
    );
    let no_nonce = Doc {
        nonce: None,
        ..Doc::qemu()
    };
    assert_eq!(
        check(&no_nonce),
        Err(QemuUnsignedError::Policy(PolicyError::FieldMissing(
            "nonce"
        )))
    );
    let wrong_user_data = Doc {
        user_data: Some(b"other".to_vec()),
        ..Doc::qemu()
    };
    assert_eq!(
        check(&wrong_user_data),
        Err(QemuUnsignedError::Policy(PolicyError::FieldMismatch(
            "user_data"
        )))
    );
    let old = Doc {
        timestamp_ms: TIMESTAMP_MS - 120_000,
        ..Doc::qemu()
    };
    assert!(matches!(
        check(&old),
        Err(QemuUnsignedError::Policy(PolicyError::TooOld { .. }))
    ));
    let other_module = Doc {
        module_id: "i-234-enc5678".into(),
        ..Doc::qemu()
    };
    assert_eq!(
        check(&other_module),
        Err(QemuUnsignedError::ModuleId {
            expected: MODULE_ID.into(),
            actual: "i-234-enc5678".into()
        })
    );
    let mut debug = Doc::qemu();
    for i in 0..3 {
        debug.pcrs.insert(i, vec![0; 48]);
    }
    assert!(matches!(
        verify_qemu_unsigned(&debug.encode(), &Policy::default(), MODULE_ID, at()),
        Err(QemuUnsignedError::Policy(PolicyError::DebugMode))
    ));
}

/// A document QEMU 10.0.13's NSM returned to `crates/qemu-enclave/tests/boot.rs` (see
/// `tests/data/README.md`); the PCRs are those our EIF build computed for that image.
#[test]
fn a_document_from_a_real_qemu_boot_is_accepted_here_and_refused_by_verify() {
    let doc = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/qemu-10.0.13.cose"
    ))
    .expect("fixture");
    let pcr = |hex_value: &str| hex::decode(hex_value).expect("hex");
    let policy = Policy {
        expected_pcrs: BTreeMap::from([
            (0, pcr("2fd9788f0a78f4cdc05f14c6ae0d8222d49a69f3494ddf17149d4bceb7657bb0b31873c8ba9b8890d8beb67dd167adb3")),
            (1, pcr("6dafd6c7d7c6aa3e6136abd5f2da49f9a96d22a823930cecb89ed0fb9afc334fbc3ab93f22e6849e1f081c1cb9571c96")),
            (2, pcr("47896ae72e5629f2b24c9d5d2bf252a7639a55674d0727b6d8861181729ee4356ae030ff290338e039c4a8e7c4a1b6ec")),
        ]),
        nonce: Some(pcr("000000000000000018ed4670b3c22f6e")),
        user_data: Some(b"qemu-enclave boot test".to_vec()),
        max_age: Some(Duration::from_secs(60)),
        ..Policy::default()
    };
    // `parse` refuses QEMU's envelope too; the timestamp comes from an age-free check.
    let no_age = Policy {
        max_age: None,
        ..policy.clone()
    };
    let timestamp = verify_qemu_unsigned(&doc, &no_age, MODULE_ID, SystemTime::now())
        .expect("QEMU's own document")
        .document
        .timestamp_ms;
    let at = UNIX_EPOCH + Duration::from_millis(timestamp + 1_000);
    let accepted = verify_qemu_unsigned(&doc, &policy, MODULE_ID, at).expect("QEMU's own document");
    assert_eq!(accepted.verdict(), UNSIGNED_QEMU_VERDICT);
    assert_eq!(
        verify(&doc, &policy, at),
        Err(VerifyError::Parse(ParseError::Cose(
            CoseError::UnsupportedProtectedHeader
        )))
    );
}
