//! `enclave-runtime`: the enclave's command. It boots (every stage reported to the supervisor),
//! gets the application its secrets through attested KMS, runs it as a supervised child and
//! serves it the internal API; see [`boot`] for the sequence.

pub mod api;
pub mod aws;
pub mod boot;
mod child;
pub mod config;
mod counters;
mod dev_secrets;
mod ingress;
pub mod logging;
mod platform;
mod readiness;
pub mod sealed;
mod secrets;
mod store;
mod user;
