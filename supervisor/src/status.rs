//! The watchdog's state as the outside sees it: one snapshot, published after every step of the
//! loop, read by the management API, the metrics and systemd's `STATUS=`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::time::Instant;

use crate::measure::to_map;
use crate::persist::Desired;
use crate::watchdog::machine::{phase_name, ExitReport, Phase, Report, Watchdog};

/// Maps the loop's monotonic instants to wall-clock time (taken once, so a controllable clock
/// gives consistent timestamps).
#[derive(Debug, Clone, Copy)]
pub struct Wall {
    instant: Instant,
    system: SystemTime,
}

impl Wall {
    pub fn now() -> Self {
        Wall {
            instant: Instant::now(),
            system: SystemTime::now(),
        }
    }

    pub fn at(&self, t: Instant) -> SystemTime {
        match t.checked_duration_since(self.instant) {
            Some(d) => self.system + d,
            None => self.system - self.instant.duration_since(t),
        }
    }

    pub fn rfc3339(&self, t: Instant) -> String {
        rfc3339(self.at(t))
    }
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn rfc3339_ms(ms: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_millis(ms))
}

/// A failure with its time.
#[derive(Debug, Clone, Serialize)]
pub struct Timed<T> {
    pub at: Option<String>,
    #[serde(flatten)]
    pub inner: T,
}

/// Expected and measured registers.
#[derive(Debug, Clone, Serialize)]
pub struct Pcrs {
    /// From the config (the build).
    pub expected: Option<BTreeMap<String, String>>,
    /// The EIF on disk, as last re-measured before a start.
    pub eif: Option<BTreeMap<String, String>>,
    /// What describe-enclaves reports for the running enclave.
    pub measured: Option<BTreeMap<String, String>>,
    /// `null` until the running enclave was checked.
    #[serde(rename = "match")]
    pub matches: Option<bool>,
}

/// `GET /v1/enclave-info`, minus the `metrics` object the API adds.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub schema: u32,
    pub name: String,
    /// `reconciling`, `starting`, `booting`, `ready`, `unready`, `backoff`, `stopping`,
    /// `stopped`, `failed`.
    pub state: &'static str,
    pub desired_state: Desired,
    pub healthy: bool,
    /// Why the enclave is not ready (null when it is).
    pub reason: Option<String>,
    pub boot_stage: Option<String>,
    pub enclave_id: Option<String>,
    pub process_id: Option<u32>,
    pub enclave_cid: u64,
    pub cpu_count: u64,
    pub cpu_ids: Vec<u32>,
    pub memory_mib: u64,
    pub debug_mode: bool,
    pub adopted: bool,
    pub started_at: Option<String>,
    pub measurements: Pcrs,
    pub restarts: u64,
    pub consecutive_failures: u32,
    pub describe_failures: u32,
    /// The delay before the pending start, or the one that preceded the current enclave
    /// (null once the backoff reset after a stable period, or after an operator action).
    pub backoff_secs: Option<f64>,
    pub next_attempt_at: Option<String>,
    pub last_exit: Option<Timed<ExitReport>>,
    pub last_error: Option<Timed<Report>>,
    /// Enclaves with other names on this host (left alone).
    pub foreign_enclaves: Vec<String>,
    /// The runtime's latest counters (since its start), Simple Enclave's names.
    #[serde(skip)]
    pub runtime_counters: BTreeMap<String, u64>,
    pub supervisor_version: &'static str,
    pub supervisor_started_at: String,
}

/// Configured resources, shown while no enclave runs.
#[derive(Debug, Clone)]
pub struct Configured {
    pub cid: u64,
    pub cpu_count: u64,
    pub memory_mib: u64,
    pub debug: bool,
}

