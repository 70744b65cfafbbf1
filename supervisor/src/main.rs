//! `enclave-supervisor`: runs on the parent instance (installed by the stack's user_data). It will
//! own the enclave's lifecycle: management API on 127.0.0.1, watchdog, vsock proxies, metrics.
//! This build loads and checks its configuration; `--check-config` exits after that.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use companion_config::{ConfigFile, SupervisorConfig, SUPERVISOR_CONFIG_PATH};

/// Supervises one Nitro Enclave on its parent instance.
#[derive(Debug, Parser)]
#[command(name = "enclave-supervisor", version, about)]
struct Cli {
    /// Configuration written by nitro-provision's user_data.
    #[arg(long, default_value = SUPERVISOR_CONFIG_PATH)]
    config: PathBuf,
    /// Load and validate the configuration, print a summary, and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match SupervisorConfig::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = check(&config) {
        eprintln!("error: {}: {e}", cli.config.display());
        return ExitCode::from(1);
    }
    init_logging(&config);
    tracing::info!(
        deployment = %config.deployment,
        listen = %config.listen,
        cpu_count = config.enclave.cpu_count,
        memory_mib = config.enclave.memory_mib,
        proxies = config.proxies.len(),
        "configuration loaded"
    );
    if cli.check_config {
        println!(
            "{}: valid (deployment {})",
            cli.config.display(),
            config.deployment
        );
        return ExitCode::SUCCESS;
    }
    eprintln!("error: the supervisor's run loop is not part of this release; use --check-config");
    ExitCode::from(1)
}

/// Rules the type cannot express: the management API must never leave the host.
fn check(c: &SupervisorConfig) -> Result<(), String> {
    let addr: std::net::SocketAddr = c
        .listen
        .parse()
        .map_err(|_| format!("listen `{}` is not an address:port", c.listen))?;
    if !addr.ip().is_loopback() {
        return Err(format!("listen `{}` is not a loopback address", c.listen));
    }
    if c.watchdog.backoff_max_secs < c.watchdog.backoff_min_secs {
        return Err("watchdog.backoff_max_secs is below backoff_min_secs".into());
    }
    Ok(())
}

fn init_logging(c: &SupervisorConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&c.logging.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if c.logging.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
