//! An in-process driver for unit tests that behaves like nitro-cli where it matters to a
//! supervisor: an enclave whose process was killed leaves a stale socket behind, so every later
//! listing is partial (E39) and simply omits it; failures and hangs can be scripted per call.
//! A scripted hang resolves as the real driver's timeout would, after the given (tokio) time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::{classify, CommandKind, DriverError, ErrorKind};
use crate::types::{Described, Enclave, EnclaveId, EnclaveState, RunSpec, Started, Terminated};
use crate::{BoxFuture, EnclaveDriver};

/// A scripted outcome for the next call of one kind.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// Fail with this nitro-cli code (`"E36"`); a describe still lists what it can.
    Fail(&'static str),
    /// No answer: a timeout error after this long.
    Hang(Duration),
}

#[derive(Debug, Default)]
struct State {
    enclaves: Vec<Enclave>,
    /// Enclaves whose process died: their sockets make listings partial.
    stale: usize,
    dead_pids: Vec<u32>,
    next: u32,
    measurements: BTreeMap<String, String>,
    scripts: BTreeMap<&'static str, VecDeque<Scripted>>,
    calls: Vec<String>,
}

/// The in-process fake; cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct FakeDriver {
    state: Arc<Mutex<State>>,
}

impl FakeDriver {
    /// Enclaves started from now on report `measurements` (register → hex).
    pub fn new(measurements: BTreeMap<String, String>) -> Self {
        let fake = FakeDriver::default();
        fake.lock().measurements = measurements;
        fake
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes what later-started enclaves report.
    pub fn set_measurements(&self, measurements: BTreeMap<String, String>) {
        self.lock().measurements = measurements;
    }

    /// Queues an outcome for the next `run`, `describe` or `terminate`.
    pub fn script(&self, command: CommandKind, outcome: Scripted) {
        self.lock()
            .scripts
            .entry(command.as_str())
            .or_default()
            .push_back(outcome);
    }

    /// An enclave already running (started by a previous supervisor, or by hand).
    pub fn insert(&self, name: &str, measurements: BTreeMap<String, String>) -> Enclave {
        let mut s = self.lock();
        let e = new_enclave(&mut s, name, 16, 2, 512, false, measurements);
        s.enclaves.push(e.clone());
        e
    }

    /// The enclave's process is killed: the enclave goes with it, its socket stays.
    pub fn kill(&self, id: &EnclaveId) {
        let mut s = self.lock();
        if let Some(pos) = s.enclaves.iter().position(|e| &e.id == id) {
            let e = s.enclaves.remove(pos);
            s.dead_pids.push(e.process_id);
            s.stale += 1;
        }
    }

    /// The enclave shut down by itself (its init exited): gone cleanly.
    pub fn exit(&self, id: &EnclaveId) {
        let mut s = self.lock();
        if let Some(pos) = s.enclaves.iter().position(|e| &e.id == id) {
            let e = s.enclaves.remove(pos);
            s.dead_pids.push(e.process_id);
        }
    }

    /// Sets an enclave's state (e.g. TERMINATING).
    pub fn set_state(&self, id: &EnclaveId, state: EnclaveState) {
        if let Some(e) = self.lock().enclaves.iter_mut().find(|e| &e.id == id) {
            e.state = state;
        }
    }

    pub fn enclaves(&self) -> Vec<Enclave> {
        self.lock().enclaves.clone()
    }

    /// Every call so far, as `run`, `describe`, `terminate <id>`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    fn next_script(&self, command: CommandKind) -> Option<Scripted> {
        let mut s = self.lock();
        s.calls.push(command.as_str().to_string());
        s.scripts.get_mut(command.as_str())?.pop_front()
    }
}

fn new_enclave(
    s: &mut State,
    name: &str,
    cid: u64,
    cpus: u64,
    memory_mib: u64,
    debug: bool,
    measurements: BTreeMap<String, String>,
) -> Enclave {
    s.next += 1;
    Enclave {
        name: Some(name.to_string()),
        id: EnclaveId(format!("i-0fake0000000000000-enc{:016x}", s.next)),
        process_id: 100_000 + s.next,
        cid,
        cpu_count: cpus,
        cpu_ids: (1..=cpus as u32).collect(),
        memory_mib,
        state: EnclaveState::Running,
        debug,
        measurements,
    }
}

/// A failure as the real driver reports it for `code`.
fn coded(command: CommandKind, code: &'static str) -> DriverError {
    DriverError {
        codes: vec![code.to_string()],
        exit_status: code[1..].parse().ok(),
        ..DriverError::plain(
            command,
            classify(command, code, ""),
            format!("scripted {code}"),
        )
    }
}

async fn hang(command: CommandKind, d: Duration) -> DriverError {
    tokio::time::sleep(d).await;
    DriverError::timeout(command, d.as_secs_f64())
}