impl Snapshot {
    pub fn of(
        w: &Watchdog,
        now: Instant,
        wall: &Wall,
        configured: &Configured,
        started: SystemTime,
    ) -> Self {
        let e = w.enclave.as_ref();
        let state = state_name(w);
        Snapshot {
            schema: 1,
            name: w.name.clone(),
            state,
            desired_state: w.desired,
            healthy: w.healthy(),
            reason: (!w.healthy()).then(|| reason(w, now, state)),
            boot_stage: w.boot_stage.clone(),
            enclave_id: e.map(|t| t.info.id.0.clone()),
            process_id: e.map(|t| t.info.process_id),
            enclave_cid: e.map_or(configured.cid, |t| t.info.cid),
            cpu_count: e.map_or(configured.cpu_count, |t| t.info.cpu_count),
            cpu_ids: e.map(|t| t.info.cpu_ids.clone()).unwrap_or_default(),
            memory_mib: e.map_or(configured.memory_mib, |t| t.info.memory_mib),
            debug_mode: e.map_or(configured.debug, |t| t.debug),
            adopted: e.is_some_and(|t| t.adopted),
            started_at: e.map(|t| rfc3339_ms(t.started_at_ms)),
            measurements: Pcrs {
                expected: w.expected.as_ref().map(to_map),
                eif: w.eif_measured.as_ref().map(to_map),
                measured: w.measured.clone(),
                matches: w.pcr_match,
            },
            restarts: w.restarts,
            consecutive_failures: w.failures,
            describe_failures: w.describe_failures,
            backoff_secs: w
                .current_delay
                .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
            next_attempt_at: w.next_attempt().map(|t| wall.rfc3339(t)),
            last_exit: w.last_exit.clone().map(|r| Timed {
                at: r.at.map(|t| wall.rfc3339(t)),
                inner: r,
            }),
            last_error: w.last_error.clone().map(|r| Timed {
                at: r.at.map(|t| wall.rfc3339(t)),
                inner: r,
            }),
            foreign_enclaves: w.foreign.clone(),
            runtime_counters: w.counters.clone(),
            supervisor_version: env!("CARGO_PKG_VERSION"),
            supervisor_started_at: rfc3339(started),
        }
    }

    /// One line for systemd's `STATUS=`.
    pub fn status_line(&self) -> String {
        let mut s = self.state.to_string();
        if let Some(id) = &self.enclave_id {
            s.push_str(&format!(" enclave {id}"));
        }
        if let Some(pcr0) = self
            .measurements
            .expected
            .as_ref()
            .and_then(|m| m.get("PCR0"))
        {
            s.push_str(&format!(" PCR0 {}…", &pcr0[..16.min(pcr0.len())]));
        }
        if let Some(r) = &self.reason {
            s.push_str(&format!(": {r}"));
        }
        s
    }
}

fn state_name(w: &Watchdog) -> &'static str {
    match w.phase {
        Phase::Running if w.healthy() => "ready",
        Phase::Running if w.ever_ready => "unready",
        Phase::Running => "booting",
        ref p => phase_name(p),
    }
}

fn reason(w: &Watchdog, now: Instant, state: &str) -> String {
    let last_error = || {
        w.last_error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| "no error recorded".into())
    };
    match state {
        "booting" | "unready" => {
            if w.pcr_match == Some(false) {
                return last_error();
            }
            if w.pcr_match.is_none() && w.expected.is_some() {
                return "the enclave's measurements are not verified yet".into();
            }
            let left = w.grace_left(now).map_or(0, |d| d.as_secs());
            format!(
                "waiting for the runtime to report ready{} ({left} s of the {} s boot grace left)",
                w.boot_stage
                    .as_ref()
                    .map(|s| format!(" (stage: {s})"))
                    .unwrap_or_default(),
                w.params.boot_grace.as_secs()
            )
        }
        "reconciling" => "looking for an enclave to adopt".into(),
        "starting" => "run-enclave in progress".into(),
        "stopping" => "terminate-enclave in progress".into(),
        "stopped" => "stopped by the operator (POST /v1/start starts it)".into(),
        "backoff" => match &w.last_exit {
            Some(x) if w.last_error.as_ref().is_none_or(|e| e.at <= x.at) => {
                format!("restarting after the enclave ended ({})", x.reason.as_str())
            }
            _ => format!("restarting after: {}", last_error()),
        },
        _ => last_error(),
    }
}
