//! The watchdog as a pure state machine: it is told the time and what happened (a listing, the
//! result of a start or a terminate, a runtime event, an operator command) and answers what to
//! do next. No I/O and no clock of its own, so every timeline is tested exactly.
//!
//! ```text
//!  Reconciling ──adopt──▶ Running ◀──ok── Starting ◀──due── Backoff ◀──────────────┐
//!      │ (describe at start-up,    │  gone / not RUNNING /       ▲ start failed    │
//!      │  after an uncertain start)│  process dead / not ready    └─────────────────┤
//!      └─ none of ours ──▶ Backoff │─────────▶ Stopping ──terminated──▶ Backoff ────┘
//!                                  │ PCR mismatch ─▶ Stopping ─▶ Failed (held until an operator)
//!  EIF refused ─▶ Failed (EIF re-checked at backoff_max) · operator stop ─▶ Stopping ─▶ Stopped
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use nitro_cli_driver::{
    Described, DriverError, Enclave, EnclaveId, EnclaveState, ErrorKind, Started,
};
use nitro_eif::pcr::Measurements;
use serde::Serialize;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::measure::{check_described, EifRefusal};
use crate::persist::{Desired, EnclaveRecord};
use crate::services::EnclaveEvent;
use crate::settings::WatchdogParams;

/// An operator's request (management API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Start,
    Stop,
    Restart,
}

/// What the loop should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Describe,
    Start,
    Terminate(EnclaveId),
    /// Nothing until then (or until a command or an event arrives).
    Wait(Instant),
}

/// Why a start did not produce a running enclave.
#[derive(Debug, Clone)]
pub enum StartFailure {
    /// Refused before running anything (EIF measurements, no expected measurements).
    Refused(EifRefusal),
    Driver(DriverError),
}

/// Why the supervisor started the enclave again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartReason {
    /// Gone from a complete listing.
    Exited,
    /// Listed, but not RUNNING.
    NotRunning,
    /// Its enclave process died.
    ProcessDead,
    /// The runtime did not report ready within the boot grace.
    NotReady,
    Operator,
}

impl RestartReason {
    pub const ALL: [RestartReason; 5] = [
        RestartReason::Exited,
        RestartReason::NotRunning,
        RestartReason::ProcessDead,
        RestartReason::NotReady,
        RestartReason::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RestartReason::Exited => "exited",
            RestartReason::NotRunning => "not_running",
            RestartReason::ProcessDead => "process_dead",
            RestartReason::NotReady => "not_ready",
            RestartReason::Operator => "operator",
        }
    }
}

/// Where a measurement mismatch was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MismatchStage {
    Eif,
    Describe,
}

/// Side effects for the loop: metrics and the state file.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    Restart(RestartReason),
    Started,
    StartFailed,
    PcrMismatch(MismatchStage),
    /// The enclave to remember across supervisor restarts (None: none of ours runs).
    Record(Option<EnclaveRecord>),
    Counters(BTreeMap<String, u64>),
}

/// A failure shown in /v1/enclave-info.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    #[serde(skip)]
    pub at: Option<Instant>,
    /// `nitro_cli` (with `error_kind` and `codes`), `eif`, `measurements`, `runtime`, `state`.
    pub kind: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<DriverError>,
}

/// How the last enclave ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExitReport {
    #[serde(skip)]
    pub at: Option<Instant>,
    pub enclave_id: String,
    pub reason: RestartReason,
    /// The application's exit status, when the runtime reported it before the end.
    pub app_exit_code: Option<i32>,
    pub app_exit_signal: Option<i32>,
}

/// The enclave being watched.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracked {
    /// As run-enclave (or, when adopted, describe-enclaves) reported it.
    pub info: Started,
    pub debug: bool,
    pub started_at: Instant,
    pub started_at_ms: u64,
    pub adopted: bool,
}

