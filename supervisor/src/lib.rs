//! `enclave-supervisor` as a library: the binary is a thin layer over these modules.

pub mod services;
