//! `enclave-runtime`: PID 1's child inside the enclave. It will attest, fetch secrets from KMS
//! via attestation, mount encrypted storage, start the application and forward its logs over
//! vsock. This build loads and checks its configuration; `--check-config` exits after that.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use companion_config::{ConfigFile, RuntimeConfig, RUNTIME_CONFIG_PATH};

/// Runs the application inside a Nitro Enclave.
#[derive(Debug, Parser)]
#[command(name = "enclave-runtime", version, about)]
struct Cli {
    /// Configuration baked into the enclave image by `nitro-provision build`.
    #[arg(long, default_value = RUNTIME_CONFIG_PATH)]
    config: PathBuf,
    /// Load and validate the configuration, print a summary, and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match RuntimeConfig::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.logging.level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // Names only: secret values are never logged.
    tracing::info!(deployment = %config.deployment, secrets = config.secrets.len(), "configuration loaded");
    if cli.check_config {
        println!(
            "{}: valid (deployment {})",
            cli.config.display(),
            config.deployment
        );
        return ExitCode::SUCCESS;
    }
    eprintln!("error: the runtime's run loop is not part of this release; use --check-config");
    ExitCode::from(1)
}