/// What to do once a terminate went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    Stopped,
    /// Start again after the backoff for the current failure count.
    Restart,
    /// Hold: no automatic start until an operator asks.
    Hold,
    Reconcile,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Phase {
    Reconciling {
        not_before: Instant,
    },
    Starting,
    Running,
    Backoff {
        until: Instant,
    },
    Stopping {
        id: EnclaveId,
        then: After,
        not_before: Instant,
    },
    Stopped,
    /// Refused; `retry_at` re-checks the EIF, `None` waits for an operator.
    Failed {
        retry_at: Option<Instant>,
    },
}

/// The watchdog.
#[derive(Debug)]
pub struct Watchdog {
    pub(crate) name: String,
    pub(crate) params: WatchdogParams,
    pub(crate) expected: Option<Measurements>,
    backoff: Backoff,
    pub(crate) phase: Phase,
    pub(crate) desired: Desired,
    pub(crate) enclave: Option<Tracked>,
    /// The record of a previous run, used while reconciling.
    remembered: Option<EnclaveRecord>,
    next_poll: Instant,
    pub(crate) measured: Option<BTreeMap<String, String>>,
    pub(crate) pcr_match: Option<bool>,
    pub(crate) eif_measured: Option<Measurements>,
    pub(crate) runtime_ready: bool,
    /// When readiness last changed (or the enclave started): the boot grace counts from here.
    ready_changed_at: Instant,
    pub(crate) ever_ready: bool,
    pub(crate) healthy_since: Option<Instant>,
    pub(crate) boot_stage: Option<String>,
    pub(crate) restarts: u64,
    pub(crate) failures: u32,
    pub(crate) describe_failures: u32,
    pub(crate) current_delay: Option<Duration>,
    pub(crate) last_error: Option<Report>,
    pub(crate) last_exit: Option<ExitReport>,
    app_exit: Option<(Option<i32>, Option<i32>)>,
    pub(crate) foreign: Vec<String>,
    pub(crate) counters: BTreeMap<String, u64>,
    notes: Vec<Note>,
}

/// How long "nothing to do" waits; commands and events wake the loop earlier.
const IDLE: Duration = Duration::from_secs(3600);

impl Watchdog {
    /// A watchdog that first finds out what already runs (adoption).
    pub fn new(
        name: String,
        params: WatchdogParams,
        expected: Option<Measurements>,
        backoff: Backoff,
        desired: Desired,
        remembered: Option<EnclaveRecord>,
        now: Instant,
    ) -> Self {
        Watchdog {
            name,
            params,
            expected,
            backoff,
            phase: Phase::Reconciling { not_before: now },
            desired,
            enclave: None,
            remembered,
            next_poll: now,
            measured: None,
            pcr_match: None,
            eif_measured: None,
            runtime_ready: false,
            ready_changed_at: now,
            ever_ready: false,
            healthy_since: None,
            boot_stage: None,
            restarts: 0,
            failures: 0,
            describe_failures: 0,
            current_delay: None,
            last_error: None,
            last_exit: None,
            app_exit: None,
            foreign: Vec::new(),
            counters: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    /// A problem found before the loop started (shown as the last error).
    pub fn startup_error(&mut self, message: String) {
        self.last_error = Some(report("state", message));
    }

    /// Side effects since the last call.
    pub fn take_notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }

    /// The enclave process whose liveness the next observation should carry.
    pub fn watched_pid(&self) -> Option<u32> {
        match &self.enclave {
            Some(t) => Some(t.info.process_id),
            None => self.remembered.as_ref().map(|r| r.process_id),
        }
    }

    /// Healthy = RUNNING + expected PCRs + the runtime reported ready.
    pub fn healthy(&self) -> bool {
        self.phase == Phase::Running && self.pcr_match == Some(true) && self.runtime_ready
    }

    pub fn desired(&self) -> Desired {
        self.desired
    }

    /// When the next start is due, if one is scheduled.
    pub fn next_attempt(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Backoff { until } => Some(*until),
            Phase::Reconciling { not_before } if self.desired == Desired::Running => {
                Some(*not_before)
            }
            Phase::Failed { retry_at } => *retry_at,
            _ => None,
        }
    }

