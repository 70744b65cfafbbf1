//! `/metrics`: the supervisor's Prometheus metrics (prometheus-client; counters are exposed with
//! `_total`, every metric with HELP and TYPE). Gauges follow the published snapshot; the
//! runtime's relayed counters stay counters across enclave restarts (the runtime's own values
//! restart from zero; we add the increments).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nitro_cli_driver::{
    BoxFuture, CommandKind, Described, DriverError, EnclaveDriver, EnclaveId, RunSpec, Started,
    Terminated,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::status::Snapshot;
use crate::watchdog::machine::{MismatchStage, Note, RestartReason};

/// The counters the runtime relays (Simple Enclave's names); others are not exported, so a
/// runtime cannot grow the label space.
pub const RUNTIME_COUNTERS: [(&str, &str); 11] = [
    (
        "http_requests",
        "HTTP requests the enclave's application served",
    ),
    ("http_errors", "HTTP requests that failed"),
    ("kms_operations", "KMS calls made by the runtime"),
    ("kms_errors", "KMS calls that failed"),
    ("storage_reads", "Encrypted storage reads"),
    ("storage_writes", "Encrypted storage writes"),
    ("storage_deletes", "Encrypted storage deletes"),
    ("storage_errors", "Encrypted storage operations that failed"),
    ("secret_reads", "Secret reads"),
    ("secret_writes", "Secret writes"),
    ("secret_deletes", "Secret deletes"),
];

