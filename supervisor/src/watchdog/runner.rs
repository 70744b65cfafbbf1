//! The loop around the state machine: asks it what to do, does it (one driver call at a time),
//! feeds the result back, and publishes a snapshot after every step. Operator commands and
//! runtime events are taken while it waits; shutdown cancels whatever is in flight (a killed
//! `run-enclave` leaves at most an enclave that the next start adopts or terminates).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nitro_cli_driver::{boot_timeout, EnclaveDriver, RunSpec, Started, Timeouts};
use nitro_eif::pcr::Measurements;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::machine::{Action, Command, Note, StartFailure, Watchdog};
use crate::measure::{check_eif, EifRefusal};
use crate::metrics::Metrics;
use crate::persist::Store;
use crate::services::EnclaveEvent;
use crate::status::{Configured, Snapshot, Wall};

/// Proof of progress for systemd's watchdog: the loop pushes a deadline forward before each
/// step (by that step's own time bound); keepalives stop when it is missed.
#[derive(Debug)]
pub struct Heartbeat {
    base: Instant,
    deadline_ms: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            base: Instant::now(),
            deadline_ms: AtomicU64::new(u64::MAX),
        }
    }
}

impl Heartbeat {
    fn extend(&self, until: Instant) {
        let ms = until.saturating_duration_since(self.base).as_millis() as u64;
        self.deadline_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether the loop is within the bound of its current step.
    pub fn fresh(&self) -> bool {
        let now = Instant::now()
            .saturating_duration_since(self.base)
            .as_millis() as u64;
        now <= self.deadline_ms.load(Ordering::Relaxed)
    }
}

/// What reaches the loop from outside.
pub struct Inputs {
    pub commands: mpsc::Receiver<Command>,
    pub events: mpsc::Receiver<EnclaveEvent>,
    pub shutdown: watch::Receiver<bool>,
}

/// How the EIF is re-measured before a start.
#[derive(Clone)]
pub enum EifCheck {
    /// Read the configured EIF (on a blocking thread: it streams the whole file).
    OnDisk,
    /// A verdict given by the caller (timeline tests, which run on a controllable clock and
    /// must not wait on threads the clock does not know).
    Given(Arc<dyn Fn() -> Result<Measurements, EifRefusal> + Send + Sync>),
}

/// Slack on top of each step's own bound before the systemd watchdog may fire.
const SLACK: Duration = Duration::from_secs(15);

pub struct Runner {
    pub driver: Arc<dyn EnclaveDriver>,
    pub machine: Watchdog,
    pub spec: RunSpec,
    pub eif_check: EifCheck,
    pub timeouts: Timeouts,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub status: watch::Sender<Snapshot>,
    pub heartbeat: Arc<Heartbeat>,
    pub configured: Configured,
    pub wall: Wall,
    pub started: SystemTime,
}

impl Runner {
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        Snapshot::of(
            &self.machine,
            now,
            &self.wall,
            &self.configured,
            self.started,
        )
    }

    fn publish(&mut self, now: Instant) {
        for note in self.machine.take_notes() {
            self.metrics.note(&note);
            if let Note::Record(r) = note {
                if let Err(e) = self.store.set_enclave(r) {
                    tracing::error!(error = %e, "cannot persist the enclave record");
                }
            }
        }
        let snap = self.snapshot(now);
        self.metrics.observe(&snap);
        self.status.send_replace(snap);
    }

    /// Runs until shutdown; the enclave is left as it is.
    pub async fn run(mut self, mut inputs: Inputs) -> Watchdog {
        loop {
            let now = Instant::now();
            let action = self.machine.next_action(now);
            self.publish(now);
            self.heartbeat
                .extend(now + self.bound(&action, now) + SLACK);
            let mut shutdown = inputs.shutdown.clone();
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => break,
                _ = self.step(action, &mut inputs) => {}
            }
        }
        self.publish(Instant::now());
        self.machine
    }

    /// The longest the step may take.
    fn bound(&self, action: &Action, now: Instant) -> Duration {
        match action {
            Action::Describe => self.timeouts.describe,
            Action::Terminate(_) => self.timeouts.terminate,
            Action::Wait(until) => until.saturating_duration_since(now),
            Action::Start => {
                let size = std::fs::metadata(&self.spec.eif_path).map_or(0, |m| m.len());
                // Re-measuring reads the whole EIF: allow 20 MB/s on a slow disk.
                let measure = Duration::from_secs(10 + size / 20_000_000);
                measure
                    + self
                        .timeouts
                        .run
                        .unwrap_or(boot_timeout(size, self.spec.memory_mib))
            }
        }
    }

    async fn step(&mut self, action: Action, inputs: &mut Inputs) {
        match action {
            Action::Describe => {
                let described = self.driver.describe().await;
                let alive = self
                    .machine
                    .watched_pid()
                    .map(|p| self.driver.process_alive(p));
                self.machine
                    .on_observation(Instant::now(), described, alive);
            }
            Action::Start => {
                let (eif, result) = self.start().await;
                self.machine.on_start_result(Instant::now(), eif, result);
            }
            Action::Terminate(id) => {
                let r = self.driver.terminate(&id).await.map(drop);
                self.machine.on_terminated(Instant::now(), r);
            }
            Action::Wait(until) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    Some(c) = inputs.commands.recv() => self.machine.on_command(Instant::now(), c),
                    Some(e) = inputs.events.recv() => self.machine.on_event(Instant::now(), e),
                }
            }
        }
    }

    /// Re-measures the EIF, then runs it.
    async fn start(&self) -> (Option<Measurements>, Result<Started, StartFailure>) {
        let Some(expected) = self.machine.expected.clone() else {
            let why = "the config has no expected measurements (rendered without a built EIF): refusing to start an image nothing vouches for";
            return (
                None,
                Err(StartFailure::Refused(EifRefusal::Unusable(why.into()))),
            );
        };
        let checked = match &self.eif_check {
            EifCheck::Given(verdict) => verdict(),
            EifCheck::OnDisk => {
                let path = self.spec.eif_path.clone();
                tokio::task::spawn_blocking(move || check_eif(&path, &expected))
                    .await
                    .unwrap_or_else(|e| {
                        Err(EifRefusal::Unusable(format!("measuring the EIF: {e}")))
                    })
            }
        };
        match checked {
            Err(r) => (None, Err(StartFailure::Refused(r))),
            Ok(m) => (
                Some(m),
                self.driver
                    .run(&self.spec)
                    .await
                    .map_err(StartFailure::Driver),
            ),
        }
    }
}