    /// What to do now; moves a due start into `Starting`.
    pub fn next_action(&mut self, now: Instant) -> Action {
        match self.phase.clone() {
            Phase::Reconciling { .. } | Phase::Running => {
                if now >= self.next_poll {
                    Action::Describe
                } else {
                    Action::Wait(self.next_poll)
                }
            }
            Phase::Starting => Action::Start,
            Phase::Backoff { until }
            | Phase::Failed {
                retry_at: Some(until),
            } => {
                if now >= until {
                    self.set_phase(Phase::Starting);
                    Action::Start
                } else {
                    Action::Wait(until)
                }
            }
            Phase::Stopping { id, not_before, .. } => {
                if now >= not_before {
                    Action::Terminate(id)
                } else {
                    Action::Wait(not_before)
                }
            }
            Phase::Stopped | Phase::Failed { retry_at: None } => Action::Wait(now + IDLE),
        }
    }

    fn set_phase(&mut self, phase: Phase) {
        if std::mem::discriminant(&phase) != std::mem::discriminant(&self.phase) {
            tracing::info!(
                state_from = phase_name(&self.phase),
                state_to = phase_name(&phase),
                enclave_name = %self.name,
                "watchdog state"
            );
        }
        self.phase = phase;
    }

    // ---- observations -------------------------------------------------------------------

    /// The result of a describe, with the liveness of [`Self::watched_pid`]'s process.
    pub fn on_observation(&mut self, now: Instant, described: Described, alive: Option<bool>) {
        self.next_poll = now + self.params.poll;
        match self.phase {
            Phase::Reconciling { not_before } => self.reconcile(now, &described, alive, not_before),
            Phase::Running => self.observe_running(now, &described, alive),
            _ => {}
        }
    }

    fn describe_failed(&mut self, now: Instant, described: &Described) {
        if let Some(e) = described.error() {
            self.describe_failures += 1;
            tracing::warn!(
                error = %e,
                consecutive = self.describe_failures,
                "describe-enclaves failed; not restarting on that alone"
            );
            self.set_error(now, driver_report(e));
        }
    }

    fn reconcile(
        &mut self,
        now: Instant,
        described: &Described,
        alive: Option<bool>,
        not_before: Instant,
    ) {
        let Some(list) = described.enclaves() else {
            return self.describe_failed(now, described);
        };
        let (ours, foreign): (Vec<&Enclave>, Vec<&Enclave>) = list
            .iter()
            .partition(|e| e.name.as_deref() == Some(self.name.as_str()));
        let foreign: Vec<String> = foreign.iter().map(|e| e.id.0.clone()).collect();
        if !foreign.is_empty() && foreign != self.foreign {
            tracing::warn!(
                enclaves = ?foreign,
                "enclaves with other names run on this host; leaving them alone (they hold CPUs and memory of the pool)"
            );
        }
        self.foreign = foreign;
        if let Some(e) = ours.iter().find(|e| self.adoptable(e)) {
            if self.desired == Desired::Running {
                return self.adopt(now, e, described, alive);
            }
        }
        // Without expected measurements nothing can be verified: leave it, and refuse to start.
        if let Some(e) = ours.first().filter(|_| self.expected.is_some()) {
            tracing::warn!(
                enclave_id = %e.id,
                state = e.state.as_str(),
                desired = self.desired.as_str(),
                "terminating an enclave with our name that we do not keep (stopped, not RUNNING, or another PCR0)"
            );
            return self.set_phase(Phase::Stopping {
                id: e.id.clone(),
                then: After::Reconcile,
                not_before: now,
            });
        }
        // None of ours listed. A partial listing may hide ours behind the unreachable enclave
        // process: if the one we remember is still alive, look again rather than start twice.
        if described.error().is_some() && alive == Some(true) {
            return self.describe_failed(now, described);
        }
        self.remembered = None;
        self.notes.push(Note::Record(None));
        match self.desired {
            Desired::Running => self.set_phase(Phase::Backoff { until: not_before }),
            Desired::Stopped => self.set_phase(Phase::Stopped),
        }
    }