/// Every state name a snapshot can carry.
pub const STATES: [&str; 9] = [
    "reconciling",
    "starting",
    "booting",
    "ready",
    "unready",
    "backoff",
    "stopping",
    "stopped",
    "failed",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabel {
    command: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CliErrorLabel {
    command: &'static str,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabel {
    pub method: String,
    pub route: &'static str,
    pub status: u16,
}

/// Metric handles; the registry itself lives beside them (read at scrape time).
#[derive(Debug)]
pub struct Metrics {
    up: Gauge,
    ready: Gauge,
    state: Family<StateLabel, Gauge>,
    restarts: Family<ReasonLabel, Counter>,
    starts: Family<ResultLabel, Counter>,
    mismatches: Family<StageLabel, Counter>,
    backoff: Gauge<f64, AtomicU64>,
    cli_calls: Family<CommandLabel, Counter>,
    cli_errors: Family<CliErrorLabel, Counter>,
    cli_duration: Family<CommandLabel, Histogram>,
    runtime: BTreeMap<&'static str, Counter>,
    runtime_last: Mutex<BTreeMap<String, u64>>,
    pub http: Family<HttpLabel, Counter>,
}

impl Metrics {
    /// Registers everything in `registry`.
    pub fn new(registry: &mut Registry) -> Arc<Self> {
        let m = Metrics {
            up: Gauge::default(),
            ready: Gauge::default(),
            state: Family::default(),
            restarts: Family::default(),
            starts: Family::default(),
            mismatches: Family::default(),
            backoff: Gauge::default(),
            cli_calls: Family::default(),
            cli_errors: Family::default(),
            cli_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 16))
            }),
            runtime: RUNTIME_COUNTERS
                .iter()
                .map(|(n, _)| (*n, Counter::default()))
                .collect(),
            runtime_last: Mutex::new(BTreeMap::new()),
            http: Family::default(),
        };
        let r = registry;
        r.register(
            "nitro_enclave_up",
            "1 while our enclave is RUNNING with its process alive",
            m.up.clone(),
        );
        r.register("nitro_enclave_ready", "1 while the enclave is healthy: RUNNING, expected PCRs, runtime ready (= GET /health 200)", m.ready.clone());
        r.register(
            "nitro_enclave_state",
            "1 for the watchdog's current state",
            m.state.clone(),
        );
        r.register(
            "nitro_enclave_restarts",
            "Enclave restarts by the supervisor, by reason",
            m.restarts.clone(),
        );
        r.register(
            "nitro_enclave_starts",
            "run-enclave attempts (EIF check included), by result",
            m.starts.clone(),
        );
        r.register("nitro_enclave_pcr_mismatches", "Measurements that differed from the expected ones, by where (eif: on disk before a start; describe: the running enclave)", m.mismatches.clone());
        r.register(
            "nitro_enclave_backoff_seconds",
            "Current delay before the next start (0 when none)",
            m.backoff.clone(),
        );
        r.register(
            "nitro_cli_calls",
            "nitro-cli invocations, by command",
            m.cli_calls.clone(),
        );
        r.register("nitro_cli_errors", "Failed nitro-cli invocations, by command and root-cause code (Exx, timeout, spawn, output, exit)", m.cli_errors.clone());
        r.register(
            "nitro_cli_call_duration_seconds",
            "nitro-cli call durations, by command",
            m.cli_duration.clone(),
        );
        for (name, help) in RUNTIME_COUNTERS {
            r.register(
                format!("nitro_runtime_{name}"),
                format!("{help} (relayed from the enclave's runtime)"),
                m.runtime[name].clone(),
            );
        }
        r.register(
            "nitro_supervisor_http_requests",
            "Management API requests, by method, route and status",
            m.http.clone(),
        );
        r.register(
            "nitro_supervisor_build",
            "The supervisor's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        // Every bounded series exists from the start (at 0), so rates and alerts see them.
        for s in STATES {
            m.state.get_or_create(&StateLabel { state: s }).set(0);
        }
        for reason in RestartReason::ALL {
            let _ = m.restarts.get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        for result in ["success", "failure"] {
            let _ = m.starts.get_or_create(&ResultLabel { result });
        }
        for stage in ["eif", "describe"] {
            let _ = m.mismatches.get_or_create(&StageLabel { stage });
        }
        for command in ["run", "describe", "terminate"] {
            let _ = m.cli_calls.get_or_create(&CommandLabel { command });
        }
        Arc::new(m)
    }

    /// Gauges from the latest snapshot.
    pub fn observe(&self, s: &Snapshot) {
        let up = s.enclave_id.is_some() && matches!(s.state, "booting" | "ready" | "unready");
        self.up.set(i64::from(up));
        self.ready.set(i64::from(s.healthy));
        for state in STATES {
            self.state
                .get_or_create(&StateLabel { state })
                .set(i64::from(state == s.state));
        }
        self.backoff.set(if s.next_attempt_at.is_some() {
            s.backoff_secs.unwrap_or(0.0)
        } else {
            0.0
        });
    }

    /// Counters from the watchdog's notes.
    pub fn note(&self, n: &Note) {
        match n {
            Note::Restart(r) => {
                self.restarts
                    .get_or_create(&ReasonLabel { reason: r.as_str() })
                    .inc();
            }
            Note::Started => {
                self.starts
                    .get_or_create(&ResultLabel { result: "success" })
                    .inc();
                self.runtime_last
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
            }
            Note::StartFailed => {
                self.starts
                    .get_or_create(&ResultLabel { result: "failure" })
                    .inc();
            }
            Note::PcrMismatch(stage) => {
                let stage = match stage {
                    MismatchStage::Eif => "eif",
                    MismatchStage::Describe => "describe",
                };
                self.mismatches.get_or_create(&StageLabel { stage }).inc();
            }
            Note::Counters(values) => self.relay(values),
            Note::Record(_) => {}
        }
    }

    fn relay(&self, values: &BTreeMap<String, u64>) {
        let mut last = self.runtime_last.lock().unwrap_or_else(|p| p.into_inner());
        for (name, value) in values {
            let Some(counter) = self.runtime.get(name.as_str()) else {
                continue;
            };
            let before = last.insert(name.clone(), *value).unwrap_or(0);
            // A smaller value means the runtime restarted: all of it is new.
            counter.inc_by(if *value >= before {
                value - before
            } else {
                *value
            });
        }
    }

    fn cli(&self, command: CommandKind, started: Instant, error: Option<&DriverError>) {
        let command = command.as_str();
        self.cli_calls
            .get_or_create(&CommandLabel { command })
            .inc();
        self.cli_duration
            .get_or_create(&CommandLabel { command })
            .observe(started.elapsed().as_secs_f64());
        if let Some(e) = error {
            self.cli_errors
                .get_or_create(&CliErrorLabel {
                    command,
                    code: e.label().to_string(),
                })
                .inc();
        }
    }
}

/// A driver that counts every call of the driver it wraps.
pub struct Metered<D> {
    inner: D,
    metrics: Arc<Metrics>,
}

impl<D> Metered<D> {
    pub fn new(inner: D, metrics: Arc<Metrics>) -> Self {
        Metered { inner, metrics }
    }
}

impl<D: EnclaveDriver> EnclaveDriver for Metered<D> {
    fn run<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<Started, DriverError>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.inner.run(spec).await;
            self.metrics.cli(CommandKind::Run, t, r.as_ref().err());
            r
        })
    }

    fn describe(&self) -> BoxFuture<'_, Described> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.inner.describe().await;
            self.metrics.cli(CommandKind::Describe, t, r.error());
            r
        })
    }

    fn terminate<'a>(
        &'a self,
        id: &'a EnclaveId,
    ) -> BoxFuture<'a, Result<Terminated, DriverError>> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.inner.terminate(id).await;
            self.metrics
                .cli(CommandKind::Terminate, t, r.as_ref().err());
            r
        })
    }

    fn process_alive(&self, process_id: u32) -> bool {
        self.inner.process_alive(process_id)
    }
}
