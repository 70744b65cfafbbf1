//! Arbitrary bytes must never panic the reader, and whatever it accepts must satisfy the
//! shape it promises (non-empty whole AES blocks, a non-empty SKI, all within the input).
#![no_main]

use attested_kms::cms;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = cms::parse(data) {
        assert!(!envelope.ciphertext.is_empty() && envelope.ciphertext.len() % 16 == 0);
        assert!(!envelope.subject_key_id.is_empty());
        assert!(envelope.encrypted_key.len() + envelope.ciphertext.len() < data.len());
    }
});