    fn adoptable(&self, e: &Enclave) -> bool {
        e.state == EnclaveState::Running
            && self.expected.as_ref().is_some_and(|x| {
                e.measurements.get("PCR0").map(String::as_str) == Some(x.pcr0.to_hex().as_str())
            })
    }

    fn adopt(&mut self, now: Instant, e: &Enclave, described: &Described, alive: Option<bool>) {
        let remembered = self.remembered.take().filter(|r| r.id == e.id.0);
        let (started_at, started_at_ms) = match &remembered {
            Some(r) => {
                let age = crate::persist::now_ms().saturating_sub(r.started_at_ms);
                (
                    now.checked_sub(Duration::from_millis(age)).unwrap_or(now),
                    r.started_at_ms,
                )
            }
            None => (now, crate::persist::now_ms()),
        };
        tracing::info!(enclave_id = %e.id, process_id = e.process_id, "adopting the running enclave");
        self.enclave = Some(Tracked {
            info: e.started(),
            debug: e.debug,
            started_at,
            started_at_ms,
            adopted: true,
        });
        self.notes.push(Note::Record(Some(EnclaveRecord {
            id: e.id.0.clone(),
            process_id: e.process_id,
            started_at_ms,
        })));
        // The runtime re-reports readiness when its control connection comes back.
        if !self.runtime_ready {
            self.ready_changed_at = now;
        }
        self.set_phase(Phase::Running);
        let alive = if remembered.is_some() {
            alive
        } else {
            Some(true)
        };
        self.observe_running(now, described, alive);
    }

    fn observe_running(&mut self, now: Instant, described: &Described, alive: Option<bool>) {
        let Some(t) = self.enclave.clone() else {
            return;
        };
        match described
            .enclaves()
            .map(|l| l.iter().find(|e| e.id == t.info.id))
        {
            Some(Some(e)) if e.state == EnclaveState::Running => {
                if alive == Some(false) {
                    return self.gone(now, RestartReason::ProcessDead);
                }
                if described.error().is_none() {
                    self.describe_failures = 0;
                }
                if !self.verify(now, e) {
                    return;
                }
            }
            Some(Some(e)) => {
                tracing::warn!(enclave_id = %e.id, state = e.state.as_str(), "enclave is not RUNNING");
                return self.restart(now, RestartReason::NotRunning);
            }
            Some(None) if described.error().is_none() => {
                return self.gone(now, RestartReason::Exited)
            }
            // No listing, or a partial one without ours: only its dead process is proof.
            _ if alive == Some(false) => return self.gone(now, RestartReason::ProcessDead),
            _ => self.describe_failed(now, described),
        }
        self.check_health(now);
    }

    /// The running enclave's reported measurements against the expected ones.
    fn verify(&mut self, now: Instant, e: &Enclave) -> bool {
        self.measured = Some(e.measurements.clone());
        if let Some(t) = self.enclave.as_mut() {
            t.debug = e.debug;
        }
        let Some(expected) = &self.expected else {
            return true;
        };
        match check_described(&e.measurements, expected) {
            Ok(()) => {
                if self.pcr_match != Some(true) {
                    tracing::info!(enclave_id = %e.id, pcr0 = %expected.pcr0, "measurements verified");
                }
                self.pcr_match = Some(true);
                true
            }
            Err(message) => {
                tracing::error!(enclave_id = %e.id, %message, "terminating: measurements differ");
                self.pcr_match = Some(false);
                self.notes.push(Note::PcrMismatch(MismatchStage::Describe));
                self.set_error(now, report("measurements", message));
                self.set_phase(Phase::Stopping {
                    id: e.id.clone(),
                    then: After::Hold,
                    not_before: now,
                });
                false
            }
        }
    }

