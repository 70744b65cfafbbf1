//! The host side of every link service the supervisor offers the enclave: control, logs,
//! credentials, egress, dev secrets in a local run (each on its fixed vsock port,
//! `enclave_link::ports`) and ingress (host TCP port N → enclave vsock port N). [`Services::start`] binds everything first — a bind
//! failure is an error naming the port, so the supervisor exits before telling systemd it is
//! ready — then serves in background tasks until [`Services::shutdown`].

mod control;
mod credentials;
mod dev_secrets;
mod egress;
mod imds;
mod ingress;
mod link;
mod logs;
mod metrics;
mod pump;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use companion_config::SupervisorConfig;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use imds::{Imds, ImdsError};
pub use ingress::IngressPort;
pub use metrics::ServiceMetrics;

/// What the enclave's runtime reported over the control service.
#[derive(Debug, Clone, PartialEq)]
pub enum EnclaveEvent {
    /// A boot stage began or finished (e.g. "entropy", "attestation", "secrets", "app").
    Stage {
        stage: String,
        detail: Option<String>,
    },
    /// The runtime and the application are ready (readiness probe passed).
    Ready,
    /// A fatal error; the runtime will exit after reporting it.
    Fatal {
        stage: String,
        message: String,
    },
    /// The application's final exit status (code or signal), acknowledged to the runtime.
    AppExited {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// Counters relayed from the runtime, keyed by Simple Enclave's names (`http_requests`,
    /// `kms_operations`, ...): monotonically increasing values since the runtime started.
    Counters(BTreeMap<String, u64>),
    /// A control connection from the enclave opened / closed (a new boot opens a new one).
    Connected,
    Disconnected,
}

/// Why the services could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot bind the {what}: {source}")]
    Bind {
        what: String,
        source: std::io::Error,
    },
    #[error("invalid supervisor config: {0}")]
    Config(String),
    #[error("cannot start the log writer thread: {0}")]
    Spawn(std::io::Error),
}

/// Running services; `shutdown` stops accepting, closes listeners and ends open connections.
pub struct Services {
    token: CancellationToken,
    tracker: TaskTracker,
    ingress: Vec<IngressPort>,
}

/// How long `shutdown` waits for connection tasks to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Services {
    /// Binds every listener (a bind failure is an error naming the port: the supervisor then
    /// exits before READY), then serves in background tasks.
    pub async fn start(
        config: &SupervisorConfig,
        events: mpsc::Sender<EnclaveEvent>,
        metrics: Arc<ServiceMetrics>,
    ) -> Result<Services, ServiceError> {
        check(config)?;
        let (transport, policy) = link::host_link(config)?;
        let ctx = link::Ctx {
            transport,
            policy,
            metrics: metrics.clone(),
            copy: config.link.proxy_copy,
            tracker: TaskTracker::new(),
            token: CancellationToken::new(),
        };
        let started = Self::start_all(&ctx, config, events).await;
        ctx.tracker.close();
        match started {
            Ok(ingress) => Ok(Services {
                token: ctx.token,
                tracker: ctx.tracker,
                ingress,
            }),
            Err(e) => {
                ctx.token.cancel();
                ctx.tracker.wait().await;
                Err(e)
            }
        }
    }

    async fn start_all(
        ctx: &link::Ctx,
        config: &SupervisorConfig,
        events: mpsc::Sender<EnclaveEvent>,
    ) -> Result<Vec<IngressPort>, ServiceError> {
        let l = &config.link;
        let cache = Arc::new(credentials::Cache::new(
            &l.credentials,
            ctx.metrics.clone(),
        )?);
        control::start(ctx, events).await?;
        logs::start(ctx, l.logs.buffer_records as usize).await?;
        credentials::start(ctx, cache).await?;
        egress::start(ctx, &l.egress).await?;
        if let Some(dev) = &l.dev_secrets {
            dev_secrets::start(ctx, dev).await?;
        }
        ingress::start(ctx, &config.proxies, &l.ingress).await
    }

    /// The bound ingress ports (their addresses matter when the config asked for port 0).
    pub fn ingress_ports(&self) -> &[IngressPort] {
        &self.ingress
    }

    pub async fn shutdown(self) {
        self.token.cancel();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.tracker.wait()).await;
    }
}

/// Checks the link part of `config` without binding anything (for `--check-config`).
pub fn check(config: &SupervisorConfig) -> Result<(), ServiceError> {
    let l = &config.link;
    link::host_link(config)?;
    egress::Allowlist::new(&l.egress)?;
    ingress::check(&config.proxies, &l.ingress)?;
    imds::Imds::new(
        &l.credentials.imds_endpoint,
        l.credentials.token_ttl_secs,
        Duration::from_millis(l.credentials.timeout_ms.into()),
    )
    .map_err(|e| ServiceError::Config(e.to_string()))?;
    if !(1..=21_600).contains(&l.credentials.token_ttl_secs) {
        return Err(ServiceError::Config(
            "link.credentials.token_ttl_secs must be 1–21600 (IMDSv2's range)".into(),
        ));
    }
    if l.logs.buffer_records == 0 || l.egress.max_connections == 0 {
        return Err(ServiceError::Config(
            "link.logs.buffer_records and link.egress.max_connections must be positive".into(),
        ));
    }
    Ok(())
}
