//! Arbitrary bytes must never panic the parser, the report or the verifier.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use nitro_attestation::{parse, verify, Policy, Report};

fuzz_target!(|data: &[u8]| {
    if let Ok(document) = parse(data) {
        let _ = Report::new(&document);
        // Check at the document's own time so the chain and signature code is reached.
        let at = UNIX_EPOCH + Duration::from_millis(document.timestamp_ms);
        let _ = verify(data, &Policy::default(), at);
    }
});
