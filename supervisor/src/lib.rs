//! `enclave-supervisor`: runs one Nitro Enclave on its parent instance and keeps it running; the
//! binary is a thin layer over this library. The watchdog ([`watchdog`]) drives an
//! [`nitro_cli_driver::EnclaveDriver`]; the management API ([`api`]) and the metrics
//! ([`metrics`]) read its published [`status::Snapshot`]; the link services ([`services`]) feed
//! it the runtime's reports from the control service. On SIGTERM the supervisor exits and leaves
//! the enclave running: systemd sends the same signal for a restart and a stop, and a supervisor
//! upgrade must not be an outage; the next supervisor adopts it. Stopping the enclave is
//! `POST /v1/stop` (persisted).

pub mod api;
pub mod backoff;
pub mod log_layer;
pub mod measure;
pub mod metrics;
pub mod persist;
pub mod reporting;
pub mod services;
pub mod settings;
pub mod status;
pub mod systemd;
pub mod watchdog;

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use companion_config::SupervisorConfig;
use nitro_cli_driver::EnclaveDriver;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};

use crate::api::{ApiState, Token, TOKEN_FILE};
use crate::backoff::{Backoff, Jitter};
use crate::metrics::{Metered, Metrics};
use crate::persist::Store;
use crate::services::{ServiceMetrics, Services};
use crate::settings::Settings;
use crate::status::{Configured, Wall};
use crate::systemd::Notifier;
use crate::watchdog::{Heartbeat, Inputs, Runner, Watchdog};

/// Runs the supervisor until `shutdown` turns true; `shipping` is the buffer its tracing layer
/// fills (see [`reporting`]). Binding failures (API, services) are
/// errors before READY.
pub async fn serve<D: EnclaveDriver + 'static>(
    config: &SupervisorConfig,
    settings: Settings,
    driver: D,
    shutdown: watch::Receiver<bool>,
    shipping: Arc<cloudwatch_log_shipping::Buffer>,
) -> anyhow::Result<()> {
    let started = SystemTime::now();
    let store = Arc::new(Store::open(&settings.state_dir).with_context(|| {
        format!(
            "opening the state directory {}",
            settings.state_dir.display()
        )
    })?);
    let token_path = settings.state_dir.join(TOKEN_FILE);
    let token = Token::load_or_create(&token_path)
        .with_context(|| format!("the API token {}", token_path.display()))?;

    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let service_metrics = Arc::new(ServiceMetrics::new());
    service_metrics.register(&mut registry);

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding the management API on {}", settings.listen))?;
    let (event_tx, event_rx) = mpsc::channel(256);
    let services = Services::start(config, event_tx, service_metrics.clone())
        .await
        .context("starting the enclave's vsock services")?;

    let now = tokio::time::Instant::now();
    let params = settings.watchdog;
    let mut machine = Watchdog::new(
        settings.spec.name.clone(),
        params,
        settings.expected.clone(),
        Backoff::new(params.backoff_min, params.backoff_max, Jitter::from_os()),
        store.desired(),
        store.enclave(),
        now,
    );
    if let Some(why) = &store.recovered_from {
        tracing::error!(%why, "the state file was unreadable: staying stopped until POST /v1/start");
        machine.startup_error(format!("the state file was unreadable, so the enclave stays stopped until POST /v1/start: {why}"));
    }
    let configured = Configured {
        cid: settings.spec.cid.into(),
        cpu_count: settings.spec.cpu_count.into(),
        memory_mib: settings.spec.memory_mib,
        debug: settings.spec.debug,
    };
    let wall = Wall::now();
    let first = status::Snapshot::of(&machine, now, &wall, &configured, started);
    let (status_tx, status_rx) = watch::channel(first);
    reporting::start(config, shipping, status_rx.clone());
    let (command_tx, command_rx) = mpsc::channel(64);
    let heartbeat = Arc::new(Heartbeat::default());

    let api_state = Arc::new(ApiState {
        status: status_rx.clone(),
        commands: command_tx,
        store: store.clone(),
        token,
        registry,
        metrics: metrics.clone(),
        services: service_metrics,
    });
    let bound = listener.local_addr().unwrap_or(settings.listen);
    tracing::info!(listen = %bound, "management API listening");
    let mut api_shutdown = shutdown.clone();
    let api = tokio::spawn(async move {
        axum::serve(listener, api::router(api_state))
            .with_graceful_shutdown(async move {
                let _ = api_shutdown.wait_for(|s| *s).await;
            })
            .await
    });

    let notifier = Arc::new(Notifier::from_env());
    notifier.notify("READY=1\nSTATUS=reconciling");
    let keepalive = tokio::spawn(systemd::keepalive(
        notifier.clone(),
        heartbeat.clone(),
        status_rx,
    ));

    let runner = Runner {
        driver: Arc::new(Metered::new(driver, metrics.clone())),
        machine,
        spec: settings.spec.clone(),
        eif_check: watchdog::EifCheck::OnDisk,
        timeouts: settings.timeouts,
        store,
        metrics,
        status: status_tx,
        heartbeat,
        configured,
        wall,
        started,
    };
    let machine = runner
        .run(Inputs {
            commands: command_rx,
            events: event_rx,
            shutdown,
        })
        .await;

    notifier.notify("STOPPING=1");
    keepalive.abort();
    services.shutdown().await;
    match tokio::time::timeout(std::time::Duration::from_secs(5), api).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "management API ended with an error"),
        Err(_) => tracing::warn!("management API did not finish in 5 s"),
        _ => {}
    }
    match machine.enclave.as_ref() {
        Some(e) => tracing::info!(
            enclave_id = %e.info.id,
            "supervisor exiting; the enclave keeps running and the next supervisor adopts it (POST /v1/stop stops it)"
        ),
        None => tracing::info!("supervisor exiting; no enclave running"),
    }
    Ok(())
}