impl EnclaveDriver for FakeDriver {
    fn run<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<Started, DriverError>> {
        Box::pin(async move {
            match self.next_script(CommandKind::Run) {
                Some(Scripted::Fail(code)) => return Err(coded(CommandKind::Run, code)),
                Some(Scripted::Hang(d)) => return Err(hang(CommandKind::Run, d).await),
                None => {}
            }
            let mut s = self.lock();
            if s.enclaves.iter().any(|e| e.cid == u64::from(spec.cid)) {
                return Err(DriverError {
                    codes: vec!["E29".into()],
                    ..DriverError::plain(
                        CommandKind::Run,
                        ErrorKind::Transient,
                        "CID already in use",
                    )
                });
            }
            let measurements = s.measurements.clone();
            let e = new_enclave(
                &mut s,
                &spec.name,
                spec.cid.into(),
                spec.cpu_count.into(),
                spec.memory_mib,
                spec.debug,
                measurements,
            );
            s.enclaves.push(e.clone());
            Ok(Started {
                name: spec.name.clone(),
                id: e.id,
                process_id: e.process_id,
                cid: e.cid,
                cpu_count: e.cpu_count,
                cpu_ids: e.cpu_ids,
                memory_mib: e.memory_mib,
            })
        })
    }

    fn describe(&self) -> BoxFuture<'_, Described> {
        Box::pin(async move {
            let scripted = self.next_script(CommandKind::Describe);
            let (list, stale) = {
                let s = self.lock();
                (s.enclaves.clone(), s.stale)
            };
            match scripted {
                Some(Scripted::Fail(code)) => {
                    Described::Partial(list, coded(CommandKind::Describe, code))
                }
                Some(Scripted::Hang(d)) => Described::Failed(hang(CommandKind::Describe, d).await),
                None if stale > 0 => Described::Partial(list, coded(CommandKind::Describe, "E39")),
                None => Described::Complete(list),
            }
        })
    }

    fn terminate<'a>(
        &'a self,
        id: &'a EnclaveId,
    ) -> BoxFuture<'a, Result<Terminated, DriverError>> {
        Box::pin(async move {
            match self.next_script(CommandKind::Terminate) {
                Some(Scripted::Fail(code)) => return Err(coded(CommandKind::Terminate, code)),
                Some(Scripted::Hang(d)) => return Err(hang(CommandKind::Terminate, d).await),
                None => {}
            }
            let mut s = self.lock();
            if let Some(last) = s.calls.last_mut() {
                last.push(' ');
                last.push_str(&id.0);
            }
            match s.enclaves.iter().position(|e| &e.id == id) {
                Some(pos) => {
                    let e = s.enclaves.remove(pos);
                    s.dead_pids.push(e.process_id);
                    Ok(Terminated::Terminated)
                }
                None => Ok(Terminated::AlreadyGone),
            }
        })
    }

    fn process_alive(&self, process_id: u32) -> bool {
        let s = self.lock();
        s.enclaves.iter().any(|e| e.process_id == process_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RunSpec {
        RunSpec {
            name: "demo".into(),
            eif_path: "/x.eif".into(),
            cpu_count: 2,
            memory_mib: 512,
            cid: 16,
            debug: false,
        }
    }

    #[tokio::test]
    async fn a_killed_enclave_leaves_partial_listings() {
        let fake = FakeDriver::new(BTreeMap::from([("PCR0".into(), "00".into())]));
        let started = fake.run(&spec()).await.unwrap();
        assert!(fake.process_alive(started.process_id));
        assert!(matches!(fake.describe().await, Described::Complete(v) if v.len() == 1));
        fake.kill(&started.id);
        assert!(!fake.process_alive(started.process_id));
        match fake.describe().await {
            Described::Partial(v, e) => {
                assert!(v.is_empty());
                assert_eq!(e.codes, ["E39"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            fake.terminate(&started.id).await.unwrap(),
            Terminated::AlreadyGone
        );
    }

    #[tokio::test(start_paused = true)]
    async fn scripted_failures_and_hangs() {
        let fake = FakeDriver::default();
        fake.script(CommandKind::Run, Scripted::Fail("E26"));
        fake.script(CommandKind::Run, Scripted::Hang(Duration::from_secs(30)));
        let e = fake.run(&spec()).await.unwrap_err();
        assert_eq!((e.kind, e.exit_status), (ErrorKind::Config, Some(26)));
        let before = tokio::time::Instant::now();
        let e = fake.run(&spec()).await.unwrap_err();
        assert!(e.timed_out);
        assert_eq!(before.elapsed(), Duration::from_secs(30));
        fake.run(&spec()).await.unwrap();
        let e = fake.run(&spec()).await.unwrap_err();
        assert_eq!(e.codes, ["E29"], "second enclave on the same CID");
        assert_eq!(fake.calls(), ["run", "run", "run", "run"]);
    }
}
