//! nitro-provision: declarative provisioner for AWS Nitro Enclaves. The binary is a thin layer
//! over these modules: `config` (enclave.yaml), `render` (CloudFormation, user_data, policies),
//! `plan` (what an apply would do), `secrets` (sealing values for the enclave) and `commands` (one module per subcommand).
pub mod aws;
pub mod build;
pub mod cli;
pub mod commands;
/// `enclave.yaml` (its own crate; re-exported under the name the modules here use).
pub use enclave_config as config;
pub mod output;
pub mod plan;
pub mod preflight;
pub mod progress;
pub mod reconcile;
pub mod render;
pub mod secrets;
