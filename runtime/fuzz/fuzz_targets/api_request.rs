//! The internal API's untrusted input: attestation bodies, object names and sealed objects read
//! back from S3. None may panic; an accepted name never escapes its prefix.
#![no_main]

use enclave_runtime::api::request::{attestation_request, check_name, MAX_NAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = attestation_request(data) {
        assert!(r.nonce().map_or(0, <[u8]>::len) <= 512);
        assert!(r.user_data().map_or(0, <[u8]>::len) <= 512);
        assert!(r.public_key().map_or(0, <[u8]>::len) <= 1024);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(name) = check_name(text) {
            assert!(!name.is_empty() && name.len() <= MAX_NAME);
            assert!(name.split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
        }
    }
    let _ = enclave_runtime::sealed::parse(data);
});