    fn check_health(&mut self, now: Instant) {
        if self.healthy() {
            let since = *self.healthy_since.get_or_insert(now);
            if self.failures > 0 && now.duration_since(since) >= self.params.stable {
                tracing::info!(
                    stable_secs = self.params.stable.as_secs(),
                    "healthy long enough: backoff reset"
                );
                self.failures = 0;
                self.current_delay = None;
            }
            return;
        }
        self.healthy_since = None;
        if !self.runtime_ready
            && now.duration_since(self.ready_changed_at) >= self.params.boot_grace
        {
            self.set_error(
                now,
                report(
                    "runtime",
                    format!(
                        "the runtime did not report ready within the {} s boot grace{}",
                        self.params.boot_grace.as_secs(),
                        self.boot_stage
                            .as_ref()
                            .map(|s| format!(" (last stage: {s})"))
                            .unwrap_or_default()
                    ),
                ),
            );
            self.restart(now, RestartReason::NotReady);
        }
    }

    /// The enclave is gone: record how, then start again after the backoff.
    fn gone(&mut self, now: Instant, reason: RestartReason) {
        let Some(t) = self.enclave.take() else {
            return;
        };
        tracing::warn!(enclave_id = %t.info.id, reason = reason.as_str(), "enclave gone");
        self.record_exit(now, &t, reason);
        self.notes.push(Note::Record(None));
        self.clear_runtime(now);
        match self.desired {
            Desired::Running => {
                self.count_restart(reason);
                let delay = self.next_delay(false);
                self.set_phase(Phase::Backoff { until: now + delay });
            }
            Desired::Stopped => self.set_phase(Phase::Stopped),
        }
    }

    /// Terminate first, then start again after the backoff.
    fn restart(&mut self, now: Instant, reason: RestartReason) {
        let Some(t) = self.enclave.clone() else {
            return;
        };
        self.record_exit(now, &t, reason);
        self.count_restart(reason);
        self.set_phase(Phase::Stopping {
            id: t.info.id,
            then: After::Restart,
            not_before: now,
        });
    }

    fn count_restart(&mut self, reason: RestartReason) {
        self.restarts += 1;
        if reason == RestartReason::Operator {
            self.failures = 0;
        } else {
            self.failures += 1;
        }
        self.notes.push(Note::Restart(reason));
    }

    fn record_exit(&mut self, now: Instant, t: &Tracked, reason: RestartReason) {
        let (code, signal) = self.app_exit.take().unwrap_or((None, None));
        self.last_exit = Some(ExitReport {
            at: Some(now),
            enclave_id: t.info.id.0.clone(),
            reason,
            app_exit_code: code,
            app_exit_signal: signal,
        });
    }

    fn clear_runtime(&mut self, now: Instant) {
        self.runtime_ready = false;
        self.ever_ready = false;
        self.ready_changed_at = now;
        self.healthy_since = None;
        self.measured = None;
        self.pcr_match = None;
        self.boot_stage = None;
    }

    /// The delay before the next start for the current failure count (the maximum for
    /// failures retrying cannot fix soon).
    fn next_delay(&mut self, at_max: bool) -> Duration {
        let d = if at_max {
            self.backoff.max
        } else {
            self.backoff.delay(self.failures)
        };
        self.current_delay = Some(d);
        if !d.is_zero() {
            tracing::info!(
                backoff_ms = d.as_millis() as u64,
                attempt = self.failures,
                "backing off"
            );
        }
        d
    }

    fn set_error(&mut self, now: Instant, mut r: Report) {
        r.at = Some(now);
        self.last_error = Some(r);
    }

    // ---- results of actions -------------------------------------------------------------

