//! nitro-provision: declarative provisioner for AWS Nitro Enclaves. The binary is a thin layer
//! over these modules: `config` (enclave.yaml), `render` (CloudFormation, user_data, policies),
//! `plan` (what an apply would do) and `commands` (one module per subcommand).
pub mod aws;
pub mod build;
pub mod cli;
pub mod commands;
pub mod config;
pub mod output;
pub mod plan;
pub mod progress;
pub mod reconcile;
pub mod render;
