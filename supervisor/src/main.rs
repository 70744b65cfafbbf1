//! `enclave-supervisor`: runs on the parent instance (installed by the stack's user_data, run by
//! systemd). A thin binary over the `enclave_supervisor` library.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use clap::Parser;
use cloudwatch_log_shipping::{Bounds, Buffer};
use companion_config::{ConfigFile, SupervisorConfig, SUPERVISOR_CONFIG_PATH};
use enclave_supervisor::log_layer::ShippingLayer;
use enclave_supervisor::services;
use enclave_supervisor::settings::Settings;
use nitro_cli_driver::NitroCli;

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
    let settings = match check(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {e}", cli.config.display());
            return ExitCode::from(1);
        }
    };
    if cli.check_config {
        if settings.expected.is_none() {
            eprintln!(
                "error: {}: expected_measurements is null (rendered without a built EIF); the supervisor would refuse to start any enclave",
                cli.config.display()
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
    let shipping = Buffer::new(Bounds {
        records: config.link.logs.buffer_records as usize,
        bytes: SHIPPING_BUFFER_BYTES,
    });
    init_logging(&config, &shipping);
    raise_descriptor_limit();
    tracing::info!(
        deployment = %config.deployment,
        listen = %settings.listen,
        cpu_count = config.enclave.cpu_count,
        memory_mib = config.enclave.memory_mib,
        cid = config.enclave.cid,
        debug = config.enclave.debug,
        version = env!("CARGO_PKG_VERSION"),
        "starting"
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = tx.send(true);
        });
        let driver = NitroCli::new(settings.timeouts);
        enclave_supervisor::serve(&config, settings, driver, rx, shipping).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "supervisor failed");
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Raises the soft descriptor limit to the hard one: a proxied connection holds up to six
/// descriptors (two sockets and, for splice, two pipes), and systemd's default soft limit (1024)
/// would refuse connections long before `link.ingress.max_connections`.
fn raise_descriptor_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l) == 0
        }
    };
    if raised {
        tracing::debug!(
            limit = l.rlim_cur,
            "descriptor limit raised to the hard limit"
        );
    } else {
        let error = std::io::Error::last_os_error();
        tracing::warn!(%error, "cannot raise the descriptor limit");
    }
}

/// Every rule the config's types cannot express: the lifecycle's ([`Settings`]) and the link
/// services' (transport, allowlist, ingress, IMDS), so `--check-config` refuses what a start
/// would.
fn check(config: &SupervisorConfig) -> Result<Settings, String> {
    let settings = Settings::from_config(config)?;
    services::check(config).map_err(|e| e.to_string())?;
    Ok(settings)
}

/// SIGTERM (systemd) or SIGINT (a terminal).
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
    }
}

/// What the shipping buffer may hold while CloudWatch is unreachable, besides its record count.
const SHIPPING_BUFFER_BYTES: usize = 16 << 20;

/// stderr (journald) always; CloudWatch too for a deployment with a rollout target.
fn init_logging(c: &SupervisorConfig, shipping: &Arc<Buffer>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&c.logging.level));
    let is_json = c.logging.format == "json";
    let json = is_json.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
    });
    let text = (!is_json).then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
    let ship = c
        .rollout
        .is_some()
        .then(|| ShippingLayer::new(shipping.clone()));
    tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .with(text)
        .with(ship)
        .init();
}