    /// `eif`: the EIF's measurements when it was read.
    pub fn on_start_result(
        &mut self,
        now: Instant,
        eif: Option<Measurements>,
        result: Result<Started, StartFailure>,
    ) {
        if eif.is_some() {
            self.eif_measured = eif;
        }
        match result {
            Ok(s) => {
                let started_at_ms = crate::persist::now_ms();
                tracing::info!(enclave_id = %s.id, process_id = s.process_id, cid = s.cid, "enclave started");
                self.notes.push(Note::Started);
                self.notes.push(Note::Record(Some(EnclaveRecord {
                    id: s.id.0.clone(),
                    process_id: s.process_id,
                    started_at_ms,
                })));
                self.enclave = Some(Tracked {
                    info: s,
                    debug: false,
                    started_at: now,
                    started_at_ms,
                    adopted: false,
                });
                self.clear_runtime(now);
                self.next_poll = now; // verify the measurements at once
                self.set_phase(Phase::Running);
            }
            Err(StartFailure::Refused(refusal)) => {
                if let EifRefusal::Mismatch { measured, .. } = &refusal {
                    self.eif_measured = Some((**measured).clone());
                    self.notes.push(Note::PcrMismatch(MismatchStage::Eif));
                }
                let message = refusal.message();
                tracing::error!(%message, "refusing to start the enclave");
                self.notes.push(Note::StartFailed);
                self.set_error(now, report("eif", message));
                self.current_delay = Some(self.backoff.max);
                self.set_phase(Phase::Failed {
                    retry_at: Some(now + self.backoff.max),
                });
            }
            Err(StartFailure::Driver(e)) => {
                tracing::error!(error = %e, error_kind = ?e.kind, "run-enclave failed");
                self.notes.push(Note::StartFailed);
                self.failures += 1;
                let at_max = matches!(e.kind, ErrorKind::Config | ErrorKind::Unavailable);
                let uncertain = e.timed_out;
                self.set_error(now, driver_report(&e));
                let delay = self.next_delay(at_max);
                if uncertain {
                    // It may have started after all: look before starting another.
                    self.next_poll = now;
                    self.set_phase(Phase::Reconciling {
                        not_before: now + delay,
                    });
                } else {
                    self.set_phase(Phase::Backoff { until: now + delay });
                }
            }
        }
    }

    pub fn on_terminated(&mut self, now: Instant, result: Result<(), DriverError>) {
        let Phase::Stopping { id, then, .. } = self.phase.clone() else {
            return;
        };
        if let Err(e) = result {
            tracing::error!(error = %e, enclave_id = %id, "terminate-enclave failed; retrying");
            self.set_error(now, driver_report(&e));
            return self.set_phase(Phase::Stopping {
                id,
                then,
                not_before: now + self.params.poll,
            });
        }
        tracing::info!(enclave_id = %id, "enclave terminated");
        if self.enclave.as_ref().is_some_and(|t| t.info.id == id) {
            self.enclave = None;
            self.notes.push(Note::Record(None));
            let keep_match = self.pcr_match;
            self.clear_runtime(now);
            if then == After::Hold {
                self.pcr_match = keep_match;
            }
        }
        match then {
            After::Stopped => self.set_phase(Phase::Stopped),
            After::Hold => self.set_phase(Phase::Failed { retry_at: None }),
            After::Restart => {
                let delay = self.next_delay(false);
                self.set_phase(Phase::Backoff { until: now + delay });
            }
            After::Reconcile => {
                self.next_poll = now;
                self.set_phase(Phase::Reconciling { not_before: now });
            }
        }
    }

    // ---- inputs from outside ------------------------------------------------------------

