//! The EIF reader must return `Ok` or a typed error for any input, never panic or over-allocate.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = nitro_eif::reader::read_eif(data);
});
