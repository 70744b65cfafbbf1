//! The config loader must return Ok or diagnostics for any input, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = enclave_config::parse_str(text, "fuzz.yaml") {
            // Rendering the diagnostics is part of the contract too.
            let _ = e.to_string();
        }
    }
});