    pub fn on_command(&mut self, now: Instant, command: Command) {
        tracing::info!(command = ?command, state = phase_name(&self.phase), "operator command");
        match command {
            Command::Stop => {
                self.desired = Desired::Stopped;
                match self.phase.clone() {
                    Phase::Running => {
                        if let Some(t) = &self.enclave {
                            self.set_phase(Phase::Stopping {
                                id: t.info.id.clone(),
                                then: After::Stopped,
                                not_before: now,
                            });
                        }
                    }
                    Phase::Stopping { id, not_before, .. } => self.set_phase(Phase::Stopping {
                        id,
                        then: After::Stopped,
                        not_before,
                    }),
                    // Reconciling terminates ours once it sees desired = stopped.
                    Phase::Reconciling { .. } | Phase::Starting => {}
                    Phase::Backoff { .. } | Phase::Failed { .. } | Phase::Stopped => {
                        self.current_delay = None;
                        self.set_phase(Phase::Stopped)
                    }
                }
            }
            Command::Start | Command::Restart => {
                self.desired = Desired::Running;
                let restart = command == Command::Restart;
                match self.phase.clone() {
                    Phase::Running if restart => {
                        self.restart(now, RestartReason::Operator);
                    }
                    Phase::Running | Phase::Reconciling { .. } | Phase::Starting => {}
                    Phase::Stopping {
                        id,
                        not_before,
                        then,
                    } => {
                        let then = if then == After::Reconcile {
                            then
                        } else {
                            After::Restart
                        };
                        self.failures = 0;
                        self.set_phase(Phase::Stopping {
                            id,
                            then,
                            not_before,
                        });
                    }
                    Phase::Backoff { .. } | Phase::Failed { .. } | Phase::Stopped => {
                        self.failures = 0;
                        self.current_delay = None;
                        self.set_phase(Phase::Backoff { until: now });
                    }
                }
            }
        }
    }

    pub fn on_event(&mut self, now: Instant, event: EnclaveEvent) {
        match event {
            EnclaveEvent::Ready => {
                if !self.runtime_ready {
                    tracing::info!("the runtime reported ready");
                }
                self.runtime_ready = true;
                self.ever_ready = true;
                self.ready_changed_at = now;
                self.boot_stage = None;
                if self.healthy() {
                    self.healthy_since.get_or_insert(now);
                }
            }
            EnclaveEvent::Stage { stage, detail } => {
                tracing::info!(stage = %stage, detail = ?detail, "enclave boot stage");
                self.boot_stage = Some(stage);
            }
            EnclaveEvent::Fatal { stage, message } => {
                tracing::error!(stage = %stage, %message, "the runtime reported a fatal error");
                self.set_error(now, report("runtime", format!("{stage}: {message}")));
                self.not_ready(now);
            }
            EnclaveEvent::AppExited { code, signal } => {
                tracing::warn!(code = ?code, signal = ?signal, "the application exited");
                self.app_exit = Some((code, signal));
                self.not_ready(now);
            }
            EnclaveEvent::Counters(values) => {
                self.notes.push(Note::Counters(values.clone()));
                self.counters = values;
            }
            EnclaveEvent::Connected | EnclaveEvent::Disconnected => self.not_ready(now),
        }
    }

    fn not_ready(&mut self, now: Instant) {
        if self.runtime_ready {
            self.runtime_ready = false;
            self.ready_changed_at = now;
        }
        self.healthy_since = None;
    }

    /// Seconds left of the boot grace, while waiting for readiness.
    pub(crate) fn grace_left(&self, now: Instant) -> Option<Duration> {
        (self.phase == Phase::Running && !self.runtime_ready).then(|| {
            self.params
                .boot_grace
                .saturating_sub(now.duration_since(self.ready_changed_at))
        })
    }
}

pub(crate) fn phase_name(p: &Phase) -> &'static str {
    match p {
        Phase::Reconciling { .. } => "reconciling",
        Phase::Starting => "starting",
        Phase::Running => "running",
        Phase::Backoff { .. } => "backoff",
        Phase::Stopping { .. } => "stopping",
        Phase::Stopped => "stopped",
        Phase::Failed { .. } => "failed",
    }
}

fn report(kind: &'static str, message: String) -> Report {
    Report {
        at: None,
        kind,
        message,
        driver: None,
    }
}

fn driver_report(e: &DriverError) -> Report {
    Report {
        at: None,
        kind: "nitro_cli",
        message: e.to_string(),
        driver: Some(e.clone()),
    }
}
