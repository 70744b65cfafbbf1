//! Simulator documents go through the project's own verifier (nitro-attestation) with the test
//! root, carry the build's PCRs and the request's fields, and fail every check they should.

use std::time::{Duration, SystemTime};

use nitro_attestation::{verify, verify_with_anchor, ChainError, Policy, TrustAnchor, VerifyError};
use nitro_nsm::simulator::{Pcrs, Simulator, TestPki, LEAF_LIFETIME};
use nitro_nsm::{open, AttestationRequest, Backend, Nsm, NsmError};

const MEASUREMENTS: &str = r#"{"Measurements": {"HashAlgorithm": "Sha384 { ... }",
  "PCR0": "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f",
  "PCR1": "111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111",
  "PCR2": "222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222"}}"#;

fn simulator(pki: TestPki) -> Simulator {
    Simulator::new(pki, Pcrs::from_measurements_json(MEASUREMENTS).unwrap())
}

fn anchor(pki: &TestPki) -> TrustAnchor {
    TrustAnchor::from_pem(&pki.root_pem()).unwrap()
}

#[test]
fn documents_verify_with_the_test_root_and_carry_request_and_pcrs() {
    let pki = TestPki::generate(3).unwrap();
    let root = anchor(&pki);
    assert!(!root.is_aws());
    let sim = simulator(pki);
    let request = AttestationRequest::new(
        Some(b"user".to_vec()),
        Some(b"nonce-123".to_vec()),
        Some(vec![0x30; 294]),
    )
    .unwrap();
    let doc = sim.attest(&request).unwrap();
    assert_eq!(doc[0], 0x84, "untagged COSE_Sign1, as /dev/nsm returns");
    let policy = Policy {
        nonce: Some(b"nonce-123".to_vec()),
        public_key: Some(vec![0x30; 294]),
        user_data: Some(b"user".to_vec()),
        max_age: Some(Duration::from_secs(60)),
        ..Policy::default()
    };
    let verified = verify_with_anchor(&doc, &root, &policy, SystemTime::now()).unwrap();
    let d = verified.document;
    assert_eq!(d.cabundle.len(), 4, "root + 3 intermediates");
    assert_eq!(d.pcrs.len(), 16);
    assert_eq!(d.pcrs[&0], hex::decode(&MEASUREMENTS[64..160]).unwrap());
    assert_eq!(d.pcrs[&2], vec![0x22; 48]);
    assert_eq!(d.pcrs[&3], vec![0; 48], "unset registers are zero");
    assert!(!d.is_debug());
}

#[test]
fn documents_are_refused_by_the_default_aws_root_and_by_another_test_root() {
    let sim = simulator(TestPki::generate(1).unwrap());
    let doc = sim.attest(&AttestationRequest::default()).unwrap();
    let at = SystemTime::now();
    assert!(matches!(
        verify(&doc, &Policy::default(), at),
        Err(VerifyError::Chain(ChainError::UntrustedRoot(_)))
    ));
    let other = anchor(&TestPki::generate(1).unwrap());
    assert!(matches!(
        verify_with_anchor(&doc, &other, &Policy::default(), at),
        Err(VerifyError::Chain(ChainError::NotTheGivenRoot { .. }))
    ));
}

#[test]
fn tampering_and_expiry_are_detected() {
    let pki = TestPki::generate(2).unwrap();
    let root = anchor(&pki);
    let sim = simulator(pki);
    let now = SystemTime::now();
    let doc = sim.attest_at(&AttestationRequest::default(), now).unwrap();
    let mut flipped = doc.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(
        verify_with_anchor(&flipped, &root, &Policy::default(), now).err(),
        Some(VerifyError::Signature)
    );
    let late = now + LEAF_LIFETIME + Duration::from_secs(600);
    assert!(matches!(
        verify_with_anchor(&doc, &root, &Policy::default(), late),
        Err(VerifyError::Chain(ChainError::Expired { .. }))
    ));
}

#[test]
fn pki_round_trips_through_files_and_open_builds_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(3).unwrap();
    let root = anchor(&pki);
    pki.write(dir.path()).unwrap();
    let measurements = dir.path().join("measurements.json");
    std::fs::write(&measurements, MEASUREMENTS).unwrap();
    let backend = Backend::Simulator {
        pki_dir: dir.path().to_path_buf(),
        measurements,
    };
    let nsm = open(&backend, false).unwrap();
    assert!(nsm.is_simulated());
    let doc = nsm.attest(&AttestationRequest::default()).unwrap();
    verify_with_anchor(&doc, &root, &Policy::default(), SystemTime::now()).unwrap();
    assert_eq!(nsm.describe_pcr(1).unwrap().value, vec![0x11; 48]);
    assert!(nsm.describe_pcr(1).unwrap().locked);
    assert_eq!(nsm.describe_pcr(32), Err(NsmError::NoSuchPcr(32)));
    assert_eq!(nsm.random().unwrap().len(), 256);
    assert_eq!(nsm.describe().unwrap().digest, "SHA384");
    assert!(matches!(
        open(&backend, true),
        Err(nitro_nsm::OpenError::SimulatorInProduction)
    ));
}

#[test]
fn measurements_need_pcr0_to_2_of_48_bytes() {
    assert!(Pcrs::from_measurements_json(r#"{"PCR0": "00"}"#).is_err());
    let no_pcr2 = r#"{"PCR0": "__", "PCR1": "__"}"#.replace("__", &"ab".repeat(48));
    assert!(Pcrs::from_measurements_json(&no_pcr2).is_err());
    assert!(Pcrs::from_measurements_json("[]").is_err());
}
