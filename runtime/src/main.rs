//! `enclave-runtime [--config P] -- COMMAND...`: what `nitro-provision build` makes the enclave's
//! command. The work is in the library ([`enclave_runtime::boot`]).

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
    /// The application's command (the image's Entrypoint + Cmd).
    #[arg(last = true, required_unless_present = "check_config")]
    command: Vec<String>,
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
    if cli.check_config {
        let violations = enclave_runtime::config::production_violations(&config);
        if !violations.is_empty() {
            eprintln!(
                "error: {}: `production: true` refuses {}",
                cli.config.display(),
                violations.join(", ")
            );
            return ExitCode::from(1);
        }
        println!(
            "{}: valid (deployment {})",
            cli.config.display(),
            config.deployment
        );
        return ExitCode::SUCCESS;
    }
    let forward = enclave_runtime::logging::init(&config.logging);
    // Names only: secret values are never logged.
    tracing::info!(deployment = %config.deployment, secrets = config.secrets.len(), "configuration loaded");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(enclave_runtime::boot::run(config, cli.command, forward));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
