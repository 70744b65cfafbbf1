//! TEMPORARY stand-in for the link helper's `services` module (SUPERVISOR-CONTRACT.md, "The
//! seam"): the same public shapes — `EnclaveEvent`, `ServiceMetrics`, `Services::start` — so the
//! rest of the supervisor is written against them. At merge, `crate::events` is replaced by
//! `crate::services` and this file is deleted.
//!
//! Until then the only event source is a test hook: when `ENCLAVE_SUPERVISOR_TEST_EVENTS` names a
//! unix socket path, `Services::start` listens there for JSON lines (`{"event":"ready"}`, …) that
//! a test sends in place of the enclave's runtime. The real control service replaces it.

use std::collections::BTreeMap;

use serde::Deserialize;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

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
    /// Counters relayed from the runtime, keyed by Simple Enclave's names.
    Counters(BTreeMap<String, u64>),
    /// A control connection from the enclave opened / closed (a new boot opens a new one).
    Connected,
    Disconnected,
}

/// Metric handles of the services (stand-in: no metrics; the link helper's registers its own).
#[derive(Debug, Default)]
pub struct ServiceMetrics {}

impl ServiceMetrics {
    pub fn new() -> Self {
        ServiceMetrics {}
    }

    pub fn register(&self, _registry: &mut prometheus_client::registry::Registry) {}

    /// For /v1/enclave-info: log records forwarded and dropped so far.
    pub fn log_forwarded(&self) -> u64 {
        0
    }

    pub fn log_dropped(&self) -> u64 {
        0
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServiceError(String);

/// Running services; `shutdown` stops accepting and closes listeners.
pub struct Services {
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The test hook's wire form of an event.
#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Stage {
        stage: String,
        detail: Option<String>,
    },
    Ready,
    Fatal {
        stage: String,
        message: String,
    },
    AppExited {
        code: Option<i32>,
        signal: Option<i32>,
    },
    Counters {
        values: BTreeMap<String, u64>,
    },
    Connected,
    Disconnected,
}

impl From<Line> for EnclaveEvent {
    fn from(l: Line) -> Self {
        match l {
            Line::Stage { stage, detail } => EnclaveEvent::Stage { stage, detail },
            Line::Ready => EnclaveEvent::Ready,
            Line::Fatal { stage, message } => EnclaveEvent::Fatal { stage, message },
            Line::AppExited { code, signal } => EnclaveEvent::AppExited { code, signal },
            Line::Counters { values } => EnclaveEvent::Counters(values),
            Line::Connected => EnclaveEvent::Connected,
            Line::Disconnected => EnclaveEvent::Disconnected,
        }
    }
}

/// Environment variable of the test hook.
pub const TEST_EVENTS_ENV: &str = "ENCLAVE_SUPERVISOR_TEST_EVENTS";

impl Services {
    pub async fn start(
        _config: &companion_config::SupervisorConfig,
        events: mpsc::Sender<EnclaveEvent>,
        _metrics: std::sync::Arc<ServiceMetrics>,
    ) -> Result<Services, ServiceError> {
        let Some(path) = std::env::var_os(TEST_EVENTS_ENV) else {
            return Ok(Services { task: None });
        };
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).map_err(|e| {
            ServiceError(format!(
                "binding {}: {e}",
                std::path::Path::new(&path).display()
            ))
        })?;
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let events = events.clone();
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(conn).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        match serde_json::from_str::<Line>(&line) {
                            Ok(l) => {
                                if events.send(l.into()).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => tracing::warn!(error = %e, "test event line rejected"),
                        }
                    }
                });
            }
        });
        Ok(Services { task: Some(task) })
    }

    pub async fn shutdown(self) {
        if let Some(t) = self.task {
            t.abort();
        }
    }
}
